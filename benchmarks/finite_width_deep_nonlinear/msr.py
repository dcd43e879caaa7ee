r"""Delta method on the cavity form of the depth-2 DMFT, with the cavity's and the MSR action's covariances.

Order parameters ``q = (Phi1, A, G2, B, F)`` (``cavity.py``; ``A = <d phi1 / d rt>``, ``B = <d g2 / d ut>``). Per path
the operators are ``O1 = (phi1 phi1^T, M1)`` (layer 1, ``M1 = d phi1 / d rt``) and ``O2 = (g2 g2^T, M2, F)`` (layer 2,
``M2 = d g2 / d ut``, ``F = w phi2 / gamma``). Then ``N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T}`` with
``D = d<O>/dq`` and ``kappa`` either

- "cavity": the plain path covariance of ``O``; or
- "msr": the covariances of the operators that carry a conjugate field as second-order responses
  (README, "Where the cavity form and the MSR action differ"):
  ``kappa_AA(ab, cd) += <M_ad M_cb>`` and ``kappa_PhiA(ac, ef) += <(M_af phi_c + phi_a M_cf) phi_e>``, the same for
  layer 2 with ``g``, and ``kappa_FB(t, ef) += <(dF_t / d ut_f) g_e>``. The second-derivative terms vanish for a
  linear network, which is the only case run here.

The "cavity" variant should reproduce the cavity replicas (``cavity_output.txt``, 10-18% low). The "msr" variant
should reproduce the exact linear theory (``deep_linear``) if the MSR bookkeeping is right.

    python msr.py T S
"""
from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cavity  # noqa: E402
import prototype  # noqa: E402

KEYS = ("P1", "A", "G2", "B", "F")


def flatten(q):
    return jnp.concatenate([q[k].reshape(-1) for k in KEYS])


def unflatten(v, n, T1, P):
    out, o = {}, 0
    for k in KEYS:
        shape = (T1, P) if k == "F" else (n, n)
        size = int(np.prod(shape))
        out[k] = v[o:o + size].reshape(shape)
        o += size
    return out


def sym(q):
    return {**q, "P1": (q["P1"] + q["P1"].T) / 2, "G2": (q["G2"] + q["G2"].T) / 2}


def per_path(cst, q, src):
    """Per-path phi1 (S,n), M1 (S,n,n), g2 (S,n), M2 (S,n,n), F (S,n), dF/dut (S,n,n)."""
    u, e1, r, e2 = src
    q = sym(q)
    rt = e1 @ cavity._chol(q["G2"]).T
    ut = e2 @ cavity._chol(q["P1"]).T
    phi1 = jax.vmap(lambda a, b: cavity.layer1(cst, q, a, b)[0])(u, rt)
    M1 = jax.vmap(jax.jacfwd(lambda a, b: cavity.layer1(cst, q, a, b)[0], argnums=1))(u, rt)
    f2 = lambda a, b: cavity.layer2(cst, q, a, b)  # noqa: E731
    g2 = jax.vmap(lambda a, b: f2(a, b)[0])(ut, r)
    M2 = jax.vmap(jax.jacfwd(lambda a, b: f2(a, b)[0], argnums=0))(ut, r)
    F = jax.vmap(lambda a, b: f2(a, b)[2].reshape(-1) / cst["gamma"])(ut, r)
    dF = jax.vmap(jax.jacfwd(lambda a, b: f2(a, b)[2].reshape(-1) / cst["gamma"], argnums=0))(ut, r)
    return phi1, M1, g2, M2, F, dF


def means(cst, qv, src, n, T1, P):
    phi1, M1, g2, M2, F, _ = per_path(cst, unflatten(qv, n, T1, P), src)
    S = phi1.shape[0]
    return jnp.concatenate([(phi1.T @ phi1 / S).reshape(-1), M1.mean(0).reshape(-1), (g2.T @ g2 / S).reshape(-1),
                            M2.mean(0).reshape(-1), F.mean(0)])


def kappa(paths, variant, second=None):
    phi1, M1, g2, M2, F, dF = (np.asarray(a) for a in paths)
    S, n = phi1.shape
    O1 = np.concatenate([(phi1[:, :, None] * phi1[:, None, :]).reshape(S, -1), M1.reshape(S, -1)], axis=1)
    O2 = np.concatenate([(g2[:, :, None] * g2[:, None, :]).reshape(S, -1), M2.reshape(S, -1), F], axis=1)
    k1, k2 = np.cov(O1.T), np.cov(O2.T)
    if variant == "msr":
        n2 = n * n
        for k, x, M in ((k1, phi1, M1), (k2, g2, M2)):
            k[n2:2 * n2, n2:2 * n2] += np.einsum("pad,pcb->abcd", M, M, optimize=True).reshape(n2, n2) / S
            extra = (np.einsum("paf,pc,pe->acef", M, x, x, optimize=True)
                     + np.einsum("pa,pcf,pe->acef", x, M, x, optimize=True)).reshape(n2, n2) / S
            k[:n2, n2:2 * n2] += extra
            k[n2:2 * n2, :n2] += extra.T
        if second is not None:  # nonlinear: the second-derivative part of kappa_AA, kappa_BB
            k1[n2:2 * n2, n2:2 * n2] += second[0]
            k2[n2:2 * n2, n2:2 * n2] += second[1]
        extra = np.einsum("ptf,pe->tef", dF, g2, optimize=True).reshape(n, n2) / S  # F rows, B columns (e, f)
        k2[2 * n2:, n2:2 * n2] += extra
        k2[n2:2 * n2, 2 * n2:] += extra.T
    K = np.zeros((k1.shape[0] + k2.shape[0],) * 2)
    K[:k1.shape[0], :k1.shape[0]] = k1
    K[k1.shape[0]:, k1.shape[0]:] = k2
    return K


