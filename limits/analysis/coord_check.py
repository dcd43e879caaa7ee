r"""Coordinate check: measured width exponents against the parametrization's prediction.

After ``steps`` full-batch steps from initialization, at each width ``n`` we
measure the RMS coordinate change of every hidden layer's features
``|Delta h^l| = rms(h^l_t - h^l_0)``, the RMS output change ``|Delta f|`` and
(optionally) the spectral norms ``||W^l||``, ``||Delta W^l||`` of the effective
weights, average over seeds, and fit ``quantity ~ n^e``. The predicted ``e``
come from :meth:`Parametrization.exponents`. In mup every Delta h^l is
Theta(1) (flat); in SP with a width-independent learning rate they blow up.

Predictions are asymptotic in width at fixed step count: after one step the
backward pass still sees the initial readout, from the second step on the
updated one (``Parametrization.exponents(steps)``). In SP the updated readout
only dominates its O(n^-1/2) init once ``lr * t >> n^-1/2``, so at small lr the
measured exponents follow the one-step prediction for several steps; the table
shows both predictions and says which one the measurement matches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import checks
from ..parametrization import Parametrization
from .fits import PowerLawFit, fit_power_law

__all__ = ["coord_check", "CoordCheck"]


@dataclasses.dataclass(frozen=True)
class CoordCheck:
    """Result of :func:`coord_check`.

    ``values[name]`` (W,) seed means, ``errors[name]`` their standard errors,
    ``curves[name]`` (W, steps+1) seed-mean values at every step;
    ``fits[name]`` fitted exponents; ``predicted[name]`` the table's exponents
    after ``steps`` steps and ``predicted_first[name]`` those after one step
    (they differ when the initial readout dominates the backward pass at step 1, as in SP).
    Names: ``dh1..dhL``, ``df``, and with spectral norms ``W1..W{L+1}``, ``dW1..``.
    """

    widths: np.ndarray
    values: Mapping[str, np.ndarray]
    errors: Mapping[str, np.ndarray]
    curves: Mapping[str, np.ndarray]
    fits: Mapping[str, PowerLawFit]
    predicted: Mapping[str, float]
    predicted_first: Mapping[str, float]
    meta: Mapping[str, object]

    def measured(self, name: str) -> float:
        """Fitted width exponent of ``name`` (NaN if it could not be fitted)."""
        fit = self.fits.get(name)
        return fit.exponent if fit else float("nan")

    def consistent(self, name: str, tol: float = 0.15) -> bool:
        """Predicted exponent within the fit's interval widened by ``tol``."""
        fit = self.fits.get(name)
        return bool(fit is not None and fit.contains(self.predicted[name], tol))

    def verdict(self, name: str, tol: float = 0.15) -> str:
        """``"yes"`` (matches the prediction), ``"t=1"`` (matches, and is closer to, the one-step
        prediction: pre-asymptotic) or ``"NO"``."""
        fit = self.fits.get(name)
        if fit is None:
            return "NO"
        pred, first = self.predicted[name], self.predicted_first[name]
        closer_first = abs(fit.exponent - first) < abs(fit.exponent - pred)
        if fit.contains(pred, tol) and not (closer_first and fit.contains(first, tol)):
            return "yes"
        if fit.contains(first, tol):
            return "t=1"
        return "NO"

    def table(self, tol: float = 0.15) -> str:
        m = self.meta
        lines = [
            f"coordinate check: {m['param']} ({m['regime']}), depth {m['depth']}, {m['activation']}, "
            f"{m['optimizer']}, lr={m['lr']:g}, after {m['steps']} steps, {m['seeds']} seeds",
            f"{'quantity':<9}" + "".join(f"{'n=' + str(int(n)):>11}" for n in self.widths)
            + f"   {'measured [95% CI]':<22} {'predicted':>9} {'(t=1)':>7}  consistent",
        ]
        for name, vals in self.values.items():
            cells = "".join(f"{v:>11.3e}" for v in vals)
            fit = self.fits.get(name)
            pred = self.predicted.get(name, float("nan"))
            first = self.predicted_first.get(name, float("nan"))
            lines.append(f"{name:<9}{cells}   {str(fit) if fit else 'n/a':<22} {pred:>+9.3f} {first:>+7.2f}  {self.verdict(name, tol)}")
        lines.append("predicted: exponents after the measured number of steps; (t=1): after one step, "
                     "when the initial readout still dominates the backward pass")
        return "\n".join(lines)

    def plot(self, path, *, title: str = ""):
        """Log-log panels: Delta h^l and Delta f vs width (and spectral norms), predicted slopes dashed."""
        from .. import plotting

        groups = [[k for k in self.values if k.startswith("dh") or k == "df"]]
        if any(k.startswith("W") for k in self.values):
            groups.append([k for k in self.values if k.startswith("W") or k.startswith("dW")])
        fig, axes = plotting.new_figure(ncols=len(groups))
        titles = ["feature / output updates", "spectral norms"]
        for ax, group, head in zip(axes[0], groups, titles):
            for name in group:
                plotting.loglog_fit(ax, self.widths, self.values[name], self.errors[name], None,
                                    label=f"{name} ({self.measured(name):+.2f} vs {self.predicted[name]:+.2f})",
                                    guide=self.predicted[name])
            plotting.finish(ax, "width n", f"size after {self.meta['steps']} steps", head)
            plotting.widths_ticks(ax, self.widths)
        fig.suptitle(title or f"coordinate check: {self.meta['param']}, depth {self.meta['depth']} (dashed: predicted)")
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


