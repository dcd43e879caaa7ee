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
    model = {"param": "mup", "optimizer": "sgd", "depth": 2, "activation": "tanh", "lr": 0.1, "steps": steps, "gamma0": 1.0,
             "data": limits.checks.fingerprint(np.ones((P, 2)), np.ones(P), None, None)}
    limit = Trajectory(loss=loss, predictions=preds, meta={"solver": "synthetic", "width": np.inf, **model})
    sims = {}
    for n in widths:
        shape = np.exp(-t / 7.0)
        losses = loss + a / n * shape + b / np.sqrt(n) * shape * rng.standard_normal((seeds, 1))
        per_seed = preds + a / n + b / np.sqrt(n) * rng.standard_normal((seeds, steps + 1, P))
        sims[n] = Trajectory(loss=losses.mean(0), predictions=per_seed.mean(0), losses=losses,
                             predictions_per_seed=per_seed, meta={**model, "width": n})
    return limit, sims


def test_compare_recovers_synthetic_rates(tmp_path):
    limit, sims = _synthetic([64, 128, 256, 512, 1024])
    c = compare(limit, sims)
    for q in ("loss", "predictions"):
        assert c.exponent(q, "bias").contains(-1.0, tol=0.1), c.table()
        assert c.exponent(q, "spread").contains(-0.5, tol=0.1), c.table()
    assert abs(c.exponent("predictions", "bias").exponent + 1) < 0.15
    text = c.table()
    assert "loss" in text and "N=1024" in text and "theory" in text and "(95% CI)" in text
    assert c.plot(tmp_path / "cmp.png").stat().st_size > 1000
    assert c.meta["param"] == "mup" and c.meta["data"] == limit.meta["data"]
    # without per-seed data only the uncorrected mean deviation is available
    plain = {n: Trajectory(loss=s.loss, predictions=s.predictions) for n, s in sims.items()}
    c2 = compare(limit, plain)
    assert ("loss", "bias") in c2.fits and ("loss", "spread") not in c2.values


def test_compare_reads_the_typed_per_seed_fields_not_diagnostics():
    limit, sims = _synthetic([64, 128], seeds=8)
    moved = {n: s.replace(predictions_per_seed=None, diagnostics={"predictions_per_seed": s.predictions_per_seed})
             for n, s in sims.items()}
    assert ("predictions", "spread") not in compare(limit, moved).values  # no per-seed data: no spread
    assert np.isfinite(compare(limit, sims).values[("predictions", "spread")]).all()


def test_compare_bad_inputs():
    limit, sims = _synthetic([64, 128], seeds=4)
    with pytest.raises(ValueError, match="Trajectory"):
        compare({"loss": 1}, sims)
    with pytest.raises(TypeError, match=r"simulations\[64\] must be a limits.Trajectory"):
        compare(limit, {64: sims[64].loss})
    with pytest.raises(ValueError, match="non-empty"):
        compare(limit, {})
    with pytest.raises(ValueError, match="positive integer widths"):
        compare(limit, {"wide": sims[64]})
    with pytest.raises(ValueError, match="meta width=128"):
        compare(limit, {64: sims[128]})
    with pytest.raises(ValueError, match="confidence"):
        compare(limit, sims, confidence=2)  # not a "200% CI" table
    with pytest.raises(ValueError, match="confidence"):
        compare(limit, sims, confidence=95)
    with pytest.raises(ValueError, match="n_boot"):
        compare(limit, sims, n_boot=-1)
    with pytest.raises(TypeError, match="n_boot"):
        compare(limit, sims, n_boot=1.5)
    with pytest.raises(ValueError, match="expected key"):
        compare(limit, sims, expected={"slope": -1.0})
    with pytest.raises(ValueError, match="seed"):
        compare(limit, sims, seed=-1)
    with pytest.raises(KeyError, match="no fit"):
        compare(limit, sims).exponent("ntk")


