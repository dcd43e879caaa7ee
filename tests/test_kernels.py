"""NNGP/NTK of MLPs: reference kernels, closed forms, quadrature, backends, bad input."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import jax
import jax.scipy.special as jsp
import numpy as np
import pytest

import limits.kernels as lk
from limits import activations as act
from limits.kernels import _numba

mlp_mod = importlib.import_module("limits.kernels.mlp")

REPO = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path | None:
    env = os.environ.get("LIMITS_REFERENCE_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "reference"
    return path if (path / "cases.json").is_file() else None


REF = _reference_dir()
CASES = json.loads((REF / "cases.json").read_text()) if REF else {}
needs_ref = pytest.mark.skipif(
    REF is None, reason="reference kernels not found: set LIMITS_REFERENCE_DIR or provide <repo>/../shared/reference"
)


def rel_err(a, b) -> float:
    """Max over entries of |a - b| / |b| (every entry relative)."""
    return float(np.max(np.abs(np.asarray(a) - b) / np.abs(b)))


def _kernel_fn(case, backend):
    if case["kind"] == "mlp":
        return lk.mlp(case["depth"], case["activation"], case["W_std"], case["b_std"], backend=backend)
    return lk.resnet(case["blocks"], case["activation"], case["W_std"], case["b_std"], case["branch_multiplier"])


def _backends(case):
    if case["kind"] == "resnet":
        return ["jax"]
    return ["jax", "numba"] if case["activation"] in _numba.ACTIVATION_CODES else ["jax"]


@needs_ref
@pytest.mark.parametrize(
    "name,backend", [(n, b) for n, c in CASES.items() for b in _backends(c)] or [("none", "jax")]
)
def test_reference_kernels(name, backend):
    case, data = CASES[name], np.load(REF / f"{name}.npz")
    k = _kernel_fn(case, backend)
    train, test = k(data["X_train"]), k(data["X_test"], data["X_train"])
    for got, key in [
        (train.nngp, "nngp_train"),
        (train.ntk, "ntk_train"),
        (test.nngp, "nngp_test_train"),
        (test.ntk, "ntk_test_train"),
    ]:
        assert got.shape == data[key].shape
        assert rel_err(got, data[key]) < 1e-6, (name, backend, key)


def test_reference_dir_found_in_this_checkout():
    # Not a skip in disguise: in this repository layout the reference data must be found.
    if REF is None and (REPO.parent / "shared").is_dir():
        pytest.fail("shared/ exists but shared/reference/cases.json is missing")


# --------------------------------------------------------------- closed forms
@pytest.fixture(scope="module")
def cov():
    rng = np.random.default_rng(0)
    k11, k22 = rng.uniform(0.2, 1.5, 40), rng.uniform(0.2, 1.5, 40)
    k12 = rng.uniform(-1, 1, 40) * np.sqrt(k11 * k22)
    k12[0] = np.sqrt(k11[0] * k22[0])  # perfectly correlated pair
    return k11, k12, k22


@pytest.mark.parametrize("name", ["erf", "gelu", "linear"])
def test_quadrature_matches_closed_forms(cov, name):
    with jax.enable_x64(True):  # the low-level expectations follow JAX's dtype; the kernels run them in float64
        quad = act.gauss_hermite_expectations(name, *cov, order=64)
        adaptive = act.quadrature_expectations(act.Activation(name, act.get(name).fn, act.get(name).deriv), *cov,
                                               act.quadrature(1.5))
        exact = act.closed_form_expectations(name, *cov)
    for q, e in zip(quad + adaptive, exact + exact):
        assert np.max(np.abs(np.asarray(q) - np.asarray(e))) < 1e-8


def test_relu_closed_form_against_monte_carlo():
    rng = np.random.default_rng(1)
    k11, k12, k22 = 1.3, -0.4, 0.7
    z = rng.multivariate_normal([0, 0], [[k11, k12], [k12, k22]], size=400_000)
    e, ed = act.closed_form_expectations("relu", k11, k12, k22)
    mc = np.mean(np.maximum(z[:, 0], 0) * np.maximum(z[:, 1], 0))
    mcd = np.mean((z[:, 0] > 0) & (z[:, 1] > 0))
    assert abs(float(e) - mc) < 5e-3 and abs(float(ed) - mcd) < 5e-3


def test_linear_network_closed_form():
    X = np.random.default_rng(2).standard_normal((7, 5))
    L, W = 3, 1.3
    k = lk.mlp(L, "linear", W)(X)
    lin = W ** (2 * (L + 1)) * X @ X.T / 5
    np.testing.assert_allclose(k.nngp, lin, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, (L + 1) * lin, rtol=1e-13)


def test_depth1_relu_arccos_closed_form():
    X = np.random.default_rng(3).standard_normal((6, 4))
    k = lk.mlp(1, "relu", 1.0)(X)
    n = np.linalg.norm(X, axis=1) / 2.0  # sqrt(x.x / D)
    c = np.clip(X @ X.T / 4 / np.outer(n, n), -1, 1)
    np.fill_diagonal(c, 1.0)
    th = np.arccos(c)
    nngp = np.outer(n, n) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k.ntk, nngp + X @ X.T / 4 * (np.pi - th) / (2 * np.pi), rtol=1e-12, atol=1e-15)


def test_callable_activation_uses_quadrature():
    X = np.random.default_rng(4).standard_normal((6, 3))
    X *= np.sqrt(3) / np.linalg.norm(X, axis=1, keepdims=True)  # unit pre-activation scale
    custom = lk.mlp(2, lambda x: jsp.erf(x), 1.2, 0.1)(X)
    exact = lk.mlp(2, "erf", 1.2, 0.1)(X)
    np.testing.assert_allclose(custom.nngp, exact.nngp, atol=1e-8)
    np.testing.assert_allclose(custom.ntk, exact.ntk, atol=1e-8)
    tanh = lk.mlp(2, "tanh", 1.2, 0.1)(X)
    assert np.all(np.isfinite(tanh.ntk)) and np.array_equal(tanh.ntk, tanh.ntk.T)
    hermite = lk.mlp(2, "tanh", 1.2, 0.1, quadrature_order=200)(X)  # variances <= 2: Gauss-Hermite is accurate
    np.testing.assert_allclose(hermite.ntk, tanh.ntk, atol=1e-8)


# ------------------------------------------------------------------ backends
def test_fast_arccos_and_arcsin():
    x = np.concatenate([np.linspace(-1, 1, 200_001), 1 - np.logspace(-16, -1, 200), -1 + np.logspace(-16, -1, 200)])
    assert np.max(np.abs(_numba.acos_array(x) - np.arccos(x))) < 5e-15
    assert np.max(np.abs(_numba.asin_array(x) - np.arcsin(x))) < 5e-15


@pytest.mark.parametrize("name", ["relu", "erf", "linear"])
def test_numba_matches_jax(name):
    rng = np.random.default_rng(5)
    X1, X2 = rng.standard_normal((13, 6)), rng.standard_normal((9, 6))
    X1[3] = 0.0  # a zero input
    lam = rng.uniform(0, 2, 4)
    k = lk.mlp(3, name, [1.1, 1.4, 0.9, 1.2], 0.3)
    for args in [(X1,), (X1, X2)]:
        a = k(*args, backend="numba", layer_weights=lam)
        b = k(*args, backend="jax", layer_weights=lam)
        np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-12, atol=1e-14)


def test_blocked_equals_unblocked(monkeypatch):
    X = np.random.default_rng(6).standard_normal((37, 4))
    k = lk.mlp(2, "relu", 1.3, 0.2)
    full = k(X)
    monkeypatch.setattr(mlp_mod, "_BLOCK_ENTRIES", 100)  # blocks of 2 rows
    for backend in ("numba", "jax"):
        blocked = k(X, backend=backend, progress=False)
        np.testing.assert_allclose(blocked.ntk, full.ntk, rtol=1e-12)
        np.testing.assert_allclose(blocked.nngp, full.nngp, rtol=1e-12)


def test_symmetric_and_diag():
    X = np.random.default_rng(7).standard_normal((11, 3))
    k = lk.mlp(4, "relu", 1.4, 0.1)
    out = k(X)
    np.testing.assert_array_equal(out.ntk, out.ntk.T)
    d = k.diag(X)
    np.testing.assert_allclose(np.diag(out.nngp), d.nngp, rtol=1e-14)
    np.testing.assert_allclose(np.diag(out.ntk), d.ntk, rtol=1e-14)
    cross = k(X, X.copy())  # non-symmetric path agrees up to arccos(1 - eps)
    np.testing.assert_allclose(cross.ntk, out.ntk, rtol=1e-7)


# ----------------------------------------------------------- per-layer NTK
def test_per_layer_contributions():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((8, 5))
    W = [1.2, 1.5, 0.8, 1.1]
    k = lk.mlp(3, "relu", W, 0.0)
    out = k(X, per_layer=True)
    assert out.ntk_layers.shape == (4, 8, 8)
    np.testing.assert_allclose(out.ntk_layers.sum(0), k(X).ntk, rtol=1e-12)
    np.testing.assert_allclose(out.ntk_layers[-1], out.nngp, rtol=1e-13)  # readout weights: Theta_{L+1} = K^{L+1}
    lam = np.array([0.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(k(X, layer_weights=lam).ntk, np.tensordot(lam, out.ntk_layers, 1), rtol=1e-12)
    # first layer: K^1 times the backward product, i.e. the NTK of the net with all but layer 1 frozen
    depth1 = lk.mlp(1, "linear", [1.0, 2.0])(X, per_layer=True).ntk_layers
    np.testing.assert_allclose(depth1[0], 4.0 * X @ X.T / 5, rtol=1e-13)


def test_per_layer_W_std_sequence():
    X = np.random.default_rng(9).standard_normal((5, 3))
    a = lk.mlp(2, "erf", 1.3)(X)
    b = lk.mlp(2, "erf", [1.3, 1.3, 1.3])(X)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-14)
    with pytest.raises(ValueError, match="depth \\+ 1"):
        lk.mlp(2, "erf", [1.0, 1.0])


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    X = np.ones((4, 3))
    k = lk.mlp(2)
    with pytest.raises(ValueError, match="feature"):
        k(X, np.ones((4, 2)))
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        k(bad)
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        k(X, bad)
    with pytest.raises(ValueError, match="depth"):
        lk.mlp(0)
    with pytest.raises(ValueError, match="unknown activation"):
        lk.mlp(2, "swish")
    with pytest.raises(ValueError, match="numba backend"):
        lk.mlp(2, "gelu", backend="numba")(X)
    with pytest.raises(ValueError, match="backend"):
        lk.mlp(2, backend="cuda")
    with pytest.raises(ValueError, match="W_std"):
        lk.mlp(2, W_std=-1.0)
    with pytest.raises(ValueError, match="shape"):
        k(np.ones(3))
    with pytest.raises(ValueError, match="layer_weights"):
        k(X, layer_weights=[1.0, 2.0])


# ----------------------------------------------------------------- GP helpers
def test_gp_posterior_and_kernel_ridge():
    rng = np.random.default_rng(10)
    X, Xt = rng.standard_normal((12, 3)), rng.standard_normal((5, 3))
    y = rng.standard_normal(12)
    k = lk.mlp(2, "relu", 1.4, 0.1)
    Ktr, Kst, kss = k(X).nngp, k(Xt, X).nngp, k.diag(Xt).nngp
    post = lk.gp_posterior(Ktr, Kst, kss, y, ridge=0.1)
    A = Ktr + 0.1 * np.eye(12)
    np.testing.assert_allclose(post.mean, Kst @ np.linalg.solve(A, y), rtol=1e-10)
    np.testing.assert_allclose(post.variance, kss - np.einsum("qp,pq->q", Kst, np.linalg.solve(A, Kst.T)), rtol=1e-9)
    assert np.all(post.variance > 0)
    # interpolation: at the train points with ridge 0 the mean is y and the variance 0
    at_train = lk.gp_posterior(Ktr, Ktr, np.diag(Ktr), y)
    np.testing.assert_allclose(at_train.mean, y, atol=1e-8)
    np.testing.assert_allclose(at_train.variance, 0.0, atol=1e-8)
    np.testing.assert_allclose(lk.kernel_ridge(Ktr, Kst, y, 0.1), post.mean)
    with pytest.raises(ValueError, match="positive definite"):
        lk.gp_posterior(np.ones((3, 3)), np.ones((1, 3)), None, np.ones(3))


# ------------------------------------------------------------ quadrature accuracy (issue 15)
ERF_CALLABLE = act.Activation("erf-by-quadrature", act.get("erf").fn, act.get("erf").deriv)  # no closed form used


def _grid(variances, rhos=(-1.0, -0.999999, -0.9, -0.3, 0.0, 0.5, 0.99, 0.999999, 1.0), ratios=(1.0, 0.1, 1e-3)):
    V, R, Q = np.meshgrid(variances, rhos, ratios, indexing="ij")
    k11, k22 = V.ravel(), (V * Q).ravel()
    return k11, R.ravel() * np.sqrt(k11 * k22), k22


@pytest.mark.parametrize("variance", [1e-4, 1.0, 30.0, 1e4])  # the full table: benchmarks/kernels.py --quadrature
def test_erf_quadrature_matches_arcsin_closed_form(variance):
    k11, k12, k22 = _grid([variance])
    with jax.enable_x64(True):
        rule = act.quadrature(variance)
        quad = act.quadrature_expectations(ERF_CALLABLE, k11, k12, k22, rule)
        exact = act.closed_form_expectations("erf", k11, k12, k22)
        d1 = act.closed_form_expectations("erf", k11, k11, k11)
        d2 = act.closed_form_expectations("erf", k22, k22, k22)
    for q, e, a, b in zip(quad, exact, d1, d2):
        scale = np.sqrt(np.asarray(a) * np.asarray(b))  # the kernel's scale sqrt(K11 K22)
        assert np.max(np.abs(np.asarray(q) - np.asarray(e)) / scale) < 1e-8


def test_tanh_kernels_symmetric_and_finite_at_large_variance():
    X = 100.0 * np.random.default_rng(11).standard_normal((9, 4))  # first-layer variances ~ 1e4
    out = lk.mlp(2, "tanh", 1.0, 0.1)(X)
    for K in (out.nngp, out.ntk):
        assert np.all(np.isfinite(K)) and np.array_equal(K, K.T)
    assert np.all(np.linalg.eigvalsh(out.nngp) > -1e-10)
    cross = lk.mlp(2, "tanh", 1.0, 0.1)(X[:4], X)
    np.testing.assert_allclose(cross.ntk, out.ntk[:4], rtol=1e-9, atol=1e-12)
    res = lk.resnet(3, "tanh", 1.0, 0.1, 0.5)(X)
    assert np.all(np.isfinite(res.ntk)) and np.array_equal(res.ntk, res.ntk.T)


def test_tanh_large_variance_against_reference():
    """E[tanh(u) tanh(v)] at variance 1e4 against scipy's adaptive quadrature (an independent method)."""
    from scipy import integrate

    k11, k12, k22 = 1e4, 0.3e4, 0.5e4
    with jax.enable_x64(True):
        e, _ = act.gaussian_expectations("tanh", k11, k12, k22)
    s1, a = np.sqrt(k11), k12 / np.sqrt(k11)
    b = np.sqrt(k22 - a * a)
    phi = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    inner = lambda z1: integrate.quad(lambda z2: np.tanh(a * z1 + b * z2) * phi(z2), -12, 12, points=[-a * z1 / b],  # noqa: E731
                                      limit=200, epsabs=1e-11)[0]
    ref = integrate.quad(lambda z1: np.tanh(s1 * z1) * inner(z1) * phi(z1), -12, 12, points=[0.0], limit=200,
                         epsabs=1e-11)[0]
    assert abs(float(e) - ref) < 1e-8