def second_derivative_terms(cst, q, src, chunk=2048):
    """``<x_a d_b d_d x_c> + <x_c d_b d_d x_a>`` as (ab, cd) matrices for layer 1 (``x = phi1``, derivatives in
    ``rt``) and layer 2 (``x = g2``, derivatives in ``ut``): the part of ``kappa_AA``, ``kappa_BB`` that vanishes for
    a linear network. Accumulated over chunks of paths (the per-path Hessians are n^3)."""
    u, e1, r, e2 = src
    q = sym(q)
    rt_all = e1 @ cavity._chol(q["G2"]).T
    ut_all = e2 @ cavity._chol(q["P1"]).T
    f1 = lambda a, b: cavity.layer1(cst, q, a, b)[0]  # noqa: E731
    f2 = lambda a, b: cavity.layer2(cst, q, a, b)[0]  # noqa: E731

    @jax.jit
    def part(u, rt, ut, r):
        x1, H1 = jax.vmap(f1)(u, rt), jax.vmap(jax.hessian(f1, argnums=1))(u, rt)
        x2, H2 = jax.vmap(f2)(ut, r), jax.vmap(jax.hessian(f2, argnums=0))(ut, r)
        t1 = jnp.einsum("pa,pcbd->abcd", x1, H1) + jnp.einsum("pc,pabd->abcd", x1, H1)
        t2 = jnp.einsum("pa,pcbd->abcd", x2, H2) + jnp.einsum("pc,pabd->abcd", x2, H2)
        return t1, t2

    S, n = u.shape[0], rt_all.shape[1]
    T1, T2 = np.zeros((n, n, n, n)), np.zeros((n, n, n, n))
    for i0 in range(0, S, chunk):
        sl = slice(i0, i0 + chunk)
        a, b = part(u[sl], rt_all[sl], ut_all[sl], r[sl])
        T1 += np.asarray(a)
        T2 += np.asarray(b)
    return T1.reshape(n * n, n * n) / S, T2.reshape(n * n, n * n) / S


def main(T, S, act="linear", SD=None, chunk=32):
    import limits
    from limits.dmft.finite_width_linear import deep_linear
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    cst = prototype.constants(act, d.X, d.y, 0.5, T)
    P, T1 = cst["P"], cst["T1"]
    n = T1 * P
    rng = np.random.default_rng(0)
    Cx = np.linalg.cholesky(np.asarray(cst["Kx"]) + 1e-14 * np.eye(P))
    src = tuple(jnp.asarray(a) for a in (rng.standard_normal((S, P)) @ Cx.T, rng.standard_normal((S, n)),
                                         rng.standard_normal(S), rng.standard_normal((S, n))))
    t0 = time.time()
    obar = jax.jit(cavity.replica_map(cst))
    q = {"P1": jnp.eye(n), "G2": jnp.eye(n), "A": jnp.zeros((n, n)), "B": jnp.zeros((n, n)), "F": jnp.zeros((T1, P))}
    for _ in range(4 * T1 + 4):
        q = obar(q, src)
    qv = flatten(q)
    SD = SD or S
    srcD = tuple(a[:SD] for a in src)
    m = jax.jit(lambda v: means(cst, v, srcD, n, T1, P))
    _, lin = jax.linearize(m, qv)
    vlin = jax.jit(jax.vmap(lin))
    dim = qv.shape[0]
    D = np.zeros((dim, dim))
    for i0 in range(0, dim, chunk):
        E = np.eye(dim)[i0:i0 + chunk]
        D[:, i0:i0 + E.shape[0]] = np.asarray(vlin(jnp.asarray(E))).T
    paths = jax.jit(lambda qq: per_path(cst, qq, src))(q)
    R = np.linalg.inv(np.eye(dim) - D)
    second = None if act == "linear" else second_derivative_terms(cst, q, src)
    if act == "linear":
        lim = limits.param("mup", 2).dmft_limit()
        Kx = np.asarray(d.X) @ np.asarray(d.X).T / d.X.shape[1]
        exact = deep_linear(lim, Kx_all=Kx, y_all=np.asarray(d.y), train_mask=np.ones(P), lr=0.5, steps=T).cov
        name = "exact"
    else:  # the stored ensembles of the real network (sim.py), truncated to T steps
        fn = sorted(f for f in os.listdir(prototype.HERE) if f.startswith(f"ens_{act}_N256_") and "_T12_" in f)[-1]
        exact, name = 256 * np.load(os.path.join(prototype.HERE, fn))["cov"][:T1], fn
    print(f"[{act}] T={T}, S={S}: dim q = {dim}, {time.time() - t0:.0f} s; {name} per-t tr "
          + " ".join(f"{v:.3f}" for v in np.trace(exact, axis1=1, axis2=2)))
    for variant in ("cavity", "msr"):
        Sig = R @ kappa(paths, variant, second) @ R.T
        cf = Sig[-n:, -n:].reshape(T1, P, T1, P)
        cf = np.stack([cf[t, :, t, :] for t in range(T1)])
        tr = np.trace(cf, axis1=1, axis2=2)
        print(f"  {variant:7s} per-t tr " + " ".join(f"{v:.3f}" for v in tr)
              + f"  | summed ratio to reference {tr.sum() / np.trace(exact, axis1=1, axis2=2).sum():.3f}, "
              f"relF {prototype.relF(cf, exact):.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *(sys.argv[3:4] or []))
