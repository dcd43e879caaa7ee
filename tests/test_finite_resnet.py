"""Finite-width ResNets in simulate: hand-written backprop, NTK -> infinite-width limit, depth stability."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import limits
from limits.analysis import fit_power_law
from limits.finite import Simulation, simulate
from limits.finite import network as net_fns

DATA = limits.datasets.teacher(P=6, D=4, seed=3)


def _numpy_resnet_predictions(params, net, X, y, lr, steps):
    """Independent NumPy forward/backward of the tanh ResNet (Network docstring); predictions after each step."""
    m, eta, b = net.multipliers, net.lr_scales, net.branch_multiplier
    w0, wL = np.array(params[0]), np.array(params[2])
    Wb = [np.array(w) for w in params[1]]
    L = len(Wb)
    out = []
    for _ in range(steps + 1):
        hs = [m[0] * X @ w0.T]
        for l in range(L):
            hs.append(hs[-1] + b * m[l + 1] * np.tanh(hs[-1]) @ Wb[l].T)
        f = m[L + 1] * np.tanh(hs[-1]) @ wL
        out.append(f)
        r = (f - y) / len(y)  # dLoss/df
        g_wL = m[L + 1] * np.tanh(hs[-1]).T @ r
        delta = m[L + 1] * r[:, None] * wL[None, :] * (1 - np.tanh(hs[-1]) ** 2)  # dLoss/dh^{L+1}
        g_b = [None] * L
        for l in range(L - 1, -1, -1):  # h_{l+2} = h_{l+1} + b m W_l tanh(h_{l+1})
            g_b[l] = b * m[l + 1] * delta.T @ np.tanh(hs[l])
            delta = delta + (delta @ (b * m[l + 1] * Wb[l])) * (1 - np.tanh(hs[l]) ** 2)
        g_w0 = m[0] * delta.T @ X
        w0 = w0 - lr * eta[0] * g_w0
        Wb = [w - lr * eta[l + 1] * g for l, (w, g) in enumerate(zip(Wb, g_b))]
        wL = wL - lr * eta[L + 1] * g_wL
    return np.array(out)


@pytest.mark.parametrize("name", ["depth-mup", "resnet", "completep"])
def test_resnet_sgd_matches_handwritten_numpy(name):
    L, n, lr, seed = 3, 7, 0.4, 2
    p = limits.param(name, L, gamma0=0.8)
    net = p.instantiate(n, DATA.X.shape[1])
    assert net.residual and len(net.multipliers) == L + 2
    params = net_fns.init_params(seed, 0, net.init_stds, L, n, DATA.X.shape[1], residual=True)
    assert params[1].shape == (L, n, n)
    expect = _numpy_resnet_predictions(params, net, DATA.X, DATA.y, lr, 3)
    t = simulate(p, L, n, X=DATA.X, y=DATA.y, lr=lr, steps=3, seeds=1, seed=seed, progress=False, record=())
    np.testing.assert_allclose(t.predictions_per_seed[0], expect, rtol=1e-10, atol=1e-12)
    assert t.meta["residual"] and t.meta["branch_multiplier"] == pytest.approx(net.branch_multiplier)


def test_resnet_ntk_matches_jacobian_and_kernels_shapes():
    L, n = 3, 8
    p = limits.param("depth-mup", L, gamma0=0.5)
    net = p.instantiate(n, DATA.X.shape[1])
    t = simulate(p, L, n, X=DATA.X, y=DATA.y, lr=0.1, steps=2, seeds=2, progress=False,
                 record=("ntk", "kernels", "features", "spectral"))
    assert sorted(t.kernels) == sorted([f"phi{l}" for l in range(1, L + 2)] + [f"g{l}" for l in range(1, L + 2)])
    assert t.diagnostics["h_rms"].shape == (2, 2, L + 1) and t.diagnostics["W_spectral"].shape == (2, 2, L + 2)
    params = net_fns.init_params(0, 0, net.init_stds, L, n, DATA.X.shape[1], residual=True)
    mult, lrs = net_fns.layer_scales(net)[:2]
    with jax.enable_x64(True):  # the reference in float64 (the package leaves the global setting alone)
        jac = jax.jacrev(lambda w: net_fns.forward(w, mult, jnp.asarray(DATA.X), jnp.tanh)[0])(params)
    P = len(DATA.y)
    J0, Jb, JL = (np.asarray(J).reshape(P, *np.shape(J)[1:]) for J in jac)
    K = lrs[0] * J0.reshape(P, -1) @ J0.reshape(P, -1).T + lrs[2] * JL @ JL.T
    K += sum(lrs[1][l] * Jb[:, l].reshape(P, -1) @ Jb[:, l].reshape(P, -1).T for l in range(L))
    np.testing.assert_allclose(t.ntk_per_seed[0, 0], K, rtol=1e-10)
    # spectral norm of a block includes the branch multiplier
    sn = np.linalg.norm(net.branch_multiplier * net.multipliers[1] * params[1][0], 2)
    np.testing.assert_allclose(t.diagnostics["W_spectral"][0, 0, 1], sn, rtol=1e-6)


def test_resnet_adam_runs():
    t = simulate("depth-mup", 4, 32, X=DATA.X, y=DATA.y, lr=0.02, steps=8, seeds=2, optimizer="adam", progress=False, record=())
    assert np.all(np.isfinite(t.losses)) and t.loss[-1] < t.loss[0]
    assert t.meta["optimizer"] == "adam"


def test_depth_mup_ntk_at_init_approaches_kernel_limit():
    L = 4
    ref = limits.solve_kernel("depth-mup", L, X=DATA.X, y=DATA.y, activation="relu", steps=1).ntk[0]
    widths, errs = (32, 128, 512), []
    for n in widths:
        t = simulate("depth-mup", L, n, X=DATA.X, y=DATA.y, activation="relu", steps=1, seeds=4, progress=False, record=("ntk",))
        K = t.ntk_per_seed[:, 0]
        errs.append(np.mean(np.linalg.norm(K - ref, axis=(1, 2))) / np.linalg.norm(ref))
    slope = fit_power_law(widths, errs).exponent
    assert -0.75 < slope < -0.3, (errs, slope)  # fluctuations ~ N^-1/2
    assert errs[-1] < 0.25


def test_depth_mup_stable_at_init_plain_resnet_grows():
    rms = {}
    for name in ("depth-mup", "resnet"):
        for L in (4, 32):
            t = simulate(name, L, 128, X=DATA.X, y=DATA.y, activation="relu", steps=1, seeds=2, progress=False,
                         record=("features",), method=Simulation(divergence_factor=None))
            rms[name, L] = t.diagnostics["h_rms"][:, 0, -1].mean()  # residual stream h^{L+1}
    # 1/sqrt(L) branches: Var h^{L+1} -> e^{1/2} Var h^1 (ODE limit); plain branches: (3/2)^L
    assert rms["depth-mup", 32] / rms["depth-mup", 4] == pytest.approx(1.0, abs=0.1)
    assert 0.8 * np.exp(0.25) < rms["depth-mup", 32] < 1.2 * np.exp(0.25)
    assert rms["resnet", 32] / rms["resnet", 4] > 100