def test_quadrature_order_is_validated():
    X = np.random.default_rng(12).standard_normal((4, 3))
    for bad in (400, 8, 0):
        with pytest.raises(ValueError, match=f"quadrature_order={bad}"):
            lk.mlp(2, "tanh", quadrature_order=bad)
    with pytest.raises(TypeError, match="quadrature_order"):
        lk.mlp(2, "tanh", quadrature_order=64.0)
    with pytest.raises(ValueError, match="quadrature_order=64 .*variances <= 0.5.*layer 1"):
        lk.mlp(2, "tanh", 2.0, quadrature_order=64)(X)
    with pytest.raises(ValueError, match="quadrature_order"):
        lk.resnet(2, "tanh", 2.0, quadrature_order=16)(X)


def test_very_large_inputs_give_clear_errors_or_finite_kernels():
    X = np.random.default_rng(13).standard_normal((5, 3))
    relu = lk.mlp(2, "relu")(1e5 * X)  # closed forms: finite at any scale
    assert np.all(np.isfinite(relu.ntk))
    with pytest.raises(ValueError, match="variance of layer 1 is .*rescale the inputs X"):
        lk.mlp(2, "tanh")(1e5 * X)  # variance 1e10: beyond the quadrature's range
    with pytest.raises(ValueError, match="X1 is too large"):
        lk.mlp(2, "relu")(1e160 * X)  # |x|^2 overflows float64
    with pytest.raises(ValueError, match="X2 is too large"):
        lk.mlp(2, "relu")(X, 1e160 * X)
    with pytest.raises(FloatingPointError, match="overflowed"):
        lk.mlp(40, "relu", 1e4)(X)  # W_std^(2 depth) overflows


