"""JAX backend: the MLP recursion on a block of kernel entries, jit-compiled.

Runs anywhere JAX does (GPU, TPU) and is differentiable; every activation is
supported (closed forms or Gauss-Hermite quadrature from :mod:`limits.activations`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from limits.activations import Activation, gaussian_expectations

__all__ = ["mlp_block", "mlp_diag"]


def mlp_diag(sqnorm, w2, b2, lam, act: Activation, order: int):
    """Diagonal recursion: ``sqnorm`` (P,) = |x|^2 (w2[0] already divided by D).

    Returns ``(q, t)``: ``q`` (L+1, P) with ``q[l] = K^{l+1}(x, x)`` (pre-activation
    variance of layer l+1, ``q[L]`` the output NNGP) and ``t`` (P,) the NTK diagonal.
    """
    k = w2[0] * sqnorm + b2
    t = lam[0] * k
    qs = [k]
    for l in range(w2.shape[0] - 1):
        e, ed = gaussian_expectations(act, k, k, k, order=order)
        k = w2[l + 1] * e + b2
        t = lam[l + 1] * k + w2[l + 1] * ed * t
        qs.append(k)
    return jnp.stack(qs), t


@functools.partial(jax.jit, static_argnames=("act", "order"))
def mlp_block(G, q1, q2, w2, b2, lam, act: Activation, order: int):
    """NNGP and NTK of a block: ``G`` (B, P2) = x_i . x_j, ``q1`` (L+1, B), ``q2`` (L+1, P2).

    ``K^1 = w2[0] G + b2``; ``K^{l+1} = w2[l] E[phi phi] + b2``;
    ``T^{l+1} = lam[l] K^{l+1} + w2[l] E[phi' phi'] T^l`` with (u, u') ~ N(0, K^l).
    """
    k = w2[0] * G + b2
    t = lam[0] * k
    for l in range(w2.shape[0] - 1):
        e, ed = gaussian_expectations(act, q1[l][:, None], k, q2[l][None, :], order=order)
        k = w2[l + 1] * e + b2
        t = lam[l + 1] * k + w2[l + 1] * ed * t
    return k, t
