r"""Measured scaling exponents: windowed log-log slopes, the asymptotic exponent, the compute-optimal frontier.

Exponents are reported as positive decay rates, as :func:`~limits.scaling.exponents` predicts them:
:math:`\mathcal L \propto x^{-e}`.

- A :class:`~limits.Trajectory` (``against="time"``): the loss against the step ``t``. The rate over a window
  :math:`[t_1, t_2]` is the least-squares slope of :math:`\log\mathcal L` on :math:`\log t` at 24 log-spaced steps
  of the window. Its interval: with an ensemble of at least 3 seeds (``losses``), the spread of the per-seed
  rates (Student t, seeds - 1 degrees of freedom: the steps of one seed are strongly correlated, so their
  residuals say nothing about the error); otherwise the residual interval of the line (a deterministic curve:
  it measures how far the window is from a power law). Local rates come from windows of ``span`` decades.
- A grid ``{N: Trajectory}`` (``against="width"``): the loss at ``step`` (default: the last) against N.
- A grid (``against="compute"``): the compute-optimal frontier with :math:`C = N t`: for each C,
  :math:`\mathcal L^*(C) = \min_N \mathcal L_N(C/N)`, with :math:`N^*` refined by a parabola in
  :math:`(\log N, \log\mathcal L)` through the best width and its neighbours; only budgets whose optimum is an
  interior width of the grid are used. Power laws are fitted to :math:`\mathcal L^*`, :math:`N^*` and
  :math:`t^* = C/N^*`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np
from scipy import stats

from .. import checks
from ..analysis.fits import PowerLawFit, fit_power_law
from ..trajectory import Trajectory

__all__ = ["DecayFit", "ExponentFit", "FrontierFit", "fit"]

_POINTS = 24


@dataclasses.dataclass(frozen=True)
class ExponentFit:
    """A measured decay rate :math:`\\mathcal L \\propto x^{-e}` with its interval and the local rates.

    Attributes:
        exponent: the rate over ``window``.
        ci: its two-sided ``confidence`` interval.
        window: ``(x_1, x_2)`` of the fit.
        against: ``"time"`` or ``"width"``.
        local_x, local_rate, local_lo, local_hi: local rates at window centres (n,) with their intervals.
        confidence: the interval's level.
    """

    exponent: float
    ci: tuple[float, float]
    window: tuple[float, float]
    against: str
    local_x: np.ndarray
    local_rate: np.ndarray
    local_lo: np.ndarray
    local_hi: np.ndarray
    confidence: float

    def contains(self, value: float, tol: float = 0.0) -> bool:
        """True if ``value`` is within the interval widened by ``tol`` on each side."""
        return self.ci[0] - tol <= value <= self.ci[1] + tol

    def agrees(self, predicted: float, tol: float = 0.05) -> bool:
        """The issue's criterion: within ``tol`` of ``predicted`` or inside the interval, whichever is larger."""
        return abs(self.exponent - predicted) <= tol or self.contains(predicted)

    def __str__(self) -> str:
        return (f"{self.exponent:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}] ({self.against} "
                f"{self.window[0]:g}..{self.window[1]:g})")


@dataclasses.dataclass(frozen=True)
class DecayFit(PowerLawFit):
    """A power-law fit reported as a decay rate, ``y ~ prefactor * x**-exponent``: ``exponent`` is positive for a
    decay, ``ci`` is its interval, and :meth:`predict` gives the fitted curve."""

    def predict(self, x) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** -self.exponent

    @classmethod
    def of(cls, fit: PowerLawFit) -> "DecayFit":
        """The rate view of ``fit`` (``y ~ prefactor x**exponent``): the same line, exponent and interval negated."""
        return cls(**{**dataclasses.asdict(fit), "exponent": -fit.exponent, "ci": (-fit.ci[1], -fit.ci[0])})


