"""Finite-width networks in the package conventions (DESIGN.md), simulated with JAX.

:func:`simulate` trains an ensemble of networks built from
``Parametrization.instantiate`` and returns a :class:`limits.Trajectory`;
:class:`Simulation` holds its numerical options (``method=``);
:mod:`limits.finite.network` holds the pure forward/backward/kernel functions.
Importing this package changes no global JAX setting.
"""

from . import network
from .options import Simulation
from .simulate import RECORDABLE, SimulationDiverged, simulate

__all__ = ["simulate", "Simulation", "SimulationDiverged", "RECORDABLE", "network"]
