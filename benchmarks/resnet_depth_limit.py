"""Finite depth L -> infinite depth for the residual DMFT (depth-mup and completep, linear).

Solves the infinite-width DMFT of linear residual networks at depths
L = 2..32 and the layer-time limit ``depth=math.inf``, prints
``max_t,mu |f_L - f_inf|`` per depth and the fitted rate (expected O(1/L)),
and writes ``benchmarks/out/resnet_depth_limit.json``.
Usage: ``python benchmarks/resnet_depth_limit.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import limits


def run(quick: bool) -> dict:
    rng = np.random.default_rng(1)
    P, D = 3, 8
    X = rng.standard_normal((P, D))
    y = rng.standard_normal(P)
    y /= np.sqrt(np.mean(y**2))
    depths = [2, 4, 8] if quick else [2, 4, 8, 16, 32]
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.2, steps=4 if quick else 8, progress=False)
    out = {}
    for name in ("depth-mup", "completep"):
        start = time.perf_counter()
        inf = limits.solve_dmft(name, math.inf, **kw)
        t_inf = time.perf_counter() - start
        errs = [float(np.max(np.abs(limits.solve_dmft(name, L, **kw).predictions - inf.predictions))) for L in depths]
        rate = float(np.polyfit(np.log(depths[1:]), np.log(errs[1:]), 1)[0])
        out[name] = {"depths": depths, "max_abs_f_error": errs, "fitted_rate": rate, "seconds_inf": t_inf}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    res = run(parser.parse_args(argv).quick)
    for name, r in res.items():
        print(f"{name}: infinite-depth solve {r['seconds_inf']:.2f} s")
        print(f"  {'L':>4} {'max|f_L - f_inf|':>18}")
        for L, e in zip(r["depths"], r["max_abs_f_error"]):
            print(f"  {L:>4} {e:>18.3e}")
        print(f"  fitted rate: L^{r['fitted_rate']:.2f} (theory L^-1)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "resnet_depth_limit.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
