r"""Finite-width trajectories against their infinite-width limit.

For each width ``N`` and quantity ``q_s(t)`` (per-seed train loss, predictions,
recorded kernels; ``s`` = seed) with limit ``q_inf(t)``:

- ``bias``: ``sqrt(mean_t [(qbar(t) - q_inf(t))^2 - var_s q(t) / S - se_inf(t)^2])`` —
  the RMS deviation of the ensemble mean from the limit with the seed noise of
  the mean (and the limit's own Monte Carlo error ``loss_stderr``, for the loss)
  removed (theory: O(1/N)); ``<noise`` in the table when nothing is left;
- ``spread``: ``sqrt(mean_t var_s q(t))`` — the seed-to-seed fluctuation
  (theory: O(1/sqrt N) in mup).

Means over ``t`` also run over prediction/kernel entries. Error bars come from a
bootstrap over seeds; each statistic is fitted against ``N`` by
:func:`limits.analysis.fits.fit_power_law`. Without per-seed data only the
uncorrected bias is available.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ..trajectory import Trajectory
from .fits import PowerLawFit, fit_power_law

__all__ = ["compare", "Comparison", "EXPECTED"]

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
        raise ValueError(f"{name} must be a limits.Trajectory, got {type(traj).__name__}")
    return traj


def _quantities(limit: Trajectory, sim: Trajectory, T1: int) -> dict[str, tuple]:
    """name -> (per_seed or None, mean, limit, limit variance) aligned arrays."""
    out: dict[str, tuple] = {}
    losses = None if sim.losses is None else np.asarray(sim.losses)[:, :T1]
    lim_var = 0.0 if limit.loss_stderr is None else np.asarray(limit.loss_stderr)[:T1] ** 2
    out["loss"] = (losses, np.asarray(sim.loss)[:T1], np.asarray(limit.loss)[:T1], lim_var)
    if np.asarray(limit.predictions).shape[1] == np.asarray(sim.predictions).shape[1]:
        ps = sim.diagnostics.get("predictions_per_seed")
        ps = None if ps is None else np.asarray(ps)[:, :T1]
        out["predictions"] = (ps, np.asarray(sim.predictions)[:T1], np.asarray(limit.predictions)[:T1], 0.0)
    if limit.kernel_steps is None or sim.kernel_steps is None:
        return out
    common = np.intersect1d(np.asarray(limit.kernel_steps), np.asarray(sim.kernel_steps))
    if common.size == 0:
        return out
    li = np.searchsorted(np.asarray(limit.kernel_steps), common)
    si = np.searchsorted(np.asarray(sim.kernel_steps), common)
    names = (["ntk"] if limit.ntk is not None and sim.ntk is not None else [])
    names += sorted(set(limit.kernels) & set(sim.kernels))
    per_seed_k = dict(sim.diagnostics.get("kernels_per_seed", {}))
    if "ntk_per_seed" in sim.diagnostics:
        per_seed_k["ntk"] = sim.diagnostics["ntk_per_seed"]
    for name in names:
        lim_k, sim_k = limit.kernel(name), sim.kernel(name)
        if lim_k.shape[1:] != sim_k.shape[1:]:
            continue
        ps = per_seed_k.get(name)
        out[name] = (None if ps is None else np.asarray(ps)[:, si], sim_k[si], lim_k[li], 0.0)
    return out


def compare(
    limit_trajectory: Trajectory,
    simulations: Mapping[int, Trajectory],
    *,
    expected: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> Comparison:
    """Deviation of finite-width trajectories ``{width: Trajectory}`` from ``limit_trajectory``.

    Compares the common steps ``t = 0..min(T)``: loss, predictions (same train
    set) and every kernel recorded by both at common ``kernel_steps``. Returns a
    :class:`Comparison` with bias/spread per width and their fitted exponents.
    """
    limit = _check(limit_trajectory, "limit_trajectory")
    if not isinstance(simulations, Mapping) or len(simulations) == 0:
        raise ValueError("simulations must be a non-empty mapping {width: Trajectory}")
    sims = {}
    for width, traj in simulations.items():
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
            raise ValueError(f"simulation keys must be positive integer widths, got {width!r}")
        sims[int(width)] = _check(traj, f"simulations[{width}]")
    lr_lim = limit.meta.get("lr")
    for width, traj in sims.items():
        lr_sim = traj.meta.get("lr")
        if lr_lim is not None and lr_sim is not None and not np.isclose(float(lr_lim), float(lr_sim)):
            raise ValueError(f"learning rates differ: limit lr={lr_lim}, width {width} lr={lr_sim}")
    widths = np.array(sorted(sims))
    T1 = min([limit.steps + 1] + [t.steps + 1 for t in sims.values()])
    rng = np.random.default_rng(seed)
    values: dict[tuple[str, str], list] = {}
    errors: dict[tuple[str, str], list] = {}
    per_width = [_quantities(limit, sims[int(n)], T1) for n in widths]
    names = [q for q in per_width[0] if all(q in pw for pw in per_width)]
    for q in names:
        for pw in per_width:
            per_seed, mean, lim, lim_var = pw[q]
            with np.errstate(all="ignore"):
                bias, spread = _stats(per_seed, mean, lim, lim_var)
                ebias, espread = _bootstrap(per_seed, lim, lim_var, rng, n_boot)
            for stat, v, e in (("bias", bias, ebias), ("spread", spread, espread)):
                values.setdefault((q, stat), []).append(v)
                errors.setdefault((q, stat), []).append(e)
    fits = {}
    for key, vals in values.items():
        vals = np.asarray(vals, dtype=float)
        errs = np.asarray(errors[key], dtype=float)
        values[key], errors[key] = vals, errs
        use_err = errs if np.all(np.isfinite(errs[np.isfinite(vals)])) and np.isfinite(errs).any() else None
        try:
            fits[key] = fit_power_law(widths, vals, use_err, confidence=confidence)
        except ValueError:
            pass
    values = {k: v for k, v in values.items() if np.isfinite(v).any()}
    errors = {k: errors[k] for k in values}
    meta = {"confidence": confidence, "n_boot": n_boot, "limit_solver": limit.meta.get("solver")}
    return Comparison(widths, values, errors, fits, dict(expected or EXPECTED), T1 - 1, meta)
