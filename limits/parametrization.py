r"""Symbolic abc-parametrization tables, their classification, and instantiation.

An MLP with ``depth`` = L hidden layers has layers ``l = 1..L+1`` (Tensor
Programs IV numbering: 1 is the input layer, L+1 the readout). Layer l has

.. math::  W^l = \alpha_l\, n^{-a_l}\, w^l,\quad w^l_{ij} \sim N(0, \sigma_l^2 n^{-2 b_l}),
           \quad \text{learning rate } \eta\,\eta_l\, n^{-c_l},

with width exponents ``a, b, c`` (sympy Rationals or symbols) and O(1) constants
multiplier ``alpha``, init std ``sigma`` and learning-rate factor ``eta_l``. The
input layer also carries the fixed ``1/sqrt(D)`` of the pinned convention
(DESIGN.md), so ``h^1 = W^1 x`` has O(1) coordinates for inputs with O(1)
coordinates.

Classification (TP4 Theorem 3.3, with per-layer learning rates as in Everett et
al. 2024 and Adam as in TP4b). With ``theta = a_{L+1}+b_{L+1}`` the readout scale,

SGD
    backward scale ``beta = min(theta, 2 a_{L+1} + c_{L+1})``;
    ``r_l = beta + 2 a_l + c_l - 1 + [l = 1]`` (feature update of layer l is
    ``n^{-r_l}``); readout update exponent ``s = 2 a_{L+1} + c_{L+1} - 1``.
Adam
    ``r_l = a_l + c_l - 1 + [l = 1]``; ``s = a_{L+1} + c_{L+1} - 1``.

``r = min_l r_l``. Stable iff ``a_1+b_1 = 0``, ``a_l+b_l = 1/2`` (hidden),
``theta >= 1/2``, ``r >= 0``, ``s >= 0`` and ``theta + r >= 1``. A stable table is
nontrivial iff ``s = 0`` or ``theta + r = 1``; then it is feature learning iff
``r = 0`` and in the kernel regime otherwise.

The one numeric source of truth is :meth:`Parametrization.instantiate`, which both
the finite-width simulator and the limit solvers consume.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np
import sympy as sp

from .checks import ArgumentTypeError, choice, inapplicable, integer, nonnegative, real
from .checks import positive
from .checks import positive as _constant
from .checks import width as _width

__all__ = [
    "Layer",
    "Parametrization",
    "Classification",
    "Exponents",
    "Network",
    "KernelLimit",
    "DMFTLimit",
    "Residual",
    "DepthClassification",
    "param",
    "PRESETS",
    "n",
]

n = sp.Symbol("n", positive=True)
"""The width symbol used in predicted scaling expressions."""

MLP_PRESETS = ("sp", "ntk", "mup", "mfp")
RESIDUAL_PRESETS = ("depth-mup", "completep", "resnet")
PRESETS = MLP_PRESETS + RESIDUAL_PRESETS
OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
ADAPTIVE = ("adam", "adamw", "muon")
"""Optimizers whose update does not scale with the gradient (Adam's ``m/sqrt(v)``, Muon's orthogonalization):
their width symmetry shifts ``c`` by ``t`` (SGD: ``2t``), and a multiplier ``k`` folds into the lr as ``k`` (SGD ``k^2``)."""
DECAYED = ("adamw", "muon")
"""Optimizers with weight decay (``Layer.weight_decay``, ``Layer.d``; ``Parametrization.decay``)."""
DECAY_MODES = ("decoupled", "independent")
REGIMES = ("unstable", "trivial", "kernel", "feature_learning")

_HALF = sp.Rational(1, 2)


_MAX_FLOAT_DIGITS = 12
"""A float exponent is taken as the decimal it prints as (``0.5`` is 1/2, ``1e-7`` is 10^-7) when that decimal
has at most this many significant digits; longer ones (``1/3`` computed in floating point) are errors."""

_EXPRESSION = re.compile(r"[\w\s.+\-*/()^]*")
"""Characters of an exponent written as a string expression (numbers, symbols, + - * / ^ and brackets)."""


def _float_exponent(value, field: str) -> sp.Rational:
    """A float as the exact rational its shortest decimal spells, or an error naming ``field`` (no rounding)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value}")
    text = repr(value)
    if len(decimal.Decimal(text).normalize().as_tuple().digits) <= _MAX_FLOAT_DIGITS:
        return sp.Rational(Fraction(text))
    guess = Fraction(value).limit_denominator(1000)
    hint = f"'{guess}' or sympy.Rational({guess.numerator}, {guess.denominator})" if float(guess) == value else \
        "a string such as '1/3' or sympy.Rational(1, 3)"
    raise ValueError(f"{field} = {value!r} is a float that is not a short decimal (a rounded fraction?); exponents are "
                     f"exact: give {hint}")


