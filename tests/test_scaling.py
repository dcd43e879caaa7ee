"""limits.scaling: the solved models against closed forms and Monte Carlo, the simulations against the literal
networks, the fits against known power laws, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import limits
from limits import scaling as sc
from limits.scaling import random_features as rf
from limits.scaling.task import power_law_task

LR = 0.5


def _exact_infinite_width(task, times, lr):
    """N = inf: K = Lambda, L(t) = 1/2 sum_k u_k^2 (1 - lr lambda_k)^(2t) (a closed form)."""
    u2 = task.whitened_target**2
    return 0.5 * np.array([np.sum(u2 * (1.0 - lr * task.eigenvalues) ** (2 * t)) for t in times])


@pytest.mark.parametrize("modes", [300, 6000])  # 6000 > 1024: the Gauss-Legendre tail of the mode sums
def test_deterministic_equivalent_is_exact_at_infinite_width(modes):
    task = power_law_task(1.5, 0.6, modes)
    times = np.array([0, 1, 2, 7, 15, 16, 17, 40, 333, 5000, 60000])
    got = rf.population_loss(rf.quadrature_modes(task), times, LR, math.inf)
    # roundoff of the contour sum is ~1e-13 absolute (the loss starts at 1/2)
    np.testing.assert_allclose(got, _exact_infinite_width(task, times, LR), rtol=1e-7, atol=1e-12)


def test_deterministic_equivalent_matches_monte_carlo_at_finite_width():
    """Exact per-draw losses (eigendecomposition of B B^T / N) averaged over 300 draws of the features. The DE
    is exact as N, M -> inf; at N = 64 its error measured with 600 draws is about 1% (hard task), and the Monte-Carlo
    standard error here is ~0.6%: tolerance 3 standard errors + 1.5%."""
    N, M = 64, 512
    task = power_law_task(1.5, 0.6, M)
    times = np.array([1, 5, 20, 100, 1000, 20000])
    de = rf.population_loss(rf.quadrature_modes(task), times, LR, N)
    rng = np.random.default_rng(7)
    u, draws = task.whitened_target, []
    for _ in range(300):
        B = rng.standard_normal((N, M)) * np.sqrt(task.eigenvalues)
        q, V = np.linalg.eigh(B @ B.T / N)
        c = (V.T @ (B @ u)) ** 2 / (N * q)  # u's weight on each nonzero eigenvector of K
        draws.append(0.5 * (u @ u - c.sum() + ((1.0 - LR * q)[None, :] ** (2 * times[:, None])) @ c))
    draws = np.array(draws)
    mc, se = draws.mean(0), draws.std(0, ddof=1) / math.sqrt(len(draws))
    assert np.all(np.abs(de - mc) <= 3 * se + 0.015 * mc), (de, mc, se)
    floor = rf.width_floor(rf.quadrature_modes(task), N)
    assert abs(de[-1] - floor) < 1e-3 * floor  # by t = 20000 only the floor is left


def test_solve_interpolates_between_solved_steps_to_high_accuracy():
    traj = sc.solve("random_features", alpha=1.5, beta=0.6, width=64, lr=LR, steps=3000, modes=1024)
    solved = traj.diagnostics["solved_steps"]
    between = np.setdiff1d(np.arange(17, 3000), solved)[[3, 50, 400, 2000]]
    direct = rf.population_loss(rf.quadrature_modes(power_law_task(1.5, 0.6, 1024)), between, LR, 64)
    np.testing.assert_allclose(traj.loss[between], direct, rtol=1e-6)
    assert traj.loss.shape == (3001,) and traj.predictions.shape == (3001, 0)
    assert traj.meta["solver"] == "scaling.solve" and traj.meta["width"] == 64


def _literal(model, N, M, steps, gamma0=1.0, P=None, seed=0):
    """The (N, M) network itself, written from the definition in limits.scaling.problem (NumPy)."""
    task = power_law_task(1.5, 0.6, M)
    lam, wstar = task.eigenvalues, task.target
    rng = np.random.default_rng([seed, 0])
    A0 = rng.standard_normal((N, M))
    if P is not None:
        Psi = np.random.default_rng([seed, 0, 1]).standard_normal((P, M)) * np.sqrt(lam)
        metric = Psi.T @ Psi / P
    A, w, out = A0.copy(), np.zeros(N), []
    for _ in range(steps + 1):
        beta = A.T @ w / (gamma0 * N) if model == "two_layer_linear" else A.T @ w / math.sqrt(N)
        v = wstar - beta
        out.append(0.5 * v @ (lam * v))
        g = lam * v if P is None else metric @ v  # minus the loss gradient wrt beta
        if model == "random_features":
            w = w + LR * A @ g / math.sqrt(N)
        else:  # raw lr = lr gamma0^2 N on both layers; A's update projected by K0 = A0^T A0 / N
            w, A = w + LR * gamma0 * A @ g, A + LR * gamma0 * np.outer(w, (g @ A0.T) @ A0 / N)
    return np.array(out)


@pytest.mark.parametrize("model, data", [("random_features", None), ("random_features", 24),
                                         ("two_layer_linear", None), ("two_layer_linear", 24)])
def test_simulation_equals_the_literal_network(model, data):
    gamma0 = 0.7 if model == "two_layer_linear" else None
    traj = sc.simulate(model, alpha=1.5, beta=0.6, width=8, data=data, gamma0=gamma0, lr=LR, steps=12, modes=128,
                       seeds=1, progress=False)
    want = _literal(model, 8, 128, 12, gamma0=gamma0 or 1.0, P=data)
    np.testing.assert_allclose(traj.losses[0], want, rtol=1e-10)


def _dense_two_layer(task, gamma0, lr, steps):
    """The N = inf recursion of limits.scaling.two_layer with a dense (M, M) kernel (K0 = I): the reference for the
    solver's low-rank kernel."""
    lam, wstar, g2 = task.eigenvalues, task.target, gamma0**2
    beta, K, s, out = np.zeros(task.modes), np.eye(task.modes), 0.0, []
    for _ in range(steps + 1):
        v = wstar - beta
        g = lam * v
        out.append(0.5 * v @ g)
        bg, Kg = beta @ g, K @ g
        beta, K, s = (beta + lr * (s * g + Kg) + lr**2 * g2 * bg * g,
                      K + lr * g2 * (np.outer(g, beta) + np.outer(beta, g)) + lr**2 * g2 * s * np.outer(g, g),
                      s + 2 * lr * g2 * bg + lr**2 * g2 * g @ Kg)
    return np.array(out)


