"""Finite-width simulator: consistency, determinism, gradients, kernels, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import limits
from limits.finite import SimulationDiverged, simulate
from limits.finite import network as net_fns

DATA = limits.datasets.teacher(P=8, D=4, P_test=5, seed=1)
KW = dict(X=DATA.X, y=DATA.y, steps=6, seeds=3, progress=False)


def test_mup_at_gamma_inverse_sqrt_width_is_ntk():
    n = 64
    mup = limits.param("mup", 2, gamma0=1 / np.sqrt(n))
    a = simulate(mup, 2, n, lr=0.7, **KW)
    b = simulate("ntk", 2, n, lr=0.7, **KW)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a.diagnostics["predictions_per_seed"], b.diagnostics["predictions_per_seed"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-9)
    assert a.losses[:, -1].mean() < a.losses[:, 0].mean()


def test_deterministic_and_seed_prefix():
    a = simulate("mup", 2, 64, lr=0.5, X_test=DATA.X_test, y_test=DATA.y_test, **KW)
    b = simulate("mup", 2, 64, lr=0.5, X_test=DATA.X_test, y_test=DATA.y_test, **KW)
    assert np.array_equal(a.losses, b.losses)
    assert np.array_equal(a.test_predictions, b.test_predictions)
    assert a.test_loss.shape == (7,) and a.test_predictions.shape == (7, 5)
    # seed i is the same network whatever the ensemble size, and in any seed batch
    c = simulate("mup", 2, 64, lr=0.5, **{**KW, "seeds": 2})
    np.testing.assert_allclose(c.losses, a.losses[:2], rtol=1e-12)
    d = simulate("mup", 2, 64, lr=0.5, seed_batch=1, **KW)
    np.testing.assert_allclose(d.losses, a.losses, rtol=1e-12)
    e = simulate("mup", 2, 64, lr=0.5, seed=1, **KW)
    assert not np.allclose(e.losses, a.losses)


def test_trajectory_shapes_and_stats():
    t = simulate("mup", 3, 64, lr=0.5, record=("ntk", "kernels", "features", "spectral"), record_steps=[0, 2, 6], **KW)
    S, T1, P, L = 3, 7, 8, 3
    assert t.losses.shape == (S, T1) and t.loss.shape == (T1,) and t.predictions.shape == (T1, P)
    np.testing.assert_allclose(t.loss, t.losses.mean(0))
    np.testing.assert_allclose(t.loss_stderr, t.losses.std(0, ddof=1) / np.sqrt(S))
    assert t.prediction_cov.shape == (T1, P, P)
    assert t.ntk.shape == (3, P, P) and list(t.kernel_steps) == [0, 2, 6]
    assert sorted(t.kernels) == ["g1", "g2", "g3", "phi1", "phi2", "phi3"]
    d = t.diagnostics
    assert d["delta_h"].shape == (S, 3, L) and d["delta_f"].shape == (S, 3)
    assert d["W_spectral"].shape == (S, 3, L + 1)
    assert np.all(d["delta_h"][:, 0] == 0) and np.all(d["dW_spectral"][:, 0] == 0)
    assert np.all(d["delta_h"][:, -1] > 0)
    # the feature kernel is PSD and the mup NTK is sum G^{l+1} * Phi^l + Phi^L
    K0 = t.diagnostics["ntk_per_seed"][:, 0]
    ks = t.diagnostics["kernels_per_seed"]
    Phi0 = DATA.X @ DATA.X.T / DATA.X.shape[1]
    expect = ks["phi3"][:, 0] + ks["g1"][:, 0] * Phi0 + ks["g2"][:, 0] * ks["phi1"][:, 0] + ks["g3"][:, 0] * ks["phi2"][:, 0]
    np.testing.assert_allclose(K0, expect, rtol=1e-10)
    assert np.linalg.eigvalsh(t.kernels["phi1"][0]).min() > -1e-10


def _numpy_step_predictions(params, net, X, y, lr, steps):
    """Independent numpy forward/backward for an MLP with tanh; predictions after each step."""
    m, eta = net.multipliers, net.lr_scales
    W = [np.array(w, dtype=np.float64) for w in params]
    L = len(W) - 1
    out = []
    for _ in range(steps + 1):
        acts, pre = [X], []
        h = m[0] * X @ W[0].T
        for l in range(1, L + 1):
            pre.append(h)
            a = np.tanh(h)
            acts.append(a)
            h = m[l] * a @ W[l].T if l < L else None
        f = m[L] * acts[L] @ W[L]
        out.append(f)
        r = (f - y) / len(y)  # dLoss/df
        grads = [None] * (L + 1)
        grads[L] = m[L] * acts[L].T @ r
        delta = (m[L] * r[:, None] * W[L][None, :]) * (1 - np.tanh(pre[L - 1]) ** 2)  # dLoss/dh^L
        for l in range(L - 1, -1, -1):
            grads[l] = m[l] * delta.T @ acts[l]
            if l > 0:
                delta = (delta @ (m[l] * W[l])) * (1 - np.tanh(pre[l - 1]) ** 2)
        W = [w - lr * eta[l] * g for l, (w, g) in enumerate(zip(W, grads))]
    return np.array(out)


@pytest.mark.parametrize("name,depth", [("mup", 2), ("sp", 3)])
def test_sgd_matches_handwritten_numpy(name, depth):
    p = limits.param(name, depth, gamma0=0.7)
    n, lr, seed = 6, 0.3 if name == "mup" else 0.05, 3
    net = p.instantiate(n, DATA.X.shape[1])
    params = net_fns.init_params(seed, 0, net.init_stds, depth, n, DATA.X.shape[1])
    expect = _numpy_step_predictions(params, net, DATA.X, DATA.y, lr, 3)
    t = simulate(p, depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=3, seeds=1, seed=seed, progress=False, record=())
    np.testing.assert_allclose(t.diagnostics["predictions_per_seed"][0], expect, rtol=1e-10, atol=1e-12)


def test_ntk_matches_jacobian_and_first_step():
    depth, n, lr = 2, 16, 1e-4
    p = limits.param("mup", depth, gamma0=0.5)
    net = p.instantiate(n, DATA.X.shape[1])
    t = simulate(p, depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=1, seeds=1, progress=False, record=("ntk",), record_steps=[0])
    params = net_fns.init_params(0, 0, net.init_stds, depth, n, DATA.X.shape[1])
    jac = jax.jacrev(lambda w: net_fns.forward(w, jnp.asarray(net.multipliers), jnp.asarray(DATA.X), jnp.tanh)[0])(params)
    K = sum(net.lr_scales[l] * np.asarray(J).reshape(len(DATA.y), -1) @ np.asarray(J).reshape(len(DATA.y), -1).T for l, J in enumerate(jac))
    np.testing.assert_allclose(t.ntk[0], K, rtol=1e-10)
    f = t.diagnostics["predictions_per_seed"][0]
    df_pred = -lr * K @ (f[0] - DATA.y) / len(DATA.y)
    np.testing.assert_allclose(f[1] - f[0], df_pred, rtol=1e-3)


def test_adam_runs_and_differs_from_sgd():
    sgd = simulate("mup", 2, 64, lr=0.05, **KW)
    adam = simulate("mup", 2, 64, lr=0.05, optimizer="adam", **KW)
    assert adam.meta["optimizer"] == "adam" and sgd.meta["optimizer"] == "sgd"
    assert np.all(np.isfinite(adam.losses))
    assert adam.loss[-1] < adam.loss[0]
    assert not np.allclose(adam.losses, sgd.losses)
    # Adam's first update moves every raw weight by about lr * lr_scale (sign of the gradient)
    a2 = simulate(limits.param("mup", 2, optimizer="adam"), 2, 64, lr=0.05, **KW)
    np.testing.assert_allclose(a2.losses, adam.losses)


def test_divergence_is_reported_with_step():
    with pytest.raises(SimulationDiverged, match=r"diverged at step \d+.*smaller learning rate") as info:
        simulate("sp", 2, 256, lr=50.0, **{**KW, "steps": 40})
    assert info.value.step >= 1
    t = simulate("sp", 2, 256, lr=50.0, check_divergence=False, **{**KW, "steps": 40})
    assert not np.all(np.isfinite(t.loss)) or t.loss.max() > 1e6


def test_float32_and_other_activations():
    t = simulate("ntk", 1, 32, lr=0.5, dtype="float32", activation="relu", **KW)
    assert np.all(np.isfinite(t.loss)) and t.loss[-1] < t.loss[0]
    t = simulate("ntk", 1, 32, lr=0.5, activation=lambda x: jnp.sin(x), **KW)
    assert t.loss[-1] < t.loss[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(param=limits.param("mup", 3), depth=2), "depth"),
        (dict(record=("ntk", "hessian")), "cannot record"),
        (dict(record_steps=[0, 99]), "record_steps"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(seeds=0), "seeds"),
        (dict(steps=-1), "steps"),
        (dict(y=np.zeros(3)), "rows"),
        (dict(X=np.full((8, 4), np.nan)), "non-finite"),
        (dict(activation="softmax"), "activation"),
        (dict(param="xyz"), "preset"),
        (dict(param=limits.param("mup", 2), optimizer="adam"), "optimizer"),
        (dict(width=0), "width"),
        (dict(dtype="float16"), "dtype"),
        (dict(X_test=np.zeros((3, 2))), "features"),
        (dict(y_test=np.zeros(3)), "X_test"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(param="mup", depth=2, width=16, **KW)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(args.pop("param"), args.pop("depth"), args.pop("width"), **args)


def test_public_exports():
    import limits.analysis
    import limits.finite

    assert limits.simulate is limits.finite.simulate
    assert limits.compare is limits.analysis.compare
    assert limits.coord_check is limits.analysis.coord_check and limits.transfer is limits.analysis.transfer