def _string_exponent(value: str, field: str) -> sp.Expr:
    text = value.strip()
    if not text:
        raise ValueError(f"{field} is an empty string; give an exponent such as '0' or '1/2'")
    try:
        return sp.Rational(Fraction(text))
    except (ValueError, ZeroDivisionError):
        pass
    if "__" in text or not _EXPRESSION.fullmatch(text):
        raise ValueError(f"{field} = {value!r} is not a number or expression; use e.g. '1/2'")
    try:
        return sp.sympify(text, rational=True)
    except (sp.SympifyError, SyntaxError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{field} = {value!r} is not a number or expression; use e.g. '1/2'") from exc


def _exponent(value, field: str) -> sp.Expr:
    """Convert a user value into an exact sympy exponent, or raise naming the field.

    Integers, fractions, decimals, strings (``'1/2'``, ``'1e-7'``, ``'s + 1'``) and sympy expressions are kept
    exactly; floats as the decimal they print as (see :func:`_float_exponent`); complex, infinite, NaN, bool and
    other objects are errors. Symbols are allowed (substitute them with :meth:`Parametrization.subs`)."""
    if isinstance(value, sp.Rational):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{field} must be a number or sympy expression, got a bool ({value!r})")
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, Fraction):
        return sp.Rational(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"{field} must be finite, got {value}")
        return sp.Rational(Fraction(value))
    if isinstance(value, (float, np.floating)):
        return _float_exponent(value, field)
    if isinstance(value, str):
        expr = _string_exponent(value, field)
    elif isinstance(value, sp.Basic):
        expr = value.xreplace({f: _float_exponent(f, field) for f in value.atoms(sp.Float)})
    else:
        raise ArgumentTypeError(
            f"{field} must be a number, fraction string such as '1/2', or sympy expression; got {value!r} "
            f"({type(value).__name__})"
        )
    if not isinstance(expr, sp.Expr) or expr.has(sp.nan, sp.oo, -sp.oo, sp.zoo):
        raise ValueError(f"{field} must be a finite real number or expression, got {expr}")
    if not expr.free_symbols and expr.is_real is not True:
        raise ValueError(f"{field} must be real, got {expr}")
    return expr


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of the table: width exponents and O(1) constants of a layer.

    ``a, b, c``: multiplier ``n^-a``, init std ``n^-b``, learning rate ``n^-c``. Adaptive optimizers add:
    ``weight_decay`` (``lambda >= 0``, AdamW/Muon only) with width exponent ``d`` (``lambda_l = weight_decay
    n^-d``), and ``eps_exponent`` ``e`` (Adam's epsilon of this layer is ``Simulation.adam_eps n^-e``).
    """

    a: sp.Expr
    b: sp.Expr
    c: sp.Expr
    multiplier: float = 1.0
    init_std: float = 1.0
    lr_scale: float = 1.0
    weight_decay: float = 0.0
    d: sp.Expr = sp.Integer(0)
    eps_exponent: sp.Expr = sp.Integer(0)

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "eps_exponent"):
            object.__setattr__(self, name, _exponent(getattr(self, name), f"Layer.{name}"))
        for name in ("multiplier", "init_std", "lr_scale"):
            object.__setattr__(self, name, _constant(getattr(self, name), f"Layer.{name}"))
        object.__setattr__(self, "weight_decay", _decay_constant(self.weight_decay, "Layer.weight_decay"))

    def __repr__(self) -> str:
        return _repr(self, {"weight_decay": 0.0, "d": 0, "eps_exponent": 0})

    @property
    def W_std(self) -> float:
        """Effective O(1) weight scale ``multiplier * init_std`` (neural-tangents' W_std)."""
        return self.multiplier * self.init_std


@dataclasses.dataclass(frozen=True)
class Classification:
    """Regime of a table: ``regime``, ``r``, per-layer ``r_l`` and the reasons."""

    regime: str
    r: sp.Expr
    r_l: tuple[sp.Expr, ...]
    reasons: tuple[str, ...]
    stable: bool
    nontrivial: bool

    def __str__(self) -> str:
        lines = [f"regime: {self.regime}   r = {self.r}   r_l = {list(self.r_l)}"]
        lines += [f"  {reason}" for reason in self.reasons]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Exponents:
    """Predicted width exponents ``e`` (quantity ~ n**e) after one step from init.

    ``delta_h``: (L,) coordinate size of the feature update of hidden layer l.
    ``delta_f``: size of the output update.
    ``W_spectral``, ``dW_spectral``: (L+1,) spectral norms of W^l and of its update.
    ``spectral_target``: (L+1,) exponent of sqrt(fan_out/fan_in), the spectral
    condition of Yang, Simon & Bernstein.
    ``decay``: (L+1,) exponent of the weight decay's relative shrink per step (``lr_l lambda_l``, decoupled:
    ``-(c_l + d_l)``; independent: ``-d_l``), None for a layer without weight decay (every layer of SGD/Adam).
    """

    delta_h: tuple[sp.Expr, ...]
    delta_f: sp.Expr
    W_spectral: tuple[sp.Expr, ...]
    dW_spectral: tuple[sp.Expr, ...]
    spectral_target: tuple[sp.Expr, ...]
    decay: tuple = ()

    def as_powers(self) -> dict[str, object]:
        """The same exponents as sympy expressions in the width symbol ``n``."""
        return {
            "delta_h": [n**e for e in self.delta_h],
            "delta_f": n**self.delta_f,
            "W_spectral": [n**e for e in self.W_spectral],
            "dW_spectral": [n**e for e in self.dW_spectral],
        }


@dataclasses.dataclass(frozen=True)
class Network:
    """Numeric instantiation of a table at one width (the one source of truth).

    Arrays have shape (L+1,), index ``l`` = TP4 layer ``l+1``. Raw weights:
    ``w0`` (n, D), ``w_l`` (n, n), ``wL`` (n,), entries ~ N(0, init_stds[l]^2).
    Forward: ``h1 = multipliers[0] * w0 @ x`` (includes 1/sqrt(D)),
    ``h_{l+1} = multipliers[l] * w_l @ phi(h_l)``, ``f = multipliers[L] * wL @ phi(h_L)``.
    Update: ``w_l -= lr * lr_scales[l] * direction_l`` (gradient for SGD; Adam's ``mhat/(sqrt(vhat) + eps_l)``
    with ``eps_l = adam_eps * eps_scales[l]``; Muon's orthogonalized momentum on the rows where ``muon`` is True),
    then weight decay: ``w_l -= lr * lr_scales[l] * weight_decays[l] * w_l`` (``decay="decoupled"``) or
    ``w_l -= weight_decays[l] * w_l`` (``"independent"``), from the weights before the step.

    Residual tables (``residual=True``, ``depth`` = number of blocks, arrays of
    shape (L+2,)): ``h_{l+1} = h_l + branch_multiplier * multipliers[l] * w_l @ phi(h_l)``
    for the blocks l = 1..L, and ``f = multipliers[L+1] * wL @ phi(h_{L+1})``.
    """

    depth: int
    width: int
    input_dim: int
    optimizer: str
    multipliers: np.ndarray
    init_stds: np.ndarray
    lr_scales: np.ndarray
    residual: bool = False
    branch_multiplier: float = 1.0
    weight_decays: np.ndarray | None = None
    eps_scales: np.ndarray | None = None
    decay: str = "decoupled"
    muon: tuple[bool, ...] = ()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        n_, D = self.width, self.input_dim
        return [(n_, D)] + [(n_, n_)] * (len(self.multipliers) - 2) + [(n_,)]


@dataclasses.dataclass(frozen=True)
class KernelLimit:
    """Constants of the lazy (linearized) infinite-width limit of a table.

    ``W_std``: (L+1,) per-layer weight scales for the neural-tangents-style
    recursions (no biases). ``layer_weights``: (L+1,) ``lambda_l`` such that the
    limiting NTK is ``sum_l lambda_l Theta_l`` with ``Theta_l`` the neural-tangents
    contribution of layer l (computed with ``W_std``); zero where a layer's update
    vanishes. ``f0_variance``: the initial function is a GP with covariance
    ``f0_variance * NNGP`` (1 when the readout is O(1/sqrt n), 0 when smaller).
    ``branch_multiplier``: ``beta L^{-alpha}`` for residual tables (blocks are
    ``h + branch_multiplier * Dense(W_std)(phi(h))``), None for MLPs.
    """

    W_std: np.ndarray
    layer_weights: np.ndarray
    f0_variance: float
    branch_multiplier: float | None = None


@dataclasses.dataclass(frozen=True)
class DMFTLimit:
    r"""Constants of the feature-learning (DMFT) limit of a table: all that ``limits.solve_dmft`` reads from it.

    The single-site process has ``K`` fields (an MLP's ``L`` hidden layers, or the ``L + 1`` values of a
    residual stream with ``L`` blocks) and ``K + 1`` weights; weight ``k`` connects field ``k - 1`` to field
    ``k`` (weight 1 is the input layer, weight ``K + 1`` the readout). In the units of the pinned convention
    (raw weights ``N(0, 1)``, readout ``w . phi(h) / (gamma N)``, every raw learning rate ``lr gamma^2 N``)
    a table with weight scales ``sigma_k`` (multiplier x init std), learning-rate factors ``eta_k`` (times
    multiplier^2) and width exponents ``e_k`` (those of :meth:`Parametrization.kernel_limit`) has

    .. math::  \gamma = n^{\theta - 1} / \sigma_{K+1},\quad b_k = \beta_k \sigma_k,\quad
               \kappa_k = \beta_k^2 \eta_k \sigma_{K+1}^2 n^{e_k}\ (k \le K),\quad
               \kappa_{K+1} = \eta_{K+1} n^{e_{K+1}},\quad b_{K+1} = 1,

    with ``beta_k`` the branch multiplier ``beta L^{-alpha}`` of residual blocks (1 otherwise); at infinite
    width ``n^{e_k}`` is 1 for ``e_k = 0`` and 0 for ``e_k < 0`` (a frozen layer). ``b``: (K+1,) scales of
    the Gaussian sources each weight injects; ``kappa``: (K+1,) learning-rate weights (the NTK is
    ``sum_k kappa_k G^k * Phi^{k-1}``); ``residual``: skip connections between the fields;
    ``layer_time``: ``(sigma2, kappa)`` per unit of layer time for a residual table at ``depth=math.inf``
    (then ``b``, ``kappa`` hold the input and readout weights only; :meth:`with_blocks` discretizes).
    """

    gamma: float
    b: tuple[float, ...]
    kappa: tuple[float, ...]
    residual: bool = False
    layer_time: tuple[float, float] | None = None

    @property
    def fields(self) -> int:
        """Number of fields ``K`` of the single-site process."""
        return len(self.b) - 1

    def with_blocks(self, K: int) -> "DMFTLimit":
        """The layer-time limit discretized into ``K`` blocks (Euler-Maruyama in ``tau``): block weights
        ``b = sqrt(sigma2 / K)``, ``kappa = kappa_density / K``."""
        if self.layer_time is None:
            raise ValueError("with_blocks() discretizes the layer-time limit of a residual table at depth=math.inf")
        s2, k2 = self.layer_time
        return DMFTLimit(self.gamma, (self.b[0],) + (math.sqrt(s2 / K),) * K + (self.b[-1],),
                         (self.kappa[0],) + (k2 / K,) * K + (self.kappa[-1],), residual=True)


def _as_list(value, length: int, field: str, rows: str = "") -> list:
    """``value`` repeated ``length`` times, or ``value`` itself if it is a list/tuple/1-D array of that length."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return [value[()]] * length
        if value.ndim != 1:
            raise ValueError(f"{field} must be one value or a 1-D list of values, got an array of shape {value.shape}")
        value = list(value)
    if isinstance(value, (list, tuple)):
        if len(value) != length:
            raise ValueError(
                f"{field} has {len(value)} entries but the table has {length} rows ({rows or 'one per layer'}); "
                f"give one value per row or a single value"
            )
        return list(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, sp.Basic)):
        raise ArgumentTypeError(f"{field} must be a single value or a list/tuple with one value per row, got "
                                f"{type(value).__name__}")
    return [value] * length


def _repr(obj, optional: dict) -> str:
    """The dataclass repr without the ``optional`` fields that hold their defaults (so the repr, which keys the
    transfer caches, of a table without weight decay, epsilon exponents or Muon rows is what it was before
    those fields existed)."""
    shown = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)
             if f.name not in optional or getattr(obj, f.name) != optional[f.name]]
    return f"{type(obj).__name__}({', '.join(shown)})"


def _decay_constant(value, field: str) -> float:
    """A weight-decay constant: a finite number >= 0 (negative values named with the fix)."""
    out = real(value, field)
    if out < 0:
        raise ValueError(f"{field} = {out:g} is negative: weight decay pulls the weights towards 0 and a negative "
                         f"value grows them without bound; give a value >= 0 (0: no decay)")
    return out


def _layer_numbers(value, field: str) -> tuple[int, ...]:
    """A list of 1-based layer numbers as a tuple of ints (errors name ``field``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in value):
        raise ArgumentTypeError(f"{field} must be a list of 1-based layer numbers, got {value!r}")
    return tuple(int(i) for i in value)


def _rows(size: int, residual: bool) -> str:
    """What the rows of a table are, for messages: ``depth + 1`` weight layers, or input, blocks and readout."""
    if residual:
        return f"depth + 2: input, {size - 2} residual block{'s' * (size != 3)}, readout"
    return f"depth + 1: one per weight layer, depth {size - 1}"


def _simp(expr) -> sp.Expr:
    """Simplify unless the expression is already a Rational (exact Rationals need nothing)."""
    expr = sp.sympify(expr)
    return expr if expr.is_Rational else sp.simplify(expr)


def _numeric(expr: sp.Expr, what: str) -> sp.Expr:
    if expr.free_symbols:
        names = ", ".join(sorted(str(s) for s in expr.free_symbols))
        raise ValueError(f"{what} depends on free symbols ({names}); substitute them first with p.subs({names}=...)")
    return expr


def _ge(x: sp.Expr, y: sp.Expr, what: str) -> bool:
    return bool(_numeric(_simp(x - y), what) >= 0)


def _eq(x: sp.Expr, y: sp.Expr, what: str) -> bool:
    return bool(_numeric(_simp(x - y), what) == 0)


L_depth = sp.Symbol("L", positive=True)
"""The depth symbol (number of residual blocks) used in depth-scaling expressions."""


@dataclasses.dataclass(frozen=True)
class Residual:
    r"""Depth scaling of a residual network ``h^{l+1} = h^l + beta L^{-alpha} W^l phi(h^l)``.

    ``alpha``: branch-multiplier exponent in the number of blocks ``L``;
    ``beta``: O(1) branch multiplier; ``lr_exponent``: the blocks' learning
    rates scale as ``L^{lr_exponent}`` (input and readout layers do not scale).
    """

    alpha: sp.Expr
    beta: float = 1.0
    lr_exponent: sp.Expr = sp.Integer(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _exponent(self.alpha, "Residual.alpha"))
        object.__setattr__(self, "beta", _constant(self.beta, "Residual.beta"))
        object.__setattr__(self, "lr_exponent", _exponent(self.lr_exponent, "Residual.lr_exponent"))


@dataclasses.dataclass(frozen=True)
class DepthClassification:
    """Behaviour of a residual table as the number of blocks ``L -> infinity``.

    ``stable``: the residual stream and its updates stay O(1);
    ``nontrivial``: the blocks' total update is Theta(1) (they learn in the limit);
    ``every_block``: each block's update is comparable to its own initial
    contribution (complete feature learning, alpha = 1);
    ``branch_at_init``: ``"theta(1)"`` or ``"vanishes"`` (contribution of the
    branches to the residual stream at init).
    """

    stable: bool
    nontrivial: bool
    every_block: bool
    branch_at_init: str
    reasons: tuple[str, ...]

    @property
    def has_limit(self) -> bool:
        return self.stable

    def __str__(self) -> str:
        if not self.stable:
            head = "depth limit: unstable (no infinite-depth limit)"
        else:
            head = (
                f"depth limit: stable, {'nontrivial' if self.nontrivial else 'blocks frozen'}, "
                f"{'feature learning in every block' if self.every_block else 'blocks lazy relative to their init'}"
            )
        return "\n".join([head] + [f"  {r}" for r in self.reasons])


@dataclasses.dataclass(frozen=True)
class Parametrization:
    """An abc-parametrization table for an MLP with ``depth`` hidden layers.

    ``layers`` has ``depth + 1`` rows (input, hidden..., readout);
    ``optimizer`` is ``"sgd"`` or ``"adam"``. With ``residual`` set, the rows
    between input and readout are residual blocks and ``depth`` is the number
    of blocks (``depth + 2`` rows); see :class:`Residual`.
    """

    layers: tuple[Layer, ...]
    optimizer: str = "sgd"
    name: str = "custom"
    residual: Residual | None = None
    decay: str = "decoupled"
    muon_layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.layers, (list, tuple)) or not all(isinstance(L, Layer) for L in self.layers):
            raise ArgumentTypeError(f"layers must be a tuple of limits.parametrization.Layer, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.residual is not None and not isinstance(self.residual, Residual):
            raise ArgumentTypeError(f"residual must be None or a Residual(...), got {self.residual!r}")
        rows = 3 if self.residual is not None else 2
        if len(self.layers) < rows:
            raise ValueError(f"a {'residual ' if rows == 3 else ''}table needs at least {rows} layers (depth >= 1): "
                             f"input, {'a block, ' if rows == 3 else ''}readout; got {len(self.layers)}")
        choice(self.optimizer, "optimizer", OPTIMIZERS)
        if not isinstance(self.name, str):
            raise ArgumentTypeError(f"name must be a string, got {self.name!r}")
        choice(self.decay, "decay", DECAY_MODES)
        self._check_optimizer_fields()

    def _check_optimizer_fields(self) -> None:
        """Weight decay, epsilon exponents and Muon rows only where the optimizer has them (errors name the fix)."""
        opt = self.optimizer
        decayed = [i + 1 for i, L in enumerate(self.layers) if L.weight_decay > 0]
        if decayed and opt not in DECAYED:
            hint = "use optimizer='adamw' (Adam with decoupled weight decay)" if opt == "adam" else \
                "SGD's weight decay (an L2 penalty) is not modelled; use optimizer='adamw' or 'muon'"
            raise ValueError(f"weight_decay > 0 on layer(s) {decayed} but the optimizer is {opt!r}: {hint}")
        if self.decay != "decoupled" and opt not in DECAYED:
            raise inapplicable("decay", f"the optimizer {opt!r} has no weight decay")
        idle = [i + 1 for i, L in enumerate(self.layers) if L.weight_decay == 0 and L.d != 0]
        if idle:
            raise inapplicable("Layer.d", f"layer(s) {idle} have no weight decay (weight_decay = 0), so a decay "
                                          f"exponent d does nothing there")
        if opt == "sgd":
            bad = [i + 1 for i, L in enumerate(self.layers) if L.eps_exponent != 0]
            if bad:
                raise inapplicable("Layer.eps_exponent", f"SGD has no epsilon (layer(s) {bad})")
        if self.muon_layers is not None and opt != "muon":
            raise inapplicable("muon_layers", f"the optimizer is {opt!r}, not 'muon'")
        if opt == "muon":
            self._check_muon_rows()

    def _check_muon_rows(self) -> None:
        rows = len(self.layers)
        matrix = list(range(2, rows))  # 1-based: hidden layers / residual blocks (n x n)
        if not matrix:
            raise ValueError("optimizer 'muon' orthogonalizes matrix-like (n x n) layers and this depth-1 MLP has "
                             "none (its input (n x D) and readout (n) layers are vector-like, updated by Adam): use "
                             "depth >= 2 or optimizer='adamw'")
        if self.muon_layers is None:
            return
        if not isinstance(self.muon_layers, tuple) or not self.muon_layers or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in self.muon_layers):
            raise ArgumentTypeError(f"muon_layers must be a non-empty tuple of layer numbers (1-based), got "
                                    f"{self.muon_layers!r}")
        for i in self.muon_layers:
            if i in (1, rows):
                what = "input layer (n x D, D fixed)" if i == 1 else "readout (a vector of n weights)"
                raise ValueError(f"muon_layers includes layer {i}, the {what}: it is vector-like, and Muon "
                                 f"orthogonalizes matrix-like (n x n) layers only; leave it to Adam (muon_layers "
                                 f"from {matrix})")
            if i not in matrix:
                raise ValueError(f"muon_layers includes layer {i}; the table's matrix-like layers are {matrix}")
        if self.residual is not None and sorted(set(self.muon_layers)) != matrix:
            raise ValueError(f"muon_layers {list(self.muon_layers)} is a subset of the residual blocks; the simulator "
                             f"updates the blocks with one rule: give all of {matrix} (or None)")

    def __repr__(self) -> str:
        return _repr(self, {"decay": "decoupled", "muon_layers": None})

    @property
    def muon_rows(self) -> tuple[int, ...]:
        """0-based rows updated by Muon (the others by Adam); empty unless the optimizer is ``"muon"``."""
        if self.optimizer != "muon":
            return ()
        rows = range(1, len(self.layers) - 1) if self.muon_layers is None else (i - 1 for i in self.muon_layers)
        return tuple(sorted(set(rows)))

    @property
    def decay_exponents(self) -> tuple:
        """Per row, the exponent ``e`` of the weight decay's relative shrink per step ``lr_l lambda_l ~ n^e``:
        ``-(c + d)`` (decoupled) or ``-d`` (independent); None where the layer has no weight decay."""
        out = []
        for L in self.layers:
            if L.weight_decay == 0:
                out.append(None)
            else:
                out.append(_simp(-(L.c + L.d)) if self.decay == "decoupled" else _simp(-L.d))
        return tuple(out)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_abc(
        cls,
        a: Sequence,
        b: Sequence,
        c=0,
        *,
        optimizer: str = "sgd",
        multipliers=1.0,
        init_stds=1.0,
        lr_scales=1.0,
        name: str = "custom",
        residual: Residual | None = None,
        weight_decay=0.0,
        d=0,
        eps_exponent=0,
        decay: str = "decoupled",
        muon_layers: Sequence[int] | None = None,
    ) -> "Parametrization":
        """Table from exponent lists ``a``, ``b`` (length depth+1) and ``c`` (scalar or list).

        Exponents are kept exact (ints, fractions, strings such as ``'1/2'``, short decimals, sympy expressions
        including symbols); constants must be positive finite numbers.

        Args:
            a: multiplier width exponents, a 1-D list of ``depth + 1`` >= 2 entries (``depth + 2`` with
                ``residual``): input, hidden layers or blocks, readout.
            b: init-std width exponents: one value or one per row.
            c: learning-rate width exponents: one value (default 0) or one per row.
            optimizer: ``"sgd"`` (default) or ``"adam"``.
            multipliers, init_stds, lr_scales: O(1) constants, one value (default 1.0) or one per row.
            name: label of the table (default ``"custom"``).
            residual: a :class:`Residual` (the rows between input and readout are then residual blocks), or None.
            weight_decay: AdamW/Muon weight decay constants ``>= 0``, one value or one per row (default 0).
            d: weight-decay width exponents (``lambda_l = weight_decay_l n^-d_l``), one value or one per row.
            eps_exponent: Adam's epsilon exponents (``eps_l = Simulation.adam_eps n^-e_l``), one or one per row.
            decay: ``"decoupled"`` (default; optax/PyTorch AdamW, ``w <- w - lr_l (u + lambda_l w)``) or
                ``"independent"`` (``w <- w - lr_l u - lambda_l w``).
            muon_layers: optimizer ``"muon"``: the 1-based matrix-like rows Muon updates (None: every hidden
                layer or block); the others are updated by Adam.

        Returns:
            :class:`Parametrization` with one :class:`Layer` per row. Raises ``ValueError`` /
            :class:`~limits.checks.ArgumentTypeError` naming the field for wrong lengths, kinds or values.
        """
        if not isinstance(a, (list, tuple, np.ndarray)) or np.ndim(a) != 1:
            raise ArgumentTypeError(f"a must be a list with one exponent per layer (depth + 1 entries), got {a!r}")
        a = list(a)
        size = len(a)
        if size < 2:
            raise ValueError(f"a has {size} entries; a table needs depth + 1 >= 2 layers")
        rows = _rows(size, residual is not None)
        b = _as_list(b, size, "b", rows)
        c = _as_list(c, size, "c", rows)
        mult = _as_list(multipliers, size, "multipliers", rows)
        init = _as_list(init_stds, size, "init_stds", rows)
        lrs = _as_list(lr_scales, size, "lr_scales", rows)
        wd, dd = _as_list(weight_decay, size, "weight_decay", rows), _as_list(d, size, "d", rows)
        ee = _as_list(eps_exponent, size, "eps_exponent", rows)
        layers = tuple(
            Layer(
                _exponent(a[i], f"a[{i}] (layer {i + 1})"),
                _exponent(b[i], f"b[{i}] (layer {i + 1})"),
                _exponent(c[i], f"c[{i}] (layer {i + 1})"),
                _constant(mult[i], f"multipliers[{i}]"),
                _constant(init[i], f"init_stds[{i}]"),
                _constant(lrs[i], f"lr_scales[{i}]"),
                _decay_constant(wd[i], f"weight_decay[{i}] (layer {i + 1})"),
                _exponent(dd[i], f"d[{i}] (layer {i + 1})"),
                _exponent(ee[i], f"eps_exponent[{i}] (layer {i + 1})"),
            )
            for i in range(size)
        )
        muon = None if muon_layers is None else _layer_numbers(muon_layers, "muon_layers")
        return cls(layers, optimizer, name, residual, decay, muon)

    def replace(self, **changes) -> "Parametrization":
        """A copy with some fields changed (``dataclasses.replace``; the new fields are checked).

        Args:
            **changes: new values of the fields ``layers``, ``optimizer``, ``name``, ``residual``.

        Returns:
            :class:`Parametrization`: the changed copy (this table is unchanged).
        """
        return dataclasses.replace(self, **changes)

    def subs(self, **values) -> "Parametrization":
        """Substitute values for symbols in the exponents (exactly: values are converted like exponents).

        Args:
            **values: ``symbol_name=value`` for symbols appearing in the exponents ``a``, ``b``, ``c``, ``d``,
                ``eps_exponent``; each value
                a number, fraction string (``'1/2'``) or sympy expression. A name that is not a symbol of the table
                raises ``ValueError``.

        Returns:
            :class:`Parametrization`: a copy with the symbols replaced (other fields unchanged).
        """
        symbols = {s.name: s for L in self.layers for e in (L.a, L.b, L.c, L.d, L.eps_exponent) for s in e.free_symbols}
        unknown = sorted(set(values) - set(symbols))
        if unknown:
            raise ValueError(f"subs: the table has no symbol {', '.join(unknown)}; its symbols are "
                             f"{sorted(symbols) or 'none'}")
        table = {symbols[k]: _exponent(v, f"subs({k}=...)") for k, v in values.items()}

        def sub(e):
            return _exponent(e.subs(table), "substituted exponent") if e.free_symbols else e

        return self.replace(layers=tuple(dataclasses.replace(L, a=sub(L.a), b=sub(L.b), c=sub(L.c), d=sub(L.d),
                                                             eps_exponent=sub(L.eps_exponent)) for L in self.layers))

    # ------------------------------------------------------------ accessors
    @property
    def depth(self) -> int:
        """Number of hidden layers L (L + 1 rows), or of residual blocks (L + 2 rows)."""
        return len(self.layers) - (2 if self.residual is not None else 1)

    @property
    def is_residual(self) -> bool:
        return self.residual is not None

    def classify_depth(self) -> DepthClassification:
        """Large-depth behaviour of a residual table (Bordelon et al. 2023; TP6; CompleteP).

        With branch ``L^{-alpha}`` and block learning rate ``L^{e}``: the branches
        add variance ``L^{1-2 alpha}`` at init (stable iff ``alpha >= 1/2``); one
        SGD step moves each block's output by ``L^{e-2 alpha}`` (Adam: ``L^{e-alpha}``),
        the residual stream by ``L^{1+e-2 alpha}`` (stable iff ``<= 0``, nontrivial
        iff ``= 0``); the update of a block relative to its initial contribution
        ``L^{-alpha}`` is ``L^{alpha-1}`` on the nontrivial line, Theta(1) only for
        ``alpha = 1``.

        Returns:
            :class:`DepthClassification` (``stable``, ``nontrivial``, ``every_block``, ``branch_at_init``,
            ``reasons``). Raises ``ValueError`` for an MLP table (no residual) or exponents with free symbols.
        """
        if self.residual is None:
            raise ValueError("classify_depth() needs a residual table (e.g. param('depth-mup', depth=L))")
        alpha, e = self.residual.alpha, self.residual.lr_exponent
        what = "depth classification"
        k = 2 if self.optimizer == "sgd" else 1
        per_block = e - k * alpha
        total = _simp(1 + per_block)
        reasons = []
        init_ok = _ge(alpha, _HALF, what)
        reasons.append(("ok    " if init_ok else "FAILS ") + f"branch variance at init ~ L^{_simp(1 - 2 * alpha)} (needs alpha >= 1/2)")
        upd_ok = _ge(0, total, what)
        reasons.append(("ok    " if upd_ok else "FAILS ") + f"residual-stream update ~ L^{total} (needs <= 0)")
        stable = init_ok and upd_ok
        nontrivial = stable and _eq(total, 0, what)
        ratio = _simp(per_block + alpha)
        every = nontrivial and _eq(ratio, 0, what)
        if stable:
            reasons.append(
                "blocks learn in the limit" if nontrivial else f"block updates vanish like L^{total}: only input/readout learn"
            )
            reasons.append(f"block update / block init contribution ~ L^{ratio}")
        at_init = "theta(1)" if _eq(alpha, _HALF, what) else "vanishes"
        return DepthClassification(stable, nontrivial, every, at_init, tuple(reasons))

    @property
    def a(self) -> tuple[sp.Expr, ...]:
        return tuple(L.a for L in self.layers)

    @property
    def b(self) -> tuple[sp.Expr, ...]:
        return tuple(L.b for L in self.layers)

    @property
    def c(self) -> tuple[sp.Expr, ...]:
        return tuple(L.c for L in self.layers)

    @property
    def readout_scale(self) -> sp.Expr:
        """``theta = a_{L+1} + b_{L+1}``: the readout weights have coordinates n^-theta."""
        last = self.layers[-1]
        return last.a + last.b

    # ------------------------------------------------------- classification
    def _backward_scale(self, first_step: bool = False) -> sp.Expr:
        """Exponent ``beta`` of ``df/dh`` coordinates (SGD): ``theta`` during the first
        step, ``min(theta, 2 a_{L+1} + c_{L+1})`` once the readout has been updated."""
        last = self.layers[-1]
        return self.readout_scale if first_step else sp.Min(self.readout_scale, 2 * last.a + last.c)

    def _r_terms(self, first_step: bool = False) -> tuple[list[sp.Expr], sp.Expr]:
        """Per-layer feature-update exponents ``r_l`` (l = 1..L) and readout exponent ``s``."""
        last = self.layers[-1]
        hidden = self.layers[:-1]
        if self.optimizer == "sgd":
            beta = self._backward_scale(first_step)
            r_l = [beta + 2 * L.a + L.c - 1 + (1 if i == 0 else 0) for i, L in enumerate(hidden)]
            s = 2 * last.a + last.c - 1
        else:  # Adam: sign-like entries, coherent over the n inputs; Muon: an orthogonal update of spectral norm 1
            muon = self.muon_rows
            r_l = [L.a + L.c - (0 if i in muon else 1) + (1 if i == 0 else 0) for i, L in enumerate(hidden)]
            s = last.a + last.c - 1
        return [_simp(r) for r in r_l], _simp(s)

    def classify(self) -> Classification:
        """Regime of the infinite-width limit (TP4 Thm 3.3; per-layer c; Adam per TP4b).

        Returns:
            :class:`Classification`: ``regime`` (one of ``"unstable"``, ``"trivial"``, ``"kernel"``,
            ``"feature_learning"``), ``r = min_l r_l``, ``r_l`` (L,) per-layer feature-update exponents,
            ``stable``, ``nontrivial`` and the ``reasons`` (one line per condition). Raises ``ValueError`` when
            an exponent depends on free symbols (substitute them with :meth:`subs`).
        """
        what = "classification"
        reasons: list[str] = []
        stable = True

        def check(ok: bool, text: str) -> None:
            nonlocal stable
            stable &= ok
            reasons.append(("ok    " if ok else "FAILS ") + text)

        first = self.layers[0]
        check(_eq(first.a + first.b, 0, what), f"a_1 + b_1 = {first.a + first.b} (must be 0: h^1 = Theta(1) at init)")
        for i, L in enumerate(self.layers[1:-1], start=2):
            check(
                _eq(L.a + L.b, _HALF, what),
                f"a_{i} + b_{i} = {L.a + L.b} (must be 1/2: h^{i} = Theta(1) at init)",
            )
        theta = self.readout_scale
        Lp1 = len(self.layers)
        check(_ge(theta, _HALF, what), f"a_{Lp1} + b_{Lp1} = {theta} (must be >= 1/2: f_0 = O(1))")
        r_l, s = self._r_terms()
        r = sp.Min(*r_l)
        check(_ge(r, 0, what), f"r = min_l r_l = {r} (must be >= 0: feature updates O(1))")
        rate = "2a_{L+1} + c_{L+1} - 1" if self.optimizer == "sgd" else "a_{L+1} + c_{L+1} - 1"
        check(_ge(s, 0, what), f"{rate} = {s} (must be >= 0: readout update O(1))")
        check(_ge(theta + r, 1, what), f"a_{Lp1} + b_{Lp1} + r = {_simp(theta + r)} (must be >= 1: f update O(1))")
        for i, e in enumerate(self.decay_exponents):
            if e is not None:
                rule = "-(c + d)" if self.decay == "decoupled" else "-d"
                check(_ge(0, e, what), f"weight decay of layer {i + 1} shrinks it by lr*lambda ~ n^{e} per step "
                                       f"({rule}; must be <= 0: at most Theta(1))")
        nontrivial = False
        if stable:
            via_readout = _eq(s, 0, what)
            via_features = _eq(theta + r, 1, what)
            nontrivial = via_readout or via_features
            if nontrivial:
                how = " and ".join(
                    t for t, ok in (("readout update is Theta(1)", via_readout), ("feature-driven f update is Theta(1)", via_features)) if ok
                )
                reasons.append(f"nontrivial: {how}")
            else:
                reasons.append("trivial: f does not move in the limit (readout and feature contributions to Delta f vanish)")
        if not stable:
            regime = "unstable"
        elif not nontrivial:
            regime = "trivial"
        elif _eq(r, 0, what):
            regime = "feature_learning"
            reasons.append("feature learning: r = 0, hidden features move by Theta(1)")
        else:
            regime = "kernel"
            reasons.append(f"kernel regime: r = {r} > 0, features freeze and f evolves by a fixed kernel")
        if stable:
            reasons += self._optimizer_notes()
        return Classification(regime, r, tuple(r_l), tuple(reasons), stable, nontrivial)

    def _optimizer_notes(self) -> list[str]:
        """Reason lines of a stable adaptive table: where weight decay acts, and Adam's epsilon (Everett et al.)."""
        notes = []
        for i, e in enumerate(self.decay_exponents):
            if e is not None:
                notes.append(f"weight decay of layer {i + 1} acts over O(1) steps" if _eq(e, 0, "decay") else
                             f"weight decay of layer {i + 1} vanishes over O(1) steps; it acts after ~n^{_simp(-e)} "
                             f"steps (its equilibrium)")
        if self.optimizer in ADAPTIVE:
            for i, (g, L) in enumerate(zip(self.gradient_exponents(), self.layers)):
                if i in self.muon_rows:
                    continue
                if not _ge(L.eps_exponent, g, "epsilon"):
                    notes.append(f"note: layer {i + 1}'s gradient entries are ~n^-{g} and its epsilon ~n^-"
                                 f"{L.eps_exponent}: epsilon dominates Adam's denominator as n -> inf (set "
                                 f"eps_exponent >= {g}, Everett et al. 2024)")
        return notes

    def gradient_exponents(self) -> tuple[sp.Expr, ...]:
        """Per row, ``g_l`` with the raw weights' gradient entries ``~ n^-g_l`` after the first step (stable MLP
        tables): ``a_l + beta`` for the input and hidden layers (``beta``: the backward signal's exponent,
        ``min(theta, a_{L+1} + c_{L+1})`` for adaptive optimizers), ``a_{L+1}`` for the readout. Adam's epsilon of
        a layer is negligible at large width iff ``eps_exponent >= g_l`` (Everett et al. 2024, arXiv 2407.05872).

        Returns:
            tuple of sympy expressions ``g_l``, one per row (TP IVb's ``d_l``, Lemma 2.8.11).
        """
        last = self.layers[-1]
        beta = sp.Min(self.readout_scale, (2 if self.optimizer == "sgd" else 1) * last.a + last.c)
        return tuple(_simp(L.a + beta) for L in self.layers[:-1]) + (last.a,)

    @property
    def regime(self) -> str:
        return self.classify().regime

    # -------------------------------------------------------------- exponents
    def exponents(self, steps: int = 1) -> Exponents:
        """Predicted width exponents after ``steps`` steps from init (see :class:`Exponents`).

        After one step the backward signal still has the initial readout scale
        ``n^-theta``; from the second step on the updated readout counts too
        (TP4's ``r``), which matters when ``2 a_{L+1} + c_{L+1} < theta`` (SP).

        Args:
            steps: gradient steps from init, an integer >= 1 (default 1); only ``1`` vs ``>= 2`` matters.

        Returns:
            :class:`Exponents` (quantity ~ ``n**e``): ``delta_h`` (L,), ``delta_f``, ``W_spectral`` (L+1,),
            ``dW_spectral`` (L+1,), ``spectral_target`` (L+1,) as sympy expressions.
        """
        first = integer(steps, "steps", 1) == 1
        r_l, s = self._r_terms(first_step=first)
        theta = self.readout_scale
        delta_h = tuple(_simp(-sp.Min(*r_l[: i + 1])) for i in range(len(self.layers) - 1))
        delta_f = _simp(sp.Max(-s, 1 - theta - sp.Min(*r_l)))
        W_spec, dW_spec, target = [], [], []
        for i, L in enumerate(self.layers):
            is_first, is_last = i == 0, i == len(self.layers) - 1
            W_spec.append(_simp(_HALF - (L.a + L.b)))
            target.append(_HALF if is_first else (-_HALF if is_last else sp.Integer(0)))
            fan = _HALF if (is_first or is_last) else sp.Integer(1)
            if self.optimizer == "sgd":
                beta = self._backward_scale(first)
                back = 0 if is_last else beta
                dW_spec.append(_simp(fan - L.c - 2 * L.a - back))
            elif i in self.muon_rows:  # orthogonalized: spectral norm 1 (n x n, sqrt(fan_out/fan_in) = 1)
                dW_spec.append(_simp(-L.c - L.a))
            else:
                dW_spec.append(_simp(fan - L.c - L.a))
        return Exponents(delta_h, delta_f, tuple(W_spec), tuple(dW_spec), tuple(target), self.decay_exponents)

    # ------------------------------------------------------------ symmetry
    def shift(self, theta) -> "Parametrization":
        """Move along the symmetry ``a -> a+t, b -> b-t, c -> c-2t`` (SGD) / ``c-t`` (Adam, AdamW, Muon).

        ``theta`` is one value or one per layer. Dynamics are unchanged: for SGD
        they depend on each layer only through ``a+b`` and ``2a+c`` (adaptive: ``a+c``). Adaptive tables also
        move ``eps_exponent -> eps_exponent + t`` (the raw gradient scales by ``n^-t``) and, with decoupled
        weight decay, ``d -> d + t`` (the shrink per step ``lr lambda ~ n^-(c+d)`` is kept); independent decay
        keeps ``d``.

        Args:
            theta: the shift ``t``: one exponent, or one per row (``depth + 1`` values, ``depth + 2`` residual).

        Returns:
            :class:`Parametrization`: the shifted table (same constants, optimizer, name, residual).
        """
        thetas = [_exponent(t, "theta") for t in _as_list(theta, len(self.layers), "theta")]
        return self.replace(layers=tuple(self._shifted(L, t) for L, t in zip(self.layers, thetas)))

    def _shifted(self, L: Layer, t) -> Layer:
        """Row ``L`` moved by ``t`` along the symmetry of :meth:`shift`."""
        if self.optimizer == "sgd":
            return dataclasses.replace(L, a=L.a + t, b=L.b - t, c=L.c - 2 * t)
        d = L.d + t if self.decay == "decoupled" and L.weight_decay else L.d
        return dataclasses.replace(L, a=L.a + t, b=L.b - t, c=L.c - t, d=d, eps_exponent=L.eps_exponent + t)

    def canonical(self) -> "Parametrization":
        """Representative with every ``a_l = 0`` and constants folded to multiplier 1.

        Constants have their own symmetry ``alpha -> alpha k, sigma -> sigma/k,
        eta_l -> eta_l/k^2`` (SGD; ``/k`` for adaptive optimizers), so only ``alpha*sigma`` and
        ``alpha^2 eta_l`` (adaptive: ``alpha eta_l``) matter; decoupled weight decay keeps ``eta_l lambda_l``
        (``lambda -> lambda k``). Adam's epsilon constant (``Simulation.adam_eps``) is not folded: tables whose
        multipliers differ agree up to the epsilon term.

        Returns:
            :class:`Parametrization` named ``"<name> (canonical)"``: rows ``(0, a+b, c+2a)`` (adaptive: ``c+a``,
            ``d - a`` with decoupled decay, ``eps_exponent - a``) with multiplier 1, init std
            ``multiplier * init_std``, lr factor ``lr_scale * multiplier^2`` (adaptive: ``* multiplier``) and
            weight decay ``weight_decay / multiplier`` (decoupled).
        """
        k = 2 if self.optimizer == "sgd" else 1
        rows = []
        for L in self.layers:
            row = self._shifted(L, -L.a)
            decay = L.weight_decay / L.multiplier if self.decay == "decoupled" else L.weight_decay
            rows.append(dataclasses.replace(
                row, a=sp.Integer(0), b=_simp(row.b), c=_simp(row.c), d=_simp(row.d),
                eps_exponent=_simp(row.eps_exponent), multiplier=1.0, init_std=L.multiplier * L.init_std,
                lr_scale=L.lr_scale * L.multiplier**k, weight_decay=decay))
        return self.replace(layers=tuple(rows), name=f"{self.name} (canonical)")

    def equivalent(self, other: "Parametrization", rtol: float = 1e-12) -> bool:
        """True if both tables give the same training dynamics at every width.

        Compares the :meth:`canonical` forms: depth, optimizer and residual scaling equal, exponents equal exactly,
        init stds and learning-rate factors equal to ``rtol``.

        Args:
            other: another :class:`Parametrization` (anything else raises
                :class:`~limits.checks.ArgumentTypeError`).
            rtol: relative tolerance >= 0 on the O(1) constants (default 1e-12).

        Returns:
            bool: whether the two tables are equivalent.
        """
        if not isinstance(other, Parametrization):
            raise ArgumentTypeError("equivalent() compares two Parametrization tables")
        rtol = nonnegative(rtol, "rtol")
        if (self.depth, self.optimizer, self.residual, self.decay, self.muon_rows) != \
                (other.depth, other.optimizer, other.residual, other.decay, other.muon_rows):
            return False
        for i, (A, B) in enumerate(zip(self.canonical().layers, other.canonical().layers)):
            pairs = [(A.b, B.b), (A.c, B.c)] + ([] if i in self.muon_rows else [(A.eps_exponent, B.eps_exponent)])
            if A.weight_decay or B.weight_decay:
                pairs.append((A.d, B.d))
            if any(_simp(x - y) != 0 for x, y in pairs):
                return False
            if not np.allclose([A.init_std, A.lr_scale, A.weight_decay], [B.init_std, B.lr_scale, B.weight_decay],
                               rtol=rtol, atol=0):
                return False
        return True

    # ---------------------------------------------------------- numerics
    def instantiate(self, width: int, input_dim: int) -> Network:
        """Numeric multipliers, init stds and learning-rate factors at ``width``.

        Args:
            width: network width n, a positive integer (``math.inf`` is rejected).
            input_dim: input dimension D, an integer >= 1 (the input multiplier includes ``1/sqrt(D)``).

        Returns:
            :class:`Network` with ``multipliers``, ``init_stds``, ``lr_scales`` of shape (L+1,) ((L+2,) for a
            residual table) and the branch multiplier. Raises ``ValueError`` for exponents with free symbols or
            a width so large that a factor ``width**e`` overflows.
        """
        width = _width(width, "width", infinite=False)
        input_dim = integer(input_dim, "input_dim", 1)
        mult, init, lrs, decays, eps = [], [], [], [], []
        for i, L in enumerate(self.layers):
            for e, field in ((L.a, "a"), (L.b, "b"), (L.c, "c"), (L.d, "d"), (L.eps_exponent, "eps_exponent")):
                _numeric(e, f"{field}[{i}]")
            fan = 1.0 / math.sqrt(input_dim) if i == 0 else 1.0
            mult.append(L.multiplier * fan * _power(width, -L.a, f"multiplier of layer {i + 1}"))
            init.append(L.init_std * _power(width, -L.b, f"init std of layer {i + 1}"))
            lrs.append(L.lr_scale * _power(width, -L.c, f"learning rate of layer {i + 1}") * self._block_lr_factor(i))
            decays.append(L.weight_decay * _power(width, -L.d, f"weight decay of layer {i + 1}") if L.weight_decay
                          else 0.0)
            eps.append(_power(width, -L.eps_exponent, f"epsilon of layer {i + 1}"))
        return Network(
            self.depth, width, input_dim, self.optimizer, np.array(mult), np.array(init), np.array(lrs),
            residual=self.is_residual, branch_multiplier=self.branch_multiplier(), weight_decays=np.array(decays),
            eps_scales=np.array(eps), decay=self.decay,
            muon=tuple(i in self.muon_rows for i in range(len(self.layers))),
        )

    def branch_multiplier(self) -> float:
        """Numeric branch multiplier ``beta * L^{-alpha}`` (1.0 for MLPs).

        Returns:
            float: ``beta * depth**(-alpha)``, or 1.0 for a table without residual blocks. Raises ``ValueError``
            when ``alpha`` depends on free symbols.
        """
        if self.residual is None:
            return 1.0
        alpha = float(_numeric(self.residual.alpha, "branch exponent alpha"))
        return self.residual.beta * self.depth ** (-alpha)

    def _block_lr_factor(self, i: int) -> float:
        """``L^{lr_exponent}`` for residual blocks (rows 1..L), 1 otherwise."""
        if self.residual is None or i == 0 or i == len(self.layers) - 1:
            return 1.0
        return self.depth ** float(_numeric(self.residual.lr_exponent, "block lr exponent"))

    def kernel_limit(self) -> KernelLimit:
        """Constants of the linearized (lazy) infinite-width dynamics; see :class:`KernelLimit`.

        ``lambda_l = eta_l / sigma_l^2 * n^{e_l}`` in the limit, with
        ``e_l = [l >= 2] - 2 a_l - c_l + 1 - 2 theta`` for l <= L and
        ``e_{L+1} = 1 - 2 a_{L+1} - c_{L+1}``: 0 when ``e_l < 0``.

        Returns:
            :class:`KernelLimit`: ``W_std`` (L+1,) (multiplier x init std), ``layer_weights`` (L+1,) ``lambda_l``,
            ``f0_variance`` (1.0 when ``theta = 1/2``, else 0.0) and ``branch_multiplier`` (None for MLPs); the
            arrays have L+2 entries for residual tables. Raises ``ValueError`` for Adam tables, unstable tables,
            a layer whose NTK contribution grows with width, or exponents with free symbols.
        """
        if self.optimizer != "sgd":
            raise ValueError("kernel_limit() is defined for SGD tables; Adam's lazy limit is not kernel gradient descent")
        cls = self.classify()
        if cls.regime == "unstable":
            raise ValueError("unstable parametrization has no limit:\n" + str(cls))
        theta = self.readout_scale
        weights = []
        for i, L in enumerate(self.layers):
            if i == len(self.layers) - 1:
                e = 1 - 2 * L.a - L.c
            else:
                e = -2 * L.a - L.c + (1 if i >= 1 else 0) + (1 - 2 * theta)
            e = _numeric(_simp(e), f"kernel exponent of layer {i + 1}")
            if e > 0:
                raise ValueError(f"layer {i + 1}'s contribution to the NTK grows like n^{e}: unstable")
            weights.append(L.lr_scale * self._block_lr_factor(i) / L.init_std**2 if e == 0 else 0.0)
        f0 = 1.0 if _eq(theta, _HALF, "f0 variance") else 0.0
        branch = self.branch_multiplier() if self.is_residual else None
        return KernelLimit(np.array([L.W_std for L in self.layers]), np.array(weights), f0, branch)

    def dmft_limit(self, width: float = math.inf, *, infinite_depth: bool = False) -> DMFTLimit:
        """Constants of the DMFT (feature-learning) limit at ``width`` (see :class:`DMFTLimit`).

        At ``width = inf`` the table must be in the feature-learning regime (kernel-regime tables have a
        kernel limit, :meth:`kernel_limit`); at a finite width the constants are those of the finite network
        in DMFT units (richness ``gamma = n^{theta-1}/sigma_{L+1}``, e.g. ``1/sqrt(n)`` for ntk).
        ``infinite_depth``: the layer-time limit of a residual table (its blocks must share their constants).
        Raises ``ValueError`` naming the field for what the DMFT does not model (optimizers other than SGD,
        unstable tables).

        Args:
            width: ``math.inf`` (default) or a positive integer width n.
            infinite_depth: the layer-time limit of a residual table (default False); an MLP, a table without
                a stable depth limit, or blocks with unequal constants raise ``ValueError``.

        Returns:
            :class:`DMFTLimit`: richness ``gamma``, source scales ``b`` (K+1,) and learning-rate weights
            ``kappa`` (K+1,) (K fields: L for an MLP, L+1 for a residual table), ``residual``; with
            ``infinite_depth`` ``b``, ``kappa`` (2,) (input and readout) and ``layer_time = (sigma2, kappa)``.
        """
        if self.optimizer != "sgd":
            raise ValueError(f"the DMFT solvers model full-batch SGD; this table's optimizer is {self.optimizer!r} "
                             f"(field 'optimizer'), whose feature-learning limit (TP IVb's for Adam) the package does "
                             f"not solve: simulate it with limits.simulate")
        cls = self.classify()
        if cls.regime == "unstable":
            raise ValueError(f"parametrization {self.name!r} is unstable, it has no infinite-width limit:\n  "
                             + "\n  ".join(cls.reasons))
        width = _width(width, "width")
        inf = width == math.inf
        if inf and cls.regime != "feature_learning":
            raise ValueError(f"{self.name!r} is in the {cls.regime!r} regime: its infinite-width limit is kernel gradient "
                             f"descent (limits.solve_kernel, Parametrization.kernel_limit), not a DMFT")
        gamma = float(self.effective_gamma(width))
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"effective richness gamma = {gamma} of {self.name!r} at width {width} is not positive and "
                             f"finite")
        theta = self.readout_scale
        last = len(self.layers) - 1
        sigma_out = self.layers[-1].W_std
        b, kappa = [], []
        for i, L in enumerate(self.layers):
            e = (1 - 2 * L.a - L.c) if i == last else (-2 * L.a - L.c + (1 if i >= 1 else 0) + 1 - 2 * theta)
            e = float(_numeric(_simp(e), f"width exponent of layer {i + 1}'s learning rate"))
            if e > 0:
                raise ValueError(f"layer {i + 1}'s update grows like n^{e:g} (fields 'c' and 'a' of layer {i + 1}): "
                                 f"unstable")
            scale = (1.0 if e == 0 else 0.0) if inf else _float_power(width, e)
            eta = L.lr_scale * L.multiplier**2 * self._block_lr_factor(i)
            branch = self.branch_multiplier() if (self.is_residual and 0 < i < last) else 1.0
            if i == last:
                b.append(1.0)
                kappa.append(eta * scale)
            else:
                b.append(branch * L.W_std)
                kappa.append(branch**2 * eta * sigma_out**2 * scale)
        if not infinite_depth:
            return DMFTLimit(gamma, tuple(b), tuple(kappa), residual=self.is_residual)
        return self._layer_time_limit(gamma, b, kappa)

    def _layer_time_limit(self, gamma: float, b: list, kappa: list) -> DMFTLimit:
        """The :class:`DMFTLimit` of a residual table at ``depth = inf`` from its per-block constants ``b, kappa``."""
        if not self.is_residual:
            raise ValueError("depth=math.inf needs a residual table (depth-mup, completep, ...); an MLP has no depth limit")
        dcls = self.classify_depth()
        if not dcls.stable:
            raise ValueError(f"{self.name!r} has no infinite-depth limit (depth=math.inf):\n  " + "\n  ".join(dcls.reasons))
        blocks = list(zip(b[1:-1], kappa[1:-1]))
        if any(abs(x - blocks[0][0]) > 1e-12 * abs(blocks[0][0]) or abs(y - blocks[0][1]) > 1e-12 * abs(blocks[0][1])
               for x, y in blocks):
            raise ValueError("depth=math.inf needs blocks with equal constants (fields multiplier, init_std, lr_scale "
                             "of the block rows)")
        L = self.depth
        alpha = float(_numeric(self.residual.alpha, "branch exponent alpha"))
        e = float(_numeric(self.residual.lr_exponent, "block lr exponent"))
        per_block_b2 = blocks[0][0] ** 2 * L ** (2 * alpha)  # beta^2 sigma^2 without the L^-2alpha
        per_block_k = blocks[0][1] * L ** (2 * alpha - e)  # beta^2 eta sigma_out^2 without L^(e - 2alpha)
        s2 = per_block_b2 if abs(alpha - 0.5) < 1e-12 else 0.0
        k2 = per_block_k if abs(1 + e - 2 * alpha) < 1e-12 else 0.0
        return DMFTLimit(gamma, (b[0], b[-1]), (kappa[0], kappa[-1]), residual=True, layer_time=(s2, k2))

    def effective_gamma(self, width: float = math.inf) -> float:
        """DMFT richness ``gamma`` of this table at ``width``: ``n^{theta-1} / W_std_{L+1}``.

        ``gamma0`` for mup at any width, ``1/sqrt(n)`` for ntk, 0 at infinite width
        for tables with ``theta < 1`` (kernel regime).

        Args:
            width: ``math.inf`` (default) or a positive integer width n.

        Returns:
            float: ``gamma`` (``math.inf`` at infinite width for ``theta > 1``). Raises ``ValueError`` when
            ``theta`` depends on free symbols or ``width**(theta - 1)`` is not a finite positive float.
        """
        width = _width(width, "width")
        e = _numeric(_simp(self.readout_scale - 1), "effective gamma")
        W = self.layers[-1].W_std
        if width == math.inf:
            if e == 0:
                return 1.0 / W
            return 0.0 if e < 0 else math.inf
        return _power(width, e, "effective gamma") / W

    # -------------------------------------------------------------- display
    def table(self, fmt: str = "markdown") -> str:
        """The table as markdown (``fmt="markdown"``) or a LaTeX tabular (``"latex"``).

        Args:
            fmt: ``"markdown"`` (default) or ``"latex"``; anything else raises ``ValueError``.

        Returns:
            str: one row per layer (a, b, c, multiplier, init std, lr factor; adaptive optimizers add the update
            rule, epsilon exponent, and with weight decay its constant and exponent d); the markdown form starts
            with the name, optimizer, depth and residual scaling.
        """
        if fmt == "markdown":
            head, rows = self._rows_for_display()
            out = [f"**{self.name}** (optimizer: {self.optimizer}, depth {self.depth})", ""]
            if self.optimizer in DECAYED:
                out[0] += f", {self.decay} weight decay"
            if self.residual is not None:
                r = self.residual
                out[0] += f", residual blocks: branch {r.beta:g} L^-({r.alpha}), block lr x L^({r.lr_exponent})"
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for row in rows:
                out.append("| " + " | ".join(_fmt(v) for v in row) + " |")
            return "\n".join(out)
        rows = [row[:7] for row in self._rows_for_display()[1]]
        if fmt == "latex":
            out = ["\\begin{tabular}{lcccccc}", "\\hline", " & ".join(("layer", "$a$", "$b$", "$c$", "$\\alpha$", "$\\sigma$", "$\\eta_l$")) + " \\\\", "\\hline"]
            for row in rows:
                cells = [row[0]] + [f"${sp.latex(v)}$" for v in row[1:4]] + [f"${_fmt(v)}$" for v in row[4:]]
                out.append(" & ".join(cells) + " \\\\")
            out += ["\\hline", "\\end{tabular}"]
            return "\n".join(out)
        raise ValueError(f"unknown table format {fmt!r}; use 'markdown' or 'latex'")

    def _rows_for_display(self) -> tuple[tuple[str, ...], list[tuple]]:
        """Column names and one tuple per row for :meth:`table` (optimizer columns only where they apply)."""
        head = ("layer", "a", "b", "c", "multiplier", "init std", "lr factor")
        if self.optimizer in ADAPTIVE:
            head += ("update", "eps exponent")
        if any(L.weight_decay for L in self.layers):
            head += ("weight decay", "d")
        rows = []
        for i, L in enumerate(self.layers):
            kind = "input" if i == 0 else ("readout" if i == len(self.layers) - 1 else ("block" if self.is_residual else "hidden"))
            row = (f"{i + 1} ({kind})", L.a, L.b, L.c, L.multiplier, L.init_std, L.lr_scale)
            if self.optimizer in ADAPTIVE:
                row += ("muon" if i in self.muon_rows else "adam", L.eps_exponent)
            if "d" in head:
                row += (L.weight_decay, L.d)
            rows.append(row)
        return head, rows

    def __str__(self) -> str:
        return self.table()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _float_power(width: int, exponent: float) -> float:
    """``width ** exponent`` in floating point, through logarithms for integers beyond float range (inf when the
    result overflows, 0.0 when it underflows)."""
    if exponent == 0:
        return 1.0
    try:
        return float(width) ** exponent
    except OverflowError:
        try:
            return math.exp(exponent * math.log(width))
        except OverflowError:
            return math.inf


