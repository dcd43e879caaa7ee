"""The on-disk point cache of :func:`limits.analysis.transfer`: keys and verified, atomic entries.

A key is the SHA-256 of a canonical JSON text of everything that determines a point (the table, width, depth,
learning rate, data, activation, steps, seeds, seed and the options objects). An entry ``<key>.json`` stores its
own key, the settings it was computed from and a checksum of its record; an entry whose JSON does not parse, whose
key or settings differ from the file name's, or whose checksum does not match (truncated, edited, half-written) is
treated as missing and recomputed. Entries are written to a temporary file in the same folder, then
``os.replace``d into place, so a reader never sees half an entry.

Callable activations are keyed by what they compute: their code (recursively through nested functions), default
arguments, closure cells and the globals they reference, when all of those are numbers, strings, arrays, tuples of
them, modules or importable library functions. Anything else (an object with state, a class instance with
``__call__``, a closure over a mutable list) cannot be keyed safely: :class:`Unkeyable` is raised and the caller
refuses to cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import activations as _activations

__all__ = ["Unkeyable", "activation_key", "function_key", "key", "folder", "Cache", "update_rule"]

# callables from these packages are keyed by their import path and the package version
_LIBRARIES = ("jax", "jaxlib", "numpy", "scipy", "math", "builtins", "limits", "operator")


class Unkeyable(ValueError):
    """A value that cannot be turned into a cache key safely."""


def _version(module_name: str) -> str:
    root = module_name.split(".")[0]
    mod = __import__(root)
    return str(getattr(mod, "__version__", ""))


def _library_callable(fn) -> str | None:
    """``"lib:module.qualname@version"`` for a function importable from a known library, else None."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module.split(".")[0] not in _LIBRARIES:
        return None
    if module.split(".")[0] == "limits" or "<locals>" in qualname:
        return None  # limits' own functions are keyed by their code (the package may change between runs)
    return f"lib:{module}.{qualname}@{_version(module)}"


def _importable(cls: type) -> bool:
    """A class defined at the top level of an importable module other than ``__main__`` (keyed by its import path
    and its package's version)."""
    module = getattr(cls, "__module__", "") or ""
    return module not in ("__main__", "") and "<locals>" not in cls.__qualname__


def _value(value, seen: set, path: str) -> Any:
    """A JSON-able canonical form of a captured value, or :class:`Unkeyable`."""
    if value is Ellipsis:
        return ["ellipsis"]
    if value is None or isinstance(value, (bool, str)):
        return [type(value).__name__, value]
    if isinstance(value, (int, float, complex, np.number, np.bool_)):
        return [type(value).__name__, repr(value.item() if isinstance(value, np.generic) else value)]
    if isinstance(value, bytes):
        return ["bytes", hashlib.sha256(value).hexdigest()]
    if isinstance(value, (tuple, list, frozenset)):
        items = sorted(map(repr, value)) if isinstance(value, frozenset) else value
        return [type(value).__name__, [_value(v, seen, f"{path}[{i}]") for i, v in enumerate(items)]]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, np.ndarray) or type(value).__module__.startswith(("jax", "jaxlib")) and hasattr(value, "shape"):
        try:
            arr = np.ascontiguousarray(np.asarray(value))
        except Exception as exc:  # noqa: BLE001 - a tracer or an abstract value: not a concrete array
            raise Unkeyable(f"{path} is a {type(value).__name__} without concrete values ({exc})") from None
        if arr.dtype == object:
            raise Unkeyable(f"{path} is an object array")
        return ["array", str(arr.dtype), list(arr.shape), hashlib.sha256(arr.tobytes()).hexdigest()]
    if callable(value):
        return _callable(value, seen, path)
    raise Unkeyable(f"{path} is a {type(value).__name__} ({value!r:.60}), which cannot be keyed (captured values "
                    f"must be numbers, strings, arrays, tuples of them, modules or functions)")


def _code(code: types.CodeType, seen: set, path: str) -> list:
    consts = [_code(c, seen, f"{path}.<code>") if isinstance(c, types.CodeType) else _value(c, seen, f"{path} constant")
              for c in code.co_consts]
    return [code.co_code.hex(), consts, list(code.co_names), list(code.co_varnames), list(code.co_freevars)]


