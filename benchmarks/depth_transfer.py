"""Depthwise learning-rate transfer: optimal lr vs depth for 1/sqrt(L) branches and plain ResNets.

ResNets with L blocks, muP in width (``limits.param("depth-mup"|"resnet", L)``),
tanh, the default teacher task (P = 16, D = 8), full-batch SGD; loss after
``steps`` steps, averaged over ``seeds`` initializations, on a log-spaced lr
grid. The optimum at each depth is the parabola vertex of
:func:`limits.analysis.optimal_lr`, and ``lr*(L) ~ L^k`` is fitted.
Expected (Bordelon et al. 2023, arXiv 2309.16620; Yang et al. TP6, arXiv
2310.02244): ``k ~ 0`` for ``"depth-mup"`` (branch L^-1/2: the residual stream
and its updates stay O(1)), ``k < 0`` for ``"resnet"`` (branch 1: the NTK and the
feature updates grow with depth, so the optimum shrinks).

    python benchmarks/depth_transfer.py            # depths 4..64, width 64, 4 seeds
    python benchmarks/depth_transfer.py --quick    # depths 4..32, width 32, 2 seeds
    python benchmarks/depth_transfer.py --tables depth-mup completep resnet --optimizer adam

With ``--optimizer adam`` the lr grid is shifted down (Adam's raw step is ~lr per
coordinate) and the tables use their Adam block-lr exponents (depth-mup L^-1/2,
completep L^0; ``limits.param``).

Prints the loss tables and a summary (optimal lr vs depth for both tables,
fitted exponents) and writes ``benchmarks/out/depth_transfer.json``.
Points are cached (``limits.analysis.transfer``), so a rerun is instant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import limits
from limits.analysis import transfer
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

TABLES = ("depth-mup", "resnet")


def sweep(quick: bool, *, width: int | None = None, steps: int = 5, seeds: int | None = None,
          activation: str = "tanh", cache_dir=None, progress: bool = False, tables=TABLES,
          optimizer: str = "sgd") -> dict:
    """Run the depth sweep for each table; returns {table: DepthTransferResult}."""
    depths = [4, 8, 16, 32] if quick else [4, 8, 16, 32, 64]
    width = width or (32 if quick else 64)
    seeds = seeds or (2 if quick else 4)
    lrs = np.geomspace(1 / 16, 16, 17) if optimizer == "sgd" else np.geomspace(1 / 64, 16, 17)
    data = limits.datasets.teacher()
    return {
        name: transfer(name, None, [width], lrs, depths=depths, X=data.X, y=data.y, activation=activation,
                       steps=steps, seeds=seeds, limit=False, cache_dir=cache_dir, progress=progress,
                       optimizer=optimizer)
        for name in tables
    }


def summary(results: dict) -> str:
    first = next(iter(results.values()))
    lines = [f"{'depth L':>10}" + "".join(f"{name:>14}" for name in results)]
    for k, d in enumerate(first.depths):
        lines.append(f"{int(d):>10}" + "".join(
            f"{r.optima[k, -1]:>13.3g}{'*' if r.at_edge[k, -1] else ' '}" for r in results.values()))
    lines.append(f"{'exponent':>10}" + "".join(f"{r.exponent:>+14.3f}" for r in results.values()))
    lines.append(f"{'95% CI':>10}" + "".join(
        f"{'[%+.2f,%+.2f]' % r.fit.ci:>14}" if r.fit else f"{'n/a':>14}" for r in results.values()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="depths 4..32 at width 32, 2 seeds")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--tables", nargs="*", default=list(TABLES), help="residual presets to sweep")
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    parser.add_argument("--out", default=str(result_path("depth_transfer.json")))
    args = parser.parse_args()
    start = time.perf_counter()
    results = sweep(args.quick, width=args.width, steps=args.steps, seeds=args.seeds, activation=args.activation,
                    progress=True, tables=tuple(args.tables), optimizer=args.optimizer)
    wall = time.perf_counter() - start
    for r in results.values():
        print(r.table(), "\n")
    print("optimal learning rate vs depth (* = grid edge), fitted lr* ~ L^k:")
    print(summary(results))
    print(f"wall {wall:.1f} s")
    record = {
        name: {
            "depths": r.depths.tolist(), "width": int(r.widths[-1]), "lrs": r.lrs.tolist(),
            "losses": np.where(np.isfinite(r.losses[:, -1]), r.losses[:, -1], None).tolist(),
            "optima": r.optima[:, -1].tolist(), "at_edge": r.at_edge[:, -1].tolist(),
            "exponent": r.exponent, "ci": list(r.fit.ci) if r.fit else None,
            "meta": {k: v for k, v in r.meta.items() if k != "cache_dir"},
        }
        for name, r in results.items()
    }
    record["settings"] = {"quick": args.quick, "steps": args.steps, "activation": args.activation, "wall_s": wall,
                          "optimizer": args.optimizer, "tables": args.tables}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
