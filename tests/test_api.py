"""One consistent public API: shared arguments, metadata, result type, no import side effects."""

import inspect
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

import limits
from limits import checks

SHARED = ("param", "depth", "width", "X", "y", "activation", "gamma0", "optimizer", "lr", "steps", "X_test", "y_test",
          "seed", "seeds", "record", "progress", "method")
ENTRY_POINTS = ("solve_dmft", "solve_kernel", "simulate", "transfer", "coord_check")


def _params(name):
    return inspect.signature(getattr(limits, name)).parameters


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_shared_arguments_have_one_order_and_kind(name):
    params = _params(name)
    names = [n for n in params if n in SHARED]
    assert names == [n for n in SHARED if n in params], (name, names)  # same relative order everywhere
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[:2] == ["param", "depth"], (name, positional)
    for n in set(params) & set(SHARED) - {"param", "depth", "width"}:
        assert params[n].kind is inspect.Parameter.KEYWORD_ONLY, (name, n)
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{name} swallows **kwargs"


def test_shared_defaults_agree():
    stated = {"lr": {"coord_check": 0.05}, "steps": {"transfer": 50, "coord_check": 3},
              "param": {"solve_kernel": "ntk"}, "width": {"simulate": 256, "solve_dmft": math.inf},
              "seeds": {"simulate": 8, "transfer": 4, "coord_check": 4}}
    common = {"param": "mup", "depth": None, "X": None, "y": None, "activation": "tanh", "gamma0": None,
              "optimizer": None, "lr": 0.5, "steps": 100, "X_test": None, "y_test": None, "seed": None,
              "record": ("ntk", "kernels"), "progress": True, "method": None}
    for name in ENTRY_POINTS:
        params = _params(name)
        for arg, default in common.items():
            if arg in params:
                want = stated.get(arg, {}).get(name, default)
                assert params[arg].default == want, (name, arg, params[arg].default, want)
        for arg, per in stated.items():
            if name in per and arg in params:
                assert params[arg].default == per[name], (name, arg)


