"""``limits demo``: the main job on the embedded default problem.

Classifies the presets, then (with whatever solvers are installed) solves the
feature-learning limit of a small mup network, simulates it at two widths and
prints a comparison; writes a figure and a JSON summary into ``out``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .checks import ArgumentTypeError, boolean
from .parametrization import PRESETS, param

__all__ = ["run_demo"]


def _classify_presets(depth: int) -> list[dict]:
    rows = []
    for name in PRESETS:
        for kw in ({}, {"c": 1}) if name == "sp" else ({},):
            p = param(name, depth, **kw)
            cls = p.classify()
            label = name + (" (c=1)" if kw else "")
            in_depth = "-"
            if p.is_residual:
                d = p.classify_depth()
                in_depth = "unstable" if not d.stable else ("every block learns" if d.every_block else "stable")
            rows.append({"preset": label, "regime": cls.regime, "r": str(cls.r), "depth_limit": in_depth})
    return rows


def run_demo(out: Path, *, quick: bool = False) -> int:
    """Run the demo, write ``out/demo.png`` and ``out/demo.json``; return exit code 0.

    ``out``: a folder (``str`` or path; created if needed); ``quick``: True or False."""
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ArgumentTypeError(f"out must be a folder path, got {out!r}")
    out, quick = Path(out), boolean(quick, "quick")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    depth = 2
    rows = _classify_presets(depth)
    print(f"Presets at depth {depth}:")
    print(f"  {'preset':<10} {'width limit':<18} {'r':<5} depth limit (residual tables)")
    for row in rows:
        print(f"  {row['preset']:<10} {row['regime']:<18} {row['r']:<5} {row['depth_limit']}")
    summary: dict = {"classification": rows}

    from .phase_diagram import plot_phase_diagram

    phase_path = plot_phase_diagram(out / "phase_diagram.png", depth=depth)
    print(f"wrote {phase_path}")

    try:
        from . import dmft, finite  # noqa: F401
    except ImportError:
        solvers = False
    else:
        solvers = True
    if solvers:
        summary["comparison"] = _compare_demo(out, quick=quick)
    summary["seconds"] = time.perf_counter() - start
    (out / "demo.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    print(f"wrote {out / 'demo.json'}  ({summary['seconds']:.1f} s)")
    return 0


def _compare_demo(out: Path, *, quick: bool) -> dict:
    """Solve the mup DMFT of a two-layer tanh network and compare with two finite widths."""
    import limits
    from .plotting import plot_loss_curves

    data = limits.datasets.teacher(P=8, D=4, seed=0)
    steps, lr, depth = (20, 0.5, 1) if quick else (60, 0.5, 1)
    widths = (128, 512) if quick else (256, 1024)
    kw = dict(X=data.X, y=data.y, activation="tanh", gamma0=1.0, lr=lr, steps=steps)
    limit = limits.solve_dmft("mup", depth, **kw, method=limits.dmft.MonteCarlo(samples=2048 if quick else 8192),
                              progress=False)
    sims = limits.ensembles("mup", depth, widths, **kw, seeds=4 if quick else 8, progress=False)
    theory = limits.solve_dmft("mup", depth, widths[0], **kw, progress=False, record=None)
    print(f"\nmup, depth {depth}, tanh, P={len(data.y)}, lr={lr}, {steps} steps")
    print(f"  {'':<12} {'loss(0)':>10} {'loss(T/2)':>10} {'loss(T)':>10}")
    half = steps // 2
    rows = {"DMFT (N=inf)": limit}
    rows.update({f"width {w}": t for w, t in sims.items()})
    rows[f"theory N={widths[0]}"] = theory
    table = {}
    for label, traj in rows.items():
        loss = np.asarray(traj.loss)
        table[label] = [float(loss[0]), float(loss[half]), float(loss[-1])]
        print(f"  {label:<12} {loss[0]:>10.4g} {loss[half]:>10.4g} {loss[-1]:>10.4g}")
    sd = sims[widths[0]].losses.std(0, ddof=1)
    print(f"  spread of single networks at width {widths[0]}, loss(T): theory {theory.loss_std[-1]:.3g}, "
          f"measured over {sims[widths[0]].losses.shape[0]} seeds {sd[-1]:.3g}")
    plot_loss_curves(rows, out / "demo.png", title="mup: limit, finite widths, width-N theory")
    print(f"wrote {out / 'demo.png'}")
    return table