@pytest.mark.parametrize("field, other", [
    ("param", "ntk"), ("optimizer", "adam"), ("depth", 3), ("activation", "relu"), ("lr", 0.5), ("steps", 10),
    ("gamma0", 2.0), ("data", "0123456789abcdef"),
])
def test_compare_refuses_runs_of_another_model_or_data(field, other):
    limit, sims = _synthetic([64, 128], seeds=4)
    odd = {**sims, 128: sims[128].replace(meta={**sims[128].meta, field: other})}
    with pytest.raises(ValueError, match=rf"differ in {field}: limit {field}=.*, simulation {field}={other!r}"):
        compare(limit, odd)
    with pytest.raises(ValueError, match=rf"simulations\[64\] differ in {field}: limit {field}={other!r}"):
        compare(limit.replace(meta={**limit.meta, field: other}), sims)


def test_compare_skips_fields_a_run_does_not_record():
    limit, sims = _synthetic([64, 128], seeds=4)
    bare = limit.replace(meta={"solver": "synthetic"})  # nothing to check against: allowed
    assert ("loss", "bias") in compare(bare, sims).values
    table_run = {n: s.replace(meta={**s.meta, "gamma0": None}) for n, s in sims.items()}  # a table has no gamma0
    assert ("loss", "bias") in compare(limit, table_run).values


def test_simulation_approaches_dmft_limit():
    """mup ensemble mean at width 512 is within 3 stderr + O(1/N) of the DMFT (deep linear: exact equations)."""
    kw = dict(X=DATA.X, y=DATA.y, activation="linear", lr=0.3, steps=8, progress=False)
    lim = limits.solve_dmft("mup", 2, **kw)
    sims = {n: limits.simulate("mup", 2, n, seeds=16, record=(), **kw) for n in (128, 512)}
    for n, s in sims.items():
        excess = np.abs(s.loss - lim.loss) - 3 * s.loss_stderr
        assert excess.max() < 4.0 / n, (n, excess.max())
    c = compare(lim, sims)
    assert c.values[("loss", "spread")][1] < c.values[("loss", "spread")][0]
    other = limits.solve_dmft("mup", 2, **{**kw, "X": DATA.X[:, ::-1].copy()})  # same shapes, other data
    if "data" in other.meta:
        with pytest.raises(ValueError, match="differ in data"):
            compare(other, sims)


# ------------------------------------------------------------ coord check
def test_coord_check_mup_flat_sp_blows_up_ntk_decays(tmp_path):
    widths = (64, 128, 256)
    kw = dict(X=DATA.X, y=DATA.y, steps=3, seeds=3, spectral=False, progress=False)
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
    cc = coord_check("mup", 2, (64, 128, 256), X=DATA.X, y=DATA.y, lr=0.5, steps=2, seeds=2, progress=False)
    for name in ("W1", "W2", "W3", "dW2"):
        assert cc.consistent(name, tol=0.15), cc.table()


def test_coord_check_defaults_and_table():
    from limits.finite import Simulation

    table = limits.param("mup", 2, gamma0=0.5)
    cc = coord_check(table, widths=(16, 32), X=DATA.X, y=DATA.y, seeds=2, spectral=False, progress=False,
                     method=Simulation(seed_batch=1))
    assert cc.meta["depth"] == 2 and cc.meta["lr"] == 0.05 and cc.meta["steps"] == 3 and cc.meta["seed"] == 0
    assert cc.meta["gamma0"] is None and "seed_batch=1" in cc.meta["method"]
    assert list(cc.widths) == [16, 32] and cc.curves["dh1"].shape == (2, 4)
    one = coord_check("mup", widths=(32, 16), X=DATA.X, y=DATA.y, steps=1, seeds=2, spectral=False, progress=False)
    assert one.meta["depth"] == 1 and list(one.widths) == [16, 32] and one.meta["gamma0"] == 1.0