def test_import_leaves_the_jax_configuration_alone():
    code = ("import jax; before = jax.config.jax_enable_x64\n"
            "import limits, limits.kernels, limits.finite, limits.dmft, limits.analysis\n"
            "d = limits.datasets.teacher(P=4, D=3)\n"
            "t = limits.solve_dmft('mup', 2, X=d.X, y=d.y, activation='linear', steps=2, progress=False)\n"
            "k = limits.solve_kernel('ntk', 1, X=d.X, y=d.y, steps=2, progress=False)\n"
            "s = limits.simulate('mup', 1, 8, X=d.X, y=d.y, steps=2, seeds=1, progress=False)\n"
            "assert t.loss.dtype == k.loss.dtype == s.loss.dtype == 'float64', (t.loss.dtype, k.loss.dtype)\n"
            "print(before, jax.config.jax_enable_x64)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


def test_import_limits_does_not_load_jax():
    """Tables and the CLI need no JAX: ``import limits`` leaves it unloaded (the solvers load it on first use)."""
    out = subprocess.run([sys.executable, "-c", "import sys, limits; limits.param('mup', 2).classify(); "
                          "print('jax' in sys.modules)"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["False"], out.stderr[-2000:]


@pytest.fixture(scope="module")
def results():
    d = limits.datasets.teacher(P=4, D=3, P_test=2)
    kw = dict(X=d.X, y=d.y, X_test=d.X_test, y_test=d.y_test, steps=3, progress=False)
    return {
        "dmft": limits.solve_dmft("mup", 2, activation="linear", **kw),
        "kernel": limits.solve_kernel("ntk", 2, **kw),
        "simulate": limits.simulate("mup", 2, 16, seeds=2, **kw),
    }


def test_every_trajectory_has_the_shared_meta_keys(results):
    for solver, traj in results.items():
        missing = [k for k in checks.META_KEYS if k not in traj.meta]
        assert not missing, (solver, missing)
        assert traj.meta["solver"] == solver
        assert traj.meta["wall_s"] > 0 and traj.test_loss.shape == (4,)
        for key in ("wall_time", "parametrization"):
            assert key not in traj.meta and key not in traj.diagnostics, (solver, key)


def test_per_seed_arrays_are_typed_fields(results):
    sim = results["simulate"]
    assert sim.losses.shape == (2, 4) and sim.predictions_per_seed.shape == (2, 4, 4)
    assert sim.test_predictions_per_seed.shape == (2, 4, 2) and sim.test_losses.shape == (2, 4)
    assert sim.ntk_per_seed.shape[0] == 2 and sim.kernels_per_seed["phi1"].shape[0] == 2
    for key in ("predictions_per_seed", "ntk_per_seed", "kernels_per_seed", "test_losses"):
        assert key not in sim.diagnostics, key


def test_trajectory_is_a_pytree(results):
    traj = results["simulate"]
    doubled = jax.tree_util.tree_map(lambda a: 2 * np.asarray(a), traj)
    np.testing.assert_array_equal(doubled.loss, 2 * traj.loss)
    np.testing.assert_array_equal(doubled.kernels_per_seed["phi1"], 2 * traj.kernels_per_seed["phi1"])
    assert doubled.meta is traj.meta
    leaves, tree = jax.tree_util.tree_flatten(traj)
    again = jax.tree_util.tree_unflatten(tree, leaves)
    np.testing.assert_array_equal(again.predictions, traj.predictions)


def test_a_table_carries_its_depth():
    d = limits.datasets.teacher(P=4, D=3)
    kw = dict(X=d.X, y=d.y, steps=2, progress=False)
    table = limits.param("mup", 3)
    a = limits.solve_dmft(table, activation="linear", **kw)
    b = limits.solve_dmft("mup", 3, activation="linear", **kw)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert limits.simulate(table, width=8, seeds=1, **kw).meta["depth"] == 3


@pytest.mark.parametrize("name", ["solve_dmft", "solve_kernel", "simulate"])
def test_gamma0_next_to_a_table_is_rejected(name):
    d = limits.datasets.teacher(P=4, D=3)
    with pytest.raises(ValueError, match="gamma0"):
        table = limits.param("ntk" if name == "solve_kernel" else "mup", 1)
        getattr(limits, name)(table, X=d.X, y=d.y, steps=2, gamma0=3.0, progress=False)


def test_review_findings_stay_fixed():
    """Inputs a review found silently dropped, misnamed or not canonical."""
    d = limits.datasets.teacher(P=4, D=3, P_test=2)
    kw = dict(X=d.X, y=d.y, steps=2, progress=False)
    with pytest.raises(ValueError, match="record: 'two_time'.*kernel"):  # was silently dropped on the kernel route
        limits.solve_dmft("ntk", activation="relu", record=("two_time",), **kw)
    assert limits.solve_dmft("ntk", activation="relu", gamma0=2.0, **kw).meta["gamma0"] == 2.0
    with pytest.raises(ValueError, match="y_test has 1 entries"):  # was "y has 1 entries"
        limits.solve_dmft("mup", 1, activation="linear", X_test=d.X_test, y_test=d.y_test[:1], **kw)
    with pytest.raises(ValueError, match="seed must be an integer in"):
        limits.solve_dmft("mup", 1, seed=2**40, **kw)
    a = limits.dmft.MonteCarlo(samples=np.int64(1024), qmc=np.True_, stein_jitter=np.float32(0.5))
    assert repr(a) == repr(limits.dmft.MonteCarlo(samples=1024, qmc=True, stein_jitter=0.5))
    assert repr(limits.kernels.KernelGD(flow=np.True_)) == repr(limits.kernels.KernelGD(flow=True))
    kernel = limits.kernels.mlp(2, "relu")
    for bad in ([True, True, True], ["1", "2", "3"], np.array([1 + 5j, 1, 1])):
        with pytest.raises(TypeError, match=r"layer_weights\[0\]"):
            kernel(d.X, layer_weights=bad)


def test_monte_carlo_dmft_of_all_zero_inputs_is_finite():
    """A singular input kernel (all-zero X) is factored by its square root, not a failing Cholesky: the features
    are 0, so nothing trains and the loss stays at its initial value."""
    d = limits.datasets.teacher(P=4, D=3)
    tr = limits.solve_dmft("mup", 2, X=np.zeros((4, 3)), y=d.y, steps=2, progress=False,
                           method=limits.dmft.MonteCarlo(samples=256))
    np.testing.assert_allclose(tr.loss, 0.5 * np.mean(d.y ** 2), rtol=1e-12)
