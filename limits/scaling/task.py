r"""The power-law task of the solvable scaling models: spectrum, target and the modes a run needs.

Features :math:`\psi \in \mathbb{R}^M` have covariance :math:`\Lambda = \mathrm{diag}(\lambda_k)`,
:math:`\lambda_k = k^{-\alpha}` (capacity :math:`\alpha > 1`, so :math:`\operatorname{tr}\Lambda` stays finite as
:math:`M \to \infty`; :math:`\lambda_1 = 1`). The target is :math:`y = w^* \cdot \psi` with
:math:`\lambda_k (w^*_k)^2 = k^{-\alpha\beta - 1} / Z` (source :math:`\beta > 0`), :math:`w^*_k \ge 0`, and
:math:`Z = \sum_{k \le M} k^{-\alpha\beta-1}`, so the population loss of the zero function is
:math:`\tfrac12 E[y^2] = \tfrac12`. We write :math:`u_k = \lambda_k^{1/2} w^*_k` (the target in the whitened basis).

The models are invariant in distribution under sign flips of single features, so the signs of :math:`w^*` do not
matter; they are all positive.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import checks

__all__ = ["PowerLawTask", "power_law_task", "modes_needed"]


@dataclasses.dataclass(frozen=True)
class PowerLawTask:
    """Spectrum and target of the power-law task in ``modes`` modes.

    Attributes:
        alpha: capacity :math:`\\alpha > 1`.
        beta: source :math:`\\beta > 0`.
        modes: number of modes ``M``.
        eigenvalues: :math:`\\lambda_k = k^{-\\alpha}`, shape (M,).
        target: :math:`w^*_k`, shape (M,).
    """

    alpha: float
    beta: float
    modes: int
    eigenvalues: np.ndarray
    target: np.ndarray

    @property
    def whitened_target(self) -> np.ndarray:
        """:math:`u_k = \\lambda_k^{1/2} w^*_k`, shape (M,), with :math:`\\sum_k u_k^2 = 1`."""
        return np.sqrt(self.eigenvalues) * self.target


def check_exponents(alpha, beta) -> tuple[float, float]:
    """Validated ``(alpha, beta)``: finite reals with ``alpha > 1`` and ``beta > 0`` (the checks and messages of
    :func:`limits.scaling.exponents`)."""
    from .exponents import _numeric_argument

    return _numeric_argument(alpha, "alpha"), _numeric_argument(beta, "beta")


def power_law_task(alpha, beta, modes) -> PowerLawTask:
    """The task with :math:`\\lambda_k = k^{-\\alpha}` and :math:`\\lambda_k (w^*_k)^2 = k^{-\\alpha\\beta-1}/Z`.

    Args:
        alpha: capacity, a finite real > 1.
        beta: source, a finite real > 0.
        modes: number of modes M, an integer >= 2.

    Returns:
        :class:`PowerLawTask`. Bad arguments raise ``ValueError`` / ``TypeError`` naming them.
    """
    alpha, beta = check_exponents(alpha, beta)
    modes = checks.integer(modes, "modes", 2)
    k = np.arange(1, modes + 1, dtype=np.float64)
    lam = k**-alpha
    power = k ** (-alpha * beta - 1.0)
    power = power / power.sum()
    return PowerLawTask(alpha, beta, modes, lam, np.sqrt(power / lam))


def modes_needed(alpha: float, beta: float, *, horizon: float, width: float = math.inf, data: float = math.inf,
                 rich: bool = False) -> int:
    r"""The fewest modes that keep a run of gradient-flow time ``horizon = lr * steps`` free of truncation.

    Mode ``k`` is learned once :math:`\lambda_k \tau \gtrsim 1`, so by time :math:`\tau` the modes up to
    :math:`k_*(\tau) = \tau^{1/\alpha}` (lazy) or :math:`\tau^{2/(\alpha(1+\beta))}` (rich, hard task) have been
    learned. A finite width ``N`` or ``P`` data resolve at most :math:`\min(N, P)` modes whatever the time, and
    the models assume :math:`M \gg \min(N, P)` (the floors come from the modes beyond it). So the run resolves
    :math:`k = \min(N, P)` if either is finite, else :math:`k_*`. Truncating at ``M`` leaves out a fraction
    :math:`(k/M)^{\alpha\beta}` of the loss that is left, which steepens the measured slopes. We ask for
    ``M >= 4 k`` (at least 64); :func:`check_modes` picks twice that by default. Asymptotic exponents of hard
    tasks need more (the random-feature solver's cost grows only like log M: pass e.g. ``modes=10**6``).
    """
    finite = [v for v in (width, data) if math.isfinite(v)]
    if finite:
        resolved = min(finite)
    else:
        resolved = max(horizon, 1.0) ** (1.0 / alpha)
        if rich and beta < 1.0:
            resolved = max(resolved, max(horizon, 1.0) ** (2.0 / (alpha * (1.0 + beta))))
    return max(64, int(math.ceil(4.0 * resolved)))


def check_modes(modes, alpha: float, beta: float, *, lr: float, steps: int, width=math.inf, data=math.inf,
                rich: bool = False) -> int:
    """``modes`` validated against :func:`modes_needed` (None: that number); too few raises naming the fix."""
    needed = modes_needed(alpha, beta, horizon=lr * steps, width=width, data=data, rich=rich)
    if modes is None:
        return 2 * needed
    modes = checks.integer(modes, "modes", 2)
    if modes < needed:
        raise ValueError(
            f"modes={modes} is too few for lr*steps={lr * steps:g}, width={width}, data={data}: the run learns or "
            f"resolves modes up to ~{needed // 4}, and truncating the spectrum there changes the exponents; use "
            f"modes >= {needed} (modes=None picks {2 * needed}), or fewer steps"
        )
    return modes
