"""Cost of ``limits.solve_dmft`` (the causal march): scaling, the issue's target sizes, and the old fixed point.

Rows (``python benchmarks/dmft_cost.py [--quick] [--target] [--fixed-point]``; writes
``benchmarks/out/dmft_cost.json``):

- ``scaling``: wall time of a compiled solve (second call with the same shapes: the first compiles) while one
  factor varies from a base case (depth-2 tanh muP, teacher data, float32): steps ``T``, samples ``S``, depth
  ``L``, points ``P``. The march costs ``O(S n^2)`` per history product, ``n = (T + 1) P``, a few products per
  field: theory ``T^2 S L P^2``; the fitted exponents are printed beside it (small sizes pay fixed costs per
  step, so the measured exponents sit below the theory there).
- ``--target``: the sizes of issue 14, each in a fresh process (compilation and source generation included,
  peak memory = the process's max RSS): depth 2, P = 16, 200 steps with ``S = 16384`` paths (``S/n = 5``) and
  with ``S = 65536`` (the loss's standard error below 1% at every step), and depth 3, P = 32, 100 steps; the
  loss's standard error (16 Sobol blocks) is reported relative to the loss (floored at 1e-3 of its start).
- ``--fixed-point``: the same problem solved by the iterative fixed-point solver the march replaced (commit
  912c7a79, checked out into a temporary git worktree and run in its own process) and by the march, in the same
  run: the ratio of wall times (compilation included for both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "912c7a798939d1965079d787f65702a4296466ce"

_SOLVE = """
import json, resource, sys, time
import numpy as np
import limits
a = json.loads(sys.argv[1])
d = limits.datasets.teacher(P=a["P"], D=8, seed=0)
t0 = time.perf_counter()
tr = limits.solve_dmft("mup", a["depth"], X=d.X, y=d.y, activation=a.get("activation", "tanh"), lr=0.5,
                       steps=a["steps"], method=limits.dmft.MonteCarlo(samples=a["samples"], dtype=a["dtype"]),
                       seed=a.get("seed", 0), progress=False)
