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
# activation (tanh, user callables) goes through 2-D quadrature: an adaptive sinh-trapezoid / graded
# Gauss-Legendre rule by default, Gauss-Hermite on request (see ``quadrature`` below).
# All functions below are elementwise in (k11, k12, k22), written in jax.numpy
# (they also accept NumPy arrays) and broadcast like NumPy.
# ---------------------------------------------------------------------------

import functools  # noqa: E402
import math as _math  # noqa: E402

import numpy as _np  # noqa: E402

__all__ += ["CLOSED_FORMS", "gaussian_expectations", "closed_form_expectations", "gauss_hermite_expectations",
            "diagonal_expectations", "quadrature_expectations", "quadrature", "Quadrature", "MAX_VARIANCE"]

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


# ---------------------------------------------------------------------------
# Quadrature for activations without closed forms (tanh, callables)
#
# Gauss-Hermite converges slowly for tanh-like integrands once the pre-activation std s is O(1): tanh(s z) has
# poles at z = i pi / (2 s), and its transition (width 1/s in z) falls between the nodes (order 96 is off by 3e-2
# at variance 10; orders above ~380 overflow NumPy's node computation). The adaptive rule instead writes
# u = s1 z1, v = a z1 + b z2 (z1, z2 i.i.d. N(0, 1), a = k12/s1, b^2 = k22 - a^2) and
#   outer z1: trapezoid rule after z1 = c sinh(t), c = 1/scale (nodes dense where phi(s1 z1) turns, spacing
#             growing geometrically outwards; exponentially convergent for integrands analytic in a strip);
#   inner z2: trapezoid rule with spacing 0.35/scale (scale <= 4), else composite Gauss-Legendre on panels graded
#             geometrically around the moving transition z2 = -a z1/b, merged with fixed panels for the Gaussian.
# ``scale`` is the largest pre-activation std of the call rounded up to a power of 2 (>= 1), so the nodes are
# static and the kernel is compiled once per scale. Measured accuracy (python benchmarks/kernels.py --quadrature): < 1e-9 of
# sqrt(K11 K22) for tanh at variances 1e-6..1e6 and every correlation. Assumes phi varies on a unit scale near
# u = 0 (tanh, erf, gelu, sigmoid-like or smooth callables); kinks (relu-like callables) converge slowly.
# ---------------------------------------------------------------------------

_Z = 9.5  # |z| cut-off: the Gaussian mass beyond is 2e-21
_DT = 0.15  # sinh-map step of the outer rule
_H = 0.35  # trapezoid spacing of the inner rule, divided by the scale
_UNIFORM_MAX_SCALE = 4.0  # above: graded composite inner rule
_GRADED_LEVELS, _GL_NODES = 8, 10
_GAUSS_BREAKS = _np.array([-_Z, -7.0, -5.0, -3.5, -2.5, -1.5, -0.75, 0.0, 0.75, 1.5, 2.5, 3.5, 5.0, 7.0, _Z])
MAX_VARIANCE = 1e6
"""Largest pre-activation variance the quadrature resolves to 1e-8 with margin (measured: 6e-12 for erf at 1e6, 1e-8 for gelu at 1e8)."""
HERMITE_ORDERS = (16, 256)
"""Gauss-Hermite orders accepted for ``quadrature_order`` (above 256 NumPy's nodes lose accuracy, NaN near 380)."""
_HERMITE_LIMITS = ((200, 2.0), (96, 1.0), (64, 0.5), (16, 0.1))
"""(order, largest variance at which Gauss-Hermite of that order is accurate to 1e-8 for tanh)."""


@dataclasses.dataclass(frozen=True)
class Quadrature:
    """A static rule for the Gaussian expectations of one kernel layer (hashable: a jit static argument).

    ``scale``: a power of 2 >= 1 bounding the pre-activation std (adaptive rule); ``hermite``: a Gauss-Hermite
    order (``quadrature_order=n``) or None (adaptive).
    """

    scale: float = 1.0
    hermite: int | None = None

    @property
    def points(self) -> int:
        """Integrand evaluations per kernel entry (memory and cost of one entry)."""
        if self.hermite is not None:
            return self.hermite**2
        return len(_outer_nodes(self.scale)[0]) * _inner_points(self.scale)


def hermite_limit(order: int) -> float:
    """Largest pre-activation variance at which Gauss-Hermite of ``order`` nodes is accurate to 1e-8 (tanh)."""
    return next(v for n, v in _HERMITE_LIMITS if order >= n)


def check_order(order, name: str = "quadrature_order") -> int | None:
    """``order`` as a Gauss-Hermite order in :data:`HERMITE_ORDERS`, or None (the adaptive rule)."""
    if order is None:
        return None
    from limits.checks import integer

    lo, hi = HERMITE_ORDERS
    if isinstance(order, (int, _np.integer)) and not isinstance(order, bool) and not lo <= order <= hi:
        raise ValueError(f"{name}={order} is outside [{lo}, {hi}]: below {lo} Gauss-Hermite is inaccurate at unit "
                         f"variance, above {hi} its nodes are numerically unstable (NaN near 380); use "
                         f"{name}=None (the adaptive rule, accurate to 1e-8 at any variance up to {MAX_VARIANCE:g})")
    return integer(order, name, lo, hi)


