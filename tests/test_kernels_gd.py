"""Kernel gradient descent / flow (solve_kernel) against explicit iteration."""

from __future__ import annotations

import numpy as np
import pytest

import limits.kernels as lk
from limits import parametrization as lp
from limits.data import teacher
from limits.trajectory import Trajectory

DATA = teacher(P=10, D=4, P_test=6, seed=1)


def _iterate(Theta, K, Tst, Kst, Kss, y, lr, steps, f0_var):
    """Explicit GD on the joint Gaussian state (f_train, f_test): mean and covariance per step."""
    P, Q = len(y), len(Kss)
    M = np.eye(P + Q)
    M[:, :P] -= lr / P * np.vstack([Theta, Tst])
    c = lr / P * np.concatenate([Theta @ y, Tst @ y])
    mean = np.zeros(P + Q)
    cov = f0_var * np.block([[K, Kst.T], [Kst, Kss]])
    means, covs = [mean], [cov]
    for _ in range(steps):
        mean = M @ mean + c
        cov = M @ cov @ M.T
        means.append(mean)
        covs.append(cov)
    return np.array(means), np.array(covs)


@pytest.fixture(scope="module")
def ntk_traj():
    return lk.solve_kernel("ntk", 2, X=DATA.X, y=DATA.y, X_test=DATA.X_test, y_test=DATA.y_test, lr=2.0, steps=30)


def test_discrete_gd_matches_iteration(ntk_traj):
    tr = ntk_traj
    assert isinstance(tr, Trajectory) and tr.steps == 30 and tr.loss.shape == (31,)
    k = lk.mlp(2, "relu", 1.0)
    X_all = np.concatenate([DATA.X, DATA.X_test])
    kern = k(X_all)
    P = len(DATA.y)
    means, covs = _iterate(
        kern.ntk[:P, :P], kern.nngp[:P, :P], kern.ntk[P:, :P], kern.nngp[P:, :P], kern.nngp[P:, P:].copy(), DATA.y, 2.0, 30, 1.0
    )
    np.testing.assert_allclose(tr.predictions, means[:, :P], atol=1e-10)
    np.testing.assert_allclose(tr.test_predictions, means[:, P:], atol=1e-10)
    np.testing.assert_allclose(tr.prediction_cov, covs[:, :P, :P], atol=1e-10)
    test_var = np.diagonal(covs[:, P:, P:], axis1=1, axis2=2)
    np.testing.assert_allclose(tr.diagnostics["test_prediction_var"], test_var, atol=1e-10)
    expected = 0.5 / P * (((means[:, :P] - DATA.y) ** 2).sum(1) + np.trace(covs[:, :P, :P], axis1=1, axis2=2))
    np.testing.assert_allclose(tr.loss, expected, rtol=1e-10)
    Q = len(DATA.y_test)
    expected_test = 0.5 / Q * (((means[:, P:] - DATA.y_test) ** 2).sum(1) + test_var.sum(1))
    np.testing.assert_allclose(tr.test_loss, expected_test, rtol=1e-10)
    assert tr.ntk.shape == (1, P, P) and list(tr.kernel_steps) == [0]
    np.testing.assert_allclose(tr.ntk[0], kern.ntk[:P, :P])
    assert tr.meta["solver"] == "kernel" and tr.meta["param"] == "ntk" and tr.meta["depth"] == 2


def test_flow_is_limit_of_small_steps():
    """GD with lr/m and m*steps converges to the flow at time lr*steps with error O(1/m)."""
    kw = dict(X=DATA.X, y=DATA.y, X_test=DATA.X_test)
    flow = lk.solve_kernel("ntk", 1, lr=1.0, steps=8, flow=True, **kw)
    errs = []
    for m in (4, 8, 16, 32):
        gd = lk.solve_kernel("ntk", 1, lr=1.0 / m, steps=8 * m, **kw)
        errs.append(np.max(np.abs(gd.test_predictions[::m] - flow.test_predictions)))
        np.testing.assert_allclose(gd.loss[::m], flow.loss, rtol=0.2 / m)
    slopes = np.diff(np.log(errs)) / np.log(2)
    np.testing.assert_allclose(slopes, -1.0, atol=0.05)


def test_long_flow_reaches_kernel_regression():
    tr = lk.solve_kernel("ntk", 2, X=DATA.X, y=DATA.y, X_test=DATA.X_test, lr=1e6, steps=3, flow=True)
    k = lk.mlp(2, "relu", 1.0)
    ntk, ntk_test = k(DATA.X).ntk, k(DATA.X_test, DATA.X).ntk
    np.testing.assert_allclose(tr.predictions[-1], DATA.y, atol=1e-8)
    np.testing.assert_allclose(tr.test_predictions[-1], lk.kernel_ridge(ntk, ntk_test, DATA.y), atol=1e-7)


def test_parametrization_compiles_the_kernel():
    kw = dict(X=DATA.X, y=DATA.y, lr=1.0, steps=5)
    # SP with lr ~ 1/width: the input layer's updates vanish, Theta = sum_{l >= 2} Theta_l
    sp = lk.solve_kernel(lp.param("sp", depth=2, c=1), 2, **kw)
    layers = lk.mlp(2, "relu", 1.0)(DATA.X, per_layer=True).ntk_layers
    np.testing.assert_allclose(sp.ntk[0], layers[1:].sum(0), rtol=1e-12)
    assert sp.meta["layer_weights"] == [0.0, 1.0, 1.0]
    # muP: deterministic limit (f_0 = 0), loss is the mean loss, dynamics are gamma0-independent
    mup = lk.solve_kernel("mup", 2, gamma0=0.5, **kw)
    assert mup.prediction_cov is None and mup.meta["f0_variance"] == 0.0
    np.testing.assert_allclose(mup.loss, 0.5 / 10 * ((mup.predictions - DATA.y) ** 2).sum(1), rtol=1e-12)
    ntk = lk.solve_kernel("ntk", 2, **kw)
    np.testing.assert_allclose(mup.predictions, ntk.predictions, rtol=1e-10, atol=1e-12)
    assert np.all(ntk.loss > mup.loss)  # the f_0 variance adds to the expected loss


def test_solve_kernel_errors():
    kw = dict(X=DATA.X, y=DATA.y)
    with pytest.raises(ValueError, match="unstable"):
        lk.solve_kernel(lp.param("sp", depth=2), 2, **kw)
    with pytest.raises(ValueError, match="depth"):
        lk.solve_kernel(lp.param("ntk", depth=3), 2, **kw)
    with pytest.raises(ValueError, match="depth"):
        lk.solve_kernel("ntk", 0, **kw)
    with pytest.raises(ValueError, match="lr"):
        lk.solve_kernel("ntk", 1, lr=-1.0, **kw)
    with pytest.raises(ValueError, match="rows"):
        lk.solve_kernel("ntk", 1, X=DATA.X, y=DATA.y[:-1])
    with pytest.raises(ValueError, match="features"):
        lk.solve_kernel("ntk", 1, X=DATA.X, y=DATA.y, X_test=DATA.X_test[:, :2])
    with pytest.raises(ValueError, match="unknown activation"):
        lk.solve_kernel("ntk", 1, activation="swish", **kw)
    with pytest.raises(ValueError, match="preset"):
        lk.solve_kernel("xyz", 1, **kw)
    with pytest.warns(RuntimeWarning, match="stability"):
        lk.solve_kernel("ntk", 1, lr=1e4, steps=2, **kw)


def test_default_dataset_runs():
    tr = lk.solve_kernel()
    assert tr.loss[-1] < tr.loss[0] and tr.test_loss is not None
