r"""Learning-rate transfer across width (:func:`transfer`) and depth (:func:`depth_transfer`).

For every width ``n`` and learning rate ``lr`` an ensemble of ``seeds`` networks (:func:`limits.simulate`) is
trained for ``steps`` steps and scored by its seed-mean final loss (train, or test with ``metric="test"``). The
optimal learning rate at each width is the vertex of a parabola through the best grid point and its two neighbours
in ``(log lr, log loss)``; at the edge of the grid (or next to a divergent point) the grid value is used and
flagged. ``lr*(n) ~ n^k`` is then fitted: ``k ~ 0`` means the parametrization transfers (mup), ``k < 0`` that the
optimum shifts (SP with c = 0: ``k ~ -1``).

With ``limit=True`` (the default) the infinite-width curve is drawn beside the widths: :func:`limits.solve_dmft`
for a feature-learning table (``limit_method``: a :class:`limits.dmft.MonteCarlo` or :class:`limits.dmft.Exact`),
:func:`limits.solve_kernel` for a kernel-regime one (``limit_method``: a :class:`limits.kernels.KernelGD`). A table
without such a limit (Adam tables, unstable tables) is an error with ``limit=True``; pass ``limit=False``.

:func:`depth_transfer` (or ``transfer(..., depths=[...])``) also sweeps depth (residual blocks L of ResNet tables,
hidden layers of MLPs) and fits ``lr*(L) ~ L^k`` at each width (:class:`DepthTransferResult`): ``k ~ 0`` for
1/sqrt(L) branches (``"depth-mup"``, Bordelon et al. 2023; TP6), ``k < 0`` for plain ResNets (``"resnet"``).

Disk cache: ``cache_dir=None`` (default) stores nothing. ``cache_dir=path`` keeps every point as a verified JSON
entry in that folder, keyed by everything that determines it (the table, width, depth, learning rate, data,
activation, steps, seeds, seed, the options objects and the package version; see :mod:`limits.analysis._cache`), so
an interrupted sweep resumes where it stopped. Damaged entries are recomputed (with a warning); a folder that cannot
be written is an error before anything is computed; a callable activation whose captured values cannot be keyed
safely (an object with state, a closure over arbitrary objects) is an error with ``cache_dir`` given (run it with
``cache_dir=None``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from .. import checks
from ..parametrization import Parametrization, entry_table, resolve
from . import _cache
from .fits import PowerLawFit, fit_power_law

__all__ = ["transfer", "depth_transfer", "TransferResult", "DepthTransferResult", "optimal_lr", "plot_depth_curves"]

_CACHE_VERSION = "transfer-v2"
_DEFAULT_LRS = np.geomspace(1e-3, 10, 13)
METRICS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """Loss grid ``losses`` (W, R) over ``widths`` x ``lrs``; ``optima`` (W,) optimal lr per width.

    ``at_edge`` (W,) flags optima taken at a grid edge or next to divergence;
    ``fit`` is ``lr* ~ n^k`` (None with < 2 usable widths); ``limit_losses`` (R,)
    the infinite-width curve or None; ``curves[w]`` (R, steps+1) loss curves.
    ``n_computed``/``n_cached`` count points computed now / read from the cache.
    """

    widths: np.ndarray
    lrs: np.ndarray
    losses: np.ndarray
    optima: np.ndarray
    at_edge: np.ndarray
    fit: PowerLawFit | None
    limit_losses: np.ndarray | None
    limit_optimum: float | None
    curves: Mapping[int, np.ndarray]
    n_computed: int
    n_cached: int
    meta: Mapping[str, Any]

    @property
    def exponent(self) -> float:
        """Fitted width exponent of the optimal learning rate (NaN if not fitted)."""
        return self.fit.exponent if self.fit is not None else float("nan")

    @property
    def dataset(self):
        """The sweep as an ``xarray.Dataset``: ``loss`` (width, lr), ``curve`` (width, lr, step), ``optimum`` and
        ``at_edge`` (width), and ``limit_loss`` (lr) when the limit was solved."""
        import xarray as xr

        data = {"loss": (("width", "lr"), self.losses),
                "curve": (("width", "lr", "step"), np.stack([self.curves[int(w)] for w in self.widths])),
                "optimum": (("width",), self.optima), "at_edge": (("width",), self.at_edge)}
        if self.limit_losses is not None:
            data["limit_loss"] = (("lr",), self.limit_losses)
        return xr.Dataset(data, coords={"width": self.widths, "lr": self.lrs})

    def table(self) -> str:
        m = self.meta
        lines = [
            f"lr transfer: {m['param']}, depth {m['depth']}, {m['activation']}, {m['optimizer']}, {m['steps']} steps, "
            f"{m['seeds']} seeds, metric={m['metric']} (final loss; inf = diverged)",
            f"{'lr':>10}" + "".join(f"{'n=' + str(int(w)):>11}" for w in self.widths)
            + (f"{'n=inf':>11}" if self.limit_losses is not None else ""),
        ]
        for j, lr in enumerate(self.lrs):
            row = f"{lr:>10.4g}" + "".join(f"{self.losses[i, j]:>11.3e}" for i in range(len(self.widths)))
            if self.limit_losses is not None:
                row += f"{self.limit_losses[j]:>11.3e}"
            lines.append(row)
        opt = "".join(f"{v:>10.4g}{'*' if e else ' '}" for v, e in zip(self.optima, self.at_edge))
        lines.append(f"{'lr*':>10}{opt}" + (f"{self.limit_optimum:>11.4g}" if self.limit_optimum is not None else ""))
        lines.append(
            f"optimal-lr width exponent: {self.fit if self.fit else 'n/a'}   (* = grid edge or next to divergence)"
        )
        if m.get("limit_note"):
            lines.append(f"limit: {m['limit_note']}")
        return "\n".join(lines)

    def plot(self, path, *, title: str = ""):
        """Left: loss vs lr per width (limit dashed black); right: lr* vs width with the fit."""
        from .. import plotting

        fig, axes = plotting.new_figure(ncols=2)
        ax = axes[0, 0]
        colors = {}
        for i, w in enumerate(self.widths):
            line = ax.plot(self.lrs, np.where(np.isfinite(self.losses[i]), self.losses[i], np.nan), "o-", ms=3,
                           label=f"n={int(w)}")[0]
            colors[int(w)] = line.get_color()
            ax.axvline(self.optima[i], color=line.get_color(), lw=0.7, ls=":")
        if self.limit_losses is not None:
            ax.plot(self.lrs, self.limit_losses, "k--", label="n=inf")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plotting.finish(ax, "learning rate", f"{self.meta['metric']} loss after {self.meta['steps']} steps", self.meta["param"])
        ax = axes[0, 1]
        ok = np.isfinite(self.optima)
        plotting.loglog_fit(ax, self.widths[ok], self.optima[ok], None, self.fit, label="lr*")
        plotting.finish(ax, "width n", "optimal learning rate", "optimum vs width")
        plotting.widths_ticks(ax, self.widths)
        if title:
            fig.suptitle(title)
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


@dataclasses.dataclass(frozen=True)
class DepthTransferResult:
    """Loss grid over ``depths`` x ``widths`` x ``lrs``: ``losses`` (Dp, W, R), ``optima`` (Dp, W).

    ``at_edge`` (Dp, W) flags optima at a grid edge or next to divergence;
    ``fits[i]`` is ``lr* ~ L^k`` at ``widths[i]`` (None with < 2 usable depths);
    ``per_depth[L]`` the width sweep (:class:`TransferResult`) at depth ``L``.
    """

    depths: np.ndarray
    widths: np.ndarray
    lrs: np.ndarray
    losses: np.ndarray
    optima: np.ndarray
    at_edge: np.ndarray
    fits: tuple
    per_depth: Mapping[int, TransferResult]
    meta: Mapping[str, Any]

    @property
    def fit(self) -> PowerLawFit | None:
        """Depth fit at the largest width."""
        return self.fits[-1]

    @property
    def exponent(self) -> float:
        """Fitted depth exponent of the optimal learning rate at the largest width (NaN if not fitted)."""
        return self.fit.exponent if self.fit is not None else float("nan")

    @property
    def n_computed(self) -> int:
        return sum(r.n_computed for r in self.per_depth.values())

    @property
    def n_cached(self) -> int:
        return sum(r.n_cached for r in self.per_depth.values())

    def table(self) -> str:
        m = self.meta
        lines = [
            f"depthwise lr transfer: {m['param']}, {m['activation']}, {m['optimizer']}, {m['steps']} steps, "
            f"{m['seeds']} seeds, metric={m['metric']} (final loss; inf = diverged)"
        ]
        for i, w in enumerate(self.widths):
            lines.append(f"width n={int(w)}")
            lines.append(f"{'lr':>10}" + "".join(f"{'L=' + str(int(d)):>11}" for d in self.depths))
            for j, lr in enumerate(self.lrs):
                lines.append(f"{lr:>10.4g}" + "".join(f"{self.losses[k, i, j]:>11.3e}" for k in range(len(self.depths))))
            lines.append(f"{'lr*':>10}" + "".join(f"{v:>10.4g}{'*' if e else ' '}" for v, e in zip(self.optima[:, i], self.at_edge[:, i])))
            lines.append(f"optimal-lr depth exponent: {self.fits[i] if self.fits[i] else 'n/a'}   (* = grid edge or next to divergence)")
        return "\n".join(lines)

    def plot(self, path, *, title: str = "", width: int | None = None):
        """Left: loss vs lr per depth at ``width`` (default the largest); right: lr* vs depth with the fits."""
        from .. import plotting

        if width is not None and width not in self.widths:
            raise ValueError(f"width={width!r} was not swept; choose one of {[int(w) for w in self.widths]}")
        i = len(self.widths) - 1 if width is None else int(np.flatnonzero(self.widths == width)[0])
        fig, axes = plotting.new_figure(ncols=2)
        plot_depth_curves(axes[0, 0], self, i)
        plotting.finish(axes[0, 0], "learning rate", f"{self.meta['metric']} loss after {self.meta['steps']} steps",
                        f"{self.meta['param']}, n={int(self.widths[i])}")
        ax = axes[0, 1]
        for k, w in enumerate(self.widths):
            ok = np.isfinite(self.optima[:, k])
            plotting.loglog_fit(ax, self.depths[ok], self.optima[ok, k], None, self.fits[k], label=f"n={int(w)}")
        plotting.finish(ax, "depth L", "optimal learning rate", "optimum vs depth")
        plotting.widths_ticks(ax, self.depths)
        if title:
            fig.suptitle(title)
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


def plot_depth_curves(ax, result: DepthTransferResult, width_index: int = -1, *, cmap: str = "viridis") -> None:
    """Loss vs lr on log-log axes, one line per depth (colour = depth), optima marked with dotted lines."""
    from matplotlib import colormaps

    colors = colormaps[cmap](np.linspace(0.0, 0.9, len(result.depths)))
    for k, d in enumerate(result.depths):
        row = result.losses[k, width_index]
        ax.plot(result.lrs, np.where(np.isfinite(row), row, np.nan), "o-", ms=3, color=colors[k], label=f"L={int(d)}")
        ax.axvline(result.optima[k, width_index], color=colors[k], lw=0.7, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")


def optimal_lr(lrs, losses) -> tuple[float, bool]:
    """Optimal ``lr`` from a loss grid: parabola vertex in (log lr, log loss) around the best point.

    Returns ``(lr*, at_edge)``; ``at_edge`` when the best point has no finite
    neighbour on one side (grid edge or divergence). NaN if no point is finite.
    """
    lrs = np.asarray(lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if lrs.ndim != 1 or lrs.shape != losses.shape:
        raise ValueError(f"lrs and losses must be 1-D of the same length, got shapes {lrs.shape} and {losses.shape}")
    ok = np.isfinite(losses) & (losses > 0)
    if not ok.any():
        return float("nan"), True
    i = int(np.argmin(np.where(ok, losses, np.inf)))
    if i == 0 or i == len(lrs) - 1 or not (ok[i - 1] and ok[i + 1]):
        return float(lrs[i]), True
    u = np.log(lrs[i - 1 : i + 2])
    v = np.log(losses[i - 1 : i + 2])
    a, b, _ = np.polyfit(u, v, 2)
    if a <= 0:
        return float(lrs[i]), False
    vertex = float(np.clip(-b / (2 * a), u[0], u[2]))
    return float(np.exp(vertex)), False


# ----------------------------------------------------------------------------- validation
def _check_widths(widths, minimum: int) -> list[int]:
    """Sorted distinct positive integer widths, at least ``minimum`` of them."""
    items = checks.sequence(widths, "widths", "(64, 128, 256)")
    ws = [checks.width(w, f"widths[{i}]", infinite=False) for i, w in enumerate(items)]
    checks.distinct(ws, "widths")
    if len(ws) < minimum:
        raise ValueError(f"widths needs at least {minimum} widths to fit lr* ~ n^k, got {ws}; add widths (e.g. "
                         f"widths=({ws[0]}, {2 * ws[0]})), or use depth_transfer for one width")
    return sorted(ws)


def _check_lrs(lrs) -> np.ndarray:
    """Sorted distinct positive finite learning rates (default ``geomspace(1e-3, 10, 13)``)."""
    if lrs is None:
        return _DEFAULT_LRS.copy()
    items = checks.sequence(lrs, "lrs", "np.geomspace(0.01, 10, 13)")
    grid = [checks.positive(v, f"lrs[{i}]") for i, v in enumerate(items)]
    checks.distinct(grid, "lrs")
    return np.array(sorted(grid))


def _check_depths(depths) -> list[int]:
    """Sorted distinct depths >= 1, at least two (the fit of lr* ~ L^k)."""
    items = checks.sequence(depths, "depths", "[4, 8, 16, 32]")
    ds = [checks.integer(d, f"depths[{i}]", 1) for i, d in enumerate(items)]
    checks.distinct(ds, "depths")
    if len(ds) < 2:
        raise ValueError(f"depths needs at least 2 depths to fit lr* ~ L^k, got {ds}; for one depth use transfer(param, "
                         f"depth={ds[0]}, ...)")
    return sorted(ds)


def _reject_with_table(gamma0, optimizer, what: str) -> None:
    for name, value in (("gamma0", gamma0), ("optimizer", optimizer)):
        if value is not None:
            raise checks.inapplicable(name, f"{what} carries its own constants and optimizer (build it with "
                                            f"limits.param(name, depth, {name}=...))")


def _table(param, depth, gamma0, optimizer) -> Parametrization:
    """The table to sweep (:func:`limits.parametrization.entry_table`); a callable ``param`` goes with depths=."""
    if callable(param) and not isinstance(param, (str, Parametrization)):
        raise checks.ArgumentTypeError(f"param must be a preset name or a limits.Parametrization, got {param!r} "
                                       "(a callable depth -> Parametrization goes with depths=[...])")
    return entry_table(param, depth, gamma0=gamma0, optimizer=optimizer)[0]


def _depth_table(param, depth: int, gamma0, optimizer) -> Parametrization:
    """The table at one depth of a depth sweep: a preset name or a callable ``depth -> Parametrization``."""
    if isinstance(param, Parametrization):
        raise ValueError(f"a Parametrization has a fixed depth ({param.depth}); for a depth sweep pass a preset name or "
                         "a callable depth -> Parametrization")
    if isinstance(param, str):
        return _table(param, depth, gamma0, optimizer)
    if not callable(param):
        raise checks.ArgumentTypeError(f"param must be a preset name or a callable depth -> Parametrization, got "
                                       f"{param!r}")
    _reject_with_table(gamma0, optimizer, "a callable depth -> Parametrization")
    table = param(depth)
    if not isinstance(table, Parametrization):
        raise checks.ArgumentTypeError(f"param({depth}) must return a limits.Parametrization, got {table!r}")
    return resolve(table, depth)


def _data_arrays(X, y, X_test, y_test, metric: str) -> tuple:
    """``(X, y, X_test, y_test)`` checked; neither X nor y: ``limits.datasets.teacher()`` with its test set."""
    X, y, X_test, y_test = checks.default_data(X, y, X_test, y_test, with_test=True)
    if metric == "test" and y_test is None:
        raise ValueError("metric='test' needs X_test and y_test (test inputs and targets)")
    return X, y, X_test, y_test


def _activation_key(activation, caching: bool) -> str:
    """The cache key of the activation; an activation that cannot be keyed is an error only when caching."""
    try:
        return _cache.activation_key(activation)
    except _cache.Unkeyable as exc:
        if caching:
            raise ValueError(f"the activation cannot be keyed for the disk cache: {exc}. Pass cache_dir=None to run "
                             "without the cache, or an activation whose captured values are numbers or arrays") from None
        return f"custom:{getattr(activation, '__qualname__', type(activation).__name__)}:unkeyed"


@dataclasses.dataclass(frozen=True)
class _Common:
    """Everything a width sweep needs besides the table, validated once (shared by every depth of a depth sweep)."""

    widths: list
    grid: np.ndarray
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    data: str
    activation: Any
    act_key: str
    steps: int
    seeds: int
    seed: int
    metric: str
    limit: bool
    limit_method: Any
    method: Any
    folder: Path | None
    cache: _cache.Cache
    confidence: float
    progress: bool

    def opened(self) -> "_Common":
        """With the cache folder created and probed for writing (after every check, before any compute)."""
        return dataclasses.replace(self, cache=_cache.Cache(self.folder))


def _common(widths, lrs, *, min_widths, X, y, activation, steps, X_test, y_test, seed, seeds, metric, limit,
            limit_method, method, cache_dir, confidence, progress) -> _Common:
    from ..dmft import Exact, MonteCarlo
    from ..finite import Simulation
    from ..kernels import KernelGD

    metric = checks.choice(metric, "metric", METRICS)
    X, y, X_test, y_test = _data_arrays(X, y, X_test, y_test, metric)
    _activations.get(activation)  # an unknown name is an error here, not in the first solve
    limit = checks.boolean(limit, "limit")
    limit_method = checks.option(limit_method, "limit_method", (MonteCarlo, Exact, KernelGD))
    if not limit and limit_method is not None:
        raise checks.inapplicable("limit_method", "limit=False draws no infinite-width curve")
    if method is not None and getattr(method, "record_steps", None) is not None:
        raise ValueError("method: Simulation(record_steps=...) does not apply to transfer (a sweep records only the "
                         "losses); drop record_steps")
    folder = _cache.folder(cache_dir)
    act_key = _activation_key(activation, folder is not None)
    return _Common(
        widths=_check_widths(widths, min_widths), grid=_check_lrs(lrs), X=X, y=y, X_test=X_test, y_test=y_test,
        data=checks.fingerprint(X, y, X_test, y_test), activation=activation, act_key=act_key,
        steps=checks.integer(steps, "steps", 1), seeds=checks.integer(seeds, "seeds", 1),
        seed=0 if seed is None else checks.seed(seed), metric=metric, limit=limit, limit_method=limit_method,
        method=checks.option(method, "method", Simulation), folder=folder, cache=_cache.Cache(None),
        confidence=checks.open_unit(confidence, "confidence"), progress=checks.boolean(progress, "progress"))


# ----------------------------------------------------------------------------- the infinite-width curve
@dataclasses.dataclass(frozen=True)
class _Limit:
    """How the infinite-width curve of a table is solved: ``solver`` ``"dmft"``, ``"kernel"`` or None (no curve)."""

    solver: str | None
    method: Any
    note: str


def _limit_plan(p: Parametrization, c: _Common) -> _Limit:
    """The limit solver of ``p``'s regime with ``limit_method`` checked against it; an error where none exists."""
    from ..kernels import KernelGD

    if not c.limit:
        return _Limit(None, None, "not requested (limit=False)")
    if p.optimizer != "sgd":
        raise ValueError(f"limit=True: table {p.name!r} trains with {p.optimizer!r}, and the infinite-width solvers "
                         "(DMFT, kernel gradient descent) model full-batch SGD; pass limit=False")
    regime = p.classify().regime
    if regime == "unstable":
        raise ValueError(f"limit=True: table {p.name!r} at depth {p.depth} is unstable and has no infinite-width limit; "
                         "pass limit=False")
    if regime == "feature_learning":
        if isinstance(c.limit_method, KernelGD):
            raise ValueError(f"limit_method={c.limit_method!r} is kernel gradient descent, but {p.name!r} is in the "
                             "feature-learning regime (its limit is the DMFT): pass limits.dmft.MonteCarlo(...) or "
                             "limits.dmft.Exact(...), or None")
        p.dmft_limit()  # what the DMFT does not model is an error before anything runs
        return _Limit("dmft", c.limit_method, "feature-learning limit from limits.solve_dmft")
    if c.limit_method is not None and not isinstance(c.limit_method, KernelGD):
        raise ValueError(f"limit_method={c.limit_method!r} solves the DMFT, but {p.name!r} is in the {regime!r} regime "
                         "(its limit is kernel gradient descent): pass limits.kernels.KernelGD(...), or None")
    p.kernel_limit()
    return _Limit("kernel", c.limit_method, f"{regime} limit from limits.solve_kernel")


