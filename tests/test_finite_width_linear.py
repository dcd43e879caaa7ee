"""The width-N theory of deep linear MLPs (docs/theory/finite_width.md section 5, ``limits.dmft.finite_width_linear``).

Rungs: closed forms (the fluctuations at initialization, their growth with depth, and the exact propagation of the
initial fluctuations when the targets vanish), the two-layer theory of another solver (Monte Carlo single-site
paths), and convergence of finite-width ensembles (``limits.simulate``).
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

import limits
from limits.dmft import finite_width as fw
from limits.dmft import finite_width_linear as fl
from limits.dmft import monte_carlo as mc
from limits.parametrization import entry_table

P, LR = 4, 0.5


@pytest.fixture(scope="module")
def data():
    return limits.datasets.teacher(P=P, D=8, seed=0)


def _coefficients(data, depth, steps, y=None, **kw):
    """``deep_linear`` on ``data`` (mup, gamma0 = 1), and the table's DMFT constants."""
    lim = entry_table("mup", depth)[0].dmft_limit()
    Kx = data.X @ data.X.T / data.X.shape[1]
    yy = data.y if y is None else y
    res = fl.deep_linear(lim, Kx_all=Kx, y_all=yy, train_mask=np.ones(P), lr=LR, steps=steps, **kw)
    return res, lim, Kx


