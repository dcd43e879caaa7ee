"""The width-N theory of ``solve_dmft(..., width=N)`` (docs/theory/finite_width.md) against finite-width ensembles.

Rungs: the expansion point reproduces the infinite-width solver on the same paths (a limit of another solver), and
``N Cov(f)``, ``N Var(NTK)`` and the O(1/N) mean shift converge to the prediction in ``limits.simulate`` ensembles
(convergence of finite-width simulations). Sampling error of a covariance over S seeds is about
``sqrt((1 + (tr C)^2/|C|_F^2) / S)`` in relative Frobenius norm: ~5% for P = 4 at S = 4096.
"""

import math
import warnings

import numpy as np
import pytest

import limits
from limits import activations
from limits.dmft import finite_width as fw
from limits.dmft import monte_carlo as mc
from limits.parametrization import entry_table

P, STEPS, LR = 4, 10, 0.5


@pytest.fixture(scope="module")
def data():
    return limits.datasets.teacher(P=P, D=8, seed=0)


@pytest.fixture(scope="module")
def theory(data):
    """The width-512 theory of a two-layer tanh network (mup, gamma0 = 1) with NTK and kernel variances."""
    return limits.solve_dmft("mup", 1, 512, X=data.X, y=data.y, lr=LR, steps=STEPS, progress=False)


@pytest.fixture(scope="module")
def ensemble(data):
    """4096 networks of width 512 trained on the same problem."""
    return limits.simulate("mup", 1, width=512, X=data.X, y=data.y, lr=LR, steps=STEPS, seeds=4096, progress=False,
                           record=("ntk",))


def test_expansion_point_is_the_infinite_width_solution(data):
    """On the solver's own paths, the path mean of the readout samples driven by the limit's errors is the limit."""
    steps, S = 6, 4096
    traj = limits.solve_dmft("mup", 1, X=data.X, y=data.y, lr=LR, steps=steps, progress=False,
                             method=limits.dmft.MonteCarlo(samples=S))
    lim = entry_table("mup", 1)[0].dmft_limit()
    Kx = data.X @ data.X.T / data.X.shape[1]
    src = mc.mlp_sources(S, 1, steps + 1, P, 0)
    consts = {"c": LR * lim.gamma, "kappa": np.array(lim.kappa), "b": np.array(lim.b), "Kx": Kx, "gamma": lim.gamma}
    dt = (data.y - traj.predictions) / P
    with fw.precision("float64"):
        F, ks = fw._means(activations.get("tanh"), P, consts, np.asarray(src["u1"]) @ mc._input_factor(Kx).T,
                          np.asarray(src["r_top"]).reshape(-1), dt)
    np.testing.assert_allclose(np.asarray(F), traj.predictions, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(ks["ntk"]), traj.ntk, rtol=1e-10, atol=1e-12)


def test_prediction_covariance_matches_width_512_ensemble(theory, ensemble):
    """N Cov(f) over the trajectory: within 10% in total variance and 20% in relative Frobenius norm (issue bars);
    measured 1-3% (sampling error ~5%)."""
    N = 512
    C = np.einsum("stp,stq->tpq", *(2 * [ensemble.predictions_per_seed - ensemble.predictions])) / 4095 * N
    Sig = theory.prediction_cov * N
    trace_ratio = np.trace(C, axis1=1, axis2=2).sum() / np.trace(Sig, axis1=1, axis2=2).sum()
    assert abs(trace_ratio - 1) < 0.10, trace_ratio
    assert np.linalg.norm(C - Sig) / np.linalg.norm(Sig) < 0.20
    # the spread of the loss and the NTK's variance too
    np.testing.assert_allclose(theory.loss_std[1:], ensemble.losses.std(0)[1:], rtol=0.15)
    v_meas, v_pred = ensemble.ntk_per_seed.var(0), theory.ntk_var[[0, -1]]
    assert np.linalg.norm(v_meas - v_pred) / np.linalg.norm(v_pred) < 0.15


def test_initial_output_variance_is_exact(theory, data):
    """At t = 0 the predictions are ``w.phi(h)/(gamma N)`` with independent readout weights: N Var f(0) = Phi(0)/gamma^2."""
    inf = limits.solve_dmft("mup", 1, X=data.X, y=data.y, lr=LR, steps=STEPS, progress=False)
    np.testing.assert_allclose(theory.prediction_cov[0] * 512, inf.kernels["phi1"][0], rtol=0.03, atol=0.02)


def test_expected_loss_includes_the_variance(theory, data):
    """``loss = (|E f - y|^2 + tr Cov f) / (2P)`` and the predictions are the width-N means."""
    err = theory.predictions - data.y
    expected = 0.5 * (np.sum(err**2, 1) + np.trace(theory.prediction_cov, axis1=1, axis2=2)) / P
    np.testing.assert_allclose(theory.loss, expected, rtol=1e-12)
    assert theory.meta["finite_width"]["corrections"] == ("covariance", "mean_shift", "variance_in_loss")


