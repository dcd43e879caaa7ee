"""Finite depth L -> infinite depth for the residual DMFT (linear: exact; tanh: Monte Carlo).

Linear (depth-mup and completep): the deterministic DMFT at depths L = 2..32 against the layer-time
ODEs (``depth=math.inf``): ``max_t,mu |f_L - f_inf|`` per depth and the fitted rate (expected O(1/L)).
Tanh (depth-mup; P = 4, D = 8, lr 0.5, 6 steps, 4096 paths): the finite-depth Monte Carlo DMFT at
L = 16, 8, 4, 2, 1 on coupled sources (the finite-depth DMFT is the Euler-Maruyama scheme of the
layer-time SDE; coupled, the differences between depths carry no sampling noise of their own), the
limit from the Richardson combination of L = 16/8/4, ``max_t |loss_L - loss_inf| / loss(0)`` per depth
and the fitted rate (expected O(1/L)); then ``solve_dmft(depth=math.inf, depth_steps=4 | 8)`` on other
sources against that limit. Also the linear layer-time Monte Carlo solver against the ODEs (the rung
it is validated on). Writes ``benchmarks/out/resnet_depth_limit.json``.

    python benchmarks/resnet_depth_limit.py            # ~7 min (tanh seeds 0 1)
    python benchmarks/resnet_depth_limit.py --quick    # linear only at small sizes, plus one small tanh limit
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import limits
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def run(quick: bool) -> dict:
    rng = np.random.default_rng(1)
    P, D = 3, 8
    X = rng.standard_normal((P, D))
    y = rng.standard_normal(P)
    y /= np.sqrt(np.mean(y**2))
    depths = [2, 4] if quick else [2, 4, 8, 16, 32]
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.2, steps=4 if quick else 8, progress=False)
    out = {}
    for name in ("depth-mup",) if quick else ("depth-mup", "completep"):
        start = time.perf_counter()
        inf = limits.solve_dmft(name, math.inf, depth_steps=8 if quick else 64, **kw)
        t_inf = time.perf_counter() - start
        errs = [float(np.max(np.abs(limits.solve_dmft(name, L, **kw).predictions - inf.predictions))) for L in depths]
        rate = float(np.polyfit(np.log(depths[1:]), np.log(errs[1:]), 1)[0])
        out[name] = {"depths": depths, "max_abs_f_error": errs, "fitted_rate": rate, "seconds_inf": t_inf}
    return out


def coupled_depths(K: int, seed: int, *, data, lr, steps, samples) -> dict:
    """Tanh depth-mup DMFT at L = K, K/2, .., 1 blocks on coupled sources
    (:func:`limits.dmft.layer_time.coupled_levels`; the finite-depth DMFT is the Euler-Maruyama scheme of the
    layer-time SDE, so the differences between these levels carry no sampling noise of their own: they
    measure the depth convergence itself): {L: loss (steps+1,)}."""
    from limits.dmft import layer_time

    levels = [K >> i for i in range(K.bit_length())]
    limit = limits.param("depth-mup", 4).dmft_limit(infinite_depth=True)
    Kx = data.X @ data.X.T / data.X.shape[1]
    level = layer_time.monte_carlo_level("tanh", Kx_all=Kx, y_all=data.y, train_mask=np.ones(len(data.y)),
                                         steps=steps, lr=lr, samples=samples, seed=seed, qmc=True, stein_jitter=1e-4,
                                         dtype="float64")
    return {L: 0.5 * np.mean((sol.f - data.y) ** 2, axis=1) for L, _, sol in layer_time.coupled_levels(limit, levels, level)}


def run_tanh(quick: bool, seeds) -> dict:
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    steps, samples = (3, 512) if quick else (6, 4096)
    kw = dict(X=d.X, y=d.y, gamma0=1.0, lr=0.5, steps=steps, progress=False)
    method = limits.dmft.MonteCarlo(samples=samples)
    out = {"linear_monte_carlo_vs_ode": [], "tanh": []}
    ode = limits.solve_dmft("depth-mup", math.inf, activation="linear", **dict(kw, lr=0.25))
    from limits.dmft.layer_time import richardson_weights

    for K in ([4] if quick else [4, 8]):
        mc = limits.solve_dmft("depth-mup", math.inf, activation="linear", method=method, depth_steps=K,
                               **dict(kw, lr=0.25))
        rel = lambda v: float(np.max(np.abs(v - ode.loss)) / ode.loss[0])  # noqa: E731
        out["linear_monte_carlo_vs_ode"].append({"depth_steps": K, "loss_err_over_L0": rel(mc.loss),
                                                 "plain_K_step_err_over_L0": rel(mc.diagnostics["loss_depth_steps"][K]),
                                                 "seconds": mc.meta["wall_s"]})
    K_fine = 4 if quick else 16
    for seed in ([] if quick else seeds):  # the coupled-levels table is the full run's (its quick size only compiles)
        lv = coupled_depths(K_fine, seed, data=d, lr=0.5, steps=steps, samples=samples)
        ref = sum(w * lv[K_fine >> i] for i, w in enumerate(richardson_weights(3)))
        L0 = ref[0]
        depths = sorted(lv)
        errs = [float(np.max(np.abs(lv[L] - ref)) / L0) for L in depths]
        fit = [L for L in depths if L <= K_fine // 2]
        row = {"seed": seed, "K_fine": K_fine, "depths": depths, "err_over_L0": errs,
               "fitted_rate": float(np.polyfit(np.log(fit), np.log([errs[depths.index(L)] for L in fit]), 1)[0]),
               "loss_inf": ref.tolist(), "solver": {}}
        for K in ([4] if quick else [4, 8]):
            tr = limits.solve_dmft("depth-mup", math.inf, activation="tanh", depth_steps=K, seed=seed + 100,
                                   method=method, **kw)
            row["solver"][K] = {"err_over_L0": float(np.max(np.abs(tr.loss - ref)) / L0),
                                "stderr_bound_over_L0": float(np.max(tr.loss_stderr) / L0),
                                "seconds": tr.meta["wall_s"]}
        out["tanh"].append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="tanh source seeds")
    args = parser.parse_args(argv)
    res = run(args.quick)
    for name, r in res.items():
        print(f"{name}: infinite-depth solve {r['seconds_inf']:.2f} s")
        print(f"  {'L':>4} {'max|f_L - f_inf|':>18}")
        for L, e in zip(r["depths"], r["max_abs_f_error"]):
            print(f"  {L:>4} {e:>18.3e}")
        print(f"  fitted rate: L^{r['fitted_rate']:.2f} (theory L^-1)")
    nl = run_tanh(args.quick, args.seeds[:1] if args.quick else args.seeds)
    print("linear, layer-time Monte Carlo vs ODE: max_t |loss - loss_ode| / loss(0)")
    for r in nl["linear_monte_carlo_vs_ode"]:
        print(f"  depth_steps {r['depth_steps']}: extrapolated {100 * r['loss_err_over_L0']:.2f}%, plain "
              f"{r['depth_steps']}-step {100 * r['plain_K_step_err_over_L0']:.2f}%, {r['seconds']:.0f} s")
    print("tanh depth-mup, finite L on coupled sources: max_t |loss_L - loss_inf| / loss(0), loss_inf from the "
          "Richardson combination of the three finest levels")
    for r in nl["tanh"]:
        cols = " ".join(f"L={L}: {100 * e:5.2f}%" for L, e in zip(r["depths"], r["err_over_L0"]))
        print(f"  seed {r['seed']}: {cols}  rate L^{r['fitted_rate']:.2f} (L <= {r['K_fine'] // 2})")
        for K, v in r["solver"].items():
            print(f"    solve_dmft(depth=inf, depth_steps={K}) on other sources: {100 * v['err_over_L0']:.2f}% "
                  f"(Monte Carlo bound {100 * v['stderr_bound_over_L0']:.2f}%), {v['seconds']:.0f} s")
    res["nonlinear"] = nl
    result_path("resnet_depth_limit.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