def coord_check(
    param: str | Parametrization = "mup",
    depth: int | None = None,
    widths: Sequence[int] = (64, 128, 256, 512),
    *,
    X=None,
    y=None,
    activation: str | Callable = "tanh",
    gamma0: float | None = None,
    optimizer: str | None = None,
    lr: float = 0.05,
    steps: int = 3,
    seed: int | None = None,
    seeds: int = 4,
    spectral: bool = True,
    confidence: float = 0.95,
    progress: bool = True,
    method=None,
    client=None,
) -> CoordCheck:
    r"""Measure width exponents of ``Delta h^l``, ``Delta f`` (and spectral norms) after ``steps`` steps.

    The shared arguments (``param`` .. ``progress``) are those of :func:`limits.simulate`, except two defaults: a
    coordinate check measures how *one update* scales with width, so it takes a few (``steps=3``) small
    (``lr=0.05``) steps, where every quantity is still in its per-step scaling regime, rather than a training run.

    Args:
        widths: at least two distinct positive integers (no duplicates, no floats); measured in increasing order.
        seeds: networks per width; the values are seed means with standard errors.
        spectral: also measure ``||W^l||`` and ``||Delta W^l||`` (spectral norms of the effective weights).
        confidence: level of the fitted exponents' intervals, in (0, 1).
        method: :class:`limits.finite.Simulation` passed to :func:`limits.simulate` (e.g. ``dtype``,
            ``seed_batch``). The check records every step and keeps diverging runs (blow-up is what a coordinate
            check shows: non-finite sizes are kept and left out of the fits), so ``record_steps`` is rejected and
            ``divergence_factor`` must be left at its default or None.
        client: where the widths run (:func:`limits.sweep`): None (this process), a ``dask.distributed.Client``
            or a scheduler address.

    Returns:
        :class:`CoordCheck`: ``values[name]`` (W,), ``curves[name]`` (W, steps+1), fits and predicted exponents.
    """
    from ..finite.simulate import resolve_table

    p, gamma0 = resolve_table(param, depth, gamma0, optimizer)
    ws = _check_widths(widths)
    steps = checks.integer(steps, "steps", 1)
    confidence = checks.open_unit(confidence, "confidence")
    spectral, progress = checks.boolean(spectral, "spectral"), checks.boolean(progress, "progress")
    method = _coord_method(method, steps)
    kw = dict(X=X, y=y, activation=activation, lr=lr, steps=steps, seed=seed, seeds=seeds, method=method,
              record=("features", "spectral") if spectral else ("features",), progress=False)
    from .. import sweeps

    with sweeps.connected(client) as engine:
        per_width, curves, meta = _measure(p, ws, kw, spectral, progress, engine)
    values, errors, fits = _summarize(np.array(ws), per_width, confidence)
    meta.update(param=p.name, regime=p.classify().regime, depth=p.depth, gamma0=gamma0, optimizer=p.optimizer,
                steps=steps, confidence=confidence, method=repr(method))
    return CoordCheck(np.array(ws), values, errors, {k: np.stack(v) for k, v in curves.items()}, fits,
                      _predicted(p, p.depth, steps, spectral), _predicted(p, p.depth, 1, spectral), meta)


def _check_widths(widths) -> list[int]:
    """``widths`` sorted: at least two distinct positive integers, no duplicates (``checks.width`` each)."""
    if isinstance(widths, str) or not hasattr(widths, "__iter__"):
        raise checks.ArgumentTypeError(f"widths must be a sequence of positive integers, got {widths!r}")
    ws = [checks.width(w, "widths", infinite=False) for w in widths]
    if len(set(ws)) != len(ws):
        raise ValueError(f"widths must be at least two distinct positive integers without duplicates, "
                         f"got {list(widths)}")
    if len(ws) < 2:
        raise ValueError(f"widths must contain at least two distinct positive integers, got {list(widths)}")
    return sorted(ws)