def _power(width: int, exponent, what: str) -> float:
    """``width ** exponent`` as a finite positive float, or a ``ValueError`` naming ``what`` (huge widths)."""
    out = _float_power(width, float(exponent))
    if not (math.isfinite(out) and out > 0):
        shown = str(width) if width < 10**15 else f"~10^{len(str(width)) - 1}"
        raise ValueError(f"width={shown} is too large: the {what} (width^{exponent}) is {out} in floating point")
    return out


# ------------------------------------------------------------------- presets
def _preset_exponents(name: str, depth: int, optimizer: str):
    h = _HALF
    hidden = depth - 1
    if name == "sp":
        a = [0] * (depth + 1)
        b = [0] + [h] * hidden + [h]
        c = [0] * (depth + 1)
    elif name == "ntk":
        a = [0] + [h] * hidden + [h]
        b = [0] * (depth + 1)
        # Adam: hidden lr n^-1 (r = a + c - 1 = 1/2); Muon rows: r = a + c = 1/2 at c = 0
        c = [0] * (depth + 1) if optimizer == "sgd" else [h] + [0 if optimizer == "muon" else 1] * hidden + [h]
    elif name in ("mup", "mfp"):
        a = [0] + [h] * hidden + [1]
        b = [0] * (depth + 1)
        if optimizer == "sgd":
            c = [-1] * (depth + 1)
        else:  # Adam: effective hidden lr 1/n; Muon: effective hidden spectral update Theta(1) (c = -a)
            c = [0] + [-h if optimizer == "muon" else h] * hidden + [0]
    elif name in RESIDUAL_PRESETS:  # depth residual blocks, muP in width
        return _preset_exponents("mup", depth + 1, optimizer)
    else:
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)} or Parametrization.from_abc(...)")
    return a, b, c


