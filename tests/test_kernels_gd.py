"""Kernel gradient descent / flow (solve_kernel) against explicit iteration."""

from __future__ import annotations

import numpy as np
import pytest

import limits
import limits.checks
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
    return lk.solve_kernel("ntk", 2, X=DATA.X, y=DATA.y, X_test=DATA.X_test, y_test=DATA.y_test, activation="relu",
                           lr=2.0, steps=30, record=("ntk", "kernels", "test_variance"))


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
    np.testing.assert_allclose(tr.test_prediction_var, test_var, atol=1e-10)
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
    kw = dict(X=DATA.X, y=DATA.y, X_test=DATA.X_test, activation="relu")
    flow = lk.solve_kernel("ntk", 1, lr=1.0, steps=8, method=lk.KernelGD(flow=True), **kw)
    errs = []
    for m in (4, 8, 16, 32):
        gd = lk.solve_kernel("ntk", 1, lr=1.0 / m, steps=8 * m, **kw)
        errs.append(np.max(np.abs(gd.test_predictions[::m] - flow.test_predictions)))
        np.testing.assert_allclose(gd.loss[::m], flow.loss, rtol=0.2 / m)
    slopes = np.diff(np.log(errs)) / np.log(2)
    np.testing.assert_allclose(slopes, -1.0, atol=0.05)


def test_long_flow_reaches_kernel_regression():
    tr = lk.solve_kernel("ntk", 2, X=DATA.X, y=DATA.y, X_test=DATA.X_test, activation="relu", lr=1e6, steps=3,
                         method=lk.KernelGD(flow=True))
    k = lk.mlp(2, "relu", 1.0)
    ntk, ntk_test = k(DATA.X).ntk, k(DATA.X_test, DATA.X).ntk
    np.testing.assert_allclose(tr.predictions[-1], DATA.y, atol=1e-8)
    np.testing.assert_allclose(tr.test_predictions[-1], lk.kernel_ridge(ntk, ntk_test, DATA.y), atol=1e-7)


def test_parametrization_compiles_the_kernel():
    kw = dict(X=DATA.X, y=DATA.y, activation="relu", lr=1.0, steps=5)
    # SP with lr ~ 1/width: the input layer's updates vanish, Theta = sum_{l >= 2} Theta_l
    sp = lk.solve_kernel(lp.param("sp", depth=2, c=1), **kw)  # depth: the table's
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
    with pytest.raises(FloatingPointError, match=r"lr=10000 .*2/lambda_max.*step 1.*smaller lr"):
        lk.solve_kernel("ntk", 1, lr=1e4, steps=2, **kw)


def test_default_dataset_runs():
    tr = lk.solve_kernel()  # the default data of every entry point: the teacher's train set, no test set
    d = limits.datasets.teacher()
    assert tr.loss[-1] < tr.loss[0] and tr.test_predictions is None
    assert tr.meta["data"] == limits.checks.fingerprint(d.X, d.y, None, None)


# ------------------------------------------------------------------ aligned signature (issue 15)
KW = dict(X=DATA.X, y=DATA.y, activation="relu", steps=3)


def test_signature_defaults_and_meta():
    import inspect

    from limits.checks import META_KEYS

    sig = inspect.signature(lk.solve_kernel)
    assert list(sig.parameters)[:2] == ["param", "depth"]
    defaults = {k: v.default for k, v in sig.parameters.items()}
    assert defaults == dict(param="ntk", depth=None, X=None, y=None, activation="tanh", gamma0=None, lr=0.5,
                            steps=100, X_test=None, y_test=None, record=("ntk", "kernels"), progress=True, method=None)
    tr = lk.solve_kernel(**KW)
    assert tuple(tr.meta)[: len(META_KEYS)] == META_KEYS
    assert tr.meta["depth"] == 1 and tr.meta["width"] == np.inf and tr.meta["gamma0"] == 1.0
    assert tr.meta["seed"] is None and tr.meta["method"] == repr(lk.KernelGD()) and tr.meta["wall_s"] > 0
    assert tr.meta["lr"] == 0.5 and tr.meta["steps"] == 3


def test_depth_none_takes_the_tables_depth():
    table = lp.param("ntk", depth=3)
    tr = lk.solve_kernel(table, **KW)
    assert tr.meta["depth"] == 3 and tr.meta["gamma0"] is None
    np.testing.assert_array_equal(tr.ntk, lk.solve_kernel("ntk", 3, **KW).ntk)


def test_gamma0_next_to_a_table_is_rejected():
    with pytest.raises(ValueError, match="gamma0"):
        lk.solve_kernel(lp.param("mup", depth=1), gamma0=0.5, **KW)
    with pytest.raises(ValueError, match="gamma0"):
        lk.solve_kernel("mup", gamma0=-1.0, **KW)
    # a preset's gamma0 is honoured (and the lazy dynamics do not depend on it)
    a, b = lk.solve_kernel("mup", gamma0=0.5, **KW), lk.solve_kernel("mup", **KW)
    assert a.meta["gamma0"] == 0.5 and np.allclose(a.predictions, b.predictions, rtol=1e-12)


def test_x_and_y_together():
    with pytest.raises(ValueError, match="X was given without y"):
        lk.solve_kernel(X=DATA.X, steps=1)
    with pytest.raises(ValueError, match="y was given without X"):
        lk.solve_kernel(y=DATA.y, steps=1)


