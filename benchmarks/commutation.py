"""Width-depth commutation (Hayou & Yang, arXiv 2302.00453): ResNet kernels at (n, L) vs the joint limit.

The ``"depth-mup"`` ResNet (branches ``L^{-1/2}``, relu, no biases) is
initialized at every (width n, blocks L) of a grid; its empirical NNGP
``phi(h^{L+1}) phi(h^{L+1})^T / n`` and NTK at init (``limits.simulate`` with no
steps, averaged over seeds) are compared with the infinite-depth-and-width
kernel of ``limits.kernels.resnet_infinite_depth`` (relative Frobenius error).
The ``n = inf`` row is the finite-depth kernel ``limits.kernels.resnet``.

The error falls along every path to (inf, inf): width first (the n = inf row,
~ 1/L), depth first (the largest-L column, ~ n^-1/2) and the diagonal, so the
limits commute.

    python benchmarks/commutation.py            # n = 32..512, L = 2..64, 8 seeds
    python benchmarks/commutation.py --quick    # n = 16, 32, L = 2, 3, 2 seeds (a smoke test)

Prints the error tables and the fitted exponents; writes ``benchmarks/out/commutation.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import limits
from limits.analysis import kernel_commutation
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


def grid(quick: bool) -> dict:
    if quick:
        return dict(widths=(16, 32), depths=(2, 3), seeds=2)
    return dict(widths=(32, 64, 128, 256, 512), depths=(2, 4, 8, 16, 32, 64), seeds=8)


def run(quick: bool, progress: bool = False):
    X = limits.datasets.teacher(P=8, D=4, seed=0).X
    return kernel_commutation(X=X, activation="relu", progress=progress, **grid(quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid")
    parser.add_argument("--out", default=str(result_path("commutation.json")))
    args = parser.parse_args()
    start = time.perf_counter()
    res = run(args.quick)
    wall = time.perf_counter() - start
    print(res.table())
    print(f"wall {wall:.1f} s")
    record = {
        "widths": res.widths.tolist(), "depths": res.depths.tolist(),
        "errors": {k: v.tolist() for k, v in res.errors.items()},
        "stderr": {k: v.tolist() for k, v in res.stderr.items()},
        "fits": {k: {w: (None if f is None else {"exponent": f.exponent, "ci": list(f.ci)}) for w, f in res.fits(k).items()}
                 for k in res.errors},
        "meta": dict(res.meta), "quick": args.quick, "wall_s": wall,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
