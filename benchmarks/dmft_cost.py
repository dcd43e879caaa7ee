"""Cost of ``limits.solve_dmft`` versus P, steps, samples and depth.

Each row varies one factor from a base case (two-layer tanh muP, teacher data)
and reports wall time (after a compile run of the same shapes), fixed-point
iterations and seconds per iteration (``--quick``: tiny sizes, compile time included), so the scaling in the docstring of
``solve_dmft`` (paths O(L S n^2), response functions O((L-1) R n^3),
n = (steps+1) P) can be read off. The ``responses`` rows time the depth-2 case with both
estimators of the response functions in the same run (Stein's lemma, the default,
O(S n^2 + n^3), against per-path tangent solves, O(R n^3)); the ratio is the speed-up.
The ``speed:`` rows time the solver's speed options against the plain iteration on one
problem in the same run: the causal windows solved as their own smaller problems
(``window_problems``), and single precision on top (``dtype="float32"``).
``--large`` adds depth 2, P = 16, 100 steps, 16384 samples in float32 (S/n = 10, a few minutes);
``--target`` adds the issue's target size (depth 2, P = 16, 200 steps) with the 32768 paths its
n = 3216 needs (S/n = 10; with ~10^4 paths the iteration stalls, docs/theory/dmft.md section 7),
float32, tens of minutes. Usage: ``python benchmarks/dmft_cost.py [--quick] [--large] [--target]``;
writes ``benchmarks/out/dmft_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import limits


def _time(depth: int, P: int, steps: int, samples: int, activation: str = "tanh", warm: bool = True,
          responses: str = "stein", dtype: str = "float64", window_problems="auto") -> dict:
    data = limits.datasets.teacher(P=P, D=4, seed=0)
    kw = dict(X=data.X, y=data.y, activation=activation, lr=0.5, steps=steps, samples=samples, progress=False,
              responses=responses, dtype=dtype, window_problems=window_problems)
    if warm:
        limits.solve_dmft("mup", depth, **kw)  # compile these shapes
    start = time.perf_counter()
    traj = limits.solve_dmft("mup", depth, **kw)
    wall = time.perf_counter() - start
    its = int(traj.diagnostics.get("iterations", 0)) or 1
    return {"depth": depth, "P": P, "steps": steps, "samples": samples, "activation": activation,
            "responses": responses, "dtype": dtype, "window_problems": window_problems, "seconds": wall,
            "iterations": its, "seconds_per_iteration": wall / its, "loss_final": float(traj.loss[-1])}


def run(quick: bool, target: bool = False, large: bool = False) -> list[dict]:
    base = dict(depth=1, P=4 if quick else 8, steps=10 if quick else 40, samples=1024 if quick else 4096)
    grid = {
        "P": [base["P"], 2 * base["P"]],
        "steps": [base["steps"], 2 * base["steps"]],
        "samples": [base["samples"], 4 * base["samples"]],
        "depth": [1, 2],
    }
    rows = []
    for factor, values in grid.items():
        for v in values:
            case = dict(base, **{factor: v})
            if factor == "depth" and v > 1 and quick:
                case.update(steps=5)
            row = _time(**case, warm=not quick)
            row["varied"] = factor
            rows.append(row)
    resp_case = dict(base, depth=2, steps=5 if quick else 20)
    for method in ("stein", "tangent"):
        row = _time(**resp_case, warm=not quick, responses=method)
        row["varied"] = "responses"
        rows.append(row)
    # the solver's speed options against the plain iteration, same problem, same run (compilation included:
    # the windows' own problems are extra compilations, which is what a user pays)
    speed_case = dict(depth=2, P=8 if quick else 16, steps=20 if quick else 50, samples=2048 if quick else 8192)
    for label, opts in (("plain", dict(window_problems=False)), ("windows", dict(window_problems=True)),
                        ("float32", dict(window_problems=True, dtype="float32"))):
        row = _time(**speed_case, warm=False, **opts)
        row["varied"] = f"speed:{label}"
        rows.append(row)
    if large:
        row = _time(depth=2, P=16, steps=100, samples=16384, warm=False, dtype="float32")
        row["varied"] = "large"
        rows.append(row)
    if target:
        row = _time(depth=2, P=16, steps=200, samples=32768, warm=False, dtype="float32")
        row["varied"] = "target"
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true", help="also time depth 2, P=16, 100 steps, 16384 samples, "
                        "float32 (S/n = 10; about 3 minutes)")
    parser.add_argument("--target", action="store_true", help="also time depth 2, P=16, 200 steps, 32768 samples, float32")
    args = parser.parse_args(argv)
    rows = run(args.quick, args.target, args.large)
    print(f"{'varied':>14} {'depth':>5} {'P':>4} {'steps':>5} {'samples':>7} {'resp.':>7} {'dtype':>7} {'iters':>5} "
          f"{'s':>8} {'s/iter':>8}")
    for r in rows:
        print(f"{r['varied']:>14} {r['depth']:>5} {r['P']:>4} {r['steps']:>5} {r['samples']:>7} {r['responses']:>7} "
              f"{r['dtype']:>7} {r['iterations']:>5} {r['seconds']:>8.2f} {r['seconds_per_iteration']:>8.3f}")
    st, ta = (next(r for r in rows if r["varied"] == "responses" and r["responses"] == m) for m in ("stein", "tangent"))
    print(f"response functions: tangent / stein time per iteration = "
          f"{ta['seconds_per_iteration'] / st['seconds_per_iteration']:.1f}x (depth 2, same run)")
    plain = next(r for r in rows if r["varied"] == "speed:plain")
    for label in ("windows", "float32"):
        r = next(r for r in rows if r["varied"] == f"speed:{label}")
        print(f"speed option {label}: plain / option wall time = {plain['seconds'] / r['seconds']:.2f}x, final loss "
              f"{r['loss_final']:.6g} vs {plain['loss_final']:.6g} (depth 2, P={r['P']}, {r['steps']} steps, "
              f"{r['samples']} paths, compilation included)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "dmft_cost.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