def _solve_limit(p: Parametrization, plan: _Limit, c: _Common, lr: float):
    from ..dmft import solve_dmft
    from ..kernels import solve_kernel

    solver = solve_dmft if plan.solver == "dmft" else solve_kernel
    return solver(p, p.depth, X=c.X, y=c.y, activation=c.activation, lr=lr, steps=c.steps, X_test=c.X_test,
                  y_test=c.y_test, record=(), progress=False, method=plan.method)


def _simulate(p: Parametrization, c: _Common, width: int, lr: float):
    from ..finite import simulate

    return simulate(p, p.depth, width, X=c.X, y=c.y, activation=c.activation, lr=lr, steps=c.steps, X_test=c.X_test,
                    y_test=c.y_test, seed=c.seed, seeds=c.seeds, record=(), progress=False, method=c.method)


# ----------------------------------------------------------------------------- one width sweep
def _settings(p: Parametrization, plan: _Limit, c: _Common) -> tuple[dict, dict]:
    """Cache settings shared by the finite points and by the limit points of this table."""
    from .. import __version__
    from ..finite import Simulation

    base = {"version": _CACHE_VERSION, "limits": __version__, "table": repr(p), **_cache.update_rule(p), "depth": p.depth,
            "activation": c.act_key, "steps": c.steps, "data": c.data}
    # None is the default options; seed_batch only groups the networks into vmapped batches (results do not
    # depend on it)
    options = dataclasses.replace(c.method or Simulation(), seed_batch=None)
    finite = {**base, "kind": "finite", "seeds": c.seeds, "seed": c.seed, "method": repr(options)}
    limit = {**base, "kind": "limit", "solver": plan.solver, "method": repr(plan.method)}
    return finite, limit