def _coord_method(method, steps: int):
    """The :class:`~limits.finite.Simulation` of a check: the user's, recording every step, never stopping."""
    from ..finite import Simulation

    method = checks.option(method, "method", Simulation, Simulation())
    if method.record_steps is not None:
        raise checks.inapplicable("Simulation.record_steps", "a coordinate check records every step")
    if method.divergence_factor not in (None, Simulation.divergence_factor):
        raise checks.inapplicable("Simulation.divergence_factor", "a coordinate check keeps diverging runs")
    return dataclasses.replace(method, divergence_factor=None, record_steps=tuple(range(steps + 1)))


def _measure(p: Parametrization, ws: list[int], kw: dict, spectral: bool, progress: bool, client=None):
    """Per width: ``per_width[name]`` list of (S,) final values, ``curves[name]`` list of (steps+1,) seed means,
    from the ``"features"`` / ``"spectral"`` diagnostics of :func:`limits.simulate` (S, steps+1, layers); one
    task per width (:func:`limits.sweeps.run_tasks`, here or on ``client``)."""
    from .. import sweeps

    tasks = [sweeps.Task({"width": w}, functools.partial(_one_width, p, w, kw, spectral)) for w in ws]
    out = sweeps.run_tasks(tasks, client=client, progress=progress, desc=f"coord_check {p.name}", record_errors=False)
    per_width: dict[str, list] = {}
    curves: dict[str, list] = {}
    for w, record in zip(ws, out.records):
        for name, rows in record["items"].items():  # (S, steps+1)
            arr = np.asarray(rows, dtype=float)
            per_width.setdefault(name, []).append(arr[:, -1])
            curves.setdefault(name, []).append(arr.mean(axis=0))
    return per_width, curves, out.records[-1]["meta"]


def _one_width(p: Parametrization, width: int, kw: dict, spectral: bool) -> dict:
    """The record of one width: ``items[name]`` (S, steps+1) per-seed sizes as lists, and the run's meta."""
    from ..finite import simulate

    traj = simulate(p, None, width, **kw)
    d = traj.diagnostics
    hidden = d["delta_h"].shape[-1]  # L hidden layers (MLP) or L+1 residual-stream vectors (ResNet)
    items = {f"dh{l + 1}": d["delta_h"][:, :, l] for l in range(hidden)}
    items["df"] = d["delta_f"]
    if spectral:
        items.update({f"W{l + 1}": d["W_spectral"][:, :, l] for l in range(hidden + 1)})
        items.update({f"dW{l + 1}": d["dW_spectral"][:, :, l] for l in range(hidden + 1)})
    meta = {k: traj.meta[k] for k in ("activation", "lr", "seed", "seeds")}
    return {"items": {k: np.asarray(v, dtype=float).tolist() for k, v in items.items()}, "meta": meta}


def _summarize(widths: np.ndarray, per_width: dict, confidence: float):
    """Seed means (W,), standard errors (W,) and power-law fits ``value ~ n^e`` per quantity."""
    values, errors, fits = {}, {}, {}
    for name, samples in per_width.items():
        S = np.stack(samples)  # (W, S)
        mean = S.mean(axis=1)
        err = S.std(axis=1, ddof=1) / np.sqrt(S.shape[1]) if S.shape[1] > 1 else np.full(len(widths), np.nan)
        values[name], errors[name] = mean, err
        try:
            # seed error bars are tiny relative to the systematic curvature; fit unweighted
            fits[name] = fit_power_law(widths, mean, confidence=confidence)
        except ValueError:
            pass
    return values, errors, fits


def _predicted(p: Parametrization, depth: int, steps: int, spectral: bool) -> dict[str, float]:
    """The table's predicted exponents after ``steps`` steps, keyed like the measurements."""
    try:
        e = p.exponents(steps=steps)
    except TypeError:  # a table without step-dependent predictions
        e = p.exponents()
    layers = len(p.layers)  # L+1 (MLP) or L+2 (ResNet with L blocks)
    out = {f"dh{l + 1}": float(e.delta_h[l]) for l in range(min(layers - 1, len(e.delta_h)))}
    out["df"] = float(e.delta_f)
    if spectral:
        out.update({f"W{l + 1}": float(e.W_spectral[l]) for l in range(min(layers, len(e.W_spectral)))})
        out.update({f"dW{l + 1}": float(e.dW_spectral[l]) for l in range(min(layers, len(e.dW_spectral)))})
    return out
