r"""Gaussian-process posterior and kernel ridge regression.

With train kernel ``K`` (P, P), test-train kernel ``K_*`` (Q, P), ridge ``s``:

.. math::
    \mu_* = K_* (K + s I)^{-1} y,\qquad
    \sigma^2_* = \operatorname{diag} K_{**} - \operatorname{diag}(K_* (K + s I)^{-1} K_*^\top).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

from limits.checks import nonnegative

__all__ = ["Posterior", "gp_posterior", "kernel_ridge"]


class Posterior(NamedTuple):
    """Posterior ``mean`` (Q,) and ``variance`` (Q,) (or None when not requested)."""

    mean: np.ndarray
    variance: np.ndarray | None


def _array(value, name: str, shape: tuple) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (None entries: any size); errors name the argument."""
    from limits.data import _numeric_array

    arr = _numeric_array(name, value).astype(np.float64)
    want = "(" + ", ".join("n" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if arr.ndim != len(shape) or any(d is not None and d != a for d, a in zip(shape, arr.shape)):
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def _factor(k_train, ridge: float):
    k_train = _array(k_train, "k_train", (None, None))
    if k_train.shape[0] != k_train.shape[1]:
        raise ValueError(f"k_train must be a square (P, P) matrix, got shape {k_train.shape}")
    ridge = nonnegative(ridge, "ridge")
    try:
        return scipy.linalg.cho_factor(k_train + ridge * np.eye(len(k_train)), lower=True)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"k_train + ridge * I is not positive definite (ridge={ridge:g}): duplicate or all-zero inputs give a "
            "singular kernel; use a ridge > 0 (e.g. 1e-8 times the kernel's scale)"
        ) from None


def gp_posterior(k_train, k_test_train, k_test_test_diag=None, y=None, ridge: float = 0.0) -> Posterior:
    """GP posterior mean and variance at the test points (``ridge`` = noise variance).

    Args:
        k_train: (P, P) train kernel. k_test_train: (Q, P) (or (P,) for one test point).
        k_test_test_diag: (Q,) test variances, or None (no variance). y: (P,) targets (required).
        ridge: noise variance >= 0 added to the diagonal of ``k_train``.

    Returns:
        :class:`Posterior` ``(mean (Q,), variance (Q,) or None)``. Raises ``ValueError`` naming the argument for
        wrong shapes, non-finite entries, and a singular ``k_train + ridge I``.
    """
    factor = _factor(k_train, ridge)
    P = factor[0].shape[0]
    if y is None:
        raise ValueError(f"y ({P},) is required")
    y = _array(y, "y", (P,))
    k_star = _array(np.atleast_2d(k_test_train) if np.ndim(k_test_train) == 1 else k_test_train, "k_test_train",
                    (None, P))
    mean = k_star @ scipy.linalg.cho_solve(factor, y)
    var = None
    if k_test_test_diag is not None:
        diag = _array(k_test_test_diag, "k_test_test_diag", (k_star.shape[0],))
        half = scipy.linalg.solve_triangular(factor[0], k_star.T, lower=True)
        var = diag - np.einsum("pq,pq->q", half, half)
    return Posterior(mean, var)


def kernel_ridge(k_train, k_test_train, y, ridge: float = 0.0) -> np.ndarray:
    """Kernel ridge regression predictions ``K_* (K + ridge I)^{-1} y`` of shape (Q,).

    The posterior mean of :func:`gp_posterior` (no variance).

    Args:
        k_train: (P, P) train kernel ``K``.
        k_test_train: (Q, P) test-train kernel ``K_*`` (or (P,) for one test point).
        y: (P,) train targets.
        ridge: ridge >= 0 added to the diagonal of ``k_train`` (default 0.0).

    Returns:
        np.ndarray: (Q,) predictions. Raises ``ValueError`` naming the argument for wrong shapes, non-finite
        entries, a negative ridge, and a singular ``k_train + ridge I``.
    """
    return gp_posterior(k_train, k_test_train, None, y, ridge).mean
