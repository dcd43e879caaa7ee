r"""Nonlinear residual networks at ``depth = math.inf``: the layer-time SDE, Euler-Maruyama + Richardson.

In layer time ``tau = (l - 1)/L`` the single-site process of a residual table becomes a forward-backward
SDE: ``h`` is driven up by the Brownian source ``sigma dU(tau)`` (``Cov dU = Phi(tau) dtau``) with drift
``[sigma2 A(tau) + kappa c Phi(tau) Dt] g(tau) dtau``, ``g`` down by
``phi'(h) [sigma dR(tau) + (sigma2 B(tau) + kappa c G(tau) Dt) phi(h) dtau]`` (docs/theory/resnet_dmft.md
section 6; ``(sigma2, kappa)`` = :attr:`limits.parametrization.DMFTLimit.layer_time`). Its Euler-Maruyama
scheme with ``K`` steps is the finite-depth process with ``K`` blocks of weights ``sigma2/K``, ``kappa/K``
(:meth:`~limits.parametrization.DMFTLimit.with_blocks`), whose weak error expands as ``e1/K + e2/K^2 + ..``
(Talay-Tubaro). :func:`solve` marches ``K``, ``K/2`` (and ``K/4`` when ``4 | K``) steps on coupled sources
(each coarser level gets the summed Brownian increments of the finer one, :func:`limits.dmft.sources.pair_blocks`,
so the levels' Monte Carlo errors largely cancel) and combines them with :func:`richardson_weights`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import monte_carlo as mc
from .sources import pair_blocks

__all__ = ["richardson_weights", "levels_of", "LayerTimeSolution", "coupled_levels", "solve", "monte_carlo_level",
           "exact_level"]


def richardson_weights(m: int):
    """Weights ``w`` (m,) of the extrapolation ``sum_i w_i X(2^i h)`` that cancels the terms ``h, .., h^(m-1)`` of
    an expansion ``X(h) = X(0) + e1 h + e2 h^2 + ..`` (``m = 2``: ``(2, -1)``; ``m = 3``: ``(8/3, -2, 1/3)``)."""
    V = np.array([[2.0 ** (i * k) for i in range(m)] for k in range(m)])
    return np.linalg.solve(V, np.eye(m)[0])


def levels_of(K: int) -> list[int]:
    """Euler-Maruyama levels of ``K`` (even) layer-time steps: ``[K, K/2]`` and ``K/4`` when ``4 | K``."""
    return [K, K // 2] + ([K // 4] if K % 4 == 0 else [])


@dataclasses.dataclass(frozen=True)
class LayerTimeSolution:
    """The Richardson combination of the levels. ``solution``: combined predictions, errors (bounded by
    ``sqrt(sum_i w_i^2 s_i^2)``, no credit for the coupling) and equal-time kernels on the coarsest level's
    nodes ``tau = j/levels[-1]`` (``phi``, ``g`` of shape (T1, levels[-1] + 1, Pa, Pa)); ``ntk`` (T1, Pa, Pa);
    ``levels``, ``weights``; ``level_f`` (T1, Pa) per level."""

    solution: mc.Solution
    ntk: np.ndarray
    levels: list[int]
    weights: np.ndarray
    level_f: dict


def coupled_levels(limit, levels, level) -> list:
    """Solutions of the ``k``-block discretizations of the layer-time limit ``limit`` for each ``k`` in ``levels``
    (each the double of the next), each coarser one on the sources the finer one passes on (``level(limit_k, k,
    eps) -> (Solution, eps_next)``: :func:`monte_carlo_level` or :func:`exact_level`). Stops after a level whose
    gradient descent diverges. Returns ``[(k, limit_k, Solution), ...]``."""
    if any(a != 2 * b for a, b in zip(levels, levels[1:])):
        raise ValueError(f"levels must halve step by step, got {levels}")
    out, eps = [], None
    for k in levels:
        lim = limit.with_blocks(k)
        sol, eps = level(lim, k, eps)
        out.append((k, lim, sol))
        if sol.diverged_at is not None:
            break
    return out


def solve(limit, K: int, level, *, Kx_all) -> LayerTimeSolution:
    """Richardson-extrapolated levels ``K, K/2 (, K/4)`` of the layer-time limit ``limit`` (a
    :class:`~limits.parametrization.DMFTLimit` with ``layer_time``) by :func:`coupled_levels`.
    ``Kx_all`` (Pa, Pa) for the NTK."""
    levels = levels_of(K)
    w = richardson_weights(len(levels))
    runs = coupled_levels(limit, levels, level)
    if runs[-1][2].diverged_at is not None:
        k, lim, sol = runs[-1]
        return LayerTimeSolution(sol, mc.ntk(sol, Kx_all, lim.kappa), levels, w, {})
    sols = [sol for _, _, sol in runs]
    ntks = [mc.ntk(sol, Kx_all, lim.kappa) for _, lim, sol in runs]
    combine = lambda xs: sum(wi * x for wi, x in zip(w, xs))  # noqa: E731
    kmin = levels[-1]
    nodes = lambda x, k: x[:, [j * k // kmin for j in range(kmin + 1)]]  # noqa: E731  coarse tau nodes
    sol = mc.Solution(f=combine([s.f for s in sols]),
                      f_se=np.sqrt(sum((wi * s.f_se) ** 2 for wi, s in zip(w, sols))),
                      loss_se=np.sqrt(sum((wi * s.loss_se) ** 2 for wi, s in zip(w, sols))),
                      phi=combine([nodes(s.phi, k) for s, k in zip(sols, levels)]),
                      g=combine([nodes(s.g, k) for s, k in zip(sols, levels)]), two=None, diverged_at=None)
    return LayerTimeSolution(sol, combine(ntks), levels, w, {k: s.f for k, s in zip(levels, sols)})


def monte_carlo_level(act, *, Kx_all, y_all, train_mask, steps: int, lr: float, samples: int, seed: int, qmc: bool,
                      stein_jitter: float, dtype: str, antithetic: bool = True, blocks=None, progress=False):
    """Level solver for :func:`solve`: the Monte Carlo march of ``k`` blocks, each coarser level on the summed
    Brownian increments of the finer one (:func:`limits.dmft.sources.pair_blocks`)."""
    Pa, T1 = Kx_all.shape[0], int(steps) + 1

    def level(lim, k, eps):
        src = mc.resnet_sources(samples, k + 1, T1, Pa, seed, qmc, eps=eps, antithetic=antithetic)
        pr, consts = mc.build(act, Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, steps=steps, lr=lr, limit=lim,
                              sources=src, stein_jitter=stein_jitter, dtype=dtype)
        sol = mc.solve(pr, consts, blocks=blocks, progress=progress, desc=f"layer-time DMFT, {k} steps in tau")
        order = [src["u1"]] + [src[f"u{j}"] for j in range(2, k + 2)] + [src[f"r{j}"] for j in range(1, k + 1)]
        return sol, (pair_blocks(order + [src["r_top"]], k) if k % 2 == 0 else None)

    return level


def exact_level(*, Kx_all, y_all, train_mask, steps: int, lr: float, blocks=None, progress=False):
    """Level solver for :func:`solve`: the deterministic linear residual march of ``k`` blocks."""
    from . import resnet

    def level(lim, k, eps):
        return resnet.solve(Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, steps=steps, lr=lr, limit=lim,
                            blocks=blocks, progress=progress), None

    return level
