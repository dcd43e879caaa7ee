r"""N Cov(f) of the depth-2 MLP at width N without materializing D = d<O>/dq (adjoint version of prototype.py).

Only the rows of R = (I - D)^{-1} that belong to the predictions f (n = (T+1) P of them) are needed:
W = E_f (I - D)^{-1} solves W (I - D) = E_f.  D is causal (nilpotent), so the Neumann series
W = E_f + E_f D + E_f D^2 + ... terminates: the increments Delta_{k+1} = Delta_k D become exactly zero after at most
(number of causal stages) passes.  Each pass is one reverse-mode product Delta D = vjp of q -> <O>(q) at q*, with the
n rows of Delta as cotangents (the pullback is built once and vmapped over the rows; rows of f(t) whose increments
vanished -- early times die first -- are dropped).

Then N Cov(f) = W kappa W^T = sum over populations p of Cov_paths(O_i^(p) W_p^T): each path's O is projected onto
the n rows, kappa is never formed.  Same samples and conventions as prototype.width_covariance (D on the S_D prefix
of the paths, kappa on all S paths), so the two agree to round-off.

Cost per pass: O(n S_D n^2) (n cotangents through a forward pass of cost O(S_D n^2) up to the in-stage matrix
solves), number of passes = nilpotency index, memory O(n dim q + n S_D n) instead of O(dim q^2).

Run:  python prototype_adjoint.py check S SD T     (compare with prototype.width_covariance)
      python prototype_adjoint.py time S SD T [T ...]   (adjoint only: timings and peak memory)
      python prototype_adjoint.py ens S SD T      (adjoint vs the ensembles ens_tanh_N*_T{T}_seed0.npz)
"""
from __future__ import annotations

import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototype  # noqa: E402
from prototype import ACTIVE, LAYER, means, paths, relF  # noqa: E402

jax.config.update("jax_enable_x64", True)
HERE = prototype.HERE


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux: kB


def adjoint_rows(cst, q, rnd_D, chunk=None, max_iter=None, tol=0.0, verbose=True):
    """W = E_f (I - D_aa)^{-1} (n x dim q_active) by the terminating Neumann series with vjp's.

    Active entries are ordered as in prototype.width_covariance (sorted keys of q restricted to ACTIVE).
    Returns (W, info)."""
    act_keys = [k for k in sorted(q) if k in ACTIVE]
    v0, unravel = ravel_pytree({k: q[k] for k in act_keys})  # dict ravel = sorted keys = act_idx order
    passive = {k: v for k, v in q.items() if k not in ACTIVE}

    def obar(v, r):
        qq = {**unravel(v), **passive}
        mm = means(paths(qq, r, cst), cst, passive=False)
        return jnp.concatenate([mm[k].reshape(-1) for k in act_keys])

    # pullback built once at q* (residuals are outputs of the jit, a Partial pytree), then vmapped over rows
    ob0, pb = jax.jit(lambda v, r: jax.vjp(lambda vv: obar(vv, r), v))(v0, rnd_D)
    apply = jax.jit(lambda pb, C: jax.vmap(pb)(C)[0])
    dim = v0.shape[0]
    off = {}
    o = 0
    for k in act_keys:
        off[k] = o
        o += int(np.prod(q[k].shape))
    n = cst["T1"] * cst["P"]
    fcols = off["F"] + np.arange(n)  # F is (T1, P) row-major = the n predictions in (t, mu) order
    E = np.zeros((n, dim))
    E[np.arange(n), fcols] = 1.0
    W = E.copy()
    Dl = E.copy()  # current increment E D^k
    chunk = chunk or cst["P"]
    max_iter = max_iter or 10 * cst["T1"] + 10
    it, t_v = 0, 0.0
    while True:
        alive = np.nonzero(np.any(Dl != 0.0, axis=1))[0]
        if alive.size == 0:
            break
        if it >= max_iter:
            raise RuntimeError(f"adjoint Neumann series did not terminate after {max_iter} passes "
                               f"({alive.size} rows still changing, max |increment| {np.abs(Dl).max():.2e}); "
                               "D is not nilpotent here (non-causal dependence?)")
        t0 = time.time()
        new = np.zeros_like(Dl)
        for i0 in range(0, alive.size, chunk):
            rows = alive[i0:i0 + chunk]
            C = np.zeros((chunk, dim))
            C[:rows.size] = Dl[rows]
            new[rows] = np.asarray(apply(pb, jnp.asarray(C)))[:rows.size]
        t_v += time.time() - t0
        it += 1
        if tol > 0:  # optional round-off floor (relative to |W|); default: exact zeros
            new[np.abs(new) <= tol * np.abs(W).max()] = 0.0
        W += new
        Dl = new
        if verbose:
            print(f"    pass {it:3d}: {alive.size:4d} live rows, max |increment| {np.abs(new).max():.3e}", flush=True)
    return W, {"passes": it, "t_vjp": t_v, "dim": dim, "act_keys": act_keys, "off": off}