@pytest.mark.parametrize("beta", [0.5, 1.5])
def test_low_rank_kernel_equals_the_dense_recursion(beta):
    """Stable run (sharpness < 2): the low-rank kernel reproduces the dense (M, M) recursion to round-off."""
    traj = sc.solve("two_layer_linear", alpha=2.0, beta=beta, gamma0=1.0, lr=0.05, steps=400, modes=512,
                    progress=False)
    dense = _dense_two_layer(power_law_task(2.0, beta, 512), 1.0, 0.05, 400)
    np.testing.assert_allclose(traj.loss, dense, rtol=1e-11)
    assert traj.diagnostics["kernel_truncation"] < 1e-15 and traj.diagnostics["sharpness"] < 2


def test_edge_of_stability_is_reported():
    with pytest.warns(RuntimeWarning, match="edge of stability"):
        traj = sc.solve("two_layer_linear", alpha=2.0, beta=0.5, gamma0=2.5, lr=0.3, steps=300, modes=512,
                        progress=False)
    assert traj.diagnostics["sharpness"] > 2


def test_solve_with_finite_data_matches_the_networks():
    """Full batch on P samples: the deterministic equivalent of limits.scaling.finite_data (checked against exact
    Monte Carlo in tests/test_scaling_finite_data.py) against simulate's networks, 64 seeds (standard error ~1.5%;
    the DE's own O(1/N + 1/P) bias is ~1-2% here)."""
    args = dict(alpha=1.5, beta=0.6, width=64, data=64, lr=0.5, steps=400, modes=512)
    solved = sc.solve("random_features", **args)
    nets = sc.simulate("random_features", seeds=64, progress=False, **args)
    t = np.array([1, 10, 100, 400])
    assert np.all(np.abs(solved.loss[t] - nets.loss[t]) <= 3 * nets.loss_stderr[t] + 0.03 * nets.loss[t])
    assert "width_floor" not in solved.diagnostics and solved.meta["data"] == 64


