"""Bordelon & Pehlevan 2025 (arXiv 2502.02531), deep linear networks from random
initialization: dynamics versus width, "wider is better" in muP, and the
shifting learning-rate optimum in the NTK parametrization.

Depth-3 linear networks on the teacher task. Left: muP loss curves at growing
widths (:func:`limits.simulate`) approach the deterministic DMFT limit
(:func:`limits.solve_dmft`, algebraic kernel equations, no sampling) from
above: wider is better. Right: loss after a fixed number of steps versus
learning rate in NTK parametrization with the richness gamma = gamma0/sqrt(N)
(gamma0 = 1 here): the optimum moves with width, while in muP it would not.
"""

from pathlib import Path

import numpy as np

import limits
from limits.plotting import finish, new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    depth, steps, lr = 3, (20 if quick else 100), 0.2
    widths = [32, 128] if quick else [32, 64, 128, 256, 512]
    seeds = 2 if quick else 16
    data = limits.datasets.teacher(P=8, D=8, seed=2)
    kw = dict(X=data.X, y=data.y, activation="linear", gamma0=1.0, steps=steps)
    fig, axes = new_figure(2, size=(4.4, 3.6))
    ax, ax_lr = axes[0]
    limit = limits.solve_dmft("mup", depth, **kw, lr=lr, progress=False)
    t = np.arange(steps + 1)
    for i, n in enumerate(widths):
        sim = limits.simulate("mup", depth, n, **kw, lr=lr, seeds=seeds, record=None, progress=False)
        ax.plot(t, sim.loss, color=f"C{i}", label=f"N={n}")
    ax.plot(t, limit.loss, "k--", label="DMFT (N=inf)")
    ax.set_yscale("log")
    finish(ax, "step", "train loss", "muP: wider is better")
    lrs = np.geomspace(0.02, 2.0, 5 if quick else 11)
    res = limits.transfer("ntk", depth, widths, lrs, X=data.X, y=data.y, activation="linear", steps=steps,
                          seeds=seeds, limit=False, progress=False)
    for i, n in enumerate(res.widths):
        ax_lr.plot(res.lrs, res.losses[i], "o-", ms=3, color=f"C{i}", label=f"N={int(n)}")
        if np.isfinite(res.optima[i]):
            ax_lr.axvline(res.optima[i], color=f"C{i}", lw=0.7, ls=":")
    ax_lr.set_xscale("log")
    ax_lr.set_yscale("log")
    finish(ax_lr, "learning rate", f"train loss after {steps} steps", f"NTK: lr* ~ N^{res.exponent:+.2f}")
    return [save(fig, out / f"deep_linear.{ext}") for ext in ("png", "pdf")]
