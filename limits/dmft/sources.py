"""Gaussian sources of the Monte Carlo DMFT: drawn once per solve (common random numbers).

``gaussian_sources`` draws standard normals by randomized quasi-Monte Carlo (scrambled Sobol
points through the normal quantile); :func:`whiten` makes a sample of them exactly orthonormal
(for the Stein responses); :func:`split_sources` and :func:`pair_blocks` lay out and couple the
sources of residual networks (leading Sobol coordinates to the directions of largest variance;
summed Brownian increments for the coarser levels of the layer-time solver).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["gaussian_sources", "whitening", "split_sources", "pair_blocks"]


def gaussian_sources(S, dims, seed, qmc=True):
    """Standard normal source matrices (S, d) for each d in ``dims`` (float64).

    ``qmc``: one scrambled Sobol sequence over all source coordinates jointly,
    mapped through the normal quantile function (randomized quasi-Monte Carlo:
    unbiased, much smaller error than plain sampling when the integrand has low
    effective dimension, e.g. the two-layer network whose sources are (u^1, w0));
    falls back to pseudo-random normals above 21201 dimensions. The quantile runs on
    two threads (``scipy.special.ndtri``; ``norm.ppf`` was 6x slower)."""
    from scipy.special import ndtri
    from scipy.stats import qmc as _qmc

    total = int(sum(dims))
    rng = np.random.default_rng(seed)
    if qmc and total <= 21201:
        Z = _qmc.Sobol(total, scramble=True, seed=rng).random(S)
        np.clip(Z, 1e-16, 1 - 1e-16, out=Z)
        halves = [slice(0, S // 2), slice(S // 2, S)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda rows: ndtri(Z[rows], out=Z[rows]), halves))
    else:
        Z = rng.standard_normal((S, total))
    out, k = [], 0
    for d in dims:
        out.append(Z[:, k : k + d])
        k += d
    return out


def whitening(eps, dtype="float64"):
    """``W^{-1}`` (d, d) for the Cholesky factor ``W`` of the sample second moment ``eps^T eps / S = W W^T`` of the
    sources ``eps`` (S, d) (lower triangular; time-major order is kept, so its leading blocks whiten the leading
    coordinates), or None when there are too few samples (``S <= d + 1``) or the moment is singular. The moment
    is one symmetric rank-S update (BLAS ``syrk``, half a GEMM) in ``dtype``; the factor in float64."""
    from scipy.linalg import blas, solve_triangular

    S, d = eps.shape
    if S <= d + 1:
        return None
    x = np.asarray(eps, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64, order="F")
    syrk = blas.ssyrk if x.dtype == np.float32 else blas.dsyrk
    G = np.asarray(syrk(1.0 / S, x, trans=1, lower=1), dtype=np.float64)  # lower triangle of eps^T eps / S
    try:
        W = np.linalg.cholesky(np.tril(G) + np.tril(G, -1).T)
    except np.linalg.LinAlgError:
        return None
    return solve_triangular(W, np.eye(d), lower=True)


def split_sources(Z, L: int, T1: int, Pa: int):
    """Split standard normals ``Z`` (S, 1 + Pa + 2 L n) into the sources, the leading (best stratified)
    Sobol coordinates going to the directions of largest variance: ``r^{L+1}``, ``u^0``, then the time-0
    columns of every block source (``u^1, r^1, u^2, r^2, ...``), then time 1, and so on (the columns of a
    time-major Cholesky factor are the innovations of successive times, small when the kernels move slowly).
    Returns ``[u^0 (S, Pa), u^1..u^L (S, n), r^1..r^L (S, n), r^{L+1} (S, 1)]``."""
    S, n = Z.shape[0], T1 * Pa
    top, u0, rest = Z[:, :1], Z[:, 1 : 1 + Pa], Z[:, 1 + Pa :]
    blocks = rest.reshape(S, T1, 2 * L, Pa)  # (path, time, source u^1 r^1 u^2 r^2 .., point)
    src = [blocks[:, :, j, :].reshape(S, n) for j in range(2 * L)]
    return [u0] + src[0::2] + src[1::2] + [top]


def pair_blocks(eps, L: int):
    """Sources of a problem with ``L/2`` blocks coupled to ``eps`` (layout of :func:`split_sources`, ``L`` blocks,
    even): coarse block ``j`` gets ``(eps_{2j-1} + eps_{2j}) / sqrt 2`` for both its sources, the standard
    normal of the summed Brownian increment over its two fine blocks (same u^0 and readout weight)."""
    if L % 2:
        raise ValueError(f"pair_blocks needs an even number of blocks, got {L}")
    u, r = eps[1 : L + 1], eps[L + 1 : 2 * L + 1]
    pair = lambda x: [(x[2 * j] + x[2 * j + 1]) / math.sqrt(2.0) for j in range(L // 2)]  # noqa: E731
    return [eps[0]] + pair(u) + pair(r) + [eps[-1]]
