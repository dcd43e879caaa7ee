r"""O(1/N) prediction covariance of a depth-2 MLP (any smooth activation) by the delta method on an exact
two-population representation of the width-N network (derivation.md).

Per neuron of layer 1 (randoms u ~ N(0, Kx), eps1(t) ~ N(0, I_P)) and of layer 2 (r ~ N(0, 1), eps2(t) ~ N(0, I_P)),
the trajectory is a deterministic function of its own randoms and of the global order parameters q (empirical
averages over a population).  q is the fixed point q = <O>(q); N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T},
D = d<O>/dq, kappa = per-neuron covariance of O (block diagonal by population).

Run:  python prototype.py  (prints the validation table; needs the ensembles of sim.py for the tanh rows).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

jax.config.update("jax_enable_x64", True)

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = float(os.environ.get("PROTO_TOL", "1e-11"))  # relative eigenvalue below which a queried direction is structurally absent

ACT = {
    "tanh": (jnp.tanh, lambda h: 1.0 - jnp.tanh(h) ** 2),
    "linear": (lambda h: h, lambda h: jnp.ones_like(h)),
}
ACTIVE = ("P1", "XP", "PXI", "G2", "YG", "GZ", "F")  # order parameters that feed back
PASSIVE = ("PHI2", "G1")  # observed only


# --------------------------------------------------------------------------------------------- linear algebra
def _structure(G, scale):
    """Fixed (stop-gradient) basis V of the live eigen-directions of the PSD matrix G (dead columns zeroed)."""
    lam, U = jnp.linalg.eigh(jax.lax.stop_gradient(G))
    keep = (lam > TOL * scale).astype(G.dtype)
    return U * keep, keep


def gsharp(G, scale):
    """Smooth pseudo-inverse V (V^T G V)^{-1} V^T with V fixed at the evaluation point (= G^{-1} if full rank)."""
    V, keep = _structure(G, scale)
    Gam = V.T @ G @ V + jnp.diag(1.0 - keep)
    return V @ jnp.linalg.solve(Gam, V.T)


def factor(S, scale):
    """L (P, P) with L L^T = S (structural rank r: S V chol(V^T S V)^{-T}; = chol(S) for full rank)."""
    V, keep = _structure(S, scale)
    Gam = V.T @ S @ V + jnp.diag(1.0 - keep)
    Lam = jnp.linalg.cholesky(Gam)
    return jax.scipy.linalg.solve_triangular(Lam, (S @ V).T, lower=True).T


# --------------------------------------------------------------------------------------------- the two populations
def paths(q, rnd, cst):
    """All per-neuron histories of both populations given the global order parameters q (dict of (n, n) arrays and
    F (T1, P)).  rnd = (u (S,P), e1 (T1,S,P), r (S,), e2 (T1,S,P)).  Returns a dict of (S, n) histories."""
    phi, dphi = ACT[cst["act"]]
    u, e1, r, e2 = rnd
    P, T1 = cst["P"], cst["T1"]
    c, Kx, ytr, mask = cst["c"], cst["Kx"], cst["y"], cst["mask"]
    b1, b2 = cst["b"][0], cst["b"][1]
    k1, k2, k3 = cst["kappa"]
    P1, XP, PXI, G2, YG, GZ = (q[k] for k in ("P1", "XP", "PXI", "G2", "YG", "GZ"))
    sl = lambda t: slice(t * P, (t + 1) * P)  # noqa: E731
    H = {k: [] for k in ("h1", "phi1", "x", "xi", "z1", "g1", "y", "zeta", "h2", "w", "phi2", "g2")}
    Dt = []
    cat = lambda k: jnp.concatenate(H[k], axis=1)  # noqa: E731  (S, tP)
    for t in range(T1):
        # ---- layer 1, forward: h1(t) = b1 u + c k1 sum_{s<t} (Dt(s) g1(s)) Kx
        h1 = b1 * u + sum((c * k1 * (Dt[s] * H["g1"][s]) @ Kx for s in range(t)), jnp.zeros_like(u))
        H["h1"].append(h1)
        H["phi1"].append(phi(h1))
        # ---- forward query of W1 on phi1(t):  y = B GB# (<X,a> - <B,Y> alpha - <B,zeta>) + Y alpha + zeta
        scA = jnp.max(jnp.diag(P1))
        if t == 0:
            SF = P1[sl(0), sl(0)]
        else:
            I = slice(0, t * P)
            alpha = gsharp(P1[I, I], scA) @ P1[I, sl(t)]
            SF = P1[sl(t), sl(t)] - P1[sl(t), I] @ alpha
        zeta = e2[t] @ factor(SF, scA).T
        y = zeta
        if t > 0:
            scB = jnp.max(jnp.diag(G2))
            coefF = gsharp(G2[I, I], scB) @ (XP[I, sl(t)] - YG[I, I].T @ alpha - GZ[I, sl(t)])
            y = y + cat("g2") @ coefF + cat("y") @ alpha
        H["zeta"].append(zeta)
        H["y"].append(y)
        # ---- layer 2 fields
        h2 = b2 * y + sum((c * k2 * (Dt[s] * H["g2"][s]) @ P1[sl(t), sl(s)].T for s in range(t)), jnp.zeros_like(y))
        w = r + sum((c * k3 * H["phi2"][s] @ Dt[s] for s in range(t)), jnp.zeros_like(r))
        H["h2"].append(h2)
        H["phi2"].append(phi(h2))
        H["w"].append(jnp.broadcast_to(w[:, None], h2.shape))
        H["g2"].append(dphi(h2) * w[:, None])
        Dt.append(mask * (ytr - q["F"][t]) / cst["Ptr"])
        # ---- backward query of W1^T on g2(t):  x = A' GA'# (<Y',b> - <A',X> beta - <A',xi>) + X beta + xi
        scB = jnp.max(jnp.diag(G2))
        Ip = slice(0, (t + 1) * P)
        if t == 0:
            SB = G2[sl(0), sl(0)]
            rhs = YG[Ip, sl(t)] - PXI[Ip, sl(t)]
        else:
            beta = gsharp(G2[I, I], scB) @ G2[I, sl(t)]
            SB = G2[sl(t), sl(t)] - G2[sl(t), I] @ beta
            rhs = YG[Ip, sl(t)] - XP[I, Ip].T @ beta - PXI[Ip, sl(t)]
        xi = e1[t] @ factor(SB, scB).T
        coefB = gsharp(P1[Ip, Ip], scA) @ rhs
        x = xi + cat("phi1") @ coefB
        if t > 0:
            x = x + cat("x") @ beta
        H["xi"].append(xi)
        H["x"].append(x)
        z1 = b2 * x + sum((c * k2 * (Dt[s] * H["phi1"][s]) @ G2[sl(t), sl(s)].T for s in range(t)),
                          jnp.zeros_like(x))
        H["z1"].append(z1)
        H["g1"].append(dphi(h1) * z1)
    return {k: jnp.concatenate(v, axis=1) for k, v in H.items()}


def means(h, cst, passive=True):
    """Population averages <O> (same structure as q, plus the passive kernels)."""
    S = h["phi1"].shape[0]
    m = lambda a, b: a.T @ b / S  # noqa: E731
    F = jnp.mean(h["w"] * h["phi2"], axis=0).reshape(cst["T1"], cst["P"]) / cst["gamma"]
    return {"P1": m(h["phi1"], h["phi1"]), "XP": m(h["x"], h["phi1"]), "PXI": m(h["phi1"], h["xi"]),
            "G2": m(h["g2"], h["g2"]), "YG": m(h["y"], h["g2"]), "GZ": m(h["g2"], h["zeta"]), "F": F,
            **({"PHI2": m(h["phi2"], h["phi2"]), "G1": m(h["g1"], h["g1"])} if passive else {})}


LAYER = {"P1": 1, "XP": 1, "PXI": 1, "G1": 1, "G2": 2, "YG": 2, "GZ": 2, "F": 2, "PHI2": 2}


def per_path(h, cst):
    """Per-neuron O_i (S, dim) for each population, in the flat order of ravel_pytree(q) restricted to it."""
    o = lambda a, b: (a[:, :, None] * b[:, None, :]).reshape(a.shape[0], -1)  # noqa: E731
    F = (h["w"] * h["phi2"]) / cst["gamma"]
    return {"P1": o(h["phi1"], h["phi1"]), "XP": o(h["x"], h["phi1"]), "PXI": o(h["phi1"], h["xi"]),
            "G2": o(h["g2"], h["g2"]), "YG": o(h["y"], h["g2"]), "GZ": o(h["g2"], h["zeta"]), "F": F,
            "PHI2": o(h["phi2"], h["phi2"]), "G1": o(h["g1"], h["g1"])}


# --------------------------------------------------------------------------------------------- setup and solve
def constants(act, X, y, lr, steps, param="mup"):
    import limits
    lim = limits.param(param, 2).dmft_limit()
    X = np.asarray(X, np.float64)
    P, Dd = X.shape
    return {"act": act, "P": P, "Ptr": float(P), "T1": steps + 1, "c": lr * lim.gamma, "gamma": lim.gamma,
            "Kx": jnp.asarray(X @ X.T / Dd), "y": jnp.asarray(np.asarray(y, np.float64)),
            "mask": jnp.ones(P), "b": tuple(float(v) for v in lim.b), "kappa": tuple(float(v) for v in lim.kappa),
            "lr": lr, "limit": lim}


def draw(cst, S, seed):
    rng = np.random.default_rng(seed)
    P, T1 = cst["P"], cst["T1"]
    C = np.linalg.cholesky(np.asarray(cst["Kx"]) + 1e-14 * np.eye(P))
    u = rng.standard_normal((S, P)) @ C.T
    return tuple(jnp.asarray(a) for a in (u, rng.standard_normal((T1, S, P)), rng.standard_normal(S),
                                          rng.standard_normal((T1, S, P))))


def zero_q(cst):
    n = cst["T1"] * cst["P"]
    q = {k: jnp.zeros((n, n)) for k in ACTIVE + PASSIVE if k != "F"}
    q["F"] = jnp.zeros((cst["T1"], cst["P"]))
    q["P1"] = q["P1"] + jnp.eye(n)
    q["G2"] = q["G2"] + jnp.eye(n)
    return q


def solve(cst, rnd, iters=None):
    """Fixed point q* = <O>(q*) on the sample rnd (causal: exact after ~ 2 (T+1) + 2 passes)."""
    f = jax.jit(lambda q: means(paths(q, rnd, cst), cst))
    q = zero_q(cst)
    iters = iters or 3 * cst["T1"] + 4
    for _ in range(iters):
        q_new = f(q)
        res = max(float(jnp.max(jnp.abs(q_new[k] - q[k]))) for k in q)
        q = q_new
    return q, res


def projected_path_covariance(h, cst, blocks, chunk=2048):
    """``sum over populations (keys, M) of Cov_paths(O_keys @ M)``: kappa projected on the rows ``M`` (dim, r) of
    the observables, never formed. ``h``: the paths' histories; the populations are independent (block diagonal)."""
    S = h["phi1"].shape[0]
    cov = 0.0
    for keys, M in blocks:
        Z = np.zeros((S, M.shape[1]))
        for i0 in range(0, S, chunk):
            O = per_path({k: v[i0:i0 + chunk] for k, v in h.items()}, cst)
            Z[i0:i0 + chunk] = np.concatenate([np.asarray(O[k]) for k in keys], axis=1) @ M
        Z = Z - Z.mean(0)
        cov = cov + Z.T @ Z / (S - 1)
    return cov