def test_reproduces_the_numpy_prototype_and_the_growth_with_depth_at_initialization(data):
    """Against the stored numpy prototype (hand-written forward mode, validated against ensembles;
    ``tests/data/make_deep_linear_reference.py``) to 1e-10 over the trajectory; at initialization the closed forms
    ``N Var f(0) = Phi^L / gamma^2`` and ``N Var Phi^l_{mu nu} = l (Phi_mumu Phi_nunu + Phi_munu^2)`` (Gaussian
    products of ``l`` independent layers: the variance grows linearly with depth)."""
    ref = json.loads((pathlib.Path(__file__).parent / "data" / "deep_linear_reference.json").read_text())
    depth, steps = ref["config"]["depth"], ref["config"]["steps"]
    res, lim, Kx = _coefficients(data, depth, steps, kernels=("ntk",) + tuple(f"phi{l}" for l in range(1, depth + 1)),
                                 mean_shift=False)
    np.testing.assert_allclose(res.cov, ref["cov"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.kernel_var["ntk"], ref["ntk_var"], rtol=1e-10, atol=1e-12)
    for l in range(1, depth + 1):
        np.testing.assert_allclose(res.kernel_var[f"phi{l}"], ref["phi_var"][l - 1], rtol=1e-10, atol=1e-12)
    b = np.asarray(lim.b)
    for l in range(1, depth + 1):
        phi = Kx * np.prod(b[:l] ** 2)
        expected = l * (np.outer(np.diag(phi), np.diag(phi)) + phi**2)
        np.testing.assert_allclose(res.kernel_var[f"phi{l}"][0], expected, rtol=1e-10)
    np.testing.assert_allclose(res.cov[0], Kx * np.prod(b[:depth] ** 2) * b[depth] ** 2 / lim.gamma**2, rtol=1e-10)


def test_frozen_features_give_the_lazy_closed_form(data):
    """Hidden layers frozen (``kappa_1..L = 0``: the lazy limit, a random-features model of the width-N features):
    ``Delta(t) = M_N^t Delta(0)`` with ``M_N = I - lr kappa_{L+1} Phi^L_N / P``, so to first order
    ``delta f(t) = M^t delta f(0) + sum_j M^j (lr kappa / P) delta Phi M^{t-1-j} Delta(0)`` with
    ``N Cov(Phi_{mu nu}, Phi_{ab}) = L (Phi_{mu a} Phi_{nu b} + Phi_{mu b} Phi_{nu a})`` independent of ``f(0)``
    (closed form; for one point ``N Var Delta(t) = N Var Phi (lr kappa y / P)^2 t^2 m^{2(t-1)} + m^{2t} N Var f(0)``,
    the discrete-time analogue of BP23's ``kappa y^2 t^2 e^{-2Kt}``), to 1e-10."""
    depth, steps = 2, 6
    lim0 = entry_table("mup", depth)[0].dmft_limit()
    lim = dataclasses.replace(lim0, kappa=(0.0,) * depth + (lim0.kappa[-1],))
    Kx = data.X @ data.X.T / data.X.shape[1]
    res = fl.deep_linear(lim, Kx_all=Kx, y_all=data.y, train_mask=np.ones(P), lr=LR, steps=steps, mean_shift=False)
    b, k = np.asarray(lim.b), lim.kappa[-1]
    phi = Kx * np.prod(b[:depth] ** 2)
    a = LR * k / P
    M = np.eye(P) - a * phi
    sigma0 = phi * b[depth] ** 2 / lim.gamma**2
    cov4 = depth * (np.einsum("ma,nb->mnab", phi, phi) + np.einsum("mb,na->mnab", phi, phi)).reshape(P * P, P * P)
    lam, U = np.linalg.eigh(cov4)
    Mp = [np.linalg.matrix_power(M, j) for j in range(steps + 1)]
    for t in range(steps + 1):
        dirs = [sum(Mp[j] @ (a * U[:, i].reshape(P, P)) @ Mp[t - 1 - j] for j in range(t)) @ data.y if t else np.zeros(P)
                for i in range(P * P)]
        expected = Mp[t] @ sigma0 @ Mp[t].T + sum(li * np.outer(d, d) for li, d in zip(lam, dirs))
        np.testing.assert_allclose(res.cov[t], expected, rtol=1e-10, atol=1e-13)


def test_depth_one_agrees_with_the_monte_carlo_two_layer_theory(data):
    """The exact route at depth 1 and the single-site Monte Carlo route of two-layer networks (16384 paths) give the
    same ``N Cov f`` and mean shift within the paths' sampling error (bounds: 3% in trace, 5% Frobenius, 10% for the
    mean shift and the NTK variance)."""
    steps = 6
    exact, lim, Kx = _coefficients(data, 1, steps, kernels=("ntk",))
    f_inf = limits.solve_dmft("mup", 1, X=data.X, y=data.y, activation="linear", lr=LR, steps=steps,
                              progress=False).predictions
    src = mc.mlp_sources(fw.SAMPLES, 1, steps + 1, P, 0, True, antithetic=True)
    paths = fw.two_layer(limits.activations.get("linear"), lim, Kx_all=Kx, y_all=data.y, train_mask=np.ones(P), lr=LR,
                         kernels=("ntk",), f_inf=f_inf, u=np.asarray(src["u1"]) @ mc._input_factor(Kx).T,
                         r=src["r_top"])
    trace = lambda c: np.trace(c, axis1=1, axis2=2)
    np.testing.assert_allclose(trace(paths.cov), trace(exact.cov), rtol=0.03)
    assert np.linalg.norm(paths.cov - exact.cov) < 0.05 * np.linalg.norm(exact.cov)
    assert np.linalg.norm(paths.mean_shift - exact.mean_shift) < 0.1 * np.linalg.norm(exact.mean_shift)
    np.testing.assert_allclose(paths.kernel_var["ntk"], exact.kernel_var["ntk"], rtol=0.1, atol=1e-3)


def test_depth_two_matches_a_width_128_ensemble(data):
    """``solve_dmft(.., width=128)`` of a depth-2 linear MLP against 1024 networks of width 128: ``N Cov f`` within
    10% in total variance and 20% in relative Frobenius norm (issue bars; measured with 2048 networks: 0.9% and
    5.8%; the sampling error of 1024 is about 6% in Frobenius), and the mean within
    4 standard errors of the ensemble mean of ``f_inf + mean_shift / N`` (the shift itself is more than 4 errors)."""
    N, steps, S = 128, 5, 1024
    kw = dict(X=data.X, y=data.y, activation="linear", lr=LR, steps=steps, progress=False)
    theory = limits.solve_dmft("mup", 2, N, record=None, **kw)
    assert theory.meta["finite_width"]["samples"] == 0 and "exact" in theory.meta["finite_width"]["method"]
    sim = limits.simulate("mup", 2, width=N, seeds=S, record=(), **kw)
    C, sigma = sim.prediction_cov, theory.prediction_cov
    trace = lambda c: np.trace(c, axis1=1, axis2=2).sum()
    assert abs(trace(C) / trace(sigma) - 1) < 0.1
    assert np.linalg.norm(C - sigma) < 0.2 * np.linalg.norm(sigma)
    stderr = np.sqrt(np.diagonal(sigma, axis1=1, axis2=2) / S)
    inf = limits.solve_dmft("mup", 2, **kw).predictions
    assert np.all(np.abs(sim.predictions - theory.predictions) < 4 * stderr + 1e-3)
    assert np.max(np.abs(theory.predictions - inf) / stderr) > 4


def test_deep_relu_networks_and_tiny_targets_are_not_covered_and_say_so(data):
    with pytest.warns(RuntimeWarning, match="depth 3 needs second derivatives"):
        tr = limits.solve_dmft("mup", 3, 256, X=data.X, y=data.y, activation="relu", lr=LR, steps=2, progress=False,
                               record=None, method=limits.dmft.MonteCarlo(samples=1024))
    assert tr.meta["finite_width"]["corrections"] == ()
    for scale in (0.0, 1e-8):
        with pytest.warns(RuntimeWarning, match="targets are zero or tiny"):
            limits.solve_dmft("mup", 2, 256, X=data.X, y=scale * data.y, activation="linear", lr=LR, steps=2,
                              progress=False)


def test_small_targets_reveal_the_same_directions(data):
    """The rank decisions scale with the errors: targets 1e-3 and 2e-6 times the data's give the same ``N Cov f``
    (the dynamics are linear in small targets); with an absolute threshold the smaller ones lost the directions."""
    # 5 steps at depth 2: the structure of targets 1e-3 times the data's is that of the data's, so the first call
    # reuses the programs compiled for the ensemble test above (the tiny targets reveal fewer directions: a new shape)
    small = [_coefficients(data, 2, 5, y=s * data.y, mean_shift=False)[0].cov for s in (1e-3, 2e-6)]
    np.testing.assert_allclose(small[1], small[0], rtol=1e-3, atol=1e-8)


def test_unknown_kernel_names_are_rejected(data):
    with pytest.raises(ValueError, match="unknown kernels"):
        _coefficients(data, 2, 2, kernels=("phi3",))
