"""Numba backend of the Monte Carlo DMFT: the same equations and the same Gaussian
sources as :mod:`limits.dmft.solver`, with the per-path loops (forward scan over
time, tangent paths for the response functions) compiled by Numba and run in
parallel over paths (``prange``). Dense linear algebra on (n, n) matrices stays in
NumPy. Agrees with the JAX backend to rounding on the same sources.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numba
import numpy as np

from .. import activations as _acts
from . import equations as eq
from .solver import MonteCarloProblem

__all__ = ["NumbaProblem"]

# activation codes: 0 linear, 1 tanh, 2 relu (smoothed phi''), 3 erf
_CODES = {"linear": 0, "tanh": 1, "relu": 2, "erf": 3}


@numba.njit(inline="always")
def _act(code, x, w):
    if code == 0:
        return x, 1.0, 0.0
    if code == 1:
        t = math.tanh(x)
        return t, 1.0 - t * t, -2.0 * t * (1.0 - t * t)
    if code == 2:
        return (x if x > 0 else 0.0), (1.0 if x > 0 else 0.0), math.exp(-0.5 * (x / w) ** 2) / (w * math.sqrt(2 * math.pi))
    e = math.exp(-x * x)
    return math.erf(x), 2.0 / math.sqrt(math.pi) * e, -4.0 / math.sqrt(math.pi) * x * e


@numba.njit(parallel=True, cache=True)
def _paths(U, Rr, Mh, Mz, T1, Pa, code, w, tangent):
    S, n = U.shape
    H = np.zeros((S, n))
    Z = np.zeros((S, n))
    PH = np.zeros((S, n))
    G = np.zeros((S, n))
    DPH = np.zeros((S, n))
    for i in numba.prange(S):
        dg = np.zeros(n)
        for t in range(T1):
            lo = t * Pa
            for a in range(lo, lo + Pa):
                acc = U[i, a]
                dacc = 0.0
                for b in range(lo):  # strictly causal
                    acc += Mh[a, b] * G[i, b]
                    dacc += Mh[a, b] * dg[b]
                H[i, a] = acc
                p, d1, _ = _act(code, acc, w)
                PH[i, a] = p
                if tangent:
                    DPH[i, a] = d1 * dacc
            for a in range(lo, lo + Pa):
                acc = Rr[i, a]
                dz = 1.0
                for b in range(lo + Pa):  # causal incl. equal time
                    acc += Mz[a, b] * PH[i, b]
                    dz += Mz[a, b] * DPH[i, b]
                Z[i, a] = acc
                _, d1, d2 = _act(code, H[i, a], w)
                G[i, a] = d1 * acc
                if tangent:
                    dh = 0.0
                    for b in range(lo):
                        dh += Mh[a, b] * dg[b]
                    dg[a] = d2 * acc * dh + d1 * dz
    return H, Z, PH, G, DPH


@numba.njit(parallel=True, cache=True)
def _responses(H, Z, Mh, Mz, T1, Pa, code, w, need_A, need_B):
    """Sums over paths of d phi(h)/d r (A) and d g/d u (B): tangent march per path."""
    R, n = H.shape
    nthreads = numba.get_num_threads()
    accA = np.zeros((nthreads, n, n))
    accB = np.zeros((nthreads, n, n))
    chunk = (R + nthreads - 1) // nthreads
    for th in numba.prange(nthreads):
        for i in range(th * chunk, min(R, (th + 1) * chunk)):
            for which in range(2):
                if (which == 0 and not need_A) or (which == 1 and not need_B):
                    continue
                dph = np.zeros((n, n))  # rows: (t, mu); cols: source direction
                dg = np.zeros((n, n))
                for t in range(T1):
                    lo = t * Pa
                    for a in range(lo, lo + Pa):
                        _, d1, d2 = _act(code, H[i, a], w)
                        dh = Mh[a, :lo] @ dg[:lo, :]
                        if which == 1:
                            dh[a] += 1.0
                        dph[a, :] = d1 * dh
                        dg[a, :] = d2 * Z[i, a] * dh
                    for a in range(lo, lo + Pa):
                        _, d1, _ = _act(code, H[i, a], w)
                        dz = Mz[a, : lo + Pa] @ dph[: lo + Pa, :]
                        if which == 0:
                            dz[a] += 1.0
                        dg[a, :] += d1 * dz
                if which == 0:
                    accA[th] += dph
                else:
                    accB[th] += dg
    return accA.sum(0), accB.sum(0)


class NumbaProblem(MonteCarloProblem):
    """Same state, sources and step contract as :class:`~limits.dmft.solver.MonteCarloProblem`."""

    def __init__(self, **kw):
        super().__init__(**kw)
        act = kw["act"]
        if act.name not in _CODES or act is not _acts.get(act.name):
            raise ValueError(f"the numba backend supports {', '.join(_CODES)}; use backend='jax' for {act.name!r}")
        self.code = _CODES[act.name]
        self.w = float(kw.get("relu_width", 0.1))
        self.np_eps_u = [np.asarray(e) for e in self.eps_u]
        self.np_eps_r = [np.asarray(e) for e in self.eps_r]

    def step(self, state, damping, responses=True):
        L, S, c, T1, Pa, n = self.depth, self.S, self.lr * self.gamma, self.T1, self.Pa, self.n
        responses = bool(responses and L > 1)
        st = {k: ([np.asarray(x) for x in v] if isinstance(v, list) else np.asarray(v)) for k, v in state.items()}
        y, mask, strict, incl = (np.asarray(a) for a in (self.y_flat, self.mask_flat, self.strict, self.incl))
        dt = (y - st["f"]) * mask / self.P
        new_Phi, new_G, new_A, new_B = [], [], [None] * (L - 1), [None] * (L - 1)
        Phi0, F1, ones = np.asarray(self.Phi0), np.asarray(self.F1), np.ones((n, n))
        for l in range(1, L + 1):
            Phi_prev = Phi0 if l == 1 else new_Phi[l - 2]
            G_next = ones if l == L else st["G"][l]
            A_prev = None if l == 1 else new_A[l - 2]
            B_this = None if l == L else st["B"][l - 1]
            Mh, Mz = (np.asarray(m) for m in eq.memory_matrices(c, dt, Phi_prev, G_next, A_prev, B_this, strict, incl))
            U = self.np_eps_u[l - 1] @ (F1.T if l == 1 else _chol(Phi_prev).T)
            Rr = np.broadcast_to(self.np_eps_r[l - 1], (S, n)).copy() if l == L else self.np_eps_r[l - 1] @ _chol(G_next).T
            H, Z, PH, G, DPH = _paths(U, Rr, Mh, Mz, T1, Pa, self.code, self.w, l == L)
            new_Phi.append(PH.T @ PH / S)
            new_G.append(G.T @ G / S)
            need_A, need_B = l <= L - 1, l >= 2
            if not responses:
                if need_A:
                    new_A[l - 1] = st["A"][l - 1]
                if need_B:
                    new_B[l - 2] = st["B"][l - 2]
            elif need_A or need_B:
                sA, sB = _responses(H[: self.R], Z[: self.R], Mh, Mz, T1, Pa, self.code, self.w, need_A, need_B)
                if need_A:
                    new_A[l - 1] = sA / self.R
                if need_B:
                    new_B[l - 2] = sB / self.R
            if l == L:
                a = DPH.mean(0)
                wsum = (PH * dt[None, :]).reshape(S, T1, Pa).sum(-1)
                f_samples = DPH / self.gamma + self.lr * PH * np.repeat(np.cumsum(wsum, 1) - wsum, Pa, axis=1)
        f_new = np.asarray(eq.readout(a, new_Phi[-1], dt, self.gamma, self.lr, strict))
        ntk_t = eq.ntk_equal_time([Phi0] + new_Phi, new_G + [ones], T1, Pa)
        f_new = np.asarray(eq.march(f_new, st["f"], y, mask, ntk_t, self.lr, self.P, T1, Pa))
        new = {"f": f_new, "Phi": new_Phi, "G": new_G, "A": new_A, "B": new_B}
        res = 0.0
        damped = {}
        for k in new:
            olds = st[k] if isinstance(st[k], list) else [st[k]]
            news = new[k] if isinstance(new[k], list) else [new[k]]
            out = []
            for o, nw in zip(olds, news):
                res = max(res, float(np.max(np.abs(nw - o)) / max(np.max(np.abs(nw)), 1e-12)))
                out.append(jnp.asarray((1.0 - damping) * o + damping * nw))
            damped[k] = out if isinstance(new[k], list) else out[0]
        fbar = f_samples.mean(0)
        err = (fbar - y) * mask
        dl = ((f_samples - fbar[None, :]) * err[None, :]).reshape(S, T1, Pa).sum(-1) / self.P
        aux = {"loss_stderr": dl.std(0) / math.sqrt(S), "f_stderr": (f_samples.std(0) / math.sqrt(S)).reshape(T1, Pa)}
        return damped, res, aux


def _chol(K, jitter=1e-10):
    scale = max(float(np.max(np.abs(np.diag(K)))), 1e-300)
    return np.linalg.cholesky(0.5 * (K + K.T) + jitter * scale * np.eye(K.shape[0]))
