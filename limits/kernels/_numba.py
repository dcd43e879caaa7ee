"""Numba CPU backend: the whole depth recursion fused per kernel entry.

For each row ``i`` the NNGP and NTK rows are updated in place, layer by layer,
in loops over ``j`` that LLVM vectorizes (``fastmath``). ``arccos`` / ``arcsin``
are evaluated by :func:`_acos` / :func:`_asin`, a degree-12 polynomial fit
(Chebyshev least squares, accurate to ~2e-16) of ``h(z) = asin(sqrt z)/sqrt z``
on ``z in [0, 1/4]`` combined with the half-angle identity, so the loop has no
libm calls. The symmetric case fills only ``j >= i`` and mirrors afterwards.

Activation codes: 0 relu, 1 erf, 2 linear. Per-row factors ``r`` (shape (L, P)):
relu ``sqrt(K^l(x, x))``, erf ``sqrt(1 + 2 K^l(x, x))``, linear unused.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.polynomial import chebyshev as _cheb
from numpy.polynomial import Polynomial as _Poly

__all__ = ["ACTIVATION_CODES", "mlp_rows", "mirror_upper", "acos", "asin"]

ACTIVATION_CODES = {"relu": 0, "erf": 1, "linear": 2}

_PI = math.pi
_HALF_PI = 0.5 * math.pi
_INV_TWO_PI = 1.0 / (2.0 * math.pi)


def _fit_asin_series(degree: int = 12, nodes: int = 64) -> tuple[float, ...]:
    """Coefficients (ascending in z) of a polynomial fit to asin(sqrt z)/sqrt z on [0, 1/4]."""
    x = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    z = (x + 1.0) / 8.0
    y = np.arcsin(np.sqrt(z)) / np.sqrt(z)
    coef = _Poly(_cheb.cheb2poly(_cheb.chebfit(x, y, degree)))(_Poly([-1.0, 8.0])).coef
    return tuple(float(c) for c in coef)


_H = _fit_asin_series()
(_H0, _H1, _H2, _H3, _H4, _H5, _H6, _H7, _H8, _H9, _H10, _H11, _H12) = _H


@nb.njit(inline="always", fastmath=True, cache=True)
def _asin_reduced(x):
    """Return ``(asin(s), small, sign)`` with ``s = |x|`` if ``|x| <= 1/2`` else ``sqrt((1-|x|)/2)``.

    Branch-free (selects only) so that loops calling it vectorize.
    """
    ax = abs(x)
    small = ax <= 0.5
    z = x * x if small else 0.5 - 0.5 * ax
    s = math.sqrt(z)
    p = _H12
    p = p * z + _H11
    p = p * z + _H10
    p = p * z + _H9
    p = p * z + _H8
    p = p * z + _H7
    p = p * z + _H6
    p = p * z + _H5
    p = p * z + _H4
    p = p * z + _H3
    p = p * z + _H2
    p = p * z + _H1
    p = p * z + _H0
    sign = 1.0 if x >= 0.0 else -1.0
    return s * p, small, sign


@nb.njit(inline="always", fastmath=True, cache=True)
def acos(x):
    """arccos(x) for x in [-1, 1]: ``pi/2 -+ asin|x|`` or ``2 asin(sqrt((1-|x|)/2))`` (abs error ~2e-15)."""
    a, small, sign = _asin_reduced(x)
    coef = -sign if small else 2.0 * sign
    base = _HALF_PI if small else _HALF_PI - _HALF_PI * sign
    return base + coef * a


@nb.njit(inline="always", fastmath=True, cache=True)
def asin(x):
    """arcsin(x) for x in [-1, 1], same polynomial as :func:`acos`."""
    a, small, sign = _asin_reduced(x)
    r = a if small else _HALF_PI - 2.0 * a
    return sign * r


@nb.njit(parallel=True, fastmath=True, cache=True)
def acos_array(x):
    out = np.empty_like(x)
    for i in nb.prange(x.size):
        out[i] = acos(x[i])
    return out


@nb.njit(parallel=True, fastmath=True, cache=True)
def asin_array(x):
    out = np.empty_like(x)
    for i in nb.prange(x.size):
        out[i] = asin(x[i])
    return out


@nb.njit(inline="always", fastmath=True, cache=True)
def _segment(kr, tr, x1, X2T, c0, c1, r1, ir1, r2, ir2, w2, b2, lam, act):
    """Columns ``c0:c1`` of one row through the whole depth, in place.

    ``x1`` (D,) this row's input, ``X2T`` (D, P2) the column inputs (transposed),
    ``r1``/``ir1`` (L,) this row's factors, ``r2``/``ir2`` (L, P2). All inner loops
    run over unit-stride slices so LLVM vectorizes them.
    """
    k_ = kr[c0:c1]
    t_ = tr[c0:c1]
    n = c1 - c0
    for j in range(n):
        k_[j] = 0.0
    for d in range(x1.shape[0]):  # K^1 = w2[0] x.x' + b2, accumulated column-vectorized
        xd = x1[d]
        xs = X2T[d, c0:c1]
        for j in range(n):
            k_[j] += xd * xs[j]
    w = w2[0]
    lw = lam[0]
    for j in range(n):
        k = w * k_[j] + b2
        k_[j] = k
        t_[j] = lw * k
    for l in range(r1.shape[0]):
        a1 = r1[l]
        ia1 = ir1[l]
        r2l = r2[l, c0:c1]
        ir2l = ir2[l, c0:c1]
        w = w2[l + 1]
        lw = lam[l + 1]
        if act == 0:  # relu: arc-cosine kernel
            for j in range(n):
                c = k_[j] * (ia1 * ir2l[j])
                c = min(max(c, -1.0), 1.0)
                th = _PI - acos(c)
                sn = math.sqrt((1.0 - c) * (1.0 + c))
                k = w * (a1 * r2l[j]) * (sn + th * c) * _INV_TWO_PI + b2
                k_[j] = k
                t_[j] = lw * k + w * th * _INV_TWO_PI * t_[j]
        elif act == 1:  # erf
            for j in range(n):
                isa = ia1 * ir2l[j]
                x = min(max(2.0 * k_[j] * isa, -1.0), 1.0)
                k = w * (2.0 / _PI) * asin(x) + b2
                k_[j] = k
                t_[j] = lw * k + w * (4.0 / _PI) * isa / math.sqrt((1.0 - x) * (1.0 + x)) * t_[j]
        else:  # linear
            for j in range(n):
                k = w * k_[j] + b2
                k_[j] = k
                t_[j] = lw * k + w * t_[j]


CHUNK = 512


@nb.njit(parallel=True, fastmath=True, cache=True)
def mlp_rows(K, T, X1, X2T, r1, ir1, r2, ir2, w2, b2, lam, act, row0, sym, chunk):
    """NNGP ``K`` and NTK ``T`` (B, P2) for input rows ``X1`` (B, D) against ``X2T`` (D, P2).

    ``w2`` (L+1,) squared weight stds with ``w2[0]`` already divided by D,
    ``b2`` squared bias std, ``lam`` (L+1,) per-layer NTK weights, ``r``/``ir``
    per-point factors and their inverses, (L, B) and (L, P2). Row ``ii`` is global
    row ``row0 + ii``; with ``sym`` only columns ``j >= row0 + ii`` are written.
    Rows are taken as 0, B-1, 1, B-2, ... so the triangle is load-balanced, and
    columns in chunks of ``chunk`` so each chunk's depth recursion stays in L1.
    """
    B = K.shape[0]
    P2 = K.shape[1]
    r1t = np.ascontiguousarray(r1.T)
    ir1t = np.ascontiguousarray(ir1.T)
    half = (B + 1) // 2
    for p in nb.prange(2 * half):
        ii = p // 2 if p % 2 == 0 else B - 1 - p // 2
        if p % 2 == 1 and ii == p // 2:
            continue
        j0 = row0 + ii if sym else 0
        for c0 in range(j0, P2, chunk):
            c1 = min(c0 + chunk, P2)
            _segment(K[ii], T[ii], X1[ii], X2T, c0, c1, r1t[ii], ir1t[ii], r2, ir2, w2, b2, lam, act)


@nb.njit(parallel=True, cache=True)
def mirror_upper(A, C):
    """Copy the upper triangles of square ``A`` and ``C`` onto their lower triangles, in place."""
    n = A.shape[0]
    bs = 64
    nblocks = (n + bs - 1) // bs
    for bi in nb.prange(nblocks):
        i0 = bi * bs
        i1 = min(i0 + bs, n)
        for bj in range(bi + 1):
            j0 = bj * bs
            j1 = min(j0 + bs, n)
            for i in range(i0, i1):
                for j in range(j0, min(j1, i)):
                    A[i, j] = A[j, i]
                    C[i, j] = C[j, i]
