"""Cost of ``limits.solve_dmft`` versus P, steps, samples and depth.

Each row varies one factor from a base case (two-layer tanh muP, teacher data)
and reports wall time (after a compile run of the same shapes), fixed-point
iterations and seconds per iteration (``--quick``: tiny sizes, compile time included), so the scaling in the docstring of
``solve_dmft`` (paths O(L S n^2), response functions O((L-1) R n^3),
n = (steps+1) P) can be read off. Usage:
``python benchmarks/dmft_cost.py [--quick]``; writes ``benchmarks/out/dmft_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import limits


def _time(depth: int, P: int, steps: int, samples: int, activation: str = "tanh", warm: bool = True) -> dict:
    data = limits.datasets.teacher(P=P, D=4, seed=0)
    kw = dict(X=data.X, y=data.y, activation=activation, lr=0.5, steps=steps, samples=samples, progress=False)
    if warm:
        limits.solve_dmft("mup", depth, **kw)  # compile these shapes
    start = time.perf_counter()
    traj = limits.solve_dmft("mup", depth, **kw)
    wall = time.perf_counter() - start
    its = int(traj.diagnostics.get("iterations", 0)) or 1
    return {"depth": depth, "P": P, "steps": steps, "samples": samples, "activation": activation,
            "seconds": wall, "iterations": its, "seconds_per_iteration": wall / its}


def run(quick: bool) -> list[dict]:
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
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    rows = run(parser.parse_args(argv).quick)
    print(f"{'varied':>8} {'depth':>5} {'P':>4} {'steps':>5} {'samples':>7} {'iters':>5} {'s':>8} {'s/iter':>8}")
    for r in rows:
        print(f"{r['varied']:>8} {r['depth']:>5} {r['P']:>4} {r['steps']:>5} {r['samples']:>7} {r['iterations']:>5} "
              f"{r['seconds']:>8.2f} {r['seconds_per_iteration']:>8.3f}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "dmft_cost.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
