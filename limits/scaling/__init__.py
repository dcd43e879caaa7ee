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

import importlib

_LAZY = {
    "ScalingExponents": "exponents", "exponents": "exponents", "task_difficulty": "exponents",
    "symbolic": "exponents", "ExponentFit": "fit", "FrontierFit": "fit", "fit": "fit", "MODELS": "problem",
    "simulate": "simulate", "solve": "solve", "PowerLawTask": "task", "power_law_task": "task",
}
"""Public name -> submodule; submodules load on first use (``exponents`` needs sympy, ``fit`` scipy.stats)."""

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
