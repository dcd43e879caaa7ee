"""DMFT (infinite width, mup) against finite-width networks of growing width.

For each case: the DMFT loss curve, seed-averaged finite-width losses from
``limits.simulate`` (JAX, vmapped seeds, the same pinned convention as the plain
NumPy network of tests/reference_net.py, checked against it at N = 256) at several
widths, the error ``max_t |log L_N(t) - log L_dmft(t)|`` at each width, its fitted
exponent ``err ~ N^-alpha`` (theory: alpha = 1 for the ensemble-mean bias, masked
by seed noise at large N), and the error of the 1/N-extrapolated curve (weighted
least squares ``L_N = L_inf + b/N`` per step) with the extrapolation's own 2-sigma.
Writes ``benchmarks/out/dmft_vs_finite.json``.

    python benchmarks/dmft_vs_finite.py                  # full (~1 h on 2 cores)
    python benchmarks/dmft_vs_finite.py --quick          # two-layer tanh + deep linear, < 60 s
    python benchmarks/dmft_vs_finite.py --cases relu_d2  # one case of the full set
    python benchmarks/dmft_vs_finite.py --stored --seeds 0 1 2   # all four cases against the stored
                                                              # test ensembles, three DMFT seeds
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

import limits
from limits.dmft import solve_dmft
from _out import result_path  # benchmarks/ is on sys.path: the script's folder, or set by python -m benchmarks

ROOT = pathlib.Path(__file__).resolve().parents[1]

# depth-2 cases use the data and schedule of the stored test references (P = 6, D = 8, lr 0.5, 20 steps)
FULL = {
    "tanh_d1": dict(depth=1, activation="tanh", lr=0.5, steps=20, P=6, widths=(512, 1024, 2048), seeds=(1024, 512, 256), samples=16384),
    "relu_d1": dict(depth=1, activation="relu", lr=0.5, steps=20, P=6, widths=(512, 1024, 2048), seeds=(1024, 512, 256), samples=16384),
    "linear_d3": dict(depth=3, activation="linear", lr=0.05, steps=20, P=6, widths=(256, 512, 1024), seeds=(512, 256, 128), samples=None),
    "tanh_d2": dict(depth=2, activation="tanh", lr=0.5, steps=20, P=6, widths=(512, 1024, 2048), seeds=(512, 256, 128), samples=8192),
    "relu_d2": dict(depth=2, activation="relu", lr=0.5, steps=20, P=6, widths=(512, 1024, 2048), seeds=(512, 256, 128), samples=16384),
}
QUICK = {
    "tanh_d1": dict(depth=1, activation="tanh", lr=0.5, steps=10, P=6, widths=(128, 256), seeds=(64, 32), samples=4096),
    "linear_d3": dict(depth=3, activation="linear", lr=0.05, steps=10, P=6, widths=(64, 128), seeds=(32, 16), samples=None),
}


def extrapolate(widths, means, stderr):
    """Weighted least squares ``v(N) = v_inf + b/N`` per time step: (v_inf, its standard error)."""
    w = np.asarray(widths, float)
    A = np.stack([np.ones_like(w), 1.0 / w], axis=1)
    ext, sig = [], []
    for t in range(means.shape[1]):
        sw = 1.0 / np.maximum(stderr[:, t], 1e-300)
        Aw, bw = A * sw[:, None], means[:, t] * sw
        coef, *_ = np.linalg.lstsq(Aw, bw, rcond=None)
        ext.append(coef[0])
        sig.append(np.sqrt(np.linalg.pinv(Aw.T @ Aw)[0, 0]))
    return np.array(ext), np.array(sig)


def _stored(name):
    """Finite-width ensembles stored for the tests (tests/data/dmft_reference.json, same data and
    schedule): (widths, seeds, means, stderrs)."""
    ref = json.loads((ROOT / "tests" / "data" / "dmft_reference.json").read_text())[name]
    return ref["widths"], ref["seeds"], [np.asarray(m) for m in ref["mean"]], [np.asarray(s) for s in ref["stderr"]]


def run(cases, stored=False, seeds=(0,)):
    out = {}
    for name, c in cases.items():
        d = limits.datasets.teacher(P=c["P"], D=8, seed=0)
        t0 = time.perf_counter()
        exact = c["samples"] is None
        method = limits.dmft.Exact() if exact else limits.dmft.MonteCarlo(samples=c["samples"])
        runs = [solve_dmft("mup", c["depth"], X=d.X, y=d.y, activation=c["activation"], lr=c["lr"], steps=c["steps"],
                           method=method, progress=False, seed=None if exact else s) for s in (seeds[:1] if exact else seeds)]
        tr = runs[0]
        t_dmft = (time.perf_counter() - t0) / len(runs)
        t0 = time.perf_counter()
        if stored:
            widths, nseeds, means, ses = _stored(name)
            c = dict(c, widths=tuple(widths), seeds=tuple(nseeds))
        else:
            means, ses = [], []
            for N, S in zip(c["widths"], c["seeds"]):
                fin = limits.simulate("mup", c["depth"], N, X=d.X, y=d.y, activation=c["activation"], lr=c["lr"],
                                      steps=c["steps"], seeds=S, seed=N, record=None, progress=False)
                means.append(np.asarray(fin.loss))
                ses.append(np.asarray(fin.loss_stderr))
        errs = [float(np.abs(np.log(m / tr.loss)).max()) for m in means]
        t_fin = time.perf_counter() - t0
        ext, sig = extrapolate(c["widths"], np.array(means), np.array(ses))
        devs = [float(np.abs(np.log(ext / r.loss)).max()) for r in runs]
        err_ext, two_sig = devs[0], float(np.max(2 * sig / ext))
        alpha = float(-np.polyfit(np.log(c["widths"]), np.log(errs), 1)[0])
        print(f"{name}: DMFT {t_dmft:.1f}s ({tr.diagnostics['method']}), "
              f"finite {t_fin:.0f}s, loss {tr.loss[0]:.3g} -> {tr.loss[-1]:.3g}")
        for N, S, e in zip(c["widths"], c["seeds"], errs):
            print(f"   N = {N:5d} ({S} seeds): max |dlog L| = {e:.4f}")
        print(f"   fitted exponent err ~ N^-{alpha:.2f};  1/N-extrapolated: max |dlog L| = "
              f"{' / '.join(f'{e:.4f}' for e in devs)} (DMFT seeds {list(seeds)}; extrapolation 2 sigma <= {two_sig:.4f})",
              flush=True)
        out[name] = dict(case={k: v for k, v in c.items()}, dmft_loss=tr.loss.tolist(),
                         dmft_stderr=tr.loss_stderr.tolist(), finite_mean=[m.tolist() for m in means],
                         finite_stderr=[s.tolist() for s in ses], extrapolated=ext.tolist(),
                         extrapolated_stderr=sig.tolist(), errors=errs, exponent=alpha,
                         extrapolated_error=err_ext, extrapolated_errors_by_seed=devs, extrapolated_two_sigma=two_sig,
                         reference="stored (tests/data)" if stored else "simulated in this run",
                         dmft_seconds=t_dmft, finite_seconds=t_fin)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", nargs="*", default=None, help=f"subset of {list(FULL)}")
    ap.add_argument("--stored", action="store_true",
                    help="compare with the finite-width ensembles stored in tests/data instead of simulating")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="DMFT source seeds (spread = Monte Carlo error)")
    args = ap.parse_args(argv)
    cases = QUICK if args.quick else FULL
    if args.cases:
        cases = {k: FULL[k] for k in args.cases}
    t0 = time.perf_counter()
    res = run(cases, stored=args.stored, seeds=tuple(args.seeds))
    path = result_path("dmft_vs_finite.json")
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path} ({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