def _jobs(p: Parametrization, plan: _Limit, c: _Common) -> list:
    """``(row, column, settings, thunk)`` per point; the limit (row -1) first, so its errors come before the sweep."""
    finite, limit = _settings(p, plan, c)
    jobs = []
    if plan.solver is not None:
        for j, lr in enumerate(c.grid):
            jobs.append((-1, j, {**limit, "lr": float(lr)}, lambda lr=float(lr): _solve_limit(p, plan, c, lr)))
    for i, w in enumerate(c.widths):
        for j, lr in enumerate(c.grid):
            jobs.append((i, j, {**finite, "width": w, "lr": float(lr)}, lambda w=w, lr=float(lr): _simulate(p, c, w, lr)))
    return jobs


def _run_point(fn: Callable[[], Any]) -> dict:
    """Run one simulation or solve; a divergence becomes an infinite loss (other errors are recorded by the sweep)."""
    from ..finite import SimulationDiverged

    try:
        traj = fn()
    except (SimulationDiverged, FloatingPointError) as exc:
        return {"loss": math.inf, "test_loss": math.inf, "diverged_step": getattr(exc, "step", None), "curve": None}
    loss = np.asarray(traj.loss, dtype=float)
    test = None if traj.test_loss is None else float(np.asarray(traj.test_loss)[-1])
    final = float(loss[-1]) if np.isfinite(loss[-1]) else math.inf
    if test is not None and not math.isfinite(test):
        test = math.inf
    return {"loss": final, "test_loss": test, "diverged_step": None, "curve": loss.tolist()}


