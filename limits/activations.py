"""Activation functions by name, their derivatives, and Gaussian expectations.

Every solver and the simulator resolve activations here, so ``"tanh"`` means the
same function everywhere. ``get(name_or_callable)`` returns an
:class:`Activation` whose ``fn`` and ``deriv`` are elementwise and JAX-traceable
(they also accept NumPy arrays).

Names: ``linear``, ``relu``, ``tanh``, ``erf``, ``gelu`` (exact, erf-based).
A user callable ``phi`` is accepted too; its derivative comes from ``jax.grad``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

__all__ = ["Activation", "get", "NAMES"]

_SQRT2 = 1.4142135623730951
_SQRT_2_OVER_PI = 0.7978845608028654


def _linear(x):
    return x


def _dlinear(x):
    return jnp.ones_like(x)


def _relu(x):
    return jnp.maximum(x, 0.0)


def _drelu(x):
    return (x > 0).astype(jnp.result_type(x, jnp.float32))


def _tanh(x):
    return jnp.tanh(x)


def _dtanh(x):
    return 1.0 - jnp.tanh(x) ** 2


def _erf(x):
    return jsp.erf(x)


def _derf(x):
    return (2.0 / jnp.sqrt(jnp.pi)) * jnp.exp(-(x**2))


def _gelu(x):
    return 0.5 * x * (1.0 + jsp.erf(x / _SQRT2))


def _dgelu(x):
    return 0.5 * (1.0 + jsp.erf(x / _SQRT2)) + x * jnp.exp(-0.5 * x**2) / jnp.sqrt(2.0 * jnp.pi)


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity ``phi`` with derivative ``phi'``.

    ``name`` is the canonical name (or ``"custom"``); ``fn`` and ``deriv`` map
    arrays to arrays of the same shape.
    """

    name: str
    fn: Callable
    deriv: Callable

    def __call__(self, x):
        return self.fn(x)

    @property
    def is_linear(self) -> bool:
        return self.name == "linear"


_BUILTIN = {
    "linear": Activation("linear", _linear, _dlinear),
    "relu": Activation("relu", _relu, _drelu),
    "tanh": Activation("tanh", _tanh, _dtanh),
    "erf": Activation("erf", _erf, _derf),
    "gelu": Activation("gelu", _gelu, _dgelu),
}

NAMES = tuple(_BUILTIN)


