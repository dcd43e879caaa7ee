"""``limits.scaling.solve``: the solved (deterministic, N → ∞ or averaged over the random features) dynamics of
the scaling models of :mod:`limits.scaling.problem`.

- ``"random_features"``, any width: the deterministic equivalent of the expected population loss over the
  random features (and, with ``data=P``, over the samples), exact as :math:`N, P, M \\to \\infty` with errors
  :math:`O(1/N, 1/P)`: :mod:`limits.scaling.random_features` (population loss) and
  :mod:`limits.scaling.finite_data` (full batch on P samples). It is solved directly at every step below 16 and at 40 log-spaced steps per decade
  beyond, and interpolated in between by a cubic spline in (log t, log L) (the steps solved directly are in
  ``diagnostics["solved_steps"]``; ``tests/test_scaling.py`` checks the interpolation against direct solves).
- ``"two_layer_linear"`` at ``width=None`` (N = ∞): the deterministic recursion of :mod:`limits.scaling.two_layer`,
  every step.

Not solved (a ``ValueError`` says so and points to :func:`~limits.scaling.simulate`): the two-layer model at finite
width, whose initial kernel :math:`A(0)^\\top A(0)/N` stays random, and with finite data.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..trajectory import Trajectory
from . import random_features as rf
from .finite_data import population_loss_with_data
from .problem import Problem, problem as make_problem
from .two_layer import infinite_width_loss

__all__ = ["solve"]


def solve(model, *, alpha, beta, width=None, data=None, gamma0=None, lr=0.5, steps=1000, modes=None,
          progress=True) -> Trajectory:
    """The solved population-loss dynamics of a scaling model.

    Args:
        model: ``"random_features"`` (lazy) or ``"two_layer_linear"`` (feature learning, richness ``gamma0``).
        alpha: capacity, > 1 (:math:`\\lambda_k = k^{-\\alpha}`).
        beta: source, > 0 (:math:`\\lambda_k (w^*_k)^2 \\propto k^{-\\alpha\\beta-1}`).
        width: number of features N (None or ``math.inf``: N = ∞).
        data: number of training points P (random features only), or None (population loss, no sampling noise).
        gamma0: richness of ``"two_layer_linear"`` (required there, rejected for ``"random_features"``).
        lr: learning rate in (0, 1].
        steps: gradient steps.
        modes: spectrum truncation M (None: enough for the run; too few raises with the number needed).
        progress: a tqdm bar on the two-layer recursion.

    Returns:
        :class:`~limits.Trajectory` with the expected population loss in ``loss`` (steps+1,), ``predictions`` empty
        (steps+1, 0), ``meta["solver"] = "scaling.solve"`` and the run's description; ``diagnostics`` carries
        ``width_floor`` (random features on the population loss: the loss as t → ∞) or ``kernel_growth``,
        ``sharpness`` and ``kernel_truncation`` (two-layer).
    """
    prob = make_problem(model, alpha=alpha, beta=beta, width=width, data=data, gamma0=gamma0, lr=lr, steps=steps,
                        modes=modes)
    start = time.perf_counter()
    if prob.rich:
        if math.isfinite(prob.data):
            raise ValueError("the two-layer model is solved on the population loss only (data=None); for P training "
                             "points use limits.scaling.simulate(..., data=P)")
        if math.isfinite(prob.width):
            raise ValueError("the two-layer model is solved at infinite width only (width=None): at finite width its "
                             "initial kernel A(0)^T A(0)/N stays random; use limits.scaling.simulate for width N")
        loss, diagnostics = infinite_width_loss(prob, progress=progress)
    else:
        loss, diagnostics = _random_features(prob)
    diagnostics["wall_s"] = time.perf_counter() - start
    meta = {"solver": "scaling.solve", **prob.meta()}
    return Trajectory(loss=loss, predictions=np.zeros((loss.size, 0)), meta=meta, diagnostics=diagnostics)


def _random_features(prob: Problem) -> tuple[np.ndarray, dict]:
    """Expected population loss of the random-feature model at every step (see the module doc)."""
    from scipy.interpolate import CubicSpline

    modes = rf.quadrature_modes(prob.task)
    solved = rf.solved_steps(prob.steps)
    if math.isfinite(prob.data):
        values = population_loss_with_data(modes, solved, prob.lr, prob.width, prob.data)
    else:
        values = rf.population_loss(modes, solved, prob.lr, prob.width)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise FloatingPointError("the deterministic equivalent returned a non-positive or non-finite loss; this is a "
                                 "bug for lr <= 1: please report the arguments")
    loss = np.empty(prob.steps + 1)
    loss[solved] = values
    late = solved[solved >= 1]
    if late.size > 3:
        spline = CubicSpline(np.log(late), np.log(values[solved >= 1]))
        fill = np.setdiff1d(np.arange(1, prob.steps + 1), late)
        loss[fill] = np.exp(spline(np.log(fill)))
    diagnostics = {"solved_steps": solved, "quadrature_modes": modes.eigenvalues.size}
    if math.isinf(prob.data):  # with finite data the late loss is set by the samples as well
        diagnostics["width_floor"] = rf.width_floor(modes, prob.width)
    return loss, diagnostics