def param(
    name: str,
    depth: int | None = 1,
    *,
    gamma0: float | None = 1.0,
    optimizer: str | None = "sgd",
    c=None,
    multipliers=None,
    init_stds=None,
    lr_scales=None,
    beta: float | None = None,
    weight_decay=None,
    d=None,
    decay: str | None = None,
    muon_layers: Sequence[int] | None = None,
) -> Parametrization:
    """A preset table for an MLP with ``depth`` hidden layers.

    Presets (SGD exponents; DESIGN.md conventions):

    - ``"sp"``: standard parametrization, ``a = 0``, ``b = (0, 1/2, ..., 1/2)``,
      ``c = 0`` unless given (``c=1`` gives the kernel regime).
    - ``"ntk"``: ``f = w . phi(h_L)/sqrt(N)``, raw learning rate ``lr``.
    - ``"mup"``: Bordelon-Pehlevan form of muP, ``f = w . phi(h_L)/(gamma0 N)``,
      raw learning rate ``lr * gamma0^2 * N`` (TP4's muP shifted by theta = 1/2).
    - ``"mfp"``: mean-field parametrization (TP4's MF for depth 1; its deep
      extension in the same form), which equals ``mup`` in this convention.

    Residual presets (``depth`` = number of blocks L, muP in width, blocks
    ``h <- h + beta L^{-alpha} W phi(h)/sqrt(N)``, block learning rates ``x L^e``):

    - ``"depth-mup"``: ``alpha = 1/2``, ``e = 0`` (SGD) / ``-1/2`` (Adam)
      (Bordelon et al. 2023, arXiv 2309.16620; Yang et al. TP6, arXiv 2310.02244).
    - ``"completep"``: ``alpha = 1``, ``e = 1`` (SGD) / ``0`` (Adam).
    - ``"resnet"``: plain un-scaled branches, ``alpha = 0``, ``e = 0``.

    Optimizers: ``"sgd"``, ``"adam"``, ``"adamw"`` (Adam with weight decay) and ``"muon"`` (orthogonalized
    momentum on the hidden n x n layers, Adam on the vector-like input and readout layers; muP-Muon: effective
    hidden update of spectral norm Theta(1)). ``weight_decay`` (AdamW/Muon) is the constant ``lambda`` of the
    matrix-like (hidden) layers; vector-like layers get none (Fan et al. 2025, arXiv 2510.15262). Its width rule
    (``d``, unless given): for ``"mup"``/``"mfp"`` and the residual presets with AdamW, the relative shrink per
    step ``lr_l lambda_l`` falls like ``n^-1/2``, i.e. ``lambda ~ sqrt(n)`` for PyTorch's decoupled ``lambda``
    next to lr ``~ 1/n`` (Fan et al.'s rule; ``d = 0`` in this table's form, whose raw hidden lr is ``n^-1/2``);
    with Muon, ``lr_l lambda_l`` is width-independent; other presets: constant ``lambda`` (``d = 0``). A decoupled
    ``weight_decay`` is divided by ``gamma0``, which multiplies the learning rates, so ``gamma0`` leaves the shrink
    per step ``lr_l lambda_l`` unchanged.

    ``gamma0`` divides the readout multiplier and multiplies every learning-rate
    factor by ``gamma0^2`` (Adam: ``gamma0``), so function-space dynamics in the
    kernel regime do not depend on it while feature learning does. ``beta`` is
    the O(1) branch multiplier of residual presets (1 when None; rejected for MLP presets).

    Arguments are checked, not coerced (wrong kinds raise :class:`~limits.checks.ArgumentTypeError`, bad values
    ``ValueError``, naming the argument).

    Args:
        name: preset name, exactly as listed (lower case): ``"sp"``, ``"ntk"``, ``"mup"``, ``"mfp"``,
            ``"depth-mup"``, ``"completep"``, ``"resnet"``.
        depth: hidden layers (MLP presets) or residual blocks L (residual presets), an integer >= 1
            (default 1; None: 1).
        gamma0: richness, a positive finite number (default 1.0; None: 1.0).
        optimizer: ``"sgd"`` (default; None: ``"sgd"``), ``"adam"``, ``"adamw"`` or ``"muon"``.
        c: learning-rate width exponents overriding the preset's: one value or one per row; None: the preset's.
        weight_decay: ``"adamw"``/``"muon"``: one value ``>= 0`` for the matrix-like layers, or one per row
            (None: 0, no decay); rejected for other optimizers.
        d: weight-decay width exponents overriding the rule above: one value or one per row.
        decay: ``"decoupled"`` (None: the default) or ``"independent"`` (see :class:`Parametrization`).
        muon_layers: ``"muon"``: 1-based matrix-like rows updated by Muon (None: all hidden layers / blocks).
        multipliers: positive finite O(1) multipliers, one value or one per row (None: 1.0); the readout's is
            then divided by ``gamma0``.
        init_stds: positive finite O(1) init stds, one value or one per row (None: 1.0).
        lr_scales: positive finite learning-rate factors, one value or one per row (None: 1.0); then multiplied
            by ``gamma0^2`` (Adam: ``gamma0``).
        beta: O(1) branch multiplier of a residual preset, positive finite (None: 1.0); rejected for MLP presets.

    Returns:
        :class:`Parametrization` with ``depth + 1`` rows (``depth + 2`` for residual presets: input, blocks,
        readout), named ``name`` (``"name(gamma0=...)"`` when ``gamma0 != 1``).
    """
    key, depth, gamma0, optimizer = _preset_arguments(name, depth, gamma0, optimizer)
    a, b, c_default = _preset_exponents(key, depth, optimizer)
    residual = _preset_residual(key, optimizer, beta)
    rows = _rows(len(a), residual is not None)
    mult, lrs = _preset_constants(multipliers, lr_scales, len(a), rows, gamma0, optimizer)
    label = key if gamma0 == 1.0 else f"{key}(gamma0={gamma0:g})"
    decays, d_rule = _preset_decay(key, optimizer, weight_decay, decay, a, c_default if c is None else c, rows,
                                   gamma0)
    return Parametrization.from_abc(
        a, b, c_default if c is None else c, optimizer=optimizer, multipliers=mult,
        init_stds=1.0 if init_stds is None else init_stds, lr_scales=lrs, name=label, residual=residual,
        weight_decay=decays, d=d_rule if d is None else d, decay="decoupled" if decay is None else decay,
        muon_layers=muon_layers,
    )


