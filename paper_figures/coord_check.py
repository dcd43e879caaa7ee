"""Yang & Hu, TP4 (arXiv 2011.14522) / Yang et al. TP5 (arXiv 2203.03466) coordinate check:
SP versus muP.

Networks of growing width are built from the ``sp`` and ``mup`` tables and
trained for one SGD step with :func:`limits.coord_check`; the RMS coordinate
size of the feature updates Delta h^l and of the output update Delta f is
plotted against width. In SP (learning rate fixed, c = 0) the updates blow up
with width; in muP they stay flat. Dashed lines: the exponents the tables
predict (:meth:`Parametrization.exponents`).
"""

from pathlib import Path

import numpy as np

import limits
from limits.plotting import finish, new_figure, save, widths_ticks


def make(out: Path, quick: bool = False) -> list[Path]:
    depth = 2
    widths = [64, 128, 256] if quick else [128, 256, 512, 1024, 2048]
    seeds = 2 if quick else 8
    data = limits.datasets.teacher(P=8, D=4, seed=0)
    fig, axes = new_figure(2, size=(4.4, 3.6))
    for ax, name in zip(axes[0], ("sp", "mup")):
        res = limits.coord_check(name, depth, widths, X=data.X, y=data.y, lr=0.05, steps=1, seeds=seeds,
                                 spectral=False, progress=False)
        for key in [k for k in res.values if k.startswith("dh")] + ["df"]:
            vals = np.asarray(res.values[key])
            line = ax.errorbar(res.widths, vals, yerr=res.errors[key], fmt="o-", ms=4, capsize=2,
                               label=rf"$\Delta {'f' if key == 'df' else 'h^' + key[2:]}$ (slope {res.measured(key):+.2f})")
            pred = res.predicted[key]
            ax.plot(res.widths, vals[0] * (res.widths / res.widths[0]) ** pred, "--", lw=0.8,
                    color=line[0].get_color())
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        widths_ticks(ax, widths)
        finish(ax, "width n", "RMS coordinate size after one step", f"{name.upper() if name == 'sp' else 'muP'} (dashed: predicted)")
    return [save(fig, out / f"coord_check.{ext}") for ext in ("png", "pdf")]
