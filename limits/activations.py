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