# ---------------------------------------------------------- bad input, one test per kind (issue 15)
GOOD = np.random.default_rng(14).standard_normal((4, 3))
KERNELS = {
    "mlp-tanh": lambda: lk.mlp(2, "tanh"),
    "mlp-relu": lambda: lk.mlp(2, "relu"),
    "resnet": lambda: lk.resnet(2, "tanh"),
    "resnet-inf": lambda: lk.resnet_infinite_depth("relu", ode_steps=8),
}


@pytest.mark.parametrize("kind", KERNELS)
def test_all_zero_inputs_work(kind):
    out = KERNELS[kind]()(np.zeros((3, 4)))
    assert np.all(np.isfinite(out.ntk)) and np.all(np.isfinite(out.nngp))


@pytest.mark.parametrize("kind", KERNELS)
@pytest.mark.parametrize("bad,arg,pattern", [
    ("nan", "X1", "X1 contains 1 non-finite"), ("inf", "X2", "X2 contains 1 non-finite"),
    ("vector", "X1", "X1 must have shape"), ("3d", "X2", "X2 must have shape"), ("empty", "X1", "X1 is empty"),
    ("complex", "X1", "X1 is complex"), ("strings", "X2", "X2 must be an array of real numbers"),
    ("features", "X2", "X2 has 2 features but X1 has 3"),
])
def test_bad_inputs_name_the_argument(kind, bad, arg, pattern):
    X = {
        "nan": np.where(np.arange(12).reshape(4, 3) == 5, np.nan, GOOD), "inf": np.where(GOOD > 1e9, 0, GOOD),
        "vector": np.ones(3), "3d": np.ones((2, 2, 3)), "empty": np.ones((0, 3)), "complex": GOOD + 1j,
        "strings": np.array([["a", "b", "c"]]), "features": np.ones((2, 2)),
    }[bad]
    if bad == "inf":
        X = X.copy()
        X[0, 0] = np.inf
    k = KERNELS[kind]()
    with pytest.raises((ValueError, TypeError), match=pattern):
        k(X) if arg == "X1" else k(GOOD, X)