def _preset_decay(key: str, optimizer: str, weight_decay, decay, a, c, rows: str, gamma0: float) -> tuple[list, list]:
    """Per-row weight decays (one value: on the matrix-like rows only) and the preset's width rule ``d``. A decoupled
    decay is divided by ``gamma0`` (which multiplies the learning rates), so the shrink per step does not depend on
    it."""
    size = len(a)
    if weight_decay is None:
        return [0.0] * size, [0] * size
    if optimizer not in DECAYED:
        raise inapplicable("weight_decay", f"optimizer {optimizer!r} has no weight decay; use optimizer='adamw' or "
                                           f"'muon'")
    if isinstance(weight_decay, (list, tuple, np.ndarray)):
        decays = [_decay_constant(v, f"weight_decay[{i}]") for i, v in
                  enumerate(_as_list(weight_decay, size, "weight_decay", rows))]
    else:
        value = _decay_constant(weight_decay, "weight_decay")
        if value and size == 2:
            raise ValueError(f"weight_decay={value:g} goes to the matrix-like (hidden) layers and a depth-1 MLP has "
                             f"none (its input and readout are vector-like, Fan et al.'s rule gives them no decay): "
                             f"use depth >= 2, or one value per row (weight_decay=[..., ...])")
        decays = [0.0] + [value] * (size - 2) + [0.0]
    if decay != "independent":
        decays = [v / gamma0 for v in decays]
    c = _as_list(c, size, "c", rows)
    if key in ("mup", "mfp") or key in RESIDUAL_PRESETS:
        shrink = sp.Integer(0) if optimizer == "muon" else -_HALF  # lr_l lambda_l ~ n^shrink
    else:
        return decays, [0] * size
    independent = decay == "independent"
    return decays, [0 if not lam else _simp(-shrink if independent else -shrink - _exponent(ci, "c"))
                    for lam, ci in zip(decays, c)]


