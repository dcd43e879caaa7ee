"""Joint (lr, weight decay) transfer of muP-AdamW across width under three weight-decay rules.

``limits.transfer(..., weight_decays=[...])`` sweeps lr x lambda x width (depth-2 tanh MLP, teacher task with a
held-out test set, noisy train labels, full batch, the test loss after ``steps`` steps, seeds averaged) for each rule of the hidden
matrix's decoupled weight decay, ``lambda(n) = lambda (n / 256)^k`` in PyTorch units (k = 0 constant, 1/2 the
``mup`` preset = Fan et al., 1), and fits the width exponents of the optimal lr and of the optimal lambda (the
constant in front of the rule). A rule transfers lambda when the optimal constant's exponent is 0.

    python benchmarks/decay_transfer.py            # widths 64 .. 512, 4 lrs x 5 lambdas, 300 steps (about 5 min)
    python benchmarks/decay_transfer.py --quick    # widths 32, 64, 2 x 2 grid (seconds)

Prints a table and writes ``benchmarks/out/decay_transfer.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import limits
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

N0 = 256
RULES = {"constant (k=0)": 0.0, "sqrt n (k=1/2, preset)": 0.5, "n (k=1)": 1.0}


def rule(k: float):
    """``weight_decay -> table`` with lambda(n) = weight_decay (n/N0)^k in PyTorch units on the hidden matrix."""
    return lambda lam: limits.param("mup", 2, optimizer="adamw", weight_decay=lam * N0 ** (-k), d=[0, 0.5 - k, 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 32, 64, a 2 x 2 grid")
    parser.add_argument("--out", default=str(result_path("decay_transfer.json")))
    args = parser.parse_args()
    if args.quick:
        widths, lrs, decays, steps, seeds = (32, 64), (0.01, 0.1), (0.1, 1.0), 20, 1
    else:
        widths, lrs, decays, steps, seeds = (64, 128, 256, 512), (0.01, 0.02, 0.04, 0.08), (3, 10, 30, 100, 300), 300, 2
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    y_train = data.y + 0.3 * np.random.default_rng(1).standard_normal(data.y.shape)  # label noise: decay can help
    payload = {"meta": {"widths": list(widths), "lrs": list(map(float, lrs)), "weight_decays": list(decays),
                        "steps": steps, "seeds": seeds, "metric": "test", "n0": N0}, "rules": {}}
    for name, k in RULES.items():
        res = limits.transfer(rule(k), None, widths, lrs, weight_decays=decays, limit=False, X=data.X, y=y_train,
                              X_test=data.X_test, y_test=data.y_test, metric="test", steps=steps, seeds=seeds,
                              progress=False)
        print(f"--- rule lambda ~ n^{k:g} (PyTorch units): {name}")
        print(res.table(), flush=True)
        payload["rules"][name] = {
            "k": k, "optima": res.optima.tolist(), "at_edge": res.at_edge.tolist(),
            "lr_exponent": None if res.fits["lr"] is None else [res.fits["lr"].exponent, *res.fits["lr"].ci],
            "weight_decay_exponent": None if res.fits["weight_decay"] is None else
            [res.fits["weight_decay"].exponent, *res.fits["weight_decay"].ci],
            "losses": res.losses.tolist()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
