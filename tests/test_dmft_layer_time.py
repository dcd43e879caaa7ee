"""Infinite-depth (layer-time) Monte Carlo DMFT of nonlinear residual networks
(``limits.dmft.layer_time``, reached through ``solve_dmft(table, math.inf)``).

Validation ladder: (1) linear activations against the deterministic layer-time ODEs (an independent
solver) and against the same Richardson combination of the deterministic finite-depth solver, (2) tanh:
the Euler-Maruyama levels on coupled sources converge at first order in 1/L (the assumption behind the
extrapolation), and an independent finite-depth solve (own sources) lies close to the limit, much
closer than L = 1, (3) CompleteP (no branch noise), (4) bad input. Measured numbers:
docs/theory/resnet_dmft.md section 6 and ``python benchmarks/depth_limit.py``.
"""

import math

import numpy as np
import pytest

import limits
from limits.dmft.layer_time import richardson_weights
from limits.dmft.sources import pair_blocks


@pytest.fixture(scope="module")
def teacher():
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    return d.X, d.y


def test_richardson_weights_cancel_the_leading_orders():
    for m in (2, 3, 4):
        w = richardson_weights(m)
        h = 2.0 ** np.arange(m)
        np.testing.assert_allclose([np.sum(w * h**k) for k in range(m)], np.eye(m)[0], atol=1e-12)
    np.testing.assert_allclose(richardson_weights(3), [8 / 3, -2, 1 / 3])


