r"""Is the cavity form of the depth-2 DMFT right at width N?  Replicas of the "finite-N mean-field model".

Hypothesis (README, "A candidate route"): the width-N network behaves, to O(1/N) in the fluctuations of its order
parameters, like two populations of N i.i.d. neurons coupled only by the *empirical* order parameters

    Phi1 = <phi1 phi1^T>,  G2 = <g2 g2^T>,  A = <d phi1 / d rt>,  B = <d g2 / d ut>,  f = <w phi2> / gamma,

where layer-1 neuron i is driven by a Gaussian backward field rt_i ~ N(0, G2) plus the Onsager term B phi1_i, and
layer-2 neuron j by a Gaussian forward field ut_j ~ N(0, Phi1) plus A g2_j (derivation.md section 1 for the rest).
At N = inf this is the DMFT. Here each replica is such a model with N neurons per layer, solved exactly at its own
fixed point (causal: a fixed number of passes). N Cov(f) over replicas is then compared with the ensembles of the
real network at the same N (no delta method, so no Jacobian noise: if the hypothesis is wrong, it shows here).

    python cavity.py ACT N R T        # e.g. tanh 256 2048 5; linear 256 2048 5 (against deep_linear)
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototype  # noqa: E402

ACT = prototype.ACT


def _chol(M):
    scale = jnp.max(jnp.diag(M))
    return jnp.linalg.cholesky(M + 1e-12 * scale * jnp.eye(M.shape[0]))


def layer1(cst, q, u, rt):
    """One layer-1 neuron: sources u (P,), backward Gaussian field rt (n,). Returns phi1 (n,), x (n,), g1 (n,)."""
    phi, dphi = ACT[cst["act"]]
    P, T1, c, Kx = cst["P"], cst["T1"], cst["c"], cst["Kx"]
    b1, b2 = cst["b"][0], cst["b"][1]
    k1, k2 = cst["kappa"][0], cst["kappa"][1]
    Dt = cst["mask"] * (cst["y"] - q["F"]) / cst["Ptr"]  # (T1, P)
    B, G2 = q["B"].reshape(T1, P, T1, P), q["G2"].reshape(T1, P, T1, P)
    phis, gs = [], []
    for t in range(T1):
        h1 = b1 * u + sum((c * k1 * (Dt[s] * gs[s]) @ Kx for s in range(t)), jnp.zeros(P))
        phis.append(phi(h1))
        x = rt[t * P:(t + 1) * P] + sum((B[t, :, s, :] @ phis[s] for s in range(t + 1)), jnp.zeros(P))
        z1 = b2 * x + sum((c * k2 * G2[t, :, s, :] @ (Dt[s] * phis[s]) for s in range(t)), jnp.zeros(P))
        gs.append(dphi(h1) * z1)
    return jnp.concatenate(phis), jnp.concatenate(gs)


def layer2(cst, q, ut, r):
    """One layer-2 neuron: forward Gaussian field ut (n,), readout source r (). Returns g2, phi2 (n,), w phi2 (T1, P)."""
    phi, dphi = ACT[cst["act"]]
    P, T1, c = cst["P"], cst["T1"], cst["c"]
    b2 = cst["b"][1]
    k2, k3 = cst["kappa"][1], cst["kappa"][2]
    Dt = cst["mask"] * (cst["y"] - q["F"]) / cst["Ptr"]
    A, P1 = q["A"].reshape(T1, P, T1, P), q["P1"].reshape(T1, P, T1, P)
    gs, ps, wp = [], [], []
    for t in range(T1):
        y = ut[t * P:(t + 1) * P] + sum((A[t, :, s, :] @ gs[s] for s in range(t)), jnp.zeros(P))
        h2 = b2 * y + sum((c * k2 * P1[t, :, s, :] @ (Dt[s] * gs[s]) for s in range(t)), jnp.zeros(P))
        w = r + sum((c * k3 * ps[s] @ Dt[s] for s in range(t)), 0.0)
        ps.append(phi(h2))
        gs.append(dphi(h2) * w)
        wp.append(w * ps[-1])
    return jnp.concatenate(gs), jnp.concatenate(ps), jnp.stack(wp)


def replica_map(cst):
    """q -> <O>(q) for one replica with sources (u (N,P), e1 (N,n), r (N,), e2 (N,n))."""

    def obar(q, src):
        u, e1, r, e2 = src
        N = u.shape[0]
        rt = e1 @ _chol(q["G2"]).T
        ut = e2 @ _chol(q["P1"]).T
        phi1, _ = jax.vmap(lambda a, b: layer1(cst, q, a, b))(u, rt)
        A = jax.vmap(jax.jacfwd(lambda a, b: layer1(cst, q, a, b)[0], argnums=1))(u, rt).mean(0)
        g2, _, wp = jax.vmap(lambda a, b: layer2(cst, q, a, b))(ut, r)
        B = jax.vmap(jax.jacfwd(lambda a, b: layer2(cst, q, a, b)[0], argnums=0))(ut, r).mean(0)
        return {"P1": phi1.T @ phi1 / N, "G2": g2.T @ g2 / N, "A": A, "B": B, "F": wp.mean(0) / cst["gamma"]}

    return obar


def solve_replicas(cst, N, R, seed=0, chunk=64):
    n, P, T1 = cst["T1"] * cst["P"], cst["P"], cst["T1"]
    obar = jax.jit(jax.vmap(replica_map(cst), in_axes=(0, 0)))
    Cx = np.linalg.cholesky(np.asarray(cst["Kx"]) + 1e-14 * np.eye(P))
    out = []
    for c0 in range(0, R, chunk):
        rng = np.random.default_rng([seed, c0])
        Rc = min(chunk, R - c0)
        src = (jnp.asarray(rng.standard_normal((Rc, N, P)) @ Cx.T), jnp.asarray(rng.standard_normal((Rc, N, n))),
               jnp.asarray(rng.standard_normal((Rc, N))), jnp.asarray(rng.standard_normal((Rc, N, n))))
        q = {"P1": jnp.tile(jnp.eye(n), (Rc, 1, 1)), "G2": jnp.tile(jnp.eye(n), (Rc, 1, 1)),
             "A": jnp.zeros((Rc, n, n)), "B": jnp.zeros((Rc, n, n)), "F": jnp.zeros((Rc, T1, P))}
        for _ in range(4 * T1 + 4):  # causal stages: exact after a fixed number of passes
            q_new = obar(q, src)
            res = max(float(jnp.max(jnp.abs(q_new[k] - q[k]))) for k in q)
            q = q_new
        out.append(np.asarray(q["F"]))
        print(f"  replicas {c0 + Rc}/{R}: fixed-point residual {res:.1e}", flush=True)
    return np.concatenate(out)


def main(act, N, R, T):
    import limits
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    cst = prototype.constants(act, d.X, d.y, 0.5, T)
    t0 = time.time()
    F = solve_replicas(cst, N, R)
    C = N * np.einsum("rtp,rtq->tpq", F - F.mean(0), F - F.mean(0)) / (R - 1)
    print(f"[{act}] cavity replicas: N={N}, R={R}, T={T} ({time.time() - t0:.0f} s); mean f(T) {np.round(F.mean(0)[-1], 4)}")
    ref = {}
    if act == "linear":
        from limits.dmft.finite_width_linear import deep_linear
        lim = limits.param("mup", 2).dmft_limit()
        Kx = np.asarray(d.X) @ np.asarray(d.X).T / d.X.shape[1]
        res = deep_linear(lim, Kx_all=Kx, y_all=np.asarray(d.y), train_mask=np.ones(4), lr=0.5, steps=T)
        ref["deep_linear (exact O(1/N))"] = res.cov
    for fn in sorted(os.listdir(prototype.HERE)):
        if fn.startswith(f"ens_{act}_N{N}_") and fn.endswith("_seed0.npz"):
            z = np.load(os.path.join(prototype.HERE, fn))
            if z["cov"].shape[0] >= T + 1:
                ref[fn] = N * z["cov"][:T + 1]
    for name, Cr in ref.items():
        tr, trr = np.trace(C, axis1=1, axis2=2), np.trace(Cr, axis1=1, axis2=2)
        print(f"  vs {name}: sum tr ratio (cavity/ref) {tr.sum() / trr.sum():.3f}, relF {prototype.relF(C, Cr):.3f}")
        print("   per t tr: cavity " + " ".join(f"{v:.3f}" for v in tr) + "\n             ref    " +
              " ".join(f"{v:.3f}" for v in trr))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
