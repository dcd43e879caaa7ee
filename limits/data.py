"""Embedded datasets and input validation.

Every entry point validates its data once with :func:`validate` (through
:func:`limits.checks.default_data`), so solvers may assume ``X`` is a finite float array of shape (P, D) and ``y``
of shape (P,).

Datasets (all deterministic given ``seed``, nothing is downloaded). In each, the train set does not depend on
``P_test``: asking for more or fewer test points leaves ``X`` and ``y`` unchanged.

- :func:`teacher`: Gaussian inputs on the sphere of radius sqrt(D), labels from
  a random two-layer tanh teacher, normalized to unit variance.
- :func:`powerlaw_circle`: inputs on the unit circle embedded in R^2, target
  ``sum_k k^{-alpha/2} cos(k theta + phase_k)`` (a power-law spectrum).
- :func:`power_law`: Gaussian features with spectrum ``k^-alpha`` and a target of source ``beta`` (the task of
  :mod:`limits.scaling`); :func:`circle_task`: :func:`powerlaw_circle` parametrized by the source ``beta``.
- :func:`digits`: scikit-learn's bundled 8x8 digits (``pip install limits[data]``),
  a binary task (even vs odd digit, +-1 labels) on standardized pixels.

:func:`fingerprint` (:func:`limits.checks.fingerprint`) is a short hash of the arrays a solver ran on
(``Trajectory.meta["data"]``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import ArgumentTypeError, fingerprint, integer, real
from .checks import seed as _check_seed

__all__ = ["Dataset", "teacher", "powerlaw_circle", "power_law", "circle_task", "digits", "validate", "fingerprint",
           "load"]

_NORMALIZING_POINTS = 64
"""The teacher's labels are scaled to unit variance over the train points and the first this-many test points
(the default test set), whatever ``P_test`` is, so that the train labels do not depend on ``P_test``."""


class Dataset(NamedTuple):
    """Train inputs ``X`` (P, D), labels ``y`` (P,), test inputs and labels."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _seed(value) -> int:
    return 0 if value is None else _check_seed(value, "seed")


