"""Residual-network DMFT (linear activations): lazy limit, finite width, finite depth -> infinite depth."""

import math

import numpy as np
import pytest

import limits


@pytest.fixture(scope="module")
def data(random_regression):
    return random_regression(3)


def test_lazy_limit_equals_kernel_gd(data):
    X, y = data
    kw = dict(X=X, y=y, activation="linear", lr=0.3, steps=6)
    tr = limits.solve_dmft("depth-mup", 3, gamma0=1e-4, **kw)
    kt = limits.solve_kernel("depth-mup", 3, **kw)
    np.testing.assert_allclose(tr.loss, kt.loss, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(tr.ntk[0], kt.ntk[0], rtol=1e-8)


def test_finite_width_converges(data):
    X, y = data
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.2, steps=8)
    tr = limits.solve_dmft("depth-mup", 2, **kw)
    assert tr.meta["residual"] and tr.loss.shape == (9,) and tr.predictions.shape == (9, 3)
    errs = []
    for N in (48, 192):
        sim = limits.simulate("depth-mup", 2, N, seeds=16, record=None, progress=False, **kw)
        errs.append(np.max(np.abs(sim.predictions - tr.predictions)))
    assert errs[1] < errs[0] and errs[1] < 0.06, errs


def test_response_terms_at_depth_8_match_finite_width():
    """L = 8 blocks: the gamma-dependent response terms of the residual DMFT stay O(1) in depth; the
    equations without them (backward weights independent of forward ones) miss a finite-width ensemble
    by 0.26 in the predictions, the full equations by 0.03 (N = 256, 16 seeds; N = 1024: 0.025)."""
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    kw = dict(X=d.X, y=d.y, activation="linear", gamma0=1.0, lr=0.2, steps=4)
    tr = limits.solve_dmft("depth-mup", 8, **kw)
    sim = limits.simulate("depth-mup", 8, 256, seeds=16, record=None, progress=False, **kw)
    assert np.max(np.abs(sim.predictions - tr.predictions)) < 0.08


def test_finite_depth_converges_to_layer_time_limit(data):
    X, y = data
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.2, steps=4)
    f = {K: limits.solve_dmft("depth-mup", math.inf, depth_steps=K, **kw).predictions for K in (16, 32, 64)}
    d16, d32 = np.max(np.abs(f[32] - f[16])), np.max(np.abs(f[64] - f[32]))
    assert 3.2 < d16 / d32 < 4.8 and d32 < 1e-3, (d16, d32)  # Heun in tau: O(K^-2); measured 1.3e-3, 3.4e-4
    errs = [np.max(np.abs(limits.solve_dmft("depth-mup", L, **kw).predictions - f[64])) for L in (4, 8, 16)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.6) & (ratios < 2.4)), errs  # O(1/L)


def test_completep_depth_limit(data):
    X, y = data
    kw = dict(X=X, y=y, activation="linear", gamma0=1.0, lr=0.2, steps=3)
    inf = limits.solve_dmft("completep", math.inf, depth_steps=16, **kw)
    assert inf.meta["depth_steps"] == 16
    e8, e16 = (np.max(np.abs(limits.solve_dmft("completep", L, **kw).predictions - inf.predictions)) for L in (8, 16))
    assert e16 < 0.65 * e8


def test_bad_inputs(data):
    X, y = data
    with pytest.raises(ValueError, match="no infinite-depth limit"):
        limits.solve_dmft("resnet", math.inf, X=X, y=y, activation="linear", steps=3)
    with pytest.raises(ValueError, match="depth"):
        limits.solve_dmft("depth-mup", 0, X=X, y=y, activation="linear", steps=3)
