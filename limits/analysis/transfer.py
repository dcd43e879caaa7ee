r"""Learning-rate transfer across width and depth.

For every width ``n`` and learning rate ``lr`` the ensemble is trained for
``steps`` steps and scored by its seed-mean final loss (train, or test with
``metric="test"``). The optimal learning rate at each width is the vertex of a
parabola through the best grid point and its two neighbours in
``(log lr, log loss)``; at the edge of the grid (or next to a divergent point)
the grid value is used and flagged. ``lr*(n) ~ n^k`` is then fitted: ``k ~ 0``
means the parametrization transfers (mup), ``k < 0`` that the optimum shifts
(SP with c = 0: ``k ~ -1``).

Every point is cached on disk as a small JSON file keyed by a SHA-256 hash of
everything that determines it (numeric table at that width, optimizer, data,
activation, steps, seeds, seed, dtype), so an interrupted sweep resumes where it
stopped.

With ``depths=[...]`` the sweep also runs over depth (the number of residual
blocks L for ResNet tables, of hidden layers for MLPs) and ``lr*(L) ~ L^k`` is
fitted at each width (:class:`DepthTransferResult`): ``k ~ 0`` for
1/sqrt(L) branches (``"depth-mup"``, Bordelon et al. 2023; TP6), ``k < 0`` for
plain ResNets (``"resnet"``) whose residual stream and NTK grow with depth.

The infinite-width curve is added when a solver is importable
(``limits.dmft.solve_dmft`` for feature learning, ``limits.kernels.solve_kernel``
for the kernel regime); otherwise it is skipped with a note.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from .. import data as _data
from ..parametrization import Parametrization, resolve
from .fits import PowerLawFit, fit_power_law

__all__ = ["transfer", "TransferResult", "DepthTransferResult", "optimal_lr", "default_cache_dir"]

_CACHE_VERSION = "transfer-v1"


def default_cache_dir() -> Path:
    """``$LIMITS_CACHE/transfer`` or ``~/.cache/limits/transfer``."""
    return Path(os.environ.get("LIMITS_CACHE", Path.home() / ".cache" / "limits")) / "transfer"


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
        lines.append(f"{'lr*':>10}{opt}" + (f"{self.limit_optimum:>11.4g}" if self.limit_optimum else ""))
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


def _hash_array(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
        else:
            a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _activation_key(activation) -> str:
    act = _activations.get(activation)
    if act.name in _activations.NAMES and act is _activations.get(act.name):
        return act.name
    fn = act.fn
    code = getattr(fn, "__code__", None)
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16] if code else repr(fn)
    return f"custom:{getattr(fn, '__qualname__', 'fn')}:{digest}"


def _key(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _load(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a half-written or corrupt entry is recomputed


def _store(path: Path | None, record: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _run_point(fn: Callable[[], Any], lr: float) -> dict:
    """Run one simulation/solve; a divergence becomes an infinite loss."""
    from ..finite import SimulationDiverged

    try:
        traj = fn()
    except (SimulationDiverged, FloatingPointError) as exc:
        return {"loss": math.inf, "test_loss": math.inf, "diverged_step": getattr(exc, "step", None), "curve": None}
    loss = np.asarray(traj.loss, dtype=float)
    test = None if traj.test_loss is None else float(np.asarray(traj.test_loss)[-1])
    final = float(loss[-1]) if np.isfinite(loss[-1]) else math.inf
    return {"loss": final, "test_loss": test, "diverged_step": None, "curve": loss.tolist()}


def _limit_solver(p: Parametrization):
    """(callable, note) for the infinite-width solver of ``p``'s regime, or (None, why not)."""
    regime = p.classify().regime
    try:
        if regime == "feature_learning":
            from ..dmft import solve_dmft as solver
        elif regime == "kernel":
            from ..kernels import solve_kernel as solver
        else:
            return None, f"no infinite-width curve: the limit is {regime}"
    except (ImportError, AttributeError) as exc:
        return None, f"no infinite-width curve: solver unavailable ({exc})"
    return solver, f"{regime} limit from {solver.__module__}.{solver.__name__}"


