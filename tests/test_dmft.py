"""Tests of limits.solve_dmft (issue 6).

Validation rungs: an exact deterministic recursion (two-layer linear), the lazy
limit (gamma0 -> 0 is kernel GD, deviation O(gamma0^2)), the deep-linear kernel
equations against the Monte Carlo solver with a linear callable, and finite-width
networks (tests/reference_net.py) extrapolated in 1/N. The deep finite-width
ensembles are too slow for the test budget and are stored in
tests/data/dmft_reference.json (regenerate: ``python tests/reference_net.py``;
the depth-2 cases come from ``limits.simulate`` at N = 512/1024/2048:
``python tests/reference_net.py --simulate tanh_d2 relu_d2``).
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np
import pytest

import limits
from limits.analysis import extrapolate_in_width
from limits.dmft import solve_dmft

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import reference_net  # noqa: E402

REF = json.loads(reference_net.reference_path().read_text()) if reference_net.reference_path().exists() else {}


@pytest.fixture(scope="session")
def data():
    return limits.datasets.teacher(**reference_net.DATA)


@pytest.fixture(scope="session")
def small():
    return limits.datasets.teacher(P=4, D=8, P_test=3, seed=1)


# ----------------------------------------------------------------- exact rungs
def test_reference_net_is_gradient_descent(small):
    """The hand-written backprop equals autodiff GD of the pinned network (depth 3)."""
    import jax
    import jax.numpy as jnp

    X, y = small.X, small.y
    N, depth, g, lr, T = 16, 3, 0.7, 0.3, 4
    losses, _ = reference_net.train(X, y, width=N, depth=depth, gamma0=g, lr=lr, steps=T, seeds=1, seed=3)
    rng = np.random.default_rng(3)
    params = [jnp.array(rng.standard_normal((N, X.shape[1])))]
    params += [jnp.array(rng.standard_normal((N, N))) for _ in range(depth - 1)]
    params += [jnp.array(rng.standard_normal(N))]

    def loss(p):
        h = X @ p[0].T / np.sqrt(X.shape[1])
        for W in p[1:-1]:
            h = jnp.tanh(h) @ W.T / np.sqrt(N)
        return 0.5 * jnp.mean((jnp.tanh(h) @ p[-1] / (g * N) - y) ** 2)

    expected = []
    for _ in range(T + 1):
        expected.append(float(loss(params)))
        grads = jax.grad(loss)(params)
        params = [a - lr * g**2 * N * b for a, b in zip(params, grads)]
    np.testing.assert_allclose(losses[0], expected, rtol=1e-6)


def test_two_layer_linear_matches_exact_recursion(data):
    X, y = data.X, data.y
    P, D = X.shape
    lr, g, T = 0.2, 1.3, 25
    C, q, b = np.eye(D), 1.0, np.zeros(D)
    expected = []
    for _ in range(T + 1):
        f = X @ b / np.sqrt(D)
        expected.append(0.5 * np.mean((f - y) ** 2))
        e = X.T @ (y - f)
        k = (lr * g) ** 2 / (P**2 * D)
        b, C, q = (
            b + lr / (P * np.sqrt(D)) * (C @ e + q * e) + k * e * (b @ e),
            C + lr * g**2 / (P * np.sqrt(D)) * (np.outer(b, e) + np.outer(e, b)) + k * q * np.outer(e, e),
            q + 2 * lr * g**2 / (P * np.sqrt(D)) * (b @ e) + k * (e @ C @ e),
        )
    tr = solve_dmft("mup", 1, X=X, y=y, activation="linear", gamma0=g, lr=lr, steps=T, progress=False)
    np.testing.assert_allclose(tr.loss, expected, rtol=1e-8)
    assert tr.meta["solver"] == "dmft" and tr.diagnostics["iterations"] >= 1


def _kernel_gd(X, y, depth, act, lr, T):
    from limits.dmft.solver import initial_kernels, kernel_gd

    Phis, Gs = initial_kernels(limits.activations.get(act), X @ X.T / X.shape[1], depth)
    ntk = sum(Gs[l] * Phis[l] for l in range(depth + 1))
    f = kernel_gd(ntk, y, lr, T)
    return f, ntk


@pytest.mark.parametrize("depth,act", [(1, "tanh"), (2, "linear")])
def test_lazy_limit_is_kernel_gd_with_gamma_squared_deviation(small, depth, act):
    """gamma0 -> 0 is kernel GD with the NTK, and f(gamma0) - f(0) = O(gamma0^2): with the same
    sources, successive differences at gamma0 = g, 2g, 4g scale by 4."""
    X, y, T, lr = small.X, small.y, 12, 0.5
    f_k, ntk_exact = _kernel_gd(X, y, depth, act, lr, T)
    preds = []
    for g in (0.02, 0.04, 0.08):
        tr = solve_dmft("mup", depth, X=X, y=y, activation=act, gamma0=g, lr=lr, steps=T, samples=2048,
                        progress=False, tol=1e-11)
        preds.append(tr.predictions)
    mc_tol = 1e-10 if act == "linear" else 0.02  # Monte Carlo error of the sampled kernels
    np.testing.assert_allclose(tr.ntk[0], ntk_exact, atol=3 * mc_tol)
    np.testing.assert_allclose(preds[0], f_k, atol=mc_tol + 1e-3)
    d1 = np.abs(preds[1] - preds[0]).max()
    d2 = np.abs(preds[2] - preds[1]).max()
    assert 3.5 < d2 / d1 < 4.5, d2 / d1  # O(gamma0^2)


def test_deep_linear_equations_match_monte_carlo(small):
    X, y = small.X, small.y
    exact = solve_dmft("mup", 2, X=X, y=y, activation="linear", lr=0.1, steps=8, progress=False)
    mc = solve_dmft("mup", 2, X=X, y=y, activation=lambda h: 1.0 * h, lr=0.1, steps=8, samples=2048,
                    progress=False, tol=1e-6)
    assert mc.diagnostics["method"].startswith("Monte Carlo")
    err = np.abs(np.log(mc.loss / exact.loss)).max()
    assert err < 0.02, err
    np.testing.assert_allclose(mc.kernels["phi2"], exact.kernels["phi2"], rtol=0.05, atol=0.02)


def test_outputs_shapes_and_test_points(small):
    X, y, Xt = small.X, small.y, small.X_test
    T = 6
    tr = solve_dmft("mup", 2, X=X, y=y, X_test=Xt, activation="linear", lr=0.2, steps=T, progress=False,
                    record="two_time")
    P, Q = len(y), len(Xt)
    assert tr.loss.shape == (T + 1,) and tr.predictions.shape == (T + 1, P)
    assert tr.test_predictions.shape == (T + 1, Q) and tr.ntk.shape == (T + 1, P, P)
    for k in ("phi1", "phi2", "g1", "g2"):
        assert tr.kernels[k].shape == (T + 1, P, P)
    assert tr.kernels["phi1_tt"].shape == (T + 1, T + 1, P, P)
    np.testing.assert_allclose(np.einsum("ttab->tab", tr.kernels["phi1_tt"]), tr.kernels["phi1"])
    assert np.all(tr.predictions[0] == 0) and np.all(tr.test_predictions[0] == 0)
    # adding test points does not change the train dynamics
    tr2 = solve_dmft("mup", 2, X=X, y=y, activation="linear", lr=0.2, steps=T, progress=False)
    np.testing.assert_allclose(tr2.loss, tr.loss, rtol=1e-10)
    assert len(tr.diagnostics["residuals"]) == tr.diagnostics["iterations"]


def test_causal_blocked_responses_equal_dense(small):
    """The time-blocked response march (the default) is the dense march, reorganized."""
    from limits.dmft import solver as mc

    X, y = small.X, small.y
    act = limits.activations.get("tanh")
    Kx, P, T = X @ X.T / X.shape[1], len(y), 6
    st0 = mc.initial_state(act, Kx, y, np.ones(P), 0.5, 1.0, 2, T)
    out = []
    for dense in (False, True):
        pb = mc.MonteCarloProblem(act=act, Kx_all=Kx, y_all=y, train_mask=np.ones(P), depth=2, steps=T, gamma=1.0,
                                  lr=0.5, samples=32, seed=0, response_samples=32, response_blocks=3,
                                  responses="tangent")
        if dense:
            pb._responses = pb._responses_dense
        st = st0
        for _ in range(2):
            st, _, _ = pb.step(st, 1.0, True)
        out.append([np.asarray(st[k][0]) for k in ("A", "B", "G")])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())


def test_blown_up_fixed_point_iteration_is_reported_as_such(small, monkeypatch):
    from limits.dmft import solver as mc

    def bad_step(self, state, damping, responses=True, horizon=None):
        return state, float("nan"), {}

    monkeypatch.setattr(mc.MonteCarloProblem, "step", bad_step)
    with pytest.raises(FloatingPointError, match=r"fixed-point iteration blew up.*damping=0\.5.*smaller lr"):
        solve_dmft("mup", 1, X=small.X, y=small.y, activation="tanh", lr=0.5, steps=3, samples=16, progress=False)


# ----------------------------------------------------- finite-width accuracy
def _extrapolation_sigma(ref):
    """Standard error of the 1/N extrapolation (from the seed standard errors), relative."""
    _, se = extrapolate_in_width(ref["widths"], ref["mean"], ref["stderr"])
    return se / np.asarray(ref["extrapolated"])


@pytest.mark.parametrize(
    "name,samples",
    [("tanh_d1", 8192), ("linear_d3", None), ("tanh_d2", 4096), ("relu_d2", 16384)],
)
def test_accuracy_against_extrapolated_finite_width(data, name, samples):
    """max_t |log L_dmft - log L_ext| <= 2% + 2 sigma of the finite-width extrapolation."""
    if name not in REF:
        pytest.skip(f"no stored reference for {name}; run python tests/reference_net.py")
    ref = REF[name]
    c = ref["case"]
    tr = solve_dmft("mup", c["depth"], X=data.X, y=data.y, activation=c["activation"], lr=c["lr"], steps=c["steps"],
                    samples=samples, progress=False, tol=1e-5)
    ext = np.asarray(ref["extrapolated"])
    dev = np.abs(np.log(tr.loss / ext))
    sigma = _extrapolation_sigma(ref)
    assert tr.loss[-1] / tr.loss[0] < 2e-2  # the trajectory goes down about two decades
    assert np.all(dev <= 0.02 + 2 * sigma), (
        f"{name}: max |dlog L| = {dev.max():.4f} (2 sigma of the reference up to {2 * sigma.max():.4f})")


def test_stein_responses_agree_with_tangent_responses(small):
    """Two estimators of A = E[d phi/d r], B = E[d g/d u]: Gaussian integration by parts (Stein,
    the default, O(S n^2)) and per-path tangent solves (O(R n^3)). Same fixed point within the
    Monte Carlo error (seed-to-seed spread of the loss ~0.8% here)."""
    kw = dict(X=small.X, y=small.y, activation="tanh", lr=0.5, steps=6, samples=2048, progress=False, tol=1e-6)
    stein = solve_dmft("mup", 2, responses="stein", **kw)
    tangent = solve_dmft("mup", 2, responses="tangent", **kw)
    assert np.abs(np.log(stein.loss / tangent.loss)).max() < 0.015


def test_blocked_paths_and_causal_continuation_reach_the_same_fixed_point(small):
    """The time-blocked path march equals the unblocked one, and converging the trajectory window
    by window (horizon T/4, T/2, ...), on the full grid or as the windows' own smaller problems
    (``window_problems``), reaches the fixed point of the whole-trajectory iteration."""
    from limits.dmft import solver as mc

    X, y = small.X, small.y
    act = limits.activations.get("tanh")
    Kx, P, T = X @ X.T / X.shape[1], len(y), 7
    st0 = mc.initial_state(act, Kx, y, np.ones(P), 0.5, 1.0, 2, T)
    finals = []
    for nb, horizons, own in ((1, [T + 1], False), (3, [2, 4, 6, T + 1], False), (3, [2, 4, 6, T + 1], True)):
        pb = mc.MonteCarloProblem(act=act, Kx_all=Kx, y_all=y, train_mask=np.ones(P), depth=2, steps=T, gamma=1.0,
                                  lr=0.5, samples=256, seed=0, path_blocks=nb, window_problems=own)
        st = st0
        for h in horizons:
            for _ in range(60):
                st, res, _ = pb.step(st, 1.0, True, h)
                if float(res) < 1e-11:
                    break
        assert float(res) < 1e-11
        finals.append(st)
    for k in ("f", "Phi", "G", "A", "B"):
        for other in finals[1:]:
            for a, b in zip(jax_leaves(finals[0][k]), jax_leaves(other[k])):
                np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())


def test_float32_matches_float64_on_the_same_sources(small):
    """Single precision moves the sampled fixed point by far less than its Monte Carlo error
    (measured: depth-2 tanh 4e-6, ReLU 8e-4 in log loss on the accuracy cases, which have errors ~1-4%)."""
    kw = dict(X=small.X, y=small.y, lr=0.5, steps=7, samples=512, progress=False)
    for act in ("tanh", "relu"):
        lo = solve_dmft("mup", 2, activation=act, dtype="float32", **kw)
        hi = solve_dmft("mup", 2, activation=act, **kw)
        assert lo.diagnostics["converged"] and lo.loss.dtype == np.float64
        dlog = np.abs(np.log(lo.loss / hi.loss)).max()
        assert dlog < 0.2 * np.max(hi.loss_stderr / hi.loss) and dlog < 5e-3, (act, dlog)


def test_fixed_point_driver_halves_a_window_that_blows_up():
    """A causal window too far from the last converged one blows up; the driver retries it from there
    with half the extension until it converges, then goes on (a model map that converges only when
    the horizon extends the converged prefix by at most 4 time points)."""
    from limits.dmft.iteration import causal_windows, fixed_point

    class Model:
        T1, visited = 17, []

        def step(self, state, damping, horizon):
            self.visited.append(horizon)
            ok = horizon - state["done"] <= 4
            new = {"f": np.zeros(self.T1), "done": horizon if ok else state["done"]}
            return new, (0.0 if ok else 1e4), {"loss_stderr": np.zeros(self.T1)}

    model = Model()
    windows = causal_windows(17)
    assert windows == [5, 9, 13, 17]
    out = fixed_point(model, {"f": np.zeros(17), "done": 0}, schedules=[[2, 17]], y=np.ones(1), tol=1e-9,
                      max_iter=50, monte_carlo=False)
    assert out[3] == "tol" and out[0]["done"] == 17
    assert model.visited == [2, 17, 9, 5, 9, 17, 13, 17]
    model.visited.clear()  # a single horizon is never split: the schedule's own fallback decides
    assert fixed_point(model, {"f": np.zeros(17), "done": 0}, schedules=[[17]], y=np.ones(1), tol=1e-9,
                       max_iter=50, monte_carlo=False)[3] == "blew up"


def test_fixed_point_driver_reaches_the_same_fixed_point_from_another_start(small):
    """limits.dmft.iteration.fixed_point: started from the fixed point of other sources (64 paths),
    the whole-trajectory iteration reaches the same sampled fixed point as the causal windows from the
    lazy guess (the fixed point of the sampled equations does not depend on the start)."""
    from limits.dmft import solver as mc
    from limits.dmft.iteration import causal_windows, fixed_point

    X, y = small.X, small.y
    act = limits.activations.get("tanh")
    Kx, P, T = X @ X.T / X.shape[1], len(y), 7
    st0 = mc.initial_state(act, Kx, y, np.ones(P), 0.5, 1.0, 2, T)
    kw = dict(act=act, Kx_all=Kx, y_all=y, train_mask=np.ones(P), depth=2, steps=T, gamma=1.0, lr=0.5)
    fine, coarse = mc.MonteCarloProblem(samples=256, seed=0, **kw), mc.MonteCarloProblem(samples=64, seed=5, **kw)
    run = dict(y=y, tol=1e-11, max_iter=300, monte_carlo=False)
    direct = fixed_point(fine, st0, schedules=[causal_windows(T + 1)], **run)
    st_c = fixed_point(coarse, st0, schedules=[causal_windows(T + 1)], **run)[0]
    warm = fixed_point(fine, st_c, schedules=[[T + 1]], **run)
    assert direct[3] == warm[3] == "tol"
    assert len(warm[1]) < len(direct[1])  # the other sources' fixed point is the better start
    for k in ("f", "Phi", "G"):
        for a, b in zip(jax_leaves(direct[0][k]), jax_leaves(warm[0][k])):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())


@pytest.mark.filterwarnings("ignore:samples=64 is below 8 n")  # few paths on purpose: a backend comparison
@pytest.mark.parametrize("responses", ["stein", "tangent"])
def test_numba_backend_matches_jax_on_the_same_sources(small, responses):
    kw = dict(X=small.X, y=small.y, activation="tanh", lr=0.5, steps=4, samples=64, progress=False, tol=1e-9,
              responses=responses, response_samples=None)
    a = solve_dmft("mup", 2, backend="jax", **kw)
    b = solve_dmft("mup", 2, backend="numba", **kw)
    assert b.diagnostics["method"] == "Monte Carlo (numba)"
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-8)
    np.testing.assert_allclose(b.kernels["g1"], a.kernels["g1"], rtol=1e-7, atol=1e-10)


def jax_leaves(x):
    return [np.asarray(v) for v in (x if isinstance(x, list) else [x])]


# ------------------------------------------------------------------ bad input
def test_bad_inputs(small):
    X, y = small.X, small.y
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solve_dmft("mup", 1, X=bad, y=y, activation="linear", steps=3, progress=False)
    with pytest.raises(ValueError, match="rows"):
        solve_dmft("mup", 1, X=X, y=y[:-1], activation="linear", steps=3, progress=False)
    with pytest.raises(ValueError, match="steps"):
        solve_dmft("mup", 1, X=X, y=y, activation="linear", steps=0, progress=False)
    with pytest.raises(ValueError, match="depth"):
        solve_dmft(limits.param("mup", depth=2), 1, X=X, y=y, activation="linear", steps=3, progress=False)
    with pytest.raises(ValueError, match="unknown activation"):
        solve_dmft("mup", 1, X=X, y=y, activation="nope", steps=3, progress=False)
    with pytest.raises(FloatingPointError, match=r"diverge at step \d+.*smaller lr"):
        solve_dmft("mup", 1, X=X, y=y, activation="linear", lr=50.0, steps=10, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        solve_dmft("mup", 2, X=X, y=y, steps=3, dtype="float16", progress=False)
    with pytest.raises(ValueError, match="float32.*backend='jax'"):
        solve_dmft("mup", 2, X=X, y=y, steps=3, dtype="float32", backend="numba", progress=False)


def test_unstable_parametrization_raises(small):
    p = limits.Parametrization.from_abc([0, 0], [0, 0], [-1, -1])  # readout too large: f blows up
    assert p.classify().regime == "unstable"
    with pytest.raises(ValueError, match="unstable"):
        solve_dmft(p, 1, X=small.X, y=small.y, activation="linear", steps=3, progress=False)


def test_ntk_at_finite_width_is_dmft_at_effective_gamma(small):
    X, y = small.X, small.y
    a = solve_dmft("ntk", 1, 400, X=X, y=y, activation="linear", lr=0.3, steps=6, progress=False)
    b = solve_dmft("mup", 1, X=X, y=y, activation="linear", gamma0=1 / math.sqrt(400), lr=0.3, steps=6,
                   progress=False)
    assert a.meta["gamma"] == pytest.approx(0.05)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