COORD_BAD = [
    (dict(confidence=2), "confidence"),
    (dict(confidence=0.0), "confidence"),
    (dict(confidence="95%"), "confidence"),
    (dict(widths=(64, 64, 128)), "widths"),
    (dict(widths=(64, 64)), "two distinct"),
    (dict(widths=(64,)), "two distinct"),
    (dict(widths=(64.0, 128)), "widths"),
    (dict(widths=(64.5, 128)), "widths"),
    (dict(widths=(0, 128)), "widths"),
    (dict(widths=64), "widths"),
    (dict(widths="64"), "widths"),
    (dict(steps=0), "steps"),
    (dict(steps=1.5), "steps"),
    (dict(spectral="no"), "spectral"),
    (dict(progress="yes"), "progress"),
    (dict(seed=-1), "seed"),
    (dict(lr=0.0), "lr"),
    (dict(param=limits.param("mup", 2), gamma0=2.0), "gamma0"),
    (dict(param=limits.param("mup", 2), optimizer="sgd"), "optimizer"),
    (dict(simulation=dict(record_steps=[0, 1])), "record_steps"),
    (dict(simulation=dict(divergence_factor=10.0)), "divergence_factor"),
    (dict(method="fast"), "method"),
]


@pytest.mark.parametrize("kwargs,match", COORD_BAD)
def test_coord_check_bad_inputs(kwargs, match):
    args = dict(param="mup", depth=1, widths=(8, 16), X=DATA.X, y=DATA.y, steps=1, seeds=1, spectral=False,
                progress=False)
    args.update(kwargs)
    if "simulation" in args:
        from limits.finite import Simulation

        args["method"] = Simulation(**args.pop("simulation"))
    with pytest.raises(ValueError, match=match):  # ArgumentTypeError is a ValueError too
        coord_check(args.pop("param"), args.pop("depth"), args.pop("widths"), **args)


# ---------------------------------------------------------------- transfer
from limits.analysis import _cache  # noqa: E402  (this section's own imports)

FAST = dict(X=DATA.X, y=DATA.y, steps=2, seeds=1, progress=False, limit=False)


def test_optimal_lr_parabola_and_edges():
    lrs = np.geomspace(0.01, 10, 7)
    loss = np.exp((np.log(lrs) - np.log(0.3)) ** 2)
    lr_star, edge = optimal_lr(lrs, loss)
    assert lr_star == pytest.approx(0.3, rel=1e-6) and not edge
    assert optimal_lr(lrs, np.linspace(1, 0.1, 7)) == (10.0, True)
    diverged = np.array([1.0, 0.5, 0.2, np.inf, np.inf, np.inf, np.inf])
    assert optimal_lr(lrs, diverged) == (lrs[2], True)
    assert np.isnan(optimal_lr(lrs, np.full(7, np.inf))[0])
    with pytest.raises(ValueError, match="same length"):
        optimal_lr(lrs, loss[:3])


def test_transfer_cache_resume_and_mup_optimum(tmp_path):
    kw = dict(X=DATA.X, y=DATA.y, steps=10, seeds=2, cache_dir=tmp_path, progress=False, limit=False)
    lrs = np.geomspace(0.25, 16, 7)
    first = transfer("mup", 2, (64, 256), lrs, **kw)
    assert first.n_computed == 14 and first.n_cached == 0
    again = transfer("mup", 2, (256, 64), lrs, **kw)  # widths are sorted
    assert again.n_computed == 0 and again.n_cached == 14
    np.testing.assert_array_equal(first.losses, again.losses)
    # a partial cache is resumed: one more width computes only its points
    more = transfer("mup", 2, (64, 128, 256), lrs, **kw)
    assert more.n_computed == 7 and more.n_cached == 14
    assert abs(more.exponent) < 0.5, more.table()
    assert np.isinf(more.losses[:, -1]).all()  # lr=16 diverges at every width: reported as inf
    assert "lr*" in more.table() and more.meta["data"] == limits.checks.fingerprint(DATA.X, DATA.y, None, None)
    assert more.plot(tmp_path / "tr.png").exists()
    # a different setting is a different key
    assert transfer("mup", 2, (64, 256), lrs[:2], **{**kw, "steps": 11}).n_computed == 4
    assert transfer("mup", 2, (64, 256), lrs[:2], **{**kw, "seed": 1}).n_computed == 4
    assert transfer("mup", 2, (64, 256), lrs[:2], **{**kw, "gamma0": 2.0}).n_computed == 4
    assert transfer("mup", 2, (64, 256), lrs[:2], **{**kw, "y": -DATA.y}).n_computed == 4
    # no temporary files are left beside the entries
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_transfer_without_cache_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    r = transfer("mup", 1, (16, 32), [0.1], **FAST)
    assert r.n_computed == 2 and r.meta["cache_dir"] is None
    assert list(tmp_path.iterdir()) == []