def test_mean_shift_matches_ensembles(data):
    """N (E f_N - f_inf) from the difference of two ensembles (N = 64 and 256, 8192 seeds each; the infinite-width
    solver's own Monte Carlo error cancels) against the prediction, within 4 combined standard errors + 0.03
    (measured at P = 6, 20 steps with 32768 seeds: agreement within 2 standard errors at most steps)."""
    th = limits.solve_dmft("mup", 1, 256, X=data.X, y=data.y, lr=LR, steps=STEPS, progress=False, record=None)
    inf = limits.solve_dmft("mup", 1, X=data.X, y=data.y, lr=LR, steps=STEPS, progress=False, record=None)
    mu = (th.predictions - inf.predictions) * 256
    m, se = {}, {}
    for N in (64, 256):
        f = limits.simulate("mup", 1, width=N, X=data.X, y=data.y, lr=LR, steps=STEPS, seeds=8192, progress=False,
                            record=()).predictions_per_seed
        m[N], se[N] = f.mean(0), f.std(0) / math.sqrt(f.shape[0])
    k = 1 / 64 - 1 / 256
    meas, err = (m[64] - m[256]) / k, np.hypot(se[64], se[256]) / k
    assert np.all(np.abs(meas - mu)[1:] < 4 * err[1:] + 0.03), (meas, mu, err)
    assert np.max(np.abs(mu[-1]) / err[-1]) > 4  # the shift is resolved at the end, not noise


def test_test_points_and_test_loss(data):
    Xt, yt = data.X[:2] + 0.2, data.y[:2]
    tr = limits.solve_dmft("mup", 1, 256, X=data.X, y=data.y, X_test=Xt, y_test=yt, lr=LR, steps=4, progress=False,
                           record=None)
    assert tr.test_prediction_cov.shape == (5, 2, 2)
    expected = 0.5 * (np.sum((tr.test_predictions - yt) ** 2, 1) + np.trace(tr.test_prediction_cov, axis1=1, axis2=2)) / 2
    np.testing.assert_allclose(tr.test_loss, expected, rtol=1e-12)


def test_uncovered_problems_warn_and_say_so(data):
    with pytest.warns(RuntimeWarning, match="depth 2 needs second derivatives"):
        tr = limits.solve_dmft("mup", 2, 256, X=data.X, y=data.y, activation="relu", lr=LR, steps=2, progress=False,
                               record=None, method=limits.dmft.MonteCarlo(samples=1024))
    assert tr.meta["finite_width"]["corrections"] == ()
    assert "MAX_GRID" in fw.not_covered(limits.param("mup", 2).dmft_limit(), activations.get("tanh"), grid=10**4)


def test_relu_covariance_by_central_differences_matches_an_ensemble(data):
    """ReLU's derivative jumps, so its sensitivities are central differences on common paths (they count the paths a
    step moves across a kink). N Cov(f) against 2048 networks of width 256 (sampling error ~7%): within 10% in total
    variance and 20% in relative Frobenius norm (issue bars; measured 2-4% at P = 6, 20 steps against 4096 networks
    of width 1024; the mean shift within 8% of ensembles there, docs/theory/finite_width.md section 4)."""
    kw = dict(X=data.X, y=data.y, activation="relu", lr=LR, steps=STEPS, progress=False)
    th = limits.solve_dmft("mup", 1, 256, record=None, **kw)
    assert th.meta["finite_width"]["corrections"] == ("covariance", "mean_shift", "variance_in_loss")
    sim = limits.simulate("mup", 1, width=256, seeds=2048, record=(), **kw)
    C, Sig = sim.prediction_cov * 256, th.prediction_cov * 256
    trace_ratio = np.trace(C, axis1=1, axis2=2).sum() / np.trace(Sig, axis1=1, axis2=2).sum()
    assert abs(trace_ratio - 1) < 0.10, trace_ratio
    assert np.linalg.norm(C - Sig) / np.linalg.norm(Sig) < 0.20


def test_central_differences_equal_forward_mode_on_a_smooth_activation(data, monkeypatch):
    """The central-difference sensitivities (used for ReLU) equal the forward-mode ones for tanh up to their O(e^2)
    error (the step moves the fields by ~1e-2): measured 3e-5 of max |J| for the readout, 6e-4 for the NTK."""
    lim = entry_table("mup", 1)[0].dmft_limit()
    Kx = data.X @ data.X.T / data.X.shape[1]
    src = mc.mlp_sources(1024, 1, 4, P, 0)
    consts = {"c": LR * lim.gamma, "kappa": np.array(lim.kappa), "b": np.array(lim.b), "Kx": Kx, "gamma": lim.gamma}
    dt = np.tile(data.y / P, (4, 1)) * np.linspace(1, 0.3, 4)[:, None]
    args = (activations.get("tanh"), P, ("ntk",), consts, np.asarray(src["u1"]) @ mc._input_factor(Kx).T,
            np.asarray(src["r_top"]).reshape(-1), dt, 4 * P)
    with fw.precision("float64"):
        JF, JK = fw._jacobians(*args)
        monkeypatch.setattr(fw, "KINKED", ("tanh",))
        DF, DK = fw._jacobians(*args)
    assert np.abs(JF).max() > 0.1
    np.testing.assert_allclose(DF, JF, atol=1e-4 * np.abs(JF).max())
    np.testing.assert_allclose(DK["ntk"], JK["ntk"], atol=2e-3 * np.abs(JK["ntk"]).max())
    assert np.abs(DF - JF).max() > 0  # the two routes were both taken


