"""Benchmark: depth-5 ReLU NNGP + NTK, D = 32, float64, P = 500..4000.

Times ``limits.kernels.mlp`` with the Numba backend and with the plain JAX
backend in the same process (median of repeats after a warm-up), and
neural-tangents' analytic ``stax`` kernel when ``neural_tangents`` is importable
(optional; never a dependency). Prints a table, a floor estimate calibrated on
this machine (memory bandwidth + vectorized arccos throughput), and writes
``benchmarks/out/kernels.json``.

    python benchmarks/kernels.py            # P = 500, 1000, 2000, 4000
    python benchmarks/kernels.py --quick    # P = 200, 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import math

import numba as nb
import numpy as np

import limits.kernels as lk
from limits.kernels import _numba

DEPTH, D = 5, 32


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def neural_tangents_fn(dtype):
    """neural-tangents kernel function for the same architecture, or None if not installed."""
    try:
        import jax
        from neural_tangents import stax
    except ImportError:
        return None
    layers = []
    for _ in range(DEPTH):
        layers += [stax.Dense(1, W_std=1.0, b_std=0.0), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.0, b_std=0.0))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")

    def run(X):
        out = kernel_fn(X.astype(dtype), None, ("nngp", "ntk"))
        jax.block_until_ready(out)
        return out

    return run


@nb.njit(fastmath=True)
def _acos_sqrt_sum(x, reps):
    """sum of acos(x) + sqrt(1 - x^2) over an L1-resident array, ``reps`` times (vectorized)."""
    acc = 0.0
    for _ in range(reps):
        for i in range(x.shape[0]):
            c = x[i]
            acc += _numba.acos(c) + math.sqrt((1.0 - c) * (1.0 + c))
    return acc


def floor_estimate(P: int) -> dict:
    """Lower bound on this machine: max(memory time, arithmetic time).

    Memory: write NNGP and NTK (2 P^2 doubles) and mirror their lower halves, at
    the measured copy bandwidth. Arithmetic: P(P+1)/2 * depth evaluations of the
    vectorized arccos + sqrt, single-core throughput divided by the core count.
    """
    big = np.empty(1 << 24)  # 128 MB
    big.fill(1.0)
    dst = np.empty_like(big)
    t_copy = median_time(lambda: np.copyto(dst, big), 3)
    bandwidth = 2 * big.nbytes / t_copy  # read + write bytes per second
    x = np.random.default_rng(0).uniform(-1, 1, 1 << 11)
    reps = 500
    t_acos = median_time(lambda: _acos_sqrt_sum(x, reps), 5) / (x.size * reps) / (os.cpu_count() or 1)
    bytes_moved = 2 * P * P * 8 * 2  # write two matrices, mirror reads/writes half of each again
    entries = P * (P + 1) / 2 * DEPTH
    return {
        "memory_s": bytes_moved / bandwidth,
        "arccos_s": entries * t_acos,
        "floor_s": max(bytes_moved / bandwidth, entries * t_acos),
        "bandwidth_GBps": bandwidth / 1e9,
        "acos_ns_per_elem": t_acos * 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (P = 200, 500)")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit list of P")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = args.sizes or ([200, 500] if args.quick else [500, 1000, 2000, 4000])
    k = lk.mlp(DEPTH, "relu", 1.0, 0.0)
    nt64, nt32 = neural_tangents_fn(np.float64), neural_tangents_fn(np.float32)
    rows = []
    for P in sizes:
        X = np.random.default_rng(P).standard_normal((P, D))
        row = {"P": P}
        row["numba_s"] = median_time(lambda: k(X, backend="numba", progress=False), args.repeats)
        row["jax_s"] = median_time(lambda: k(X, backend="jax", progress=False), max(1, args.repeats // 2))
        if nt64 is not None:
            row["nt64_s"] = median_time(lambda: nt64(X), max(1, args.repeats // 2))
            row["nt32_s"] = median_time(lambda: nt32(X), max(1, args.repeats // 2))
        row.update(floor_estimate(P))
        a, b = k(X, backend="numba"), k(X, backend="jax")
        row["max_rel_diff_numba_vs_jax"] = float(np.max(np.abs(a.ntk - b.ntk) / np.abs(b.ntk)))
        rows.append(row)

    head = f"{'P':>6} {'numba s':>9} {'jax s':>8} {'jax/numba':>9} {'floor s':>8} {'numba/floor':>11}"
    if nt64 is not None:
        head += f" {'NT f64 s':>9} {'NT f32 s':>9} {'NT64/numba':>10}"
    print(f"depth-{DEPTH} ReLU NNGP+NTK, D={D}, float64, median of {args.repeats} (2 cores shared: noisy)")
    print(head)
    for r in rows:
        line = (
            f"{r['P']:>6} {r['numba_s']:>9.4f} {r['jax_s']:>8.3f} {r['jax_s'] / r['numba_s']:>9.1f} "
            f"{r['floor_s']:>8.4f} {r['numba_s'] / r['floor_s']:>11.1f}"
        )
        if nt64 is not None:
            line += f" {r['nt64_s']:>9.3f} {r['nt32_s']:>9.3f} {r['nt64_s'] / r['numba_s']:>10.1f}"
        print(line)
    if nt64 is None:
        print("neural_tangents not importable: no NT column (reference on this machine: 0.87 s f64 / 0.68 s f32 at P=2000)")
    last = rows[-1]
    print(
        f"floor model: bandwidth {last['bandwidth_GBps']:.1f} GB/s (copy), "
        f"vectorized arccos+sqrt {last['acos_ns_per_elem']:.2f} ns/elem (per core / cores)"
    )
    out = Path(os.environ.get("LIMITS_BENCHMARK_OUT", Path(__file__).resolve().parent / "out"))
    out.mkdir(exist_ok=True)
    meta = {"depth": DEPTH, "D": D, "dtype": "float64", "cpus": os.cpu_count(), "machine": platform.machine()}
    (out / "kernels.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out / 'kernels.json'}")


if __name__ == "__main__":
    main()
