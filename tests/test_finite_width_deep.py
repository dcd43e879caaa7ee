"""Width-N theory of nonlinear MLPs of depth >= 2 (limits/dmft/finite_width_deep.py, docs/theory/finite_width.md
section 6): against ensembles, the exact deep-linear theory, and the closed form of the kernels' growth at init."""

import numpy as np
import pytest

import limits
from limits import activations
from limits.dmft import finite_width_deep as fd
from limits.dmft import monte_carlo as mc
from limits.dmft.finite_width_linear import deep_linear

LR = 0.5


@pytest.fixture(scope="module")
def data():
    return limits.datasets.teacher(P=4, D=8, seed=0)


def test_depth_two_tanh_covariance_matches_an_ensemble(data):
    """Depth-2 tanh (docs/theory/finite_width.md section 6), two train points and one test point, 2 steps: the
    predicted ``N Cov f`` against 4096 networks of width 128 (their sampling error ~3% in relative Frobenius norm);
    the mean is the infinite-width one and ``meta`` says so."""
    kw = dict(X=data.X[:2], y=data.y[:2], X_test=data.X[2:3], y_test=data.y[2:3], activation="tanh", lr=LR, steps=2,
              progress=False)
    tr = limits.solve_dmft("mup", 2, 128, record=None, **kw)
    ens = limits.simulate("mup", 2, width=128, seeds=4096, record=(), **kw)
    meta = tr.meta["finite_width"]
    assert meta["corrections"] == ("covariance", "variance_in_loss") and "mean shift is not derived" in meta["mean"]
    np.testing.assert_array_equal(tr.predictions, limits.solve_dmft("mup", 2, record=None, **kw).predictions)
    for C, E in ((tr.prediction_cov, ens.prediction_cov), (tr.test_prediction_cov, ens.test_prediction_cov)):
        assert abs(np.trace(C, axis1=1, axis2=2).sum() / np.trace(E, axis1=1, axis2=2).sum() - 1) < 0.06
        assert np.linalg.norm(C - E) / np.linalg.norm(E) < 0.1


def test_depth_three_route_on_a_linear_network_equals_the_exact_theory(data):
    """The deep nonlinear route (docs/theory/finite_width.md section 6) with the identity activation at depth 3
    (a middle layer with both conjugate fields) against the exact deep-linear theory (section 5), 2 steps: the
    route samples the neurons, so they agree to its Monte Carlo error (a few % at 8192 paths)."""
    X, y = np.asarray(data.X[:2]), np.asarray(data.y[:2])
    Kx, lim, T1, P2 = X @ X.T / X.shape[1], limits.param("mup", 3).dmft_limit(), 3, 2
    src = mc.mlp_sources(8192, 3, T1, P2, 0, True, antithetic=True)
    sources = [(np.asarray(src["u1"]) @ mc._input_factor(Kx).T, src["r1"]), (src["u2"], src["r2"]), (src["u3"], src["r_top"])]
    cov, _ = fd.deep_nonlinear(activations.get("linear"), lim, Kx_all=Kx, y_all=y, train_mask=np.ones(P2), lr=LR,
                               sources=sources)
    cov = cov.reshape(T1, P2, T1, P2)
    route = np.stack([cov[t, :, t, :] for t in range(T1)])
    exact = deep_linear(lim, Kx_all=Kx, y_all=y, train_mask=np.ones(P2), lr=LR, steps=T1 - 1).cov
    assert abs(np.trace(route, axis1=1, axis2=2).sum() / np.trace(exact, axis1=1, axis2=2).sum() - 1) < 0.05
    assert np.linalg.norm(route - exact) / np.linalg.norm(exact) < 0.08


@pytest.mark.parametrize("name, kurtosis", [("relu", 5.0), ("linear", 2.0)])
def test_initial_kernel_covariance_grows_with_depth(data, name, kurtosis):
    """At initialization ``N Cov(Phi^k, Phi^l) = min(k, l) (E phi^4 / (E phi^2)^2 - 1) Phi^k Phi^l`` for one input
    (homogeneous phi: each layer multiplies the kernel by an independent average of N squares), and for linear nets
    ``N Cov(Phi^k_{mu nu}, Phi^l_{rho sigma}) = min(k, l) (K_{mu rho} K_{nu sigma} + K_{mu sigma} K_{nu rho})``."""
    X = np.asarray(data.X[:2])
    Kx = X @ X.T / X.shape[1]
    lim = limits.param("mup", 3).dmft_limit()
    depth = np.minimum.outer([1, 2], [1, 2])
    if name == "relu":
        C = fd.initial_kernel_covariance(activations.get(name), lim, Kx[:1, :1], samples=8192)[:, 0, 0, :, 0, 0]
        mean = Kx[0, 0] * 0.5 ** np.array([1, 2])
        np.testing.assert_allclose(C / np.outer(mean, mean), kurtosis * depth, rtol=0.02)
    else:
        C = fd.initial_kernel_covariance(activations.get(name), lim, Kx, samples=8192)
        KK = np.einsum("ac,bd->abcd", Kx, Kx) + np.einsum("ad,bc->abcd", Kx, Kx)  # = kurtosis x Kx^2 on the diagonal
        np.testing.assert_allclose(C, depth[:, None, None, :, None, None] * KK[None, :, :, None], rtol=0.03,
                                   atol=0.03 * np.max(KK))