def quadrature(max_variance: float, order: int | None = None, *, where: str = "") -> Quadrature:
    """The rule for pre-activation variances up to ``max_variance`` (a host float).

    Raises ``ValueError`` when the variance is not finite or above :data:`MAX_VARIANCE`, or when a Gauss-Hermite
    ``order`` is inaccurate at that variance (:func:`hermite_limit`).
    """
    v = float(max_variance)
    at = f" {where}" if where else ""
    if not _math.isfinite(v) or v > MAX_VARIANCE:
        raise ValueError(f"the pre-activation variance{at} is {v:.3g}; the quadrature of activation expectations is "
                         f"accurate up to {MAX_VARIANCE:g}: rescale the inputs X or reduce W_std / b_std")
    if order is not None:
        limit = hermite_limit(order)
        if v > limit:
            raise ValueError(f"quadrature_order={order} (Gauss-Hermite) is accurate to 1e-8 only for pre-activation "
                             f"variances <= {limit:g}, but the variance{at} reaches {v:.3g}; use "
                             f"quadrature_order=None (the adaptive rule)")
        return Quadrature(1.0, int(order))
    return Quadrature(float(2.0 ** max(0, _math.ceil(0.5 * _math.log2(max(v, 1e-300))))))


@functools.lru_cache(maxsize=None)
def _outer_nodes(scale: float):
    """Sinh-mapped trapezoid nodes ``z = c sinh(t)``, ``c = 1/scale``, and weights including the N(0, 1) density."""
    c = 1.0 / scale
    k = int(_math.ceil(_np.arcsinh(_Z / c) / _DT))
    t = _DT * _np.arange(-k, k + 1)
    z = c * _np.sinh(t)
    return z, _DT * c * _np.cosh(t) * _np.exp(-0.5 * z * z) / _math.sqrt(_TWO_PI)


@functools.lru_cache(maxsize=None)
def _uniform_nodes(scale: float):
    h = _H / scale
    z = h * _np.arange(-int(_math.ceil(_Z / h)), int(_math.ceil(_Z / h)) + 1)
    return z, h * _np.exp(-0.5 * z * z) / _math.sqrt(_TWO_PI)


def _inner_points(scale: float) -> int:
    if scale <= _UNIFORM_MAX_SCALE:
        return len(_uniform_nodes(scale)[0])
    return (2 * _GRADED_LEVELS + 2 + len(_GAUSS_BREAKS)) * _GL_NODES


def _graded_nodes(center, width):
    """Composite Gauss-Legendre nodes (..., M) and weights (with the N(0, 1) density) on [-Z, Z]: panels graded
    geometrically from ``width/4`` to 1 on both sides of ``center`` (...,), merged with fixed Gaussian panels."""
    h = 0.25 / jnp.maximum(1.0, width)
    ratio = (1.0 / h) ** (1.0 / _GRADED_LEVELS)
    offs = h[..., None] * ratio[..., None] ** jnp.arange(_GRADED_LEVELS + 1)
    c = center[..., None]
    fixed = jnp.broadcast_to(jnp.asarray(_GAUSS_BREAKS), c.shape[:-1] + _GAUSS_BREAKS.shape)
    pts = jnp.sort(jnp.clip(jnp.concatenate([c - offs, c + offs, fixed], -1), -_Z, _Z), -1)
    x, w = _np.polynomial.legendre.leggauss(_GL_NODES)
    mid, half = 0.5 * (pts[..., 1:] + pts[..., :-1]), 0.5 * (pts[..., 1:] - pts[..., :-1])
    z = (mid[..., None] + half[..., None] * x).reshape(pts.shape[:-1] + (-1,))
    wz = (half[..., None] * w).reshape(z.shape) * jnp.exp(-0.5 * z * z) / _math.sqrt(_TWO_PI)
    return z, wz


def _canonical(k11, k12, k22):
    """Broadcast float arrays with ``k11 >= k22`` (swapped where needed): the rule integrates the larger variance in
    the outer variable, and ``E(k11, k12, k22) == E(k22, k12, k11)`` holds exactly, so kernels are symmetric."""
    k11, k12, k22 = jnp.broadcast_arrays(*(jnp.asarray(k, dtype=jnp.result_type(float)) for k in (k11, k12, k22)))
    swap = k22 > k11
    return jnp.where(swap, k22, k11), k12, jnp.where(swap, k11, k22)


def _conditional(k11, k12, k22):
    """``(s1, a, b)`` with u = s1 z1, v = a z1 + b z2 (zero-variance rows give zeros, never NaN)."""
    pos = k11 > 0
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    a = jnp.where(pos, k12 / jnp.where(pos, s1, 1.0), 0.0)
    return s1, a, jnp.sqrt(jnp.maximum(k22 - a * a, 0.0))


