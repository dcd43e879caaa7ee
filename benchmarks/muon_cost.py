"""Muon's cost in simulate: time per training step with Muon vs Adam at width 2048, as the batch grows.

muP depth-2 MLP (one hidden n x n matrix), tanh, float64, one network, full batch of P teacher points (D = 16).
An Adam step costs the forward and backward passes, about 6 P n^2 flops per hidden matrix, plus O(n^2) elementwise
work; Muon adds five quintic Newton-Schulz iterations on the n x n momentum, 3 products of n^3 each, i.e. 30 n^3
flops. The flop model of the ratio is therefore ``1 + 5 n / P``: Newton-Schulz dominates when the batch is smaller
than the width (the package's usual full-batch problems, P << n) and is cheap when it is larger (LLM training, where a
batch holds far more tokens than the width). Each setting is run once to compile, then ``steps + 1`` steps are timed
in the same run for both optimizers (the ratio is the result; absolute times are noisy).

    python benchmarks/muon_cost.py            # n = 2048, P = 16, 2048, 8192
    python benchmarks/muon_cost.py --quick    # n = 128, P = 16, 512

Prints a table and writes ``benchmarks/out/muon_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import limits
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def step_seconds(optimizer: str, width: int, steps: int, data) -> float:
    """Seconds per training step (compile excluded: the same call runs once before it is timed)."""
    p = limits.param("mup", 2, optimizer=optimizer)
    kw = dict(X=data.X, y=data.y, lr=0.01, seeds=1, record=(), progress=False)
    limits.simulate(p, 2, width, steps=steps, **kw)
    t0 = time.perf_counter()
    t = limits.simulate(p, 2, width, steps=steps, **kw)
    return (time.perf_counter() - t0 - t.diagnostics["init_s"]) / (steps + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 128")
    parser.add_argument("--out", default=str(result_path("muon_cost.json")))
    args = parser.parse_args()
    width, batches, steps = (128, [16, 512], 2) if args.quick else (2048, [16, 2048, 8192], 2)
    rows = []
    print(f"Muon vs Adam step time: muP depth 2, width {width}, tanh, float64, 1 network")
    print(f"{'P':>6}{'Adam s/step':>13}{'Muon s/step':>13}{'ratio':>8}{'model 1+5n/P':>14}")
    for P in batches:
        data = limits.datasets.teacher(P=P, D=16, seed=0)
        adam, muon = step_seconds("adam", width, steps, data), step_seconds("muon", width, steps, data)
        row = {"width": width, "P": P, "adam_s": adam, "muon_s": muon, "ratio": muon / adam,
               "model": 1 + 5 * width / P}
        rows.append(row)
        print(f"{P:>6}{adam:>13.4f}{muon:>13.4f}{row['ratio']:>8.2f}{row['model']:>14.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": {"width": width, "steps": steps, "dtype": "float64",
                                        "note": "2 shared CPU cores; compare ratios within one run"}, "rows": rows},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