def test_two_layer_model_reduces_to_random_features_as_gamma0_vanishes():
    args = dict(alpha=2.0, beta=0.5, lr=LR, steps=300, modes=512)
    rich = sc.solve("two_layer_linear", gamma0=1e-8, progress=False, **args)
    lazy = sc.solve("random_features", **args)
    np.testing.assert_allclose(rich.loss, lazy.loss, rtol=1e-7)
    rich_sim = sc.simulate("two_layer_linear", width=16, gamma0=1e-8, seeds=2, progress=False, **args)
    lazy_sim = sc.simulate("random_features", width=16, seeds=2, progress=False, **args)
    np.testing.assert_allclose(rich_sim.losses, lazy_sim.losses, rtol=1e-7)


def test_finite_width_two_layer_networks_converge_to_the_solved_model():
    """The two-layer networks follow the N = inf recursion more closely as N grows (error ~ 1/sqrt(N) or faster)."""
    args = dict(alpha=2.0, beta=0.5, gamma0=1.0, lr=0.2, steps=200, modes=512)
    limit = sc.solve("two_layer_linear", progress=False, **args).loss
    errors = [np.max(np.abs(sc.simulate("two_layer_linear", width=n, seeds=4, progress=False, **args).loss / limit - 1))
              for n in (32, 128)]
    assert errors[1] < 0.35 * errors[0], errors  # measured 0.61 -> 0.11 (the floor ~ 1/N dominates late)


def test_feature_learning_beats_the_kernel_on_a_hard_task_and_not_on_an_easy_one():
    """The measured time exponent of the solved models: rich > lazy on a hard task (beta < 1), equal on an easy one;
    each within 0.05 of its prediction (checked at larger sizes in benchmarks/scaling.py)."""
    hard = dict(alpha=2.0, beta=0.5, lr=0.2, steps=1000, modes=512)
    lazy = sc.fit(sc.solve("random_features", **hard), window=(100, 1000))
    rich = sc.fit(sc.solve("two_layer_linear", gamma0=1.0, progress=False, **hard), window=(100, 1000))
    assert lazy.agrees(sc.exponents(2.0, 0.5, "lazy").time) and rich.agrees(sc.exponents(2.0, 0.5, "rich").time)
    assert rich.exponent > lazy.exponent + 0.1
    easy = dict(alpha=2.0, beta=1.5, lr=0.2, steps=1000, modes=512)
    lazy, rich = (sc.fit(sc.solve(m, progress=False, **easy, **g), window=(100, 1000))
                  for m, g in (("random_features", {}), ("two_layer_linear", {"gamma0": 1.0})))
    assert abs(rich.exponent - lazy.exponent) < 0.05 and lazy.agrees(1.5)


def _curve(values, seeds=None):
    loss = np.asarray(values, dtype=float)
    return limits.Trajectory(loss=loss, predictions=np.zeros((loss.size, 0)), losses=seeds)


