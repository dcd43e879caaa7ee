"""Finite-width simulator speed: steps per second vs width.

Depth-3 tanh mup network, P = 32 teacher points (D = 16), 8 seeds vmapped,
full-batch SGD in float64. For each width the simulator runs once to compile,
then ``steps`` steps are timed (weight initialization excluded); one "step" is
a forward pass, the loss, the gradient and the update for the whole 8-seed
ensemble. Work per step ~ 6 P n^2 (L-1) S flops, so time grows like n^2 once
the matrices are large.

    python benchmarks/finite.py            # widths 256 .. 8192
    python benchmarks/finite.py --quick    # widths 128, 256

Prints a table and writes ``benchmarks/out/finite.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


import limits
from limits.finite import simulate
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

DEPTH, P, D, SEEDS = 3, 32, 16, 8


def bench(width: int, steps: int, X, y) -> dict:
    kw = dict(X=X, y=y, lr=0.5, seeds=SEEDS, record=(), progress=False, activation="tanh")
    t0 = time.perf_counter()
    simulate("mup", DEPTH, width, steps=steps, **kw)  # compile (and warm up)
    first = time.perf_counter() - t0
    traj = simulate("mup", DEPTH, width, steps=steps, **kw)
    d = traj.diagnostics
    train_s = traj.meta["wall_s"] - d["init_s"]  # wall_s: meta (the shared result keys)
    flops = 6 * P * width**2 * (DEPTH - 1) * SEEDS * (steps + 1)
    return {
        "width": width,
        "steps": steps,
        "seeds": SEEDS,
        "steps_per_s": (steps + 1) / train_s,
        "ms_per_step": 1e3 * train_s / (steps + 1),
        "init_s": d["init_s"],
        "first_call_s": first,
        "gflops": flops / train_s / 1e9,
        "final_loss": float(traj.loss[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 128, 256 only")
    parser.add_argument("--out", default=str(result_path("finite.json")))
    args = parser.parse_args()
    widths = [128, 256] if args.quick else [256, 512, 1024, 2048, 4096, 8192]
    data = limits.datasets.teacher(P=P, D=D, seed=0)
    rows = []
    print(f"finite-width simulator: mup, depth {DEPTH}, tanh, P={P}, D={D}, {SEEDS} seeds, float64, SGD")
    print(f"{'width':>6} {'steps':>6} {'steps/s':>9} {'ms/step':>9} {'GFLOP/s':>8} {'init s':>7} {'1st call s':>10}")
    for w in widths:
        steps = int(max(2, min(64, 2**26 // w**2)))
        row = bench(w, steps, data.X, data.y)
        rows.append(row)
        print(f"{w:>6} {steps:>6} {row['steps_per_s']:>9.2f} {row['ms_per_step']:>9.1f} {row['gflops']:>8.1f} "
              f"{row['init_s']:>7.2f} {row['first_call_s']:>10.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"depth": DEPTH, "P": P, "D": D, "seeds": SEEDS, "dtype": "float64", "machine": platform.processor() or platform.machine(),
            "note": "2 shared CPU cores; timings noisy, compare ratios within one run"}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
