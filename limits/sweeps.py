r"""Sweeps: a grid of pure, cached tasks, run here or on a Dask cluster (:func:`sweep`, :func:`run_tasks`).

A *task* is a settings mapping (plain JSON values: everything that determines the result) and a thunk that computes
a JSON-able record from them. :func:`run_tasks` is the one engine behind :func:`sweep`, :func:`limits.transfer`,
:func:`limits.depth_transfer` and :func:`limits.coord_check`:

1. every task whose record is in the disk cache (``cache_dir``; a verified entry keyed by the SHA-256 of its
   settings, see :mod:`limits.analysis._cache`) is read, not computed, so an interrupted sweep resumes with the
   missing tasks only;
2. the others run in this process one after another (``client=None``, the default), or on the workers of a
   ``dask.distributed`` cluster (``client=Client(...)`` or a scheduler address): each task is submitted once, a
   worker that dies mid-task has its task rerun by the scheduler on another worker (``retries`` more times for a
   task that itself fails to return), and records come back to this process, which alone writes the cache (each
   entry atomically: a temporary file, then ``os.replace``), so every task is in the result exactly once and a
   cache entry is never half-written;
3. a task that raises is recorded, not lost and not fatal: ``status`` ``"diverged"`` for
   :class:`limits.finite.SimulationDiverged` and ``FloatingPointError`` (cached: it is the answer at those
   settings), ``"error"`` with its message otherwise (not cached: a rerun tries again).

:func:`sweep` is the public form: ``fn(**point)`` over the Cartesian product of ``grid``; the result is a
:class:`SweepResult`, a labelled array (``.dataset``: an ``xarray.Dataset`` with the grid's dims plus each
output's own, e.g. ``width x lr x seed x step``), with ``to_json`` / ``from_json``, ``table()`` and ``plot()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import time
import weakref
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import checks
from .analysis import _cache

__all__ = ["sweep", "SweepResult", "Task", "run_tasks", "local_cluster", "STATUSES"]

STATUSES = ("ok", "diverged", "error")
_SWEEP_VERSION = "sweep-v1"
_CONNECT_TIMEOUT_S = 5.0
# a LocalCluster shares the cores with its workers: no statistical profiler in the workers, a slower memory monitor
_QUIET = {"distributed.worker.profile.enabled": False, "distributed.worker.memory.monitor-interval": "1s"}


# ----------------------------------------------------------------------------- the engine
@dataclasses.dataclass(frozen=True)
class Task:
    """One point: ``settings`` (JSON values that determine the record; hashed for the cache), ``thunk`` (no
    arguments -> a JSON-able ``dict`` record) and ``group``: points of one group share compiled programs (e.g. the
    networks of one width; the learning rate is a traced argument), so on Dask they are sent to one worker, which
    compiles them once (None: no preference)."""

    settings: Mapping[str, Any]
    thunk: Callable[[], dict]
    group: Any = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What :func:`run_tasks` returns: ``records`` (one per task, in task order) and counts.

    ``computed``/``cached`` count tasks run now / read from the cache; ``compute_s`` is the summed seconds inside
    the tasks run now (on whichever process ran them) and ``wall_s`` the seconds of the whole call.
    """

    records: list
    computed: int
    cached: int
    compute_s: float
    wall_s: float
    damaged: int


def _diverged_types() -> tuple:
    from .finite import SimulationDiverged

    return (SimulationDiverged, FloatingPointError)


def execute(thunk: Callable[[], dict], record_errors: bool = True) -> tuple[dict, float]:
    """``(record, seconds)`` of one task; a divergence becomes a ``{"status": "diverged"}`` record, another
    exception a ``{"status": "error"}`` record (or, with ``record_errors=False``, propagates)."""
    tick = time.perf_counter()
    try:
        record = thunk()
        if not isinstance(record, dict):
            raise TypeError(f"a task must return a dict record, got {type(record).__name__}")
        record = {"status": "ok", **record}
    except _diverged_types() as exc:
        record = {"status": "diverged", "error": f"{type(exc).__name__}: {exc}", "step": getattr(exc, "step", None)}
    except Exception as exc:  # noqa: BLE001 - recorded for the user, the sweep goes on
        if not record_errors:
            raise
        record = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return record, time.perf_counter() - tick


def _keep(record: dict) -> bool:
    """Whether a record is the answer at its settings (cached): ok and diverged, not errors."""
    return record.get("status") in ("ok", "diverged")