wall = time.perf_counter() - t0
rel = tr.loss_stderr / np.maximum(tr.loss, 1e-3 * tr.loss[0])
print(json.dumps({"seconds": wall, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "rel_stderr_max": float(rel.max()), "rel_stderr_half": float(rel[: len(rel) // 2 + 1].max()),
                  "loss": tr.loss.tolist()}))
"""

_OLD = """
import json, resource, sys, time
import limits
a = json.loads(sys.argv[1])
assert "/fp" in limits.__file__ or "tmp" in limits.__file__, limits.__file__
d = limits.datasets.teacher(P=a["P"], D=8, seed=0)
t0 = time.perf_counter()
tr = limits.solve_dmft("mup", a["depth"], X=d.X, y=d.y, activation="tanh", lr=0.5, steps=a["steps"],
                       samples=a["samples"], dtype=a["dtype"], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "iterations": int(tr.diagnostics["iterations"]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "loss": tr.loss.tolist()}))
"""


def _in_process(code: str, args: dict, path: Path = ROOT) -> dict:
    env = None
    if path != ROOT:
        import os

        env = dict(os.environ, PYTHONPATH=str(path))
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, cwd=path,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm_seconds(depth: int, P: int, steps: int, samples: int) -> float:
    """Wall time of the second of two identical solves (the first compiles the time blocks)."""
    import limits

    d = limits.datasets.teacher(P=P, D=8, seed=0)
    kw = dict(X=d.X, y=d.y, activation="tanh", lr=0.5, steps=steps, progress=False,
              method=limits.dmft.MonteCarlo(samples=samples, dtype="float32"))
    limits.solve_dmft("mup", depth, **kw)
    start = time.perf_counter()
    limits.solve_dmft("mup", depth, seed=1, **kw)
    return time.perf_counter() - start


def scaling(quick: bool) -> list[dict]:
    base = dict(depth=2, P=4, steps=10, samples=512) if quick else dict(depth=2, P=8, steps=50, samples=8192)
    grid = {"steps": [base["steps"], 2 * base["steps"]], "samples": [base["samples"], 4 * base["samples"]],
            "depth": [2, 3, 4], "P": [base["P"], 2 * base["P"]]}
    if quick:  # a smoke test: two of the four factors (each value is a program of its own to compile)
        grid = {k: grid[k] for k in ("steps", "samples")}
    theory = {"steps": 2.0, "samples": 1.0, "depth": 1.0, "P": 2.0}
    rows = []
    for factor, values in grid.items():
        times = [_warm_seconds(**dict(base, **{factor: v})) for v in values]
        slope = float(np.polyfit(np.log(values), np.log(times), 1)[0])
        rows.append({"varied": factor, "values": values, "seconds": times, "fitted_exponent": slope,
                     "theory_exponent": theory[factor], "base": base})
    return rows


def targets() -> list[dict]:
    cases = [dict(depth=2, P=16, steps=200, samples=16384, dtype="float32"),
             dict(depth=2, P=16, steps=200, samples=65536, dtype="float32"),
             dict(depth=3, P=32, steps=100, samples=16384, dtype="float32")]
    rows = []
    for case in cases:
        res = _in_process(_SOLVE, case)
        n = (case["steps"] + 1) * case["P"]
        rows.append(dict(case, n=n, samples_per_point=case["samples"] / n,
                         **{k: v for k, v in res.items() if k != "loss"}, final_loss=res["loss"][-1]))
    return rows


def fixed_point(quick: bool) -> dict:
    """The iterative solver of commit 912c7a79 against the march, one problem, both with compilation."""
    case = dict(depth=2, P=4, steps=10, samples=1024, dtype="float64") if quick else \
        dict(depth=2, P=16, steps=50, samples=8192, dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "fp"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), OLD_COMMIT], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            old = _in_process(_OLD, case, tree)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    new = _in_process(_SOLVE, case)
    dev = float(np.max(np.abs(np.log(np.asarray(new["loss"]) / np.asarray(old["loss"])))))
    return dict(case, fixed_point_seconds=old["seconds"], fixed_point_iterations=old["iterations"],
                march_seconds=new["seconds"], ratio=old["seconds"] / new["seconds"], max_abs_dlog_loss=dev,
                fixed_point_peak_gb=old["peak_gb"], march_peak_gb=new["peak_gb"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--target", action="store_true", help="the issue's target sizes (minutes)")
    parser.add_argument("--fixed-point", action="store_true", help="compare with the old iterative solver")
    args = parser.parse_args()
    out = {"scaling": scaling(args.quick)}
    print(f"{'varied':<8} {'values':<22} {'seconds (compiled)':<30} {'exponent':>8} {'theory':>6}")
    for r in out["scaling"]:
        print(f"{r['varied']:<8} {str(r['values']):<22} {str([round(s, 2) for s in r['seconds']]):<30} "
              f"{r['fitted_exponent']:>8.2f} {r['theory_exponent']:>6.1f}")
    if args.target:
        out["targets"] = targets()
        print("\ntarget sizes (fresh process: sources, compilation and solve; peak = max RSS)")
        for r in out["targets"]:
            print(f"  depth {r['depth']}, P = {r['P']}, {r['steps']} steps, S = {r['samples']} ({r['dtype']}, "
                  f"S/n = {r['samples_per_point']:.1f}): {r['seconds']:.1f} s, peak {r['peak_gb']:.2f} GB, loss "
                  f"stderr <= {100 * r['rel_stderr_half']:.2f}% (first half), {100 * r['rel_stderr_max']:.2f}% (all)")
    if args.fixed_point:
        fp = out["fixed_point"] = fixed_point(args.quick)
        print(f"\nfixed point (commit {OLD_COMMIT[:8]}) vs march, depth {fp['depth']}, P = {fp['P']}, {fp['steps']} "
              f"steps, S = {fp['samples']} ({fp['dtype']}): {fp['fixed_point_seconds']:.1f} s "
              f"({fp['fixed_point_iterations']} iterations) vs {fp['march_seconds']:.1f} s: ratio {fp['ratio']:.1f}; "
              f"max |dlog loss| between them {fp['max_abs_dlog_loss']:.2g} (their Monte Carlo estimators differ)")
    path = result_path("dmft_cost.json")
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
