r"""ResNet kernels and the infinite-depth limit of the 1/sqrt(L)-branch ResNet.

Architecture (neural-tangents terms): ``Dense(W, b)``; ``blocks`` times
``h <- h + Dense(W * m, b_std=0)(phi(h))``; then ``phi``, ``Dense(1, W, b)``.
With ``a = (W m)^2`` and ``(u, u') ~ N(0, K)`` each block maps

.. math::
    K \leftarrow K + a\,E[\phi\phi],\qquad \Theta \leftarrow \Theta + a\,(E[\phi\phi] + E[\phi'\phi']\,\Theta).

With ``m = beta / sqrt(L)`` this is forward Euler with step 1/L for the ODE
(Hayou & Yang, arXiv 2302.00453) on ``s in [0, 1]``:

.. math::
    \dot K = W^2\beta^2\, E_K[\phi\phi],\qquad \dot\Theta = W^2\beta^2\,(E_K[\phi\phi] + E_K[\phi'\phi']\,\Theta),

so finite depth converges to :func:`resnet_infinite_depth` at rate O(1/L).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from limits import activations as _act
from limits.checks import integer
from limits.kernels._common import Kernels, check_depth, check_inputs, float64, nonneg
from limits.kernels.mlp import _finite, _mirror_upper

__all__ = ["ResNetKernel", "resnet", "resnet_infinite_depth"]


def _expect(act, rule, k11, k12, k22):
    return _act.gaussian_expectations(act, k11, k12, k22, rule=rule)


def _readout(act, rule, w2, b2, q1, q2, k, t, lam_out=1.0):
    e, ed = _expect(act, rule, q1, k, q2)
    kout = w2 * e + b2
    return kout, lam_out * kout + w2 * ed * t


def _readout_diag(act, rule, w2, b2, q, t, lam_out=1.0):
    e, ed = _act.diagonal_expectations(act, q, rule)
    kout = w2 * e + b2
    return kout, lam_out * kout + w2 * ed * t


def _block_rate(act, rule, a, state, lam_block=1.0):
    """Right-hand side ``a * (E[phi phi], lam E[phi phi] + E[phi' phi'] Theta)`` for diagonals and cross terms.

    ``lam`` weighs the blocks' own NTK contributions (their learning rate relative to neural-tangents')."""
    q1, q2, k, t, t1, t2 = state
    e1, d1 = _act.diagonal_expectations(act, q1, rule)
    e2, d2 = _act.diagonal_expectations(act, q2, rule)
    e, d = _expect(act, rule, q1[:, None], k, q2[None, :])
    lb = lam_block
    return (a * e1, a * e2, a * e, a * (lb * e + d * t), a * (lb * e1 + d1 * t1), a * (lb * e2 + d2 * t2))


def _initial(G, n1, n2, w2, b2):
    k = w2 * G + b2
    q1, q2 = w2 * n1 + b2, w2 * n2 + b2
    return (q1, q2, k, k, q1, q2)


@functools.partial(jax.jit, static_argnames=("act", "rule"))
def _resnet_finite(G, n1, n2, w2, b2, a, act, rule, blocks, lam=(1.0, 1.0, 1.0)):
    def body(_, state):
        rate = _block_rate(act, rule, a, state, lam[1])
        return tuple(s + r for s, r in zip(state, rate))

    state0 = (*_initial(G, n1, n2, w2, b2)[:3], lam[0] * (w2 * G + b2), lam[0] * (w2 * n1 + b2), lam[0] * (w2 * n2 + b2))
    q1, q2, k, t, t1, t2 = jax.lax.fori_loop(0, blocks, body, state0)
    kout, tout = _readout(act, rule, w2, b2, q1[:, None], q2[None, :], k, t, lam[2])
    d1 = _readout_diag(act, rule, w2, b2, q1, t1, lam[2])
    return kout, tout, d1


@functools.partial(jax.jit, static_argnames=("act", "rule"))
def _resnet_ode(G, n1, n2, w2, b2, a, act, rule, steps):
    h = 1.0 / steps

    def f(state):
        return _block_rate(act, rule, a, state)

    def body(_, y):  # classical RK4 on s in [0, 1]
        k1 = f(y)
        k2 = f(tuple(v + 0.5 * h * r for v, r in zip(y, k1)))
        k3 = f(tuple(v + 0.5 * h * r for v, r in zip(y, k2)))
        k4 = f(tuple(v + h * r for v, r in zip(y, k3)))
        return tuple(v + h / 6.0 * (r1 + 2 * r2 + 2 * r3 + r4) for v, r1, r2, r3, r4 in zip(y, k1, k2, k3, k4))

    q1, q2, k, t, t1, t2 = jax.lax.fori_loop(0, steps, body, _initial(G, n1, n2, w2, b2))
    kout, tout = _readout(act, rule, w2, b2, q1[:, None], q2[None, :], k, t)
    d1 = _readout_diag(act, rule, w2, b2, q1, t1)
    return kout, tout, d1


def _max_variance(q0: np.ndarray, a: float, act, order, blocks: int | None, ode_steps: int | None) -> float:
    """Largest pre-activation variance along the residual stream (host pass over the diagonal, 1-D quadrature):
    it chooses the static quadrature rule of the whole network. ``blocks`` Euler steps ``q += a E[phi^2]``, or
    ``ode_steps`` RK4 steps of ``dq/ds = a E[phi^2]`` (every stage counted)."""
    q, top = np.asarray(q0, dtype=float), float(np.max(q0, initial=0.0))

    def rate(v):
        nonlocal top
        top = max(top, float(np.max(v, initial=0.0)))
        rule = _act.quadrature(top, order, where="along the residual stream")
        return a * np.asarray(_act.diagonal_expectations(act, jnp.asarray(v), rule)[0])

    if blocks is not None:
        for _ in range(blocks):
            q = q + rate(q)
    else:
        h = 1.0 / ode_steps
        for _ in range(ode_steps):
            k1 = rate(q)
            k2 = rate(q + 0.5 * h * k1)
            k3 = rate(q + 0.5 * h * k2)
            q = q + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + rate(q + h * k3))
    rate(q)
    return top


class ResNetKernel:
    """Kernel function of a ResNet (finite ``blocks``) or its infinite-depth limit (``blocks=None``)."""

    def __init__(self, blocks, activation, W_std, b_std, branch_multiplier, quadrature_order, ode_steps=None,
                 layer_weights=(1.0, 1.0, 1.0)):
        self.blocks = None if blocks is None else check_depth(blocks, "blocks")
        self.activation = _act.get(activation)
        self.W_std = nonneg(W_std, "W_std")
        self.b_std = nonneg(b_std, "b_std")
        self.branch_multiplier = nonneg(branch_multiplier, "branch_multiplier")
        self.quadrature_order = _act.check_order(quadrature_order)
        self.ode_steps = ode_steps
        if isinstance(layer_weights, (str, bytes)) or np.ndim(layer_weights) != 1 or len(layer_weights) != 3:
            raise ValueError(f"layer_weights are (input, blocks, readout) NTK weights: three numbers, got "
                             f"{layer_weights!r}")
        self.layer_weights = tuple(nonneg(v, f"layer_weights[{i}]") for i, v in enumerate(layer_weights))
        self._closed = self.activation.name in _act.CLOSED_FORMS and self.activation is _act.get(self.activation.name)

    def __repr__(self) -> str:
        depth = "infinite depth" if self.blocks is None else f"blocks={self.blocks}"
        return f"ResNetKernel({depth}, activation={self.activation.name!r}, W_std={self.W_std}, b_std={self.b_std})"

    def _rule(self, n1, n2, w2, b2, a):
        """The static quadrature rule for every block (None for closed forms)."""
        if self._closed:
            return None
        q0 = w2 * np.concatenate([np.asarray(n1), np.asarray(n2)]) + b2
        top = _max_variance(q0, a, self.activation, self.quadrature_order, self.blocks, self.ode_steps)
        return _act.quadrature(top, self.quadrature_order, where="along the residual stream")

    @float64
    def __call__(self, X1, X2=None) -> Kernels:
        """NNGP and NTK (P1, P2) between ``X1`` and ``X2`` (default ``X1``; then exactly symmetric), in float64."""
        X1, X2 = check_inputs(X1, X2)
        sym = X2 is None
        X2 = X1 if sym else X2
        D = X1.shape[1]
        G = jnp.asarray(X1 @ X2.T / D)
        n1, n2 = (np.einsum("ij,ij->i", X, X) / D for X in (X1, X2))
        w2, b2 = self.W_std**2, self.b_std**2
        a = w2 * self.branch_multiplier**2
        rule = self._rule(n1, n2, w2, b2, a)
        n1, n2 = jnp.asarray(n1), jnp.asarray(n2)
        if self.blocks is None:
            k, t, (d_k, d_t) = _resnet_ode(G, n1, n2, w2, b2, a, self.activation, rule, self.ode_steps)
        else:
            k, t, (d_k, d_t) = _resnet_finite(G, n1, n2, w2, b2, a, self.activation, rule, self.blocks,
                                              self.layer_weights)
        k, t = np.array(k), np.array(t)
        if sym:
            np.fill_diagonal(k, np.asarray(d_k))
            np.fill_diagonal(t, np.asarray(d_t))
            k, t = _mirror_upper(k), _mirror_upper(t)
        _finite(k, t)
        return Kernels(k, t)


def resnet(
    blocks: int,
    activation: str | Callable = "tanh",
    W_std: float = 1.0,
    b_std: float = 0.0,
    branch_multiplier: float = 1.0,
    *,
    quadrature_order: int | None = None,
    layer_weights=(1.0, 1.0, 1.0),
) -> ResNetKernel:
    """Kernel function of ``Dense(W, b)``, ``blocks x [h + Dense(W * branch_multiplier)(phi(h))]``,
    ``phi``, ``Dense(1, W, b)``; call it as ``k(X1, X2=None)`` -> :class:`Kernels`.

    Args:
        blocks: residual blocks L, an integer >= 1.
        activation: name (``relu``, ``erf``, ``gelu``, ``linear``: closed forms; ``tanh``, the default) or a
            JAX-traceable callable (quadrature).
        W_std: weight std of every dense layer, a number >= 0 (default 1.0).
        b_std: bias std of the input and readout layers, >= 0 (default 0.0; the blocks have no bias).
        branch_multiplier: multiplier m of each block's branch, >= 0 (default 1.0; ``1/sqrt(L)`` branches:
            ``beta / sqrt(blocks)``).
        quadrature_order: None (adaptive quadrature, accurate to 1e-8) or a Gauss-Hermite order in [16, 256]
            (see :func:`limits.kernels.mlp`).
        layer_weights: ``(input, blocks, readout)`` weights >= 0 of each group's NTK contribution
            (``Theta = sum_l lambda_l Theta_l``), e.g. a block learning rate scaled with depth; default
            ``(1.0, 1.0, 1.0)`` (neural-tangents' NTK). Anything but three numbers raises ``ValueError``.

    Returns:
        :class:`ResNetKernel` ``k``: ``k(X1, X2=None)`` with ``X1`` (P1, D), ``X2`` (P2, D) gives :class:`Kernels`
        ``(nngp, ntk)`` of shape (P1, P2) (``X2=None``: ``X1`` against itself, exactly symmetric), in float64.
        Invalid arguments raise ``ValueError`` / ``TypeError`` naming the argument.
    """
    return ResNetKernel(blocks, activation, W_std, b_std, branch_multiplier, quadrature_order,
                        layer_weights=layer_weights)


def resnet_infinite_depth(
    activation: str | Callable = "tanh",
    W_std: float = 1.0,
    b_std: float = 0.0,
    branch_scale: float = 1.0,
    *,
    ode_steps: int = 128,
    quadrature_order: int | None = None,
) -> ResNetKernel:
    """Depth limit of :func:`resnet` with ``branch_multiplier = branch_scale / sqrt(blocks)``.

    Solves the covariance/NTK ODE on ``s in [0, 1]`` with ``ode_steps`` RK4 steps
    (error O(ode_steps^-4)), then applies the readout.

    Args:
        activation: name or JAX-traceable callable (default ``"tanh"``), as in :func:`resnet`.
        W_std: weight std of every dense layer, >= 0 (default 1.0).
        b_std: bias std of the input and readout layers, >= 0 (default 0.0).
        branch_scale: ``beta`` >= 0 of the ``beta / sqrt(L)`` branches (default 1.0).
        ode_steps: RK4 steps in layer time, an integer >= 1 (default 128).
        quadrature_order: None (adaptive quadrature) or a Gauss-Hermite order in [16, 256].

    Returns:
        :class:`ResNetKernel` ``k`` (``k.blocks`` is None): ``k(X1, X2=None)`` with ``X1`` (P1, D), ``X2`` (P2, D)
        gives :class:`Kernels` ``(nngp, ntk)`` of shape (P1, P2), in float64 (the limit of :func:`resnet` with
        ``layer_weights=(1, 1, 1)`` as ``blocks -> inf``).
    """
    return ResNetKernel(None, activation, W_std, b_std, branch_scale, quadrature_order,
                        integer(ode_steps, "ode_steps", 1))
