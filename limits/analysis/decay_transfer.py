r"""Joint transfer of the learning rate and the weight decay across width (AdamW, Muon).

:func:`decay_transfer` (or ``transfer(..., weight_decays=[...])``) runs :func:`limits.transfer` once per weight
decay ``lambda`` (each a cached, resumable sweep over ``widths x lrs``) and finds, per width, the optimum of the
(lr, lambda) grid: the best grid point, refined along each axis by the parabola of :func:`optimal_lr` in
(log x, log loss) through it and its neighbours. Then ``lr*(n) ~ n^k`` and ``lambda*(n) ~ n^k`` are fitted:
exponents near 0 mean the table's rule transfers both; a rule that does not shows a drifting optimum.

``param`` is a preset name (the weight decay goes to its matrix-like layers with the preset's width rule, see
:func:`limits.param`) or a callable ``lambda -> Parametrization`` for any other rule (e.g. a constant ``lambda``
in PyTorch units: ``d`` equal to the hidden layers' ``a``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import checks
from ..parametrization import Parametrization, param as _preset, resolve
from .fits import PowerLawFit
from .transfer import TransferResult, _fit, optimal_lr, transfer

__all__ = ["decay_transfer", "DecayTransferResult"]


@dataclasses.dataclass(frozen=True)
class DecayTransferResult:
    """Loss grid ``losses`` (W, R, Lam) over ``widths`` x ``lrs`` x ``weight_decays``.

    ``optima`` (W, 2): ``(lr*, lambda*)`` per width; ``at_edge`` (W, 2) flags an optimum at a grid edge (or next
    to divergence) along that axis; ``fits``: ``{"lr": fit, "weight_decay": fit}`` of ``x*(n) ~ n^k`` (None with
    fewer than 2 usable widths); ``per_decay[lambda]``: the :class:`TransferResult` of each weight decay.
    """

    widths: np.ndarray
    lrs: np.ndarray
    weight_decays: np.ndarray
    losses: np.ndarray
    optima: np.ndarray
    at_edge: np.ndarray
    fits: Mapping[str, PowerLawFit | None]
    per_decay: Mapping[float, TransferResult]
    meta: Mapping[str, Any]

    def exponent(self, which: str = "lr") -> float:
        """Fitted width exponent of ``lr*`` (``which="lr"``) or ``lambda*`` (``"weight_decay"``); NaN if unfitted."""
        fit = self.fits[checks.choice(which, "which", ("lr", "weight_decay"))]
        return fit.exponent if fit is not None else float("nan")

    @property
    def dataset(self):
        """``loss`` (width, lr, weight_decay) and ``lr_opt``, ``weight_decay_opt`` (width) as an ``xarray.Dataset``."""
        import xarray as xr

        return xr.Dataset({"loss": (("width", "lr", "weight_decay"), self.losses),
                           "lr_opt": (("width",), self.optima[:, 0]),
                           "weight_decay_opt": (("width",), self.optima[:, 1])},
                          coords={"width": self.widths, "lr": self.lrs, "weight_decay": self.weight_decays})

    def table(self) -> str:
        m = self.meta
        lines = [f"(lr, weight decay) transfer: {m['param']}, depth {m['depth']}, {m['optimizer']}, {m['steps']} "
                 f"steps, {m['seeds']} seeds, metric={m['metric']}",
                 f"{'width':>7}{'lr*':>12}{'lambda*':>12}{'loss*':>12}"]
        for i, w in enumerate(self.widths):
            best = np.nanmin(np.where(np.isfinite(self.losses[i]), self.losses[i], np.nan))
            marks = ["*" if e else " " for e in self.at_edge[i]]
            lines.append(f"{int(w):>7}{self.optima[i, 0]:>11.4g}{marks[0]}{self.optima[i, 1]:>11.4g}{marks[1]}"
                         f"{best:>12.4e}")
        for name, label in (("lr", "lr*"), ("weight_decay", "lambda*")):
            lines.append(f"{label} width exponent: {self.fits[name] if self.fits[name] else 'n/a'}")
        lines.append("(* = grid edge or next to divergence along that axis)")
        return "\n".join(lines)

    def plot(self, path, *, widths: Sequence[int] | None = None, title: str = ""):
        """Heat maps of log10 loss over (lr, lambda) at ``widths`` (default: the smallest and the largest), each
        with every width's optimum marked (lambda = 0 is drawn a decade below the next value)."""
        from .. import plotting

        chosen = [int(self.widths[0]), int(self.widths[-1])] if widths is None else [int(w) for w in widths]
        lams, optima = self.weight_decays.copy(), self.optima.copy()
        if lams[0] == 0:  # a log axis has no 0: lambda = 0 is drawn a decade below the next value
            lams[0] = lams[1] / 10
            optima[:, 1] = np.where(optima[:, 1] == 0, lams[0], optima[:, 1])
        fig, axes = plotting.new_figure(ncols=len(chosen))
        missing = [w for w in chosen if w not in set(int(v) for v in self.widths)]
        if missing:
            raise ValueError(f"plot(widths={missing}): not widths of this sweep ({[int(v) for v in self.widths]})")
        for k, w in enumerate(chosen):
            i = int(np.flatnonzero(self.widths == w)[0])
            ax = axes[0, k]
            grid = np.where(np.isfinite(self.losses[i]), self.losses[i], np.nan).T
            mesh = ax.pcolormesh(_log_edges(self.lrs), _log_edges(lams), np.log10(grid), cmap="viridis")
            fig.colorbar(mesh, ax=ax, label="log10 loss")
            for j, (lr, lam) in enumerate(optima):
                ax.plot(lr, lam, "o" if j == i else ".", color="w" if j == i else "0.7", ms=7 if j == i else 4)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("learning rate")
            ax.set_ylabel("weight decay lambda" + (" (lowest row: 0)" if self.weight_decays[0] == 0 else ""))
            ax.set_title(f"n={w} (white: its optimum; grey: other widths)")
        if title:
            fig.suptitle(title)
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


