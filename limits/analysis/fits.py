r"""Power-law fits ``y ~ A x^k`` with confidence intervals for the exponent ``k``.

The fit is a (weighted) least-squares line in log-log space,
``log y = log A + k log x``. With error bars ``yerr`` the weights are
``1 / (yerr / y)^2`` (delta method) and the covariance is scaled by the reduced
chi-square when that exceeds 1 (errors underestimate the scatter); the interval
uses the normal quantile. Without error bars the residual variance sets the
scale and the interval uses Student's t with ``n - 2`` degrees of freedom.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from .. import checks

__all__ = ["PowerLawFit", "fit_power_law", "local_slopes", "extrapolate_in_width"]


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """``y ~ prefactor * x**exponent``; ``ci`` is the two-sided ``confidence`` interval of the exponent."""

    exponent: float
    prefactor: float
    stderr: float
    ci: tuple[float, float]
    confidence: float
    n_points: int
    chi2_red: float

    def contains(self, value: float, tol: float = 0.0) -> bool:
        """True if ``value`` lies in the interval widened by ``tol`` on each side."""
        return self.ci[0] - tol <= value <= self.ci[1] + tol

    def predict(self, x) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def __str__(self) -> str:
        lo, hi = self.ci
        return f"{self.exponent:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _clean(x, y, yerr):
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if yerr is not None:
        yerr = np.asarray(yerr, dtype=float).reshape(-1)
        if yerr.shape != y.shape:
            raise ValueError("yerr must have the same length as y")
        keep &= np.isfinite(yerr) & (yerr > 0)
    return x[keep], y[keep], (None if yerr is None else yerr[keep])


def fit_power_law(x, y, yerr=None, *, confidence: float = 0.95) -> PowerLawFit:
    """Fit ``y ~ A x^k`` using the points with positive finite ``x``, ``y`` (and ``yerr``).

    Raises ``ValueError`` if fewer than two usable points remain. With exactly two
    points and no ``yerr`` the interval is infinite.
    """
    confidence = checks.open_unit(confidence, "confidence")
    x, y, yerr = _clean(x, y, yerr)
    n = x.size
    if n < 2 or np.unique(x).size < 2:
        raise ValueError(f"a power-law fit needs at least two distinct positive finite points, got {n}")
    u, v = np.log(x), np.log(y)
    A = np.stack([np.ones_like(u), u], axis=1)
    w = np.ones_like(v) if yerr is None else (y / yerr) ** 2
    AtWA = A.T @ (A * w[:, None])
    coef = np.linalg.solve(AtWA, A.T @ (w * v))
    resid = v - A @ coef
    dof = n - 2
    chi2 = float(np.sum(w * resid**2))
    chi2_red = chi2 / dof if dof > 0 else math.nan
    inv = np.linalg.inv(AtWA)
    if yerr is None:
        if dof == 0:
            se, q = math.inf, math.inf
        else:
            se = math.sqrt(chi2_red * inv[1, 1])
            q = float(stats.t.ppf(0.5 + confidence / 2, dof))
    else:
        scale = max(1.0, chi2_red) if dof > 0 else 1.0
        se = math.sqrt(scale * inv[1, 1])
        q = float(stats.norm.ppf(0.5 + confidence / 2))
    k = float(coef[1])
    half = q * se
    return PowerLawFit(k, float(np.exp(coef[0])), se, (k - half, k + half), confidence, n, chi2_red)


def local_slopes(x, y) -> np.ndarray:
    """Slopes ``d log y / d log x`` between consecutive points, shape (n-1,)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(np.log(y)) / np.diff(np.log(x))


def extrapolate_in_width(widths, means, stderr=None):
    """Least-squares ``v(N) = v_inf + b / N`` per entry, for finite-width ensemble means ``means``
    (n_widths, ...) at ``widths`` (n_widths,). Returns ``v_inf`` (...) and, with the ensembles' standard
    errors ``stderr`` (same shape as ``means``, independent across widths), its standard error."""
    w = np.asarray(widths, dtype=float)
    if w.ndim != 1 or w.size < 2 or not np.all(np.isfinite(w)) or np.any(w <= 0) or np.unique(w).size != w.size:
        raise ValueError(f"widths must be at least two distinct positive finite widths, got {widths!r}")
    if np.shape(means)[:1] != w.shape:
        raise ValueError(f"means must have one row per width: shape ({w.size}, ...), got {np.shape(means)}")
    if stderr is not None and np.shape(stderr) != np.shape(means):
        raise ValueError(f"stderr must have the shape of means {np.shape(means)}, got {np.shape(stderr)}")
    coef = np.linalg.pinv(np.stack([np.ones_like(w), 1.0 / w], axis=1))[0]  # (n_widths,): v_inf = coef @ means
    v_inf = np.tensordot(coef, np.asarray(means, dtype=float), axes=1)
    if stderr is None:
        return v_inf
    se = np.asarray(stderr, dtype=float)
    return v_inf, np.sqrt(np.tensordot(coef**2, se**2, axes=1))
