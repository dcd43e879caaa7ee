"""Sweeps on Dask: transfer sweeps on 1 vs 2 local worker processes, and the engine's overhead per point.

Three sweeps (``limits.transfer(..., limit=False)``: widths x learning rates, teacher task P = 16, muP), each run in
this process (``client=None``, for reference), on ``limits.local_cluster(1)`` and on ``limits.local_cluster(2)``
(worker processes pinned to a core each; each cluster with a fresh JAX compilation cache and its workers warmed up
by importing JAX before the clock starts):

- ``compute`` (32 points): three-layer networks (depth 2) at widths 96..144, 3000 steps, 4 seeds: points of about
  1.5 s of training whose weights stay in each core's L2 cache. The speed-up of 2 workers over 1 (bar: >= 1.7 on
  this 2-core machine) measures the engine: both cores busy, each width compiled once.
- ``wide`` (16 points): the same networks at widths 384..576, 100 steps (5-10 MB of weights per point): the
  speed-up reported without a bar.
- ``mutransfer`` (32 points): the muP panel of the muTransfer figure (``paper_figures/mutransfer.py``) at full
  size (depth 1, widths 256..2048, 40 steps, 4 seeds). Its points are mostly compilation. Overhead per point =
  (wall on 1 worker - seconds inside the points) / points: scheduling, serialization and result transfer, against
  the mean seconds inside a point (bar: <= 5%).

"This process" runs every point on both cores with XLA's own threads, where each pinned worker has one core: which
engine is faster on one machine depends on the points (the table shows both); the cluster engine is for when the
grid outgrows one machine. Every
configuration computes every point (no disk cache); the losses of all engines agree to float64 rounding.

    python benchmarks/sweep.py            # the three sweeps (~4 min)
    python benchmarks/sweep.py --quick    # a 2-point muTransfer sweep in this process only (a smoke test)

Prints a table and writes ``benchmarks/out/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import limits
from limits import sweeps
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks


SWEEPS = ("compute", "wide", "mutransfer")


def settings(name: str, quick: bool) -> dict:
    """The sweep ``name`` (one of :data:`SWEEPS`) at full or quick size."""
    if name == "compute":
        return dict(depth=2, widths=[32, 48] if quick else [96, 112, 128, 144],
                    lrs=np.geomspace(0.05, 5.0, 2 if quick else 8), steps=5 if quick else 3000, seeds=4)
    if name == "wide":
        return dict(depth=2, widths=[64, 96] if quick else [384, 448, 512, 576],
                    lrs=np.geomspace(0.05, 5.0, 2 if quick else 4), steps=5 if quick else 100, seeds=4)
    return dict(depth=1, widths=[64, 128] if quick else [256, 512, 1024, 2048],
                lrs=np.geomspace(0.05, 5.0, 1 if quick else 8), steps=5 if quick else 40, seeds=2 if quick else 4)


def run(client, s: dict):
    """The transfer sweep on ``client``; ``(result, seconds, seconds inside the points)``."""
    data = limits.datasets.teacher(P=16, D=8, seed=0)
    inside = []
    real = sweeps.run_tasks

    def spy(*args, **kwargs):  # the engine's own count of the seconds spent inside the points
        out = real(*args, **kwargs)
        inside.append(out.compute_s)
        return out

    sweeps.run_tasks = spy
    try:
        tick = time.perf_counter()
        res = limits.transfer("mup", s["depth"], s["widths"], s["lrs"], X=data.X, y=data.y, steps=s["steps"],
                              seeds=s["seeds"], limit=False, progress=False, client=client)
        return res, time.perf_counter() - tick, sum(inside)
    finally:
        sweeps.run_tasks = real


def _warm(client) -> None:
    """Import JAX and the simulator on every worker before the clock starts (as a long sweep amortizes it)."""
    def load():
        import limits.finite  # noqa: F401

    client.run(load)


def measure(quick: bool) -> dict:
    """The sweeps on the three engines (one cluster per worker count, serving every sweep); quick: only the
    muTransfer one (a smoke test of the script)."""
    sweeps_ = ("mutransfer",) if quick else SWEEPS
    runs: dict = {name: {} for name in sweeps_}
    for name in sweeps_:
        runs[name]["this process"] = run(None, settings(name, quick))
    for n in () if quick else (1, 2):  # quick: no clusters (tests/test_sweeps_dask.py tests the engine on one)
        with limits.local_cluster(n) as client:
            _warm(client)
            for name in sweeps_:
                runs[name][f"{n} worker{'s' if n > 1 else ''}"] = run(client, settings(name, quick))
    return {name: summarize(settings(name, quick), runs[name]) for name in sweeps_}


def summarize(s: dict, runs: dict) -> dict:
    """Walls, seconds inside the points, speed-up, overhead per point and agreement of one sweep's engines."""
    points = len(s["widths"]) * len(s["lrs"])
    rows = {engine: dict(wall_s=wall, inside_s=inside) for engine, (_, wall, inside) in runs.items()}
    if "1 worker" not in rows:  # quick: this process only
        return dict(points=points, settings={k: np.asarray(v).tolist() for k, v in s.items()}, rows=rows)
    one, two = rows["1 worker"], rows["2 workers"]
    overhead = (one["wall_s"] - one["inside_s"]) / points
    ref = runs["this process"][0].losses
    ok = np.isfinite(ref)
    losses = [res.losses for res, _, _ in runs.values()]
    agree = max(float(np.max(np.abs(v[ok] - ref[ok]) / np.abs(ref[ok]))) for v in losses)
    return dict(points=points, settings={k: np.asarray(v).tolist() for k, v in s.items()}, rows=rows,
                speedup=one["wall_s"] / two["wall_s"], overhead_s=overhead, point_s=one["inside_s"] / points,
                overhead_fraction=overhead / (one["inside_s"] / points), max_rel_loss_difference=agree,
                same_divergence=all(np.array_equal(np.isfinite(v), ok) for v in losses))


def table(results: dict) -> str:
    lines = [f"{'sweep':>11}{'points':>8}{'engine':>14}{'wall s':>9}{'inside s':>10}"]
    for name, r in results.items():
        for engine, row in r["rows"].items():
            lines.append(f"{name:>11}{r['points']:>8}{engine:>14}{row['wall_s']:>9.2f}{row['inside_s']:>10.2f}")
    m = results["mutransfer"]
    if "speedup" not in m:
        return "\n".join(lines + ["(quick: this process only; run without --quick for the 1- and 2-worker clusters)"])
    lines.append("speed-up, 2 vs 1 worker: " + ", ".join(f"{k} {r['speedup']:.2f}" for k, r in results.items())
                 + " (bar: compute >= 1.7)")
    lines.append(f"overhead per point (mutransfer, 1 worker): {1e3 * m['overhead_s']:.1f} ms = "
                 f"{100 * m['overhead_fraction']:.1f}% of the {1e3 * m['point_s']:.0f} ms inside a point (bar <= 5%)")
    lines.append("losses, max relative difference between engines: "
                 + ", ".join(f"{k} {r['max_rel_loss_difference']:.1e}" for k, r in results.items())
                 + "; same diverged points: " + str(all(r["same_divergence"] for r in results.values())))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-point muTransfer sweep in this process only (smoke test)")
    parser.add_argument("--out", default=str(result_path("sweep.json")))
    args = parser.parse_args()
    r = measure(args.quick)
    print(table(r))
    with open(args.out, "w") as fh:
        json.dump(r, fh, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
