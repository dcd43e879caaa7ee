"""Direct finite-width simulation of the pinned deep linear MLP (docs/theory/dmft.md section 1), batched numpy.

Raw weights N(0,1): h^1 = W0 x / sqrt D, h^{l+1} = W_l h^l / sqrt N, f = w.h^L / (gamma N); loss 1/(2P) sum (f - y)^2;
every raw weight takes a plain gradient step with learning rate lr gamma^2 N (full batch, all layers from the
pre-step values).  Gradients by explicit backprop: df_mu/dW_l = z^{l+1} h^l_mu^T / (gamma N sqrt N),
z^L = w, z^l = W_l^T z^{l+1} / sqrt N, df_mu/dW0 = z^1 x_mu^T / (gamma N sqrt D), df_mu/dw = h^L_mu / (gamma N).

python sim.py --depth 2 --width 512 --seeds 4000     -> sims/d2_N512_S4000_s0.npz (f per seed (S, T+1, P), NTK per seed)
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # threaded gemm with 6 columns is 10-40x slower here
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def simulate_literal(X, y, depth, N, lr, steps, gamma=1.0, seeds=8, seed=0):
    """Reference: materialized weights, float64, one network at a time (slow; used to validate `simulate`)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    P, D = X.shape
    L, T1 = depth, steps + 1
    F = np.zeros((seeds, T1, P))
    for i in range(seeds):
        W0, Ws, w = _draw(np.random.default_rng([seed, i]), 1, N, D, L, np.float64)
        W0, Ws, w = W0[0], [W[0] for W in Ws], w[0]
        for t in range(T1):
            hs = [W0 @ X.T / np.sqrt(D)]
            for l in range(L - 1):
                hs.append(Ws[l] @ hs[-1] / np.sqrt(N))
            f = w @ hs[-1] / (gamma * N)
            F[i, t] = f
            if t == steps:
                break
            # gradients of the loss 1/(2P) sum (f - y)^2 by backprop, then raw-weight steps with lr gamma^2 N
            dLdf = (f - y) / P
            zs = [None] * L
            zs[L - 1] = w
            for l in range(L - 1, 0, -1):
                zs[l - 1] = Ws[l - 1].T @ zs[l] / np.sqrt(N)
            eta = lr * gamma ** 2 * N
            gw = hs[-1] @ dLdf / (gamma * N)
            gWs = [np.outer(zs[l + 1], hs[l] @ dLdf) / (gamma * N * np.sqrt(N)) for l in range(L - 1)]
            gW0 = np.outer(zs[0], X.T @ dLdf) / (gamma * N * np.sqrt(D))
            w = w - eta * gw
            Ws = [Ws[l] - eta * gWs[l] for l in range(L - 1)]
            W0 = W0 - eta * gW0
    return F


def _draw(rng, B, N, D, L, dtype):
    W0 = rng.standard_normal((B, N, D)).astype(dtype)
    Ws = [rng.standard_normal((B, N, N)).astype(dtype) for _ in range(L - 1)]
    w = rng.standard_normal((B, N)).astype(dtype)
    return W0, Ws, w