def _callable(fn, seen: set, path: str) -> list:
    if id(fn) in seen:
        return ["recursive", getattr(fn, "__qualname__", "?")]
    seen = seen | {id(fn)}
    if isinstance(fn, _activations.Activation):
        if fn.name in _activations.NAMES and fn is _activations.get(fn.name):
            return ["activation", fn.name]
        return ["Activation", _callable(fn.fn, seen, f"{path}.fn"), _callable(fn.deriv, seen, f"{path}.deriv")]
    if isinstance(fn, functools.partial):
        return ["partial", _callable(fn.func, seen, f"{path}.func"), _value(tuple(fn.args), seen, f"{path}.args"),
                _value(tuple(sorted(fn.keywords.items())), seen, f"{path}.keywords")]
    lib = _library_callable(fn)
    if lib is not None:
        return [lib]
    if isinstance(fn, type) and _importable(fn):
        return [f"class:{fn.__module__}.{fn.__qualname__}@{_version(fn.__module__) or sys.version.split()[0]}"]
    if isinstance(fn, types.MethodType):
        raise Unkeyable(f"{path} is a bound method (its object's state is part of the function)")
    code = getattr(fn, "__code__", None)
    if not isinstance(fn, types.FunctionType) or code is None:
        wrapped = getattr(fn, "__wrapped__", None)  # jax.jit(f) and functools.wraps decorators
        if wrapped is not None and wrapped is not fn:
            return ["wrapped", type(fn).__name__, _callable(wrapped, seen, f"{path}.__wrapped__")]
        raise Unkeyable(f"{path} is a {type(fn).__name__} object, not a plain function: its state cannot be keyed")
    return ["function", _code(code, seen, path),
            _value(fn.__defaults__ or (), seen, f"{path} defaults"),
            _value(tuple(sorted((fn.__kwdefaults__ or {}).items())), seen, f"{path} keyword defaults"),
            _value(tuple(c.cell_contents for c in fn.__closure__ or ()), seen, f"{path} closure"),
            _globals(fn, code, seen, path)]


def _globals(fn, code: types.CodeType, seen: set, path: str) -> list:
    """The globals the code (and its nested code) reads, by name; attribute names are not globals and skipped."""
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    out = []
    for name in sorted(names):
        if name in fn.__globals__:
            out.append([name, _value(fn.__globals__[name], seen, f"{path} global {name!r}")])
    return out


def activation_key(activation) -> str:
    """The name of a built-in activation, else ``"custom:<qualname>:<hash>"`` of what the callable computes.

    Raises :class:`Unkeyable` if the callable captures something that cannot be keyed safely.
    """
    act = _activations.get(activation)
    if act.name in _activations.NAMES and act is _activations.get(act.name):
        return act.name
    form = _callable(activation, set(), "activation")
    digest = hashlib.sha256(json.dumps(form, sort_keys=True).encode()).hexdigest()[:24]
    return f"custom:{getattr(activation, '__qualname__', type(activation).__name__)}:{digest}"


def function_key(fn) -> str:
    """SHA-256 of what a callable computes (code, defaults, closure, globals; see the module docstring).

    Raises :class:`Unkeyable` if it captures something that cannot be keyed safely.
    """
    return hashlib.sha256(json.dumps(_callable(fn, set(), "fn"), sort_keys=True).encode()).hexdigest()


ADAPTIVE_UPDATE = "adaptive-v2"
"""Version of the adaptive optimizers' update (Adam, AdamW, Muon) in cache keys. v2: the update of
``limits.finite.optimizers`` (Adam results differ from v1 in the last bit: XLA fuses the new program differently).
SGD tables carry no such entry, so their keys, and results, are those of before."""


def update_rule(table) -> dict:
    """``{"update": ADAPTIVE_UPDATE}`` for a table trained by an adaptive optimizer, ``{}`` for SGD (cache settings)."""
    return {} if table.optimizer == "sgd" else {"update": ADAPTIVE_UPDATE}


def key(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON text of ``settings`` (plain JSON values only)."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def folder(cache_dir) -> Path | None:
    """``cache_dir`` as a ``Path`` (None: no disk cache); anything else is an ``ArgumentTypeError``."""
    from .. import checks

    if cache_dir is None:
        return None
    if isinstance(cache_dir, bool) or not isinstance(cache_dir, (str, os.PathLike)):
        raise checks.ArgumentTypeError(f"cache_dir must be None (no disk cache) or a folder path, got {cache_dir!r}")
    return Path(cache_dir)


class Cache:
    """Verified JSON entries in ``folder``; ``Cache(None)`` stores nothing."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.corrupted: list[str] = []  # keys of entries found damaged (then recomputed)
        if folder is not None:
            self._check_writable()

    def _check_writable(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.folder, prefix=".probe-", suffix=".tmp")
            os.close(fd)
            os.remove(probe)
        except OSError as exc:
            raise ValueError(f"cache_dir={str(self.folder)!r} cannot be written ({type(exc).__name__}: {exc}); give a "
                             "writable folder, or cache_dir=None to run without a disk cache") from None

    def load(self, settings: Mapping[str, Any]) -> dict | None:
        """The stored record for ``settings``, or None if absent or damaged (damage is noted in ``corrupted``)."""
        if self.folder is None:
            return None
        k = key(settings)
        path = self.folder / f"{k}.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            self.corrupted.append(k)
            return None
        try:
            entry = json.loads(text)
            ok = (isinstance(entry, dict) and entry.get("key") == k and key(entry.get("settings")) == k
                  and isinstance(entry.get("record"), dict)
                  and entry.get("checksum") == _checksum(entry["record"]))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            self.corrupted.append(k)
            return None
        return entry["record"]

    def store(self, settings: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Write the entry atomically (temporary file in the folder, then ``os.replace``)."""
        if self.folder is None:
            return
        k = key(settings)
        entry = {"key": k, "settings": settings, "record": record, "checksum": _checksum(record)}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{k[:16]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_canonical(entry))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / f"{k}.json")
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def _checksum(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(record).encode()).hexdigest()