def width_covariance_adjoint(cst, rnd, rnd_D=None, chunk=None, verbose=True, solve_iters=None):
    """N Cov(f) (full two-time (n, n) block and equal-time (T1, P, P)) by the adjoint; never forms D or kappa."""
    t0 = time.time()
    # more fixed-point passes than prototype.solve's default (3 T1 + 4): the causal depth is 4 T1 - 2 (the
    # number of adjoint passes at T = 2, 3, 5, 8), and at T = 5 the default left a residual of 1e-7
    q, res = prototype.solve(cst, rnd, iters=solve_iters or 5 * cst["T1"] + 5)
    jax.block_until_ready(q)
    t1 = time.time()
    W, info = adjoint_rows(cst, q, rnd if rnd_D is None else rnd_D, chunk=chunk, verbose=verbose)
    t2 = time.time()
    h = {k: np.asarray(v) for k, v in jax.jit(lambda qq: paths(qq, rnd, cst))(q).items()}
    act_keys, off = info["act_keys"], info["off"]
    blocks = []
    for p in (1, 2):
        keys = [k for k in act_keys if LAYER[k] == p]  # passive columns of W are zero (f does not read them)
        blocks.append((keys, np.concatenate([W[:, off[k]:off[k] + int(np.prod(q[k].shape))] for k in keys], axis=1).T))
    cov = prototype.projected_path_covariance(h, cst, blocks)
    t3 = time.time()
    T1, P = cst["T1"], cst["P"]
    c4 = cov.reshape(T1, P, T1, P)
    out = {"cov": cov, "covf": np.stack([c4[t, :, t, :] for t in range(T1)]), "q": q, "res": res, "W": W,
           "passes": info["passes"], "dim": info["dim"], "times": (t1 - t0, t2 - t1, t3 - t2)}
    if verbose:
        print(f"  fixed point residual {res:.1e}; |q_active| = {info['dim']}; {info['passes']} adjoint passes; "
              f"times solve/adjoint/cov = {out['times'][0]:.1f}/{out['times'][1]:.1f}/{out['times'][2]:.1f} s; "
              f"peak RSS {_peak_rss_gb():.2f} GB", flush=True)
    return out


def setup(act, steps, S, SD, seed=1):
    import limits
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    X, y = np.asarray(d.X), np.asarray(d.y)
    cst = prototype.constants(act, X, y, 0.5, steps)
    rnd = prototype.draw(cst, S, seed=seed)  # same draws as prototype.main
    rndD = tuple(a[:SD] if a.ndim == 2 or a.ndim == 1 else a[:, :SD] for a in rnd)
    return cst, rnd, rndD


