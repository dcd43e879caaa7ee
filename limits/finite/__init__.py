"""Finite-width networks in the package conventions (DESIGN.md), simulated with JAX.

:func:`simulate` trains an ensemble of networks built from
``Parametrization.instantiate`` and returns a :class:`limits.Trajectory`;
:mod:`limits.finite.network` holds the pure forward/backward/kernel functions.
"""

from . import network
from .simulate import RECORDABLE, SimulationDiverged, simulate

__all__ = ["simulate", "SimulationDiverged", "RECORDABLE", "network"]