def _sphere(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(dim)


def teacher(P: int = 16, D: int = 8, P_test: int = 64, *, hidden: int = 32, seed: int = 0) -> Dataset:
    """Two-layer tanh teacher ``y = a . tanh(W x / sqrt(D)) / sqrt(hidden)``, unit variance.

    Inputs are Gaussian directions on the sphere of radius ``sqrt(D)``; ``W`` (hidden, D) and ``a`` (hidden,) are
    standard normal. The labels are divided by their standard deviation over the ``P`` train points and the first
    64 test points, so the train set (inputs and labels) is the same for every ``P_test``, and the test points of a
    smaller ``P_test`` are the first ones of a larger one.

    Args:
        P: train points, a positive integer (default 16).
        D: input dimension, a positive integer (default 8).
        P_test: test points, a positive integer (default 64).
        hidden: hidden units of the teacher, a positive integer (default 32).
        seed: an integer in [0, 2**32 - 1] (default 0; None: 0).

    Returns:
        :class:`Dataset` ``(X (P, D), y (P,), X_test (P_test, D), y_test (P_test,))`` of float64 arrays. Invalid
        arguments raise ``ValueError`` / ``TypeError`` naming the argument.
    """
    P, D = integer(P, "P", 1), integer(D, "D", 1)
    P_test, hidden, seed = integer(P_test, "P_test", 1), integer(hidden, "hidden", 1), _seed(seed)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((hidden, D))
    a = rng.standard_normal(hidden)

    def label(X):
        return np.tanh(X @ W.T / np.sqrt(D)) @ a / np.sqrt(hidden)

    X = _sphere(rng, P + _NORMALIZING_POINTS, D)  # the train points first, then the default test points
    y = label(X)
    scale = np.std(y)
    if not (np.isfinite(scale) and scale > 0):  # pragma: no cover - needs hidden * D degenerate draws
        raise ValueError(f"the teacher's labels are constant for seed={seed} (P={P}, D={D}, hidden={hidden}); "
                         f"use another seed")
    extra = P_test - _NORMALIZING_POINTS
    if extra > 0:  # drawn after (and computed apart from) the normalizing set: those stay bit-identical
        X_extra = _sphere(rng, extra, D)
        X, y = np.concatenate([X, X_extra]), np.concatenate([y, label(X_extra)])
    y = y / scale
    return Dataset(X[:P], y[:P], X[P : P + P_test], y[P : P + P_test])


def powerlaw_circle(P: int = 16, P_test: int = 64, *, alpha: float = 2.0, modes: int = 32, seed: int = 0) -> Dataset:
    """Target with power-law Fourier spectrum ``|c_k|^2 ~ k^{-alpha}`` (k = 1..modes) on the circle.

    The target has unit variance over the circle (the coefficients are normalized exactly, not by the sample
    spread, so no sample size gives NaN labels); the phases, the train angles and the test angles come from
    three independent streams of ``seed``. Inputs are ``sqrt(2) (cos theta, sin theta)`` for uniform angles
    ``theta``, targets ``sum_k c_k cos(k theta + phase_k)``.

    Args:
        P: train points, a positive integer (default 16).
        P_test: test points, a positive integer (default 64).
        alpha: spectral decay exponent, any finite real (default 2.0).
        modes: Fourier modes k = 1..modes, a positive integer (default 32).
        seed: an integer in [0, 2**32 - 1] (default 0; None: 0).

    Returns:
        :class:`Dataset` ``(X (P, 2), y (P,), X_test (P_test, 2), y_test (P_test,))`` of float64 arrays. Invalid
        arguments raise ``ValueError`` / ``TypeError`` naming the argument.
    """
    P, P_test = integer(P, "P", 1), integer(P_test, "P_test", 1)
    modes, alpha, seed = integer(modes, "modes", 1), real(alpha, "alpha"), _seed(seed)
    k = np.arange(1, modes + 1)
    log_c = -0.5 * alpha * np.log(k)
    c = np.exp(log_c - log_c.max())  # in (0, 1], the largest 1: no overflow for any finite alpha
    c = c / np.sqrt(0.5 * np.sum(c**2))  # E_theta[(sum_k c_k cos(k theta + phase_k))^2] = sum_k c_k^2 / 2
    phase = np.random.default_rng([seed, 0]).uniform(0.0, 2.0 * np.pi, modes)

    def draw(stream: int, count: int):
        theta = np.random.default_rng([seed, stream]).uniform(0.0, 2.0 * np.pi, count)
        y = np.cos(np.outer(theta, k) + phase) @ c
        return np.stack([np.cos(theta), np.sin(theta)], axis=1) * np.sqrt(2.0), y

    X, y = draw(1, P)
    X_test, y_test = draw(2, P_test)
    return Dataset(X, y, X_test, y_test)


def power_law(P: int = 64, alpha: float = 1.5, beta: float = 0.5, P_test: int = 256, *, modes: int = 256,
              seed: int = 0) -> Dataset:
    """Gaussian features with a power-law spectrum and a power-law target (the task of :mod:`limits.scaling`).

    Inputs ``x = Lambda^{1/2} z`` with ``z ~ N(0, I_modes)`` and ``lambda_k = k^-alpha`` (capacity ``alpha > 1``);
    the target ``y = w* . x`` with ``lambda_k (w*_k)^2 = k^(-alpha beta - 1) / Z`` (source ``beta > 0``), normalized
    so that ``E[y^2] = 1`` (:func:`limits.scaling.power_law_task`). No label noise. Train and test points come from
    independent streams of ``seed``.

    Args:
        P: train points, a positive integer (default 64).
        alpha: capacity exponent, a finite real > 1 (default 1.5).
        beta: source exponent, a finite real > 0 (default 0.5: a hard task, outside the kernel's RKHS).
        P_test: test points, a positive integer (default 256).
        modes: number of features D = M (default 256); it should well exceed the number of modes a run can resolve
            (``limits.scaling.task.modes_needed``).
        seed: an integer in [0, 2**32 - 1] (default 0; None: 0).

    Returns:
        :class:`Dataset` ``(X (P, modes), y (P,), X_test (P_test, modes), y_test (P_test,))`` of float64.
    """
    from .scaling.task import power_law_task

    P, P_test, seed = integer(P, "P", 1), integer(P_test, "P_test", 1), _seed(seed)
    task = power_law_task(alpha, beta, modes)
    scale = np.sqrt(task.eigenvalues)

    def draw(stream: int, count: int):
        X = np.random.default_rng([seed, stream]).standard_normal((count, task.modes)) * scale
        return X, X @ task.target

    X, y = draw(1, P)
    X_test, y_test = draw(2, P_test)
    return Dataset(X, y, X_test, y_test)


def circle_task(P: int = 64, P_test: int = 256, *, beta: float = 0.5, capacity: float = 2.0, modes: int = 64,
                seed: int = 0) -> Dataset:
    """The circle task of Bordelon, Atanasov & Pehlevan (arXiv 2409.17858) with source ``beta`` for a kernel of
    capacity ``capacity``: :func:`powerlaw_circle` with Fourier power ``|c_k|^2 ~ k^-(capacity beta + 1)``.

    A kernel whose Fourier eigenvalues decay as ``k^-capacity`` (a ReLU network's NTK on the circle:
    ``capacity = 2``) sees this target with ``lambda_k (w*_k)^2 = |c_k|^2 ~ k^(-capacity beta - 1)``: source
    ``beta``, a hard task for ``beta < 1``. (Smooth activations such as tanh have NTK eigenvalues that decay faster
    than any power on the circle; the exponent of such a network is an observation, not a prediction.)

    Args:
        P, P_test, modes, seed: as :func:`powerlaw_circle`.
        beta: source exponent, a finite real > 0 (default 0.5).
        capacity: the kernel's spectral decay exponent, > 1 (default 2.0).

    Returns:
        :class:`Dataset` ``(X (P, 2), y (P,), X_test (P_test, 2), y_test (P_test,))``.
    """
    from .scaling.task import check_exponents

    capacity, beta = check_exponents(capacity, beta)
    return powerlaw_circle(P, P_test, alpha=capacity * beta + 1.0, modes=modes, seed=seed)


def digits(P: int = 64, P_test: int = 256, *, seed: int = 0) -> Dataset:
    """8x8 digits bundled with scikit-learn: even (+1) vs odd (-1), standardized pixels.

    ``P + P_test`` must not exceed the 1797 images; train and test images are disjoint. Pixels are standardized
    per pixel over all images and each image is then scaled to norm ``sqrt(64) = 8``; the images are shuffled by
    ``seed`` (train first, test next).

    Args:
        P: train images, a positive integer (default 64).
        P_test: test images, a positive integer (default 256).
        seed: seed of the shuffle, an integer in [0, 2**32 - 1] (default 0; None: 0).

    Returns:
        :class:`Dataset` ``(X (P, 64), y (P,), X_test (P_test, 64), y_test (P_test,))``, labels +1 (even digit)
        or -1 (odd). Raises ``ValueError`` when ``P + P_test > 1797``, ``ImportError`` without scikit-learn
        (``pip install 'limits[data]'``).
    """
    P, P_test, seed = integer(P, "P", 1), integer(P_test, "P_test", 1), _seed(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on optional extra
        raise ImportError("the digits dataset needs scikit-learn: pip install 'limits[data]'") from exc
    data = load_digits()
    X = data.data.astype(np.float64)
    if P + P_test > len(X):
        raise ValueError(f"P + P_test = {P + P_test} exceeds the {len(X)} digit images; ask for fewer points")
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    X = X / np.linalg.norm(X, axis=1, keepdims=True) * np.sqrt(X.shape[1])
    y = np.where(data.target % 2 == 0, 1.0, -1.0)
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:P], idx[P : P + P_test]
    return Dataset(X[tr], y[tr], X[te], y[te])


_DATASETS = {"teacher": teacher, "powerlaw_circle": powerlaw_circle, "power_law": power_law,
             "circle_task": circle_task, "digits": digits}


def load(name: str, **kwargs) -> Dataset:
    """Dataset by name: ``teacher``, ``powerlaw_circle``, ``power_law``, ``circle_task`` or ``digits``.

    Args:
        name: one of those names; anything else raises ``ValueError``.
        **kwargs: keyword arguments of that dataset function (e.g. ``P``, ``P_test``, ``seed``).

    Returns:
        :class:`Dataset` ``(X (P, D), y (P,), X_test (P_test, D), y_test (P_test,))`` of :func:`teacher`,
        :func:`powerlaw_circle` or :func:`digits`.
    """
    if not isinstance(name, str) or name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {', '.join(_DATASETS)}")
    return _DATASETS[name](**kwargs)


# ----------------------------------------------------------------------------- validation
_SHAPES = {1: "(P,)", 2: "(P, D)"}


def _numeric_array(name: str, value) -> np.ndarray:
    """``value`` as a NumPy array of real numbers (integer or float dtype), without coercing anything else."""
    if value is None:
        raise ArgumentTypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a numeric array: {str(exc).splitlines()[0]}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise ArgumentTypeError(f"{name} is complex ({arr.dtype}); the networks are real: pass a real array "
                                f"(e.g. {name}.real if the imaginary part is meant to be dropped)")
    if kind == "b":
        raise ArgumentTypeError(f"{name} is a boolean array; pass numbers (e.g. {name}.astype(float), or +-1 labels)")
    if kind not in "iuf":
        raise ArgumentTypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype} "
                                f"(strings, objects or ragged rows are not converted)")
    return arr


