"""limits.sweep and its engine (limits.sweeps.run_tasks) in this process: grids, results, cache, resume, errors.

The Dask engine (killed workers, transfer on a LocalCluster) is in tests/test_sweeps_dask.py; sharding the seeds of
simulate over local devices is in tests/test_finite.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import limits
from limits import sweeps
from limits.finite import SimulationDiverged


def product(a, b):
    return {"x": a * b, "curve": np.arange(3.0) * a}


def test_sweep_grid_to_labelled_array_and_back(tmp_path):
    """Every point once, in grid order, as an xarray Dataset with the grid's dims plus the output's own; the JSON
    round trip gives the same dataset."""
    res = limits.sweep(product, {"a": [1, 2], "b": [0.5, 1.5, 2.5]}, dims={"curve": ("step",)}, progress=False)
    ds = res.dataset
    assert dict(ds.sizes) == {"a": 2, "b": 3, "step": 3}
    np.testing.assert_array_equal(ds["x"].values, np.outer([1, 2], [0.5, 1.5, 2.5]))
    np.testing.assert_array_equal(ds["curve"].sel(a=2, b=1.5).values, [0.0, 2.0, 4.0])
    assert (ds["status"].values == "ok").all() and (res.n_computed, res.n_cached) == (6, 0)
    back = limits.SweepResult.from_json(res.to_json(tmp_path / "sweep.json"))
    assert back.dataset.equals(ds.drop_attrs()) or back.dataset["x"].equals(ds["x"])
    np.testing.assert_array_equal(back.values("curve"), res.values("curve"))
    assert "status" in res.table() and res.plot(tmp_path / "sweep.png", y="x", x="b").exists()


def test_sweep_of_trajectories_has_a_step_axis():
    """A function returning a Trajectory gives its loss over (grid, step), equal to the direct call."""
    data = limits.datasets.teacher(P=4, D=3, seed=0)

    def run(lr, seed):
        return limits.simulate("mup", 1, 32, X=data.X, y=data.y, lr=lr, seed=seed, seeds=1, steps=3, record=(),
                               progress=False)

    res = limits.sweep(run, {"lr": [0.1, 0.5], "seed": [0, 1]}, progress=False)
    assert res.dataset["loss"].dims == ("lr", "seed", "step")
    direct = run(0.5, 1).loss
    np.testing.assert_array_equal(res.dataset["loss"].sel(lr=0.5, seed=1).values, direct)


def diverging(lr):
    if lr > 1:
        raise SimulationDiverged("diverged at step 3", 3, lr)
    if lr == 0.5:
        raise RuntimeError("boom")
    return {"loss": lr}


def test_failing_points_are_recorded_not_fatal(tmp_path):
    """A divergence is status "diverged" (cached: the answer there); another exception is status "error" with its
    message and a warning (not cached: the rerun retries it); the other points are computed."""
    grid = {"lr": [0.1, 0.5, 2.0]}
    with pytest.warns(RuntimeWarning, match="1 of 3 sweep points raised.*boom"):
        res = limits.sweep(diverging, grid, cache_dir=tmp_path, progress=False)
    assert list(res.status) == ["ok", "error", "diverged"]
    np.testing.assert_array_equal(res.values("loss"), [0.1, np.nan, np.nan])
    assert res.errors == [({"lr": 0.5}, "RuntimeError: boom")]
    assert len(list(tmp_path.glob("*.json"))) == 2
    with pytest.warns(RuntimeWarning):
        again = limits.sweep(diverging, grid, cache_dir=tmp_path, progress=False)
    assert (again.n_computed, again.n_cached) == (1, 2)


_calls = []


def counted(a):
    _calls.append(a)
    if a == 3 and os.environ.get("LIMITS_TEST_INTERRUPT"):
        raise KeyboardInterrupt
    return {"y": float(a) ** 2}


def test_interrupted_sweep_resumes_with_the_missing_points(tmp_path, monkeypatch):
    """Ctrl-C at the fourth point: the three before are stored; the rerun computes only the other five."""
    monkeypatch.setenv("LIMITS_TEST_INTERRUPT", "1")
    with pytest.raises(KeyboardInterrupt):
        limits.sweep(counted, {"a": list(range(8))}, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 3
    monkeypatch.delenv("LIMITS_TEST_INTERRUPT")
    _calls.clear()
    res = limits.sweep(counted, {"a": list(range(8))}, cache_dir=tmp_path, progress=False)
    assert sorted(_calls) == [3, 4, 5, 6, 7] and (res.n_computed, res.n_cached) == (5, 3)
    np.testing.assert_array_equal(res.values("y"), np.arange(8.0) ** 2)


_SQUARE = """
import os, signal


def square(a):
    if a == 5 and os.environ.get("LIMITS_TEST_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": float(a) ** 2}
