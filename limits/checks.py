"""Argument validation shared by every public entry point: one message style everywhere.

Every checker takes the value and the argument's name, returns the value in canonical form, and raises
``ValueError`` (bad value) or ``TypeError`` (wrong kind of object) with a message that names the argument, what it
must be and what was given. Nothing is coerced silently: ``1.9`` is not an integer, ``"no"`` is not a boolean,
complex numbers are not real.

The shared arguments of the entry points (:func:`limits.solve_dmft`, :func:`limits.solve_kernel`,
:func:`limits.simulate`, :func:`limits.transfer`, :func:`limits.coord_check`) are checked here, with the same names
and meaning everywhere (see ``docs/api.md``): ``param``, ``depth``, ``width``, ``X``, ``y``, ``activation``,
``gamma0``, ``lr``, ``steps``, ``X_test``, ``y_test``, ``seed``, ``seeds``, ``record``, ``progress``.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

__all__ = [
    "ArgumentTypeError", "RECORD", "META_KEYS", "integer", "positive", "nonnegative", "real", "boolean", "choice",
    "seed", "open_unit", "record", "width", "inapplicable", "finite_result", "option", "default_data", "fingerprint",
    "sequence", "distinct",
]

RECORD = {
    "ntk": "the learning-rate-weighted NTK, (K, P, P) at the recorded steps",
    "kernels": "feature kernels phi1.. and gradient kernels g1.. (K, P, P)",
    "two_time": "two-time kernels phi1_tt.., g1_tt.. (T+1, T+1, P, P) (DMFT only)",
    "features": "RMS feature movement per layer (finite networks only)",
    "spectral": "spectral norms of the weights and their change (finite networks only)",
    "test_variance": "posterior / initialization variance of the test predictions (kernel limit only)",
}
"""The one ``record=`` vocabulary of every entry point; each entry point accepts the subset it can compute and
rejects the rest by name."""

META_KEYS = ("solver", "param", "depth", "width", "activation", "gamma0", "lr", "steps", "seed", "method", "wall_s")
"""Keys every :class:`~limits.Trajectory` ``meta`` has (solvers add their own after these)."""

_MAX_SEED = 2**32 - 1


class ArgumentTypeError(TypeError, ValueError):
    """A wrong kind of object for an argument. Both a ``TypeError`` and a ``ValueError``, so that callers catching
    either (the documented contract: bad input raises ``ValueError`` or ``TypeError`` naming the argument) see it."""


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; bools, floats (even ``2.0``) and strings are rejected."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return value


def real(value, name: str) -> float:
    """``value`` as a finite float (ints and NumPy scalars accepted; bools, complex, strings, NaN, inf rejected)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not _is_real_number(value):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def positive(value, name: str) -> float:
    """``value`` as a finite float ``> 0``."""
    out = real(value, name)
    if out <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return out


def nonnegative(value, name: str) -> float:
    """``value`` as a finite float ``>= 0``."""
    out = real(value, name)
    if out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return out


def open_unit(value, name: str) -> float:
    """``value`` as a float in the open interval (0, 1) (e.g. a confidence level: 0.95, not 95 or 2)."""
    out = real(value, name)
    if not 0 < out < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1 (e.g. 0.95), got {value!r}")
    return out


def boolean(value, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy bools accepted); strings such as ``"no"`` are rejected."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")


def choice(value, name: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (exact, case-sensitive strings)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def seed(value, name: str = "seed") -> int:
    """A random seed: an integer in ``[0, 2**32 - 1]``."""
    return integer(value, name, 0, _MAX_SEED)


def width(value, name: str = "width", *, infinite: bool = True) -> int | float:
    """A network width: a positive integer (``2.0`` is rejected: widths are counts), or ``math.inf`` if allowed."""
    if infinite and isinstance(value, (float, np.floating)) and math.isinf(value) and value > 0:  # ints never overflow here
        return math.inf
    try:
        return integer(value, name, 1)
    except TypeError:
        what = "a positive integer or math.inf" if infinite else "a positive integer"
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r}") from None


