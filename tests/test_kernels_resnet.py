"""ResNet kernels: the 1/sqrt(L)-branch network converges to its infinite-depth ODE limit."""

from __future__ import annotations

import numpy as np
import pytest

import limits.kernels as lk

X = np.random.default_rng(0).standard_normal((6, 4))
X2 = np.random.default_rng(1).standard_normal((3, 4))


@pytest.fixture(scope="module")
def limit():
    return lk.resnet_infinite_depth("relu", 1.4, 0.1, branch_scale=1.0, ode_steps=128)(X)


def test_ode_solution_converged():
    coarse = lk.resnet_infinite_depth("relu", 1.4, 0.1, branch_scale=1.0, ode_steps=64)(X)
    fine = lk.resnet_infinite_depth("relu", 1.4, 0.1, branch_scale=1.0, ode_steps=128)(X)
    assert np.max(np.abs(coarse.ntk - fine.ntk)) < 1e-8 * np.abs(fine.ntk).max()


def test_relu_diagonal_closed_form(limit):
    # diagonal ODE dq/ds = W^2 q / 2  ->  q(1) = q(0) exp(W^2 / 2); output NNGP = W^2 q(1)/2 + b^2
    q0 = 1.4**2 * np.sum(X**2, 1) / 4 + 0.01
    np.testing.assert_allclose(np.diag(limit.nngp), 1.4**2 * q0 * np.exp(1.4**2 / 2) / 2 + 0.01, rtol=1e-10)


def test_finite_depth_converges_at_rate_one_over_L(limit):
    Ls = [8, 16, 32, 64]
    errs = []
    for L in Ls:
        k = lk.resnet(L, "relu", 1.4, 0.1, branch_multiplier=1 / np.sqrt(L))(X)
        errs.append([np.abs(k.nngp - limit.nngp).max(), np.abs(k.ntk - limit.ntk).max()])
    errs = np.array(errs)
    slopes = np.diff(np.log(errs), axis=0) / np.log(2)  # finite L is Euler with step 1/L
    np.testing.assert_allclose(slopes, -1.0, atol=0.1)


def test_resnet_cross_and_symmetric_agree():
    k = lk.resnet(3, "relu", 1.2, 0.0, 0.5)
    full = k(np.concatenate([X, X2]))
    cross = k(X2, X)
    np.testing.assert_allclose(cross.ntk, full.ntk[6:, :6], rtol=1e-12)
    with pytest.raises(ValueError, match="blocks"):
        lk.resnet(0)
    with pytest.raises(ValueError, match="ode_steps"):
        lk.resnet_infinite_depth(ode_steps=0)
