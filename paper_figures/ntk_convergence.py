"""Jacot, Gabriel & Hongler 2018 (arXiv 1806.07572), Figs. 1-2 in spirit: the NTK
converges with width, at initialization and during training.

Networks in the NTK parametrization (tanh, depth 2) are trained on the teacher
task at growing widths with :func:`limits.simulate`; their empirical NTK at
step 0 and after training is compared with the analytic limiting NTK of
:func:`limits.kernels.mlp`. Left: relative Frobenius deviation from the limit
at init, falling like N^-1/2 (Gaussian fluctuations of an average over N
neurons). Right: relative movement of the NTK during training, vanishing like
N^-1 (dashed guides): the NTK network is the muP network at richness
gamma = 1/sqrt(N), and the kernel moves by O(gamma^2) because the term linear in
gamma averages out (readout sign symmetry), as in Bordelon & Pehlevan's DMFT.
"""

from pathlib import Path

import numpy as np

import limits
from limits.analysis.fits import fit_power_law
from limits.plotting import finish, loglog_fit, new_figure, save


def make(out: Path, quick: bool = False) -> list[Path]:
    depth, steps, lr = 2, (10 if quick else 50), 0.5
    widths = [64, 128, 256] if quick else [64, 128, 256, 512, 1024, 2048]
    seeds = 2 if quick else 8
    data = limits.datasets.teacher(P=8, D=4, seed=0)
    theta = np.asarray(limits.kernels.mlp(depth, "tanh", 1.0, 0.0)(data.X).ntk)
    dev0, dmove = [], []
    for width in widths:
        sim = limits.simulate("ntk", depth, width, X=data.X, y=data.y, activation="tanh", lr=lr, steps=steps,
                              seeds=seeds, record=("ntk",), progress=False)  # at steps (0, steps)
        per_seed = np.asarray(sim.ntk_per_seed)  # (S, K, P, P)
        k0, kT = per_seed[:, 0], per_seed[:, -1]
        dev0.append(np.mean(np.linalg.norm(k0 - theta, axis=(1, 2))) / np.linalg.norm(theta))
        dmove.append(np.mean(np.linalg.norm(kT - k0, axis=(1, 2)) / np.linalg.norm(k0, axis=(1, 2))))
    fig, axes = new_figure(2)
    ax0, ax1 = axes[0]
    loglog_fit(ax0, widths, dev0, fit=fit_power_law(widths, dev0), label="init", guide=-0.5)
    finish(ax0, "width N", r"$\|\hat\Theta_0 - \Theta\|_F / \|\Theta\|_F$", "NTK at init")
    loglog_fit(ax1, widths, dmove, fit=fit_power_law(widths, dmove), label=f"after {steps} steps", guide=-1.0, color="C1")
    finish(ax1, "width N", r"$\|\hat\Theta_T - \hat\Theta_0\|_F / \|\hat\Theta_0\|_F$", "NTK movement in training")
    return [save(fig, out / f"ntk_convergence.{ext}") for ext in ("png", "pdf")]
