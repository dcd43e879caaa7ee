"""Monte Carlo DMFT of nonlinear residual networks (the march of limits/dmft/march.py with control variates).

Validation ladder: (1) linear activations against the deterministic residual solver,
(2) tanh against finite-width ``limits.simulate`` ensembles extrapolated in 1/N (stored in
tests/data/resnet_mc_reference.json, too slow to simulate here; regenerate with
``python tests/test_dmft_resnet_mc.py --generate``), (3) gamma0 -> 0 against the kernel
limit at rate gamma0^2, (4) bad inputs. Measured numbers: docs/theory/resnet_dmft.md section 5.
"""

import json
import pathlib

import numpy as np
import pytest

import limits
from limits.analysis import extrapolate_in_width


def solve_resnet_mc(param, depth, samples=None, **kw):
    """The residual DMFT by Monte Carlo, whatever the activation."""
    return limits.solve_dmft(param, depth, method=limits.dmft.MonteCarlo(samples=samples), progress=False, **kw)

REF_PATH = pathlib.Path(__file__).parent / "data" / "resnet_mc_reference.json"
DATA = dict(P=6, D=8, seed=0)
COMMON = dict(gamma0=1.0, lr=0.5, steps=12)
WIDTHS, SEEDS = (256, 512, 1024), (1024, 512, 256)
CASES = {"tanh_L2": (2, "tanh"), "tanh_L4": (4, "tanh"), "relu_L2": (2, "relu")}


def extrapolate(entry):
    """The stored ensembles of one case extrapolated in 1/N: ``(v_inf, its standard error)``, each (steps+1,)."""
    return extrapolate_in_width(entry["widths"], entry["mean"], entry["stderr"])


@pytest.fixture(scope="module")
def small(random_regression):
    return random_regression(4)


@pytest.mark.parametrize("depth", [2, 3])
def test_linear_matches_deterministic_solver(small, depth):
    X, y = small
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.3, steps=6)
    exact = limits.solve_dmft("depth-mup", depth, **kw)
    mc = solve_resnet_mc("depth-mup", depth, samples=2048, seed=0, **kw)
    dlog = np.abs(np.log(mc.loss / exact.loss))
    assert dlog.max() < 0.005, dlog  # measured <= 0.08% (seeds 0, 1)
    np.testing.assert_allclose(mc.predictions, exact.predictions, atol=0.01)  # measured <= 0.002
    for t in (0, -1):  # NTK: measured <= 1.1% of its largest entry
        assert np.abs(mc.ntk[t] - exact.ntk[t]).max() < 0.03 * np.abs(exact.ntk[t]).max()


def test_tanh_matches_finite_width_reference():
    ref = json.loads(REF_PATH.read_text())["tanh_L2"]
    ext, se = extrapolate(ref)
    d = limits.datasets.teacher(**DATA)
    steps = 8  # the first 9 entries of the stored 12-step trajectory (the dynamics are causal)
    tr = solve_resnet_mc("depth-mup", 2, X=d.X, y=d.y, activation="tanh", gamma0=1.0, lr=0.5, steps=steps,
                         samples=8192, seed=1)
    dlog = np.abs(np.log(tr.loss / ext[: steps + 1]))
    bound = 0.02 + 2 * se[: steps + 1] / ext[: steps + 1]
    assert np.all(dlog < bound), (dlog, bound)  # measured <= 0.7% at these settings


def test_lazy_limit_rate(small):
    """gamma0 -> 0: kernel gradient descent (up to the Monte Carlo error of the kernels), corrections ~ gamma0^2.

    The differences are taken on the same sources (common random numbers), which cancels the Monte Carlo
    error of the kernels that all these solves share."""
    X, y = small
    kw = dict(X=X, y=y, activation="tanh", lr=0.5, steps=6)
    kern = limits.solve_kernel("depth-mup", 2, **kw)
    logs = {g: np.log(solve_resnet_mc("depth-mup", 2, gamma0=g, samples=4096, seed=0, **kw).loss)
            for g in (1e-3, 0.2, 0.4)}
    assert np.abs(logs[1e-3] - np.log(kern.loss)).max() < 0.015  # measured 0.1-0.7% (seed dependent)
    dev = {g: np.sqrt(np.mean((logs[g] - logs[1e-3]) ** 2)) for g in (0.2, 0.4)}
    assert 3.0 < dev[0.4] / dev[0.2] < 6.0, dev  # gamma0^2: 4 (measured 4.0, 4.3, 4.9 for seeds 0, 1, 2)


def test_dispatch_and_trajectory(small):
    X, y = small
    tr = limits.solve_dmft("completep", 2, X=X[:3], y=y[:3], activation="relu", steps=3, X_test=X[3:],
                           method=limits.dmft.MonteCarlo(samples=1024), progress=False)
    assert tr.meta["residual"] and tr.meta["activation"] == "relu" and tr.meta["depth"] == 2
    assert tr.loss.shape == (4,) and tr.predictions.shape == (4, 3) and tr.test_predictions.shape == (4, 1)
    assert tr.ntk.shape == (4, 3, 3) and set(tr.kernels) == {f"{k}{l}" for k in ("phi", "g") for l in (1, 2, 3)}
    assert tr.diagnostics["samples"] == 1024
    assert tr.loss_stderr.shape == (4,) and np.all(np.isfinite(tr.loss_stderr))
    assert tr.loss[-1] < tr.loss[0]
    np.testing.assert_allclose(tr.predictions[0], 0.0, atol=1e-12)  # f(0) = 0 exactly (control variate)


def test_bad_inputs(small):
    X, y = small
    with pytest.raises(ValueError, match="samples"):
        solve_resnet_mc("depth-mup", 2, X=X, y=y, activation="tanh", steps=3, samples=1)
    with pytest.raises(ValueError, match="depth"):
        solve_resnet_mc("depth-mup", 0, X=X, y=y, activation="tanh", steps=3)
    with pytest.raises(ValueError, match="stein_jitter"):
        limits.dmft.MonteCarlo(stein_jitter=2.0)


# ---------------------------------------------------------------------------------------------------------
# Reference generation (about 30 minutes per case on 2 cores):
#     python tests/test_dmft_resnet_mc.py --generate [tanh_L2 tanh_L4 relu_L2]
# ---------------------------------------------------------------------------------------------------------
def generate(names):
    import time

    d = limits.datasets.teacher(**DATA)
    out = json.loads(REF_PATH.read_text()) if REF_PATH.exists() else {}
    for name in names:
        depth, act = CASES[name]
        t0 = time.time()
        means, ses = [], []
        for N, S in zip(WIDTHS, SEEDS):
            tr = limits.simulate("depth-mup", depth, N, X=d.X, y=d.y, activation=act, seeds=S, seed=7000 + N,
                                 record=None, progress=False, **COMMON)
            means.append(np.round(tr.loss, 10).tolist())
            ses.append(np.round(tr.loss_stderr, 10).tolist())
        out[name] = dict(depth=depth, activation=act, widths=list(WIDTHS), seeds=list(SEEDS), mean=means, stderr=ses)
        REF_PATH.write_text(json.dumps(out, indent=1))
        print(f"{name}: {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--generate"]:
        generate(sys.argv[2:] or list(CASES))
