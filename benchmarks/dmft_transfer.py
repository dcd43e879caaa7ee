"""``limits.transfer(..., limit=True)`` at depth 2: the DMFT curve of every learning rate beside finite widths.

Times one muP learning-rate sweep with its infinite-width limit (12 learning rates, P = 16 teacher points, 100
steps, widths 64..512 with 4 seeds; ``--quick``: 4 learning rates, P = 4, 10 steps, widths 32, 64), the
limit's solves alone and the finite-width part alone (each compiled once per shape: the 12 limit solves share
one compilation), and prints the optimal learning rates. Writes ``benchmarks/out/dmft_transfer.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import limits
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def run(quick: bool) -> dict:
    P, steps, widths, lrs = (4, 10, (32, 64), np.geomspace(0.1, 2.0, 4)) if quick else \
        (16, 100, (64, 128, 256, 512), np.geomspace(0.05, 5.0, 12))
    d = limits.datasets.teacher(P=P, D=8, seed=0)
    method = limits.dmft.MonteCarlo(samples=1024 if quick else 8192, dtype="float32")
    start = time.perf_counter()
    res = limits.transfer("mup", 2, widths, lrs, X=d.X, y=d.y, steps=steps, seeds=4, limit=True,
                          limit_method=method, progress=False)
    total = time.perf_counter() - start
    start = time.perf_counter()
    for lr in lrs:
        try:
            limits.solve_dmft("mup", 2, X=d.X, y=d.y, lr=float(lr), steps=steps, method=method, progress=False)
        except FloatingPointError:
            pass  # a diverging learning rate is a point of the sweep, not an error
    limit_only = time.perf_counter() - start
    return {"P": P, "steps": steps, "widths": list(widths), "lrs": lrs.tolist(), "seconds_transfer_with_limit": total,
            "seconds_limit_solves_again": limit_only, "optima": np.asarray(res.optima).tolist(),
            "limit_optimum": None if res.limit_losses is None else float(lrs[int(np.nanargmin(res.limit_losses))])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    r = run(args.quick)
    print(f"transfer('mup', 2, widths {r['widths']}, {len(r['lrs'])} lrs, P = {r['P']}, {r['steps']} steps, limit=True): "
          f"{r['seconds_transfer_with_limit']:.1f} s; the {len(r['lrs'])} limit solves again (compiled): "
          f"{r['seconds_limit_solves_again']:.1f} s")
    print(f"optimal lr per width {np.round(r['optima'], 3).tolist()}, limit {r['limit_optimum']}")
    result_path("dmft_transfer.json").write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
