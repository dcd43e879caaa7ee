r"""Pure functions for one finite-width MLP in the pinned conventions (DESIGN.md).

Raw weights ``params = (w0, w1, ..., w_{L-1}, wL)`` with shapes ``(n, D)``,
``(n, n)`` x (L-1), ``(n,)``; ``mult``, ``lr_scales`` are the (L+1,) arrays of a
:class:`limits.parametrization.Network`. With rows of ``X`` the inputs,

.. math::  h^1 = m_0\, X w_0^T,\quad h^{l+1} = m_l\, \phi(h^l) w_l^T,\quad f = m_L\, \phi(h^L) w_L .

Backward fields are normalized by the readout multiplier,
``g^l = (\partial f / \partial h^l) / m_L`` (O(1) coordinates in ntk and mup;
in mup this is Bordelon & Pehlevan's ``g = gamma0 N df/dh``).
Kernels (P x P): ``Phi^l = phi(h^l) phi(h^l)^T / n``, ``G^l = g^l g^{lT} / n``; the
empirical NTK weighted by the per-layer learning rates (the kernel that drives
``df = -lr K (f - y) / P`` to first order) is

.. math:: K = \sum_{l<L} \eta_l m_l^2 m_L^2 (g^{l+1} g^{l+1,T}) \odot (\mathrm{in}_l \mathrm{in}_l^T)
          + \eta_L m_L^2\, \phi(h^L)\phi(h^L)^T,

with ``in_0 = X`` and ``in_l = phi(h^l)``. All functions act on one seed; the
simulator vmaps them.

Residual networks (``Network.residual``, L blocks) store the block weights
stacked, ``params = (w0 (n, D), Wb (L, n, n), wL (n,))``, and take per-layer
scales in the same structure, ``mult = (m_0, b m_{1..L} (L,), m_{L+1})`` with
the branch multiplier ``b = beta L^{-alpha}`` folded in (see :func:`layer_scales`):

.. math::  h^1 = m_0 X w_0^T,\quad h^{l+1} = h^l + b\, m_l\, \phi(h^l) W_l^T\ (l = 1..L),\quad
           f = m_{L+1} \phi(h^{L+1}) w_L,

so ``hs`` is one (L+1, P, n) array and ``g^l = g^{l+1} + (g^{l+1} b m_l W_l) \odot \phi'(h^l)``.
The blocks are a ``lax.scan``: compilation time does not grow with depth.
Every function below accepts both layouts (a residual ``params`` is recognised
by its 3-D middle entry).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "init_params",
    "forward",
    "loss_fn",
    "backward_fields",
    "kernels",
    "ntk",
    "spectral_norm",
    "effective_spectral_norms",
    "top_eigenvalue",
    "param_shapes",
    "layer_scales",
    "is_residual",
]

Params = tuple  # tuple of jnp arrays, one per layer


def param_shapes(depth: int, width: int, input_dim: int, residual: bool = False) -> list[tuple[int, ...]]:
    """Shapes of the raw weights, one per layer: ``[(n, D), (n, n) * (L-1), (n,)]``
    (``residual``: ``L`` blocks, ``[(n, D), (n, n) * L, (n,)]``)."""
    hidden = depth if residual else depth - 1
    return [(width, input_dim)] + [(width, width)] * hidden + [(width,)]


def init_params(seed: int, index: int, init_stds: np.ndarray, depth: int, width: int, input_dim: int,
                dtype=np.float64, residual: bool = False) -> Params:
    """Raw weights of network ``index`` of ensemble ``seed``: layer ``l`` is ``init_stds[l] * N(0, 1)``.

    Drawn with NumPy from ``default_rng([seed, index, l])`` (no compilation, the
    same on every backend), so a network's weights do not depend on how many
    seeds are simulated, and tables with equal ``init_stds`` share weights.
    ``residual``: ``depth`` blocks, returned stacked as ``(w0, Wb (L, n, n), wL)``.
    """
    shapes = param_shapes(depth, width, input_dim, residual)
    layers = [
        (init_stds[l] * np.random.default_rng([seed, index, l]).standard_normal(shape)).astype(dtype)
        for l, shape in enumerate(shapes)
    ]
    if residual:
        return (layers[0], np.stack(layers[1:-1]), layers[-1])
    return tuple(layers)


def is_residual(params: Params) -> bool:
    """True for the stacked residual layout ``(w0, Wb (L, n, n), wL)`` of one network."""
    return len(params) == 3 and params[1].ndim == 3


def layer_scales(net) -> tuple:
    """``(mult, lr_scales, weight_decays, eps_scales)`` of a :class:`~limits.parametrization.Network` in its
    params' layout.

    MLP: the (L+1,) arrays as they are. Residual: ``(m_0, b * m[1:L+1], m_{L+1})``
    (branch multiplier ``b`` folded into the blocks) and ``(x_0, x[1:L+1], x_{L+1})`` for the others.
    """
    size = len(net.multipliers)
    mult, lrs = np.asarray(net.multipliers, float), np.asarray(net.lr_scales, float)
    decays = np.zeros(size) if net.weight_decays is None else np.asarray(net.weight_decays, float)
    eps = np.ones(size) if net.eps_scales is None else np.asarray(net.eps_scales, float)
    if not getattr(net, "residual", False):
        return mult, lrs, decays, eps
    b = float(net.branch_multiplier)
    return ((mult[0], b * mult[1:-1], mult[-1]),) + tuple((x[0], x[1:-1], x[-1]) for x in (lrs, decays, eps))


def _stack(hs):
    return hs if not isinstance(hs, (list, tuple)) else jnp.stack(hs)


def forward(params: Params, mult, X, phi: Callable):
    """Outputs ``f`` (P,) and hidden preactivations ``[h^1, ..., h^L]`` each (P, n)
    (residual: one (L+1, P, n) array ``h^1..h^{L+1}``)."""
    if is_residual(params):
        return _forward_residual(params, mult, X, phi)
    depth = len(params) - 1
    h = mult[0] * (X @ params[0].T)
    hs = [h]
    for l in range(1, depth):
        h = mult[l] * (phi(h) @ params[l].T)
        hs.append(h)
    f = mult[depth] * (phi(h) @ params[depth])
    return f, hs


def _forward_residual(params: Params, mult, X, phi: Callable):
    w0, Wb, wL = params
    m0, mb, mL = mult
    h1 = m0 * (X @ w0.T)

    def block(h, wm):
        w, m = wm
        h = h + m * (phi(h) @ w.T)
        return h, h

    h, rest = jax.lax.scan(block, h1, (Wb, mb))
    f = mL * (phi(h) @ wL)
    return f, jnp.concatenate([h1[None], rest])


def loss_fn(params: Params, mult, X, y, phi: Callable):
    """Train loss ``1/(2P) sum_mu (f_mu - y_mu)^2``."""
    f, _ = forward(params, mult, X, phi)
    return 0.5 * jnp.mean((f - y) ** 2)


def backward_fields(params: Params, mult, hs: Sequence, dphi: Callable) -> list:
    """``[g^1, ..., g^L]`` with ``g^l = (df/dh^l) / m_L``, each (P, n) (residual: (L+1, P, n) array)."""
    if is_residual(params):
        return _backward_residual(params, mult, hs, dphi)
    depth = len(params) - 1
    g = params[depth][None, :] * dphi(hs[depth - 1])
    gs = [g]
    for l in range(depth - 1, 0, -1):
        g = (g @ (mult[l] * params[l])) * dphi(hs[l - 1])
        gs.append(g)
    return gs[::-1]


def _backward_residual(params: Params, mult, hs, dphi: Callable):
    _, Wb, wL = params
    _, mb, _ = mult
    gL = wL[None, :] * dphi(hs[-1])

    def block(g, whm):
        w, h, m = whm
        g = g + (g @ (m * w)) * dphi(h)
        return g, g

    _, rest = jax.lax.scan(block, gL, (Wb, hs[:-1], mb), reverse=True)
    return jnp.concatenate([rest, gL[None]])


def kernels(hs: Sequence, gs: Sequence, phi: Callable):
    """Feature and gradient kernels ``Phi^l``, ``G^l`` (one per hidden representation), each (L, P, P)."""
    H, Gs = _stack(hs), _stack(gs)
    width = H.shape[-1]
    F = phi(H)
    return jnp.einsum("lpi,lqi->lpq", F, F) / width, jnp.einsum("lpi,lqi->lpq", Gs, Gs) / width


def ntk(params: Params, mult, lr_scales, X, hs: Sequence, gs: Sequence, phi: Callable):
    """Learning-rate-weighted empirical NTK (P, P); see the module docstring."""
    if is_residual(params):
        (m0, mb, mL), (e0, eb, eL) = mult, lr_scales
        F = phi(hs)  # (L+1, P, n)
        K = eL * mL**2 * (F[-1] @ F[-1].T) + e0 * m0**2 * mL**2 * (gs[0] @ gs[0].T) * (X @ X.T)
        FF = jnp.einsum("lpi,lqi->lpq", F[:-1], F[:-1])
        GG = jnp.einsum("lpi,lqi->lpq", gs[1:], gs[1:])
        return K + mL**2 * jnp.einsum("l,lpq->pq", eb * mb**2, FF * GG)
    depth = len(params) - 1
    mL = mult[depth]
    inputs = [X] + [phi(h) for h in hs[:-1]]
    K = lr_scales[depth] * mL**2 * (phi(hs[-1]) @ phi(hs[-1]).T)
    for l in range(depth):
        K = K + lr_scales[l] * mult[l] ** 2 * mL**2 * (gs[l] @ gs[l].T) * (inputs[l] @ inputs[l].T)
    return K


def effective_spectral_norms(params: Params, mult):
    """Spectral norms of the effective weights ``m_l w_l`` (residual blocks: ``b m_l W_l``), shape (layers,)."""
    if is_residual(params):
        (w0, Wb, wL), (m0, mb, mL) = params, mult
        blocks = jax.vmap(spectral_norm)(mb[:, None, None] * Wb)
        return jnp.concatenate([spectral_norm(m0 * w0)[None], blocks, spectral_norm(mL * wL)[None]])
    return jnp.stack([spectral_norm(mult[l] * w) for l, w in enumerate(params)])


def spectral_norm(M, *, iters: int = 100):
    """Largest singular value of a vector (its norm) or a matrix.

    Exact to rounding when one side is at most 32 (:func:`top_eigenvalue` of the
    small Gram matrix); otherwise ``iters`` power iterations on the smaller Gram
    matrix (``M^T M`` is applied as two matrix-vector products when both sides are
    large) from a fixed quasi-random start: a lower bound within ~0.3% for Gaussian
    matrices at 100 iterations (checked against SVD up to n = 1024), and exact to
    rounding for the low-rank weight updates. Matrix products only: XLA's CPU SVD
    is orders of magnitude slower, and its LAPACK eigensolver inside the vmapped
    time loop hung intermittently.
    """
    if M.ndim == 1:
        return jnp.linalg.norm(M)
    rows, cols = M.shape
    G = M.T @ M if cols <= rows else M @ M.T
    if min(rows, cols) <= 32:  # e.g. the input layer (n, D)
        return jnp.sqrt(jnp.maximum(top_eigenvalue(G), 0.0))
    if min(rows, cols) <= 256:
        apply = lambda v: G @ v  # noqa: E731
        size = G.shape[0]
    else:
        apply = lambda v: M.T @ (M @ v)  # noqa: E731
        size = cols
    v = jnp.sin(jnp.arange(1, size + 1, dtype=M.dtype) * 618.0339887) + 0.05

    def body(_, v):
        w = apply(v)
        return w / (jnp.linalg.norm(w) + jnp.finfo(M.dtype).tiny)

    v = jax.lax.fori_loop(0, iters, body, v / jnp.linalg.norm(v))
    return jnp.sqrt(jnp.maximum(jnp.vdot(v, apply(v)), 0.0))


def top_eigenvalue(G, *, squarings: int = 48):
    """Largest eigenvalue of a small symmetric positive semi-definite matrix ``G`` (n, n), by matrix products only.

    Repeated squaring ``A <- A^2 / tr A^2`` from ``A = G / tr G`` gives ``A_k = G^(2^k) / tr G^(2^k)``, which
    tends to ``Pi / m``, the projector on the top eigenspace over its multiplicity, once ``(lambda_2/lambda_1)^(2^k)``
    underflows (48 squarings: any gap above ~1e-13 relative). Then ``lambda_1 = tr(G A) / tr(A)``, exact to rounding
    for degenerate tops too, and 0 for ``G = 0``.
    """
    tiny = jnp.finfo(G.dtype).tiny
    A = G / (jnp.trace(G) + tiny)

    def square(_, A):
        A2 = A @ A
        return A2 / (jnp.trace(A2) + tiny)

    A = jax.lax.fori_loop(0, squarings, square, A)
    return jnp.sum(G * A) / (jnp.trace(A) + tiny)