def check(S, SD, steps, acts=("tanh", "linear"), solve_iters=None):
    print(f"check vs prototype.width_covariance (materialized D): P=4, T={steps}, S={S}, S_D={SD}")
    for act in acts:
        cst, rnd, rndD = setup(act, steps, S, SD)
        print(f"[{act}] adjoint")
        a = width_covariance_adjoint(cst, rnd, rndD, solve_iters=solve_iters)
        print(f"[{act}] prototype (materialized D)")
        t0 = time.time()
        b = prototype.width_covariance(cst, rnd, rndD)
        tb = time.time() - t0
        d = np.abs(a["covf"] - b["covf"])
        print(f"[{act}] total time adjoint {sum(a['times']):.1f} s vs prototype {tb:.1f} s")
        print(f"[{act}] equal-time N Cov f: max |diff| / max |entry| = {d.max() / np.abs(b['covf']).max():.2e}; "
              f"max entrywise rel diff (|entry| > 1e-3 max) = "
              f"{np.max(d[np.abs(b['covf']) > 1e-3 * np.abs(b['covf']).max()] / np.abs(b['covf'])[np.abs(b['covf']) > 1e-3 * np.abs(b['covf']).max()]):.2e}; "
              f"relF = {relF(a['covf'], b['covf']):.2e}")
        print(f"[{act}] per t tr: adjoint {np.round(np.trace(a['covf'], axis1=1, axis2=2), 6)}  "
              f"prototype {np.round(np.trace(b['covf'], axis1=1, axis2=2), 6)}", flush=True)


def timing(S, SD, steps_list, act="tanh"):
    for steps in steps_list:
        cst, rnd, rndD = setup(act, steps, S, SD)
        print(f"[{act}] T={steps} (n={cst['T1'] * cst['P']}), S={S}, S_D={SD}")
        t0 = time.time()
        a = width_covariance_adjoint(cst, rnd, rndD, verbose=True)
        print(f"  total {time.time() - t0:.1f} s; per t tr N Cov f = "
              f"{np.round(np.trace(a['covf'], axis1=1, axis2=2), 4)}", flush=True)
        np.save(os.path.join("/tmp", f"adj_covf_T{steps}_S{S}_SD{SD}.npy"), a["cov"])


def ensembles(S, SD, steps, act="tanh", ens=(128, 256, 512)):
    cst, rnd, rndD = setup(act, steps, S, SD)
    print(f"[{act}] T={steps}, S={S}, S_D={SD}: adjoint theory vs limits.simulate ensembles")
    a = width_covariance_adjoint(cst, rnd, rndD, verbose=True)
    th = a["covf"]
    print("     N   seeds   sum tr (ens)   sum tr (theory)   ratio   relF   sampling err (rel)")
    E = {}
    for N in ens:
        fn = sorted(f for f in os.listdir(HERE) if f.startswith(f"ens_{act}_N{N}_") and f.endswith(f"_T{steps}_seed0.npz"))
        if not fn:
            continue
        z = np.load(os.path.join(HERE, fn[-1]))
        C = N * z["cov"][:steps + 1]
        Sn = z["pred"].shape[0]
        se = np.sqrt((1 + np.trace(C, axis1=1, axis2=2).sum() ** 2 / np.sum(C ** 2) / (steps + 1)) / Sn)
        trC, trT = np.trace(C, axis1=1, axis2=2).sum(), np.trace(th, axis1=1, axis2=2).sum()
        print(f"  {N:4d}  {Sn:6d}   {trC:12.4f}   {trT:15.4f}   {trC / trT:.3f}   {relF(C, th):.3f}   ~{se:.3f}")
        E[N] = C
    print("  per time, tr N Cov f:  theory | ensembles")
    for t in range(steps + 1):
        print(f"   t={t}  {np.trace(th[t]):9.4f} |" + "".join(f" {np.trace(E[N][t]):9.4f}" for N in E))
    print("  per time relF (theory vs each ensemble): " +
          "; ".join(f"N={N}: " + " ".join(f"{relF(E[N][t], th[t]):.3f}" for t in range(steps + 1)) for N in E))


if __name__ == "__main__":
    mode = sys.argv[1]
    S, SD = int(sys.argv[2]), int(sys.argv[3])
    Ts = [int(v) for v in sys.argv[4:]] or [3]
    if mode == "check":
        # same fixed point as prototype.width_covariance (its default solve) so that only the D-part differs
        check(S, SD, Ts[0], acts=tuple(os.environ.get("ACTS", "tanh,linear").split(",")), solve_iters=3 * (Ts[0] + 1) + 4)
    elif mode == "time":
        timing(S, SD, Ts)
    elif mode == "ens":
        ensembles(S, SD, Ts[0])
