"""One validated description of a scaling-model run, shared by :func:`~limits.scaling.solve` and
:func:`~limits.scaling.simulate` so that the two always describe the same model.

Models (population loss :math:`\\tfrac12 E[(f - y)^2]` on the power-law task of :mod:`limits.scaling.task`):

- ``"random_features"``: :math:`f = w \\cdot A\\psi/\\sqrt N`, :math:`A \\in \\mathbb{R}^{N\\times M}` frozen,
  :math:`A_{ik} \\sim N(0,1)`, :math:`w(0) = 0`, raw learning rate ``lr`` (the lazy model).
- ``"two_layer_linear"``: :math:`f = w \\cdot A\\psi / (\\gamma_0 N)`, :math:`A(0) \\sim N(0,1)`, :math:`w(0) = 0`,
  both layers trained with raw learning rate :math:`\\mathrm{lr}\\,\\gamma_0^2 N` (the package's mean-field
  convention), the update of :math:`A` projected onto the row space of :math:`A(0)` as in Bordelon, Atanasov &
  Pehlevan (arXiv 2409.17858): :math:`\\Delta A = -\\mathrm{lr}\\,\\gamma_0^2 N\\, \\partial_A\\mathcal L\\,
  A(0)^\\top A(0)/N`. Its :math:`\\gamma_0 \\to 0` limit is ``"random_features"`` step for step.

``data=None`` trains on the population loss (fresh data every step with an infinite batch: no sampling noise);
``data=P`` trains full batch on ``P`` fixed samples :math:`\\psi_\\mu \\sim N(0, \\Lambda)`, ``y = w^* \\cdot \\psi``,
and ``loss`` is still the population (test) loss.
"""

from __future__ import annotations

import dataclasses
import math

from .. import checks
from .task import PowerLawTask, check_exponents, check_modes, power_law_task

__all__ = ["MODELS", "Problem", "problem"]

MODELS = ("random_features", "two_layer_linear")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A validated run: the model, the task and the training hyperparameters (see the module doc)."""

    model: str
    task: PowerLawTask
    width: float
    data: float
    gamma0: float
    lr: float
    steps: int

    @property
    def rich(self) -> bool:
        return self.model == "two_layer_linear"

    def meta(self) -> dict:
        """The ``Trajectory.meta`` entries that describe this run."""
        return {
            "model": self.model, "alpha": self.task.alpha, "beta": self.task.beta, "modes": self.task.modes,
            "width": self.width, "data": None if math.isinf(self.data) else int(self.data),
            "gamma0": self.gamma0, "lr": self.lr, "steps": self.steps, "loss": "population",
        }


def _count_or_none(value, name: str) -> float:
    return math.inf if value is None else float(checks.width(value, name))


def problem(model, *, alpha, beta, width=None, data=None, gamma0=None, lr=0.5, steps=1000, modes=None) -> Problem:
    """Validate the arguments of :func:`~limits.scaling.solve` / :func:`~limits.scaling.simulate`.

    Args:
        model: ``"random_features"`` or ``"two_layer_linear"``.
        alpha, beta: capacity (> 1) and source (> 0) exponents.
        width: the number of features N (a positive integer, ``math.inf`` or None for N = ∞).
        data: the number of training points P, or None for the population loss.
        gamma0: richness of ``"two_layer_linear"`` (> 0, required there); must be None for ``"random_features"``.
        lr: learning rate in (0, 1] (the top eigenvalue of the spectrum is 1).
        steps: number of gradient steps, >= 1.
        modes: number of modes M (None: enough for the run, see :func:`~limits.scaling.task.modes_needed`).

    Returns:
        :class:`Problem`. Bad arguments raise ``ValueError`` / ``TypeError`` naming the argument and the fix.
    """
    model = checks.choice(model, "model", MODELS)
    alpha, beta = check_exponents(alpha, beta)
    width, data = _count_or_none(width, "width"), _count_or_none(data, "data")
    lr = checks.positive(lr, "lr")
    if lr > 1.0:
        raise ValueError(f"lr must be in (0, 1] (the largest eigenvalue of the spectrum is 1), got {lr!r}")
    steps = checks.integer(steps, "steps", 1)
    if model == "random_features":
        if gamma0 is not None:
            raise checks.inapplicable("gamma0", "the random-feature model has no feature learning; use "
                                      "model='two_layer_linear' for a richness gamma0")
        gamma0 = 0.0
    else:
        if gamma0 is None:
            raise ValueError("model='two_layer_linear' needs a richness gamma0 > 0 (gamma0 -> 0 is the "
                             "random-feature model)")
        gamma0 = checks.positive(gamma0, "gamma0")
    modes = check_modes(modes, alpha, beta, lr=lr, steps=steps, width=width, data=data, rich=model != "random_features")
    return Problem(model, power_law_task(alpha, beta, modes), width, data, gamma0, lr, steps)
