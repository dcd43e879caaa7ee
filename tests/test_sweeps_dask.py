"""The Dask engine of limits.sweep on a LocalCluster of 2 worker processes: a killed worker, transfer on workers."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import limits

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with limits.local_cluster(2) as c:
        yield c


def kill_once(a, marker):
    """``{"y": a^2, "pid": ...}``; at a = 3 the first time, the worker process kills itself (SIGKILL)."""
    if a == 3 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": float(a) ** 2, "pid": os.getpid()}


def test_a_killed_worker_does_not_lose_or_repeat_points(client, tmp_path):
    """The worker running a = 3 dies mid-task; the scheduler reruns it elsewhere: every point exactly once, all
    "ok", every cache entry verifies, and a rerun reads all of them."""
    import functools

    marker = tmp_path / "killed"
    fn = functools.partial(kill_once, marker=str(marker))
    res = limits.sweep(fn, {"a": list(range(8))}, client=client, cache_dir=tmp_path / "cache", progress=False)
    assert marker.exists(), "the worker was not killed: the test did not test anything"
    assert (res.status == "ok").all() and res.n_computed == 8
    np.testing.assert_array_equal(res.values("y"), np.arange(8.0) ** 2)
    killed = int(marker.read_text())
    assert killed not in res.values("pid")
    entries = sorted((tmp_path / "cache").glob("*.json"))
    assert len(entries) == 8 and all(json.loads(p.read_text())["key"] == p.stem for p in entries)
    again = limits.sweep(fn, {"a": list(range(8))}, client=client, cache_dir=tmp_path / "cache", progress=False)
    assert (again.n_computed, again.n_cached) == (0, 8)


def test_transfer_on_workers_equals_transfer_here(client, tmp_path):
    """The same sweep on two worker processes and in this process: the same losses (to float64 rounding; the
    workers run XLA single-threaded), and the entries written from the workers' records serve the local rerun."""
    data = limits.datasets.teacher(P=4, D=3, seed=0)
    kw = dict(X=data.X, y=data.y, steps=3, seeds=2, limit=False, progress=False)
    remote = limits.transfer("mup", 1, (16, 32), [0.1, 0.5, 300.0], client=client, cache_dir=tmp_path, **kw)
    here = limits.transfer("mup", 1, (16, 32), [0.1, 0.5, 300.0], **kw)
    np.testing.assert_allclose(remote.losses, here.losses, rtol=1e-12)
    assert remote.n_computed == 6 and np.isinf(remote.losses[:, -1]).all()  # lr = 300 diverges: recorded, not fatal
    cached = limits.transfer("mup", 1, (16, 32), [0.1, 0.5, 300.0], cache_dir=tmp_path, **kw)
    assert (cached.n_computed, cached.n_cached) == (0, 6)
    np.testing.assert_array_equal(cached.losses, remote.losses)
