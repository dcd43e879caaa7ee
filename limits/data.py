"""Embedded datasets and input validation.

Every entry point validates its data once with :func:`validate`, so solvers may
assume ``X`` is a finite float array of shape (P, D) and ``y`` of shape (P,).

Datasets (all deterministic given ``seed``, nothing is downloaded):

- :func:`teacher`: Gaussian inputs on the sphere of radius sqrt(D), labels from
  a random two-layer tanh teacher, normalized to unit variance.
- :func:`powerlaw_circle`: inputs on the unit circle embedded in R^2, target
  ``sum_k k^{-alpha/2} cos(k theta + phase_k)`` (a power-law spectrum).
- :func:`digits`: scikit-learn's bundled 8x8 digits (``pip install limits[data]``),
  a binary task (even vs odd digit, +-1 labels) on standardized pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "teacher", "powerlaw_circle", "digits", "validate", "load"]


class Dataset(NamedTuple):
    """Train inputs ``X`` (P, D), labels ``y`` (P,), test inputs and labels."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _sphere(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(dim)


def teacher(P: int = 16, D: int = 8, P_test: int = 64, *, hidden: int = 32, seed: int = 0) -> Dataset:
    """Two-layer tanh teacher ``y = a . tanh(W x / sqrt(D)) / sqrt(hidden)``, unit variance."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((hidden, D))
    a = rng.standard_normal(hidden)
    X = _sphere(rng, P + P_test, D)
    y = np.tanh(X @ W.T / np.sqrt(D)) @ a / np.sqrt(hidden)
    y = y / np.std(y)
    return Dataset(X[:P], y[:P], X[P:], y[P:])


def powerlaw_circle(P: int = 16, P_test: int = 64, *, alpha: float = 2.0, modes: int = 32, seed: int = 0) -> Dataset:
    """Target with power-law Fourier spectrum ``|c_k|^2 ~ k^{-alpha}`` on the circle."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.0, 2.0 * np.pi, P + P_test)
    k = np.arange(1, modes + 1)
    phase = rng.uniform(0.0, 2.0 * np.pi, modes)
    y = (k ** (-alpha / 2.0) * np.cos(np.outer(theta, k) + phase)).sum(axis=1)
    y = y / np.std(y)
    X = np.stack([np.cos(theta), np.sin(theta)], axis=1) * np.sqrt(2.0)
    return Dataset(X[:P], y[:P], X[P:], y[P:])


def digits(P: int = 64, P_test: int = 256, *, seed: int = 0) -> Dataset:
    """8x8 digits bundled with scikit-learn: even (+1) vs odd (-1), standardized pixels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on optional extra
        raise ImportError("the digits dataset needs scikit-learn: pip install 'limits[data]'") from exc
    data = load_digits()
    X = data.data.astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    X = X / np.linalg.norm(X, axis=1, keepdims=True) * np.sqrt(X.shape[1])
    y = np.where(data.target % 2 == 0, 1.0, -1.0)
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:P], idx[P : P + P_test]
    return Dataset(X[tr], y[tr], X[te], y[te])


_DATASETS = {"teacher": teacher, "powerlaw_circle": powerlaw_circle, "digits": digits}


def load(name: str, **kwargs) -> Dataset:
    """Dataset by name: ``teacher``, ``powerlaw_circle`` or ``digits``."""
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {', '.join(_DATASETS)}")
    return _DATASETS[name](**kwargs)


def _finite_array(name: str, value, ndim: int, dtype) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from exc
    if arr.ndim != ndim:
        shape = "(P, D)" if ndim == 2 else "(P,)"
        raise ValueError(f"{name} must have shape {shape}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf); clean the data first")
    return arr


def validate(X, y=None, X_test=None, *, dtype=np.float64):
    """Check shapes and finiteness once, at the entry point.

    Returns ``(X, y, X_test)`` as float arrays; ``y`` of shape (P, 1) is
    flattened. Raises ``ValueError`` naming the offending argument.
    """
    X = _finite_array("X", X, 2, dtype)
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr[:, 0]
        y = _finite_array("y", y_arr, 1, dtype)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} entries; they must match")
    if X_test is not None:
        X_test = _finite_array("X_test", X_test, 2, dtype)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(
                f"X_test has {X_test.shape[1]} features but X has {X.shape[1]}; feature dimensions must match"
            )
    return X, y, X_test
