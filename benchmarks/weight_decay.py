"""AdamW's weight-decay width rule: which lambda(n) keeps the trained weights and sublayer gains width-invariant.

muP-AdamW MLP (depth 2: one hidden n x n matrix, layer 2), tanh, full-batch, float64, teacher task (P = 16, D = 8).
In PyTorch units (multipliers 1, hidden lr ~ 1/n) the hidden layer's decoupled weight decay follows one of three
rules, equal at n0 = 256:

    lambda(n) = lambda0 (n / n0)^k,   k = 0 (constant), 1/2 (Fan et al. 2025), 1 (lr * lambda width-invariant;
                                      TP IVb's width-invariant "independent" decay)

(in the package's table: ``limits.param("mup", 2, optimizer="adamw", weight_decay=lambda0 n0^-k, d=[0, 1/2 - k,
0])``; ``p.canonical()`` shows ``d' = -k``). After ``T`` steps (the shrink per step lr lambda / n is at least
T^-1 x several e-folds at every width) it records the top singular value of the effective hidden matrix and its
sublayer gain RMS h^2 / RMS tanh(h^1), per width, and fits their width exponents with 95% intervals over the seeds
(``limits.fit_power_law``). The rule whose exponent is 0 keeps the gains width-invariant. Drift: the relative change
over the last quarter of the run (near 0 at equilibrium).

Predicted width exponents of the equilibrium top singular value (derivation in docs/theory/optimizers.md):
updates that are independent from step to step (a random walk balanced by the decay) give
||W|| ~ sqrt(2 n eta / lambda) ~ n^(-k/2); updates that keep one direction (coherent, full-batch training) give
||W|| ~ n / lambda ~ n^(1-k); Fan et al. measured sqrt(eta/lambda) n^0.75 ~ n^(1/4 - k/2) in LLM training.

    python benchmarks/weight_decay.py            # widths 64 .. 2048, 2000 steps (about 10 min)
    python benchmarks/weight_decay.py --quick    # widths 32, 64, 100 steps (seconds)

Prints a table and writes ``benchmarks/out/weight_decay.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import limits
from limits.analysis import fit_power_law
from limits.finite import Simulation
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

N0, LR, LAMBDA0 = 256, 0.05, 20.0
RULES = {"constant (k=0)": 0.0, "sqrt n (k=1/2, Fan et al.)": 0.5, "n (k=1)": 1.0}
PREDICTED = {"random walk": lambda k: -k / 2, "coherent": lambda k: 1 - k, "Fan et al. (measured law)":
             lambda k: 0.25 - k / 2}


def table_for(k: float):
    """muP-AdamW at depth 2 with lambda(n) = LAMBDA0 (n/N0)^k in PyTorch units on the hidden matrix."""
    return limits.param("mup", 2, optimizer="adamw", weight_decay=LAMBDA0 * N0 ** (-k), d=[0, 0.5 - k, 0])


def measure(k: float, width: int, steps: int, seeds: int, data) -> dict:
    record = tuple(int(s) for s in np.linspace(0, steps, 9))
    t0 = time.perf_counter()
    t = limits.simulate(table_for(k), 2, width, X=data.X, y=data.y, lr=LR, steps=steps, seeds=seeds, progress=False,
                        record=("spectral", "features"), method=Simulation(record_steps=record))
    W = t.diagnostics["W_spectral"][:, :, 1]  # (S, K): the hidden matrix
    gain = t.diagnostics["gain"][:, :, 0]
    return {"k": k, "width": width, "W0": float(W[:, 0].mean()), "W": W[:, -1].tolist(), "gain": gain[:, -1].tolist(),
            "W_drift": float(np.mean(W[:, -1] / W[:, -3] - 1)), "gain_drift": float(np.mean(gain[:, -1] / gain[:, -3] - 1)),
            "loss": float(t.loss[-1]), "shrink_per_step": float(LR * LAMBDA0 * (width / N0) ** k / width),
            "seconds": time.perf_counter() - t0}


def exponent(rows: list[dict], key: str):
    """Width exponent of the per-seed values ``key`` with its 95% interval."""
    x = np.concatenate([[r["width"]] * len(r[key]) for r in rows])
    y = np.concatenate([r[key] for r in rows])
    return fit_power_law(x, y, confidence=0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 32, 64, 100 steps")
    parser.add_argument("--out", default=str(result_path("weight_decay.json")))
    args = parser.parse_args()
    widths, steps, seeds = ([32, 64], 100, 2) if args.quick else ([64, 128, 256, 512, 1024, 2048], 2000, 2)
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    print(f"AdamW weight-decay rules: muP, depth 2, tanh, lr={LR}, lambda(n) = {LAMBDA0} (n/{N0})^k on the hidden "
          f"matrix, {steps} steps, {seeds} seeds")
    print(f"{'rule':<28}{'width':>6}{'||W|| init':>11}{'||W|| end':>11}{'drift':>8}{'gain':>8}{'drift':>8}"
          f"{'loss':>10}{'s':>6}")
    results = {}
    for name, k in RULES.items():
        rows = []
        for w in widths:
            r = measure(k, w, steps, seeds, data)
            rows.append(r)
            print(f"{name:<28}{w:>6}{r['W0']:>11.3f}{np.mean(r['W']):>11.3f}{r['W_drift']:>+8.3f}"
                  f"{np.mean(r['gain']):>8.3f}{r['gain_drift']:>+8.3f}{r['loss']:>10.2e}{r['seconds']:>6.0f}",
                  flush=True)
        results[name] = {"k": k, "rows": rows, "W_exponent": exponent(rows, "W"), "gain_exponent": exponent(rows, "gain")}
    print("\nwidth exponents at the end of the run (95% interval over seeds and widths) and the predictions:")
    print(f"{'rule':<28}{'||W|| measured':>26}{'gain measured':>26}" + "".join(f"{p:>14}" for p in ("random walk", "coherent", "Fan law")))
    for name, res in results.items():
        pred = [f(res["k"]) for f in PREDICTED.values()]
        print(f"{name:<28}{str(res['W_exponent']):>26}{str(res['gain_exponent']):>26}" + "".join(f"{v:>+14.2f}" for v in pred))
    invariant = min(results, key=lambda n: abs(results[n]["gain_exponent"].exponent))
    print(f"\nthe gains are most nearly width-invariant under: {invariant}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": {"n0": N0, "lr": LR, "lambda0": LAMBDA0, "steps": steps, "seeds": seeds, "widths": widths,
                        "invariant_rule": invariant},
               "rules": {n: {"k": r["k"], "rows": r["rows"],
                             "W_exponent": [r["W_exponent"].exponent, *r["W_exponent"].ci],
                             "gain_exponent": [r["gain_exponent"].exponent, *r["gain_exponent"].ci],
                             "predicted": {p: f(r["k"]) for p, f in PREDICTED.items()}}
                         for n, r in results.items()}}
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