def _log_edges(x) -> np.ndarray:
    """Cell edges around positive grid values on a log axis (geometric midpoints, half a step beyond the ends)."""
    u = np.log(np.asarray(x, dtype=float))
    step = np.diff(u) if len(u) > 1 else np.array([1.0])
    mid = np.concatenate([[u[0] - step[0] / 2], (u[1:] + u[:-1]) / 2, [u[-1] + step[-1] / 2]])
    return np.exp(mid)


def _decays(weight_decays) -> np.ndarray:
    if isinstance(weight_decays, (str, bytes)) or np.ndim(weight_decays) != 1:
        raise checks.ArgumentTypeError(f"weight_decays must be a 1-D list of values >= 0, got {weight_decays!r}")
    out = np.array([checks.nonnegative(v, f"weight_decays[{i}]") for i, v in enumerate(weight_decays)])
    if len(out) < 2 or len(np.unique(out)) != len(out):
        raise ValueError(f"weight_decays must hold at least two distinct values, got {list(weight_decays)}")
    return np.sort(out)


def _table_at(param, depth, gamma0, optimizer, lam: float) -> Parametrization:
    """The table with weight decay ``lam``: a preset name (its rule) or a callable ``lam -> Parametrization``."""
    if isinstance(param, str):
        return _preset(param, 1 if depth is None else depth, gamma0=gamma0,
                       optimizer="adamw" if optimizer is None else optimizer, weight_decay=lam)
    if isinstance(param, Parametrization) or not callable(param):
        raise checks.ArgumentTypeError("with weight_decays=, param must be a preset name or a callable "
                                       "weight_decay -> Parametrization (a single table has one weight decay)")
    for name, value in (("gamma0", gamma0), ("optimizer", optimizer)):
        if value is not None:
            raise checks.inapplicable(name, "a callable weight_decay -> Parametrization builds its own tables")
    table = param(lam)
    if not isinstance(table, Parametrization):
        raise checks.ArgumentTypeError(f"param({lam!r}) must return a limits.Parametrization, got {table!r}")
    return table if depth is None else resolve(table, depth)


