"""Feature-learning infinite-width limit: discrete-time DMFT (Bordelon & Pehlevan), marched in time.

:func:`solve_dmft` compiles a parametrization table (:meth:`limits.Parametrization.dmft_limit`) and solves its
DMFT in one causal pass: the Monte Carlo march of :mod:`limits.dmft.march` (any activation; MLPs and residual
networks, :mod:`limits.dmft.monte_carlo`), the deterministic equations of linear networks
(:mod:`limits.dmft.linear`, :mod:`limits.dmft.resnet`), and the layer-time limit of residual networks
(:mod:`limits.dmft.layer_time`). How it solves is chosen with ``method=``: :class:`MonteCarlo` or :class:`Exact`.
The equations are derived in ``docs/theory/dmft.md`` and ``docs/theory/resnet_dmft.md``.
"""

from .api import solve_dmft
from .methods import Exact, MonteCarlo

__all__ = ["solve_dmft", "MonteCarlo", "Exact"]