"""


def test_killed_process_resumes_and_leaves_no_corrupt_entry(tmp_path, monkeypatch):
    """A process killed (SIGKILL) in the middle of a sweep: every stored entry verifies, and the rerun (same
    function, another process) computes exactly the points that were not stored."""
    (tmp_path / "square_module.py").write_text(_SQUARE)
    cache = tmp_path / "cache"
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import limits, square_module; "
              f"limits.sweep(square_module.square, {{'a': list(range(8))}}, cache_dir={str(cache)!r}, progress=False)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          env={**os.environ, "LIMITS_TEST_KILL": "1"})
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    stored = sorted(cache.glob("*.json"))
    assert len(stored) == 5
    for path in stored:
        entry = json.loads(path.read_text())
        assert entry["key"] == path.stem and entry["record"]["status"] == "ok"
    monkeypatch.syspath_prepend(str(tmp_path))
    import square_module

    res = limits.sweep(square_module.square, {"a": list(range(8))}, cache_dir=cache, progress=False)
    assert (res.n_computed, res.n_cached) == (3, 5)
    np.testing.assert_array_equal(res.values("y"), np.arange(8.0) ** 2)


def test_the_cache_key_follows_what_fn_computes(tmp_path):
    """Same code and captured values: read from the cache; a changed captured value: recomputed."""
    def scaled(factor):
        return lambda a: {"y": factor * a}

    first = limits.sweep(scaled(2.0), {"a": [1, 2]}, cache_dir=tmp_path, progress=False)
    same = limits.sweep(scaled(2.0), {"a": [1, 2]}, cache_dir=tmp_path, progress=False)
    other = limits.sweep(scaled(3.0), {"a": [1, 2]}, cache_dir=tmp_path, progress=False)
    assert (first.n_computed, same.n_cached, other.n_computed) == (2, 2, 2)
    np.testing.assert_array_equal(other.values("y"), [3.0, 6.0])


@pytest.mark.parametrize("grid, match", [
    ({"a": [1, 1]}, "duplicate"),
    ({"a": [1.0, float("nan")]}, "not finite"),
    ({"a": [1.0, float("inf")]}, "not finite"),
    ({"a": []}, "a"),
    ({"not a name": [1]}, "identifiers"),
    ({}, "non-empty mapping"),
    ({"a": [object()]}, "number or a string"),
])
def test_bad_grids_are_named(grid, match):
    with pytest.raises((ValueError, TypeError), match=match):
        limits.sweep(product, grid, progress=False)


def test_unwritable_cache_is_an_error_before_any_compute(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _calls.clear()
    with pytest.raises(ValueError, match="cannot be written"):
        limits.sweep(counted, {"a": [1]}, cache_dir=blocker / "cache", progress=False)
    assert _calls == []


def test_bad_clients_are_named(monkeypatch):
    """A client that is neither a Client nor an address is a TypeError; an unreachable address a ConnectionError
    within the connection timeout, naming the address."""
    with pytest.raises(TypeError, match="client must be"):
        limits.sweep(product, {"a": [1], "b": [1]}, client=42, progress=False)
    monkeypatch.setattr(sweeps, "_CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(ConnectionError, match="tcp://127.0.0.1:9"):
        limits.sweep(product, {"a": [1], "b": [1]}, client="tcp://127.0.0.1:9", progress=False)


def test_transfer_errors_become_nan_points(monkeypatch):
    """A transfer point that raises (not a divergence) is a NaN loss and a warning; the sweep finishes."""
    module = sys.modules["limits.analysis.transfer"]

    real = module._simulate

    def flaky(p, c, width, lr):
        if width == 32 and lr > 0.2:
            raise RuntimeError("out of memory")
        return real(p, c, width, lr)

    monkeypatch.setattr(module, "_simulate", flaky)
    data = limits.datasets.teacher(P=4, D=3, seed=0)
    with pytest.warns(RuntimeWarning, match="1 transfer points raised.*out of memory"):
        res = limits.transfer("mup", 1, (16, 32), [0.1, 0.3], X=data.X, y=data.y, steps=2, seeds=1, limit=False,
                              progress=False)
    assert np.isnan(res.losses[1, 1]) and np.isfinite(res.losses[0]).all()
    ds = res.dataset
    assert ds["curve"].dims == ("width", "lr", "step") and ds["curve"].shape == (2, 2, 3)
    np.testing.assert_array_equal(ds["loss"].sel(width=16).values, res.losses[0])


def test_ensembles_equal_the_direct_simulations_and_are_cached(tmp_path):
    """limits.ensembles: per width the Trajectory of the direct simulate call (every array field bit-identical,
    also when read back from the cache); bad arguments are named before anything runs."""
    import dataclasses

    data = limits.datasets.teacher(P=4, D=3, seed=0)
    kw = dict(X=data.X, y=data.y, lr=0.5, steps=3, seeds=3, record=("ntk",))
    first = limits.ensembles("mup", 1, (32, 16), cache_dir=tmp_path, progress=False, **kw)
    again = limits.ensembles("mup", 1, (16, 32), cache_dir=tmp_path, progress=False, **kw)
    assert list(first) == [16, 32] and len(list(tmp_path.glob("*.json"))) == 2
    for w in (16, 32):
        direct = limits.simulate("mup", 1, w, progress=False, **kw)
        for traj in (first[w], again[w]):
            for f in dataclasses.fields(direct):
                a = getattr(direct, f.name)
                if isinstance(a, np.ndarray):
                    np.testing.assert_array_equal(getattr(traj, f.name), a, err_msg=f.name)
    with pytest.raises(TypeError, match="unexpected arguments.*'lrs'"):
        limits.ensembles("mup", 1, (16,), lrs=[0.1], progress=False)
    with pytest.raises(ValueError, match="widths"):
        limits.ensembles("mup", 1, (16, 16), progress=False)
    with pytest.raises(ValueError, match="seeds"):
        limits.ensembles("mup", 1, (16,), seeds=0, progress=False)