def _run(jobs: list, c: _Common, desc: str, client) -> tuple[dict, int, int]:
    """Records by ``(row, column)``, read from the cache or computed (here or on ``client``) and stored; counts
    computed / cached (:func:`limits.sweeps.run_tasks`)."""
    from .. import sweeps

    # one group per row (a width, or the limit): its points differ only in the learning rate, a traced argument
    tasks = [sweeps.Task(settings, functools.partial(_run_point, thunk), group=[desc, i])
             for i, _, settings, thunk in jobs]
    out = sweeps.run_tasks(tasks, cache=c.cache, client=client, progress=c.progress, desc=desc)
    return {(i, j): record for (i, j, _, _), record in zip(jobs, out.records)}, out.computed, out.cached


def _losses(records: dict, row: int, c: _Common) -> np.ndarray:
    field = "test_loss" if c.metric == "test" else "loss"
    return np.array([_loss(records[(row, j)], field) for j in range(c.grid.size)])


def _loss(record: dict, field: str) -> float:
    """The final loss of a point: inf where it diverged, NaN where it raised (status "error")."""
    if record.get("status", "ok") == "error":
        return math.nan
    return math.inf if record.get(field) is None else float(record[field])


def _fit(x, optima: np.ndarray, confidence: float) -> PowerLawFit | None:
    ok = np.isfinite(optima)
    if ok.sum() < 2:
        return None
    try:
        return fit_power_law(np.asarray(x, dtype=float)[ok], optima[ok], confidence=confidence)
    except ValueError:
        return None


