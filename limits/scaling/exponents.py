r"""Scaling-law exponents of the power-law linear models (random features and the rich two-layer linear network).

Conventions (derivations in ``docs/theory/scaling.md``). Features $\psi$ have covariance eigenvalues
$\lambda_k = k^{-\alpha}$ (capacity $\alpha > 1$, so that $\sum_k \lambda_k < \infty$); the target is $y = w^*\cdot\psi$
with $\lambda_k (w^*_k)^2 \propto k^{-\alpha\beta - 1}$ (source $\beta > 0$). The models are trained by full-batch
(population) gradient descent on $\tfrac12 E[(f - y)^2]$, without SGD noise:

- ``"lazy"``: random features $f = w\cdot A\psi/\sqrt N$ with a frozen Gaussian $A \in \mathbb R^{N\times M}$, $w(0)=0$;
- ``"rich"``: the projected two-layer linear network of Bordelon, Atanasov & Pehlevan (arXiv 2409.17858) at
  richness $\gamma_0 > 0$ ($\gamma_0 \to 0$ is the lazy model).

Every exponent is a positive rate: $L \propto t^{-\text{time}}$ ($N, P = \infty$), $L \propto N^{-\text{width}}$
($t \to \infty$, infinite data), $L \propto P^{-\text{data}}$ ($N = \infty$, $t \to \infty$, ridgeless), and at fixed
compute $C = N t$ the optimum $L^* \propto C^{-\text{compute}}$, $N^* \propto C^{\text{width\_compute}}$,
$t^* \propto C^{\text{time\_compute}}$. With $\chi(\beta) = \beta\max(1, 2/(1+\beta))$:

- time: $\beta$ (lazy), $\chi(\beta)$ (rich; $2\beta/(1+\beta)$ for $\beta < 1$);
- width: $\alpha\min(\beta, 1)$ (both);
- data: $\alpha\min(\beta, 2)$ (lazy; the rich model inherits it from the kernel, not derived);
- compute, $\beta < 1$: $\alpha\beta/(1+\alpha)$ (lazy), $2\alpha\beta/(\alpha(1+\beta)+2)$ (rich);
- compute, $\beta \ge 1$: $\alpha\beta/(\alpha\beta+1)$ (both).

At the hard-task optimum ($\beta < 1$) the time term balances the width floor, $t^* \propto N^{a}$ with
$a = \alpha\beta/\text{time}$ ($\alpha$ lazy, $\alpha(1+\beta)/2$ rich), so $N^* \propto C^{1/(1+a)}$,
$t^* \propto C^{a/(1+a)}$. For $\beta \ge 1$ it balances the finite-width transient
$N^{-1}\lVert f^*\rVert^2_{\mathcal H}\, t^{-(1-1/\alpha)}$: $N^* \propto t^{\beta - 1 + 1/\alpha}$, so
$N^* \propto C^{(\alpha\beta-\alpha+1)/(\alpha\beta+1)}$, $t^* \propto C^{\alpha/(\alpha\beta+1)}$. Always
$\text{width\_compute} + \text{time\_compute} = 1$ and $\text{compute} = \text{time}\cdot\text{time\_compute}$.

Task classes: ``"hard"`` if $\beta < 1$ (target outside the RKHS), ``"easy"`` if $1 \le \beta < 2 - 1/\alpha$,
``"super-easy"`` if $\beta \ge 2 - 1/\alpha$; a boundary belongs to the upper class. Without SGD noise the
super-easy class has the easy-class exponents.

Arguments may be numbers (every exponent is then a Python float) or sympy expressions (sympy results, a
``Piecewise`` where the class depends on undecided values); :func:`symbolic` gives the formulas in the symbols
:data:`ALPHA`, :data:`BETA`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import sympy as sp

from ..checks import ArgumentTypeError

__all__ = ["ALPHA", "BETA", "REGIMES", "TASKS", "ScalingExponents", "exponents", "symbolic", "task_difficulty"]

REGIMES = ("lazy", "rich")
"""The training regimes: random features (``"lazy"``) and the rich two-layer linear network (``"rich"``)."""

TASKS = ("hard", "easy", "super-easy")
"""The task classes of :func:`task_difficulty`, from hardest to easiest."""

ALPHA = sp.Symbol("alpha", positive=True)
"""The capacity symbol of :func:`symbolic` (the formulas hold for ``alpha > 1``)."""

BETA = sp.Symbol("beta", positive=True)
"""The source symbol of :func:`symbolic`."""

_BOUNDS = {
    "alpha": (1, "capacity alpha must be > 1 so that the trace Σλ_k is finite"),
    "beta": (0, "source beta must be > 0 so that the target variance Σλ_k w*_k² is finite"),
}

_NOTES = {
    "all": "full-batch (population) gradient descent: no SGD noise, so super-easy tasks have the easy-task exponents "
           "(minibatch SGD would cap the time exponent at 2 - 1/alpha)",
    "rich_time": "rich time exponent: heuristic scaling argument, valid after a gamma0-dependent crossover time",
    "rich_data": "rich data exponent: inherited from the kernel regime (ridgeless regression), not derived for the "
                 "rich model",
    "rich_compute": "rich compute exponents for hard tasks: balance t^-time against the width floor, assuming the "
                    "finite-width transient follows the effective (kernel) time",
}


def _symbolic_argument(value: sp.Basic, name: str) -> sp.Expr:
    """``value`` if it is a finite real sympy expression not provably out of range, else raise naming ``name``."""
    lower, why = _BOUNDS[name]
    if not isinstance(value, sp.Expr):
        raise ArgumentTypeError(f"{name} must be a real number or a sympy expression, got {value!r} "
                                f"({type(value).__name__})")
    if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or value.is_finite is False:
        raise ValueError(f"{name} must be finite, got {value}; pass a finite number > {lower}")
    if value.is_extended_real is False:
        raise ValueError(f"{name} must be real, got {value}")
    try:
        above = sp.Gt(value, lower)
    except TypeError:  # sympy refuses to order a value it knows to be non-real
        raise ValueError(f"{name} must be real, got {value}") from None
    if above is sp.false:
        raise ValueError(f"{why}; got {name} = {value}")
    return value


def _numeric_argument(value, name: str) -> float:
    """``value`` as a finite float above its bound, else raise naming ``name`` and the fix."""
    lower, why = _BOUNDS[name]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number or a sympy expression, got {value!r} "
                                f"({type(value).__name__}); pass e.g. {name}={lower + 1}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}; pass a finite number > {lower}")
    if not out > lower:
        raise ValueError(f"{why}; got {name} = {value!r}")
    return out


def _as_sympy(value, name: str) -> sp.Expr:
    """A validated number as sympy: exact for integers and fractions, a ``Float`` otherwise."""
    number = _numeric_argument(value, name)
    return sp.Rational(value) if isinstance(value, numbers.Rational) else sp.Float(number)


def _arguments(alpha, beta) -> tuple:
    """Validated ``(alpha, beta)``: two floats, or two sympy expressions if either is one."""
    if isinstance(alpha, sp.Basic) or isinstance(beta, sp.Basic):
        return tuple(_symbolic_argument(v if isinstance(v, sp.Basic) else _as_sympy(v, n), n)
                     for v, n in ((alpha, "alpha"), (beta, "beta")))
    return _numeric_argument(alpha, "alpha"), _numeric_argument(beta, "beta")


def _regime(regime) -> str:
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"regime must be one of {', '.join(map(repr, REGIMES))}; got {regime!r}")
    return regime


def _where(condition, then, otherwise):
    """``then`` where ``condition`` holds, else ``otherwise``: a plain choice if decided, a sympy ``Piecewise`` if not."""
    if isinstance(condition, (bool, np.bool_)):
        return then if condition else otherwise
    return sp.Piecewise((then, condition), (otherwise, True))


def time_exponent(alpha, beta, regime: str):
    r"""The exponent of $L(t)$ at infinite width and data.

    Lazy: mode $k$ is learned once $\lambda_k t \sim 1$, so $L \sim \sum_{k > t^{1/\alpha}} k^{-\alpha\beta-1}
    \sim t^{-\beta}$. Rich: the tangent kernel grows like $\gamma_0\lVert\beta_\text{eff}\rVert \sim
    k_*^{\alpha(1-\beta)/2}$ while the target is outside the RKHS, giving $t^{-2\beta/(1+\beta)}$ for $\beta < 1$.

    Args:
        alpha: capacity (validated, > 1).
        beta: source (validated, > 0).
        regime: ``"lazy"`` or ``"rich"``.

    Returns:
        $\beta$ (lazy) or $\beta\max(1, 2/(1+\beta))$ (rich).
    """
    if regime == "lazy":
        return beta
    return _where(beta < 1, 2 * beta / (1 + beta), beta)


def width_exponent(alpha, beta):
    r"""The exponent of the floor $L_\infty(N) = \tfrac12\sum_k \lambda_k w_k^{*2}\,\kappa/(\lambda_k+\kappa)$,
    $\sum_k \lambda_k/(\lambda_k+\kappa) = N$, so $\kappa \sim N^{-\alpha}$ and $L_\infty \sim \kappa^{\min(\beta,1)}$.

    Args:
        alpha: capacity (validated, > 1).
        beta: source (validated, > 0).

    Returns:
        $\alpha\min(\beta, 1)$ (both regimes: the projected rich model spans the same N-dimensional space).
    """
    return _where(beta < 1, alpha * beta, alpha)


def data_exponent(alpha, beta):
    r"""The exponent of the ridgeless bias $\tfrac{1}{1-\gamma}\sum_k \lambda_k w_k^{*2}\,\kappa^2/(\lambda_k+\kappa)^2$,
    $\sum_k \lambda_k/(\lambda_k+\kappa) = P$, so $\kappa \sim P^{-\alpha}$ and the bias $\sim \kappa^{\min(\beta,2)}$.

    Args:
        alpha: capacity (validated, > 1).
        beta: source (validated, > 0).

    Returns:
        $\alpha\min(\beta, 2)$ (derived for the kernel; the rich model inherits it without derivation).
    """
    return _where(beta < 2, alpha * beta, 2 * alpha)


def compute_exponents(alpha, beta, regime: str) -> tuple:
    r"""The compute-optimal exponents at $C = N t$.

    Hard tasks ($\beta < 1$): $t^{-\text{time}}$ balances $N^{-\alpha\beta}$ at $t^* \sim N^{a}$,
    $a = \alpha\beta/\text{time}$. Otherwise $t^{-\beta}$ balances the transient $N^{-1} t^{-(1-1/\alpha)}$ at
    $N^* \sim t^{\beta-1+1/\alpha}$ (the floor $N^{-\alpha}$ is smaller there by $(\alpha-1)(\beta-1) \ge 0$).

    Args:
        alpha: capacity (validated, > 1).
        beta: source (validated, > 0).
        regime: ``"lazy"`` or ``"rich"``.

    Returns:
        ``(compute, width_compute, time_compute)``: $L^* \sim C^{-\text{compute}}$, $N^* \sim C^{\text{width\_compute}}$,
        $t^* \sim C^{\text{time\_compute}}$.
    """
    p, q = (alpha, 1) if regime == "lazy" else (alpha * (1 + beta), 2)  # t* ~ N^(p/q) for hard tasks
    hard = (alpha * beta * q / (p + q), q / (p + q), p / (p + q))
    denominator = alpha * beta + 1
    easy = (alpha * beta / denominator, (alpha * beta - alpha + 1) / denominator, alpha / denominator)
    return tuple(_where(beta < 1, h, e) for h, e in zip(hard, easy))


def _task(alpha, beta):
    """The task class as a sympy ``Piecewise`` of symbols named after the classes (or one symbol if decided)."""
    hard, easy, super_easy = (sp.Symbol(name) for name in TASKS)
    return sp.Piecewise((hard, beta < 1), (easy, beta < 2 - 1 / alpha), (super_easy, True))


def task_difficulty(alpha, beta):
    r"""The task class: ``"hard"`` if $\beta < 1$, ``"easy"`` if $1 \le \beta < 2 - 1/\alpha$, else ``"super-easy"``.

    $\beta = 1$ is the edge of the RKHS ($\sum_k w_k^{*2} = \sum_k k^{\alpha-\alpha\beta-1} < \infty$ iff
    $\beta > 1$); $2 - 1/\alpha$ is where SGD noise would set the time exponent. A boundary belongs to the upper
    (easier) class: $\beta = 1$ is easy, $\beta = 2 - 1/\alpha$ super-easy.

    Args:
        alpha: capacity, a real number or sympy expression > 1.
        beta: source, a real number or sympy expression > 0.

    Returns:
        One of :data:`TASKS`, or a sympy ``Piecewise`` over the symbols ``hard``, ``easy``, ``super-easy`` when
        symbolic arguments leave the class undecided.

    Raises:
        ValueError: for alpha <= 1, beta <= 0, non-finite or non-numeric arguments (bools included).
    """
    alpha, beta = _arguments(alpha, beta)
    if isinstance(alpha, float):
        return "hard" if beta < 1 else "easy" if beta < 2 - 1 / alpha else "super-easy"
    task = _task(alpha, beta)
    return task.name if isinstance(task, sp.Symbol) else task


@dataclasses.dataclass(frozen=True)
class ScalingExponents:
    r"""The scaling exponents of one model at capacity ``alpha`` and source ``beta`` (see the module docstring).

    All exponents are positive rates. Numeric ``alpha``, ``beta`` give Python floats; symbolic ones give sympy
    expressions (``Piecewise`` where the task class is undecided). :attr:`notes` lists the caveats of the regime.

    Attributes:
        alpha: capacity, $\lambda_k = k^{-\alpha}$.
        beta: source, $\lambda_k w_k^{*2} \propto k^{-\alpha\beta-1}$.
        regime: ``"lazy"`` or ``"rich"``.
        task: ``"hard"``, ``"easy"`` or ``"super-easy"`` (or a sympy ``Piecewise``), see :func:`task_difficulty`.
        time: $L \propto t^{-\text{time}}$ at infinite width and data.
        width: $L \propto N^{-\text{width}}$ as $t \to \infty$ with infinite data.
        data: $L \propto P^{-\text{data}}$ at infinite width, $t \to \infty$ (ridgeless).
        compute: $L^* \propto C^{-\text{compute}}$ at the compute optimum, $C = N t$.
        width_compute: $N^* \propto C^{\text{width\_compute}}$.
        time_compute: $t^* \propto C^{\text{time\_compute}}$.
    """

    alpha: float | sp.Expr
    beta: float | sp.Expr
    regime: str
    task: str | sp.Expr
    time: float | sp.Expr
    width: float | sp.Expr
    data: float | sp.Expr
    compute: float | sp.Expr
    width_compute: float | sp.Expr
    time_compute: float | sp.Expr

    @property
    def notes(self) -> tuple[str, ...]:
        """The caveats that apply to these exponents (which are derived, which are heuristic or inherited)."""
        keys = ("all",) if self.regime == "lazy" else ("all", "rich_time", "rich_data", "rich_compute")
        return tuple(_NOTES[key] for key in keys)

    def as_dict(self) -> dict:
        """The fields by name.

        Returns:
            ``{field name: value}`` in field order (values not copied).
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def symbolic(self) -> ScalingExponents:
        """The formulas of this regime in the symbols :data:`ALPHA`, :data:`BETA`.

        Returns:
            ``symbolic(self.regime)``.
        """
        return symbolic(self.regime)