def get(activation: str | Activation | Callable) -> Activation:
    """Resolve an activation name, :class:`Activation`, or callable.

    Raises ``ValueError`` naming the known activations for an unknown name.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _BUILTIN:
            raise ValueError(
                f"unknown activation {activation!r}; use one of {', '.join(NAMES)} or pass a callable"
            )
        return _BUILTIN[key]
    if callable(activation):
        fn = activation
        scalar_grad = jax.grad(lambda u: jnp.sum(fn(u)))
        return Activation(getattr(fn, "__name__", "custom"), fn, lambda x: scalar_grad(x))
    raise TypeError(f"activation must be a name or a callable, got {type(activation).__name__}")


# ---------------------------------------------------------------------------
# Gaussian expectations (kernel recursions)
#
# For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) the NNGP/NTK recursions need
#   E[phi(u) phi(v)]   and   E[phi'(u) phi'(v)].
# Closed forms exist for relu (arc-cosine), erf, gelu and linear; every other
# activation (tanh, user callables) goes through 2-D Gauss-Hermite quadrature.
# All functions below are elementwise in (k11, k12, k22), written in jax.numpy
# (they also accept NumPy arrays) and broadcast like NumPy.
# ---------------------------------------------------------------------------

import math as _math  # noqa: E402

import numpy as _np  # noqa: E402

__all__ += ["CLOSED_FORMS", "gaussian_expectations", "closed_form_expectations", "gauss_hermite_expectations"]

CLOSED_FORMS = ("linear", "relu", "erf", "gelu")
"""Activations whose Gaussian expectations have closed forms."""

_TWO_PI = 2.0 * _math.pi


def _relu_expectations(k11, k12, k22):
    """Arc-cosine kernels (Cho & Saul): with cos(theta) = k12/sqrt(k11 k22),
    E[relu relu] = sqrt(k11 k22) (sin theta + (pi - theta) cos theta) / (2 pi),
    E[relu' relu'] = (pi - theta) / (2 pi)."""
    s = jnp.sqrt(k11 * k22)
    c = jnp.clip(k12 / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
    c = jnp.where(s > 0, c, 0.0)
    theta = jnp.arccos(c)
    sin = jnp.sqrt((1.0 - c) * (1.0 + c))
    return s * (sin + (jnp.pi - theta) * c) / _TWO_PI, (jnp.pi - theta) / _TWO_PI


def _erf_expectations(k11, k12, k22):
    """E[erf erf] = (2/pi) arcsin(2 k12 / sqrt((1+2k11)(1+2k22))),
    E[erf' erf'] = (4/pi) / sqrt((1+2k11)(1+2k22) - 4 k12^2)."""
    a = (1.0 + 2.0 * k11) * (1.0 + 2.0 * k22)
    r = jnp.clip(2.0 * k12 / jnp.sqrt(a), -1.0, 1.0)
    return (2.0 / jnp.pi) * jnp.arcsin(r), (4.0 / jnp.pi) / jnp.sqrt(a - 4.0 * k12**2)


def _gelu_expectations(k11, k12, k22):
    """gelu(u) = u Phi(u). With S = K + I, det = |S| and r = k12/sqrt(S11 S22):

    E[Phi(u) Phi(v)] = P(w > 0) = 1/4 + arcsin(r)/(2 pi) for w = (u - z1, v - z2);
    E[gelu gelu] regresses (u, v) on w and uses the truncated second moments of w;
    E[gelu' gelu'] = E[Phi Phi] + k12/(2 pi sqrt(det)) (1/S11 + 1/S22) + k12/(2 pi det^{3/2}).
    """
    s11, s22 = 1.0 + k11, 1.0 + k22
    det = s11 * s22 - k12**2
    root = jnp.sqrt(s11 * s22)
    r = jnp.clip(k12 / root, -1.0, 1.0)
    p = 0.25 + jnp.arcsin(r) / _TWO_PI
    sq = jnp.sqrt(jnp.maximum(det, 0.0)) / root
    m = p + r * sq / _TWO_PI  # E[x^2 1{x>0,y>0}] for unit-variance x, y with correlation r
    c = r * p + sq / _TWO_PI  # E[x y 1{x>0,y>0}]
    d0 = k11 * k22 - k12**2
    alpha1, beta2, cross = (k11 + d0) / det, (k22 + d0) / det, k12 / det
    e_ff = cross * p + alpha1 * cross * s11 * m + (alpha1 * beta2 + cross**2) * root * c + cross * beta2 * s22 * m
    sdet = jnp.sqrt(det)
    e_dd = p + k12 / (_TWO_PI * sdet) * (1.0 / s11 + 1.0 / s22) + k12 / (_TWO_PI * det * sdet)
    return e_ff, e_dd


def _linear_expectations(k11, k12, k22):
    """E[u v] = k12, E[1 * 1] = 1."""
    k12 = jnp.asarray(k12)
    return k12 + 0.0 * (k11 + k22), jnp.ones_like(k12 + 0.0 * (k11 + k22))


_CLOSED = {
    "relu": _relu_expectations,
    "erf": _erf_expectations,
    "gelu": _gelu_expectations,
    "linear": _linear_expectations,
}


def closed_form_expectations(name: str, k11, k12, k22):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` in closed form for a name in :data:`CLOSED_FORMS`."""
    if name not in _CLOSED:
        raise ValueError(f"no closed form for {name!r}; closed forms exist for {', '.join(CLOSED_FORMS)}")
    return _CLOSED[name](k11, k12, k22)


def _hermite_nodes(order: int):
    z, w = _np.polynomial.hermite_e.hermegauss(order)  # weight exp(-z^2/2)
    return z, w / _np.sqrt(2.0 * _np.pi)


def gauss_hermite_expectations(activation, k11, k12, k22, order: int = 64):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` by 2-D Gauss-Hermite quadrature.

    Writes ``u = sqrt(k11) z1``, ``v = (k12/sqrt(k11)) z1 + sqrt(k22 - k12^2/k11) z2``
    with z1, z2 i.i.d. N(0, 1) and sums over an ``order x order`` tensor grid of
    probabilists' Hermite nodes (exact for polynomials of degree < 2*order in each z).
    Cost and memory: ``order^2`` activation evaluations per entry.
    """
    act = get(activation)
    z, w = _hermite_nodes(int(order))
    k11, k12, k22 = jnp.broadcast_arrays(*(jnp.asarray(k, dtype=jnp.result_type(float)) for k in (k11, k12, k22)))
    safe = jnp.where(k11 > 0, k11, 1.0)
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    a = jnp.where(k11 > 0, k12 / jnp.sqrt(safe), 0.0)
    b = jnp.sqrt(jnp.maximum(k22 - a**2, 0.0))
    u = s1[..., None] * z  # (..., n)
    v = a[..., None, None] * z[:, None] + b[..., None, None] * z[None, :]  # (..., n, n): [z1, z2]

    def expect(f):
        inner = jnp.einsum("...ij,j->...i", f(v), w)
        return jnp.einsum("...i,...i,i->...", f(u), inner, w)

    return expect(act.fn), expect(act.deriv)


def gaussian_expectations(activation, k11, k12, k22, *, order: int = 64):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` for (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Closed forms for ``relu``, ``erf``, ``gelu``, ``linear``; Gauss-Hermite
    quadrature of ``order`` nodes per dimension otherwise (tanh, callables).
    """
    act = get(activation)
    if act.name in _CLOSED and act is _BUILTIN.get(act.name):
        return _CLOSED[act.name](k11, k12, k22)
    return gauss_hermite_expectations(act, k11, k12, k22, order=order)