def test_cache_keys_callable_activations_by_what_they_compute():
    import jax.numpy as jnp

    soft = _cache.activation_key(lambda x: jnp.tanh(0.1 * x))
    steep = _cache.activation_key(lambda x: jnp.tanh(3 * x))
    assert soft != steep and soft.startswith("custom:")
    assert _cache.activation_key(lambda x: jnp.tanh(0.1 * x)) == soft  # same code and constants: same key

    def scaled(s):
        return lambda x: jnp.tanh(s * x)

    assert _cache.activation_key(scaled(0.1)) != _cache.activation_key(scaled(3.0))  # closure cells
    assert _cache.activation_key(scaled(np.float64(2.0))) == _cache.activation_key(scaled(np.float64(2.0)))

    def with_default(x, s=0.5):
        return jnp.tanh(s * x)

    def with_other_default(x, s=2.0):
        return jnp.tanh(s * x)

    assert _cache.activation_key(with_default) != _cache.activation_key(with_other_default)  # defaults
    weights = np.ones(3)

    def from_global(x):
        return jnp.tanh(x) * weights.sum()

    before = _cache.activation_key(from_global)
    weights[0] = 2.0
    assert _cache.activation_key(from_global) != before  # globals it reads (arrays by content)
    assert _cache.activation_key("tanh") == _cache.activation_key(limits.activations.get("tanh")) == "tanh"


def test_cache_refuses_activations_it_cannot_key(tmp_path):
    class Scaled:
        def __init__(self):
            self.s = 1.0

        def __call__(self, x):
            return self.s * x

    state = [object()]

    def stateful(x):
        return x * len(state)

    for act in (Scaled(), stateful):
        with pytest.raises(_cache.Unkeyable):
            _cache.activation_key(act)
        with pytest.raises(ValueError, match="cannot be keyed for the disk cache.*cache_dir=None"):
            transfer("mup", 1, (16, 32), [0.1], activation=act, cache_dir=tmp_path, **FAST)
    assert list(tmp_path.iterdir()) == []  # refused before anything ran
    r = transfer("mup", 1, (16, 32), [0.1], activation=stateful, **FAST)  # uncached: fine
    assert np.isfinite(r.losses).all() and r.meta["activation"].endswith(":unkeyed")


def test_transfer_cache_separates_callable_activations(tmp_path):
    import jax.numpy as jnp

    kw = dict(FAST, cache_dir=tmp_path)
    soft = transfer("mup", 1, (16, 32), [0.5], activation=lambda x: jnp.tanh(0.1 * x), **kw)
    steep = transfer("mup", 1, (16, 32), [0.5], activation=lambda x: jnp.tanh(3 * x), **kw)
    assert soft.n_computed == steep.n_computed == 2 and steep.n_cached == 0
    assert not np.allclose(soft.losses, steep.losses)


