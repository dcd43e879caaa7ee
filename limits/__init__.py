"""limits: infinite-width limits of neural networks.

A parametrization table (:func:`param`, :class:`Parametrization`) is classified
into its limit (unstable, trivial, kernel, feature learning); the kernel limit
(:func:`solve_kernel`) and the feature-learning DMFT (:func:`solve_dmft`) are
solved and compared with finite-width networks built from the same table
(:func:`simulate`, :func:`compare`, :func:`coord_check`, :func:`transfer`).
All solvers return a :class:`Trajectory`.

Heavy submodules (JAX solvers) are imported lazily on first use.
"""

from __future__ import annotations

import importlib

from . import data as datasets
from .parametrization import Parametrization, param
from .trajectory import Trajectory

__version__ = "0.1.0"

_LAZY = {
    "solve_kernel": "limits.kernels",
    "solve_dmft": "limits.dmft",
    "simulate": "limits.finite",
    "compare": "limits.analysis",
    "coord_check": "limits.analysis",
    "ensembles": "limits.analysis",
    "transfer": "limits.analysis",
    "depth_transfer": "limits.analysis",
    "decay_transfer": "limits.analysis",
    "kernels": "limits.kernels",
    "dmft": "limits.dmft",
    "sweep": "limits.sweeps",
    "SweepResult": "limits.sweeps",
    "local_cluster": "limits.sweeps",
    "scaling": "limits.scaling",
}

__all__ = ["Parametrization", "Trajectory", "datasets", "param", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == module.__name__.rsplit(".", 1)[-1] else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'limits' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