def run_tasks(tasks: Sequence[Task], *, cache: _cache.Cache | None = None, client=None, progress: bool = True,
              desc: str = "sweep", retries: int = 1, record_errors: bool = True) -> Outcome:
    """Records of ``tasks`` (in order): from ``cache`` where stored, else computed here or on ``client``.

    Args:
        tasks: the points; their settings keys must be distinct (the caller's grid check guarantees it).
        cache: a :class:`limits.analysis._cache.Cache` (None: no disk cache).
        client: None (this process) or a ``dask.distributed.Client`` (see :func:`connect`).
        progress: a tqdm bar over the tasks. desc: its label.
        retries: extra attempts for a task whose worker failed to return it (dask ``retries``).
        record_errors: record an exception other than a divergence as a ``"error"`` record (default), or raise it
            (for callers whose tasks cannot fail except on bad input).

    Returns:
        :class:`Outcome`.
    """
    from tqdm.auto import tqdm

    cache = cache or _cache.Cache(None)
    tick, damaged = time.perf_counter(), len(cache.corrupted)
    records: list = [cache.load(t.settings) for t in tasks]
    todo = [i for i, r in enumerate(records) if r is None]
    compute_s = 0.0
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, disable=not progress, leave=False) as bar:
        results = (_local(tasks, todo, record_errors) if client is None
                   else _distributed(client, tasks, todo, retries, record_errors))
        for i, (record, seconds) in results:
            records[i] = record
            compute_s += seconds
            if _keep(record):
                cache.store(tasks[i].settings, record)
            bar.update(1)
    return Outcome(records, len(todo), len(tasks) - len(todo), compute_s, time.perf_counter() - tick,
                   len(cache.corrupted) - damaged)


def _local(tasks: Sequence[Task], todo: list, record_errors: bool):
    for i in todo:
        yield i, execute(tasks[i].thunk, record_errors)


def _distributed(client, tasks: Sequence[Task], todo: list, retries: int, record_errors: bool):
    """Submit each task once; yield ``(index, (record, seconds))`` as they finish (any order)."""
    from distributed import as_completed

    homes = _homes([tasks[i].group for i in todo], list(client.scheduler_info().get("workers", {})))
    futures = [client.submit(execute, tasks[i].thunk, record_errors, pure=False, retries=retries,
                             **({} if home is None else dict(workers=home, allow_other_workers=True)))
               for i, home in zip(todo, homes)]
    index = {f.key: i for f, i in zip(futures, todo)}
    try:
        with client.as_current():
            finished = as_completed(futures)
        for future in finished:
            try:
                yield index[future.key], future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after the scheduler's allowed failures
                if not record_errors:
                    raise
                yield index[future.key], ({"status": "error", "error": f"{type(exc).__name__}: {exc}"}, 0.0)
    finally:
        client.cancel([f for f in futures if not f.done()])


