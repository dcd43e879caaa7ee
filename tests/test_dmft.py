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
    assert tr.meta["solver"] == "dmft" and tr.diagnostics["method"].startswith("deep-linear")


@pytest.mark.parametrize("depth,act", [(1, "tanh"), (2, "linear")])
def test_lazy_limit_is_kernel_gd_with_gamma_squared_deviation(small, depth, act):
    """gamma0 -> 0 is kernel GD with the NTK, and f(gamma0) - f(0) = O(gamma0^2): with the same
    sources, successive differences at gamma0 = g, 2g, 4g scale by 4."""
    X, y, T, lr = small.X, small.y, 12, 0.5
    kern = limits.solve_kernel("mup", depth, X=X, y=y, activation=act, lr=lr, steps=T, gamma0=1e-6)
    method = None if act == "linear" else limits.dmft.MonteCarlo(samples=2048)
    preds = []
    for g in (0.02, 0.04, 0.08):
        tr = solve_dmft("mup", depth, X=X, y=y, activation=act, gamma0=g, lr=lr, steps=T, method=method, progress=False)
        preds.append(tr.predictions)
    mc_tol = 1e-10 if act == "linear" else 0.02  # Monte Carlo error of the sampled kernels
    np.testing.assert_allclose(tr.ntk[0], kern.ntk[0], atol=3 * mc_tol)
    np.testing.assert_allclose(preds[0], kern.predictions, atol=mc_tol + 1e-3)
    d1 = np.abs(preds[1] - preds[0]).max()
    d2 = np.abs(preds[2] - preds[1]).max()
    assert 3.5 < d2 / d1 < 4.5, d2 / d1  # O(gamma0^2)


def test_deep_linear_equations_match_monte_carlo(small):
    X, y = small.X, small.y
    exact = solve_dmft("mup", 2, X=X, y=y, activation="linear", lr=0.1, steps=8, progress=False)
    mc = solve_dmft("mup", 2, X=X, y=y, activation="linear", lr=0.1, steps=8,
                    method=limits.dmft.MonteCarlo(samples=2048), progress=False)
    assert mc.diagnostics["method"].startswith("Monte Carlo")
    err = np.abs(np.log(mc.loss / exact.loss)).max()
    assert err < 0.02, err
    np.testing.assert_allclose(mc.kernels["phi2"], exact.kernels["phi2"], rtol=0.05, atol=0.02)


def test_outputs_shapes_and_test_points(small):
    X, y, Xt = small.X, small.y, small.X_test
    T = 6
    tr = solve_dmft("mup", 2, X=X, y=y, X_test=Xt, activation="linear", lr=0.2, steps=T, progress=False,
                    record=("ntk", "kernels", "two_time"))
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
    method = None if samples is None else limits.dmft.MonteCarlo(samples=samples)
    tr = solve_dmft("mup", c["depth"], X=data.X, y=data.y, activation=c["activation"], lr=c["lr"], steps=c["steps"],
                    method=method, progress=False)
    ext = np.asarray(ref["extrapolated"])
    dev = np.abs(np.log(tr.loss / ext))
    sigma = _extrapolation_sigma(ref)
    assert tr.loss[-1] / tr.loss[0] < 2e-2  # the trajectory goes down about two decades
    assert np.all(dev <= 0.02 + 2 * sigma), (
        f"{name}: max |dlog L| = {dev.max():.4f} (2 sigma of the reference up to {2 * sigma.max():.4f})")


def test_float32_matches_float64_on_the_same_sources(small):
    """Single precision moves the march by far less than its Monte Carlo error."""
    kw = dict(X=small.X, y=small.y, lr=0.5, steps=7, progress=False)
    for act in ("tanh", "relu"):
        lo = solve_dmft("mup", 2, activation=act, method=limits.dmft.MonteCarlo(samples=512, dtype="float32"), **kw)
        hi = solve_dmft("mup", 2, activation=act, method=limits.dmft.MonteCarlo(samples=512), **kw)
        assert lo.loss.dtype == np.float64 and "float32" in lo.diagnostics["method"]
        dlog = np.abs(np.log(lo.loss / hi.loss)).max()
        assert dlog < 0.2 * np.max(hi.loss_stderr / hi.loss) and dlog < 5e-3, (act, dlog)


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
    with pytest.raises(ValueError, match="MonteCarlo.dtype"):
        limits.dmft.MonteCarlo(dtype="float16")
    with pytest.raises(ValueError, match="MonteCarlo.samples"):
        limits.dmft.MonteCarlo(samples=8)
    with pytest.raises(ValueError, match="stein_jitter"):
        limits.dmft.MonteCarlo(stein_jitter=2.0)


