"""Width dependence of N Cov(f) beyond the simulated widths, from the *nonlinear* exact reduced map.

theory.sample_reduced_batched draws theta from its exact width-N law and evaluates F(theta) without
linearizing: a width-N ensemble in the conditioning coordinates (exact up to the truncation of directions
below RANK_TOL).  At N = 128..1024 it is compared with the direct simulations (sims/, sim.py); at larger N it
shows how N Cov approaches Sigma_f = J V J^T (the linearization of the same map).

    python check_reduced.py --depth 3 --widths 128 512 2048 8192 32768 131072 --seeds 6000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import theory  # noqa: E402
import limits  # noqa: E402


def ncov(F, N):
    Fc = F - F.mean(0)
    return N * np.einsum("sta,stb->tab", Fc, Fc) / (F.shape[0] - 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 512, 2048, 8192, 32768, 131072])
    ap.add_argument("--seeds", type=int, default=6000)
    ap.add_argument("--P", type=int, default=6)
    ap.add_argument("--D", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    d = limits.datasets.teacher(P=a.P, D=a.D, seed=a.data_seed)
    Sig = theory.deep_linear_prediction_cov(d.X, d.y, a.depth, a.lr, a.steps)
    trp = float(np.einsum("tii->", Sig))
    print(f"depth {a.depth}, P={a.P}, data seed {a.data_seed}, lr {a.lr}: predicted sum_t tr Sigma_f = {trp:.3f}")
    print("| N | seeds | sum_t tr N Cov (reduced MC) | +- | rel. diff | relF | t=3 tr meas / pred | t=20 tr meas / pred |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for N in a.widths:
        t0 = time.time()
        F = theory.sample_reduced_batched(d.X, d.y, a.depth, a.lr, a.steps, N, a.seeds, seed=N)
        C = ncov(F, N)
        tr = float(np.einsum("tii->", C))
        grp = np.array_split(np.arange(a.seeds), 20)
        se = float(np.std([np.einsum("tii->", ncov(F[g], N)) for g in grp], ddof=1) / np.sqrt(20))
        relF = float(np.linalg.norm(C - Sig) / np.linalg.norm(Sig))
        t3 = (np.trace(C[3]), np.trace(Sig[3]))
        t20 = (np.trace(C[-1]), np.trace(Sig[-1]))
        print(f"| {N} | {a.seeds} | {tr:.3f} | {se:.3f} | {100 * (tr / trp - 1):+.1f}% | {100 * relF:.1f}% | "
              f"{t3[0]:.3f} / {t3[1]:.3f} | {t20[0]:.3f} / {t20[1]:.3f} |   ({time.time() - t0:.0f}s)", flush=True)
        rows.append(dict(N=N, seeds=a.seeds, trace_sum=tr, se=se, pred=trp, relF=relF))
    name = f"reduced_d{a.depth}_P{a.P}_ds{a.data_seed}_lr{a.lr}.json"
    with open(os.path.join(HERE, name), "w") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
