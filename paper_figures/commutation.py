"""Hayou & Yang 2023, Width and Depth Limits Commute in Residual Networks (arXiv 2302.00453),
the commutation statement drawn as errors over the (width, depth) grid.

The 1/sqrt(L)-branch ResNet (``"depth-mup"``, relu) is initialized at widths n
and depths L; its empirical NNGP and NTK (:func:`limits.simulate`, seed-averaged
errors) are compared with the joint infinite-width-and-depth kernel
(:func:`limits.kernels.resnet_infinite_depth`) by
:func:`limits.analysis.kernel_commutation`. Left: error vs depth, one line per
width, the n = inf row (black) falling like 1/L (width first, then depth).
Right: error vs width, one line per depth, falling like n^-1/2 at the largest
depth (depth first, then width). Top row NNGP, bottom row NTK.
"""

from pathlib import Path

import limits
from limits.analysis import kernel_commutation
from limits.analysis.depth import KINDS, plot_commutation_panels
from limits.plotting import new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    if quick:
        grid = dict(widths=(32, 128), depths=(2, 8), seeds=2)
    else:
        grid = dict(widths=(32, 64, 128, 256, 512), depths=(2, 4, 8, 16, 32, 64), seeds=8)
    X = limits.datasets.teacher(P=8, D=4, seed=0).X
    res = kernel_commutation(X=X, activation="relu", **grid)
    fig, axes = new_figure(2, len(KINDS))
    for r, kind in enumerate(KINDS):
        plot_commutation_panels(axes[r, 0], axes[r, 1], res, kind)
    return [save(fig, out / f"commutation.{ext}") for ext in ("png", "pdf")]