def test_unstable_parametrization_raises(small):
    p = limits.Parametrization.from_abc([0, 0], [0, 0], [-1, -1])  # readout too large: f blows up
    assert p.classify().regime == "unstable"
    with pytest.raises(ValueError, match="unstable"):
        solve_dmft(p, 1, X=small.X, y=small.y, activation="linear", steps=3, progress=False)


def test_ntk_at_finite_width_is_dmft_at_effective_gamma(small):
    X, y = small.X, small.y
    """The ntk table at width N is the DMFT at gamma = 1/sqrt(N), finite-width theory included (the same width-N
    corrections as mup at gamma0 = 1/sqrt(N) and width N; docs/theory/finite_width.md)."""
    with pytest.warns(RuntimeWarning, match="not meaningful"):  # O(1) random initial outputs: variance > mean y^2
        a = solve_dmft("ntk", 1, 400, X=X, y=y, activation="linear", lr=0.3, steps=6, progress=False)
    with pytest.warns(RuntimeWarning, match="not meaningful"):
        b = solve_dmft("mup", 1, 400, X=X, y=y, activation="linear", gamma0=1 / math.sqrt(400), lr=0.3, steps=6,
                       progress=False)
    assert a.meta["gamma"] == pytest.approx(0.05)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    np.testing.assert_allclose(a.prediction_cov, b.prediction_cov, rtol=1e-12)
    # the ntk network's initial outputs are O(1) random: N Var f(0) = Phi(0) / gamma^2 = N Phi(0)
    assert np.all(np.diagonal(a.prediction_cov[0]) > 0.1)


# ------------------------------------------------------------- compiled table
@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_table_constants_are_honoured(activation):
    """Per-layer learning-rate factors and init stds of a table change the limit exactly as they change the
    network: the DMFT of the table agrees with finite widths of the same table extrapolated in 1/N (measured
    max |dlog L| 7.0% linear / 1.8% tanh, within 2 standard errors of the extrapolation, 10.8% / 3.0%), while
    the plain mup limit misses them by 199% / 38%."""
    d = limits.datasets.teacher(P=4, D=8, seed=3)
    p = limits.param("mup", 2, lr_scales=[1.0, 4.0, 0.5], init_stds=[1.0, 1.4, 1.0])
    lim = p.dmft_limit()
    assert lim.kappa == (1.0, 4.0, 0.5) and lim.b == pytest.approx((1.0, 1.4, 1.0))
    kw = dict(X=d.X, y=d.y, activation=activation, lr=0.3, steps=8)
    method = None if activation == "linear" else limits.dmft.MonteCarlo(samples=8192)
    dm = solve_dmft(p, **kw, method=method, progress=False)
    plain = solve_dmft("mup", 2, **kw, method=method, progress=False)
    widths, means, ses = (128, 256, 512), [], []
    for N, S in zip(widths, (256, 128, 64)):
        tr = limits.simulate(p, 2, N, seeds=S, record=None, progress=False, **kw)
        means.append(tr.loss)
        ses.append(tr.loss_stderr)
    ext, se = extrapolate_in_width(widths, means, ses)
    dev = np.abs(np.log(dm.loss / ext))
    assert np.all(dev <= 2 * se / ext + 0.01), (dev.max(), (2 * se / ext).max())
    assert np.abs(np.log(plain.loss / ext)).max() > 5 * dev.max()


