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
    """Same state, sources and fixed-point step as :class:`~limits.dmft.solver.MonteCarloProblem`
    (the step itself is shared and runs eagerly); only the per-path loops, the forward scan and
    the tangent responses, are Numba kernels."""

    def __init__(self, **kw):
        super().__init__(**kw)
        act = kw["act"]
        if act.name not in _CODES or act is not _acts.get(act.name):
            raise ValueError(f"the numba backend supports {', '.join(_CODES)}; use backend='jax' for {act.name!r}")
        self.code = _CODES[act.name]
        self.w = float(kw.get("relu_width", 0.1))

    def _paths(self, U, Rr, Mh, Mz, tangent):
        H, Z, PH, G, DPH = _paths(np.ascontiguousarray(U), np.ascontiguousarray(Rr), np.asarray(Mh), np.asarray(Mz),
                                  self.T1, self.Pa, self.code, self.w, bool(tangent))
        return (jnp.asarray(x) for x in (H, Z, PH, G, DPH))

    def _responses(self, h, z, Mh, Mz, need_A, need_B):
        sA, sB = _responses(np.asarray(h), np.asarray(z), np.asarray(Mh), np.asarray(Mz), self.T1, self.Pa, self.code,
                            self.w, need_A, need_B)
        R = h.shape[0]
        return (jnp.asarray(sA / R) if need_A else None), (jnp.asarray(sB / R) if need_B else None)

    def _run_step(self, state, damping, responses, horizon):
        return self._step_impl(self.consts, state, float(damping), responses, int(horizon))
