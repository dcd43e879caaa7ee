"""Bordelon, Noci, Li, Hanin & Pehlevan 2023 (arXiv 2309.16620), Fig. 1, and Yang, Yu, Zhu & Hayou,
Tensor Programs VI (arXiv 2310.02244), Fig. 1 in spirit: learning-rate transfer across depth.

ResNets with L blocks, muP in width, tanh, trained with full-batch SGD on the
default teacher task (:func:`limits.transfer` with ``depths=[...]``). Left:
plain branches (``"resnet"``, ``h <- h + W phi(h)/sqrt(n)``): the residual stream
and the NTK grow with depth and the optimal learning rate shifts down. Right:
1/sqrt(L) branches (``"depth-mup"``): the loss-vs-lr curves of all depths line
up and the optimum stays put. Dotted lines mark the optimum at each depth; the
legend gives the fitted exponent of ``lr* ~ L^k``.
"""

from pathlib import Path

import numpy as np

import limits
from limits.analysis.transfer import plot_depth_curves
from limits.plotting import finish, new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    depths = [4, 8, 16] if quick else [4, 8, 16, 32, 64]
    width, seeds = (32, 2) if quick else (64, 4)
    lrs = np.geomspace(1 / 16, 16, 9 if quick else 17)
    data = limits.datasets.teacher()
    fig, axes = new_figure(2)
    for ax, name, label in ((axes[0, 0], "resnet", "plain branches (muP in width)"),
                            (axes[0, 1], "depth-mup", r"$1/\sqrt{L}$ branches (Depth-$\mu$P)")):
        res = limits.transfer(name, None, [width], lrs, depths=depths, X=data.X, y=data.y, activation="tanh",
                              steps=5, seeds=seeds, limit=False, progress=False)
        plot_depth_curves(ax, res)
        finish(ax, "learning rate", "train loss after 5 steps", f"{label}: $k$ = {res.exponent:+.2f}")
        ax.set_ylim(top=2.0)
    return [save(fig, out / f"depthwise_transfer.{ext}") for ext in ("png", "pdf")]