def _result(p: Parametrization, plan: _Limit, c: _Common, records: dict, computed: int, cached: int) -> TransferResult:
    losses = np.stack([_losses(records, i, c) for i in range(len(c.widths))])
    nan_curve = np.full(c.steps + 1, np.nan)
    curves = {w: np.stack([nan_curve if records[(i, j)].get("curve") is None else np.asarray(records[(i, j)]["curve"])
                           for j in range(c.grid.size)]) for i, w in enumerate(c.widths)}
    optima, edges = (np.array(v) for v in zip(*(optimal_lr(c.grid, row) for row in losses)))
    limit_losses = _losses(records, -1, c) if plan.solver is not None else None
    limit_opt = optimal_lr(c.grid, limit_losses)[0] if limit_losses is not None else None
    meta = {
        "param": p.name, "depth": p.depth, "activation": c.act_key, "optimizer": p.optimizer, "steps": c.steps,
        "seeds": c.seeds, "seed": c.seed, "metric": c.metric, "gamma0": None, "data": c.data,
        "method": repr(c.method), "limit_method": repr(plan.method), "limit_note": plan.note,
        "cache_dir": None if c.cache.folder is None else str(c.cache.folder), "cache_damaged": len(c.cache.corrupted),
    }
    return TransferResult(np.array(c.widths), c.grid, losses, optima, edges, _fit(c.widths, optima, c.confidence),
                          limit_losses, limit_opt, curves, computed, cached, meta)