def _homes(groups: list, workers: list) -> list:
    """The preferred worker of each task (None: any): each group to one worker, so its programs are compiled once;
    groups, largest first, dealt in snake order (balanced when the groups' costs grow along the grid, as with
    widths); a group is split while a worker would otherwise stay idle.

    The preference is loose (``allow_other_workers``): a task whose worker dies runs elsewhere.
    """
    if len(workers) < 2 or all(g is None for g in groups):
        return [None] * len(groups)
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(("task", i) if g is None else ("group", json.dumps(g, sort_keys=True, default=str)),
                           []).append(i)
    bins = sorted(members.values(), key=len, reverse=True)
    while len(bins) < len(workers) and len(bins[0]) > 1:  # split the largest group between idle workers
        big = bins.pop(0)
        bins = sorted(bins + [big[: len(big) // 2], big[len(big) // 2:]], key=len, reverse=True)
    homes: list = [None] * len(groups)
    W = len(workers)
    for k, members_ in enumerate(bins):  # snake order: 0, 1, .., W-1, W-1, .., 0, 0, 1, ..
        lap, pos = divmod(k, W)
        w = workers[pos if lap % 2 == 0 else W - 1 - pos]
        for i in members_:
            homes[i] = [w]
    return homes


# ----------------------------------------------------------------------------- clients
@contextlib.contextmanager
def connected(client):
    """The Dask client of ``client`` (:func:`connect`; None: this process), closed afterwards if made here."""
    engine, owned = connect(client)
    try:
        yield engine
    finally:
        if owned:
            engine.close()


def connect(client):
    """``(client, owned)``: a ``dask.distributed.Client`` as given, or one connected to an address string.

    An address that cannot be reached within ``_CONNECT_TIMEOUT_S`` seconds is a ``ConnectionError`` naming it.
    """
    if client is None:
        return None, False
    distributed = _import_distributed()
    if isinstance(client, distributed.Client):
        return client, False
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout=f"{_CONNECT_TIMEOUT_S}s", set_as_default=False), True
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"client={client!r}: no Dask scheduler could be reached there within "
                                  f"{_CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}). Check the address and that the "
                                  "scheduler is running (`dask scheduler`), or pass client=None to run in this "
                                  "process") from None
    raise checks.ArgumentTypeError(f"client must be None (this process), a dask.distributed.Client or a scheduler "
                                   f"address such as 'tcp://10.0.0.1:8786', got {client!r}")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError("client=... runs the sweep on Dask, which is not installed: pip install -e '.[dist]' "
                          "(or pip install 'dask[distributed]')") from None
    return distributed


def local_cluster(n_workers: int | None = None, *, threads: int = 1, compilation_cache: str | os.PathLike | None = "",
                  **kwargs):
    """A ``dask.distributed.Client`` on a ``LocalCluster`` of ``n_workers`` processes for this machine's sweeps.

    Each worker is one process with ``threads`` threads for tasks, pinned to ``threads`` cores of its own (Linux;
    JAX/XLA sizes its thread pools by them) and with BLAS and Numba limited to as many threads (``OMP_NUM_THREADS``,
    ...), so ``n_workers * threads`` cores are used and workers do not compete. The workers share a JAX persistent
    compilation cache, so a program one worker compiled (e.g. the networks of one width) is loaded, not compiled
    again, by the others. Close it with ``client.close();
    client.cluster.close()`` or use it as a context manager (``with limits.local_cluster(2) as client: ...``).

    Args:
        n_workers: worker processes (None: ``os.cpu_count() // threads``).
        threads: threads per worker (default 1).
        compilation_cache: the workers' JAX compilation cache folder; ``""`` (default): a fresh temporary folder for
            this cluster; None: no persistent cache. This process's JAX settings are not changed.
        **kwargs: passed to ``LocalCluster`` (e.g. ``memory_limit``, ``dashboard_address``).

    Returns:
        A ``dask.distributed.Client`` (its ``cluster`` the ``LocalCluster``); pass it as ``client=``. Scripts that
        start one need the ``if __name__ == "__main__":`` guard (the workers are spawned processes).
    """
    distributed = _import_distributed()
    threads = checks.integer(threads, "threads", 1)
    n = max(1, (os.cpu_count() or 1) // threads) if n_workers is None else checks.integer(n_workers, "n_workers", 1)
    env, made = _worker_env(threads, compilation_cache)
    options = dict(n_workers=n, threads_per_worker=threads, processes=True, dashboard_address=None, env=env,
                   silence_logs=logging.ERROR)
    options.update(kwargs)
    import dask

    with dask.config.set(_QUIET):
        cluster = distributed.LocalCluster(**options)
    client = distributed.Client(cluster, set_as_default=False)
    if made is not None:  # the temporary compilation cache goes with the client
        weakref.finalize(client, shutil.rmtree, made, ignore_errors=True)
    if hasattr(os, "sched_setaffinity"):
        from ._pinning import PinToCores

        client.register_plugin(PinToCores(threads))
    return client


def _worker_env(threads: int, compilation_cache) -> tuple[dict, str | None]:
    """The environment of :func:`local_cluster`'s workers and the temporary cache folder made for them (or None)."""
    xla = os.environ.get("XLA_FLAGS", "") + (" --xla_cpu_multi_thread_eigen=false" if threads == 1 else "")
    env = {"XLA_FLAGS": xla.strip(), **{name: str(threads) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}}
    env.update({f"DASK_{k.upper().replace('.', '__').replace('-', '_')}": str(v) for k, v in _QUIET.items()})
    made = None
    if compilation_cache is not None:
        made = tempfile.mkdtemp(prefix="limits-jax-cache-") if compilation_cache == "" else None
        env.update(JAX_COMPILATION_CACHE_DIR=made or os.fspath(compilation_cache),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env, made


# ----------------------------------------------------------------------------- the public sweep
def _grid(grid) -> dict[str, list]:
    """``{name: values}``: identifiers to non-empty sequences of distinct finite numbers or strings."""
    if not isinstance(grid, Mapping) or not grid:
        raise checks.ArgumentTypeError(f"grid must be a non-empty mapping name -> values, e.g. "
                                       f"{{'width': [64, 128], 'lr': [0.1, 1.0]}}, got {grid!r}")
    out = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"grid names must be Python identifiers (they are passed as keyword arguments), "
                             f"got {name!r}")
        items = checks.sequence(values, f"grid[{name!r}]", "[64, 128, 256]")
        out[name] = [_grid_value(v, f"grid[{name!r}][{i}]") for i, v in enumerate(items)]
        if len({json.dumps(v) for v in out[name]}) != len(out[name]):
            raise ValueError(f"grid[{name!r}] has duplicate values {list(values)!r}; each point must appear once "
                             "(remove the repeats)")
    return out


def _grid_value(v, name: str):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise ValueError(f"{name} = {v!r} is not finite; a grid holds finite numbers (or strings)")
        return float(v)
    raise checks.ArgumentTypeError(f"{name} must be a number or a string, got {type(v).__name__} ({v!r:.40})")


def _fn_key(fn) -> str:
    try:
        return _cache.function_key(fn)
    except _cache.Unkeyable as exc:
        raise ValueError(f"fn cannot be keyed for the disk cache: {exc}. Pass cache_dir=None, or a function whose "
                         "captured values are numbers, strings or arrays (functools.partial of them works)") from None


def _record(value, dims: Mapping[str, tuple]) -> dict:
    """The JSON record of what ``fn`` returned: ``{"values": {name: nested lists}, "dims": {name: [...]}}``."""
    from .trajectory import Trajectory

    if isinstance(value, Trajectory):
        value = {k: v for k, v in (("loss", value.loss), ("test_loss", value.test_loss)) if v is not None}
        dims = {"loss": ("step",), "test_loss": ("step",), **dims}
    if not isinstance(value, Mapping):
        raise TypeError(f"fn must return a mapping name -> number or array, or a limits.Trajectory; got "
                        f"{type(value).__name__}")
    values, out_dims = {}, {}
    for name, v in value.items():
        arr = np.asarray(v, dtype=float)
        values[name] = arr.tolist()
        given = tuple(dims.get(name, ()))
        out_dims[name] = list(given) if len(given) == arr.ndim else [f"{name}_{k}" for k in range(arr.ndim)]
    return {"values": values, "dims": out_dims}


def _call(fn, point: dict, dims: dict) -> dict:
    return _record(fn(**point), dims)


def sweep(fn: Callable[..., Any], grid: Mapping[str, Sequence], *, client=None, cache_dir=None, progress: bool = True,
          dims: Mapping[str, Sequence[str]] | None = None, retries: int = 1) -> "SweepResult":
    """``fn(**point)`` at every point of the Cartesian product of ``grid``, cached, here or on a Dask cluster.

    Example::

        def run(width, lr, seed):
            return limits.simulate("mup", 1, width, lr=lr, seed=seed, seeds=1, steps=20, progress=False)

        with limits.local_cluster(2) as client:        # or client=None: this process; or "tcp://host:8786"
            res = limits.sweep(run, {"width": [64, 128], "lr": [0.1, 1.0], "seed": [0, 1]},
                               client=client, cache_dir="sweep-cache")
        res.dataset["loss"]    # xarray: width x lr x seed x step

    Args:
        fn: a pure function of the grid's names returning a mapping ``name -> number or array`` (the same shape at
            every point) or a :class:`limits.Trajectory` (its ``loss`` and ``test_loss``, dim ``step``). It is keyed
            for the cache by what it computes (code, defaults, captured values, as for callable activations).
        grid: ``{name: values}``; names are identifiers, values distinct finite numbers or strings.
        client: None (this process), a ``dask.distributed.Client`` (e.g. :func:`local_cluster`, or one on a
            ``dask_jobqueue`` SLURM/PBS cluster) or a scheduler address; an unreachable address is an error within
            seconds.
        cache_dir: None (no disk cache) or a folder: each point is a verified JSON entry there, so a rerun computes
            only the missing points; a folder that cannot be written is an error before anything runs.
        progress: a progress bar over the points.
        dims: names of each output's own axes, e.g. ``{"loss": ("step",)}`` (default ``<name>_<axis>``).
        retries: extra attempts for a point whose worker failed to return it (Dask only).

    Returns:
        :class:`SweepResult`. A point that raised is in it with ``status`` ``"diverged"`` (divergence) or
        ``"error"`` (its message in ``errors``; a warning names how many) and NaN values.
    """
    if not callable(fn):
        raise checks.ArgumentTypeError(f"fn must be a function of the grid's names, got {fn!r}")
    axes = _grid(grid)
    dims = {str(k): tuple(v) for k, v in (dims or {}).items()}
    retries = checks.integer(retries, "retries", 0)
    progress = checks.boolean(progress, "progress")
    folder = _cache.folder(cache_dir)
    base = {"version": _SWEEP_VERSION, "fn": _fn_key(fn) if folder is not None else None, "dims": dims}
    points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    tasks = [Task({**base, "point": pt}, functools.partial(_call, fn, pt, dims)) for pt in points]
    cache = _cache.Cache(folder)
    with connected(client) as engine:
        outcome = run_tasks(tasks, cache=cache, client=engine, progress=progress,
                            desc=f"sweep {getattr(fn, '__name__', 'fn')}", retries=retries)
    result = SweepResult.from_records(axes, outcome.records, meta=_meta(fn, cache, outcome))
    result.warn()
    return result


def _meta(fn, cache: _cache.Cache, outcome: Outcome) -> dict:
    return {"fn": getattr(fn, "__qualname__", type(fn).__name__), "computed": outcome.computed,
            "cached": outcome.cached, "compute_s": outcome.compute_s, "wall_s": outcome.wall_s,
            "cache_dir": None if cache.folder is None else str(cache.folder), "cache_damaged": outcome.damaged}


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A finished sweep: ``coords`` (dim -> values, in grid order) and ``records`` (one per point, row-major).

    ``dataset`` is the labelled array (``xarray.Dataset``): one variable per output over the grid's dims plus the
    output's own, NaN where a point failed, and ``status`` over the grid (``"ok"``, ``"diverged"``, ``"error"``).
    """

    coords: Mapping[str, list]
    records: tuple
    meta: Mapping[str, Any]

    @classmethod
    def from_records(cls, coords: Mapping[str, list], records: Sequence[dict], meta=None) -> "SweepResult":
        return cls(dict(coords), tuple(records), dict(meta or {}))

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.coords)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.coords.values())

    @property
    def points(self) -> list[dict]:
        return [dict(zip(self.coords, combo)) for combo in itertools.product(*self.coords.values())]

    @property
    def status(self) -> np.ndarray:
        """(grid shape) ``"ok"``, ``"diverged"`` or ``"error"`` per point."""
        return np.array([r.get("status", "ok") for r in self.records], dtype=object).reshape(self.shape)

    @property
    def errors(self) -> list[tuple[dict, str]]:
        """``(point, message)`` of each point that raised something other than a divergence."""
        return [(pt, r.get("error")) for pt, r in zip(self.points, self.records) if r.get("status") == "error"]

    @property
    def n_computed(self) -> int:
        return int(self.meta.get("computed", 0))

    @property
    def n_cached(self) -> int:
        return int(self.meta.get("cached", 0))

    def _outputs(self) -> dict[str, tuple[list, tuple]]:
        """``{name: (dims, shape)}`` from the first successful point of each output."""
        out: dict = {}
        for r in self.records:
            for name, v in r.get("values", {}).items():
                if name not in out:
                    out[name] = (r["dims"][name], np.shape(v))
        return out

    def values(self, name: str) -> np.ndarray:
        """(grid shape + output shape) array of output ``name``; NaN at failed points."""
        outputs = self._outputs()
        if name not in outputs:
            raise KeyError(f"no output {name!r}; the sweep has {sorted(outputs)}")
        shape = outputs[name][1]
        rows = [np.asarray(r["values"][name], float) if name in r.get("values", {}) else np.full(shape, np.nan)
                for r in self.records]
        bad = [i for i, row in enumerate(rows) if row.shape != shape]
        if bad:
            raise ValueError(f"output {name!r} has shape {rows[bad[0]].shape} at point {self.points[bad[0]]} but "
                             f"{shape} elsewhere; fn must return the same shapes at every point")
        return np.stack(rows).reshape(self.shape + shape)

    @property
    def dataset(self):
        """The results as an ``xarray.Dataset`` (dims: the grid's, then each output's own)."""
        import xarray as xr

        data = {name: (list(self.dims) + list(d), self.values(name)) for name, (d, _) in self._outputs().items()}
        data["status"] = (list(self.dims), self.status.astype(str))
        return xr.Dataset(data, coords={k: list(v) for k, v in self.coords.items()}, attrs=_attrs(self.meta))

    def to_json(self, path) -> Path:
        """Write coords, records and meta as JSON (NaN and inf kept); read back with :meth:`from_json`."""
        path = Path(path)
        path.write_text(json.dumps({"format": _SWEEP_VERSION, "coords": self.coords, "records": list(self.records),
                                    "meta": self.meta}, allow_nan=True))
        return path

    @classmethod
    def from_json(cls, path) -> "SweepResult":
        entry = json.loads(Path(path).read_text())
        if not isinstance(entry, dict) or entry.get("format") != _SWEEP_VERSION:
            raise ValueError(f"{str(path)!r} is not a sweep written by SweepResult.to_json ({_SWEEP_VERSION})")
        return cls(entry["coords"], tuple(entry["records"]), entry["meta"])

    def table(self) -> str:
        """One line per point: its coordinates, status and each output (the last entry of an array)."""
        names = sorted(self._outputs())
        head = "".join(f"{d:>12}" for d in self.dims) + f"{'status':>10}" + "".join(f"{n:>14}" for n in names)
        lines = [f"sweep {self.meta.get('fn', '')}: {len(self.records)} points ({self.n_computed} computed, "
                 f"{self.n_cached} from the cache)", head]
        cols = {n: self.values(n).reshape(len(self.records), -1) for n in names}
        for i, (pt, r) in enumerate(zip(self.points, self.records)):
            row = "".join(f"{v:>12.4g}" if isinstance(v, float) else f"{v!s:>12}" for v in pt.values())
            row += f"{r.get('status', 'ok'):>10}" + "".join(f"{cols[n][i, -1]:>14.5g}" for n in names)
            lines.append(row)
        return "\n".join(lines)

    def plot(self, path, *, y: str = "loss", x: str | None = None, title: str = ""):
        """``y`` against its own last axis (e.g. ``step``) or against grid dim ``x``, one line per other point."""
        from . import plotting

        arr = self.values(y)
        fig, axes = plotting.new_figure()
        ax = axes[0, 0]
        if x is None:
            flat = arr.reshape(len(self.records), -1)
            for pt, row in zip(self.points, flat):
                ax.plot(row, label=", ".join(f"{k}={v}" for k, v in pt.items()))
            xlabel = self._outputs()[y][0][-1] if self._outputs()[y][0] else "index"
        else:
            if x not in self.dims:
                raise ValueError(f"x={x!r} is not a dim of the sweep; choose one of {list(self.dims)}")
            moved = np.moveaxis(arr, self.dims.index(x), -1)
            final = moved[..., -1, :] if moved.ndim > len(self.dims) else moved
            others = [d for d in self.dims if d != x]
            for combo, row in zip(itertools.product(*(self.coords[d] for d in others)),
                                  final.reshape(-1, len(self.coords[x]))):
                ax.plot(self.coords[x], row, "o-", ms=3, label=", ".join(f"{k}={v}" for k, v in zip(others, combo)))
            xlabel = x
        ax.set_yscale("log")
        plotting.finish(ax, xlabel, y, title or f"sweep {self.meta.get('fn', '')}")
        return plotting.save(fig, path)

    def warn(self) -> None:
        """A ``RuntimeWarning`` naming the points that raised (not divergences) and damaged cache entries."""
        errors = self.errors
        if errors:
            point, message = errors[0]
            warnings.warn(f"{len(errors)} of {len(self.records)} sweep points raised (recorded with status 'error' "
                          f"and NaN values, not cached; e.g. point {point}: {message})",
                          RuntimeWarning, stacklevel=3)
        if self.meta.get("cache_damaged"):
            warnings.warn(f"{self.meta['cache_damaged']} damaged cache entries in {self.meta['cache_dir']} were "
                          "recomputed and rewritten", RuntimeWarning, stacklevel=3)

    def __repr__(self) -> str:
        return self.table()


def _attrs(meta: Mapping[str, Any]) -> dict:
    """netCDF-safe attributes: numbers and strings (None as "")."""
    return {k: ("" if v is None else v) for k, v in meta.items() if v is None or isinstance(v, (int, float, str))}
