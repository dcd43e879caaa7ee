"""Finite-vs-infinite analysis: comparisons, coordinate checks, lr transfer, exponent fits.

- :func:`compare`: deviation of finite-width trajectories from a limit vs width.
- :func:`coord_check`: measured width exponents of feature/output updates vs predicted.
- :func:`transfer`: optimal learning rate vs width (optionally cached on disk, resumable sweeps);
  :func:`depth_transfer` the same over depth; :func:`decay_transfer` over (lr, weight decay) for AdamW/Muon.
- :func:`ensembles`: the same ensemble of networks at several widths (cached, here or on Dask).
- :func:`kernel_commutation`: width-depth commutation of ResNet kernels (Hayou & Yang).
- :func:`fit_power_law`: ``y ~ A x^k`` with a confidence interval for ``k``.
"""

from .compare import Comparison, compare
from .coord_check import CoordCheck, coord_check
from .decay_transfer import DecayTransferResult, decay_transfer
from .depth import KernelCommutation, kernel_commutation
from .ensembles import ensembles
from .fits import PowerLawFit, extrapolate_in_width, fit_power_law, local_slopes
from .transfer import DepthTransferResult, TransferResult, depth_transfer, optimal_lr, transfer

__all__ = [
    "compare",
    "Comparison",
    "coord_check",
    "CoordCheck",
    "ensembles",
    "transfer",
    "depth_transfer",
    "decay_transfer",
    "DecayTransferResult",
    "TransferResult",
    "DepthTransferResult",
    "optimal_lr",
    "kernel_commutation",
    "KernelCommutation",
    "fit_power_law",
    "PowerLawFit",
    "local_slopes",
    "extrapolate_in_width",
]
