"""Embedded datasets and data validation (limits.datasets = limits/data.py)."""

import math

import numpy as np
import pytest

import limits
from limits.checks import ArgumentTypeError
from limits.data import fingerprint, powerlaw_circle, teacher, validate

# Values of the default teacher (stored references were computed with it): they must never change.
DEFAULT = {"X[0, 0]": -0.7055562129677023, "y[0]": 0.7417685204271491, "y_test[-1]": 0.005587012244229869}


def _legacy_teacher(P=16, D=8, P_test=64, hidden=32, seed=0):
    """The teacher before issue 15 (labels normalized over train + test), for the bit-identity check."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((hidden, D))
    a = rng.standard_normal(hidden)
    x = rng.standard_normal((P + P_test, D))
    X = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(D)
    y = np.tanh(X @ W.T / np.sqrt(D)) @ a / np.sqrt(hidden)
    y = y / np.std(y)
    return X[:P], y[:P], X[P:], y[P:]


@pytest.mark.parametrize("kw", [{}, dict(P=6, D=8, seed=0), dict(P=4, D=8, seed=1), dict(P=32, D=16, seed=0),
                                dict(P=5, hidden=7, seed=9)])
def test_default_test_size_keeps_the_teacher_bit_identical(kw):
    new, old = teacher(**kw), _legacy_teacher(**kw)
    for a, b in zip(new, old):
        assert a.shape == b.shape and np.array_equal(a, b)
    d = teacher()
    assert (d.X[0, 0], d.y[0], d.y_test[-1]) == tuple(DEFAULT.values())


def test_train_set_does_not_depend_on_P_test():
    base = teacher(P=5, D=4, seed=3)
    for P_test in (1, 2, 63, 65, 300):
        d = teacher(P=5, D=4, P_test=P_test, seed=3)
        assert np.array_equal(d.X, base.X) and np.array_equal(d.y, base.y), P_test
        k = min(P_test, 64)  # test points of a smaller P_test are the first ones of a larger one
        assert np.array_equal(d.X_test[:k], base.X_test[:k]) and np.array_equal(d.y_test[:k], base.y_test[:k])
        assert d.X_test.shape == (P_test, 4) and d.y_test.shape == (P_test,)
    a, b = powerlaw_circle(P=7, P_test=3, seed=2), powerlaw_circle(P=7, P_test=90, seed=2)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)


@pytest.mark.parametrize("make", [
    lambda: teacher(P=1, P_test=1), lambda: teacher(P=1, D=1, P_test=1, hidden=1),
    lambda: powerlaw_circle(P=1, P_test=1), lambda: powerlaw_circle(modes=1),
    lambda: powerlaw_circle(alpha=1e6), lambda: powerlaw_circle(alpha=-1e6, modes=64),
])
def test_no_nan_labels_at_the_edges(make):
    """Before: teacher(P=1, P_test=0) and powerlaw_circle(P=1, P_test=0) divided by a zero std (inf/NaN labels),
    powerlaw_circle(modes=0) gave 0/0, a very negative alpha overflowed."""
    d = make()
    for arr in d:
        assert arr.size and np.all(np.isfinite(arr))


def test_powerlaw_labels_have_unit_population_variance():
    d = powerlaw_circle(P=4000, P_test=1, alpha=1.5, seed=4)
    assert abs(np.var(d.y) - 1) < 0.1 and np.allclose(np.linalg.norm(d.X, axis=1), math.sqrt(2))


@pytest.mark.parametrize("call, name", [
    (lambda: teacher(seed=-1), "seed"), (lambda: teacher(seed=2**32), "seed"), (lambda: teacher(seed=1.0), "seed"),
    (lambda: teacher(P=0), "P"), (lambda: teacher(P=4.0), "P"), (lambda: teacher(D=0), "D"),
    (lambda: teacher(P_test=0), "P_test"), (lambda: teacher(hidden=0), "hidden"), (lambda: teacher(P=True), "P"),
    (lambda: powerlaw_circle(modes=0), "modes"), (lambda: powerlaw_circle(alpha=math.nan), "alpha"),
    (lambda: powerlaw_circle(alpha=math.inf), "alpha"), (lambda: powerlaw_circle(alpha="2"), "alpha"),
    (lambda: powerlaw_circle(seed=-1), "seed"), (lambda: limits.datasets.digits(seed=-1), "seed"),
    (lambda: limits.datasets.digits(P=0), "P"), (lambda: limits.datasets.load("nope"), "unknown dataset"),
])
def test_bad_dataset_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_seed_none_is_zero():
    assert np.array_equal(teacher(seed=None).y, teacher().y)


@pytest.mark.parametrize("X, kind", [
    (np.ones((3, 2)) + 1j, "complex"), (np.ones((3, 2), dtype=bool), "boolean"),
    (np.array([["1", "2"]] * 3), "real numbers"), (np.array([[1.0, 2.0]] * 3, dtype=object), "real numbers"),
])
def test_validate_rejects_non_real_arrays(X, kind):
    with pytest.raises(ArgumentTypeError, match=f"X .*{kind}|X is {kind}"):
        validate(X, np.zeros(3))
    with pytest.raises(ArgumentTypeError, match="y "):
        validate(np.ones((3, 2)), np.zeros(3) + 0j if kind == "complex" else X[:, 0])


@pytest.mark.parametrize("X, y, X_test, match", [
    ([[1.0, 2.0], [3.0]], [1.0, 2.0], None, "X must be a numeric array"),
    (np.ones((0, 2)), np.ones(0), None, "X is empty"),
    (np.ones((3, 0)), np.ones(3), None, "X is empty"),
    (np.ones(3), np.ones(3), None, r"X must have shape \(P, D\)"),
    (np.ones((3, 2)), np.ones(4), None, "3 rows but y has 4"),
    (np.ones((3, 2)), np.ones(3), np.ones((2, 3)), "X_test has 3 features"),
    (np.ones((3, 2)), [1.0, math.nan, 0.0], None, "y contains 1 non-finite"),
    (None, np.ones(3), None, "X must be an array"),
])
def test_validate_names_the_argument(X, y, X_test, match):
    with pytest.raises(ValueError, match=match):
        validate(X, y, X_test)


def test_validate_float32_overflow_is_named():
    with pytest.raises(ValueError, match="after conversion to float32"):
        validate(np.full((2, 2), 1e300), None, dtype=np.float32)


def test_validate_accepts_integers_and_column_labels():
    X, y, _ = validate(np.arange(6).reshape(3, 2), np.arange(3).reshape(3, 1))
    assert X.dtype == np.float64 and y.shape == (3,)


def test_fingerprint_tracks_values_shape_and_role():
    d = teacher(P=4, D=3)
    f = fingerprint(d.X, d.y, d.X_test, d.y_test)
    assert len(f) == 16 and f == fingerprint(d.X.copy(), d.y.copy(), d.X_test, d.y_test)
    y2 = d.y.copy()
    y2[0] = np.nextafter(y2[0], 2)
    assert fingerprint(d.X, y2, d.X_test, d.y_test) != f
    assert fingerprint(d.X, d.y, None, None) != f and fingerprint(d.X_test, d.y_test, d.X, d.y) != f
