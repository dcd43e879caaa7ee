"""The package's deep nonlinear width-N route (``limits.dmft.finite_width_deep.deep_nonlinear``) on the identity
activation against the exact deep-linear theory (``deep_linear``, docs/theory/finite_width.md section 5): teacher
P = 4, mup, lr 0.5.

    python package_linear.py DEPTH T S SEED      # depth, steps, Sobol paths, path seed; e.g. 2 3 16384 0
"""
from __future__ import annotations

import sys
import time

import numpy as np

import limits
from limits import activations
from limits.dmft import finite_width_deep as fd
from limits.dmft import monte_carlo as mc
from limits.dmft.finite_width_linear import deep_linear


def main(K: int, T: int, S: int, seed: int) -> None:
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    X, y = np.asarray(d.X), np.asarray(d.y)
    P, T1 = X.shape[0], T + 1
    Kx = X @ X.T / X.shape[1]
    lim = limits.param("mup", K).dmft_limit()
    sources = fd.layer_sources(mc.mlp_sources(S, K, T1, P, seed, True, antithetic=True), Kx, K)
    start = time.perf_counter()
    cov, _ = fd.deep_nonlinear(activations.get("linear"), lim, Kx_all=Kx, y_all=y, train_mask=np.ones(P), lr=0.5,
                               sources=sources)
    c = cov.reshape(T1, P, T1, P)
    route = np.stack([c[t, :, t, :] for t in range(T1)])
    exact = deep_linear(lim, Kx_all=Kx, y_all=y, train_mask=np.ones(P), lr=0.5, steps=T).cov
    tr = lambda a: np.trace(a, axis1=1, axis2=2)  # noqa: E731
    print(f"linear depth {K} T={T} S={S} seed={seed} ({time.perf_counter() - start:.0f} s): per-t tr N Cov f route "
          + " ".join(f"{v:.3f}" for v in tr(route)) + " | exact " + " ".join(f"{v:.3f}" for v in tr(exact))
          + f" | summed ratio {tr(route).sum() / tr(exact).sum():.3f}, "
          f"relF {np.linalg.norm(route - exact) / np.linalg.norm(exact):.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
