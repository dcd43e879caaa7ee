"""Finite-width simulator: consistency, determinism, gradients, kernels, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import limits
from limits import checks
from limits.finite import Simulation, SimulationDiverged, simulate
from limits.finite import network as net_fns

DATA = limits.datasets.teacher(P=8, D=4, P_test=5, seed=1)
KW = dict(X=DATA.X, y=DATA.y, steps=6, seeds=3, progress=False)


def test_mup_at_gamma_inverse_sqrt_width_is_ntk():
    n = 64
    mup = limits.param("mup", 2, gamma0=1 / np.sqrt(n))
    a = simulate(mup, 2, n, lr=0.7, **KW)
    b = simulate("ntk", 2, n, lr=0.7, **KW)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a.predictions_per_seed, b.predictions_per_seed, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-9)
    assert a.losses[:, -1].mean() < a.losses[:, 0].mean()


def test_deterministic_and_seed_prefix():
    a = simulate("mup", 2, 64, lr=0.5, X_test=DATA.X_test, y_test=DATA.y_test, **KW)
    b = simulate("mup", 2, 64, lr=0.5, X_test=DATA.X_test, y_test=DATA.y_test, **KW)
    assert np.array_equal(a.losses, b.losses)
    assert np.array_equal(a.test_predictions, b.test_predictions)
    assert a.test_loss.shape == (7,) and a.test_predictions.shape == (7, 5)
    # seed i is the same network whatever the ensemble size, and in any seed batch
    c = simulate("mup", 2, 64, lr=0.5, **{**KW, "seeds": 2})
    np.testing.assert_allclose(c.losses, a.losses[:2], rtol=1e-12)
    d = simulate("mup", 2, 64, lr=0.5, method=Simulation(seed_batch=1), **KW)
    np.testing.assert_allclose(d.losses, a.losses, rtol=1e-12)
    e = simulate("mup", 2, 64, lr=0.5, seed=1, **KW)
    assert not np.allclose(e.losses, a.losses)


def test_trajectory_shapes_and_stats():
    t = simulate("mup", 3, 64, lr=0.5, record=("ntk", "kernels", "features", "spectral"),
                 method=Simulation(record_steps=[6, 0, 2]), **KW)
    S, T1, P, L = 3, 7, 8, 3
    assert t.losses.shape == (S, T1) and t.loss.shape == (T1,) and t.predictions.shape == (T1, P)
    np.testing.assert_allclose(t.loss, t.losses.mean(0))
    np.testing.assert_allclose(t.loss_stderr, t.losses.std(0, ddof=1) / np.sqrt(S))
    assert t.prediction_cov.shape == (T1, P, P)
    assert t.ntk.shape == (3, P, P) and list(t.kernel_steps) == [0, 2, 6]
    assert sorted(t.kernels) == ["g1", "g2", "g3", "phi1", "phi2", "phi3"]
    d = t.diagnostics
    assert d["delta_h"].shape == (S, 3, L) and d["delta_f"].shape == (S, 3)
    assert d["W_spectral"].shape == (S, 3, L + 1)
    assert np.all(d["delta_h"][:, 0] == 0) and np.all(d["dW_spectral"][:, 0] == 0)
    assert np.all(d["delta_h"][:, -1] > 0)
    # the feature kernel is PSD and the mup NTK is sum G^{l+1} * Phi^l + Phi^L
    K0 = t.ntk_per_seed[:, 0]
    ks = t.kernels_per_seed
    Phi0 = DATA.X @ DATA.X.T / DATA.X.shape[1]
    expect = ks["phi3"][:, 0] + ks["g1"][:, 0] * Phi0 + ks["g2"][:, 0] * ks["phi1"][:, 0] + ks["g3"][:, 0] * ks["phi2"][:, 0]
    np.testing.assert_allclose(K0, expect, rtol=1e-10)
    assert np.linalg.eigvalsh(t.kernels["phi1"][0]).min() > -1e-10


def _numpy_step_predictions(params, net, X, y, lr, steps):
    """Independent numpy forward/backward for an MLP with tanh; predictions after each step."""
    m, eta = net.multipliers, net.lr_scales
    W = [np.array(w, dtype=np.float64) for w in params]
    L = len(W) - 1
    out = []
    for _ in range(steps + 1):
        acts, pre = [X], []
        h = m[0] * X @ W[0].T
        for l in range(1, L + 1):
            pre.append(h)
            a = np.tanh(h)
            acts.append(a)
            h = m[l] * a @ W[l].T if l < L else None
        f = m[L] * acts[L] @ W[L]
        out.append(f)
        r = (f - y) / len(y)  # dLoss/df
        grads = [None] * (L + 1)
        grads[L] = m[L] * acts[L].T @ r
        delta = (m[L] * r[:, None] * W[L][None, :]) * (1 - np.tanh(pre[L - 1]) ** 2)  # dLoss/dh^L
        for l in range(L - 1, -1, -1):
            grads[l] = m[l] * delta.T @ acts[l]
            if l > 0:
                delta = (delta @ (m[l] * W[l])) * (1 - np.tanh(pre[l - 1]) ** 2)
        W = [w - lr * eta[l] * g for l, (w, g) in enumerate(zip(W, grads))]
    return np.array(out)


@pytest.mark.parametrize("name,depth", [("mup", 2), ("sp", 3)])
def test_sgd_matches_handwritten_numpy(name, depth):
    p = limits.param(name, depth, gamma0=0.7)
    n, lr, seed = 6, 0.3 if name == "mup" else 0.05, 3
    net = p.instantiate(n, DATA.X.shape[1])
    params = net_fns.init_params(seed, 0, net.init_stds, depth, n, DATA.X.shape[1])
    expect = _numpy_step_predictions(params, net, DATA.X, DATA.y, lr, 3)
    t = simulate(p, depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=3, seeds=1, seed=seed, progress=False, record=())
    np.testing.assert_allclose(t.predictions_per_seed[0], expect, rtol=1e-10, atol=1e-12)


def test_ntk_matches_jacobian_and_first_step():
    depth, n, lr = 2, 16, 1e-4
    p = limits.param("mup", depth, gamma0=0.5)
    net = p.instantiate(n, DATA.X.shape[1])
    t = simulate(p, depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=1, seeds=1, progress=False, record=("ntk",),
                 method=Simulation(record_steps=0))
    params = net_fns.init_params(0, 0, net.init_stds, depth, n, DATA.X.shape[1])
    with jax.enable_x64(True):  # the reference in float64 (the package leaves the global setting alone)
        jac = jax.jacrev(lambda w: net_fns.forward(w, jnp.asarray(net.multipliers), jnp.asarray(DATA.X), jnp.tanh)[0])(params)
    K = sum(net.lr_scales[l] * np.asarray(J).reshape(len(DATA.y), -1) @ np.asarray(J).reshape(len(DATA.y), -1).T for l, J in enumerate(jac))
    np.testing.assert_allclose(t.ntk[0], K, rtol=1e-10)
    f = t.predictions_per_seed[0]
    df_pred = -lr * K @ (f[0] - DATA.y) / len(DATA.y)
    np.testing.assert_allclose(f[1] - f[0], df_pred, rtol=1e-3)


def test_adam_runs_and_differs_from_sgd():
    sgd = simulate("mup", 2, 64, lr=0.05, **KW)
    adam = simulate("mup", 2, 64, lr=0.05, optimizer="adam", **KW)
    assert adam.meta["optimizer"] == "adam" and sgd.meta["optimizer"] == "sgd"
    assert np.all(np.isfinite(adam.losses))
    assert adam.loss[-1] < adam.loss[0]
    assert not np.allclose(adam.losses, sgd.losses)
    # Adam's first update moves every raw weight by about lr * lr_scale (sign of the gradient)
    a2 = simulate(limits.param("mup", 2, optimizer="adam"), 2, 64, lr=0.05, **KW)
    np.testing.assert_allclose(a2.losses, adam.losses)


def test_divergence_is_reported_with_step():
    with pytest.raises(SimulationDiverged, match=r"diverged at step \d+.*smaller learning rate") as info:
        simulate("sp", 2, 256, lr=50.0, **{**KW, "steps": 40})
    assert info.value.step >= 1
    t = simulate("sp", 2, 256, lr=50.0, method=Simulation(divergence_factor=None), **{**KW, "steps": 40})
    assert not np.all(np.isfinite(t.loss)) or t.loss.max() > 1e6


def test_float32_and_other_activations():
    t = simulate("ntk", 1, 32, lr=0.5, method=Simulation(dtype="float32"), activation="relu", **KW)
    assert t.loss.dtype == np.float32 and t.predictions_per_seed.dtype == np.float32
    assert np.all(np.isfinite(t.loss)) and t.loss[-1] < t.loss[0]
    t = simulate("ntk", 1, 32, lr=0.5, activation=lambda x: jnp.sin(x), **KW)
    assert t.loss[-1] < t.loss[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(param=limits.param("mup", 3), depth=2), "depth"),
        (dict(record=("ntk", "hessian")), "unknown quantity"),
        (dict(record="two_time"), "cannot be recorded"),
        (dict(method=Simulation(record_steps=[0, 99])), "record_steps"),
        (dict(method=Simulation(record_steps=[0, 1]), record=()), "record_steps"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(seeds=0), "seeds"),
        (dict(steps=-1), "steps"),
        (dict(y=np.zeros(3)), "rows"),
        (dict(X=np.full((8, 4), np.nan)), "non-finite"),
        (dict(activation="softmax"), "activation"),
        (dict(param="xyz"), "preset"),
        (dict(param=limits.param("mup", 2), optimizer="adam"), "optimizer"),
        (dict(width=0), "width"),
        (dict(X_test=np.zeros((3, 2))), "features"),
        (dict(y_test=np.zeros(3)), "X_test"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(param="mup", depth=2, width=16, **KW)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(args.pop("param"), args.pop("depth"), args.pop("width"), **args)


def test_public_exports():
    import limits.analysis
    import limits.finite

    assert limits.simulate is limits.finite.simulate
    assert limits.compare is limits.analysis.compare
    assert limits.coord_check is limits.analysis.coord_check and limits.transfer is limits.analysis.transfer


# ------------------------------------------------- aligned signature (issue 15)
_R = np.random.default_rng(5)
FIXED_X, FIXED_Y = _R.standard_normal((8, 4)), _R.standard_normal(8)
# simulate("mup", 2, 64, X=FIXED_X, y=FIXED_Y, lr=0.1, steps=5, seeds=2) from the simulator before the signature
# change (commit 131456e); the same seeds must give the same networks and numbers
STORED_SGD = [[0.3642847747129516, 0.3563360142937636, 0.34859558190206685, 0.3410459426647917, 0.33367307928094675,
               0.3264660766595063],
              [0.33321011404810313, 0.32771183917329455, 0.3223425999395067, 0.3170870786902732, 0.3119321045668966,
               0.3068664304721997]]
# simulate("mup", 2, 16, ..., lr=0.05, steps=3, seeds=2, optimizer="adam", record=()) at the same commit
STORED_ADAM = [[0.3962794711488084, 0.36398773751656177, 0.33504831989060646, 0.3089113103131857],
               [0.3410673232398938, 0.32361921752833417, 0.30685483690989873, 0.29075569930653117]]


def test_numbers_unchanged_by_the_signature_change():
    t = simulate("mup", 2, 64, X=FIXED_X, y=FIXED_Y, lr=0.1, steps=5, seeds=2, progress=False)
    np.testing.assert_allclose(t.losses, STORED_SGD, rtol=1e-12, atol=0)
    t = simulate("mup", 2, 16, X=FIXED_X, y=FIXED_Y, lr=0.05, steps=3, seeds=2, optimizer="adam", record=(),
                 progress=False)
    np.testing.assert_allclose(t.losses, STORED_ADAM, rtol=1e-12, atol=0)


def test_defaults_depth_seed_and_meta():
    t = simulate(width=8, X=FIXED_X, y=FIXED_Y, steps=2, seeds=2, progress=False)
    assert t.meta["depth"] == 1 and t.meta["seed"] == 0 and t.meta["lr"] == 0.5 and t.meta["gamma0"] == 1.0
    assert t.meta["optimizer"] == "sgd" and t.meta["param"] == "mup" and t.meta["seeds"] == 2
    assert all(k in t.meta for k in checks.META_KEYS) and t.meta["solver"] == "simulate"
    assert t.meta["method"] == repr(Simulation()) and t.meta["wall_s"] > 0
    for key in ("wall_time", "parametrization", "dtype", "adam_eps"):
        assert key not in t.meta and key not in t.diagnostics
    table = limits.param("mup", 3, gamma0=0.5)
    u = simulate(table, width=8, X=FIXED_X, y=FIXED_Y, steps=2, seeds=1, progress=False)
    assert u.meta["depth"] == 3 and u.meta["gamma0"] is None
    np.testing.assert_array_equal(u.losses, simulate("mup", 3, 8, X=FIXED_X, y=FIXED_Y, gamma0=0.5, steps=2, seeds=1,
                                                     progress=False).losses)
    np.testing.assert_array_equal(t.losses[:1], simulate(width=8, X=FIXED_X, y=FIXED_Y, steps=2, seeds=1, seed=0,
                                                         progress=False).losses)


def test_per_seed_fields_have_the_documented_shapes():
    S, T1, P, Q, K, L = 3, 4, 8, 5, 2, 2
    t = simulate("mup", L, 16, X=DATA.X, y=DATA.y, X_test=DATA.X_test, y_test=DATA.y_test, steps=T1 - 1, seeds=S,
                 record=("ntk", "kernels", "features", "spectral"), progress=False)
    assert t.losses.shape == (S, T1) and t.predictions_per_seed.shape == (S, T1, P)
    assert t.test_predictions_per_seed.shape == (S, T1, Q) and t.test_losses.shape == (S, T1)
    assert t.ntk_per_seed.shape == (S, K, P, P) and list(t.kernel_steps) == [0, T1 - 1]
    assert sorted(t.kernels_per_seed) == ["g1", "g2", "phi1", "phi2"]
    assert all(v.shape == (S, K, P, P) for v in t.kernels_per_seed.values())
    np.testing.assert_allclose(t.test_loss, t.test_losses.mean(0))
    np.testing.assert_allclose(t.predictions, t.predictions_per_seed.mean(0))
    np.testing.assert_allclose(t.kernels["phi2"], t.kernels_per_seed["phi2"].mean(0))
    for key in ("predictions_per_seed", "test_predictions_per_seed", "test_losses", "ntk_per_seed", "kernels_per_seed"):
        assert key not in t.diagnostics
    assert t.diagnostics["delta_h"].shape == (S, K, L) and t.diagnostics["dW_spectral"].shape == (S, K, L + 1)
    bare = simulate("mup", 1, 8, X=DATA.X, y=DATA.y, steps=1, seeds=1, record=None, progress=False)
    assert bare.ntk_per_seed is None and bare.kernels_per_seed == {} and bare.test_losses is None
    assert bare.kernel_steps is None and bare.predictions_per_seed.shape == (1, 2, P)


TABLE = limits.param("mup", 2)
SGD_TABLE_ONLY = "the table 'mup' trains with SGD"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=1.9), r"\bsteps\b"),
        (dict(steps=True), r"\bsteps\b"),
        (dict(steps=0), r"\bsteps\b"),
        (dict(width=8.9), r"\bwidth\b"),
        (dict(width=16.0), r"\bwidth\b"),
        (dict(width=float("inf")), r"\bwidth\b"),
        (dict(depth=2.5), r"\bdepth\b"),
        (dict(seed=-1), r"\bseed\b"),
        (dict(seed=1.5), r"\bseed\b"),
        (dict(seed=2**32), r"\bseed\b"),
        (dict(seeds=2.0), r"\bseeds\b"),
        (dict(lr="0.1"), r"\blr\b"),
        (dict(lr=1 + 1j), r"\blr\b"),
        (dict(progress="yes"), r"\bprogress\b"),
        (dict(progress=1), r"\bprogress\b"),
        (dict(gamma0=0.0), r"\bgamma0\b"),
        (dict(gamma0="1"), r"\bgamma0\b"),
        (dict(optimizer="rmsprop"), r"\boptimizer\b"),
        (dict(param=TABLE, gamma0=2.0), r"\bgamma0\b"),
        (dict(param=TABLE, gamma0=1.0), r"\bgamma0\b"),
        (dict(param=TABLE, optimizer="sgd"), r"\boptimizer\b"),
        (dict(param=TABLE, optimizer="adam"), r"\boptimizer\b"),
        (dict(param=3), r"\bparam\b"),
        (dict(method=Simulation(adam_eps=1e-6)), "adam_eps"),
        (dict(record="hessian"), "record"),
        (dict(record=("ntk", 3)), "record"),
        (dict(record=5), "record"),
        (dict(method={"dtype": "float32"}), r"\bmethod\b"),
        (dict(X=DATA.X + 1j), r"\bX\b"),
    ],
)
def test_each_bad_input_kind_names_its_argument(kwargs, match):
    args = dict(param="mup", depth=None, width=16, X=DATA.X, y=DATA.y, steps=2, seeds=1, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):  # ArgumentTypeError is a ValueError too
        simulate(args.pop("param"), args.pop("depth"), args.pop("width"), **args)


def test_adam_eps_applies_to_adam_tables():
    kw = dict(X=DATA.X, y=DATA.y, steps=2, seeds=1, progress=False, record=())
    with pytest.raises(ValueError, match=SGD_TABLE_ONLY):
        simulate("mup", 1, 8, method=Simulation(adam_eps=1e-4), **kw)
    a = simulate("mup", 1, 8, optimizer="adam", method=Simulation(adam_eps=1e-4), **kw)
    b = simulate("mup", 1, 8, optimizer="adam", **kw)
    assert not np.array_equal(a.losses, b.losses)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(dtype="float16"), "dtype"),
        (dict(dtype=np.float64), "dtype"),
        (dict(seed_batch=0), "seed_batch"),
        (dict(seed_batch=1.5), "seed_batch"),
        (dict(divergence_factor=0.5), "divergence_factor"),
        (dict(divergence_factor=float("nan")), "divergence_factor"),
        (dict(divergence_factor="big"), "divergence_factor"),
        (dict(adam_eps=0.0), "adam_eps"),
        (dict(adam_eps=-1e-8), "adam_eps"),
        (dict(record_steps=[0, 1.5]), "record_steps"),
        (dict(record_steps=[-1, 2]), "record_steps"),
        (dict(record_steps=[]), "record_steps"),
        (dict(record_steps="0"), "record_steps"),
        (dict(record_steps=[[0, 1]]), "record_steps"),
    ],
)
def test_simulation_options_are_validated_on_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Simulation(**kwargs)


def test_simulation_options_are_frozen_and_canonical():
    m = Simulation(record_steps=np.array([4, 0, 4, 2]), seed_batch=np.int64(2))
    assert m.record_steps == (0, 2, 4) and m.seed_batch == 2 and isinstance(m.seed_batch, int)
    assert Simulation(record_steps=3).record_steps == (3,)
    with pytest.raises(AttributeError):
        m.dtype = "float32"
    assert m == Simulation(record_steps=(0, 2, 4), seed_batch=2) and hash(m) == hash(Simulation(record_steps=[0, 2, 4], seed_batch=2))


def test_jax_x64_setting_is_left_alone():
    """In a fresh process (other tests' state does not matter): importing limits.finite and calling simulate
    leave ``jax_enable_x64`` as the user set it, in both settings, and float64 results are float64."""
    import subprocess
    import sys

    code = (
        "import sys, jax, numpy as np\n"
        "want = sys.argv[1] == 'on'\n"
        "jax.config.update('jax_enable_x64', want)\n"
        "import limits.finite\n"
        "assert jax.config.jax_enable_x64 is want, 'import'\n"
        "d = limits.datasets.teacher(P=4, D=3)\n"
        "t = limits.finite.simulate('mup', 1, 8, X=d.X, y=d.y, steps=2, seeds=2, progress=False)\n"
        "assert jax.config.jax_enable_x64 is want, 'simulate'\n"
        "assert t.losses.dtype == np.float64 and t.ntk_per_seed.dtype == np.float64, t.losses.dtype\n"
        "m = limits.finite.Simulation(dtype='float32')\n"
        "u = limits.finite.simulate('mup', 1, 8, X=d.X, y=d.y, steps=2, seeds=2, progress=False, method=m)\n"
        "assert jax.config.jax_enable_x64 is want and u.losses.dtype == np.float32, u.losses.dtype\n"
        "t2 = limits.finite.simulate('mup', 1, 8, X=d.X, y=d.y, steps=2, seeds=2, progress=False)\n"
        "assert t2.losses.dtype == np.float64 and np.array_equal(t2.losses, t.losses)\n"
        "print('ok', jax.config.jax_enable_x64)\n"
    )
    for setting in ("on",):  # "off" (the default) in a fresh process: tests/test_api.py
        out = subprocess.run([sys.executable, "-c", code, setting], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split() == ["ok", str(setting == "on")]


_SHARDED = """
import sys, numpy as np, jax, limits
from limits.finite import Simulation
assert len(jax.local_devices()) == int(sys.argv[1]), jax.local_devices()
d = limits.datasets.teacher(P=5, D=3, seed=0)
t = limits.simulate("mup", 2, 32, X=d.X, y=d.y, X_test=d.X[:2], lr=0.5, steps=6, seeds=5, progress=False,
                    record=("ntk", "kernels", "features", "spectral"), method=Simulation(seed_batch=3))
np.savez(sys.argv[2], losses=t.losses, f=t.predictions_per_seed, ft=t.test_predictions_per_seed, ntk=t.ntk_per_seed,
         phi=t.kernels_per_seed["phi1"], dh=t.diagnostics["delta_h"], W=t.diagnostics["W_spectral"],
         dW=t.diagnostics["dW_spectral"])
"""


def test_seeds_sharded_over_two_devices_give_the_one_device_result(tmp_path):
    """XLA_FLAGS=--xla_force_host_platform_device_count=2: the seed ensemble is split over the 2 CPU devices (the
    default, devices=None; batches of 3 padded to 4) and gives every per-seed output of a one-device process
    (depth 2: losses, train and test outputs, NTK, kernels, feature diagnostics, spectral norms) to float64 rounding (the hidden
    N x N products are batched matmuls, whose last bit depends on the batch size: one device with
    Simulation(seed_batch=2) instead of 3 differs by the same 1e-16). The reference runs in a process without the
    flag. (This program hung in XLA in about half the runs while the spectral norms of small layers called LAPACK's
    eigensolver; they are matrix products now.)"""
    import os
    import subprocess
    import sys

    out = {}
    for devices in (2, 1):
        env = dict(os.environ)
        env.pop("XLA_FLAGS", None)
        if devices == 2:
            env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        path = tmp_path / f"devices{devices}.npz"
        proc = subprocess.run([sys.executable, "-c", _SHARDED, str(devices), str(path)], capture_output=True,
                              text=True, timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[devices] = dict(np.load(path))
    for name, one in out[1].items():
        assert np.max(np.abs(out[2][name] - one)) < 1e-14, name


def test_more_devices_than_there_are_is_an_error():
    from limits.finite import Simulation

    with pytest.raises(ValueError, match="devices=3 but JAX sees 1"):
        limits.simulate("mup", 1, 16, steps=1, seeds=1, progress=False, method=Simulation(devices=3))
    with pytest.raises(ValueError, match="Simulation.devices"):
        Simulation(devices=0)


def test_spectral_norm_matches_svd():
    """Matrix products only (the LAPACK eigensolver hung in the time loop): exact to rounding when a side is <= 32,
    degenerate tops and zero updates included; power iteration a close lower bound above that."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    cases = [rng.normal(size=(40, 3)), rng.normal(size=(5, 32)), np.outer(rng.normal(size=32), rng.normal(size=4)),
             Q @ np.diag([3.0, 3.0, 1.0, 0.5, 3.0 - 1e-9, 0.0]), np.zeros((32, 4))]
    with jax.enable_x64(True):
        for M in cases:
            exact = np.linalg.svd(M, compute_uv=False)[0]
            assert abs(float(net_fns.spectral_norm(jnp.asarray(M))) - exact) <= 1e-14 * max(exact, 1.0)
        M = rng.normal(size=(64, 48))
        ratio = float(net_fns.spectral_norm(jnp.asarray(M))) / np.linalg.svd(M, compute_uv=False)[0]
    assert 0.99 < ratio <= 1 + 1e-12