def test_fit_recovers_power_laws_with_honest_intervals():
    t = np.arange(2001.0)
    exact = sc.fit(_curve(0.5 * np.maximum(t, 1.0) ** -0.75))
    assert exact.exponent == pytest.approx(0.75, abs=2e-3) and exact.window == (200.0, 2000.0)
    assert np.allclose(exact.local_rate, 0.75, atol=0.02)
    rng = np.random.default_rng(0)
    rates = 0.6 + 0.05 * rng.standard_normal(16)  # per-seed exponents: the interval is their spread
    seeds = (1.0 + t[None, :]) ** -rates[:, None]
    noisy = sc.fit(_curve(seeds.mean(0), seeds))
    half = 2.131 * rates.std(ddof=1) / 4.0  # Student t(15) 97.5% quantile x spread / sqrt(16)
    assert noisy.ci[1] - noisy.ci[0] == pytest.approx(2 * half, rel=0.05)
    assert noisy.contains(0.6, tol=0.04)  # the mean curve's rate sits a little below the mean rate (convexity)
    widths = {n: _curve(0.5 * np.asarray((1.0 + t) ** -0.5 + n**-1.0)) for n in (4, 8, 16, 32, 64, 128, 256)}
    floors = {n: _curve(0.5 * np.asarray(np.maximum(t, 1.0) ** -2.0 + n**-1.0)) for n in (4, 16, 64, 256)}
    assert sc.fit(floors, against="width").exponent == pytest.approx(1.0, abs=1e-3)
    frontier = sc.fit(widths)  # L = t^-a + N^-b, C = N t: L* ~ C^-(ab/(a+b)), N* ~ C^(a/(a+b))
    assert frontier.compute.exponent == pytest.approx(1 / 3, abs=0.03)
    np.testing.assert_allclose(frontier.compute.predict(frontier.budgets), frontier.best_loss, rtol=0.05)
    assert frontier.width_compute.exponent == pytest.approx(1 / 3, abs=0.05)
    assert frontier.time_compute.exponent == pytest.approx(2 / 3, abs=0.05)


BAD = [
    (dict(alpha=1.0), "alpha must be > 1"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(beta=0.0), "beta must be > 0"),
    (dict(beta=float("inf")), "beta"),
    (dict(modes=100, steps=100000), "modes=100 is too few"),
    (dict(gamma0=1.0), "gamma0= does not apply"),
    (dict(lr=1.5), "lr must be in (0, 1]"),
    (dict(width=0), "width"),
    (dict(width=2.5), "width"),
    (dict(model="mlp"), "model"),
    (dict(model="two_layer_linear", gamma0=1.0, data=16), "use limits.scaling.simulate(..., data=P)"),
    (dict(model="two_layer_linear"), "needs a richness gamma0"),
    (dict(model="two_layer_linear", gamma0=1.0, width=64), "infinite width only"),
]


@pytest.mark.parametrize("change, message", BAD)
def test_bad_input_names_the_fix(change, message):
    args = dict(model="random_features", alpha=1.5, beta=0.5, lr=0.5, steps=100) | change
    with pytest.raises((ValueError, TypeError)) as err:
        sc.solve(args.pop("model"), **args)
    assert message in str(err.value)


def test_fit_and_simulate_reject_what_does_not_apply():
    traj = _curve(np.linspace(1.0, 0.1, 50))
    with pytest.raises(ValueError, match="window"):
        sc.fit(traj, window=(10, 100))
    with pytest.raises(TypeError, match="grid"):
        sc.fit(traj, against="compute")
    with pytest.raises(ValueError, match="finite width"):
        sc.simulate("random_features", alpha=1.5, beta=0.5, width=None, steps=10)


def test_power_law_dataset_is_the_scaling_task():
    d = limits.datasets.power_law(32, alpha=2.0, beta=0.5, P_test=16, modes=64, seed=3)
    again = limits.datasets.load("power_law", P=32, alpha=2.0, beta=0.5, P_test=16, modes=64, seed=3)
    assert d.X.shape == (32, 64) and d.X_test.shape == (16, 64)
    np.testing.assert_array_equal(d.X, again.X)
    task = power_law_task(2.0, 0.5, 64)
    np.testing.assert_allclose(d.y, d.X @ task.target)
    big = limits.datasets.power_law(20000, modes=64, P_test=1)
    assert np.mean(big.y**2) == pytest.approx(1.0, abs=0.03)  # E y^2 = sum_k u_k^2 = 1
    circle = limits.datasets.circle_task(16, beta=0.25, capacity=2.0, modes=32)
    np.testing.assert_array_equal(circle.y, limits.datasets.powerlaw_circle(16, alpha=1.5).y)
    with pytest.raises(ValueError, match="beta must be > 0"):
        limits.datasets.power_law(8, beta=-1.0)
