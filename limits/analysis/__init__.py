"""Finite-vs-infinite analysis: comparisons, coordinate checks, lr transfer, exponent fits.

- :func:`compare`: deviation of finite-width trajectories from a limit vs width.
- :func:`coord_check`: measured width exponents of feature/output updates vs predicted.
- :func:`transfer`: optimal learning rate vs width (cached, resumable sweeps).
- :func:`fit_power_law`: ``y ~ A x^k`` with a confidence interval for ``k``.
"""

from .compare import Comparison, compare
from .coord_check import CoordCheck, coord_check
from .fits import PowerLawFit, fit_power_law, local_slopes
from .transfer import TransferResult, optimal_lr, transfer

__all__ = [
    "compare",
    "Comparison",
    "coord_check",
    "CoordCheck",
    "transfer",
    "TransferResult",
    "optimal_lr",
    "fit_power_law",
    "PowerLawFit",
    "local_slopes",
]
