"""DMFT (infinite width, mup) against finite-width networks of growing width.

For each case: the DMFT loss curve, seed-averaged finite-width losses at several
widths (plain NumPy network of tests/reference_net.py), the error
``max_t |log L_N(t) - log L_dmft(t)|`` at each width, its fitted exponent
``err ~ N^-alpha`` (theory: alpha = 1 for the ensemble-mean bias, masked by seed
noise at large N), and the 1/N-extrapolated curve's error. Writes
``benchmarks/out/dmft_vs_finite.json``.

    python benchmarks/dmft_vs_finite.py            # full (slow: tens of minutes on 2 cores)
    python benchmarks/dmft_vs_finite.py --quick    # two-layer tanh + deep linear only
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import limits  # noqa: E402
import reference_net  # noqa: E402
from limits.dmft import solve_dmft  # noqa: E402

FULL = {
    "tanh_d1": dict(depth=1, activation="tanh", lr=0.5, steps=40, P=8, widths=(256, 1024, 4096), seeds=(1024, 512, 256), samples=16384),
    "linear_d3": dict(depth=3, activation="linear", lr=0.1, steps=30, P=8, widths=(128, 256, 512), seeds=(256, 128, 64), samples=None),
    "tanh_d2": dict(depth=2, activation="tanh", lr=0.5, steps=30, P=8, widths=(128, 256, 512), seeds=(256, 128, 64), samples=4096),
    "relu_d2": dict(depth=2, activation="relu", lr=0.5, steps=30, P=8, widths=(128, 256, 512), seeds=(256, 128, 64), samples=4096),
}
QUICK = {
    "tanh_d1": dict(depth=1, activation="tanh", lr=0.5, steps=20, P=6, widths=(256, 1024), seeds=(256, 128), samples=8192),
    "linear_d3": dict(depth=3, activation="linear", lr=0.1, steps=20, P=6, widths=(128, 256), seeds=(64, 32), samples=None),
}


def run(cases):
    out = {}
    for name, c in cases.items():
        d = limits.datasets.teacher(P=c["P"], D=8, seed=0)
        t0 = time.perf_counter()
        tr = solve_dmft("mup", c["depth"], X=d.X, y=d.y, activation=c["activation"], lr=c["lr"], steps=c["steps"],
                        samples=c["samples"], progress=False, tol=1e-5)
        t_dmft = time.perf_counter() - t0
        means, errs = [], []
        t0 = time.perf_counter()
        for N, S in zip(c["widths"], c["seeds"]):
            losses, _ = reference_net.train(d.X, d.y, width=N, depth=c["depth"], activation=c["activation"],
                                            lr=c["lr"], steps=c["steps"], seeds=S, seed=N)
            m = losses.mean(0)
            means.append(m)
            errs.append(float(np.abs(np.log(m / tr.loss)).max()))
        t_fin = time.perf_counter() - t0
        ext = reference_net.extrapolate(c["widths"], np.array(means))
        err_ext = float(np.abs(np.log(ext / tr.loss)).max())
        alpha = float(-np.polyfit(np.log(c["widths"]), np.log(errs), 1)[0])
        print(f"{name}: DMFT {t_dmft:.0f}s ({tr.diagnostics['iterations']} it), finite {t_fin:.0f}s, "
              f"loss {tr.loss[0]:.3g} -> {tr.loss[-1]:.3g}")
        for N, e in zip(c["widths"], errs):
            print(f"   N = {N:5d}: max |dlog L| = {e:.4f}")
        print(f"   fitted exponent err ~ N^-{alpha:.2f};  1/N-extrapolated: max |dlog L| = {err_ext:.4f}", flush=True)
        out[name] = dict(case={k: v for k, v in c.items()}, dmft_loss=tr.loss.tolist(),
                         dmft_stderr=tr.loss_stderr.tolist(), finite_mean=[m.tolist() for m in means],
                         errors=errs, exponent=alpha, extrapolated_error=err_ext, dmft_seconds=t_dmft,
                         finite_seconds=t_fin)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    res = run(QUICK if args.quick else FULL)
    path = ROOT / "benchmarks" / "out" / "dmft_vs_finite.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
