"""Scaling exponents: predicted (limits.scaling.exponents) vs measured on the solved models and on finite-width
networks of the same models, and the cost of a long loss curve from the solved model vs the ensemble it replaces.

Rows (each a measured rate with its 95% interval; "agrees" is the issue's bar: within 0.05 of the prediction or
inside the interval, whichever is larger):

- time, solved: ``solve`` (random features at N = inf, deterministic equivalent; two-layer linear at N = inf,
  gamma0 = 1), fitted over a late window (``fit``).
- time, networks: ``simulate`` ensembles at finite width N, fitted before the width floor (t << N^alpha).
- width: the loss as t -> inf of random features. Solved: the floor of the deterministic equivalent. Networks: the
  exact t -> inf limit of gradient descent on each drawn network (the projection error ``1/2 (1 - b^T Q^-1 b)``),
  averaged over draws.
- data: ridgeless kernel regression (N = inf, t -> inf: the min-norm interpolant of P samples), averaged over draws
  ("ridgeless"), and the solved model with P samples after t >> P^alpha steps ("solved").
- compute: the compute-optimal frontier (C = N t) of a grid of solved random-feature curves (``fit(grid)``).
- a nonlinear MLP (muP, depth 2, ReLU, width 256) on the circle task, lazy (gamma0 = 0.05) vs rich: the measured time
  exponent of its train loss (an observation, no prediction for nonlinear networks).

    python benchmarks/scaling.py            # the full table, about 10 min
    python benchmarks/scaling.py --quick    # small sizes (CI)

Prints the tables and writes ``benchmarks/out/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import limits
from limits import scaling as sc
from limits.analysis.fits import fit_power_law
from limits.scaling.task import power_law_task
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def _row(quantity, source, alpha, beta, regime, predicted, fit, setting):
    lo, hi = fit.ci if hasattr(fit, "ci") else (math.nan, math.nan)
    measured = fit.exponent
    agrees = abs(measured - predicted) <= 0.05 or lo <= predicted <= hi
    return {"quantity": quantity, "source": source, "alpha": alpha, "beta": beta, "regime": regime,
            "predicted": predicted, "measured": measured, "ci": [lo, hi], "agrees": bool(agrees), "setting": setting}


def _pairs(cases, quick):
    """All cases, or the first one at --quick size (the CI smoke run)."""
    return cases[:1] if quick else cases


def time_rows(quick):
    rows = []
    steps = 1000 if quick else 100000
    for alpha, beta in _pairs([(1.5, 0.5), (2.0, 0.5), (2.0, 1.5), (3.0, 0.3)], quick):
        modes = None if quick else 10**6  # the solver's cost grows like log M: no truncation bias
        traj = sc.solve("random_features", alpha=alpha, beta=beta, lr=0.5, steps=steps, modes=modes)
        fit = sc.fit(traj, window=(steps / 100, steps))
        rows.append(_row("time", "solved", alpha, beta, "lazy", sc.exponents(alpha, beta).time, fit,
                         f"N=inf, M={traj.meta['modes']}, lr=0.5, t in [{steps // 100}, {steps}]"))
    rich_steps = 400 if quick else 20000
    # hard tasks need M >> k*(t) ~ (lr t)^(2/(alpha(1+beta))): the spectrum beyond M is a fraction (k*/M)^(alpha beta)
    # of the loss left, which steepens the slope (at alpha = 1.5, beta = 0.4 and M = 8000 it would be ~25%)
    for alpha, beta in _pairs([(2.0, 0.5), (3.0, 0.3), (2.0, 1.5)], quick):
        traj = sc.solve("two_layer_linear", alpha=alpha, beta=beta, gamma0=1.0, lr=0.1, steps=rich_steps,
                        modes=None if quick else 8000, progress=False)
        fit = sc.fit(traj, window=(rich_steps / 20, rich_steps / 2))
        rows.append(_row("time", "solved", alpha, beta, "rich", sc.exponents(alpha, beta, "rich").time, fit,
                         f"N=inf, M={traj.meta['modes']}, gamma0=1, lr=0.1, t in [{rich_steps // 20}, "
                         f"{rich_steps // 2}]"))
    # networks: fitted before the width floor (t << N^alpha) and, for the easy task, before the finite-width
    # transient N^-1 t^-(1 - 1/alpha) overtakes t^-beta (t << N)
    # (model, alpha, beta, richness, N, lr, steps, seeds, window); at alpha = 3 the transient overtakes t^-beta
    # only at t ~ N^(1/(beta - 1 + 1/alpha)) ~ 10^4 (at alpha = 2, beta = 1.5 it bends the slope by t ~ 100)
    cases = [("random_features", 2.0, 0.5, {}, 1024, 0.1, 3000, 8, (30, 1000)),
             ("random_features", 3.0, 1.2, {}, 1024, 0.5, 1000, 8, (20, 200)),
             ("two_layer_linear", 2.0, 0.5, {"gamma0": 1.0}, 1024, 0.1, 10000, 4, (1000, 10000))]
    for model, alpha, beta, kw, N, lr, sim_steps, seeds, window in _pairs(cases, quick):
        regime = "rich" if kw else "lazy"
        if quick:
            N, sim_steps, seeds, window = N // 8, 200, 2, (window[0] // 4 + 1, window[1] // 10)
        traj = sc.simulate(model, alpha=alpha, beta=beta, width=N, lr=lr, steps=sim_steps, seeds=seeds,
                           modes=4 * N, progress=False, **kw)  # the fewest modes allowed: setup costs N^2 M
        fit = sc.fit(traj, window=window)
        rows.append(_row("time", f"networks N={N}", alpha, beta, regime, sc.exponents(alpha, beta, regime).time, fit,
                         f"{seeds} seeds, M={traj.meta['modes']}, lr={lr}, t in {window}"))
    return rows


def _network_floor(task, N, draws, rng):
    """The t -> inf population loss of random features, per draw: 1/2 (1 - b^T Q^-1 b)."""
    out = []
    for _ in range(draws):
        B = rng.standard_normal((N, task.modes)) * np.sqrt(task.eigenvalues)
        Q, b = B @ B.T / N, B @ task.whitened_target / math.sqrt(N)
        out.append(0.5 * (1.0 - b @ np.linalg.solve(Q, b)))
    return np.mean(out), np.std(out, ddof=1) / math.sqrt(draws)


def _ridgeless(task, P, draws, rng):
    """The test loss of the min-norm interpolant of P samples (N = inf, t -> inf), averaged over draws."""
    out = []
    for _ in range(draws):
        X = rng.standard_normal((P, task.modes)) * np.sqrt(task.eigenvalues)
        w = X.T @ np.linalg.solve(X @ X.T, X @ task.target)
        e = task.target - w
        out.append(0.5 * e @ (task.eigenvalues * e))
    return np.mean(out), np.std(out, ddof=1) / math.sqrt(draws)


def floor_rows(quick):
    from limits.scaling import random_features as rf

    rows, rng = [], np.random.default_rng(0)
    widths = [8, 16, 32] if quick else [32, 64, 128, 256, 512]
    draws = 2 if quick else 12
    for alpha, beta in _pairs([(1.5, 0.5), (1.5, 1.5), (2.0, 3.0)], quick):
        predicted = sc.exponents(alpha, beta).width
        task = power_law_task(alpha, beta, 8 * widths[-1] if quick else 32 * widths[-1])
        modes = rf.quadrature_modes(power_law_task(alpha, beta, 10**6 if quick else 10**8))
        large = [10**3, 3 * 10**3, 10**4, 3 * 10**4, 10**5]  # the DE costs log M: asymptotic widths are cheap
        solved = [rf.width_floor(modes, n) for n in large]
        rows.append(_row("width", "solved", alpha, beta, "lazy", predicted, sc.DecayFit.of(fit_power_law(large, solved)),
                         "deterministic-equivalent floor, M=1e8, N=1e3..1e5"))
        measured = [_network_floor(task, n, draws, rng) for n in widths]
        fit = fit_power_law(widths, [m for m, _ in measured], [s for _, s in measured])
        rows.append(_row("width", "networks", alpha, beta, "lazy", predicted, sc.DecayFit.of(fit),
                         f"{draws} draws, M={task.modes}, N={widths[0]}..{widths[-1]}"))
    sizes = [8, 16, 32] if quick else [32, 64, 128, 256, 512]
    for alpha, beta in _pairs([(1.5, 0.5), (1.5, 1.5), (2.0, 3.0)], quick):
        task = power_law_task(alpha, beta, 8 * sizes[-1] if quick else 16 * sizes[-1])
        measured = [_ridgeless(task, P, draws, rng) for P in sizes]
        fit = fit_power_law(sizes, [m for m, _ in measured], [s for _, s in measured])
        rows.append(_row("data", "ridgeless", alpha, beta, "lazy", sc.exponents(alpha, beta).data, sc.DecayFit.of(fit),
                         f"{draws} draws, M={task.modes}, P={sizes[0]}..{sizes[-1]}"))
        steps = 100 if quick else int(40 * sizes[-1] ** alpha)  # t >> P^alpha / lr: the ridgeless limit
        solved = [sc.solve("random_features", alpha=alpha, beta=beta, data=P, lr=0.5, steps=steps,
                           modes=task.modes).loss[-1] for P in sizes]
        rows.append(_row("data", "solved", alpha, beta, "lazy", sc.exponents(alpha, beta).data,
                         sc.DecayFit.of(fit_power_law(sizes, solved)), f"N=inf, t={steps}, M={task.modes}, "
                                                              f"P={sizes[0]}..{sizes[-1]}"))
    return rows


def compute_rows(quick):
    rows = []
    widths = [8, 16, 32, 64] if quick else [16, 32, 64, 128, 256, 512, 1024, 2048]
    steps = 1000 if quick else 100000
    for alpha, beta in _pairs([(1.5, 0.5), (2.0, 1.5)], quick):
        grid = {n: sc.solve("random_features", alpha=alpha, beta=beta, width=n, lr=0.5, steps=steps) for n in widths}
        frontier = sc.fit(grid)
        e = sc.exponents(alpha, beta)
        for name, predicted, fit in [("compute", e.compute, frontier.compute),
                                     ("width_compute", e.width_compute, frontier.width_compute),
                                     ("time_compute", e.time_compute, frontier.time_compute)]:
            rows.append(_row(name, "solved", alpha, beta, "lazy", predicted, fit,
                             f"N={widths[0]}..{widths[-1]}, t<={steps}, {frontier.budgets.size} budgets"))
    return rows


def nonlinear_rows(quick):
    width, P, steps, seeds = (16, 16, 20, 1) if quick else (256, 512, 2000, 2)
    data = limits.datasets.circle_task(P, P, beta=0.5, capacity=2.0, modes=128)
    rows = []
    for gamma0, lr in ((0.05, 0.2), (2.0, 0.05)):  # the rich network needs a smaller lr to stay stable
        traj = limits.simulate("mup", 2, width, X=data.X, y=data.y, activation="relu", gamma0=gamma0, lr=lr,
                               steps=steps, seeds=seeds, record=(), progress=False)
        fit = sc.fit(traj, window=(max(1, steps / 20), steps))
        rows.append({"quantity": "time", "source": f"muP ReLU MLP depth 2, N={width}, circle task P={P}",
                     "alpha": 2.0, "beta": 0.5, "regime": f"gamma0={gamma0}", "lr": lr, "measured": fit.exponent,
                     "ci": list(fit.ci), "window": list(fit.window), "lazy_prediction_for_capacity_2": 0.5,
                     "rich_prediction": 2 / 3})
    return rows


def cost_rows(quick):
    steps, N, seeds = (300, 32, 2) if quick else (100000, 256, 32)
    args = dict(alpha=1.5, beta=0.5, width=N, lr=0.5, steps=steps)
    sc.simulate("random_features", seeds=seeds, progress=False, **(args | {"steps": min(steps, 1000)}))  # compile
    t0 = time.perf_counter()
    solved = sc.solve("random_features", **args)
    t_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = sc.simulate("random_features", seeds=seeds, progress=False, **args)
    t_sim = time.perf_counter() - t0
    late = slice(steps // 10, steps + 1)
    rel_se = float(np.median(sim.loss_stderr[late] / sim.loss[late]))
    dev = float(np.median(np.abs(solved.loss[late] / sim.loss[late] - 1)))
    return [{"model": "random_features", "steps": steps, "width": N, "solve_s": t_solve, "simulate_s": t_sim,
             "seeds": seeds, "ratio": t_sim / t_solve, "ensemble_rel_stderr": rel_se,
             "solved_vs_ensemble_rel_dev": dev}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", default=str(result_path("scaling.json")))
    args = parser.parse_args()
    rows = time_rows(args.quick) + floor_rows(args.quick) + compute_rows(args.quick)
    print(f"{'quantity':<14}{'source':<18}{'alpha':>6}{'beta':>6}{'regime':>7}{'pred':>8}{'measured':>10}"
          f"{'95% CI':>18}  agrees")
    for r in rows:
        ci = f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        print(f"{r['quantity']:<14}{r['source']:<18}{r['alpha']:>6}{r['beta']:>6}{r['regime']:>7}{r['predicted']:>8.3f}"
              f"{r['measured']:>10.3f}{ci:>18}  {'yes' if r['agrees'] else 'NO'}", flush=True)
    nonlinear = nonlinear_rows(args.quick)
    for r in nonlinear:
        print(f"nonlinear {r['regime']}: time exponent {r['measured']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] "
              f"(kernel theory 0.5 for capacity 2, rich 0.667)")
    cost = cost_rows(args.quick)
    for c in cost:
        print(f"one {c['steps']}-step curve, N={c['width']}: solve {c['solve_s']:.2f} s, simulate {c['seeds']} seeds "
              f"{c['simulate_s']:.2f} s (ratio {c['ratio']:.1f}); ensemble rel. stderr {c['ensemble_rel_stderr']:.3f}, "
              f"solved vs ensemble {c['solved_vs_ensemble_rel_dev']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": {"quick": args.quick, "note": "2 shared CPU cores; compare ratios within a run"},
                               "exponents": rows, "nonlinear": nonlinear, "cost": cost}, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
