"""Cost of the DMFT solve versus the finite-width simulation of equal accuracy.

For a depth-2 muP tanh network on the teacher task (P = 16 points, 64 steps: P T >= 1000;
``--quick``: two-layer, P = 8, 20 steps), the DMFT limit is solved once
(time ``t_solve``; its Monte Carlo accuracy ``e_dmft`` = max over steps of the
relative standard error of the loss). Ensembles of finite networks are
simulated at growing widths; their deviation from the limit
``err(N) = max_t |log loss_N(t) - log loss_inf(t)|`` is fitted as ``C N^-p``
and their cost as ``t(N) = a N^2 + b`` (the per-step cost of a width-N
network is dominated by N x N matrix products). The width that matches the
DMFT's accuracy, ``N* = (C / e_dmft)^(1/p)``, and its extrapolated time give
the ratio ``t_sim(N*) / t_solve`` -- the reason to solve rather than simulate.

Usage: ``python benchmarks/solve_vs_simulate.py [--quick]``; writes
``benchmarks/out/solve_vs_simulate.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import limits
from limits.analysis.fits import fit_power_law
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def run(quick: bool) -> dict:
    depth, steps, lr, P = (1, 20, 0.5, 8) if quick else (2, 64, 0.5, 16)
    data = limits.datasets.teacher(P=P, D=8, seed=1)
    kw = dict(X=data.X, y=data.y, activation="tanh", gamma0=1.0, lr=lr, steps=steps)
    widths = [64, 128, 256] if quick else [128, 256, 512, 1024, 2048]
    seeds = 4 if quick else 32
    samples = 2048 if quick else 8192
    method = limits.dmft.MonteCarlo(samples=samples, dtype="float32")

    start = time.perf_counter()
    limit = limits.solve_dmft("mup", depth, **kw, method=method, progress=False)  # compilation included
    t_solve = time.perf_counter() - start
    loss_inf = np.asarray(limit.loss)
    stderr = np.asarray(limit.loss_stderr) if limit.loss_stderr is not None else np.zeros_like(loss_inf)
    e_dmft = float(np.max(stderr / loss_inf))

    rows = []
    for width in widths:
        limits.simulate("mup", depth, width, **kw, seeds=seeds, record=None, progress=False)  # compile
        start = time.perf_counter()
        sim = limits.simulate("mup", depth, width, **kw, seeds=seeds, record=None, progress=False)
        elapsed = time.perf_counter() - start
        err = float(np.max(np.abs(np.log(np.asarray(sim.loss)) - np.log(loss_inf))))
        rows.append({"width": width, "seconds": elapsed, "log_loss_error": err})

    N = np.array([r["width"] for r in rows], float)
    err = np.array([r["log_loss_error"] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    fit = fit_power_law(N, err)
    e_target = max(e_dmft, 1e-4)
    n_star = (fit.prefactor / e_target) ** (1.0 / -fit.exponent) if fit.exponent < 0 else float("inf")
    a, b = np.polyfit(N**2, secs, 1)
    t_star = float(a * n_star**2 + b) if np.isfinite(n_star) else float("inf")
    return {
        "quick": quick, "depth": depth, "steps": steps, "P": int(len(data.y)), "seeds": seeds, "samples": samples,
        "t_solve": t_solve, "e_dmft": e_dmft, "rows": rows,
        "error_exponent": fit.exponent, "error_exponent_ci": list(fit.ci),
        "width_for_equal_accuracy": n_star, "t_sim_equal_accuracy": t_star,
        "ratio_sim_over_solve": t_star / t_solve,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    res = run(args.quick)
    print(f"DMFT solve: {res['t_solve']:.2f} s, Monte Carlo accuracy (max rel. stderr of loss) {res['e_dmft']:.2e}")
    print(f"{'width':>8} {'sim seconds':>12} {'max |dlog loss|':>16}")
    for r in res["rows"]:
        print(f"{r['width']:>8} {r['seconds']:>12.3f} {r['log_loss_error']:>16.3e}")
    lo, hi = res["error_exponent_ci"]
    print(f"error ~ N^{res['error_exponent']:.2f} (95% CI [{lo:.2f}, {hi:.2f}])")
    print(f"width for the DMFT's accuracy: N* = {res['width_for_equal_accuracy']:.3g}; "
          f"simulation time there ~ {res['t_sim_equal_accuracy']:.3g} s; "
          f"ratio simulate/solve = {res['ratio_sim_over_solve']:.3g}")
    result_path("solve_vs_simulate.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
