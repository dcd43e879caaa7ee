"""Analysis: power-law fits, finite-vs-limit comparison, coordinate checks, lr transfer."""

from __future__ import annotations

import numpy as np
import pytest

import limits
from limits.analysis import compare, coord_check, extrapolate_in_width, fit_power_law, optimal_lr, transfer
from limits.trajectory import Trajectory

DATA = limits.datasets.teacher(P=8, D=4, seed=1)


# ------------------------------------------------------------------ fits
def test_extrapolate_in_width_is_exact_on_a_plus_b_over_n():
    widths = np.array([256.0, 512.0, 1024.0])
    a, b = np.array([0.5, 0.1]), np.array([3.0, -2.0])
    means = a[None, :] + b[None, :] / widths[:, None]  # (widths, steps)
    np.testing.assert_allclose(extrapolate_in_width(widths, means), a, rtol=1e-12)
    v, se = extrapolate_in_width(widths, means, np.full_like(means, 0.01))
    np.testing.assert_allclose(v, a, rtol=1e-12)
    coef = np.linalg.pinv(np.stack([np.ones(3), 1 / widths], axis=1))[0]  # v_inf = coef . means
    np.testing.assert_allclose(se, 0.01 * np.sqrt(np.sum(coef**2)), rtol=1e-12)


def test_fit_power_law_recovers_exponent_and_interval():
    rng = np.random.default_rng(0)
    x = np.array([64, 128, 256, 512, 1024])
    y = 3.0 * x**-0.75 * np.exp(0.02 * rng.standard_normal(x.size))
    fit = fit_power_law(x, y)
    assert abs(fit.exponent + 0.75) < 0.05 and fit.contains(-0.75)
    assert fit.ci[0] < fit.exponent < fit.ci[1]
    werr = fit_power_law(x, y, yerr=0.02 * y)
    assert werr.contains(-0.75) and abs(werr.prefactor - 3.0) < 0.5
    exact = fit_power_law([1, 2], [1, 4])
    assert exact.exponent == pytest.approx(2.0) and exact.ci == (-np.inf, np.inf)
    # non-positive / non-finite points are dropped
    assert fit_power_law([1, 2, 4, 8], [1, 0.5, np.nan, 0.125]).exponent == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least two"):
        fit_power_law([1, 2], [1, -1])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="confidence"):
        fit_power_law([1, 2], [1, 2], confidence=1.5)