def exponents(alpha, beta, regime: str = "lazy") -> ScalingExponents:
    r"""The scaling exponents of the random-feature (``"lazy"``) or rich two-layer linear (``"rich"``) model.

    Args:
        alpha: capacity, $\lambda_k = k^{-\alpha}$: a real number or sympy expression > 1.
        beta: source, $\lambda_k w_k^{*2} \propto k^{-\alpha\beta-1}$: a real number or sympy expression > 0.
        regime: ``"lazy"`` (random features, population gradient descent) or ``"rich"`` (two-layer linear network
            with feature learning, arXiv 2409.17858).

    Returns:
        A :class:`ScalingExponents`; floats for numeric arguments, sympy expressions if either argument is one.

    Raises:
        ValueError: for alpha <= 1, beta <= 0, non-finite or non-numeric arguments (bools included), or an unknown
            regime; the message names the argument and what to pass.

    Example:
        >>> e = exponents(2, 0.5, "rich")
        >>> e.task, round(e.time, 4), e.compute
        ('hard', 0.6667, 0.4)
    """
    alpha, beta = _arguments(alpha, beta)
    regime = _regime(regime)
    values = (time_exponent(alpha, beta, regime), width_exponent(alpha, beta), data_exponent(alpha, beta),
              *compute_exponents(alpha, beta, regime))
    if isinstance(alpha, float):
        values = tuple(float(v) for v in values)
    time, width, data, compute, width_compute, time_compute = values
    return ScalingExponents(alpha=alpha, beta=beta, regime=regime, task=task_difficulty(alpha, beta), time=time,
                            width=width, data=data, compute=compute, width_compute=width_compute,
                            time_compute=time_compute)


def symbolic(regime: str = "lazy") -> ScalingExponents:
    r"""The exponents as sympy formulas in :data:`ALPHA`, :data:`BETA` (positive symbols; valid for alpha > 1).

    Substitute numbers with ``expr.subs({ALPHA: a, BETA: b})``; the ``Piecewise`` branches then collapse.

    Args:
        regime: ``"lazy"`` or ``"rich"``.

    Returns:
        ``exponents(ALPHA, BETA, regime)``.
    """
    return exponents(ALPHA, BETA, regime)