def _joint_optimum(lrs, decays, grid: np.ndarray) -> tuple[tuple[float, float], tuple[bool, bool]]:
    """``(lr*, lambda*)`` of one width's (R, Lam) grid: best point, refined along each axis."""
    ok = np.isfinite(grid) & (grid > 0)
    if not ok.any():
        return (float("nan"), float("nan")), (True, True)
    i, j = np.unravel_index(np.argmin(np.where(ok, grid, np.inf)), grid.shape)
    lr, lr_edge = optimal_lr(lrs, grid[:, j])
    if decays[0] == 0:  # lambda = 0 has no log: refine on the positive values, at the edge when 0 is best
        lam, lam_edge = (0.0, True) if j == 0 else optimal_lr(decays[1:], grid[i, 1:])
        lam_edge = lam_edge or j == 1
    else:
        lam, lam_edge = optimal_lr(decays, grid[i, :])
    return (lr, lam), (lr_edge, lam_edge)


def decay_transfer(
    param: str | Callable[[float], Parametrization] = "mup",
    depth: int | None = None,
    widths: Sequence[int] = (64, 128, 256, 512),
    lrs: Sequence[float] | None = None,
    weight_decays: Sequence[float] = (0.0, 0.01, 0.1, 1.0),
    *,
    gamma0: float | None = None,
    optimizer: str | None = None,
    metric: str = "train",
    confidence: float = 0.95,
    progress: bool = True,
    **kwargs,
) -> DecayTransferResult:
    """Sweep ``lrs`` x ``weight_decays`` x ``widths``: the joint optimum per width and its width exponents.

    Args:
        param: a preset name (at ``depth``, with ``gamma0`` and ``optimizer``, default ``"adamw"``; the weight
            decay goes to the matrix-like layers with the preset's width rule) or a callable
            ``weight_decay -> Parametrization`` (``gamma0``/``optimizer`` rejected).
        depth: hidden layers (None: 1 for a preset, the table's own for a callable).
        widths: at least two distinct positive integer widths. lrs: distinct positive learning rates (None:
            :func:`limits.transfer`'s default grid).
        weight_decays: at least two distinct values >= 0 (Lam of them); sorted in the result.
        metric, confidence, progress: as in :func:`limits.transfer`.
        **kwargs: the other arguments of :func:`limits.transfer` (``X``, ``y``, ``activation``, ``steps``,
            ``X_test``, ``y_test``, ``seed``, ``seeds``, ``cache_dir``, ``method``, ``client``); ``limit`` is
            False (the package solves no limit of an adaptive optimizer).

    Returns:
        :class:`DecayTransferResult`: ``losses`` (W, R, Lam), ``optima`` (W, 2) ``(lr*, lambda*)``, ``at_edge``
        (W, 2), ``fits`` of both optima against width, ``per_decay`` (one :class:`TransferResult` per lambda).
    """
    for name in ("limit", "limit_method", "depths"):
        if kwargs.get(name) not in (None, False):
            raise checks.inapplicable(name, "a weight-decay sweep simulates networks only (no limit, one depth)")
        kwargs.pop(name, None)
    decays = _decays(weight_decays)
    tables = [_table_at(param, depth, gamma0, optimizer, float(lam)) for lam in decays]  # all checked first
    bad = sorted({t.optimizer for t in tables} - {"adamw", "muon"})
    if bad:
        raise ValueError(f"weight_decays= sweeps AdamW or Muon tables; param built tables that train with {bad}")
    if all(not any(L.weight_decay for L in t.layers) for t in tables):
        raise ValueError("no table of the sweep has weight decay on any layer (every weight_decays value landed on "
                         "no row): check param / depth")
    per = {}
    for lam, table in zip(decays, tables):
        per[float(lam)] = transfer(table, table.depth, widths, lrs, limit=False, metric=metric,
                                   confidence=confidence, progress=progress, **kwargs)
    first = per[float(decays[0])]
    losses = np.stack([per[float(lam)].losses for lam in decays], axis=-1)
    optima, edges = zip(*(_joint_optimum(first.lrs, decays, losses[i]) for i in range(len(first.widths))))
    optima, edges = np.array(optima), np.array(edges)
    fits = {"lr": _fit(first.widths, optima[:, 0], confidence),
            "weight_decay": _fit(first.widths, np.where(optima[:, 1] > 0, optima[:, 1], np.nan), confidence)}
    meta = {**first.meta, "param": tables[0].name, "weight_decays": decays.tolist(), "decay": tables[0].decay,
            "gamma0": (1.0 if gamma0 is None else gamma0) if isinstance(param, str) else None}
    return DecayTransferResult(first.widths, first.lrs, decays, losses, optima, edges, fits, per, meta)