def _inner(f, m, b, scale: float):
    """``E[f(m + b z)]`` for z ~ N(0, 1); ``m`` (..., N1), ``b`` (...,)."""
    bb = b[..., None]
    if scale <= _UNIFORM_MAX_SCALE:
        z2, w2 = _uniform_nodes(scale)
        return jnp.einsum("...ij,j->...i", f(m[..., None] + bb[..., None] * z2), w2)
    safe = jnp.where(bb > 0, bb, 1.0)
    center = jnp.clip(jnp.where(bb > 0, -m / safe, 0.0), -_Z, _Z)
    z2, w2 = _graded_nodes(center, jnp.broadcast_to(bb, center.shape))
    return jnp.sum(w2 * f(m[..., None] + bb[..., None] * z2), -1)


def _adaptive(f, g, k11, k12, k22, scale: float):
    """``E[f(u) g(v)]`` by the adaptive rule (``scale`` bounds the std of u and v)."""
    s1, a, b = _conditional(k11, k12, k22)
    z1, w1 = _outer_nodes(scale)
    inner = _inner(g, a[..., None] * z1, b, scale)
    return jnp.einsum("...i,i->...", f(s1[..., None] * z1) * inner, w1)


def _hermite_nodes(order: int):
    z, w = _np.polynomial.hermite_e.hermegauss(order)  # weight exp(-z^2/2)
    return z, w / _np.sqrt(2.0 * _np.pi)


def _hermite(f, g, k11, k12, k22, order: int):
    s1, a, b = _conditional(k11, k12, k22)
    z, w = _hermite_nodes(int(order))
    inner = jnp.einsum("...ij,j->...i", g(a[..., None, None] * z[:, None] + b[..., None, None] * z[None, :]), w)
    return jnp.einsum("...i,...i,i->...", f(s1[..., None] * z), inner, w)


def gauss_hermite_expectations(activation, k11, k12, k22, order: int = 64):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` by 2-D Gauss-Hermite quadrature of ``order`` nodes per dimension.

    Writes ``u = sqrt(k11) z1``, ``v = (k12/sqrt(k11)) z1 + sqrt(k22 - k12^2/k11) z2`` with z1, z2 i.i.d. N(0, 1)
    (the larger variance outer, so the result is exactly symmetric in (k11, k22)); exact for polynomials of
    degree < 2*order in each z, accurate to 1e-8 for tanh only at variances up to :func:`hermite_limit`.
    Cost and memory: ``order^2`` activation evaluations per entry.
    """
    act = get(activation)
    order = check_order(order, "order")
    k11, k12, k22 = _canonical(k11, k12, k22)
    return _hermite(act.fn, act.fn, k11, k12, k22, order), _hermite(act.deriv, act.deriv, k11, k12, k22, order)


def quadrature_expectations(activation, k11, k12, k22, rule: Quadrature):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` with a static :class:`Quadrature` rule (traceable under jit)."""
    act = get(activation)
    k11, k12, k22 = _canonical(k11, k12, k22)
    if rule.hermite is not None:
        return _hermite(act.fn, act.fn, k11, k12, k22, rule.hermite), _hermite(act.deriv, act.deriv, k11, k12, k22,
                                                                                rule.hermite)
    return (_adaptive(act.fn, act.fn, k11, k12, k22, rule.scale),
            _adaptive(act.deriv, act.deriv, k11, k12, k22, rule.scale))


def diagonal_expectations(activation, q, rule: Quadrature | None = None):
    """``(E[phi(u)^2], E[phi'(u)^2])`` for u ~ N(0, q): one-dimensional, the outer rule only.

    ``rule`` None: chosen from the (concrete) ``q``. Closed forms where they exist."""
    act = get(activation)
    q = jnp.asarray(q, dtype=jnp.result_type(float))
    if act.name in _CLOSED and act is _BUILTIN.get(act.name):
        return _CLOSED[act.name](q, q, q)
    rule = quadrature(float(jnp.max(q)) if q.size else 0.0) if rule is None else rule
    if rule.hermite is not None:
        z, w = _hermite_nodes(rule.hermite)
    else:
        z, w = _outer_nodes(rule.scale)
    u = jnp.sqrt(jnp.maximum(q, 0.0))[..., None] * z
    return jnp.einsum("...i,i->...", act.fn(u) ** 2, w), jnp.einsum("...i,i->...", act.deriv(u) ** 2, w)


def gaussian_expectations(activation, k11, k12, k22, *, rule: Quadrature | None = None, order: int | None = None):
    """``(E[phi(u)phi(v)], E[phi'(u)phi'(v)])`` for (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Closed forms for ``relu``, ``erf``, ``gelu``, ``linear``; otherwise (tanh, callables) the static ``rule``, or
    when None the rule for the largest of the (concrete) variances: adaptive (``order=None``, accurate to 1e-8)
    or Gauss-Hermite of ``order`` nodes (rejected where inaccurate, see :func:`quadrature`).
    """
    act = get(activation)
    if act.name in _CLOSED and act is _BUILTIN.get(act.name):
        return _CLOSED[act.name](k11, k12, k22)
    if rule is None:
        top = max(float(jnp.max(jnp.asarray(k11))), float(jnp.max(jnp.asarray(k22))))
        rule = quadrature(top, check_order(order))
    return quadrature_expectations(act, k11, k12, k22, rule)
