"""Finite-width ensembles at several widths, one cached sweep task per width (:func:`ensembles`).

The convergence studies (``compare(limit, ensembles(...))``, the width-N theory against measured spreads, the
figures) need the same ensemble of networks at several widths. :func:`ensembles` runs one
:func:`limits.simulate` per width as a task of :func:`limits.sweeps.run_tasks`: in this process or on a Dask
cluster (``client=``), with each width's :class:`limits.Trajectory` kept as a verified JSON entry in ``cache_dir``
(keyed by the table, width, data, activation, steps, lr, seeds, seed, record and options), so a rerun reads the
widths already computed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from typing import Callable, Sequence

from .. import checks
from ..trajectory import Trajectory
from . import _cache

__all__ = ["ensembles"]

_VERSION = "ensembles-v1"


def _settings(s, act_key: str) -> dict:
    """Everything that determines one width's trajectory, as JSON values (``s``: the validated simulate setup)."""
    from .. import __version__

    method = dataclasses.replace(s.method, seed_batch=None, devices=None)  # neither changes the results
    return {"version": _VERSION, "limits": __version__, "table": repr(s.table), **_cache.update_rule(s.table),
            "width": s.net.width,
            "activation": act_key, "data": checks.fingerprint(s.X, s.y, s.X_test, s.y_test), "lr": s.lr,
            "steps": s.steps, "seeds": s.seeds, "seed": s.seed, "record": sorted(s.record),
            "record_steps": [int(t) for t in s.record_steps], "method": repr(method)}


def _simulate_defaults() -> dict:
    """The defaults of :func:`limits.simulate`'s keyword arguments (the key then follows what simulate runs)."""
    from ..finite import simulate

    return {k: p.default for k, p in inspect.signature(simulate).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _one_width(table, width: int, kwargs: dict) -> dict:
    from ..finite import simulate

    return {"trajectory": simulate(table, None, width, **kwargs, progress=False).to_dict()}


def ensembles(
    param="mup",
    depth: int | None = None,
    widths: Sequence[int] = (128, 256, 512),
    *,
    activation: str | Callable = "tanh",
    gamma0: float | None = None,
    optimizer: str | None = None,
    client=None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **kwargs,
) -> dict[int, Trajectory]:
    """``{width: simulate(param, depth, width, ...)}`` for every width, here or on a Dask cluster, cached.

    Args:
        param, depth, activation, gamma0, optimizer: as in :func:`limits.simulate`.
        widths: distinct positive integer widths (sorted in the result).
        client: where the widths run (:func:`limits.sweep`): None (this process), a ``dask.distributed.Client``
            or a scheduler address.
        cache_dir: None (no disk cache) or a folder of verified entries, one per width.
        progress: a progress bar over the widths.
        **kwargs: the other arguments of :func:`limits.simulate` (``X``, ``y``, ``X_test``, ``y_test``, ``lr``,
            ``steps``, ``seed``, ``seeds``, ``record``, ``method``); ``progress`` is this function's.

    Returns:
        ``{width: Trajectory}`` in increasing width, each equal to the direct :func:`limits.simulate` call.

    Raises:
        SimulationDiverged: the networks of a width diverged (the message names the width).
    """
    from .. import sweeps
    from ..finite import SimulationDiverged
    from ..finite.simulate import _validate, resolve_table
    from .transfer import _activation_key, _check_widths

    ws = _check_widths(widths, 1)
    table, _ = resolve_table(param, depth, gamma0, optimizer)
    folder = _cache.folder(cache_dir)
    act_key = _activation_key(activation, folder is not None)
    unknown = set(kwargs) - {"X", "y", "X_test", "y_test", "lr", "steps", "seed", "seeds", "record", "method"}
    if unknown:
        raise checks.ArgumentTypeError(f"ensembles() got unexpected arguments {sorted(unknown)}; it takes those of "
                                       "limits.simulate")
    kwargs = {**kwargs, "activation": activation}
    a = {**_simulate_defaults(), **kwargs}
    tasks = []
    for w in ws:  # every argument checked (by simulate's own validation) before anything runs
        s = _validate(table, None, w, a["X"], a["y"], activation, None, None, a["lr"], a["steps"], a["X_test"],
                      a["y_test"], a["seed"], a["seeds"], a["record"], False, a["method"])
        tasks.append(sweeps.Task(_settings(s, act_key), functools.partial(_one_width, table, w, kwargs), group=w))
    with sweeps.connected(client) as engine:
        out = sweeps.run_tasks(tasks, cache=_cache.Cache(folder), client=engine,
                               progress=checks.boolean(progress, "progress"), desc=f"ensembles {table.name}",
                               record_errors=False)
    result = {}
    for w, record in zip(ws, out.records):
        if record["status"] == "diverged":
            raise SimulationDiverged(f"width {w}: {record['error']}", record.get("step") or 0, kwargs.get("lr", 0.5))
        result[w] = Trajectory.from_dict(record["trajectory"])
    return result
