"""A 2-D slice of abc-parametrization space coloured by regime (TP4's picture).

The slice keeps the input and hidden layers in the DMFT form of the pinned
convention (``a = (0, 1/2, ..., 1/2)``, ``b = 0``) and varies the readout
exponent ``a_{L+1} = theta`` (``b_{L+1} = 0``) and one learning-rate exponent
``c`` shared by all layers. ``ntk`` sits at ``(1/2, 0)`` and ``mup`` at ``(1, -1)``.
As TP4 shows, nontrivial stable parametrizations form a boundary: the kernel
regime is a segment and feature learning a single point of this slice.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .checks import integer
from .parametrization import REGIMES, Parametrization, _exponent

MAX_GRID = 401
"""Most grid points per axis of the slice (each point classifies one table)."""

__all__ = ["phase_slice", "plot_phase_diagram"]


def _rational(value, name: str) -> Fraction:
    """``value`` as an exact Fraction (ints, Fractions, strings such as '1/8', short decimals; see
    :func:`limits.parametrization._exponent`), or an error naming ``name``."""
    expr = _exponent(value, name)
    if not expr.is_Rational:
        raise ValueError(f"{name} must be a rational number, got {expr}")
    return Fraction(int(expr.p), int(expr.q))


def _grid(lo, hi, step, name: str) -> list[Fraction]:
    """Points ``lo, lo + step, ... <= hi`` of one axis, all exact."""
    lo, hi, step = _rational(lo, f"{name}[0]"), _rational(hi, f"{name}[1]"), _rational(step, "step")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if hi <= lo:
        raise ValueError(f"{name} must be (low, high) with low < high, got ({lo}, {hi})")
    count = int((hi - lo) / step)
    if count + 1 > MAX_GRID:
        raise ValueError(f"{name} / step gives {count + 1} points per axis; at most {MAX_GRID}: use a larger step")
    return [lo + k * step for k in range(count + 1)]


def _range(value, name: str) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    return tuple(value)


def phase_slice(depth: int = 2, *, step: Fraction = Fraction(1, 8), theta_range=(0, 2), c_range=(-2, 2)):
    """Regime on the (theta, c) grid. Returns ``(thetas, cs, regimes)`` with
    ``regimes[i, j]`` the regime name at ``(thetas[i], cs[j])``."""
    depth = integer(depth, "depth", 1)
    thetas = _grid(*_range(theta_range, "theta_range"), step, "theta_range")
    cs = _grid(*_range(c_range, "c_range"), step, "c_range")
    half = Fraction(1, 2)
    regimes = np.empty((len(thetas), len(cs)), dtype=object)
    for i, theta in enumerate(thetas):
        a = [0] + [half] * (depth - 1) + [theta]
        for j, c in enumerate(cs):
            p = Parametrization.from_abc(a, [0] * (depth + 1), c)
            regimes[i, j] = p.classify().regime
    return np.array([float(t) for t in thetas]), np.array([float(c) for c in cs]), regimes


_COLORS = {"unstable": "#e0e0e0", "trivial": "#c6dbef", "kernel": "#fd8d3c", "feature_learning": "#d62728"}


def plot_phase_diagram(path, depth: int = 2, *, step: Fraction = Fraction(1, 8)):
    """Save the regime slice as an image at ``path`` (PNG/PDF by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thetas, cs, regimes = phase_slice(depth, step=step)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    index = np.vectorize(REGIMES.index)(regimes).astype(float)
    cmap = ListedColormap([_COLORS[r] for r in REGIMES])
    ax.pcolormesh(thetas, cs, index.T, cmap=cmap, vmin=-0.5, vmax=len(REGIMES) - 0.5, shading="nearest")
    T, C = np.meshgrid(thetas, cs, indexing="ij")
    kernel = regimes == "kernel"
    order = np.argsort(T[kernel])
    ax.plot(T[kernel][order], C[kernel][order], "-", color=_COLORS["kernel"], lw=4, zorder=3)
    fl = regimes == "feature_learning"
    ax.plot(T[fl], C[fl], "*", color=_COLORS["feature_learning"], ms=18, mec="k", zorder=4)
    handles = [Patch(color=_COLORS[r], label=r.replace("_", " ")) for r in REGIMES]
    for name, (x, y) in {"ntk": (0.5, 0.0), "mup": (1.0, -1.0)}.items():
        ax.annotate(name, (x, y), xytext=(x + 0.12, y + 0.25), fontsize=10,
                    arrowprops=dict(arrowstyle="->", lw=0.8), zorder=4)
    ax.set_xlabel(r"readout exponent $a_{L+1}$  ($b_{L+1}=0$)")
    ax.set_ylabel(r"learning-rate exponent $c$ (all layers)")
    ax.set_title(f"abc-parametrizations, depth {depth} (hidden layers in DMFT form)", fontsize=10)
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
