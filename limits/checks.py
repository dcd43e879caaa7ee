"""Argument validation shared by every entry point: one message style everywhere."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["integer", "positive", "nonnegative"]


def integer(value, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (bools and floats rejected), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _finite(value, name: str, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {what}, got {value!r}") from exc
    if not math.isfinite(out):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def positive(value, name: str) -> float:
    """``value`` as a finite float ``> 0``, else ValueError naming ``name``."""
    out = _finite(value, name, "a positive finite number")
    if out <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return out


def nonnegative(value, name: str) -> float:
    """``value`` as a finite float ``>= 0``, else ValueError naming ``name``."""
    out = _finite(value, name, "a finite number >= 0")
    if out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return out
