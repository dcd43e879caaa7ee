r"""Finite-width trajectories against their infinite-width limit.

For each width ``N`` and quantity ``q_s(t)`` (per-seed train loss, predictions,
recorded kernels; ``s`` = seed) with limit ``q_inf(t)``:

- ``bias``: ``sqrt(mean_t [(qbar(t) - q_inf(t))^2 - var_s q(t) / S - se_inf(t)^2])`` —
  the RMS deviation of the ensemble mean from the limit with the seed noise of
  the mean (and the limit's own Monte Carlo error, ``loss_stderr`` for the loss and
  ``prediction_stderr`` for the predictions) removed (theory: O(1/N)); ``<noise``
  in the table when nothing is left;
- ``spread``: ``sqrt(mean_t var_s q(t))`` — the seed-to-seed fluctuation
  (theory: O(1/sqrt N) in mup). With ``theory=`` (a ``solve_dmft(..., width=N)`` trajectory) the predicted
  spread at every width (``sqrt(N_theory / N)`` times the theory's) is tabulated and drawn next to the measured one.

Means over ``t`` also run over prediction/kernel entries. Error bars come from a
bootstrap over seeds; each statistic is fitted against ``N`` by
:func:`limits.analysis.fits.fit_power_law`. Without per-seed data only the
uncorrected bias is available. Runs of different models, training or data
(:data:`MATCH` fields of ``meta``) are refused.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from .. import checks
from ..trajectory import Trajectory
from .fits import PowerLawFit, fit_power_law

__all__ = ["compare", "Comparison", "EXPECTED", "MATCH"]

EXPECTED = {"bias": -1.0, "spread": -0.5}
"""Theoretical width exponents of the two statistics."""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Deviation statistics vs width.

    ``values[(quantity, stat)]`` and ``errors[...]`` are arrays over ``widths``;
    ``fits[(quantity, stat)]`` the fitted power law (absent when < 2 usable points).
    """

    widths: np.ndarray
    values: Mapping[tuple[str, str], np.ndarray]
    errors: Mapping[tuple[str, str], np.ndarray]
    fits: Mapping[tuple[str, str], PowerLawFit]
    expected: Mapping[str, float]
    steps: int
    meta: Mapping[str, object] = dataclasses.field(default_factory=dict)
    predicted: Mapping[tuple[str, str], np.ndarray] = dataclasses.field(default_factory=dict)
    """``predicted[(quantity, "spread")]``: the width-N theory's spread at each width (``compare(theory=...)``)."""

    @property
    def quantities(self) -> list[str]:
        return list(dict.fromkeys(q for q, _ in self.values))

    def exponent(self, quantity: str = "loss", stat: str = "bias") -> PowerLawFit:
        """Fitted width exponent of ``stat`` (``"bias"`` or ``"spread"``) of ``quantity``."""
        key = (quantity, stat)
        if key not in self.fits:
            known = ", ".join(f"{q}/{s}" for q, s in self.fits) or "none"
            raise KeyError(f"no fit for {quantity}/{stat} (fitted: {known})")
        return self.fits[key]

    def table(self) -> str:
        """Text table: statistic per width, fitted exponent with CI, theory."""
        head = f"{'quantity':<10} {'stat':<7}" + "".join(f"{'N=' + str(int(n)):>12}" for n in self.widths)
        head += f"   {'exponent [CI]':<24} theory"
        lines = [f"finite width vs limit over {self.steps + 1} steps ({self.meta.get('confidence', 0.95):.0%} CI)", head]
        for (q, s), vals in self.values.items():
            errs = self.errors[(q, s)]
            cells = "".join(f"{_fmt(v, e):>12}" for v, e in zip(vals, errs))
            fit = self.fits.get((q, s))
            lines.append(f"{q:<10} {s:<7}{cells}   {str(fit) if fit else 'n/a':<24} {self.expected.get(s, float('nan')):+.2f}")
            if (q, s) in self.predicted:
                cells = "".join(f"{v:>12.2e}" for v in self.predicted[(q, s)])
                lines.append(f"{'':<10} {'theory':<7}{cells}   (width-N theory, docs/theory/finite_width.md)")
        return "\n".join(lines)

    def plot(self, path, *, title: str = ""):
        """One log-log panel per quantity: bias and spread vs width with fits and theory slopes."""
        from .. import plotting

        qs = self.quantities
        fig, axes = plotting.new_figure(ncols=len(qs))
        for ax, q in zip(axes[0], qs):
            for s in ("bias", "spread"):
                if (q, s) not in self.values:
                    continue
                y, e = self.values[(q, s)], self.errors[(q, s)]
                plotting.loglog_fit(ax, self.widths, y, np.where(np.isfinite(e), e, 0), self.fits.get((q, s)),
                                    label=s, guide=self.expected.get(s))
                if (q, s) in self.predicted:
                    ax.plot(self.widths, self.predicted[(q, s)], "k--", marker="x", label=f"{s}, width-N theory")
            plotting.finish(ax, "width N", "deviation from limit", q)
            plotting.widths_ticks(ax, self.widths)
        if title:
            fig.suptitle(title)
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