def test_pair_blocks_sums_brownian_increments():
    rng = np.random.default_rng(0)
    L, S = 4, 5
    eps = [rng.standard_normal((S, 3)) for _ in range(2 * L + 2)]
    coarse = pair_blocks(eps, L)
    assert len(coarse) == L + 2
    np.testing.assert_allclose(coarse[1], (eps[1] + eps[2]) / math.sqrt(2))  # u of coarse block 1
    np.testing.assert_allclose(coarse[L // 2 + 2], (eps[L + 3] + eps[L + 4]) / math.sqrt(2))  # r of coarse block 2
    assert coarse[0] is eps[0] and coarse[-1] is eps[-1]
    with pytest.raises(ValueError, match="even"):
        pair_blocks(eps[:8], 3)


def test_linear_layer_time_matches_the_ode_limit(teacher):
    X, y = teacher
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.25, steps=6)
    ode = limits.solve_dmft("depth-mup", math.inf, **kw)  # Heun, 64 steps in tau
    mc = limits.solve_dmft("depth-mup", math.inf, method=limits.dmft.MonteCarlo(samples=4096), depth_steps=4,
                           progress=False, **kw)
    assert mc.meta["depth_levels"] == [4, 2, 1] and mc.meta["depth"] == math.inf
    # (a) the Monte Carlo SDE solver reproduces the deterministic finite-depth equations it discretizes:
    #     the same Richardson combination of exact finite-L solves (measured: 0.04% / 0.03% of L(0), seeds 0 / 1)
    exact = {L: limits.solve_dmft("depth-mup", L, **kw) for L in (1, 2, 4)}
    w = richardson_weights(3)
    f_rich = sum(wi * exact[L].predictions for wi, L in zip(w, (4, 2, 1)))
    loss_rich = 0.5 * np.mean((f_rich - y) ** 2, axis=1)
    assert np.abs(mc.loss - loss_rich).max() < 0.005 * ode.loss[0]
    # (b) the extrapolation removes most of the depth error of the plain 4-step solution
    #     (measured: 8.7% -> 1.6% of L(0), a ratio of 0.18; the deterministic combination gives 1.55%)
    err_plain = np.abs(mc.diagnostics["loss_depth_steps"][4] - ode.loss).max()
    err_rich = np.abs(mc.loss - ode.loss).max()
    assert err_rich < 0.3 * err_plain, (err_rich, err_plain)
    assert err_rich < 0.03 * ode.loss[0]
    # NTK and kernels on the coarsest level's nodes tau = 0, 1 (measured 12% / 6.7% of the largest entry, the
    # remaining depth error of 4 steps; 3.5% / 2.2% with depth_steps=8)
    assert np.abs(mc.ntk - ode.ntk).max() < 0.2 * np.abs(ode.ntk).max()
    assert mc.kernels["phi_tau"].shape == (2, 7, 4, 4)
    assert np.abs(mc.kernels["phi_tau"] - ode.kernels["phi_tau"][[0, -1]]).max() < 0.12 * np.abs(ode.kernels["phi_tau"]).max()


@pytest.fixture(scope="module")
def tanh_limit(teacher):
    X, y = teacher
    kw = dict(X=X, y=y, activation="tanh", gamma0=1.0, lr=0.5, steps=6, method=limits.dmft.MonteCarlo(samples=4096),
              seed=0, progress=False)
    return kw, limits.solve_dmft("depth-mup", math.inf, depth_steps=4, **kw)


def test_tanh_levels_converge_at_first_order(tanh_limit):
    kw, inf = tanh_limit
    lv = inf.diagnostics["loss_depth_steps"]
    d1, d2 = lv[1] - lv[2], lv[2] - lv[4]  # coupled sources: the Monte Carlo noise cancels in the differences
    t = slice(2, None)
    assert np.all(d1[t] > 0) and np.all(d2[t] > 0)  # deeper -> lower loss at every step here
    ratio = np.sum(d1[t]) / np.sum(d2[t])
    assert 1.5 < ratio < 2.6, ratio  # O(1/L): 2 asymptotically; measured 2.06 / 1.93 / 1.82 (seeds 0 / 1 / 2)
    np.testing.assert_allclose(inf.diagnostics["depth_error"], np.abs(inf.loss - lv[4]))
    assert inf.loss_stderr.shape == (7,) and np.all(np.isfinite(inf.loss_stderr))
    np.testing.assert_allclose(inf.predictions[0], 0.0, atol=1e-12)


def test_tanh_finite_depth_approaches_the_limit(tanh_limit):
    kw, inf = tanh_limit
    kw = dict(kw, seed=7)  # own sources, independent of those of the limit
    e = {L: np.abs(limits.solve_dmft("depth-mup", L, **kw).loss - inf.loss)[2:].sum() for L in (1, 8)}
    # O(1/L) predicts e8 / e1 = 1/8; measured (sum over steps 2..6, limit seeds 0 / 1 / 2 with finite-depth seeds
    # 7 / 8 / 9): e1 = 0.030 / 0.036 / 0.043, e8 = 0.0032 / 0.0044 / 0.0037, ratios 0.11 / 0.12 / 0.085
    assert e[8] < 0.25 * e[1], e


def test_completep_layer_time_has_no_branch_noise(teacher):
    X, y = teacher
    tr = limits.solve_dmft("completep", math.inf, X=X, y=y, activation="tanh", lr=0.5, steps=4, depth_steps=4,
                           method=limits.dmft.MonteCarlo(samples=1024), X_test=X[:1] + 0.1, progress=False)
    assert tr.meta["branch_variance_density"] == 0.0 and tr.meta["lr_density"] > 0
    assert tr.test_predictions.shape == (5, 1) and tr.loss[-1] < tr.loss[0]
    lv = tr.diagnostics["loss_depth_steps"]
    assert np.abs(lv[1] - lv[2]).max() > np.abs(lv[2] - lv[4]).max()


def test_bad_inputs(teacher):
    X, y = teacher
    kw = dict(X=X, y=y, activation="tanh", steps=3, method=limits.dmft.MonteCarlo(samples=256), progress=False)
    with pytest.raises(ValueError, match="even integer"):
        limits.solve_dmft("depth-mup", math.inf, depth_steps=3, **kw)
    with pytest.raises(ValueError, match="two_time"):
        limits.solve_dmft("depth-mup", math.inf, record="two_time", **kw)
    with pytest.raises(ValueError, match="no infinite-depth limit"):
        limits.solve_dmft("resnet", math.inf, **kw)