def record(value, name: str = "record", *, supported: Iterable[str]) -> frozenset:
    """The set of quantities to record: a name from :data:`RECORD`, a sequence of names, or None / ``()`` for none.

    Names outside :data:`RECORD` and names this entry point cannot compute (not in ``supported``) are rejected.
    """
    supported = tuple(supported)
    if value is None:
        return frozenset()
    names = (value,) if isinstance(value, str) else value
    try:
        names = tuple(names)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be a name or a sequence of names from {list(supported)}, got {value!r}") from None
    for item in names:
        if not isinstance(item, str) or item not in RECORD:
            raise ValueError(f"{name}: unknown quantity {item!r}; the record vocabulary is {list(RECORD)}")
        if item not in supported:
            raise ValueError(f"{name}: {item!r} ({RECORD[item]}) cannot be recorded here; this entry point records "
                             f"{list(supported)}")
    return frozenset(names)


def inapplicable(name: str, why: str) -> ValueError:
    """The error for an option that does not apply: ``raise inapplicable("seed", "method=Exact() has no sources")``."""
    return ValueError(f"{name}= does not apply here: {why}; drop {name}=")


def option(value, name: str, types: type | tuple, default=None):
    """An options object of one of ``types`` (or ``default`` for None); any other object is a ``TypeError``."""
    if value is None:
        return default
    if not isinstance(value, types):
        kinds = types if isinstance(types, tuple) else (types,)
        raise ArgumentTypeError(f"{name} must be {' or '.join(t.__name__ + '(...)' for t in kinds)}, got {value!r}")
    return value


def finite_result(array, what: str, *, hint: str = ""):
    """``array`` if every entry is finite, else ``FloatingPointError`` naming ``what`` and the first bad index."""
    arr = np.asarray(array)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise FloatingPointError(f"{what} is not finite at index {first}" + (f": {hint}" if hint else ""))
    return array


def default_data(X, y, X_test=None, y_test=None, *, with_test: bool = False):
    """The data of an entry point, checked: ``(X, y, X_test, y_test)`` as float64 arrays of shapes (P, D), (P,),
    (Q, D) or None, (Q,) or None. ``X`` and ``y`` both None: ``limits.datasets.teacher()`` (its train set); one of
    them None: an error (``with_test``: the teacher's test set too, unless one is given). ``y_test`` needs ``X_test``."""
    from .data import teacher, validate

    if X is None and y is None:
        data = teacher()
        X, y = data.X, data.y
        if with_test and X_test is None and y_test is None:
            X_test, y_test = data.X_test, data.y_test
    elif X is None or y is None:
        given, missing = ("X", "y") if y is None else ("y", "X")
        raise ValueError(f"{given} was given without {missing}: pass both, or neither for the default dataset "
                         "limits.datasets.teacher()")
    X, y, X_test = validate(X, y, X_test)
    if y_test is not None:
        if X_test is None:
            raise ValueError("y_test was given without X_test; give both (or neither)")
        from .data import _finite_array

        y_test = _finite_array("y_test", y_test, 1, np.float64)
        if y_test.shape[0] != X_test.shape[0]:
            raise ValueError(f"X_test has {X_test.shape[0]} rows but y_test has {y_test.shape[0]} entries; they must "
                             "match")
    return X, y, X_test, y_test


def fingerprint(*arrays) -> str:
    """A short content hash of data arrays, e.g. ``meta["data"] = fingerprint(X, y, X_test, y_test)``.

    Each array is hashed as float64 values with its shape (so the same numbers in float32 and float64, or in a
    list, give the same fingerprint); ``None`` has its own marker, so ``(X, y, None, None)`` differs from
    ``(X, y)`` only by the count of arguments. Used by :func:`limits.compare` to refuse trajectories of different
    data and by the transfer cache."""
    import hashlib

    h = hashlib.sha256(f"{len(arrays)}:".encode())
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(f"{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def sequence(value, name: str, example: str) -> list:
    """The entries of a non-empty 1-D list, tuple, range or array (a string or a scalar is an error; ``example``
    shows a valid value in the message)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be a list of values, e.g. {name}={example}, got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {value.shape}")
    items = list(np.asarray(value, dtype=object).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
    if not items:
        raise ValueError(f"{name} is empty; give at least one value, e.g. {name}={example}")
    return items


def distinct(values: list, name: str) -> None:
    """A ValueError naming the values that ``values`` (a grid such as widths or lrs) lists more than once."""
    seen, dups = set(), []
    for v in values:
        if v in seen and v not in dups:
            dups.append(v)
        seen.add(v)
    if dups:
        raise ValueError(f"{name} lists {dups} more than once; give each value once")
