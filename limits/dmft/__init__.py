"""Feature-learning infinite-width limit: discrete-time DMFT (Bordelon & Pehlevan).

:func:`solve_dmft` resolves a parametrization and dispatches to the deep-linear
kernel equations (:mod:`limits.dmft.linear`), the JAX Monte Carlo fixed point
(:mod:`limits.dmft.solver`) or its Numba twin (:mod:`limits.dmft._numba`), and residual
tables to :mod:`limits.dmft.resnet` (linear, finite or infinite depth) and
:mod:`limits.dmft.resnet_mc` (nonlinear, finite depth, Monte Carlo). All Monte Carlo
problems share the fixed-point driver of :mod:`limits.dmft.iteration`.
The equations are derived in ``docs/theory/dmft.md`` and ``docs/theory/resnet_dmft.md``.
"""

from .api import solve_dmft

__all__ = ["solve_dmft"]
