"""Bordelon & Pehlevan 2023 (arXiv 2304.03408), Fig. 2 in spirit: finite-width prediction variance of a two-layer
mean-field network over training, N Var f(t) at several widths collapsing onto the DMFT propagator.

A two-layer tanh muP network is trained on the teacher task. Left: ``N tr Cov(f(t)) / P`` measured over seeds at
several widths (markers) and the width-N theory of :func:`limits.solve_dmft` (line; docs/theory/finite_width.md):
the curves of different N collapse onto one. Right: the richness dependence at the last step of the prediction
variance ``N tr Cov(f(T)) / P`` and of the NTK's relative variance ``N Var NTK / NTK^2`` (mean over entries),
predicted (lines) and measured (markers): richer training (larger gamma0) has smaller final fluctuations (BP23
Fig. 3).
"""

from pathlib import Path

import numpy as np

import limits
from limits.plotting import finish, new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    steps, lr = (5 if quick else 30), 0.5
    widths = (128, 512) if quick else (128, 256, 512, 1024)
    seeds = 128 if quick else 4096
    gammas = (0.5, 2.0) if quick else (0.25, 0.5, 1.0, 1.5, 2.0)
    data = limits.datasets.teacher(P=6, D=8, seed=0)
    kw = dict(X=data.X, y=data.y, activation="tanh", lr=lr, steps=steps, progress=False)
    fig, axes = new_figure(2, size=(4.4, 3.6))
    ax_var, ax_gamma = axes[0]
    t = np.arange(steps + 1)
    theory = limits.solve_dmft("mup", 1, widths[-1], **kw, record=None)
    P = data.X.shape[0]
    ax_var.plot(t, np.trace(theory.prediction_cov, axis1=1, axis2=2) * widths[-1] / P, "k-", label="theory (DMFT)")
    for i, N in enumerate(widths):
        sim = limits.simulate("mup", 1, width=N, **kw, seeds=seeds, record=())
        ax_var.plot(t, np.trace(sim.prediction_cov, axis1=1, axis2=2) * N / P, "o", ms=4, mfc="none", color=f"C{i}",
                    label=f"N={N}")
    finish(ax_var, "step t", r"$N\,\mathrm{tr\,Cov}(f(t))/P$", "prediction variance")
    N = widths[-1]
    rows = []
    for g in gammas:
        th = limits.solve_dmft("mup", 1, N, **kw, gamma0=g, record="ntk")
        sim = limits.simulate("mup", 1, width=N, **kw, gamma0=g, seeds=seeds, record="ntk")
        K2 = np.mean(th.ntk[-1] ** 2)
        rows.append((np.trace(th.prediction_cov[-1]) * N / P, np.trace(sim.prediction_cov[-1]) * N / P,
                     np.mean(th.ntk_var[-1]) * N / K2, np.mean(sim.ntk_per_seed[:, -1].var(0)) * N / K2))
    rows = np.array(rows)
    for j, (name, color) in enumerate(((r"$N\,\mathrm{tr\,Cov}(f(T))/P$", "C0"), (r"$N\,\mathrm{Var\,NTK}(T)/\mathrm{NTK}^2$", "C3"))):
        ax_gamma.plot(gammas, rows[:, 2 * j], "-", color=color, label=f"{name} theory")
        ax_gamma.plot(gammas, rows[:, 2 * j + 1], "o", ms=5, mfc="none", color=color, label=f"N={N}")
    ax_gamma.set_yscale("log")
    finish(ax_gamma, r"richness $\gamma_0$", "final fluctuations", "richness reduces them")
    return [save(fig, out / f"finite_width_variance.{ext}") for ext in ("png", "pdf")]