def _finite_array(name: str, value, ndim: int, dtype) -> np.ndarray:
    arr = _numeric_array(name, value)
    if ndim == 1 and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {_SHAPES[ndim]}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    with np.errstate(over="ignore"):  # values beyond the dtype's range become inf, reported below
        out = arr.astype(dtype)
    if not np.all(np.isfinite(out)):
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        extra = ""
        if np.all(np.isfinite(arr.astype(np.float64))):
            extra = f" after conversion to {np.dtype(dtype).name} (values beyond its range)"
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf){extra}; clean the data first")
    return out


def validate(X, y=None, X_test=None, *, dtype=np.float64):
    """Check kinds, shapes and finiteness once, at the entry point.

    Returns ``(X, y, X_test)`` as float arrays of ``dtype``; ``y`` of shape (P, 1) is flattened. Integer and
    float arrays are accepted; complex, boolean, string and object arrays are rejected (nothing is converted
    silently). Raises ``ValueError`` (or :class:`~limits.checks.ArgumentTypeError`) naming the argument.
    An ``X`` whose rows are all zero is accepted here (a finite network trains on it); the limit solvers that
    need a nonsingular input kernel reject it themselves.

    Args:
        X: (P, D) inputs (required; None is an error).
        y: (P,) or (P, 1) targets, or None; must have ``P`` entries.
        X_test: (Q, D) test inputs with the same ``D`` as ``X``, or None.
        dtype: float dtype of the returned arrays (default ``np.float64``); values beyond its range are errors.

    Returns:
        tuple ``(X (P, D), y (P,) or None, X_test (Q, D) or None)``: finite arrays of ``dtype``. Empty,
        non-finite or wrongly shaped arrays raise ``ValueError``; complex, boolean, string and object arrays
        raise :class:`~limits.checks.ArgumentTypeError`.
    """
    X = _finite_array("X", X, 2, dtype)
    if y is not None:
        y = _finite_array("y", y, 1, dtype)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} entries; they must match")
    if X_test is not None:
        X_test = _finite_array("X_test", X_test, 2, dtype)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(
                f"X_test has {X_test.shape[1]} features but X has {X.shape[1]}; feature dimensions must match"
            )
    return X, y, X_test