def _sweep(p: Parametrization, plan: _Limit, c: _Common, gamma0, client) -> TransferResult:
    """One table: every (width, lr) point and the limit curve, then the optima and the width fit."""
    damaged = len(c.cache.corrupted)
    records, computed, cached = _run(_jobs(p, plan, c), c, f"transfer {p.name}, depth {p.depth}", client)
    if len(c.cache.corrupted) > damaged:
        warnings.warn(f"{len(c.cache.corrupted) - damaged} damaged cache entries in {c.cache.folder} (unreadable, "
                      "wrong key or checksum) were recomputed and rewritten", RuntimeWarning, stacklevel=3)
    errors = [(key, r["error"]) for key, r in records.items() if r.get("status") == "error"]
    if errors:
        (row, col), message = errors[0]
        where = "the limit" if row < 0 else f"width {c.widths[row]}"
        warnings.warn(f"{len(errors)} transfer points raised (NaN loss, not cached; a rerun retries them); e.g. "
                      f"{where} at lr={c.grid[col]:g}: {message}", RuntimeWarning, stacklevel=3)
    result = _result(p, plan, c, records, computed, cached)
    return dataclasses.replace(result, meta={**result.meta, "gamma0": gamma0})


# ----------------------------------------------------------------------------- entry points
def transfer(
    param: str | Parametrization = "mup",
    depth: int | None = None,
    widths: Sequence[int] = (64, 128, 256, 512),
    lrs: Sequence[float] | None = None,
    *,
    X=None,
    y=None,
    activation: str | Callable = "tanh",
    gamma0: float | None = None,
    optimizer: str | None = None,
    steps: int = 50,
    X_test=None,
    y_test=None,
    seed: int | None = None,
    seeds: int = 4,
    metric: str = "train",
    depths: Sequence[int] | None = None,
    limit: bool = True,
    limit_method=None,
    cache_dir: str | os.PathLike | None = None,
    confidence: float = 0.95,
    progress: bool = True,
    method=None,
    client=None,
    weight_decays: Sequence[float] | None = None,
):
    """Sweep ``lrs`` x ``widths``: the optimal learning rate per width and its fitted width exponent.

    Args:
        param, depth: preset name (at ``depth``, 1 when None; with ``gamma0``, ``optimizer``) or a
            :class:`limits.Parametrization` (``depth`` None or its own; ``gamma0``/``optimizer`` rejected).
        widths: at least two distinct positive integer widths (sorted in the result).
        lrs: distinct positive learning rates; None: ``geomspace(1e-3, 10, 13)``.
        X, y, X_test, y_test: data; X and y both None: ``limits.datasets.teacher()`` with its test set.
        activation: name or callable. steps: gradient steps (default 50). seeds: networks per point (default 4).
        seed: seed of the networks (None: 0); the limit's Monte Carlo uses its own default seed.
        metric: ``"train"`` or ``"test"`` final loss.
        depths: a depth sweep instead: returns :func:`depth_transfer`'s :class:`DepthTransferResult` (``depth`` must
            then be None); typed code should call :func:`depth_transfer` directly.
        limit: also solve the infinite-width limit at each lr (an error for tables without one: pass False).
        limit_method: options of the limit solver: :class:`limits.dmft.MonteCarlo` / :class:`limits.dmft.Exact`
            (feature-learning tables) or :class:`limits.kernels.KernelGD` (kernel regime); the other kind is an error.
        cache_dir: None (no disk cache) or a folder for verified, atomically written point entries (see the module
            docstring); a callable activation that cannot be keyed safely is then an error.
        confidence: level of the fit's interval, in (0, 1). progress: a progress bar over the points.
        method: :class:`limits.finite.Simulation`, the options of the networks.
        client: where the points run (:func:`limits.sweep`): None (this process, one after another), a
            ``dask.distributed.Client`` (e.g. ``limits.local_cluster(2)``) or a scheduler address. Results and cache
            entries are the same either way.
        weight_decays: a joint (lr, weight decay) sweep of an AdamW/Muon table instead: returns
            :func:`limits.analysis.decay_transfer.decay_transfer`'s ``DecayTransferResult`` (``param``: a preset
            name or a callable ``weight_decay -> Parametrization``; ``limit`` must be False).

    Returns:
        :class:`TransferResult` (``losses`` (W, R), ``optima``, ``fit``, ``limit_losses``, ``curves``, counts of
        points computed and read from the cache); a :class:`DepthTransferResult` with ``depths``.
    """
    if weight_decays is not None:
        if limit:
            raise ValueError("weight_decays= sweeps networks only (the package solves no limit of AdamW or Muon): "
                             "pass limit=False")
        from .decay_transfer import decay_transfer

        return decay_transfer(param, depth, widths, lrs, weight_decays, gamma0=gamma0, optimizer=optimizer,
                              metric=metric, confidence=confidence, progress=progress, X=X, y=y,
                              activation=activation, steps=steps, X_test=X_test, y_test=y_test, seed=seed,
                              seeds=seeds, depths=depths, limit_method=limit_method, cache_dir=cache_dir,
                              method=method, client=client)
    if depths is not None:
        if depth is not None:
            raise ValueError(f"depth={depth!r} with depths={depths!r}: a depth sweep takes its depths from depths=; "
                             "pass depth=None")
        return depth_transfer(param, depths, widths, lrs, X=X, y=y, activation=activation, gamma0=gamma0,
                              optimizer=optimizer, steps=steps, X_test=X_test, y_test=y_test, seed=seed, seeds=seeds,
                              metric=metric, limit=limit, limit_method=limit_method, method=method, cache_dir=cache_dir,
                              confidence=confidence, progress=progress, client=client)
    p = _table(param, depth, gamma0, optimizer)
    c = _common(widths, lrs, min_widths=2, X=X, y=y, activation=activation, steps=steps, X_test=X_test, y_test=y_test,
                seed=seed, seeds=seeds, metric=metric, limit=limit, limit_method=limit_method, method=method,
                cache_dir=cache_dir, confidence=confidence, progress=progress)
    plan = _limit_plan(p, c)
    g0 = None if isinstance(param, Parametrization) else (1.0 if gamma0 is None else gamma0)
    from .. import sweeps

    with sweeps.connected(client) as engine:
        return _sweep(p, plan, c.opened(), g0, engine)