def transfer(
    param: str | Parametrization | Callable[[int], Parametrization],
    depth: int | None,
    widths: Sequence[int] = (64, 128, 256, 512),
    lrs: Sequence[float] | None = None,
    *,
    depths: Sequence[int] | None = None,
    X=None,
    y=None,
    X_test=None,
    y_test=None,
    metric: str = "train",
    activation: str | Callable = "tanh",
    gamma0: float = 1.0,
    steps: int = 50,
    seeds: int = 4,
    optimizer: str | None = None,
    seed: int = 0,
    dtype: str = "float64",
    cache_dir: str | os.PathLike | None | bool = None,
    limit: bool = True,
    limit_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    confidence: float = 0.95,
) -> TransferResult:
    """Sweep ``lrs`` x ``widths``; optimal lr per width and its fitted width exponent.

    ``lrs`` defaults to ``geomspace(1e-3, 10, 13)``. ``cache_dir``: folder for the
    point cache (None: :func:`default_cache_dir`; False: no cache). ``limit``:
    also solve the infinite-width limit at each lr when a solver is importable
    (``limit_kwargs`` are passed to it, e.g. ``method=limits.dmft.MonteCarlo(samples=4096)``).

    ``depths``: also sweep depth (``depth`` must then be None or one of them);
    ``param`` is a preset name or a callable ``depth -> Parametrization``.
    Returns a :class:`DepthTransferResult` (optimal lr per depth and width, and
    ``lr* ~ L^k`` fitted at each width); e.g.
    ``transfer("depth-mup", None, [64], lrs, depths=[4, 8, 16, 32, 64])``.
    """
    from ..finite import simulate

    if depths is not None:
        kwargs = dict(X=X, y=y, X_test=X_test, y_test=y_test, metric=metric, activation=activation, gamma0=gamma0,
                      steps=steps, seeds=seeds, optimizer=optimizer, seed=seed, dtype=dtype, cache_dir=cache_dir,
                      limit=limit, limit_kwargs=limit_kwargs, progress=progress, confidence=confidence)
        return _depth_transfer(param, depth, depths, widths, lrs, kwargs)
    if callable(param) and not isinstance(param, (str, Parametrization)):
        param = param(depth)
    if depth is None:
        raise ValueError("depth is required (or give depths=[...] for a sweep over depth)")

    p = resolve(param, depth, gamma0=gamma0, optimizer=optimizer)
    ws = sorted({int(w) for w in widths})
    if not ws or any(w <= 0 for w in ws):
        raise ValueError(f"widths must be positive integers, got {list(widths)}")
    grid = np.geomspace(1e-3, 10, 13) if lrs is None else np.asarray(lrs, dtype=float).reshape(-1)
    if grid.size < 1 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"lrs must be positive finite numbers, got {lrs!r}")
    grid = np.unique(grid)
    if metric not in ("train", "test"):
        raise ValueError(f"metric must be 'train' or 'test', got {metric!r}")
    if X is None and y is None:
        ds = _data.teacher()
        X, y = ds.X, ds.y
        if X_test is None and y_test is None:
            X_test, y_test = ds.X_test, ds.y_test
    elif X is None or y is None:
        raise ValueError("give both X and y (or neither, for the default teacher dataset)")
    X, y, X_test = _data.validate(X, y, X_test)
    if metric == "test" and (X_test is None or y_test is None):
        raise ValueError("metric='test' needs X_test and y_test")
    if cache_dir is False:
        folder = None
    else:
        folder = Path(default_cache_dir() if cache_dir in (None, True) else cache_dir)
    act_key = _activation_key(activation)
    base = {
        "version": _CACHE_VERSION, "depth": depth, "optimizer": p.optimizer, "activation": act_key,
        "steps": int(steps), "seeds": int(seeds), "seed": int(seed), "dtype": dtype,
        "data": _hash_array(X, y, X_test, y_test),
    }
    sim_kw = dict(X=X, y=y, X_test=X_test, y_test=y_test, activation=activation, steps=steps, seeds=seeds,
                  seed=seed, dtype=dtype, record=(), progress=False)
    solver, limit_note = _limit_solver(p) if limit else (None, "not requested")

    jobs = []  # (row, j, settings, thunk)
    for i, w in enumerate(ws):
        net = p.instantiate(w, X.shape[1])
        table = {"multipliers": net.multipliers.tolist(), "init_stds": net.init_stds.tolist(), "lr_scales": net.lr_scales.tolist()}
        if net.residual:  # ResNets: the branch multiplier is part of the network (MLP keys unchanged)
            table["branch_multiplier"] = float(net.branch_multiplier)
        for j, lr in enumerate(grid):
            settings = {**base, **table, "kind": "finite", "width": w, "lr": float(lr)}
            jobs.append((i, j, settings, lambda w=w, lr=lr: simulate(p, depth, w, lr=float(lr), **sim_kw)))
    if solver is not None:
        lim_kw = dict(limit_kwargs or {})
        lim_settings = {**base, "kind": "limit", "table": p.table(), "gamma0": float(gamma0), "solver": limit_note,
                        "limit_kwargs": {k: repr(v) for k, v in lim_kw.items()}}
        offered = dict(X=X, y=y, X_test=X_test, y_test=y_test, activation=activation, steps=steps, progress=False, **lim_kw)
        accepted = inspect.signature(solver).parameters
        if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in accepted.values()):
            offered = {k: v for k, v in offered.items() if k in accepted}
        for j, lr in enumerate(grid):
            thunk = lambda lr=lr: solver(p, depth, lr=float(lr), **offered)
            jobs.append((-1, j, {**lim_settings, "lr": float(lr)}, thunk))

    results: dict[tuple[int, int], dict] = {}
    n_computed = n_cached = 0
    from tqdm.auto import tqdm

    limit_failed = None
    with tqdm(total=len(jobs), desc=f"transfer {p.name}", disable=not progress, leave=False) as bar:
        for i, j, settings, thunk in jobs:
            path = None if folder is None else folder / f"{_key(settings)}.json"
            record = _load(path)
            if record is None:
                if i == -1 and limit_failed:
                    bar.update(1)
                    continue
                try:
                    record = _run_point(thunk, float(grid[j]))
                except Exception as exc:  # noqa: BLE001 - another module's solver: report, don't crash the sweep
                    if i != -1:
                        raise
                    limit_failed = f"limit solver failed ({type(exc).__name__}: {exc})"
                    warnings.warn(limit_failed, RuntimeWarning, stacklevel=2)
                    bar.update(1)
                    continue
                record["settings"] = settings
                _store(path, record)
                n_computed += 1
            else:
                n_cached += 1
            results[(i, j)] = record
            bar.update(1)

    key = "test_loss" if metric == "test" else "loss"
    losses = np.full((len(ws), grid.size), np.nan)
    curves = {}
    for i, w in enumerate(ws):
        curve_rows = []
        for j in range(grid.size):
            rec = results[(i, j)]
            value = rec[key]
            losses[i, j] = math.inf if value is None else float(value)
            curve_rows.append(np.full(steps + 1, np.nan) if rec["curve"] is None else np.asarray(rec["curve"], dtype=float))
        curves[w] = np.stack(curve_rows)
    optima, edges = zip(*(optimal_lr(grid, row) for row in losses))
    optima, edges = np.array(optima), np.array(edges)
    fit = None
    usable = np.isfinite(optima)
    if usable.sum() >= 2:
        try:
            fit = fit_power_law(np.array(ws)[usable], optima[usable], confidence=confidence)
        except ValueError:
            fit = None
    limit_losses = limit_opt = None
    if solver is not None and not limit_failed and all((-1, j) in results for j in range(grid.size)):
        vals = [results[(-1, j)][key] for j in range(grid.size)]
        limit_losses = np.array([math.inf if v is None else float(v) for v in vals])
        limit_opt = optimal_lr(grid, limit_losses)[0]
    elif limit_failed:
        limit_note = limit_failed
    meta = {
        "param": p.name, "depth": depth, "activation": act_key, "optimizer": p.optimizer, "steps": int(steps),
        "seeds": int(seeds), "metric": metric, "gamma0": gamma0, "cache_dir": None if folder is None else str(folder),
        "limit_note": limit_note,
    }
    return TransferResult(np.array(ws), grid, losses, optima, edges, fit, limit_losses, limit_opt, curves,
                          n_computed, n_cached, meta)


