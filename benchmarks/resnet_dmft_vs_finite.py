"""Monte Carlo DMFT of nonlinear residual networks against finite-width ensembles.

For each case (depth-mup, tanh L = 2 and 4, ReLU L = 2; P = 6, D = 8, lr 0.5, 12 steps) and DMFT
source seed: ``log L_dmft - log L_ext`` in percent at steps 4, 8, 12, where ``L_ext`` is the
``limits.simulate`` ensemble at N = 256/512/1024 stored in ``tests/data/resnet_mc_reference.json``,
extrapolated linearly in 1/N. Prints a table, writes ``benchmarks/out/resnet_dmft_vs_finite.json``.

    python benchmarks/resnet_dmft_vs_finite.py               # all cases, seeds 0 1 2 (L = 4: seed 0), ~4 min
    python benchmarks/resnet_dmft_vs_finite.py --cases tanh_L2 --seeds 0
    python benchmarks/resnet_dmft_vs_finite.py --quick       # tanh L = 2, seed 0, 1024 paths, 4 steps (CI)
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

import limits
from limits.analysis import extrapolate_in_width
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {"tanh_L2": (2, "tanh"), "relu_L2": (2, "relu"), "tanh_L4": (4, "tanh")}


def extrapolate(entry):
    """The stored ensembles of one case extrapolated to infinite width: ``(v_inf, its standard error)``."""
    return extrapolate_in_width(entry["widths"], entry["mean"], entry["stderr"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="DMFT seeds (default 0 1 2; L = 4: 0)")
    ap.add_argument("--quick", action="store_true", help="tanh L = 2, seed 0, 1024 paths, the first 4 steps")
    args = ap.parse_args(argv)
    steps, samples = (4, 1024) if args.quick else (12, 8192)
    if args.quick:
        args.cases, args.seeds = ["tanh_L2"], [0]
    ref = json.loads((ROOT / "tests" / "data" / "resnet_mc_reference.json").read_text())
    d = limits.datasets.teacher(P=6, D=8, seed=0)
    rows = []
    print(f"{'case':>8} {'seed':>4} {'step 4':>7} {'step 8':>7} {'step 12':>7} {'ref 1sd (12)':>12} {'s':>5}")
    for name in args.cases:
        depth, act = CASES[name]
        ext, se = extrapolate(ref[name])
        seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if depth == 2 else [0])
        for seed in seeds:
            tr = limits.solve_dmft("depth-mup", depth, X=d.X, y=d.y, activation=act, lr=0.5, steps=steps,
                                   method=limits.dmft.MonteCarlo(samples=samples), seed=seed, progress=False)
            dl = 100 * np.log(tr.loss / ext[: steps + 1])  # the first entries of the stored trajectory (causal)
            row = dict(case=name, seed=seed, dlog_percent=dl.tolist(), ref_sd_percent=(100 * se / ext).tolist(),
                       seconds=tr.meta["wall_s"])
            rows.append(row)
            at = [dl[t] if t <= steps else float("nan") for t in (4, 8, 12)]
            print(f"{name:>8} {seed:>4} {at[0]:>+7.2f} {at[1]:>+7.2f} {at[2]:>+7.2f} {100 * se[12] / ext[12]:>12.2f} "
                  f"{row['seconds']:>5.1f}", flush=True)
    result_path("resnet_dmft_vs_finite.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
