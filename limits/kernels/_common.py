"""Shared types and input handling for the kernel modules."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from limits.checks import integer
from limits.checks import nonnegative as nonneg
from limits.data import validate

__all__ = ["Kernels", "check_depth", "check_inputs", "layer_stds", "nonneg"]


class Kernels(NamedTuple):
    """NNGP and NTK between two input sets.

    ``nngp``, ``ntk``: (P1, P2) (or (P,) for a diagonal). ``ntk_layers``:
    (L+1, P1, P2) per-layer contributions ``Theta_l`` (sum = ``ntk``) when requested.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    ntk_layers: np.ndarray | None = None


def check_depth(depth, name: str = "depth") -> int:
    return integer(depth, name, 1)


def layer_stds(W_std: float | Sequence[float], depth: int) -> np.ndarray:
    """Per-layer weight stds (depth+1,): index 0 the input layer, ``depth`` the readout."""
    if np.ndim(W_std) == 0:
        return np.full(depth + 1, nonneg(W_std, "W_std"))
    arr = [nonneg(w, f"W_std[{i}]") for i, w in enumerate(np.asarray(W_std, dtype=float).ravel())]
    if len(arr) != depth + 1 or np.ndim(W_std) != 1:
        raise ValueError(f"W_std must be a number or a sequence of depth + 1 = {depth + 1} values, got {len(arr)}")
    return np.asarray(arr)


def check_inputs(X1, X2=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate inputs (finite, 2-D, matching feature dims); float64 C-contiguous copies."""
    X1, _, X2 = validate(X1, None, X2)
    X1 = np.ascontiguousarray(X1, dtype=np.float64)
    if X2 is not None:
        X2 = np.ascontiguousarray(X2, dtype=np.float64)
    return X1, X2
