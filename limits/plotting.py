"""Matplotlib helpers (Agg canvas, no pyplot state) used by :mod:`limits.analysis`.

Every function draws on a fresh :class:`matplotlib.figure.Figure`, saves it to
``path`` and returns the path, so it works headless and in threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "save", "loglog_fit", "plot_loss_curves"]


def new_figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float] = (4.2, 3.4)):
    """Figure with an ``nrows x ncols`` grid of axes (always a 2-D array of axes)."""
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig: Figure, path, dpi: int = 130) -> Path:
    """Save ``fig`` to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def loglog_fit(ax, x, y, yerr=None, fit=None, *, label: str = "", color=None, marker: str = "o", guide: float | None = None):
    """Points ``y(x)`` on log-log axes with error bars, the fitted power law and an optional slope guide.

    ``fit`` is a :class:`limits.analysis.fits.PowerLawFit` (drawn solid); ``guide``
    an expected exponent drawn dashed through the first finite point.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    text = label if fit is None else f"{label} ({fit.exponent:+.2f})"
    line = ax.errorbar(x, y, yerr=yerr, fmt=marker, color=color, label=text, capsize=2, ms=4)
    color = line[0].get_color()
    if fit is not None:
        xs = np.geomspace(x.min(), x.max(), 50)
        ax.plot(xs, fit.predict(xs), "-", color=color, lw=1, alpha=0.8)
    if guide is not None:
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            x0, y0 = x[ok][0], y[ok][0]
            xs = np.geomspace(x.min(), x.max(), 50)
            ax.plot(xs, y0 * (xs / x0) ** guide, "--", color=color, lw=0.8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return color


def plot_loss_curves(trajectories: Mapping[str, object], path, *, title: str = "", log: bool = True) -> Path:
    """Train loss vs step for labelled trajectories (standard errors shaded when known; infinite-width limits drawn
    black and dashed on top; a width-N theory, ``solve_dmft(..., width=N)``, dotted with its predicted spread of
    single networks, +-1 ``loss_std``, hatched)."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    for label, traj in trajectories.items():
        loss = np.asarray(traj.loss)
        t = np.arange(loss.shape[0])
        meta = getattr(traj, "meta", {})
        limit = meta.get("width") == float("inf")
        theory = bool(getattr(traj, "width_corrections", ()))
        style = dict(color="k", ls="--", zorder=3) if limit else (dict(ls=":", zorder=3) if theory else {})
        line = ax.plot(t, loss, label=label, **style)[0]
        if theory and traj.loss_std is not None:
            sd = np.asarray(traj.loss_std)
            ax.fill_between(t, np.maximum(loss - sd, loss * 1e-3), loss + sd, facecolor="none", hatch="///",
                            edgecolor=line.get_color(), lw=0, label=f"{label}: +-1 sd of single networks")
        err = getattr(traj, "loss_stderr", None)
        if err is not None:
            err = np.asarray(err)
            ax.fill_between(t, loss - 2 * err, loss + 2 * err, color=line.get_color(), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def finish(ax, xlabel: str, ylabel: str, title: str = "", legend: bool = True) -> None:
    """Label an axis and add a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def widths_ticks(ax, widths: Sequence[int]) -> None:
    """Mark the simulated widths on a log x-axis."""
    ax.set_xticks(list(widths))
    ax.set_xticklabels([str(w) for w in widths])
    ax.minorticks_off()