def simulate(X, y, depth, N, lr, steps, gamma=1.0, seeds=1000, batch=16, seed=0, dtype=np.float32):
    """Batched GD.  The hidden matrices are held in factored form W_l(t) = W_l(0) + U_l V_l^T (U, V: N x t, the
    accumulated rank-one updates (c/sqrt N) z^{l+1}(s) (h^l(s) Dt(s))^T), i.e. exactly the weights of plain GD
    (float64 except the N x N initial matrices in `dtype`).  Network i of the ensemble uses
    default_rng([seed, i]), as `simulate_literal`.  Returns F (S, T+1, P) and NTK (S, T+1, P, P)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    P, D = X.shape
    L, T1 = depth, steps + 1
    F = np.zeros((seeds, T1, P))
    NTK = np.zeros((seeds, T1, P, P))
    Kx = X @ X.T / D
    sN, sD, c = np.sqrt(N), np.sqrt(D), lr * gamma
    for b0 in range(0, seeds, batch):
        B = min(batch, seeds - b0)
        draws = [_draw(np.random.default_rng([seed, b0 + i]), 1, N, D, L, dtype) for i in range(B)]
        W0 = np.concatenate([d[0] for d in draws]).astype(np.float64)          # (B, N, D), updated in place
        Ws = [np.concatenate([d[1][l] for d in draws]) for l in range(L - 1)]  # (B, N, N) initial, dtype
        w = np.concatenate([d[2] for d in draws]).astype(np.float64)
        del draws
        U = [np.zeros((B, N, 0)) for _ in range(L - 1)]
        V = [np.zeros((B, N, 0)) for _ in range(L - 1)]
        for t in range(T1):
            hs = [np.matmul(W0, X.T) / sD]                                      # (B, N, P)
            for l in range(L - 1):
                hW = np.matmul(Ws[l], hs[-1].astype(dtype)).astype(np.float64)
                hW += np.matmul(U[l], np.matmul(np.swapaxes(V[l], 1, 2), hs[-1]))
                hs.append(hW / sN)
            f = np.einsum("bn,bnp->bp", w, hs[-1]) / (gamma * N)
            F[b0:b0 + B, t] = f
            zs = [None] * L
            zs[L - 1] = w
            for l in range(L - 1, 0, -1):                                       # z^l = W_l(t)^T z^{l+1} / sqrt N
                z = np.matmul(zs[l][:, None, :].astype(dtype), Ws[l - 1])[:, 0, :].astype(np.float64)
                z += np.einsum("bnk,bk->bn", V[l - 1], np.einsum("bnk,bn->bk", U[l - 1], zs[l]))
                zs[l - 1] = z / sN
            G = [np.einsum("bn,bn->b", z, z) / N for z in zs]
            Phi = [np.einsum("bna,bnc->bac", h, h) / N for h in hs]
            ntk = G[0][:, None, None] * Kx[None]
            for l in range(1, L + 1):
                ntk = ntk + (G[l][:, None, None] * Phi[l - 1] if l < L else Phi[l - 1])
            NTK[b0:b0 + B, t] = ntk
            if t == steps:
                break
            e = (y[None] - f) / P                                                # Dt = Delta / P
            new_w = w + c * np.einsum("bnp,bp->bn", hs[-1], e)
            for l in range(L - 1):                                              # W_l += (c/sqrt N) z^{l+1} (h^l e)^T
                U[l] = np.concatenate([U[l], (c / sN) * zs[l + 1][:, :, None]], 2)
                V[l] = np.concatenate([V[l], np.einsum("bnp,bp->bn", hs[l], e)[:, :, None]], 2)
            W0 += (c / sD) * zs[0][:, :, None] * (e @ X)[:, None, :]               # W0 += (c/sqrt D) z^1 (X^T e)^T
            w = new_w
    return F, NTK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--P", type=int, default=6)
    ap.add_argument("--D", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--gamma0", type=float, default=1.0)
    ap.add_argument("--float64", action="store_true")
    a = ap.parse_args()
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    import limits
    d = limits.datasets.teacher(P=a.P, D=a.D, seed=a.data_seed)
    t0 = time.time()
    F, NTK = simulate(d.X, d.y, a.depth, a.width, a.lr, a.steps, gamma=a.gamma0, seeds=a.seeds, batch=a.batch, seed=a.seed,
                      dtype=np.float64 if a.float64 else np.float32)
    os.makedirs(os.path.join(HERE, "sims"), exist_ok=True)
    name = f"d{a.depth}_N{a.width}_S{a.seeds}_s{a.seed}_P{a.P}_D{a.D}_ds{a.data_seed}_lr{a.lr}_T{a.steps}"
    name += f"_g{a.gamma0}" if a.gamma0 != 1.0 else ""
    name += "_f64" if a.float64 else ""
    np.savez(os.path.join(HERE, "sims", name + ".npz"), F=F, NTK=NTK)
    print(f"{name}: {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
