"""Neural scaling laws of the solvable models (Bordelon, Atanasov & Pehlevan, arXiv 2402.01092 Fig. 1-2 and
arXiv 2409.17858 Fig. 1-3), computed with ``limits.scaling``.

Three figures:

- ``scaling_loss_curves``: population loss vs step for several widths, lazy (random features) and rich (two-layer
  linear, gamma0 = 1), on a hard (beta = 0.5) and an easy (beta = 1.5) task with alpha = 2. Lines: the solved models
  (random features at N = 64, 256, 1024 and infinity; the two-layer model at N = infinity); markers: finite-width
  ensembles (``simulate``) of the same networks; dashed: the predicted slope t^-time.
- ``scaling_compute_frontier``: the random-feature loss vs compute C = N t for a grid of widths (hard task, alpha =
  1.5, beta = 0.5), the compute-optimal frontier found by ``fit(grid)``, its fitted exponent and the prediction.
- ``scaling_chi``: the time exponent vs beta at alpha = 2: lazy beta and rich chi(beta) = beta max(1, 2/(1+beta))
  (lines) with the exponents measured on the solved models (points with intervals).
"""

from pathlib import Path

import numpy as np

from limits import scaling as sc
from limits.plotting import finish, new_figure, save


def _guide(ax, t, y0, rate, color):
    ax.plot(t, y0 * (t / t[0]) ** -rate, "--", color=color, lw=0.9, alpha=0.7)


def _curves(out: Path, quick: bool) -> list[Path]:
    alpha = 2.0
    steps, sim_steps, seeds = (400, 200, 2) if quick else (20000, 3000, 8)
    widths = [32, 128] if quick else [64, 256, 1024]
    fig, axes = new_figure(2, 2, size=(4.4, 3.5))
    t = np.arange(1, steps + 1)
    for col, beta in enumerate((0.5, 1.5)):
        for row, regime in enumerate(("lazy", "rich")):
            ax, rate = axes[row, col], sc.exponents(alpha, beta, regime).time
            if regime == "lazy":
                for n in [*widths, None]:
                    traj = sc.solve("random_features", alpha=alpha, beta=beta, width=n, lr=0.2, steps=steps)
                    ax.plot(t, traj.loss[1:], lw=1.2, label=f"solved N = {n or 'inf'}")
                sim = sc.simulate("random_features", alpha=alpha, beta=beta, width=widths[1], lr=0.2, steps=sim_steps,
                                  seeds=seeds, progress=False)
            else:
                traj = sc.solve("two_layer_linear", alpha=alpha, beta=beta, gamma0=1.0, lr=0.1, steps=steps,
                                modes=None if quick else 8000, progress=False)
                ax.plot(t, traj.loss[1:], lw=1.2, color="k", label="solved N = inf")
                lazy = sc.solve("random_features", alpha=alpha, beta=beta, lr=0.1, steps=steps)
                ax.plot(t, lazy.loss[1:], lw=1.0, color="0.6", label="lazy N = inf")
                sim = sc.simulate("two_layer_linear", alpha=alpha, beta=beta, width=widths[-1], gamma0=1.0, lr=0.1,
                                  steps=sim_steps, seeds=seeds, progress=False)
            ts = np.unique(np.geomspace(1, sim_steps, 25).astype(int))
            ax.errorbar(ts, sim.loss[ts], yerr=sim.loss_stderr[ts], fmt="o", ms=3, color="C3", capsize=1.5,
                        label=f"networks N = {sim.meta['width']:g} ({seeds} seeds)")
            _guide(ax, t[steps // 100:], 1.5 * traj.loss[steps // 100], rate, "C7")
            ax.set_xscale("log")
            ax.set_yscale("log")
            finish(ax, "step t", "population loss",
                   f"{regime}, beta = {beta} ({sc.task_difficulty(alpha, beta)}): slope -{rate:.3g}")
    return [save(fig, out / f"scaling_loss_curves.{ext}") for ext in ("png", "pdf")]


def _frontier(out: Path, quick: bool) -> list[Path]:
    alpha, beta = 1.5, 0.5
    widths = [8, 16, 32, 64] if quick else [16, 32, 64, 128, 256, 512, 1024, 2048]
    steps = 1000 if quick else 100000
    grid = {n: sc.solve("random_features", alpha=alpha, beta=beta, width=n, lr=0.5, steps=steps) for n in widths}
    frontier = sc.fit(grid)
    predicted = sc.exponents(alpha, beta)
    fig, axes = new_figure(1, size=(5.2, 4.0))
    ax = axes[0, 0]
    for n, traj in grid.items():
        ax.plot(n * np.arange(1, steps + 1), traj.loss[1:], lw=1.0, label=f"N = {n}")
    C = frontier.budgets
    ax.plot(C, frontier.best_loss, "ko", ms=3, label="compute-optimal")
    fit = frontier.compute
    ax.plot(C, fit.predict(C), "k-", lw=1.2, label=f"fit: C^-{fit.exponent:.3f}")
    ax.plot(C, frontier.best_loss[0] * (C / C[0]) ** -predicted.compute, "r--", lw=1.0,
            label=f"predicted: C^-{predicted.compute:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish(ax, "compute C = N t", "population loss",
           f"random features, alpha = {alpha}, beta = {beta}\nN* ~ C^{frontier.width_compute.exponent:.2f} "
           f"(pred. {predicted.width_compute:.2f})")
    return [save(fig, out / f"scaling_compute_frontier.{ext}") for ext in ("png", "pdf")]


def _chi(out: Path, quick: bool) -> list[Path]:
    alpha = 2.0
    betas = [0.5, 1.5] if quick else [0.2, 0.35, 0.5, 0.7, 0.85, 1.2, 1.6]
    steps, rich_steps = (1000, 600) if quick else (100000, 10000)
    fig, axes = new_figure(1, size=(5.0, 4.0))
    ax = axes[0, 0]
    b = np.linspace(0.05, 2.0, 200)
    ax.plot(b, b, color="C0", label="lazy: beta")
    ax.plot(b, b * np.maximum(1, 2 / (1 + b)), color="C1", label="rich: chi(beta) = beta max(1, 2/(1+beta))")
    for regime, color in (("lazy", "C0"), ("rich", "C1")):
        rates, los, his = [], [], []
        for beta in betas:
            if regime == "lazy":
                traj = sc.solve("random_features", alpha=alpha, beta=beta, lr=0.5, steps=steps,
                                modes=None if quick else 10**6)
                f = sc.fit(traj, window=(steps / 100, steps))
            else:
                traj = sc.solve("two_layer_linear", alpha=alpha, beta=beta, gamma0=1.0, lr=0.1, steps=rich_steps,
                                modes=None if quick else 4000, progress=False)
                f = sc.fit(traj, window=(rich_steps / 20, rich_steps / 2))
            rates.append(f.exponent), los.append(f.exponent - f.ci[0]), his.append(f.ci[1] - f.exponent)
        ax.errorbar(betas, rates, yerr=[los, his], fmt="o", color=color, ms=4, capsize=2,
                    label=f"measured ({regime}, solved)")
    ax.axvline(1.0, color="0.7", lw=0.8)
    finish(ax, "source exponent beta", "time exponent", f"alpha = {alpha}: feature learning helps only hard tasks")
    return [save(fig, out / f"scaling_chi.{ext}") for ext in ("png", "pdf")]


def make(out_dir: Path, quick: bool = False) -> list[Path]:
    out = Path(out_dir)
    return _curves(out, quick) + _frontier(out, quick) + _chi(out, quick)
