"""Bordelon & Pehlevan 2022 (arXiv 2205.09653), Figs. 2-3 in spirit: loss and
kernel-alignment dynamics for a sweep of the richness gamma0, DMFT against
finite-width networks.

A two-layer (depth 1) tanh muP network is trained on the teacher task for several gamma0.
Solid lines: the DMFT limit (:func:`limits.solve_dmft`); markers: ensembles of
finite networks (:func:`limits.simulate`). Left: train loss (larger gamma0
learns faster after the lazy start). Right: alignment of the NTK with the
target, ``A(t) = y^T K y / (|K|_F |y|^2)``, which grows with feature learning
and stays flat as gamma0 -> 0 (the kernel regime).
"""

from pathlib import Path

import numpy as np

import limits
from limits.finite import Simulation
from limits.plotting import finish, new_figure, save


def alignment(K: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kernel-target alignment for kernels of shape (..., P, P)."""
    return np.einsum("i,...ij,j->...", y, K, y) / (np.linalg.norm(K, axis=(-2, -1)) * (y @ y))


def make(out: Path, quick: bool = False) -> list[Path]:
    depth, steps, lr = 1, (15 if quick else 80), 0.5
    gammas = [0.1, 1.0] if quick else [0.05, 0.5, 1.0, 2.0]
    width, seeds = (256, 2) if quick else (1024, 8)
    samples = 1024 if quick else 8192
    data = limits.datasets.teacher(P=8, D=4, seed=0)
    every = max(1, steps // 8)
    record_steps = list(range(0, steps + 1, every))
    fig, axes = new_figure(2, size=(4.4, 3.6))
    ax_loss, ax_align = axes[0]
    for i, g in enumerate(gammas):
        color = f"C{i}"
        kw = dict(X=data.X, y=data.y, activation="tanh", gamma0=g, lr=lr, steps=steps)
        limit = limits.solve_dmft("mup", depth, **kw, method=limits.dmft.MonteCarlo(samples=samples), progress=False)
        sim = limits.simulate("mup", depth, width, **kw, seeds=seeds, record=("ntk",),
                              method=Simulation(record_steps=record_steps), progress=False)
        t = np.arange(steps + 1)
        ax_loss.plot(t, limit.loss, "-", color=color, label=rf"$\gamma_0={g:g}$ DMFT")
        ax_loss.plot(t[::every], np.asarray(sim.loss)[::every], "o", ms=4, mfc="none", color=color,
                     label=f"N={width}" if i == 0 else None)
        if limit.ntk is not None:
            ax_align.plot(t, alignment(np.asarray(limit.ntk), data.y), "-", color=color, label=rf"$\gamma_0={g:g}$")
        ax_align.plot(record_steps, alignment(np.asarray(sim.ntk), data.y), "o", ms=4, mfc="none", color=color)
    ax_loss.set_yscale("log")
    finish(ax_loss, "step", "train loss", "loss (lines: DMFT, markers: finite width)")
    finish(ax_align, "step", r"NTK-target alignment $A(t)$", "kernel alignment")
    return [save(fig, out / f"bp2022_gamma_sweep.{ext}") for ext in ("png", "pdf")]
