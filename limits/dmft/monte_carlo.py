"""Monte Carlo DMFT problems: the sources and constants of one march (:mod:`limits.dmft.march`).

:func:`mlp_sources` and :func:`resnet_sources` draw the standard normal sources (scrambled Sobol,
:mod:`limits.dmft.sources`) in the layout of each architecture; :func:`build` turns them, the data
and the constants of a compiled table (:class:`~limits.parametrization.DMFTLimit`) into a :class:`~limits.dmft.march.Process`
and its constants; :func:`solve` runs the march and returns a :class:`Solution`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .. import activations as _acts
from . import march as _march
from .sources import gaussian_sources, split_sources, whitening

__all__ = ["Solution", "mlp_sources", "resnet_sources", "process", "build", "solve", "default_blocks"]


@dataclasses.dataclass(frozen=True)
class Solution:
    """What a march returns (``T1 = steps + 1``, ``Pa`` points, ``K`` fields).

    ``f``, ``f_se`` (T1, Pa): mean predictions and their first-order Monte Carlo standard errors;
    ``loss_se`` (T1,): first-order standard error of the train loss; ``phi``, ``g`` (T1, K, Pa, Pa):
    equal-time kernels ``Phi^k(t, t)``, ``G^k(t, t)``; ``two``: two-time kernels and responses (n, n) by
    name (``Phi1``, ``G1``, ``A1``, ``B1``, ...) when recorded, else None; ``diverged_at``: first step where
    the predictions blew up, or None."""

    f: np.ndarray
    f_se: np.ndarray
    loss_se: np.ndarray
    phi: np.ndarray
    g: np.ndarray
    two: dict | None
    diverged_at: int | None


def _antithetic(sources: dict, antithetic: bool) -> dict:
    """With ``antithetic``, each path is followed by its mirror: the same forward sources ``u``, the backward ones
    ``r`` negated. The DMFT is invariant under ``(gamma, r) -> (-gamma, -r)`` (it flips every backward field), so on
    mirrored sources every estimate is exactly even in ``gamma`` like the limit itself (with one-sided samples the
    readout response carries O(gamma / sqrt S) noise that mimics an odd term), and the Stein control variates
    lose their odd-moment noise. The pairs stay within each block of :func:`limits.dmft.march._standard_errors`."""
    if not antithetic:
        return sources
    out = {}
    for name, x in sources.items():
        x = np.asarray(x)
        pair = np.empty((2 * x.shape[0],) + x.shape[1:], dtype=x.dtype)
        pair[0::2], pair[1::2] = x, (-x if name.startswith("r") else x)
        out[name] = pair
    return out


def mlp_sources(S: int, K: int, T1: int, Pa: int, seed: int, qmc: bool = True, antithetic: bool = True) -> dict:
    """Sources of an MLP with ``K`` hidden layers: ``u1`` (S, Pa), ``u2..uK``, ``r1..r(K-1)`` (S, n), ``r_top`` (S, 1);
    ``antithetic`` (S even): ``S/2`` draws and their mirrors (:func:`_antithetic`)."""
    n = T1 * Pa
    half = S // 2 if antithetic else S
    eps = gaussian_sources(half, [Pa] + [n] * (2 * K - 2) + [1], seed, qmc=qmc)
    out = {"u1": eps[0], "r_top": eps[-1]}
    out.update({f"u{k}": eps[k - 1] for k in range(2, K + 1)})
    out.update({f"r{k}": eps[K + k - 1] for k in range(1, K)})
    return _antithetic(out, antithetic)


def resnet_sources(S: int, K: int, T1: int, Pa: int, seed: int, qmc: bool = True, eps=None,
                   antithetic: bool = True) -> dict:
    """Sources of a residual network with ``K - 1`` blocks, drawn in the layout of
    :func:`limits.dmft.sources.split_sources` (or given there as ``eps``, with ``S`` rows, e.g. coupled by
    :func:`limits.dmft.sources.pair_blocks`; already mirrored if they come from mirrored sources)."""
    L = K - 1
    mirror = antithetic and eps is None
    if eps is None:
        (Z,) = gaussian_sources(S // 2 if mirror else S, [1 + Pa + 2 * L * T1 * Pa], seed, qmc=qmc)
        eps = split_sources(Z, L, T1, Pa)
    out = {"u1": eps[0], "r_top": eps[-1]}
    out.update({f"u{k}": eps[k - 1] for k in range(2, K + 1)})
    out.update({f"r{k}": eps[L + k] for k in range(1, K)})
    out = _antithetic(out, mirror)
    if any(np.shape(e)[0] != S for e in out.values()):
        raise ValueError(f"the sources must have {S} rows (split_sources layout)")
    return out


def default_blocks(n: int) -> int:
    """Time blocks of the march: one below ``n = 512`` grid points (compilation dominates), up to 4 above (each
    block's products run over its own prefix of the grid, ~(1 + 1/blocks)/2 of the full cost, and each block
    compiles once: measured on depth 2, P = 16, 200 steps, 16384 paths, 4 blocks took 54 s and 8 blocks 66 s)."""
    return int(max(1, min(4, n // 256)))


def process(act, limit, *, S: int, steps: int, Pa: int, P: int, dtype: str = "float64", two_time: bool = False,
            mirrored: bool = False) -> _march.Process:
    """The static :class:`~limits.dmft.march.Process` of ``limit`` (a :class:`~limits.parametrization.DMFTLimit`)
    with ``S`` paths on ``steps + 1`` times and ``Pa`` points (``P`` train): MLPs estimate the responses on
    sample-whitened sources, residual networks with control variates (module :mod:`limits.dmft.march`)."""
    return _march.Process(act=_acts.get(act), fields=limit.fields, skip=bool(limit.residual), S=int(S),
                          T1=int(steps) + 1, Pa=int(Pa), P=int(P), whitened=not limit.residual,
                          mirrored=bool(mirrored), two_time=bool(two_time), dtype=dtype)


def _input_factor(Kx):
    """A factor ``L`` with ``L L^T = Kx`` (Pa, Pa) for the first-layer sources ``u1 = eps L^T``: the Cholesky factor
    (with a 1e-12 relative jitter), or, for a singular input kernel (e.g. repeated or all-zero inputs), the
    symmetric square root from the eigendecomposition, whose negative round-off eigenvalues are clipped to 0."""
    try:
        if np.max(np.diag(Kx)) > 0:
            return np.linalg.cholesky(Kx + 1e-12 * np.max(np.diag(Kx)) * np.eye(Kx.shape[0]))
    except np.linalg.LinAlgError:
        pass
    lam, V = np.linalg.eigh(Kx)
    return V * np.sqrt(np.clip(lam, 0.0, None))


def build(act, *, Kx_all, y_all, train_mask, steps: int, lr: float, limit, sources: dict, stein_jitter: float,
          dtype: str = "float64", two_time: bool = False, mirrored: bool = False):
    """The :class:`~limits.dmft.march.Process` and constants of one problem.

    ``Kx_all`` (Pa, Pa): input kernel ``x.x'/D`` of train and test points; ``y_all`` (Pa,) targets (0 for
    test points), ``train_mask`` (Pa,) 1 for train points; ``limit``: the table's
    :class:`~limits.parametrization.DMFTLimit` (richness, per-weight source scales and learning-rate weights,
    skip connections); ``sources``: from :func:`mlp_sources` or :func:`resnet_sources` (``mirrored``: drawn in
    antithetic pairs).
    """
    pr = process(act, limit, S=np.shape(sources["u1"])[0], steps=steps, Pa=Kx_all.shape[0], P=np.sum(train_mask),
                 dtype=dtype, two_time=two_time, mirrored=mirrored)
    Lx = _input_factor(Kx_all)
    with _march.precision(dtype):
        cast = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
        consts = {"u1": cast(np.asarray(sources["u1"]) @ Lx.T), "r_top": cast(sources["r_top"]),
                  "b": cast(limit.b), "kappa": cast(limit.kappa), "c": cast(lr * limit.gamma), "lr": cast(lr),
                  "gamma": cast(limit.gamma), "jitter": cast(stein_jitter), "Kx": cast(Kx_all), "y": cast(y_all),
                  "mask": cast(train_mask)}
        for name in pr.sources:
            if pr.whitened:
                Wi = whitening(sources[name], dtype)
                consts[f"Wi_{name}"] = cast(np.eye(pr.n) if Wi is None else Wi)
            consts[f"e_{name}"] = cast(sources[name])
    return pr, consts


def solve(pr, consts, *, blocks: int | None = None, progress: bool = False, desc: str = "DMFT march") -> Solution:
    """Run the march of ``(pr, consts)`` from :func:`build`."""
    with _march.precision(pr.dtype):
        out, carry = _march.march(pr, consts, blocks=default_blocks(pr.n) if blocks is None else blocks,
                                  progress=progress, desc=desc)
    two = {k: np.asarray(v) for k, v in carry["two"].items()} if pr.two_time else None
    return Solution(f=out["f"], f_se=out["f_se"], loss_se=out["loss_se"], phi=out["phi"], g=out["g"], two=two,
                    diverged_at=out["diverged_at"])


def ntk(sol: Solution, Kx, kappa):
    """Equal-time NTK (T1, Pa, Pa): ``sum_k kappa_k G^k(t,t) Phi^{k-1}(t,t)`` over the weights
    (``Phi^0 = Kx``, ``G^{K+1} = 1``); to first order ``f(t+1) - f(t) = lr/P NTK(t) Delta(t)``."""
    K = sol.phi.shape[1]
    out = kappa[0] * sol.g[:, 0] * Kx[None]
    for k in range(1, K):
        out = out + kappa[k] * sol.g[:, k] * sol.phi[:, k - 1]
    return out + kappa[K] * sol.phi[:, K - 1]


