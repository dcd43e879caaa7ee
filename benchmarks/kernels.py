"""Benchmark: depth-5 ReLU NNGP + NTK, D = 32, float64, P = 500..4000.

Times ``limits.kernels.mlp`` with the Numba backend and with the plain JAX
backend in the same process (median of repeats after a warm-up), and
neural-tangents' analytic ``stax`` kernel when ``neural_tangents`` is importable
(optional; never a dependency). Prints a table, a floor estimate calibrated on
this machine (memory bandwidth + vectorized arccos throughput), and writes
``benchmarks/out/kernels.json``.

    python benchmarks/kernels.py            # P = 500, 1000, 2000, 4000
    python benchmarks/kernels.py --quick    # P = 200, 500
    python benchmarks/kernels.py --quadrature   # accuracy table of the activation quadrature (docs/tutorials/kernels.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import math

import numba as nb
import numpy as np

import limits.kernels as lk
from limits.kernels import _numba
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

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


QUAD_VARIANCES = (1e-6, 1e-4, 1e-2, 1.0, 10.0, 1e2, 1e3, 1e4, 1e6, 1e8)
QUAD_RHOS = (-1.0, -0.999999, -0.9, -0.3, 0.0, 0.5, 0.99, 0.999999, 1.0)
QUAD_RATIOS = (1.0, 0.1, 1e-3)  # k22 / k11


def _reference_tanh(k11, k12, k22, levels: int = 14, nodes: int = 16):
    """E[tanh tanh] and E[tanh' tanh'] by composite Gauss-Legendre in both variables (graded panels around the
    transitions, ``levels`` per side, ``nodes`` per panel): a different, finer rule than the library's."""
    import jax.numpy as jnp

    from limits import activations as A

    x, w = np.polynomial.legendre.leggauss(nodes)

    def mesh(center, width):
        h = 0.25 / np.maximum(1.0, width)
        offs = h[..., None] * ((1.0 / h) ** (1.0 / levels))[..., None] ** np.arange(levels + 1)
        fixed = np.broadcast_to(np.linspace(-10.0, 10.0, 41), center.shape + (41,))
        pts = np.sort(np.clip(np.concatenate([center[..., None] - offs, center[..., None] + offs, fixed], -1), -10, 10), -1)
        mid, half = 0.5 * (pts[..., 1:] + pts[..., :-1]), 0.5 * (pts[..., 1:] - pts[..., :-1])
        z = (mid[..., None] + half[..., None] * x).reshape(pts.shape[:-1] + (-1,))
        return z, (half[..., None] * w).reshape(z.shape) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)

    s1 = np.sqrt(k11)
    a = np.where(k11 > 0, k12 / np.where(k11 > 0, s1, 1.0), 0.0)
    b = np.sqrt(np.maximum(k22 - a * a, 0.0))
    z1, w1 = mesh(np.zeros_like(s1), np.maximum(s1, np.abs(a)))
    center = np.clip(np.where(b[:, None] > 0, -a[:, None] * z1 / np.where(b > 0, b, 1.0)[:, None], 0.0), -10, 10)
    z2, w2 = mesh(center, np.broadcast_to(b[:, None], center.shape))
    out = []
    for f in (np.tanh, lambda u: np.asarray(A._dtanh(jnp.asarray(u)))):
        inner = np.sum(w2 * f(a[:, None, None] * z1[..., None] + b[:, None, None] * z2), -1)
        out.append(np.sum(w1 * f(s1[:, None] * z1) * inner, -1))
    return out


def quadrature_table() -> list[dict]:
    """Max error of E[phi phi], E[phi' phi'] relative to sqrt(K11 K22), over correlations and variance ratios, per
    variance and activation (erf and gelu as plain callables against their closed forms, tanh against
    :func:`_reference_tanh`; "tanh GH-96" is the former default, Gauss-Hermite with 96 nodes)."""
    import jax

    from limits import activations as A

    rows = []
    with jax.enable_x64(True):
        for v in QUAD_VARIANCES:
            V, R, Q = np.meshgrid([v], QUAD_RHOS, QUAD_RATIOS, indexing="ij")
            k11, k22 = V.ravel(), (V * Q).ravel()
            k12 = R.ravel() * np.sqrt(k11 * k22)
            rule = A.quadrature(v)
            row = {"variance": v, "points": rule.points}
            for name in ("tanh", "erf", "gelu", "tanh GH-96"):
                if name.startswith("tanh"):
                    exact, d1, d2 = (_reference_tanh(*k) for k in ((k11, k12, k22), (k11, k11, k11), (k22, k22, k22)))
                else:
                    exact, d1, d2 = (A.closed_form_expectations(name, *k) for k in ((k11, k12, k22), (k11, k11, k11),
                                                                                    (k22, k22, k22)))
                if name == "tanh GH-96":
                    got = A.gauss_hermite_expectations("tanh", k11, k12, k22, order=96)
                else:
                    callable_ = A.Activation(name + "-callable", A.get(name).fn, A.get(name).deriv)
                    got = A.quadrature_expectations(callable_, k11, k12, k22, rule)
                row[name] = max(float(np.max(np.abs(np.asarray(g) - np.asarray(e)) / np.sqrt(np.asarray(a) * np.asarray(b))))
                                for g, e, a, b in zip(got, exact, d1, d2))
                row[name + " finite"] = bool(all(np.all(np.isfinite(np.asarray(g))) for g in got))
            rows.append(row)
    return rows


def print_quadrature_table() -> None:
    rows = quadrature_table()
    names = ("tanh", "erf", "gelu", "tanh GH-96")
    print("| variance | points / entry | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        cells = [f"{r[n]:.1e}" + ("" if r[n + " finite"] else " (NaN)") for n in names]
        print(f"| {r['variance']:.0e} | {r['points']} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quadrature", action="store_true", help="print the quadrature accuracy table and exit")
    parser.add_argument("--quick", action="store_true", help="small sizes only (P = 200, 500)")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit list of P")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.quadrature:
        print_quadrature_table()
        return
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
    meta = {"depth": DEPTH, "D": D, "dtype": "float64", "cpus": os.cpu_count(), "machine": platform.machine()}
    path = result_path("kernels.json")
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