@dataclasses.dataclass(frozen=True)
class FrontierFit:
    """The compute-optimal frontier of a grid of widths (``C = N t``).

    Attributes:
        compute: rate of :math:`\\mathcal L^* \\propto C^{-e}` (a :class:`DecayFit`: its ``exponent`` is positive,
            its ``predict(C)`` the fitted frontier).
        width_compute, time_compute: fits of :math:`N^* \\propto C^{e}` and :math:`t^* \\propto C^{e}`.
        budgets, best_loss, best_width, best_time: the frontier points used (n,).
    """

    compute: DecayFit
    width_compute: PowerLawFit
    time_compute: PowerLawFit
    budgets: np.ndarray
    best_loss: np.ndarray
    best_width: np.ndarray
    best_time: np.ndarray

    def __str__(self) -> str:
        return f"L* ~ C^-{self.compute}, N* ~ C^{self.width_compute}, t* ~ C^{self.time_compute}"


def _log_points(lo: float, hi: float, n: int = _POINTS) -> np.ndarray:
    return np.unique(np.round(np.geomspace(lo, hi, n)).astype(int))


def _rate(x: np.ndarray, curves: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Decay rate of the mean curve over ``x`` and its interval; ``curves`` (S, n), one row per seed (S = 1: a
    deterministic curve)."""
    mean = curves.mean(axis=0)
    line = fit_power_law(x, mean, confidence=confidence)
    rate = -line.exponent
    if curves.shape[0] >= 3:
        per_seed = np.array([-fit_power_law(x, c).exponent for c in curves])
        half = stats.t.ppf(0.5 + confidence / 2, per_seed.size - 1) * per_seed.std(ddof=1) / math.sqrt(per_seed.size)
        return rate, rate - half, rate + half
    return rate, -line.ci[1], -line.ci[0]


def _time_fit(traj: Trajectory, window, span: float, confidence: float) -> ExponentFit:
    T = traj.steps
    if T < 10:
        raise ValueError(f"a time exponent needs at least 10 steps, got a trajectory of {T}")
    curves = np.asarray(traj.losses if traj.losses is not None else traj.loss[None, :], dtype=float)
    lo, hi = (max(1.0, T / 10.0), float(T)) if window is None else window
    if not (1 <= lo < hi <= T):
        raise ValueError(f"window must satisfy 1 <= t1 < t2 <= steps={T}, got {window!r}")
    t = _log_points(lo, hi)
    rate, r_lo, r_hi = _rate(t, curves[:, t], confidence)
    centers, rates, los, his = [], [], [], []
    half = 10.0 ** (span / 2)
    for c in np.geomspace(max(1.0, half), T / half, max(2, int(4 * math.log10(T / half**2) + 1))) if T > half**2 else []:
        tw = _log_points(c / half, c * half, 12)
        if tw.size >= 3:
            r = _rate(tw, curves[:, tw], confidence)
            centers.append(c), rates.append(r[0]), los.append(r[1]), his.append(r[2])
    return ExponentFit(rate, (r_lo, r_hi), (float(t[0]), float(t[-1])), "time", np.array(centers), np.array(rates),
                       np.array(los), np.array(his), confidence)


def _grid(grid: Mapping) -> tuple[np.ndarray, list]:
    if not isinstance(grid, Mapping) or len(grid) < 3:
        raise ValueError("a width or compute fit needs a mapping {width N: Trajectory} with at least 3 finite widths")
    widths = np.array([checks.width(n, "width", infinite=False) for n in grid], dtype=float)
    order = np.argsort(widths)
    trajs = [list(grid.values())[i] for i in order]
    if not all(isinstance(t, Trajectory) for t in trajs):
        raise TypeError("the grid's values must be Trajectory objects")
    return widths[order], trajs


def _width_fit(grid: Mapping, step, confidence: float) -> ExponentFit:
    widths, trajs = _grid(grid)
    T = min(t.steps for t in trajs)
    step = T if step is None else checks.integer(step, "step", 1, T)
    final = np.array([t.loss[step] for t in trajs])
    line = fit_power_law(widths, final, confidence=confidence)
    return ExponentFit(-line.exponent, (-line.ci[1], -line.ci[0]), (widths[0], widths[-1]), "width",
                       widths, np.full(widths.size, np.nan), np.full(widths.size, np.nan), np.full(widths.size, np.nan),
                       confidence)


def _frontier(grid: Mapping, confidence: float) -> FrontierFit:
    widths, trajs = _grid(grid)
    T = min(t.steps for t in trajs)
    budgets = np.geomspace(widths[0], widths[-1] * T, 60)
    logL = np.full((widths.size, budgets.size), np.inf)
    for i, (n, tr) in enumerate(zip(widths, trajs)):
        t = budgets / n
        ok = (t >= 1) & (t <= T)
        logL[i, ok] = np.interp(np.log(t[ok]), np.log(np.arange(1, T + 1)), np.log(tr.loss[1: T + 1]))
    keep, L, Ns = [], [], []
    for j in range(budgets.size):
        i = int(np.argmin(logL[:, j]))
        if 0 < i < widths.size - 1 and np.all(np.isfinite(logL[i - 1: i + 2, j])):
            x, y = np.log(widths[i - 1: i + 2]), logL[i - 1: i + 2, j]
            a, b, c = np.polyfit(x, y, 2)
            xs = -b / (2 * a) if a > 0 else x[1]
            xs = float(np.clip(xs, x[0], x[2]))
            keep.append(budgets[j]), Ns.append(math.exp(xs)), L.append(math.exp(np.polyval([a, b, c], xs)))
    if len(keep) < 3:
        raise ValueError("the compute-optimal width is at the edge of the grid for almost every budget: add smaller "
                         "and larger widths, or more steps")
    C, L, Ns = np.array(keep), np.array(L), np.array(Ns)
    return FrontierFit(DecayFit.of(fit_power_law(C, L, confidence=confidence)), fit_power_law(C, Ns, confidence=confidence),
                       fit_power_law(C, C / Ns, confidence=confidence), C, L, Ns, C / Ns)


def fit(data, *, against=None, window=None, span: float = 0.5, step=None, confidence: float = 0.95):
    """Measured scaling exponents of a trajectory or of a grid of widths (see the module doc).

    Args:
        data: a :class:`~limits.Trajectory` (``against="time"``, the default for it) or a mapping
            ``{width: Trajectory}`` (``against="compute"``, the default for it, or ``"width"``).
        against: ``"time"``, ``"width"`` or ``"compute"``.
        window: ``(t1, t2)`` steps of the asymptotic time fit (default: the last decade, ``(T/10, T)``).
        span: width in decades of the windows of the local rates (time fits).
        step: the step whose loss a width fit uses (default: the last).
        confidence: level of the intervals.

    Returns:
        :class:`ExponentFit` (time, width) or :class:`FrontierFit` (compute).
    """
    confidence = checks.open_unit(confidence, "confidence")
    default = "time" if isinstance(data, Trajectory) else "compute"
    against = checks.choice(default if against is None else against, "against", ("time", "width", "compute"))
    if against == "time":
        if not isinstance(data, Trajectory):
            raise TypeError("a time fit needs one Trajectory (for a grid {N: Trajectory} use against='width' or "
                            "'compute')")
        if window is not None:
            window = tuple(float(checks.positive(v, "window")) for v in window)
            if len(window) != 2:
                raise ValueError(f"window must be (t1, t2), got {window!r}")
        return _time_fit(data, window, checks.positive(span, "span"), confidence)
    if isinstance(data, Trajectory):
        raise TypeError(f"against={against!r} needs a grid {{width N: Trajectory}}, not one Trajectory")
    for name, value in (("window", window),) if against != "time" else ():
        if value is not None:
            raise checks.inapplicable(name, "only time fits take a window")
    if against == "width":
        return _width_fit(data, step, confidence)
    if step is not None:
        raise checks.inapplicable("step", "a compute fit uses every step")
    return _frontier(data, confidence)