def _preset_arguments(name, depth, gamma0, optimizer) -> tuple[str, int, float, str]:
    """The checked preset name, depth, richness and optimizer of :func:`param` (None: the defaults)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"preset name must be a string, got {name!r} ({type(name).__name__})")
    if name not in PRESETS:
        hint = f" (preset names are lower case: {name.lower()!r})" if name.lower() in PRESETS else ""
        raise ValueError(f"unknown preset {name!r}{hint}; use one of {', '.join(PRESETS)} or "
                         f"Parametrization.from_abc(...)")
    depth = 1 if depth is None else integer(depth, "depth", 1)
    gamma0 = 1.0 if gamma0 is None else _constant(gamma0, "gamma0")
    optimizer = "sgd" if optimizer is None else choice(optimizer, "optimizer", OPTIMIZERS)
    return name, depth, gamma0, optimizer


def _preset_residual(key: str, optimizer: str, beta) -> Residual | None:
    """The depth scaling of a residual preset (None for MLP presets, which take no ``beta``)."""
    if key not in RESIDUAL_PRESETS:
        if beta is not None:
            raise inapplicable("beta", f"{key!r} is an MLP preset; the branch multiplier belongs to the residual "
                                       f"presets ({', '.join(RESIDUAL_PRESETS)})")
        return None
    alpha, e_sgd, e_adam = {"depth-mup": (_HALF, 0, -_HALF), "completep": (1, 1, 0), "resnet": (0, 0, 0)}[key]
    beta = 1.0 if beta is None else _constant(beta, "beta")
    return Residual(sp.Rational(alpha), beta, sp.Rational(e_sgd if optimizer == "sgd" else e_adam))


def _preset_constants(multipliers, lr_scales, size: int, rows: str, gamma0: float, optimizer: str):
    """Multipliers (readout divided by ``gamma0``) and learning-rate factors (times ``gamma0^2``, Adam ``gamma0``),
    each entry checked before the arithmetic and the products checked for overflow and underflow."""
    mult = [_constant(v, f"multipliers[{i}]")
            for i, v in enumerate(_as_list(1.0 if multipliers is None else multipliers, size, "multipliers", rows))]
    lrs = [_constant(v, f"lr_scales[{i}]")
           for i, v in enumerate(_as_list(1.0 if lr_scales is None else lr_scales, size, "lr_scales", rows))]
    lr_factor = gamma0 * gamma0 if optimizer == "sgd" else gamma0  # inf (not OverflowError) when out of range
    mult[-1] = mult[-1] / gamma0
    lrs = [v * lr_factor for v in lrs]
    for what, value in [("the readout multiplier / gamma0", mult[-1])] + [
            (f"lr_scales[{i}] * gamma0{'^2' if optimizer == 'sgd' else ''}", v) for i, v in enumerate(lrs)]:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"gamma0={gamma0:g} is out of range: {what} is {value} in floating point")
    return mult, lrs


def entry_table(param, depth=None, *, gamma0=None, optimizer=None) -> tuple["Parametrization", float | None]:
    """The table of an entry point's shared ``param, depth, gamma0, optimizer`` arguments (one rule for
    :func:`limits.solve_dmft`, :func:`limits.solve_kernel`, :func:`limits.simulate`, :func:`limits.transfer`,
    :func:`limits.coord_check`).

    Args:
        param: a preset name, or a :class:`Parametrization` (which carries its depth, richness and optimizer).
        depth: hidden layers / residual blocks; None: the table's own depth, 1 for a preset name.
        gamma0: richness of a preset (None: 1.0); an error next to a Parametrization.
        optimizer: ``"sgd"`` or ``"adam"`` for a preset (None: ``"sgd"``); an error next to a Parametrization.

    Returns:
        ``(table, gamma0)``: the :class:`Parametrization` and the preset's richness (None for a table).
    """
    if isinstance(param, Parametrization):
        for name, value in (("gamma0", gamma0), ("optimizer", optimizer)):
            if value is not None:
                raise inapplicable(name, "a Parametrization carries its own constants and optimizer (build it with "
                                         f"limits.param(name, depth, {name}=...))")
        return resolve(param, param.depth if depth is None else integer(depth, "depth", 1)), None
    if not isinstance(param, str):
        raise ArgumentTypeError(f"param must be a preset name ({', '.join(PRESETS)}) or a Parametrization, got "
                                f"{type(param).__name__}")
    gamma0 = 1.0 if gamma0 is None else positive(gamma0, "gamma0")
    optimizer = "sgd" if optimizer is None else choice(optimizer, "optimizer", OPTIMIZERS)
    depth = 1 if depth is None else integer(depth, "depth", 1)
    return resolve(param, depth, gamma0=gamma0, optimizer=optimizer), gamma0


def resolve(p, depth: int, *, gamma0: float | None = None, optimizer: str | None = None) -> Parametrization:
    """Turn a preset name or table into a table of the requested ``depth``.

    Entry points (solvers, simulator) call this once: a name becomes
    ``param(name, depth, gamma0=gamma0, optimizer=optimizer)``; a table must have that depth (and optimizer, if
    given), and ``gamma0`` next to a table is an error (it carries its constants).
    """
    if isinstance(p, Parametrization):
        depth = integer(depth, "depth", 1)
        if p.depth != depth:
            raise ValueError(f"the parametrization has depth {p.depth} but depth={depth} was requested; they must match")
        if gamma0 is not None:
            raise inapplicable("gamma0", "a Parametrization carries its own constants (build it with "
                                         "limits.param(name, depth, gamma0=...))")
        if optimizer is not None and optimizer != p.optimizer:
            raise ValueError(f"the parametrization is for {p.optimizer!r} but optimizer={optimizer!r} was requested")
        return p
    if isinstance(p, str):
        return param(p, depth, gamma0=gamma0, optimizer=optimizer)
    raise ArgumentTypeError(f"param must be a preset name ({', '.join(PRESETS)}) or a Parametrization, got "
                            f"{type(p).__name__}")
