"""Neural scaling laws: predicted exponents, the solvable models that realize them, and measured exponents.

- :func:`exponents`: the predicted exponents of the loss in time, width, data and compute (lazy / rich), numeric or
  symbolic in (α, β) (:mod:`limits.scaling.exponents`; derivations in docs/theory/scaling.md).
- :func:`solve`: the solved dynamics of the random-feature model (deterministic equivalent) and of the two-layer
  linear model with feature learning (N = ∞) of Bordelon, Atanasov & Pehlevan (arXiv 2402.01092, 2409.17858).
- :func:`simulate`: the same models at finite width, trained step by step over an ensemble of seeds.
- :func:`fit`: measured exponents (windowed log-log slopes with intervals, the asymptotic exponent, the
  compute-optimal frontier of a grid of widths) of any :class:`~limits.Trajectory`.
"""

from __future__ import annotations

# Eager on purpose: the submodules ``exponents``, ``fit``, ``simulate`` and ``solve`` share their names with the
# functions they define, and importing a submodule binds its name on the package; importing them here first keeps
# ``limits.scaling.exponents`` the function whatever is imported later. (``import limits`` stays light: it loads
# this package lazily.)
from .exponents import ScalingExponents, exponents, symbolic, task_difficulty
from .fit import DecayFit, ExponentFit, FrontierFit, fit
from .problem import MODELS
from .simulate import simulate
from .solve import solve
from .task import PowerLawTask, power_law_task

__all__ = ["MODELS", "DecayFit", "ExponentFit", "FrontierFit", "PowerLawTask", "ScalingExponents", "exponents", "fit",
           "power_law_task", "simulate", "solve", "symbolic", "task_difficulty"]
