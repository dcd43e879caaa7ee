"""The width-N theory (``solve_dmft(..., width=N)``) against finite-width ensembles, and what it costs.

For each case: the predicted ``N Cov(f)`` (docs/theory/finite_width.md) and the measured one from ``limits.simulate``
ensembles at several widths: the ratio of the total variance (trace summed over the trajectory) and the relative
Frobenius error over the full (T+1, P, P) array, with the expected sampling error of the measurement
``sqrt((1 + (tr C)^2 / |C|_F^2) / S)``. Then the cost: the width-N solve against the infinite-width solve of the same
problem, both compiled (second call), same run. Writes ``finite_width_theory.json``.

    python benchmarks/finite_width_theory.py           # P = 6, 20 steps, N = 128..1024, 2048-4096 seeds (~40 min)
    python benchmarks/finite_width_theory.py --quick   # two-layer tanh, P = 4, 5 steps, N = 128, 256, 256 seeds
    python benchmarks/finite_width_theory.py --case "depth-2 tanh"   # one case of the full run
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np

import limits
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

FULL = dict(P=6, steps=20, lr=0.5, widths=(128, 256, 512, 1024), seeds=4096,
            cases={"two-layer tanh": (1, "tanh"), "two-layer erf": (1, "erf"), "two-layer relu": (1, "relu"),
                   "two-layer linear": (1, "linear"),
                   "depth-2 tanh": (2, "tanh", dict(P=4, steps=5, widths=(128, 256, 512))),
                   "depth-3 tanh": (3, "tanh", dict(P=3, steps=3, widths=(128, 256, 512))),
                   "depth-2 linear": (2, "linear", dict(seeds=2048)),
                   "depth-3 linear": (3, "linear", dict(seeds=2048, P=8, data_seed=1))})
"""Cases: ``(depth, activation[, overrides of the config])``. Depth-2 tanh runs on P = 4, 5 steps and depth-3 tanh on
P = 3, 3 steps: their width-N theory costs O(n^5) in the grid n = (steps+1) P (docs/theory/finite_width.md section 6;
n = 24 and 12 here, 126 for the others), and their ensembles at N = 1024 would take half an hour. Depth-3 linear runs on ``teacher(P=8, seed=1)``:
on ``teacher(P=6, seed=0)`` at lr 0.5 it trains at the edge of stability (``lr lambda_max / P ~ 2.05``), where
``N Cov f`` approaches the O(1/N) limit only at N of 10^4-10^5 (docs/theory/finite_width.md section 5)."""
QUICK = dict(P=4, steps=5, lr=0.5, widths=(128, 256), seeds=256, cases={"two-layer tanh": (1, "tanh")})


def measured(case, N, data, cfg):
    """``N Cov(f)`` (T+1, P, P) over ``cfg['seeds']`` networks of width ``N``."""
    depth, act = case[:2]
    tr = limits.simulate("mup", depth, width=N, X=data.X, y=data.y, activation=act, lr=cfg["lr"], steps=cfg["steps"],
                         seeds=cfg["seeds"], progress=False, record=())
    return tr.prediction_cov * N


def timed(fn):
    fn()  # compile
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_case(name, case, cfg):
    depth, act = case[:2]
    cfg = {**cfg, **(case[2] if len(case) > 2 else {})}
    data = limits.datasets.teacher(P=cfg["P"], D=8, seed=cfg.get("data_seed", 0))
    kw = dict(X=data.X, y=data.y, activation=act, lr=cfg["lr"], steps=cfg["steps"], progress=False, record=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theory, t_width = timed(lambda: limits.solve_dmft("mup", depth, 512, **kw))
    if not theory.meta["finite_width"]["corrections"]:
        print(f"{name:18s} not covered: {theory.meta['finite_width']['not_covered']}")
        return {"covered": False, "why": theory.meta["finite_width"]["not_covered"]}
    _, t_inf = timed(lambda: limits.solve_dmft("mup", depth, **kw))
    sigma = theory.prediction_cov * 512
    rows = []
    for N in cfg["widths"]:
        start = time.perf_counter()
        C = measured(case, N, data, cfg)
        t_sim = time.perf_counter() - start
        trace = np.trace(C, axis1=1, axis2=2).sum() / np.trace(sigma, axis1=1, axis2=2).sum()
        frob = np.linalg.norm(C - sigma) / np.linalg.norm(sigma)
        noise = math.sqrt((1 + np.trace(sigma, axis1=1, axis2=2).sum() ** 2 / np.sum(sigma**2) / (cfg["steps"] + 1))
                          / cfg["seeds"])
        rows.append({"width": N, "trace_ratio": float(trace), "frobenius": float(frob), "sampling_error": noise,
                     "ensemble_s": t_sim})
        print(f"{name:18s} N={N:5d}  N tr Cov measured/predicted {trace:6.3f}  rel. Frobenius {frob:6.3f}"
              f"  (sampling ~{noise:.3f})")
    t_ens = rows[-1]["ensemble_s"]
    print(f"{name:18s} cost: width-N solve {t_width:.2f} s, infinite-width solve {t_inf:.2f} s, ratio {t_width / t_inf:.2f};"
          f" the ensemble at N={cfg['widths'][-1]} ({cfg['seeds']} seeds) {t_ens:.1f} s, {t_ens / t_width:.0f}x the theory")
    return {"covered": True, "rows": rows, "predicted_trace": float(np.trace(sigma, axis1=1, axis2=2).sum()),
            "width_solve_s": t_width, "infinite_solve_s": t_inf, "cost_ratio": t_width / t_inf,
            "ensemble_over_theory": t_ens / t_width,
            "warnings": [str(w.message) for w in caught]}


def relu_mean_shift(seeds=32768, pairs=((64, 256), (128, 512)), path_seeds=(0, 1, 2)):
    """The predicted ReLU mean shift ``N (E f_N - f_inf)`` (two layers, FULL's problem) against ensemble differences
    ``(E f_a - E f_b) / (1/a - 1/b)`` for each pair of widths, and their Richardson combination (the two pairs'
    O(1/N^2) biases differ by a factor 2); relative norms over t >= 1 (docs/theory/finite_width.md section 4)."""
    data = limits.datasets.teacher(P=FULL["P"], D=8, seed=0)
    kw = dict(X=data.X, y=data.y, activation="relu", lr=FULL["lr"], steps=FULL["steps"], progress=False)
    mean = {N: limits.simulate("mup", 1, width=N, seeds=seeds, record=(), **kw).predictions_per_seed.mean(0)
            for pair in pairs for N in pair}
    measured = {f"{a}/{b}": (mean[a] - mean[b]) / (1 / a - 1 / b) for a, b in pairs}
    first, second = measured.values()
    measured["richardson"] = 2 * second - first
    out = {}
    for seed in path_seeds:
        inf = limits.solve_dmft("mup", 1, record=None, seed=seed, **kw).predictions
        shift = (limits.solve_dmft("mup", 1, 256, record=None, seed=seed, **kw).predictions - inf) * 256
        out[seed] = {k: float(np.linalg.norm(shift[1:] - m[1:]) / np.linalg.norm(m[1:])) for k, m in measured.items()}
        print(f"relu mean shift, path seed {seed}: relative error " +
              ", ".join(f"{k} {v:.3f}" for k, v in out[seed].items()))
    return {"seeds": seeds, "relative_error": out}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", help="run only this case (e.g. 'depth-2 tanh'); writes finite_width_theory_<case>.json")
    parser.add_argument("--mean-shift", action="store_true",
                        help="only the ReLU mean shift against ensemble differences (32768 networks per width)")
    args = parser.parse_args(argv)
    if args.mean_shift:
        path = result_path("finite_width_mean_shift.json")
        path.write_text(json.dumps(relu_mean_shift(), indent=1))
        print(f"wrote {path}")
        return
    cfg = QUICK if args.quick else FULL
    cases = cfg["cases"]
    if args.case:
        if args.case not in FULL["cases"]:
            parser.error(f"unknown case {args.case!r}; the cases are {', '.join(FULL['cases'])}")
        cases = {args.case: FULL["cases"][args.case]}
    out = {name: run_case(name, case, cfg) for name, case in cases.items()}
    suffix = "_" + args.case.replace(" ", "_") if args.case else ""
    path = result_path(f"finite_width_theory{suffix}.json")
    path.write_text(json.dumps({"config": {k: v for k, v in cfg.items() if k != "cases"}, "cases": out}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