def _fmt(v: float, e: float) -> str:
    if not np.isfinite(v):
        return "<noise"
    return f"{v:.2e}"


def _stats(per_seed: np.ndarray | None, mean: np.ndarray, limit: np.ndarray, limit_var=0.0) -> tuple[float, float]:
    """(noise-corrected bias, spread) for per-seed samples (S, ...) or a mean only.

    ``limit_var``: variance of the limit's own estimate (Monte Carlo), also removed.
    """
    if per_seed is None or per_seed.shape[0] < 2:
        return float(np.sqrt(np.mean((mean - limit) ** 2))), np.nan
    S = per_seed.shape[0]
    m = per_seed.mean(axis=0)
    var = per_seed.var(axis=0, ddof=1)
    b2 = np.mean((m - limit) ** 2 - var / S - limit_var)
    return float(np.sqrt(b2)) if b2 > 0 else np.nan, float(np.sqrt(np.mean(var)))


def _bootstrap(per_seed, limit, limit_var, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    if per_seed is None or per_seed.shape[0] < 2 or n_boot < 2:
        return np.nan, np.nan
    S = per_seed.shape[0]
    draws = np.array([_stats(per_seed[rng.integers(0, S, S)], None, limit, limit_var) for _ in range(n_boot)])
    with np.errstate(invalid="ignore"):
        return float(np.nanstd(draws[:, 0])), float(np.nanstd(draws[:, 1]))


def _check(traj, name: str) -> Trajectory:
    if not isinstance(traj, Trajectory):
        raise checks.ArgumentTypeError(f"{name} must be a limits.Trajectory, got {type(traj).__name__}")
    return traj


MATCH = ("param", "optimizer", "depth", "activation", "lr", "steps", "gamma0", "data")
"""``meta`` fields a limit and every simulation must share (where both record them): the model (table, optimizer,
depth, activation, richness), the training (learning rate, steps) and the data (``meta["data"]``, a
:func:`limits.checks.fingerprint` of ``X, y, X_test, y_test``)."""


def _same(a, b) -> bool:
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def _check_same_model(limit: Trajectory, sims: Mapping[int, Trajectory], name: str = "limit") -> None:
    """ValueError naming the first ``meta`` field (of :data:`MATCH`, and the width) where a run differs from the
    reference run ``limit`` (called ``name`` in the message)."""
    for width, traj in sims.items():
        w = traj.meta.get("width")
        if w is not None and not _same(w, width):
            raise ValueError(f"simulations[{width}] has meta width={w!r}; key each simulation by its own width")
        for field in MATCH:
            a, b = limit.meta.get(field), traj.meta.get(field)
            if a is None or b is None:
                continue  # not recorded (or a table's gamma0): nothing to compare
            if not _same(a, b):
                raise ValueError(f"the {name} and simulations[{width}] differ in {field}: {name} {field}={a!r}, "
                                 f"simulation {field}={b!r}; compare runs of the same model, training and data")


def _check_simulations(simulations) -> dict[int, Trajectory]:
    if not isinstance(simulations, Mapping) or len(simulations) == 0:
        raise ValueError("simulations must be a non-empty mapping {width: Trajectory}")
    sims = {}
    for width, traj in simulations.items():
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
            raise ValueError(f"simulation keys must be positive integer widths, got {width!r}")
        sims[int(width)] = _check(traj, f"simulations[{width}]")
    return sims


def _check_expected(expected) -> dict[str, float]:
    if expected is None:
        return dict(EXPECTED)
    if not isinstance(expected, Mapping):
        raise checks.ArgumentTypeError(f"expected must be a mapping like {EXPECTED}, got {expected!r}")
    for k in expected:
        checks.choice(k, "expected key", tuple(EXPECTED))
    return {k: checks.real(v, f"expected[{k!r}]") for k, v in expected.items()}


def _per_seed(array, index) -> np.ndarray | None:
    return None if array is None else np.asarray(array)[index]


def _quantities(limit: Trajectory, sim: Trajectory, T1: int) -> dict[str, tuple]:
    """name -> (per_seed or None, mean, limit, limit variance) aligned arrays, from the typed fields."""
    t = slice(None, T1)
    out: dict[str, tuple] = {}
    lim_var = 0.0 if limit.loss_stderr is None else np.asarray(limit.loss_stderr)[t] ** 2
    out["loss"] = (_per_seed(sim.losses, (slice(None), t)), np.asarray(sim.loss)[t], np.asarray(limit.loss)[t], lim_var)
    if np.asarray(limit.predictions).shape[1] == np.asarray(sim.predictions).shape[1]:
        var = 0.0 if limit.prediction_stderr is None else np.asarray(limit.prediction_stderr)[t] ** 2
        out["predictions"] = (_per_seed(sim.predictions_per_seed, (slice(None), t)), np.asarray(sim.predictions)[t],
                              np.asarray(limit.predictions)[t], var)
    if (limit.test_predictions is not None and sim.test_predictions is not None
            and np.shape(limit.test_predictions)[1:] == np.shape(sim.test_predictions)[1:]):
        out["test_predictions"] = (_per_seed(sim.test_predictions_per_seed, (slice(None), t)),
                                   np.asarray(sim.test_predictions)[t], np.asarray(limit.test_predictions)[t], 0.0)
    out.update(_kernel_quantities(limit, sim))
    return out


def _kernel_quantities(limit: Trajectory, sim: Trajectory) -> dict[str, tuple]:
    """The NTK and every kernel recorded by both, at their common ``kernel_steps``."""
    if limit.kernel_steps is None or sim.kernel_steps is None:
        return {}
    common = np.intersect1d(np.asarray(limit.kernel_steps), np.asarray(sim.kernel_steps))
    if common.size == 0:
        return {}
    li = np.searchsorted(np.asarray(limit.kernel_steps), common)
    si = np.searchsorted(np.asarray(sim.kernel_steps), common)
    names = (["ntk"] if limit.ntk is not None and sim.ntk is not None else [])
    names += sorted(set(limit.kernels) & set(sim.kernels))
    per_seed = {**dict(sim.kernels_per_seed), "ntk": sim.ntk_per_seed}
    out = {}
    for name in names:
        lim_k, sim_k = limit.kernel(name), sim.kernel(name)
        if lim_k.shape[1:] != sim_k.shape[1:]:
            continue
        out[name] = (_per_seed(per_seed.get(name), (slice(None), si)), sim_k[si], lim_k[li], 0.0)
    return out


def _statistics(per_width: list, names: list, rng, n_boot: int) -> tuple[dict, dict]:
    """``values[(q, stat)]``, ``errors[(q, stat)]``: arrays over the widths."""
    values: dict[tuple[str, str], list] = {}
    errors: dict[tuple[str, str], list] = {}
    for q in names:
        for pw in per_width:
            per_seed, mean, lim, lim_var = pw[q]
            with np.errstate(all="ignore"):
                bias, spread = _stats(per_seed, mean, lim, lim_var)
                ebias, espread = _bootstrap(per_seed, lim, lim_var, rng, n_boot)
            for stat, v, e in (("bias", bias, ebias), ("spread", spread, espread)):
                values.setdefault((q, stat), []).append(v)
                errors.setdefault((q, stat), []).append(e)
    return ({k: np.asarray(v, dtype=float) for k, v in values.items()},
            {k: np.asarray(v, dtype=float) for k, v in errors.items()})


def _fits(widths, values: dict, errors: dict, confidence: float) -> dict:
    fits = {}
    for key, vals in values.items():
        errs = errors[key]
        use_err = errs if np.all(np.isfinite(errs[np.isfinite(vals)])) and np.isfinite(errs).any() else None
        try:
            fits[key] = fit_power_law(widths, vals, use_err, confidence=confidence)
        except ValueError:
            pass
    return fits


def compare(
    limit: Trajectory,
    simulations: Mapping[int, Trajectory],
    *,
    expected: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int | None = None,
    theory: Trajectory | None = None,
) -> Comparison:
    """Deviation of finite-width trajectories ``{width: Trajectory}`` from the infinite-width ``limit``.

    The runs must share their model, training and data: every field of :data:`MATCH` that both ``meta`` record
    (``param``, ``optimizer``, ``depth``, ``activation``, ``lr``, ``steps``, ``gamma0``, ``data``) must agree, and a
    simulation's ``meta["width"]`` must be its key; otherwise ``ValueError`` names the field and both values.
    Compares the common steps ``t = 0..min(T)``: loss, predictions (same train set), test predictions (same test
    set) and every kernel recorded by both at common ``kernel_steps``, reading the per-seed typed fields
    (``losses``, ``predictions_per_seed``, ``test_predictions_per_seed``, ``ntk_per_seed``, ``kernels_per_seed``).

    Args:
        expected: theoretical exponents of ``"bias"`` and ``"spread"`` (default :data:`EXPECTED`).
        confidence: level of the fitted exponents' intervals, in (0, 1).
        n_boot: bootstrap resamples of the seeds for the error bars (0: none). seed: the bootstrap's seed (None: 0).
        theory: None, or the width-N theory of the same model (``limits.solve_dmft(..., width=N)`` with finite-width
            corrections, docs/theory/finite_width.md): its predicted spread of the loss, predictions and recorded
            kernels at every width goes into ``Comparison.predicted``, the table and the plot.

    Returns:
        :class:`Comparison`: bias/spread per width and their fitted exponents.
    """
    limit = _check(limit, "limit")
    sims = _check_simulations(simulations)
    expected = _check_expected(expected)
    confidence = checks.open_unit(confidence, "confidence")
    n_boot = checks.integer(n_boot, "n_boot", 0)
    rng = np.random.default_rng(0 if seed is None else checks.seed(seed))
    _check_same_model(limit, sims)
    widths = np.array(sorted(sims))
    T1 = min([limit.steps + 1] + [t.steps + 1 for t in sims.values()])
    per_width = [_quantities(limit, sims[int(n)], T1) for n in widths]
    names = [q for q in per_width[0] if all(q in pw for pw in per_width)]
    values, errors = _statistics(per_width, names, rng, n_boot)
    fits = _fits(widths, values, errors, confidence)
    values = {k: v for k, v in values.items() if np.isfinite(v).any()}
    errors = {k: errors[k] for k in values}
    meta = {"confidence": confidence, "n_boot": n_boot, "limit_solver": limit.meta.get("solver"),
            **{f: limit.meta[f] for f in MATCH if limit.meta.get(f) is not None}}
    predicted = {} if theory is None else _predicted_spread(_check_theory(theory, sims), widths, T1, sims)
    predicted = {k: v for k, v in predicted.items() if (k[0], "spread") in values}
    return Comparison(widths, values, errors, fits, expected, T1 - 1, meta, predicted)


def _check_theory(theory, sims) -> Trajectory:
    """``theory`` checked: a Trajectory with finite-width corrections, of the same model as the simulations."""
    theory = _check(theory, "theory")
    if not theory.width_corrections or theory.prediction_cov is None:
        raise ValueError("theory must be a width-N theory with finite-width corrections: limits.solve_dmft(..., width=N) "
                         "of a covered model (meta['finite_width']['corrections'] is empty or missing)")
    _check_same_model(theory, sims, "theory")
    return theory


def _predicted_spread(theory: Trajectory, widths, T1: int, sims) -> dict:
    """``{(quantity, "spread"): (len(widths),)}``: the spread statistic the theory predicts at each width,
    ``sqrt(mean var)`` with the theory's variances scaled by ``N_theory / N``."""
    Nth = float(theory.meta["width"])
    scale = Nth / np.asarray(widths, float)
    var = {"loss": None if theory.loss_std is None else np.asarray(theory.loss_std)[:T1] ** 2,
           "predictions": np.diagonal(np.asarray(theory.prediction_cov)[:T1], axis1=1, axis2=2)}
    if theory.test_prediction_cov is not None:
        var["test_predictions"] = np.diagonal(np.asarray(theory.test_prediction_cov)[:T1], axis1=1, axis2=2)
    sim = next(iter(sims.values()))
    if sim.kernel_steps is not None:
        steps = np.asarray(sim.kernel_steps)
        steps = steps[steps < T1]
        for name, v in [("ntk", theory.ntk_var)] + list(theory.kernel_vars.items()):
            if v is not None:
                var[name] = np.asarray(v)[steps]
    return {(q, "spread"): np.sqrt(np.mean(v) * scale) for q, v in var.items() if v is not None}
