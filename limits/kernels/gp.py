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

__all__ = ["Posterior", "gp_posterior", "kernel_ridge"]


class Posterior(NamedTuple):
    """Posterior ``mean`` (Q,) and ``variance`` (Q,) (or None when not requested)."""

    mean: np.ndarray
    variance: np.ndarray | None


def _factor(k_train: np.ndarray, ridge: float):
    k_train = np.asarray(k_train, dtype=float)
    if k_train.ndim != 2 or k_train.shape[0] != k_train.shape[1]:
        raise ValueError(f"k_train must be a square (P, P) matrix, got shape {k_train.shape}")
    if not np.all(np.isfinite(k_train)):
        raise ValueError("k_train contains non-finite values")
    ridge = float(ridge)
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge}")
    try:
        return scipy.linalg.cho_factor(k_train + ridge * np.eye(len(k_train)), lower=True)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "k_train + ridge * I is not positive definite (duplicate inputs or a tiny ridge); use a larger ridge"
        ) from exc


def gp_posterior(k_train, k_test_train, k_test_test_diag=None, y=None, ridge: float = 0.0) -> Posterior:
    """GP posterior mean and variance at the test points (``ridge`` = noise variance).

    Shapes: ``k_train`` (P, P), ``k_test_train`` (Q, P), ``k_test_test_diag`` (Q,)
    (None: no variance), ``y`` (P,). Returns :class:`Posterior`.
    """
    factor = _factor(k_train, ridge)
    k_star = np.atleast_2d(np.asarray(k_test_train, dtype=float))
    P = factor[0].shape[0]
    if k_star.shape[1] != P:
        raise ValueError(f"k_test_train must have shape (Q, {P}), got {k_star.shape}")
    if y is None:
        raise ValueError("y (P,) is required")
    y = np.asarray(y, dtype=float)
    if y.shape != (P,):
        raise ValueError(f"y must have shape ({P},), got {y.shape}")
    mean = k_star @ scipy.linalg.cho_solve(factor, y)
    var = None
    if k_test_test_diag is not None:
        diag = np.asarray(k_test_test_diag, dtype=float)
        if diag.shape != (k_star.shape[0],):
            raise ValueError(f"k_test_test_diag must have shape ({k_star.shape[0]},), got {diag.shape}")
        half = scipy.linalg.solve_triangular(factor[0], k_star.T, lower=True)
        var = diag - np.einsum("pq,pq->q", half, half)
    return Posterior(mean, var)


def kernel_ridge(k_train, k_test_train, y, ridge: float = 0.0) -> np.ndarray:
    """Kernel ridge regression predictions ``K_* (K + ridge I)^{-1} y`` of shape (Q,)."""
    return gp_posterior(k_train, k_test_train, None, y, ridge).mean