def depth_transfer(
    param: str | Callable[[int], Parametrization] = "depth-mup",
    depths: Sequence[int] = (4, 8, 16, 32),
    widths: Sequence[int] = (64,),
    lrs: Sequence[float] | None = None,
    *,
    X=None,
    y=None,
    activation: str | Callable = "tanh",
    gamma0: float | None = None,
    optimizer: str | None = None,
    steps: int = 50,
    X_test=None,
    y_test=None,
    seed: int | None = None,
    seeds: int = 4,
    metric: str = "train",
    limit: bool = True,
    limit_method=None,
    cache_dir: str | os.PathLike | None = None,
    confidence: float = 0.95,
    progress: bool = True,
    method=None,
    client=None,
) -> DepthTransferResult:
    """:func:`transfer` at each of ``depths`` (at least two distinct depths >= 1) and ``lr*(L) ~ L^k`` per width.

    Every table is checked (including ``limit=True`` against its regime) before anything runs. E.g.
    ``depth_transfer("depth-mup", [4, 16, 64], [64], lrs, limit=False)``.

    Args:
        param: a preset name (default ``"depth-mup"``; resolved at each depth with ``gamma0``, ``optimizer``) or a
            callable ``depth -> Parametrization`` (``gamma0``/``optimizer`` then rejected); a single
            :class:`limits.Parametrization` has a fixed depth and is a ``ValueError``.
        depths: at least two distinct integer depths >= 1 (residual blocks L, or hidden layers of an MLP preset),
            default ``(4, 8, 16, 32)``; sorted in the result.
        widths: one or more distinct positive integer widths (default ``(64,)``); sorted in the result.
        lrs: distinct positive learning rates (R of them); None: ``geomspace(1e-3, 10, 13)``.
        X, y: (P, D) train inputs and (P,) targets; both None: :func:`limits.datasets.teacher` with its test set.
        X_test, y_test: (Q, D) test inputs and (Q,) targets, or None.
        activation: name or callable (default ``"tanh"``).
        gamma0: richness of a preset (None: 1.0). optimizer: ``"sgd"`` or ``"adam"`` for a preset (None: ``"sgd"``).
        steps: gradient steps per run (default 50). seeds: networks per point (default 4).
        seed: seed of the networks (None: 0).
        metric: ``"train"`` (default) or ``"test"`` final loss (``"test"`` needs ``X_test`` and ``y_test``).
        limit: also solve the infinite-width limit at each lr (default True; an error for tables without one).
        limit_method: options of the limit solver, as in :func:`transfer` (None: the solver's default).
        cache_dir: None (no disk cache, default) or a folder for the verified point entries.
        confidence: level of each fit's interval, in (0, 1) (default 0.95).
        progress: a progress bar over the points.
        method: :class:`limits.finite.Simulation`, the options of the networks (None: the defaults).
        client: where the points run, as in :func:`transfer` (None: this process).

    Returns:
        :class:`DepthTransferResult`: ``depths`` (Dp,), ``widths`` (W,), ``lrs`` (R,), ``losses`` (Dp, W, R)
        seed-mean final losses (inf = diverged), ``optima`` (Dp, W) and ``at_edge`` (Dp, W), ``fits`` (W,) of
        ``lr* ~ L^k`` per width (None with < 2 usable depths), ``per_depth[L]`` the :class:`TransferResult` of
        each depth, and ``meta``. Invalid arguments raise ``ValueError`` or ``TypeError`` naming the argument.
    """
    ds = _check_depths(depths)
    tables = [_depth_table(param, d, gamma0, optimizer) for d in ds]
    c = _common(widths, lrs, min_widths=1, X=X, y=y, activation=activation, steps=steps, X_test=X_test, y_test=y_test,
                seed=seed, seeds=seeds, metric=metric, limit=limit, limit_method=limit_method, method=method,
                cache_dir=cache_dir, confidence=confidence, progress=progress)
    plans = [_limit_plan(p, c) for p in tables]
    c = c.opened()
    g0 = (1.0 if gamma0 is None else gamma0) if isinstance(param, str) else None
    from .. import sweeps

    with sweeps.connected(client) as engine:
        per = {d: _sweep(p, plan, c, g0, engine) for d, p, plan in zip(ds, tables, plans)}
    losses = np.stack([per[d].losses for d in ds])  # (Dp, W, R)
    optima = np.stack([per[d].optima for d in ds])
    edges = np.stack([per[d].at_edge for d in ds])
    fits = tuple(_fit(ds, optima[:, i], c.confidence) for i in range(len(c.widths)))
    meta = {k: v for k, v in per[ds[0]].meta.items() if k != "depth"}
    meta["depths"] = ds
    return DepthTransferResult(np.array(ds), np.array(c.widths), c.grid, losses, optima, edges, fits, per, meta)
