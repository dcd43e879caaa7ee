"""Feature-learning infinite-width limit: discrete-time DMFT (Bordelon & Pehlevan).

:func:`solve_dmft` resolves a parametrization and dispatches to the deep-linear
kernel equations (:mod:`limits.dmft.linear`), the JAX Monte Carlo fixed point
(:mod:`limits.dmft.solver`) or its Numba twin (:mod:`limits.dmft._numba`).
The equations are derived in ``docs/theory/dmft.md``.
"""

from .api import solve_dmft

__all__ = ["solve_dmft"]