def test_transfer_damaged_cache_entries_are_recomputed(tmp_path):
    import json

    kw = dict(FAST, cache_dir=tmp_path)
    first = transfer("mup", 1, (16, 32), [0.1, 0.2], **kw)
    entries = sorted(tmp_path.glob("*.json"))
    assert len(entries) == 4
    text = entries[0].read_text()
    entries[0].write_text(text[: len(text) // 2])  # truncated: bad JSON
    wrong = json.loads(entries[1].read_text())
    wrong["settings"]["lr"] = 99.0  # an entry that is not the point its name says
    entries[1].write_text(json.dumps(wrong))
    edited = json.loads(entries[2].read_text())
    edited["record"]["loss"] = 123.0  # the checksum no longer matches
    entries[2].write_text(json.dumps(edited))
    with pytest.warns(RuntimeWarning, match="3 damaged cache entries"):
        again = transfer("mup", 1, (16, 32), [0.1, 0.2], **kw)
    assert again.n_computed == 3 and again.n_cached == 1 and again.meta["cache_damaged"] == 3
    np.testing.assert_allclose(again.losses, first.losses, rtol=1e-12)
    third = transfer("mup", 1, (16, 32), [0.1, 0.2], **kw)  # rewritten, verified
    assert third.n_cached == 4


def test_transfer_unwritable_cache_dir_is_an_error_before_any_compute(tmp_path, monkeypatch):
    import limits.finite

    def no_compute(*args, **kwargs):
        raise AssertionError("computed before checking the cache folder")

    monkeypatch.setattr(limits.finite, "simulate", no_compute)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for folder in (blocker, blocker / "cache"):
        with pytest.raises(ValueError, match="cache_dir=.*cannot be written"):
            transfer("mup", 1, (16, 32), [0.1], cache_dir=folder, **FAST)
    import os

    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot be written"):
            transfer("mup", 1, (16, 32), [0.1], cache_dir=locked, **FAST)


def test_cache_store_is_atomic_and_verified(tmp_path):
    cache = _cache.Cache(tmp_path)
    settings = {"lr": 0.1, "width": 16}
    assert cache.load(settings) is None and cache.corrupted == []
    cache.store(settings, {"loss": 0.5, "curve": [1.0, float("inf")]})
    assert cache.load(settings) == {"loss": 0.5, "curve": [1.0, float("inf")]}
    assert [p.name for p in tmp_path.iterdir()] == [f"{_cache.key(settings)}.json"]
    (tmp_path / f"{_cache.key(settings)}.json").write_text("")
    assert cache.load(settings) is None and cache.corrupted == [_cache.key(settings)]


@pytest.mark.parametrize("args, kwargs, error, match", [
    (((64, 128), [0.1, -1.0]), {}, ValueError, r"lrs\[1\] must be a positive"),
    (((64, 128), [0.1, float("nan")]), {}, ValueError, r"lrs\[1\] must be finite"),
    (((64, 128), [0.1, 0.1]), {}, ValueError, r"lrs lists \[0.1\] more than once"),
    (((64, 128), []), {}, ValueError, "lrs is empty"),
    (((64, 128), 0.1), {}, TypeError, "lrs must be a list"),
    (((64, 128), ["0.1"]), {}, TypeError, r"lrs\[0\] must be a real number"),
    (((0, 64), [0.1]), {}, ValueError, r"widths\[0\] must be an integer >= 1"),
    (((64.0, 128), [0.1]), {}, TypeError, r"widths\[0\] must be a positive integer"),
    (((True, 128), [0.1]), {}, TypeError, r"widths\[0\]"),
    (((64, 64), [0.1]), {}, ValueError, r"widths lists \[64\] more than once"),
    (((64,), [0.1]), {}, ValueError, "at least 2 widths"),
    ((64, [0.1]), {}, TypeError, "widths must be a list"),
    (((64, 128), [0.1]), {"metric": "accuracy"}, ValueError, "metric must be one of 'train', 'test'"),
    (((64, 128), [0.1]), {"metric": "test"}, ValueError, "metric='test' needs X_test and y_test"),
    (((64, 128), [0.1]), {"seeds": 0}, ValueError, "seeds must be an integer >= 1"),
    (((64, 128), [0.1]), {"seeds": 2.5}, TypeError, "seeds must be an integer"),
    (((64, 128), [0.1]), {"steps": 0}, ValueError, "steps must be an integer >= 1"),
    (((64, 128), [0.1]), {"seed": -1}, ValueError, "seed must be an integer in"),
    (((64, 128), [0.1]), {"confidence": 2}, ValueError, "confidence must lie strictly between 0 and 1"),
    (((64, 128), [0.1]), {"limit": "yes"}, TypeError, "limit must be True or False"),
    (((64, 128), [0.1]), {"progress": 1}, TypeError, "progress must be True or False"),
    (((64, 128), [0.1]), {"cache_dir": False}, TypeError, "cache_dir must be None"),
    (((64, 128), [0.1]), {"method": {"dtype": "float32"}}, TypeError, r"method must be Simulation\(...\)"),
    (((64, 128), [0.1]), {"limit_method": "MonteCarlo"}, TypeError, "limit_method must be"),
    (((64, 128), [0.1]), {"activation": "swish"}, ValueError, "unknown activation"),
    (((64, 128), [0.1]), {"gamma0": -1.0}, ValueError, "gamma0 must be a positive"),
    (((64, 128), [0.1]), {"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
    (((64, 128), [0.1]), {"y_test": np.ones(3)}, ValueError, "y_test was given without X_test"),
])
def test_transfer_bad_inputs(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        transfer("mup", 2, *args, **{**FAST, **kwargs})


def test_transfer_table_arguments():
    table = limits.param("mup", 2)
    with pytest.raises(ValueError, match="gamma0= does not apply"):
        transfer(table, None, (16, 32), [0.1], gamma0=2.0, **FAST)
    with pytest.raises(ValueError, match="optimizer= does not apply"):
        transfer(table, None, (16, 32), [0.1], optimizer="adam", **FAST)
    with pytest.raises(ValueError, match="depth 2 but depth=3"):
        transfer(table, 3, (16, 32), [0.1], **FAST)
    with pytest.raises(TypeError, match="goes with depths="):
        transfer(lambda d: limits.param("mup", d), 2, (16, 32), [0.1], **FAST)
    # a table carries its depth; a preset name defaults to depth 1
    assert transfer(table, None, (16, 32), [0.1], **FAST).meta["depth"] == 2
    assert transfer("mup", None, (16, 32), [0.1], **FAST).meta["depth"] == 1


def test_transfer_limit_needs_a_table_with_a_limit():
    from limits.dmft import MonteCarlo
    from limits.kernels import KernelGD

    kw = {**FAST, "limit": True}
    with pytest.raises(ValueError, match="'adam'.*pass limit=False"):
        transfer("mup", 2, (16, 32), [0.1], optimizer="adam", **kw)
    with pytest.raises(ValueError, match="unstable.*pass limit=False"):
        transfer("sp", 2, (16, 32), [0.1], **kw)
    with pytest.raises(ValueError, match="kernel gradient descent.*feature-learning"):
        transfer("mup", 2, (16, 32), [0.1], limit_method=KernelGD(), **kw)
    with pytest.raises(ValueError, match="solves the DMFT.*'kernel' regime"):
        transfer("ntk", 2, (16, 32), [0.1], limit_method=MonteCarlo(), **kw)
    with pytest.raises(ValueError, match="limit_method= does not apply"):
        transfer("mup", 2, (16, 32), [0.1], limit_method=MonteCarlo(), **FAST)


def test_transfer_draws_the_limit_curves():
    from limits.dmft import Exact
    from limits.kernels import KernelGD

    kw = {**FAST, "limit": True, "steps": 4}
    lazy = transfer("ntk", 1, (16, 64), [0.5, 1.0], limit_method=KernelGD(), **kw)
    assert np.isfinite(lazy.limit_losses).all() and "solve_kernel" in lazy.meta["limit_note"]
    rich = transfer("mup", 1, (16, 64), [0.5, 1.0], activation="linear", limit_method=Exact(), **kw)
    assert np.isfinite(rich.limit_losses).all() and "solve_dmft" in rich.meta["limit_note"]
    assert "n=inf" in rich.table()