def test_bad_kernel_options_name_the_argument():
    for make, name in [
        (lambda: lk.mlp(1.5), "depth"), (lambda: lk.mlp(2, "tanh", float("nan")), "W_std"),
        (lambda: lk.mlp(2, "tanh", 1.0, -0.1), "b_std"), (lambda: lk.mlp(2, 3), "activation"),
        (lambda: lk.mlp(2, "tanh")(GOOD, per_layer="yes"), "per_layer"),
        (lambda: lk.mlp(2, "tanh")(GOOD, layer_weights=["a", 1, 2]), "layer_weights"),
        (lambda: lk.mlp(2, "relu")(GOOD, backend="gpu"), "backend"),
        (lambda: lk.resnet(2, "tanh", layer_weights=(1.0, 2.0)), "layer_weights"),
        (lambda: lk.resnet(2, "tanh", branch_multiplier=-1.0), "branch_multiplier"),
        (lambda: lk.resnet_infinite_depth(ode_steps=2.5), "ode_steps"),
    ]:
        with pytest.raises((ValueError, TypeError), match=name):
            make()


def test_gp_posterior_bad_inputs_name_the_argument():
    K, Ks, kss, y = np.eye(3), np.ones((2, 3)), np.ones(2), np.ones(3)
    for kw, name in [
        (dict(k_train=np.ones((3, 2))), "k_train"), (dict(k_train=np.full((3, 3), np.nan)), "k_train"),
        (dict(k_test_train=np.ones((2, 4))), "k_test_train"), (dict(k_test_train=np.full((2, 3), np.inf)), "k_test_train"),
        (dict(k_test_test_diag=np.ones(3)), "k_test_test_diag"), (dict(y=np.ones(4)), "y"), (dict(y=None), "y"),
        (dict(y=np.array([1.0, np.nan, 0.0])), "y"), (dict(ridge=-1.0), "ridge"), (dict(ridge="big"), "ridge"),
        (dict(k_train=np.zeros((3, 3))), "ridge"),
    ]:
        args = dict(k_train=K, k_test_train=Ks, k_test_test_diag=kss, y=y, ridge=0.0)
        args.update(kw)
        with pytest.raises((ValueError, TypeError), match=name):
            lk.gp_posterior(**args)
    with pytest.raises(ValueError, match="k_test_train"):
        lk.kernel_ridge(K, np.ones((2, 2)), y)
    # all-zero inputs: a singular kernel, fine with a ridge
    zero = lk.mlp(2, "relu")(np.zeros((3, 2))).nngp
    assert np.all(np.isfinite(lk.kernel_ridge(zero, zero[:1], y, ridge=1e-3)))