def test_difference_mean_shift_equals_forward_mode_on_a_smooth_activation(data, monkeypatch):
    """The mean shift of ReLU (own-response central differences plus the Hessian's trace against the response
    covariance from second differences of path means) equals the forward-mode one (per-path pairing) on tanh within
    the pairing estimator's Monte Carlo error (~10% of its Hessian term): measured 7% here, 4% at P = 6, 20 steps."""
    kw = dict(X=data.X, y=data.y, lr=LR, steps=4, progress=False, record=None)
    inf = limits.solve_dmft("mup", 1, **kw).predictions
    jvp = limits.solve_dmft("mup", 1, 256, **kw).predictions - inf
    monkeypatch.setattr(fw, "KINKED", ("tanh",))
    diff = limits.solve_dmft("mup", 1, 256, **kw).predictions - inf
    assert np.linalg.norm(jvp) > 1e-4
    assert np.linalg.norm(diff - jvp) / np.linalg.norm(jvp) < 0.1


def test_width_so_small_the_theory_is_meaningless_warns(data):
    with pytest.warns(RuntimeWarning, match="not meaningful"):
        limits.solve_dmft("mup", 1, 2, X=data.X, y=data.y, lr=LR, steps=2, progress=False, record=None)


@pytest.mark.parametrize("bad", [0, -3, 2.5, float("nan"), "512"])
def test_bad_width_is_rejected(data, bad):
    with pytest.raises((ValueError, TypeError), match="width"):
        limits.solve_dmft("mup", 1, bad, X=data.X, y=data.y, steps=2, progress=False)


def test_simulate_reports_the_spreads(ensemble):
    assert ensemble.loss_std.shape == (STEPS + 1,)
    np.testing.assert_allclose(ensemble.loss_std, ensemble.losses.std(0, ddof=1))
    assert ensemble.ntk_var.shape == ensemble.ntk.shape


def test_compare_draws_the_predicted_spread(theory, ensemble, data, tmp_path):
    """``compare(limit, sims, theory=...)``: the predicted spread at each width next to the measured one."""
    inf = limits.solve_dmft("mup", 1, X=data.X, y=data.y, lr=LR, steps=STEPS, progress=False)
    small = limits.simulate("mup", 1, width=128, X=data.X, y=data.y, lr=LR, steps=STEPS, seeds=512, progress=False,
                            record=("ntk",))
    cmp = limits.compare(inf, {128: small, 512: ensemble}, theory=theory, n_boot=0)
    for q in ("loss", "predictions", "ntk"):
        np.testing.assert_allclose(cmp.predicted[(q, "spread")], cmp.values[(q, "spread")], rtol=0.1)
    assert "theory" in cmp.table()
    assert cmp.plot(tmp_path / "cmp.png").exists()
    with pytest.raises(ValueError, match="width-N theory"):
        limits.compare(inf, {512: ensemble}, theory=inf)


def test_feature_learning_reduces_the_final_fluctuations(data):
    """BP23: richer training (larger gamma0) ends with a smaller prediction variance and a smaller relative NTK
    variance, predicted and measured (512 networks of width 256)."""
    out = {}
    for g in (0.5, 2.0):
        kw = dict(X=data.X, y=data.y, lr=LR, steps=STEPS, gamma0=g, progress=False, record="ntk")
        th = limits.solve_dmft("mup", 1, 256, **kw)
        sim = limits.simulate("mup", 1, width=256, seeds=512, **kw)
        K2 = np.mean(th.ntk[-1] ** 2)
        out[g] = (np.trace(th.prediction_cov[-1]), np.trace(sim.prediction_cov[-1]), np.mean(th.ntk_var[-1]) / K2,
                  np.mean(sim.ntk_per_seed[:, -1].var(0)) / K2)
    lazy, rich = np.array(out[0.5]), np.array(out[2.0])
    assert np.all(rich < 0.8 * lazy), (lazy, rich)
    np.testing.assert_allclose(lazy[[1, 3]], lazy[[0, 2]], rtol=0.2)
    np.testing.assert_allclose(rich[[1, 3]], rich[[0, 2]], rtol=0.2)


def test_edge_of_stability_warns():
    """``lr lambda_max(NTK)/P`` near 2 (depth-3 linear on teacher(P=6, seed=0) at lr 0.5 reaches 2.06): N Cov f then
    approaches its O(1/N) limit only at widths of 10^4 and more (docs/theory/finite_width.md section 5)."""
    ntk = np.stack([np.diag([3.0, 1.0]), np.diag([8.2, 1.0])])  # lr lambda_max / P = 0.75, 2.05 at lr 0.5, P = 2
    with pytest.warns(RuntimeWarning, match="edge of stability.*2.05 at step 1"):
        fw._warn_if_at_the_edge_of_stability(ntk, 0.5, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fw._warn_if_at_the_edge_of_stability(ntk[:1], 0.5, 2)
