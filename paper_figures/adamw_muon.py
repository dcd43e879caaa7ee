"""AdamW, weight decay and Muon across width (Fan et al. 2025, arXiv 2510.15262; TP IVb, arXiv 2308.01814;
Jordan et al.'s Muon under the spectral condition of Yang, Simon & Bernstein, arXiv 2310.17813).

Three figures, each computed with ``limits``:

- ``adamw_singular_values``: the trained top singular value of the hidden matrix and its sublayer gain vs width for
  three decoupled weight-decay rules ``lambda ~ n^k`` (PyTorch units; k = 0, 1/2 = Fan et al., 1) of a muP-AdamW
  depth-2 MLP (the full version of ``benchmarks/weight_decay.py``); the rule whose curve is flat keeps the gains
  width-invariant.
- ``adamw_lr_wd_transfer``: final loss over (lr, lambda) at the smallest and the largest width under the preset rule
  (``limits.transfer(..., weight_decays=...)``), every width's optimum marked.
- ``optimizer_coord_check``: coordinate checks (RMS Delta h^l, Delta f and the hidden ||Delta W||) after one step
  for SP-Adam (drifts: unstable, Delta h^2 ~ n, Delta f ~ n^1.5), muP-Adam, muP-AdamW and muP-Muon (flat); dashed:
  the exponents the tables predict. (After a few steps SP-Adam's blown-up outputs no longer scale cleanly.)
"""

from pathlib import Path

import numpy as np

import limits
from limits.finite import Simulation
from limits.plotting import finish, loglog_fit, new_figure, save, widths_ticks

N0, LAMBDA0, LR = 256, 20.0, 0.05
RULES = {"k = 0 (constant)": 0.0, "k = 1/2 (Fan et al.)": 0.5, "k = 1": 1.0}


def _singular_values(out: Path, quick: bool) -> list[Path]:
    widths, steps = ([32, 64], 30) if quick else ([64, 128, 256, 512, 1024], 2000)
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    fig, axes = new_figure(2, size=(4.4, 3.6))
    for name, k in RULES.items():
        table = limits.param("mup", 2, optimizer="adamw", weight_decay=LAMBDA0 * N0 ** (-k), d=[0, 0.5 - k, 0])
        W, gain = [], []
        for w in widths:
            t = limits.simulate(table, 2, w, X=data.X, y=data.y, lr=LR, steps=steps, seeds=2, progress=False,
                                record=("spectral", "features"), method=Simulation(record_steps=(steps,)))
            W.append(t.diagnostics["W_spectral"][:, -1, 1].mean())
            gain.append(t.diagnostics["gain"][:, -1, 0].mean())
        for ax, values in zip(axes[0], (W, gain)):
            slope = np.polyfit(np.log(widths), np.log(values), 1)[0]
            ax.plot(widths, values, "o-", ms=4, label=f"{name}: slope {slope:+.2f}")
    for ax, label in zip(axes[0], ("top singular value of W_2 (trained)", "sublayer gain RMS h2 / RMS tanh(h1)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        widths_ticks(ax, widths)
        finish(ax, "width n", label, f"muP-AdamW, lambda = {LAMBDA0:g} (n/{N0})^k, {steps} steps")
    return [save(fig, out / f"adamw_singular_values.{ext}") for ext in ("png", "pdf")]


def _transfer(out: Path, quick: bool) -> list[Path]:
    widths, lrs, decays, steps = (([32, 64], [0.01, 0.1], [0.0, 1.0], 10) if quick else
                                  ([64, 256, 1024], np.geomspace(3e-3, 0.3, 7), [0.0, 0.01, 0.1, 1.0, 10.0], 200))
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    res = limits.transfer("mup", 2, widths, lrs, weight_decays=decays, limit=False, X=data.X, y=data.y,
                          steps=steps, seeds=2, progress=False)
    return [res.plot(out / f"adamw_lr_wd_transfer.{ext}", title="muP-AdamW, preset weight-decay rule")
            for ext in ("png", "pdf")]


def _coord_checks(out: Path, quick: bool) -> list[Path]:
    widths, seeds = ([32, 64], 2) if quick else ([128, 256, 512, 1024, 2048], 4)
    data = limits.datasets.teacher(P=8, D=4, seed=0)
    tables = {"SP-Adam": limits.param("sp", 2, optimizer="adam"), "muP-Adam": limits.param("mup", 2, optimizer="adam"),
              "muP-AdamW": limits.param("mup", 2, optimizer="adamw", weight_decay=0.1),
              "muP-Muon": limits.param("mup", 2, optimizer="muon", weight_decay=0.1)}
    if quick:  # the two ends (each table compiles its own programs)
        tables = {k: tables[k] for k in ("SP-Adam", "muP-Muon")}
    fig, axes = new_figure(len(tables), size=(3.6, 3.4))
    for ax, (name, table) in zip(axes[0], tables.items()):
        res = limits.coord_check(table, 2, widths, X=data.X, y=data.y, lr=0.01, steps=1, seeds=seeds, progress=False,
                                 spectral=not quick)  # the spectral norms' compile is most of a quick run
        for key in ("dh1", "dh2", "df") + (() if quick else ("dW2",)):
            loglog_fit(ax, res.widths, res.values[key], res.errors[key], label=f"{key} ({res.measured(key):+.2f})",
                       guide=res.predicted[key])
        ax.set_xscale("log", base=2)
        widths_ticks(ax, widths)
        finish(ax, "width n", "RMS size after one step (dW2: spectral)", f"{name} (dashed: predicted)")
    return [save(fig, out / f"optimizer_coord_check.{ext}") for ext in ("png", "pdf")]


def make(out: Path, quick: bool = False) -> list[Path]:
    return _singular_values(out, quick) + _transfer(out, quick) + _coord_checks(out, quick)
