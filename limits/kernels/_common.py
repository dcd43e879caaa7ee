"""Shared types and input handling for the kernel modules."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import numpy as np

from limits.checks import integer
from limits.checks import nonnegative as nonneg
from limits.data import _finite_array

__all__ = ["Kernels", "check_depth", "check_inputs", "float64", "layer_stds", "nonneg"]


class Kernels(NamedTuple):
    """NNGP and NTK between two input sets.

    ``nngp``, ``ntk``: (P1, P2) (or (P,) for a diagonal). ``ntk_layers``:
    (L+1, P1, P2) per-layer contributions ``Theta_l`` (sum = ``ntk``) when requested.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    ntk_layers: np.ndarray | None = None


def float64(fn):
    """Run ``fn`` under a scoped ``jax.enable_x64(True)``: float64 results, the user's global setting untouched."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapped


def check_depth(depth, name: str = "depth") -> int:
    return integer(depth, name, 1)


def layer_stds(W_std: float | Sequence[float], depth: int) -> np.ndarray:
    """Per-layer weight stds (depth+1,): index 0 the input layer, ``depth`` the readout."""
    if np.ndim(W_std) == 0:
        return np.full(depth + 1, nonneg(W_std, "W_std"))
    arr = [nonneg(w, f"W_std[{i}]") for i, w in enumerate(np.asarray(W_std).ravel())]
    if len(arr) != depth + 1 or np.ndim(W_std) != 1:
        raise ValueError(f"W_std must be a number or a sequence of depth + 1 = {depth + 1} values, got {len(arr)}")
    return np.asarray(arr)


def check_inputs(X1, X2=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate inputs: finite real 2-D arrays with at least one row and one feature, matching feature dims, whose
    squared norms do not overflow float64. Returns float64 C-contiguous copies; errors name ``X1`` / ``X2``."""
    out = []
    for name, X in (("X1", X1), ("X2", X2)):
        if X is None:
            out.append(None)
            continue
        X = _finite_array(name, X, 2, np.float64)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{name} must have at least one row and one feature, got shape {X.shape}")
        if out and X.shape[1] != out[0].shape[1]:
            raise ValueError(f"X2 has {X.shape[1]} features but X1 has {out[0].shape[1]}; feature dimensions must match")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(np.einsum("ij,ij->i", X, X))):
                raise ValueError(f"{name} is too large: its squared row norms overflow float64 (max |entry| "
                                 f"{np.abs(X).max():.3g}); rescale the inputs")
        out.append(np.ascontiguousarray(X, dtype=np.float64))
    return out[0], out[1]