def width_covariance(cst, rnd, rnd_D=None, chunk=64, verbose=True):
    """N Cov of (f, passive kernels, all q) by the delta method.  Returns dict with 'q', 'covf' (T1,P,P),
    'M' rows, timings.  rnd_D: (smaller) sample for the Jacobian D (default: rnd)."""
    t0 = time.time()
    q, res = solve(cst, rnd)
    t1 = time.time()
    flat, unravel = ravel_pytree(q)
    # the map over the active entries only
    idx_of = {}
    off = 0
    for k in sorted(q):  # ravel_pytree order of a dict = sorted keys
        sz = int(np.prod(q[k].shape))
        idx_of[k] = np.arange(off, off + sz)
        off += sz
    act_idx = np.concatenate([idx_of[k] for k in sorted(q) if k in ACTIVE])
    rD = rnd if rnd_D is None else rnd_D

    act_keys = [k for k in sorted(q) if k in ACTIVE]

    def obar(v):  # <O> of the active order parameters as a function of the active ones
        qq = unravel(flat.at[act_idx].set(v))
        mm = means(paths(qq, rD, cst), cst, passive=False)
        return jnp.concatenate([mm[k].reshape(-1) for k in act_keys])

    P, n = cst["P"], cst["T1"] * cst["P"]
    pas_idx = np.concatenate([idx_of[k][np.array([a * n + b for a in range(P) for b in range(P)])]
                              for k in sorted(q) if k in PASSIVE])  # t = s = 0 blocks of the passive kernels

    def obar_pas(v):
        qq = unravel(flat.at[act_idx].set(v))
        mm = means(paths(qq, rD, cst), cst)
        return jnp.concatenate([mm[k][:P, :P].reshape(-1) for k in sorted(q) if k in PASSIVE])

    v0 = flat[act_idx]
    _, lin = jax.linearize(obar, v0)
    vlin = jax.jit(jax.vmap(lin))
    dim, m = len(act_idx), len(flat)
    Dfull = np.zeros((m, dim))
    for i0 in range(0, dim, chunk):
        E = np.zeros((min(chunk, dim - i0), dim))
        E[np.arange(E.shape[0]), i0 + np.arange(E.shape[0])] = 1.0
        Dfull[act_idx, i0:i0 + E.shape[0]] = np.asarray(vlin(jnp.asarray(E))).T
    Dfull[pas_idx] = np.asarray(jax.jacrev(obar_pas)(v0))
    t2 = time.time()
    # delta q_active = (I - D_aa)^{-1} eps_a ;  delta q_all = eps + D_{all,a} delta q_a
    Daa = Dfull[act_idx]
    Minv = np.linalg.inv(np.eye(dim) - Daa)
    Mall = Dfull @ Minv  # (m, dim): maps eps_a to the feedback part
    # per-path fluctuations (population-wise)
    h = {k: np.asarray(v) for k, v in jax.jit(lambda qq: paths(qq, rnd, cst))(q).items()}
    out = {}
    # Z^(p)_i = (rows of interest) applied to the centred per-path O of population p, for p = 1, 2
    blk0 = np.array([a * n + b for a in range(P) for b in range(P)])
    rows = {"F": idx_of["F"], "P1": idx_of["P1"][blk0], "PHI2": idx_of["PHI2"][blk0], "G1": idx_of["G1"][blk0]}
    Rsel = np.concatenate(list(rows.values()))
    R = np.zeros((len(Rsel), m))  # total response d q_all / d eps_all for the selected rows
    R[np.arange(len(Rsel)), Rsel] = 1.0
    R[:, act_idx] += Mall[Rsel]
    blocks = []
    for p in (1, 2):
        keys = [k for k in sorted(q) if LAYER[k] == p]
        blocks.append((keys, R[:, np.concatenate([idx_of[k] for k in keys])].T))
    cov = projected_path_covariance(h, cst, blocks)
    t3 = time.time()
    nF = len(rows["F"])
    covF = cov[:nF, :nF]
    T1, P = cst["T1"], cst["P"]
    c4 = covF.reshape(T1, P, T1, P)
    out["covf"] = np.stack([c4[t, :, t, :] for t in range(T1)])
    out["cov_rows"] = cov
    out["rows"] = {k: len(v) for k, v in rows.items()}
    out["q"] = q
    out["res"] = res
    out["times"] = (t1 - t0, t2 - t1, t3 - t2)
    out["dim"] = dim
    if verbose:
        print(f"  fixed point residual {res:.1e}; |q_active| = {dim}; times solve/D/cov = "
              f"{out['times'][0]:.1f}/{out['times'][1]:.1f}/{out['times'][2]:.1f} s", flush=True)
    return out


