"""The causal march reproduces the iterative solvers it replaced (issue 14).

``tests/data/fixed_point_reference.npz`` holds the converged fixed points (relative residual < 1e-12, no
Monte Carlo stopping rule) of the damped fixed-point solvers that the march replaced, run on the same
sources (command and commit: tests/data/make_fixed_point_reference.py). On the same sources the march must
give the same predictions, kernels and response functions to 1e-8 (relative): the equations are causal, so
one pass forward in time computes their fixed point. The layer-time ODEs are integrated by another Heun
variant (row by row in time), so there the check is that both converge to the same limit at O(K^-2).
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

import limits
from limits.dmft import march as _march
from limits.dmft import monte_carlo as mc

REF = np.load(pathlib.Path(__file__).parent / "data" / "fixed_point_reference.npz")
INFO = json.loads(str(REF["info"]))


@pytest.fixture(scope="module")
def problem():
    d = limits.datasets.teacher(**INFO["data"])
    scale = np.std(np.concatenate([d.y, d.y_test]))  # the reference's labels: unit variance over train + test
    d = d._replace(y=d.y / scale, y_test=d.y_test / scale)  # (the teacher's normalization before issue 15)
    X_all = np.concatenate([d.X, d.X_test])
    Q, P = d.X_test.shape[0], len(d.y)
    return dict(Kx_all=X_all @ X_all.T / d.X.shape[1], y_all=np.concatenate([d.y, np.zeros(Q)]),
                train_mask=np.concatenate([np.ones(P), np.zeros(Q)])), d


def _rel(a, b):
    return np.abs(np.asarray(a) - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("case", ["tanh_d1", "tanh_d2", "relu_d2", "resnet_tanh_L2", "completep_relu_L2"])
def test_monte_carlo_march_equals_the_iterated_fixed_point(problem, case):
    """Measured: predictions and kernels 1e-15 to 1e-14, responses 1e-13 to 1e-11 (relative)."""
    data, _ = problem
    c = INFO["cases"][case]
    table = limits.param(c["table"], c["depth"])
    limit = table.dmft_limit()
    T1, Pa = c["steps"] + 1, data["Kx_all"].shape[0]
    draw = mc.resnet_sources if limit.residual else mc.mlp_sources
    src = draw(c["samples"], limit.fields, T1, Pa, c["seed"], antithetic=False)  # the reference's one-sided sources
    pr, consts = mc.build(c["activation"], **data, steps=c["steps"], lr=c["lr"], limit=limit, sources=src,
                          stein_jitter=1e-4 if limit.residual else 1e-3, two_time=True)
    sol = mc.solve(pr, consts)
    assert _rel(sol.f, REF[f"{case}/f"]) < 1e-8
    K = limit.fields
    for k in range(1, K + 1):
        for q in ("Phi", "G"):
            M = np.tril(sol.two[f"{q}{k}"]) + np.tril(sol.two[f"{q}{k}"], -1).T  # rows hold s <= t
            assert _rel(M, REF[f"{case}/{q}{k - 1}"]) < 1e-8, (q, k)
    for k in range(1, K):
        for q in ("A", "B"):
            assert _rel(sol.two[f"{q}{k}"], REF[f"{case}/{q}{k - 1}"]) < 1e-8, (q, k)


def test_solve_dmft_marches_the_same_fixed_point(problem):
    _, d = problem
    c = INFO["cases"]["tanh_d2"]
    tr = limits.solve_dmft("mup", 2, X=d.X, y=d.y, X_test=d.X_test, activation="tanh", lr=c["lr"], steps=c["steps"],
                           method=limits.dmft.MonteCarlo(samples=c["samples"], antithetic=False), seed=c["seed"], progress=False,
                           record=("ntk", "kernels", "two_time"))
    f = REF["tanh_d2/f"]
    assert _rel(tr.predictions, f[:, :4]) < 1e-8 and _rel(tr.test_predictions, f[:, 4:]) < 1e-8
    T1, Pa = c["steps"] + 1, 6
    phi = REF["tanh_d2/Phi0"].reshape(T1, Pa, T1, Pa)[:, :4, :, :4].transpose(0, 2, 1, 3)
    assert _rel(tr.kernels["phi1_tt"], phi) < 1e-8


def test_deep_linear_march_equals_the_iterated_equations(problem):
    _, d = problem
    tr = limits.solve_dmft("mup", 3, X=d.X, y=d.y, X_test=d.X_test, activation="linear", lr=0.5, steps=10,
                           record=("ntk", "kernels", "two_time"), progress=False)
    f = REF["linear_d3/f"]
    assert _rel(tr.predictions, f[:, :4]) < 1e-10 and _rel(tr.test_predictions, f[:, 4:]) < 1e-10
    assert _rel(tr.ntk, REF["linear_d3/ntk"]) < 1e-10
    for k in (1, 2, 3):
        assert _rel(tr.kernels[f"phi{k}_tt"], REF[f"linear_d3/phi{k}_tt"]) < 1e-10
        assert _rel(tr.kernels[f"g{k}"], REF[f"linear_d3/g{k}"]) < 1e-10


def test_linear_residual_march_equals_the_iterated_riccati_sweep(problem):
    _, d = problem
    tr = limits.solve_dmft("depth-mup", 3, X=d.X, y=d.y, X_test=d.X_test, activation="linear", lr=0.5, steps=6,
                           progress=False)
    f = REF["resnet_linear_L3/f"]
    assert _rel(tr.predictions, f[:, :4]) < 1e-10 and _rel(tr.test_predictions, f[:, 4:]) < 1e-10
    assert _rel(tr.ntk, REF["resnet_linear_L3/ntk"]) < 1e-10
    for k in range(1, 5):
        for q in ("phi", "g"):
            assert _rel(tr.kernels[f"{q}{k}"], REF[f"resnet_linear_L3/{q}{k}"]) < 1e-10


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
def test_layer_time_march_and_iterated_odes_converge_to_one_limit(problem, name):
    """Both integrate the layer-time ODEs with Heun's method (error O(K^-2)): the old solver on whole matrices,
    the march row by row in time. Against the old solution extrapolated from K = 64 and 128 steps, the march's
    error falls by ~4 per doubling of K (measured depth-mup 2.2e-4 -> 5.6e-5, completep 5.1e-7 -> 1.3e-7)."""
    _, d = problem
    key = {"depth-mup": "resnet_linear", "completep": "completep_linear"}[name]
    old = {K: REF[f"{key}_inf{K}/f"] for K in (64, 128)}
    limit = old[128] + (old[128] - old[64]) / 3
    err = {}
    for K in (64, 128):
        tr = limits.solve_dmft(name, math.inf, X=d.X, y=d.y, X_test=d.X_test, activation="linear", lr=0.5, steps=6,
                               depth_steps=K, progress=False)
        err[K] = np.abs(np.concatenate([tr.predictions, tr.test_predictions], axis=1) - limit).max()
    assert 3.2 < err[64] / err[128] < 4.8, err
    assert err[128] < 1e-4 * np.abs(limit).max(), err


def test_compiled_time_blocks_are_reused_across_calls():
    """A second solve of the same shapes (another lr, seed and data) compiles nothing new."""
    kw = dict(activation="tanh", steps=5, method=limits.dmft.MonteCarlo(samples=256), progress=False)
    d1, d2 = limits.datasets.teacher(P=3, D=4, seed=0), limits.datasets.teacher(P=3, D=4, seed=1)
    limits.solve_dmft("mup", 2, X=d1.X, y=d1.y, lr=0.5, **kw)
    before = _march._block._cache_size()
    limits.solve_dmft("mup", 2, X=d2.X, y=d2.y, lr=0.3, seed=4, **kw)
    assert _march._block._cache_size() == before
