"""JAX backend: the MLP recursion on a block of kernel entries, jit-compiled.

Runs anywhere JAX does (GPU, TPU) and is differentiable; every activation is supported (closed forms or the
quadrature rules of :mod:`limits.activations`, one static rule per layer chosen from the diagonal variances).
Callers run it under a scoped ``jax.enable_x64(True)`` (float64).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from limits.activations import Activation, diagonal_expectations, gaussian_expectations, quadrature

__all__ = ["mlp_block", "mlp_diag"]


def mlp_diag(sqnorm, w2, b2, lam, act: Activation, order: int | None):
    """Diagonal recursion on the host, layer by layer: ``sqnorm`` (P,) = |x|^2 (w2[0] already divided by D).

    Each layer's rule is chosen from its variances (``order``: Gauss-Hermite order or None, adaptive).
    Returns ``(q, t)``: ``q`` (L+1, P) with ``q[l] = K^{l+1}(x, x)`` (pre-activation variance of layer l+1,
    ``q[L]`` the output NNGP) and ``t`` (P,) the NTK diagonal, as NumPy arrays.
    """
    k = w2[0] * np.asarray(sqnorm) + b2
    t = lam[0] * k
    qs = [k]
    for l in range(len(w2) - 1):
        rule = quadrature(k.max(initial=0.0), order, where=f"of layer {l + 1}")
        e, ed = (np.asarray(v) for v in diagonal_expectations(act, jnp.asarray(k), rule))
        k = w2[l + 1] * e + b2
        t = lam[l + 1] * k + w2[l + 1] * ed * t
        qs.append(k)
    return np.stack(qs), t


@functools.partial(jax.jit, static_argnames=("act", "rules"))
def mlp_block(G, q1, q2, w2, b2, lam, act: Activation, rules: tuple):
    """NNGP and NTK of a block: ``G`` (B, P2) = x_i . x_j, ``q1`` (L+1, B), ``q2`` (L+1, P2).

    ``K^1 = w2[0] G + b2``; ``K^{l+1} = w2[l] E[phi phi] + b2``;
    ``T^{l+1} = lam[l] K^{l+1} + w2[l] E[phi' phi'] T^l`` with (u, u') ~ N(0, K^l); ``rules[l]`` the static
    quadrature of hidden layer l+1 (None for closed forms).
    """
    k = w2[0] * G + b2
    t = lam[0] * k
    for l in range(w2.shape[0] - 1):
        e, ed = gaussian_expectations(act, q1[l][:, None], k, q2[l][None, :], rule=rules[l] or _CLOSED_RULE)
        k = w2[l + 1] * e + b2
        t = lam[l + 1] * k + w2[l + 1] * ed * t
    return k, t


_CLOSED_RULE = quadrature(1.0)  # placeholder for closed forms (never used by them)
