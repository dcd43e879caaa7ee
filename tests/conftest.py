"""Shared test fixtures."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def random_regression():
    """``make(P, D=8, seed=1) -> (X (P, D), y (P,))``: standard normal inputs, targets scaled to unit mean square."""

    def make(P, D=8, seed=1):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((P, D))
        y = rng.standard_normal(P)
        return X, y / np.sqrt(np.mean(y**2))

    return make


def _pin_xdist_worker() -> None:
    """Pin each pytest-xdist worker to a core of its own, before JAX starts.

    XLA sizes its CPU thread pools by the cores a process may use; two unpinned workers on two cores each ran pools
    as wide as the machine, and about half of the suite's CPU time went to the kernel (threads contending) instead
    of to the tests. Subprocesses started by a test inherit the worker's core.
    """
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if len(cores) < 2 or count < 2:
        return
    os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})



def _share_compilations() -> None:
    """One JAX persistent compilation cache for the test run: the xdist workers and the subprocesses the tests start
    (benchmark and figure scripts, the CLI) compile many of the same programs. A fresh folder per run (keyed by
    xdist's run id), so nothing carries over between runs; a user's own setting is left alone."""
    import os
    import tempfile

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"limits-tests-jax-cache-{run}")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")



def _cheap_compiles() -> None:
    """XLA's backend optimization level 0 in the tests: most of the suite is compiling small programs, whose run
    time is negligible; level 0 cuts the suite's CPU time by about a fifth. Results change at most in the last bits
    (different fusions); the tests' tolerances are 1e-12 or looser. Appended to any XLA_FLAGS already set."""
    import os

    flag = "--xla_backend_optimization_level=0"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


_pin_xdist_worker()
_share_compilations()
_cheap_compiles()


# Files whose tests take longest (a minute or more of one core each), started first so that the two xdist workers
# (``--dist loadfile``: a file runs on one worker) finish together instead of one running them at the end alone.
_SLOW_FIRST = ("test_benchmarks.py", "test_figures.py", "test_finite_width_linear.py", "test_dmft_resnet.py",
               "test_dmft_layer_time.py", "test_finite.py", "test_depth.py", "test_optimizers.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a file is kept