# --------------------------------------------------------------------------------------------- validation
def relF(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(S=16384, SD=8192, steps=3, ens=(128, 256, 512)):
    import limits
    from limits.dmft.finite_width_linear import deep_linear
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    X, y = np.asarray(d.X), np.asarray(d.y)
    P = X.shape[0]
    lr = 0.5
    print(f"teacher(P=4, D=8, seed=0), depth 2, muP, lr {lr}, {steps} steps; S = {S} paths (D on {SD})")
    res = {}
    for act in ("linear", "tanh"):
        cst = constants(act, X, y, lr, steps)
        rnd = draw(cst, S, seed=1)
        rndD = tuple(a[:SD] if a.ndim == 2 or a.ndim == 1 else a[:, :SD] for a in rnd)
        print(f"[{act}]")
        out = width_covariance(cst, rnd, rndD)
        res[act] = (cst, out)
    # ---- check 1: identity vs the exact deep-linear theory
    cst, out = res["linear"]
    lim = cst["limit"]
    ex = deep_linear(lim, Kx_all=np.asarray(cst["Kx"]), y_all=y, train_mask=np.ones(P), lr=lr, steps=steps,
                     kernels=(), mean_shift=False).cov
    print("\nCheck 1 (identity activation) vs deep_linear (exact):")
    print("   t   tr N Cov f (here)   tr (exact)    relF")
    for t in range(steps + 1):
        print(f"  {t:2d}   {np.trace(out['covf'][t]):14.5f}   {np.trace(ex[t]):11.5f}   {relF(out['covf'][t], ex[t]):.3f}")
    print(f"  summed trace ratio {np.trace(out['covf'], axis1=1, axis2=2).sum() / np.trace(ex, axis1=1, axis2=2).sum():.4f}"
          f", relF over all t {relF(out['covf'], ex):.4f}")
    # ---- check 2: tanh vs ensembles
    cst, out = res["tanh"]
    th = out["covf"]
    f_inf = np.asarray(out["q"]["F"])
    try:
        dm = limits.solve_dmft("mup", 2, X=X, y=y, activation="tanh", lr=lr, steps=steps)
        fd = np.asarray(dm.predictions)
        print(f"\n(tanh) q* predictions vs solve_dmft: max |diff| = {np.max(np.abs(fd - f_inf)):.2e} "
              f"(max |f| {np.max(np.abs(fd)):.2f})")
    except Exception as e:  # noqa: BLE001
        print("solve_dmft comparison failed:", e)
    print("\nCheck 2 (tanh) vs limits.simulate ensembles, N Cov f (summed over t = 0..T):")
    print("     N   seeds   sum tr (ens)   sum tr (theory)   ratio   relF   sampling err (rel)")
    for N in ens:
        fn = sorted(f for f in os.listdir(HERE) if f.startswith(f"ens_tanh_N{N}_") and f.endswith("_seed0.npz"))
        if not fn:
            continue
        z = np.load(os.path.join(HERE, fn[-1]))
        C = N * z["cov"][:steps + 1]  # trajectories up to t do not depend on later steps
        Sn = z["pred"].shape[0]
        se = np.sqrt((1 + np.trace(C, axis1=1, axis2=2).sum() ** 2 / np.sum(C ** 2) / (steps + 1)) / Sn)
        print(f"  {N:4d}  {Sn:6d}   {np.trace(C, axis1=1, axis2=2).sum():12.4f}   "
              f"{np.trace(th, axis1=1, axis2=2).sum():15.4f}   {np.trace(C, axis1=1, axis2=2).sum() / np.trace(th, axis1=1, axis2=2).sum():.3f}"
              f"   {relF(C, th):.3f}   ~{se:.3f}")
        res[f"ens{N}"] = C
    print("  per time, tr N Cov f:  theory | ensembles")
    for t in range(steps + 1):
        line = f"   t={t}  {np.trace(th[t]):9.4f} |"
        for N in ens:
            if f"ens{N}" in res:
                line += f" {np.trace(res[f'ens{N}'][t]):9.4f}"
        print(line)
    # ---- check 3: t = 0
    print("\nCheck 3 (t = 0):")
    for act in ("linear", "tanh"):
        cst, out = res[act]
        q = out["q"]
        Phi2_00 = np.asarray(q["PHI2"])[:P, :P]
        print(f"  [{act}] N Var f(0) vs Phi^2(0,0)/gamma^2: relF {relF(out['covf'][0], Phi2_00 / cst['gamma'] ** 2):.2e}")
        cov, rows = out["cov_rows"], out["rows"]
        st, off = {}, 0
        for k, v in rows.items():
            st[k] = off
            off += v
        # entries (mu, nu) of the t = s = 0 block of P1 and PHI2 (flattened n x n, row-major)
        idx = lambda k: st[k] + np.arange(P * P)  # noqa: E731  (t = s = 0 blocks)
        C11 = cov[np.ix_(idx("P1"), idx("P1"))]
        C22 = cov[np.ix_(idx("PHI2"), idx("PHI2"))]
        C12 = cov[np.ix_(idx("P1"), idx("PHI2"))]
        if act == "linear":
            K = np.asarray(cst["Kx"])
            base = (np.einsum("ma,nb->mnab", K, K) + np.einsum("mb,na->mnab", K, K)).reshape(P * P, P * P)
            print(f"    N Cov(Phi^1,Phi^1) / (KK+KK): relF {relF(C11, base):.2e};  N Cov(Phi^2,Phi^2) / 2(KK+KK): "
                  f"relF {relF(C22, 2 * base):.2e};  N Cov(Phi^1,Phi^2)/(KK+KK): relF {relF(C12, base):.2e}")
        else:
            ref = init_kernel_reference(cst, X)
            print(f"    vs direct finite-N init sampling (N={ref['N']}, {ref['S']} nets): "
                  f"relF Cov(Phi1,Phi1) {relF(C11, ref['C11']):.3f}, Cov(Phi2,Phi2) {relF(C22, ref['C22']):.3f}, "
                  f"Cov(Phi1,Phi2) {relF(C12, ref['C12']):.3f};  tr ratio Phi2: "
                  f"{np.trace(C22) / np.trace(ref['C22']):.3f} (Phi1 {np.trace(C11) / np.trace(ref['C11']):.3f})"
                  f";  growth tr C22/tr C11: {np.trace(C22) / np.trace(C11):.3f} (ref "
                  f"{np.trace(ref['C22']) / np.trace(ref['C11']):.3f})")
    return res


def init_kernel_reference(cst, X, N=512, S=3000, seed=7):
    """Direct sampling of finite networks at initialization: N Cov of Phi^1(0,0), Phi^2(0,0)."""
    rng = np.random.default_rng(seed)
    P, Dd = X.shape
    b1, b2 = cst["b"][0], cst["b"][1]
    K1, K2 = [], []
    for _ in range(S):
        W0 = rng.standard_normal((N, Dd))
        W1 = rng.standard_normal((N, N))
        p1 = np.tanh(b1 * W0 @ X.T / np.sqrt(Dd))
        p2 = np.tanh(b2 * W1 @ p1 / np.sqrt(N))
        K1.append((p1.T @ p1 / N).ravel())
        K2.append((p2.T @ p2 / N).ravel())
    K1, K2 = np.array(K1), np.array(K2)
    Cf = N * np.cov(np.concatenate([K1, K2], axis=1).T)
    m = P * P
    return {"N": N, "S": S, "C11": Cf[:m, :m], "C22": Cf[m:, m:], "C12": Cf[:m, m:]}


if __name__ == "__main__":
    kw = {}
    if len(sys.argv) > 1:
        kw["S"] = int(sys.argv[1])
    if len(sys.argv) > 2:
        kw["SD"] = int(sys.argv[2])
    if len(sys.argv) > 3:
        kw["steps"] = int(sys.argv[3])
    main(**kw)
