r"""Weight updates of :func:`limits.simulate`: SGD, Adam, AdamW and Muon, per layer, from one table.

For layer ``l`` with learning rate ``eta_l = lr * lr_scales[l]``, gradient ``g`` and step ``k = t + 1``:

- SGD: ``w <- w - eta_l g``.
- Adam (bias-corrected, moments per raw weight): ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
  ``u = (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps_l)`` with ``eps_l = adam_eps * eps_scales[l]``.
- Muon (Jordan et al. 2024) on the rows the table marks (n x n): ``m <- mu m + g``, Nesterov ``G = g + mu m``,
  ``u = sqrt(max(1, fan_out/fan_in)) NS5(G / |G|_F)`` with the quintic Newton-Schulz iteration
  ``X <- a X + (b A + c A^2) X``, ``A = X X^T``, ``(a, b, c) = (3.4445, -4.7750, 2.0315)``, 5 steps (singular
  values of ``u`` land in about [0.7, 1.2]: the update has spectral norm ~1). The normalization has no additive
  regularizer (Jordan's code and optax add 1e-7 to the norm), so the update is exactly invariant to the gradient's
  scale and the width symmetry of the table holds to rounding. The other rows use Adam.
- then ``w <- w - eta_l u``, and weight decay from the weights before the step: decoupled (optax/PyTorch AdamW)
  ``w <- w - eta_l lambda_l w_old``, or independent ``w <- w - lambda_l w_old``.

Residual blocks are stacked (L, n, n); Muon orthogonalizes each block.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["MUON_MOMENTUM", "NS_COEFFICIENTS", "NS_STEPS", "newton_schulz", "make_update"]

MUON_MOMENTUM = 0.95
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def newton_schulz(G, steps: int = NS_STEPS):
    """Approximate orthogonalization ``U V^T`` of ``G = U S V^T`` (m, n) by the quintic Newton-Schulz iteration.

    Args:
        G: (m, n) matrix, or (..., m, n) stacked matrices (each orthogonalized on its own).
        steps: iterations (default 5).

    Returns:
        Array of ``G``'s shape: ``U S' V^T`` with ``S'`` in about [0.7, 1.2] (0 for ``G = 0``).
    """
    if G.ndim > 2:
        return jax.vmap(lambda g: newton_schulz(g, steps))(G)
    a, b, c = NS_COEFFICIENTS
    wide = G.shape[0] <= G.shape[1]
    X = G if wide else G.T
    X = X / (jnp.linalg.norm(X) + jnp.finfo(X.dtype).tiny)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    return X if wide else X.T


def _shape_scale(w) -> float:
    """``sqrt(max(1, fan_out / fan_in))`` of a weight stored (fan_out, fan_in)."""
    return max(1.0, w.shape[-2] / w.shape[-1]) ** 0.5


def _bcast(scale, w):
    """Per-layer scale broadcast against ``w`` (stacked residual blocks: (L,) -> (L, 1, 1))."""
    return jnp.reshape(scale, jnp.shape(scale) + (1,) * (w.ndim - jnp.ndim(scale)))


def make_update(optimizer: str, decay: str, muon: tuple[bool, ...], adam: tuple[float, float, float]) -> Callable:
    """The update ``(params, grads, opt, t, lr, lr_scales, decays, eps_scales) -> (params, opt)`` of one network.

    Args:
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"`` or ``"muon"``.
        decay: ``"decoupled"`` or ``"independent"`` (weight decay; ``decays`` are zero where there is none).
        muon: per layer, whether Muon updates it (only with ``"muon"``).
        adam: ``(b1, b2, adam_eps)``.

    Returns:
        The update; ``opt`` is ``()`` for SGD, else ``(m, v)`` per layer (``v`` unused on Muon layers).
    """
    b1, b2, eps = adam

    def step(l, w, g, m, v, k, rate, eps_scale):
        """``(lr_l u, m, v)``; Adam in the operation order of the package before AdamW and Muon (bit-identical)."""
        if muon[l]:
            m = MUON_MOMENTUM * m + g
            return rate * (_shape_scale(w) * newton_schulz(g + MUON_MOMENTUM * m)), m, v
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return rate * (m / (1 - b1**k)) / (jnp.sqrt(v / (1 - b2**k)) + eps * _bcast(eps_scale, w)), m, v

    def update(params, grads, opt, t, lr, lr_scales, decays, eps_scales):
        rates = [lr * _bcast(lr_scales[l], w) for l, w in enumerate(params)]
        if optimizer == "sgd":
            return tuple(w - r * g for w, r, g in zip(params, rates, grads)), opt
        k = (t + 1).astype(params[0].dtype)
        new, ms, vs = [], [], []
        for l, (w, g, m, v) in enumerate(zip(params, grads, *opt)):
            du, m, v = step(l, w, g, m, v, k, rates[l], eps_scales[l])
            if optimizer == "adam":  # no weight decay (nothing to add, not even 0 * w)
                new.append(w - du)
            else:
                shrink = _bcast(decays[l], w) * (rates[l] if decay == "decoupled" else 1.0)
                new.append(w - du - shrink * w)
            ms.append(m)
            vs.append(v)
        return tuple(new), (tuple(ms), tuple(vs))

    return update