# --------------------------------------------------------------- compare
def _synthetic(widths, seeds=64, steps=20, P=4, a=0.5, b=0.3, seed=0):
    """Limit loss/predictions and finite ensembles with mean bias a/N and seed noise b/sqrt(N)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1)
    loss = np.exp(-t / 5.0)
    preds = np.outer(1 - np.exp(-t / 5.0), np.linspace(-1, 1, P))
    limit = Trajectory(loss=loss, predictions=preds, meta={"solver": "synthetic", "lr": 0.1})
    sims = {}
    for n in widths:
        shape = np.exp(-t / 7.0)
        losses = loss + a / n * shape + b / np.sqrt(n) * shape * rng.standard_normal((seeds, 1))
        per_seed = preds + a / n + b / np.sqrt(n) * rng.standard_normal((seeds, steps + 1, P))
        sims[n] = Trajectory(
            loss=losses.mean(0), predictions=per_seed.mean(0), losses=losses,
            diagnostics={"predictions_per_seed": per_seed}, meta={"lr": 0.1, "width": n},
        )
    return limit, sims


def test_compare_recovers_synthetic_rates(tmp_path):
    limit, sims = _synthetic([64, 128, 256, 512, 1024])
    c = compare(limit, sims)
    for q in ("loss", "predictions"):
        assert c.exponent(q, "bias").contains(-1.0, tol=0.1), c.table()
        assert c.exponent(q, "spread").contains(-0.5, tol=0.1), c.table()
    assert abs(c.exponent("predictions", "bias").exponent + 1) < 0.15
    text = c.table()
    assert "loss" in text and "N=1024" in text and "theory" in text
    assert c.plot(tmp_path / "cmp.png").stat().st_size > 1000
    # without per-seed data only the uncorrected mean deviation is available
    plain = {n: Trajectory(loss=s.loss, predictions=s.predictions) for n, s in sims.items()}
    c2 = compare(limit, plain)
    assert ("loss", "bias") in c2.fits and ("loss", "spread") not in c2.values


def test_compare_bad_inputs():
    limit, sims = _synthetic([64, 128], seeds=4)
    with pytest.raises(ValueError, match="Trajectory"):
        compare({"loss": 1}, sims)
    with pytest.raises(ValueError, match="non-empty"):
        compare(limit, {})
    with pytest.raises(ValueError, match="positive integer widths"):
        compare(limit, {"wide": sims[64]})
    with pytest.raises(ValueError, match="learning rates differ"):
        compare(limit.replace(meta={"lr": 0.5}), sims)
    with pytest.raises(KeyError, match="no fit"):
        compare(limit, sims).exponent("ntk")


def test_simulation_approaches_dmft_limit():
    """mup ensemble mean at width 512 is within 3 stderr + O(1/N) of the DMFT (deep linear: exact equations)."""
    solve_dmft = pytest.importorskip("limits.dmft").solve_dmft
    kw = dict(X=DATA.X, y=DATA.y, activation="linear", lr=0.3, steps=8)
    lim = solve_dmft("mup", 2, progress=False, **kw)
    sims = {n: limits.simulate("mup", 2, n, seeds=16, progress=False, record=(), **kw) for n in (128, 512)}
    for n, s in sims.items():
        excess = np.abs(s.loss - lim.loss) - 3 * s.loss_stderr
        assert excess.max() < 4.0 / n, (n, excess.max())
    c = compare(lim, sims)
    assert c.values[("loss", "spread")][1] < c.values[("loss", "spread")][0]


# ------------------------------------------------------------ coord check
def test_coord_check_mup_flat_sp_blows_up_ntk_decays(tmp_path):
    widths = (64, 128, 256)
    kw = dict(X=DATA.X, y=DATA.y, steps=3, seeds=3, spectral=False)
    mup = coord_check("mup", 2, widths, lr=0.5, **kw)
    for name in ("dh1", "dh2", "df"):
        assert mup.predicted[name] == 0.0
        assert abs(mup.measured(name)) < 0.2, mup.table()
    sp = coord_check("sp", 2, widths, lr=0.002, **kw)
    assert sp.predicted["dh2"] == 1.0 and sp.predicted["df"] == 1.5  # asymptotic, from step 2 on
    assert sp.predicted_first["dh2"] == 0.5 and sp.predicted_first["df"] == 1.0
    assert sp.measured("dh2") > 0.25 and sp.measured("df") > 0.6, sp.table()
    assert sp.measured("dh2") > mup.measured("dh2") + 0.25
    # at small lr the initial readout still dominates: the one-step exponents are what we see
    for name in ("dh1", "dh2", "df"):
        assert sp.verdict(name, tol=0.2) in ("yes", "t=1"), sp.table()
    ntk = coord_check("ntk", 2, widths, lr=0.5, **kw)
    assert abs(ntk.measured("dh2") + 0.5) < 0.25 and abs(ntk.measured("df")) < 0.25, ntk.table()
    assert "predicted" in mup.table() and "dh2" in sp.table()
    assert sp.plot(tmp_path / "cc.png").exists()
    assert mup.curves["dh1"].shape == (3, 4)
    with pytest.raises(ValueError, match="two distinct"):
        coord_check("mup", 2, (64, 64), **kw)


def test_coord_check_spectral_norms():
    cc = coord_check("mup", 2, (64, 128, 256), X=DATA.X, y=DATA.y, lr=0.5, steps=2, seeds=2)
    for name in ("W1", "W2", "W3", "dW2"):
        assert cc.consistent(name, tol=0.15), cc.table()


# ---------------------------------------------------------------- transfer
def test_optimal_lr_parabola_and_edges():
    lrs = np.geomspace(0.01, 10, 7)
    loss = np.exp((np.log(lrs) - np.log(0.3)) ** 2)
    lr_star, edge = optimal_lr(lrs, loss)
    assert lr_star == pytest.approx(0.3, rel=1e-6) and not edge
    assert optimal_lr(lrs, np.linspace(1, 0.1, 7)) == (10.0, True)
    diverged = np.array([1.0, 0.5, 0.2, np.inf, np.inf, np.inf, np.inf])
    assert optimal_lr(lrs, diverged) == (lrs[2], True)
    assert np.isnan(optimal_lr(lrs, np.full(7, np.inf))[0])


def test_transfer_cache_resume_and_mup_optimum(tmp_path):
    kw = dict(X=DATA.X, y=DATA.y, steps=10, seeds=2, cache_dir=tmp_path, progress=False, limit=False)
    lrs = np.geomspace(0.25, 16, 7)
    first = transfer("mup", 2, (64, 256), lrs, **kw)
    assert first.n_computed == 14 and first.n_cached == 0
    again = transfer("mup", 2, (64, 256), lrs, **kw)
    assert again.n_computed == 0 and again.n_cached == 14
    np.testing.assert_array_equal(first.losses, again.losses)
    # a partial cache is resumed: one more width computes only its points
    more = transfer("mup", 2, (64, 128, 256), lrs, **kw)
    assert more.n_computed == 7 and more.n_cached == 14
    assert abs(more.exponent) < 0.5, more.table()
    assert np.isinf(more.losses[:, -1]).all()  # lr=16 diverges at every width: reported as inf
    assert "lr*" in more.table()
    assert more.plot(tmp_path / "tr.png").exists()
    # a different setting is a different key
    other = transfer("mup", 2, (64,), lrs[:2], **{**kw, "steps": 11})
    assert other.n_computed == 2


def test_transfer_bad_inputs(tmp_path):
    kw = dict(X=DATA.X, y=DATA.y, steps=2, seeds=1, cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="lrs"):
        transfer("mup", 2, (64,), [0.1, -1.0], **kw)
    with pytest.raises(ValueError, match="widths"):
        transfer("mup", 2, (0,), [0.1], **kw)
    with pytest.raises(ValueError, match="metric"):
        transfer("mup", 2, (64,), [0.1], metric="accuracy", **kw)
    with pytest.raises(ValueError, match="X_test"):
        transfer("mup", 2, (64,), [0.1], metric="test", **kw)