def test_adam_tables_are_rejected():
    with pytest.raises(ValueError, match="optimizer='adam'.*SGD"):
        lk.solve_kernel(lp.param("ntk", depth=1, optimizer="adam"), **KW)


def test_table_constants_are_honoured():
    base = lk.solve_kernel("ntk", 2, **KW)
    mult = lk.solve_kernel(lp.param("ntk", 2, multipliers=[1.0, 1.5, 1.0]), **KW)  # W_std of layer 2
    assert mult.meta["W_std"] == [1.0, 1.5, 1.0]
    np.testing.assert_allclose(mult.kernels["nngp"][0], lk.mlp(2, "relu", [1.0, 1.5, 1.0])(DATA.X).nngp, rtol=1e-12)
    lrs = lk.solve_kernel(lp.param("ntk", 2, lr_scales=[2.0, 1.0, 0.5]), **KW)  # NTK layer weights
    layers = lk.mlp(2, "relu", 1.0)(DATA.X, per_layer=True).ntk_layers
    np.testing.assert_allclose(lrs.ntk[0], np.tensordot([2.0, 1.0, 0.5], layers, 1), rtol=1e-12)
    init = lk.solve_kernel(lp.param("ntk", 2, init_stds=[1.0, 2.0, 1.0]), **KW)  # W_std and 1/init_std^2 weights
    layers = lk.mlp(2, "relu", [1.0, 2.0, 1.0])(DATA.X, per_layer=True).ntk_layers
    np.testing.assert_allclose(init.ntk[0], np.tensordot([1.0, 0.25, 1.0], layers, 1), rtol=1e-12)
    assert not np.allclose(init.ntk, base.ntk)


def test_method_options_are_validated():
    for bad, name in [(dict(flow="no"), "flow"), (dict(backend="cuda"), "backend"), (dict(b_std=-1.0), "b_std"),
                      (dict(quadrature_order=2.5), "quadrature_order"), (dict(quadrature_order=400), "quadrature_order")]:
        with pytest.raises((ValueError, TypeError), match=f"KernelGD.{name}"):
            lk.KernelGD(**bad)
    with pytest.raises(TypeError, match="method"):
        lk.solve_kernel(method={"flow": True}, **KW)
    with pytest.raises(ValueError, match="quadrature_order.*closed-form"):
        lk.solve_kernel(method=lk.KernelGD(quadrature_order=64), **KW)
    with pytest.raises(ValueError, match="backend"):
        lk.solve_kernel("depth-mup", 2, method=lk.KernelGD(backend="numba"), **KW)
    assert lk.KernelGD(b_std=1).b_std == 1.0 and hash(lk.KernelGD()) == hash(lk.KernelGD())
    b = lk.solve_kernel(method=lk.KernelGD(b_std=0.3), **KW)
    np.testing.assert_allclose(b.kernels["nngp"][0], lk.mlp(1, "relu", 1.0, 0.3)(DATA.X).nngp, rtol=1e-12)


def test_record():
    kw = dict(KW, X_test=DATA.X_test)
    tr = lk.solve_kernel(record="test_variance", **kw)
    assert tr.ntk is None and tr.kernels == {} and tr.test_prediction_var.shape == (4, len(DATA.X_test))
    assert lk.solve_kernel(**kw).test_prediction_var is None
    with pytest.raises(ValueError, match="test_variance.*X_test"):
        lk.solve_kernel(record="test_variance", **KW)
    with pytest.raises(ValueError, match="record.*two_time"):
        lk.solve_kernel(record=("ntk", "two_time"), **KW)


def test_bad_scalar_arguments_name_themselves():
    for bad, name in [(dict(steps=1.5), "steps"), (dict(steps=-1), "steps"), (dict(lr=0.0), "lr"),
                      (dict(lr=float("nan")), "lr"), (dict(progress="yes"), "progress"), (dict(depth=0), "depth"),
                      (dict(param=3), "param")]:
        with pytest.raises((ValueError, TypeError), match=name):
            lk.solve_kernel(**{**KW, **bad})


def test_divergence_boundary():
    """Just below 2/lambda_max the run is finite; just above it raises, naming the bound."""
    bound = lk.solve_kernel(**KW).diagnostics["stability_lr"]
    tr = lk.solve_kernel(**{**KW, "lr": 0.999 * bound, "steps": 50})
    assert np.all(np.isfinite(tr.loss))
    with pytest.raises(FloatingPointError, match=f"{bound:.6g}"):
        lk.solve_kernel(**{**KW, "lr": 1.01 * bound})
    assert np.isfinite(lk.solve_kernel(**{**KW, "lr": 10 * bound}, method=lk.KernelGD(flow=True)).loss).all()


def test_all_zero_inputs_train_nothing_without_error():
    tr = lk.solve_kernel(X=np.zeros((5, 3)), y=np.ones(5), activation="tanh", steps=3)
    np.testing.assert_array_equal(tr.predictions, 0.0)
    assert np.isfinite(tr.loss).all()


def test_float64_scoped_not_global():
    import jax

    before = jax.config.jax_enable_x64
    tr = lk.solve_kernel(**KW)
    out = lk.mlp(2, "tanh")(DATA.X)
    res = lk.resnet(2, "tanh")(DATA.X)
    assert tr.loss.dtype == out.ntk.dtype == res.ntk.dtype == np.float64
    assert jax.config.jax_enable_x64 == before  # a fresh process: tests/test_api.py (import and calls)