def test_options_that_do_not_apply_are_rejected(small):
    X, y = small.X, small.y
    kw = dict(X=X, y=y, steps=3, progress=False)
    with pytest.raises(ValueError, match="optimizer.*'adam'"):
        solve_dmft(limits.param("mup", 2, optimizer="adam"), **kw)
    with pytest.raises(ValueError, match="gamma0= does not apply here: a Parametrization carries its own constants"):
        solve_dmft(limits.param("mup", 2), gamma0=2.0, **kw)
    with pytest.raises(ValueError, match="Exact.*linear"):
        solve_dmft("mup", 2, activation="tanh", method=limits.dmft.Exact(), **kw)
    with pytest.raises(ValueError, match="seed= applies to Monte Carlo"):
        solve_dmft("mup", 2, activation="linear", seed=3, **kw)
    with pytest.raises(ValueError, match="depth_steps= applies to depth=math.inf"):
        solve_dmft("depth-mup", 2, activation="linear", depth_steps=8, **kw)
    with pytest.raises(ValueError, match="method= applies to the DMFT.*kernel"):
        solve_dmft("ntk", 2, activation="tanh", method=limits.dmft.MonteCarlo(), **kw)
    with pytest.raises(ValueError, match="method must be"):
        solve_dmft("mup", 2, activation="tanh", method="monte carlo", **kw)
    with pytest.raises(ValueError, match="record: unknown quantity 'all'"):
        solve_dmft("mup", 2, activation="linear", record="all", **kw)
    with pytest.raises(ValueError, match="record: 'spectral'.*cannot be recorded here"):
        solve_dmft("mup", 2, activation="linear", record=("ntk", "spectral"), **kw)
    with pytest.raises(ValueError, match="width must be"):
        solve_dmft("mup", 2, 0, activation="linear", **kw)
    with pytest.raises(TypeError, match="width must be"):
        solve_dmft("mup", 2, 8.9, activation="linear", **kw)
    with pytest.raises(TypeError, match="steps must be an integer"):
        solve_dmft("mup", 2, activation="linear", **{**kw, "steps": 1.9})
    with pytest.raises(TypeError, match="progress must be True or False"):
        solve_dmft("mup", 2, activation="linear", **{**kw, "progress": "no"})
    with pytest.raises(ValueError, match="y_test was given without X_test"):
        solve_dmft("mup", 2, activation="linear", y_test=y, **kw)


def test_two_layer_relu_has_no_readout_bias(data):
    """The readout response by Stein's lemma on mirrored paths is unbiased for ReLU. Against two-layer ReLU
    finite widths (N = 1024, 4096, 8192 seeds each, extrapolated in 1/N; standard error 0.016% of L(0)) the
    earlier tangent estimate (phi'' = delta smoothed) sat +0.13% of L(0) above, 18-21 standard errors; this one
    is within one combined standard error at seeds 0/1/2 (measured max |dL| 0.08% / 0.007% / 0.04% of L(0))."""
    ref = REF["relu_d1"]
    c = ref["case"]
    ext, se = extrapolate_in_width(ref["widths"], ref["mean"], ref["stderr"])
    tr = solve_dmft("mup", 1, X=data.X, y=data.y, activation="relu", lr=c["lr"], steps=c["steps"],
                    method=limits.dmft.MonteCarlo(samples=16384), progress=False)
    z = np.abs(tr.loss - ext) / np.sqrt(se**2 + tr.loss_stderr**2)
    assert z.max() < 3.0, z.max()
    assert np.max(tr.loss - ext) < 5e-4 * ext[0]  # the old offset was 1.3e-3 L(0)


def test_samples_rule_and_warning(small):
    """samples=None: max(8192, 5 n); target_stderr adds a pass with S (error/target)^2 paths; too few paths for
    the response functions draw a warning naming the number needed."""
    kw = dict(X=small.X, y=small.y, activation="tanh", lr=0.5, steps=3, progress=False)
    tr = solve_dmft("mup", 2, **kw)
    assert tr.diagnostics["samples"] == 8192 and "5 n" in tr.diagnostics["samples_rule"]
    with pytest.warns(RuntimeWarning, match="needs about .* paths, above MonteCarlo.max_samples=2048"):
        tr = solve_dmft("mup", 2, **kw,
                        method=limits.dmft.MonteCarlo(samples=1024, target_stderr=1e-4, max_samples=2048))
    assert tr.diagnostics["samples"] == 2048 and "target 0.0001" in tr.diagnostics["samples_rule"]
    with pytest.warns(RuntimeWarning, match=r"samples=16 is below 128 \(5 n as a power of 2"):
        solve_dmft("mup", 2, **kw, method=limits.dmft.MonteCarlo(samples=16))