def _check_depths(depths, depth) -> list[int]:
    values = list(np.atleast_1d(np.asarray(depths, dtype=object)).reshape(-1))
    if not values or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in values):
        raise ValueError(f"depths must be a non-empty list of integers >= 1, got {depths!r}")
    out = sorted({int(d) for d in values})
    if depth is not None and depth not in out:
        raise ValueError(f"depth={depth!r} is not one of depths={out}; pass depth=None with depths=[...]")
    return out


def _depth_table(param, depths: Sequence[int]) -> Callable[[int], Any]:
    """``depth -> table`` for a sweep: preset names and callables vary with depth, a fixed table cannot."""
    if isinstance(param, str):
        return lambda d: param
    if isinstance(param, Parametrization):
        if depths != [param.depth]:
            raise ValueError(
                f"a Parametrization has a fixed depth ({param.depth}); for depths={list(depths)} pass a preset "
                "name or a callable depth -> Parametrization"
            )
        return lambda d: param
    if callable(param):
        return param
    raise ValueError(f"param must be a preset name, a Parametrization or a callable depth -> Parametrization, "
                     f"got {type(param).__name__}")


def _depth_transfer(param, depth, depths, widths, lrs, kwargs) -> DepthTransferResult:
    """Run :func:`transfer` at each depth and fit ``lr*(L) ~ L^k`` per width."""
    ds = _check_depths(depths, depth)
    table = _depth_table(param, ds)
    per = {d: transfer(table(d), d, widths, lrs, **kwargs) for d in ds}
    first = per[ds[0]]
    losses = np.stack([per[d].losses for d in ds])  # (Dp, W, R)
    optima = np.stack([per[d].optima for d in ds])
    edges = np.stack([per[d].at_edge for d in ds])
    depth_arr = np.array(ds, dtype=float)
    fits = []
    for i in range(len(first.widths)):
        ok = np.isfinite(optima[:, i])
        try:
            fits.append(fit_power_law(depth_arr[ok], optima[ok, i], confidence=kwargs["confidence"]) if ok.sum() >= 2 else None)
        except ValueError:
            fits.append(None)
    meta = {**first.meta, "depths": ds, "param": first.meta["param"]}
    meta.pop("depth", None)
    return DepthTransferResult(np.array(ds), first.widths, first.lrs, losses, optima, edges, tuple(fits), per, meta)
