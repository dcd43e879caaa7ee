"""Width-N theory of nonlinear MLPs of depth >= 2 (limits/dmft/finite_width_deep.py, docs/theory/finite_width.md
section 6): against ensembles, the exact deep-linear theory, and the closed form of the kernels' growth at init."""

import numpy as np
import pytest

import limits
from limits import activations
from limits.dmft import finite_width_deep as fd
from limits.dmft.finite_width_linear import deep_linear

LR = 0.5


@pytest.fixture(scope="module")
def data():
    return limits.datasets.teacher(P=4, D=8, seed=0)


def custom(x):
    """The identity under another name: the deep nonlinear route, not the exact linear one (``name == "custom"``)."""
    return x


def test_deep_route_through_solve_dmft_equals_the_exact_linear_theory(data):
    """``solve_dmft(..., width=N)`` at depth 3 (a middle layer with both conjugate fields) through the deep nonlinear
    route, on the identity activation, against the exact deep-linear theory (docs/theory/finite_width.md section 5):
    two train points and a test point, 2 steps. The route samples the neurons (16384 paths): 1.6% apart on the train
    block and 4.6% on the test point, measured; without the middle layer's MSR cross terms the train block is 5.6%
    off. The mean is the infinite-width one and ``meta`` says so. (tanh against ensembles:
    ``benchmarks/finite_width_theory.py --case "depth-2 tanh"`` / ``"depth-3 tanh"``.)"""
    kw = dict(X=data.X[:2], y=data.y[:2], X_test=data.X[2:3], y_test=data.y[2:3], lr=LR, steps=2, progress=False,
              record=None)
    tr = limits.solve_dmft("mup", 3, 256, activation=custom, **kw)
    meta = tr.meta["finite_width"]
    assert meta["corrections"] == ("covariance", "variance_in_loss") and "mean shift is not derived" in meta["mean"]
    np.testing.assert_array_equal(tr.predictions, limits.solve_dmft("mup", 3, activation=custom, **kw).predictions)
    X = np.asarray(data.X[:3])
    exact = deep_linear(limits.param("mup", 3).dmft_limit(), Kx_all=X @ X.T / X.shape[1],
                        y_all=np.r_[np.asarray(data.y[:2]), 0.0], train_mask=np.array([1.0, 1.0, 0.0]), lr=LR, steps=2,
                        mean_shift=False).cov / 256
    for C, E, tol in ((tr.prediction_cov, exact[:, :2, :2], 0.035), (tr.test_prediction_cov, exact[:, 2:, 2:], 0.08)):
        assert np.linalg.norm(C - E) / np.linalg.norm(E) < tol


def test_initial_relu_kernel_covariance_grows_with_depth(data):
    """At initialization ``N Cov(Phi^k, Phi^l) = min(k, l) (E phi^4 / (E phi^2)^2 - 1) Phi^k Phi^l`` for one input and
    a homogeneous phi (each layer multiplies the kernel by an independent average of N squares): ``5 min(k, l)`` for
    ReLU, which the route covers at initialization (first derivatives only). The linear nets' growth is tested with
    the exact route (``test_finite_width_linear.py``)."""
    X = np.asarray(data.X[:1])
    Kx = X @ X.T / X.shape[1]
    lim = limits.param("mup", 3).dmft_limit()
    C = fd.initial_kernel_covariance(activations.get("relu"), lim, Kx, samples=8192)[:, 0, 0, :, 0, 0]
    mean = Kx[0, 0] * 0.5 ** np.array([1, 2])
    np.testing.assert_allclose(C / np.outer(mean, mean), 5.0 * np.minimum.outer([1, 2], [1, 2]), rtol=0.02)
