"""Yang et al., Tensor Programs V (muTransfer, arXiv 2203.03466), Figure 1:
training loss versus learning rate across widths, SP versus muP.

For each width, two-layer tanh networks (depth 1) are trained with full-batch SGD at a grid
of learning rates by :func:`limits.transfer`. In SP the optimum shifts to
smaller learning rates as width grows (and wide networks diverge earlier); in
muP the curves line up and the optimum transfers. The muP panel also shows
the infinite-width DMFT curve (black, dashed) when the solver is available.
"""

from pathlib import Path

import numpy as np

import limits
from limits.plotting import finish, new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    depth, steps = 1, (10 if quick else 40)
    widths = [64, 256] if quick else [128, 256, 512, 1024, 2048]
    seeds = 2 if quick else 4
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    fig, axes = new_figure(2, size=(4.4, 3.6))
    grids = {"sp": np.geomspace(1e-3, 1.0, 5 if quick else 13), "mup": np.geomspace(1e-2, 10.0, 5 if quick else 13)}
    for ax, name in zip(axes[0], ("sp", "mup")):
        res = limits.transfer(name, depth, widths, grids[name], X=data.X, y=data.y, steps=steps, seeds=seeds,
                              limit=(name == "mup" and not quick),
                              limit_method=limits.dmft.MonteCarlo(samples=4096) if name == "mup" and not quick else None,
                              progress=False)
        colors = [f"C{i}" for i in range(len(widths))]
        for i, w in enumerate(res.widths):
            ax.plot(res.lrs, res.losses[i], "o-", ms=3, color=colors[i], label=f"width {int(w)}")
            if np.isfinite(res.optima[i]):
                ax.axvline(res.optima[i], color=colors[i], lw=0.7, ls=":")
        if res.limit_losses is not None:
            ax.plot(res.lrs, res.limit_losses, "k--", label="infinite width")
        ax.set_xscale("log")
        ax.set_yscale("log")
        label = "SP" if name == "sp" else "muP"
        finish(ax, "learning rate", f"train loss after {steps} steps", f"{label}: lr* ~ n^{res.exponent:+.2f}")
    return [save(fig, out / f"mutransfer.{ext}") for ext in ("png", "pdf")]
