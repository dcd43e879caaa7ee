r"""Width-depth commutation of the 1/sqrt(L)-branch ResNet kernels (Hayou & Yang, arXiv 2302.00453).

For the ``"depth-mup"`` ResNet (``h <- h + beta L^{-1/2} W phi(h) / sqrt(n)``) the
empirical kernels at init, NNGP ``Phi^{L+1} = phi(h^{L+1}) phi(h^{L+1})^T / n`` and
the learning-rate-weighted NTK, both (P, P), are measured by
:func:`limits.simulate` (no training steps) on a grid of widths ``n`` and depths
``L`` and compared with the infinite-depth-and-width kernel ``K_inf`` of
:func:`limits.kernels.resnet_infinite_depth`:

.. math:: \mathrm{err}(n, L) = \mathbb{E}_{\mathrm{seeds}} \|\hat K_{n,L} - K_\infty\|_F / \|K_\infty\|_F .

The row ``n = inf`` uses the finite-depth infinite-width kernel
:func:`limits.kernels.resnet`. Width fluctuations are O(n^{-1/2}) uniformly in L
and the depth discretization is O(1/L) uniformly in n, so the error vanishes
along any path to (inf, inf): width first (the ``n = inf`` row, then L), depth
first (the largest-L column, then n) or jointly (the diagonal).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import activations as _activations
from .. import checks
from .. import data as _data
from .fits import PowerLawFit, fit_power_law

__all__ = ["KernelCommutation", "kernel_commutation"]

KINDS = ("nngp", "ntk")


@dataclasses.dataclass(frozen=True)
class KernelCommutation:
    """Relative kernel errors ``errors[kind]`` of shape (W+1, Dp): rows ``widths`` then ``n = inf``.

    ``stderr[kind]`` (W, Dp): standard error over seeds of the finite-width rows.
    """

    widths: np.ndarray
    depths: np.ndarray
    errors: Mapping[str, np.ndarray]
    stderr: Mapping[str, np.ndarray]
    meta: Mapping[str, Any]

    def path(self, kind: str, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, err)`` along a path to (inf, inf).

        ``"width_first"``: the ``n = inf`` row vs L; ``"depth_first"``: the
        largest-L column vs n; ``"diagonal"``: ``(widths[i], depths[i])`` pairs vs i.
        """
        e = self.errors[kind]
        if which == "width_first":
            return self.depths.astype(float), e[-1]
        if which == "depth_first":
            return self.widths.astype(float), e[:-1, -1]
        if which == "diagonal":
            k = min(len(self.widths), len(self.depths))
            return np.arange(k, dtype=float), np.array([e[i, i] for i in range(k)])
        raise ValueError(f"path must be 'width_first', 'depth_first' or 'diagonal', got {which!r}")

    def fits(self, kind: str) -> dict[str, PowerLawFit | None]:
        """Power laws along the width-first path (in L) and the depth-first path (in n)."""
        out = {}
        for which in ("width_first", "depth_first"):
            x, y = self.path(kind, which)
            try:
                out[which] = fit_power_law(x, y)
            except ValueError:
                out[which] = None
        return out

    def table(self) -> str:
        m = self.meta
        lines = [f"width-depth commutation: {m['param']} ResNet, {m['activation']}, {m['seeds']} seeds, "
                 f"P={m['P']}; relative Frobenius error vs the infinite-depth limit"]
        for kind in KINDS:
            lines.append(f"{kind}: rows width n, columns depth L")
            lines.append(f"{'n / L':>8}" + "".join(f"{int(d):>10}" for d in self.depths))
            labels = [str(int(w)) for w in self.widths] + ["inf"]
            for label, row in zip(labels, self.errors[kind]):
                lines.append(f"{label:>8}" + "".join(f"{v:>10.3e}" for v in row))
            x, diag = self.path(kind, "diagonal")
            pairs = ", ".join(f"({int(self.widths[i])},{int(self.depths[i])}) {v:.3e}" for i, v in enumerate(diag))
            lines.append(f"diagonal: {pairs}")
            f = self.fits(kind)
            lines.append(f"width first (n=inf, vs L): exponent {f['width_first'] or 'n/a'}   "
                         f"depth first (L={int(self.depths[-1])}, vs n): exponent {f['depth_first'] or 'n/a'}")
        return "\n".join(lines)

    def plot(self, path, *, title: str = ""):
        """Two panels per kernel: error vs L per width (n = inf black) and error vs n per depth."""
        from .. import plotting

        fig, axes = plotting.new_figure(ncols=2, nrows=len(KINDS))
        for r, kind in enumerate(KINDS):
            plot_commutation_panels(axes[r, 0], axes[r, 1], self, kind)
        if title:
            fig.suptitle(title)
        return plotting.save(fig, path)

    def __repr__(self) -> str:
        return self.table()


def plot_commutation_panels(ax_depth, ax_width, result: KernelCommutation, kind: str, *, cmap: str = "viridis") -> None:
    """Left: error vs depth L, one line per width (``n = inf`` black, dashed 1/L guide);
    right: error vs width n, one line per depth (dashed n^{-1/2} guide)."""
    from matplotlib import colormaps

    from .. import plotting

    e, s = result.errors[kind], result.stderr[kind]
    L, n = result.depths.astype(float), result.widths.astype(float)
    colors = colormaps[cmap](np.linspace(0.0, 0.85, len(n)))
    for i, w in enumerate(n):
        ax_depth.errorbar(L, e[i], yerr=s[i], fmt="o-", ms=3, capsize=2, color=colors[i], label=f"n={int(w)}")
    ax_depth.plot(L, e[-1], "ks-", ms=3, label="n=inf")
    ax_depth.plot(L, e[-1][0] * L[0] / L, "k--", lw=0.8, alpha=0.6, label="1/L")
    ax_depth.set_xscale("log")
    ax_depth.set_yscale("log")
    plotting.finish(ax_depth, "depth L (blocks)", f"{kind} relative error", f"{kind}: vs depth")
    plotting.widths_ticks(ax_depth, result.depths)
    colors = colormaps["plasma"](np.linspace(0.0, 0.85, len(L)))
    for k, d in enumerate(L):
        ax_width.errorbar(n, e[:-1, k], yerr=s[:, k], fmt="o-", ms=3, capsize=2, color=colors[k], label=f"L={int(d)}")
    ax_width.plot(n, e[0, -1] * (n / n[0]) ** -0.5, "k--", lw=0.8, alpha=0.6, label="n^-1/2")
    ax_width.set_xscale("log")
    ax_width.set_yscale("log")
    plotting.finish(ax_width, "width n", f"{kind} relative error", f"{kind}: vs width")
    plotting.widths_ticks(ax_width, result.widths)


def _check_grid(values, name: str, minimum: int) -> np.ndarray:
    """Sorted distinct integers >= 1, at least ``minimum`` of them; messages name the argument and the fix."""
    items = checks.sequence(values, name, "(8, 32, 128)")
    out = [checks.integer(v, f"{name}[{i}]", 1) for i, v in enumerate(items)]
    checks.distinct(out, name)
    if len(out) < minimum:
        raise ValueError(f"{name} needs at least {minimum} distinct values (the paths to (inf, inf) are fitted), got {out}")
    return np.array(sorted(out))


def kernel_commutation(
    widths: Sequence[int] = (32, 64, 128, 256),
    depths: Sequence[int] = (2, 4, 8, 16, 32),
    *,
    X=None,
    activation: str | Callable = "relu",
    beta: float = 1.0,
    seeds: int = 8,
    seed: int | None = None,
    progress: bool = False,
) -> KernelCommutation:
    """Relative errors of the empirical NNGP/NTK at init of the ``"depth-mup"`` ResNet on the (n, L) grid.

    ``widths``, ``depths``: at least two distinct integers >= 1 each. ``X`` (P, D): inputs (default
    ``limits.datasets.teacher(P=8, D=4)``); ``activation`` (default ``"relu"``, the setting of Hayou & Yang);
    ``beta`` the O(1) branch multiplier (positive); ``seeds`` networks per cell (>= 2: the standard errors);
    ``seed`` (None: 0). Returns a :class:`KernelCommutation`.
    """
    ws, ds = _check_grid(widths, "widths", 2), _check_grid(depths, "depths", 2)
    if X is None:
        X = _data.teacher(P=8, D=4, seed=0).X
    X = _data.validate(X)[0]
    act_name = _activations.get(activation).name
    beta = checks.positive(beta, "beta")
    seeds = checks.integer(seeds, "seeds", 2)
    seed = 0 if seed is None else checks.seed(seed)
    progress = checks.boolean(progress, "progress")
    ref = _reference(X, activation, beta)
    errors = {k: np.full((len(ws) + 1, len(ds)), np.nan) for k in KINDS}
    stderr = {k: np.full((len(ws), len(ds)), np.nan) for k in KINDS}
    for k, L in enumerate(ds):
        for kind, err in _limit_row(X, activation, beta, int(L), ref).items():
            errors[kind][-1, k] = err
        for i, n in enumerate(ws):
            per = _finite_errors(X, activation, beta, int(L), int(n), seeds, seed, progress, ref)
            for kind in KINDS:
                errors[kind][i, k] = per[kind].mean()
                stderr[kind][i, k] = per[kind].std(ddof=1) / np.sqrt(seeds)
    meta = {"param": "depth-mup", "activation": act_name, "seeds": seeds, "seed": seed, "beta": beta, "P": X.shape[0]}
    return KernelCommutation(ws, ds, errors, stderr, meta)


def _reference(X, activation, beta: float) -> dict[str, np.ndarray]:
    """The infinite-depth-and-width kernels ``K_inf``."""
    from ..kernels import resnet_infinite_depth

    inf = resnet_infinite_depth(activation, 1.0, 0.0, beta)(X)
    return {"nngp": np.asarray(inf.nngp), "ntk": np.asarray(inf.ntk)}


def _relative(K, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(K) - ref, axis=(-2, -1)) / np.linalg.norm(ref)


def _limit_row(X, activation, beta: float, L: int, ref: dict) -> dict[str, float]:
    """Errors of the finite-depth infinite-width kernels (the ``n = inf`` row)."""
    from ..kernels import resnet

    lim = resnet(L, activation, 1.0, 0.0, beta * L**-0.5)(X)
    return {"nngp": float(_relative(lim.nngp, ref["nngp"])), "ntk": float(_relative(lim.ntk, ref["ntk"]))}


def _finite_errors(X, activation, beta: float, L: int, n: int, seeds: int, seed: int, progress: bool,
                   ref: dict) -> dict[str, np.ndarray]:
    """Per-seed errors (S,) of the empirical kernels at init of the width-``n`` depth-``L`` network."""
    from ..finite import simulate
    from ..parametrization import param

    p = param("depth-mup", L, beta=beta)
    y = np.zeros(X.shape[0])
    # one step (the kernels are read at step 0, before it): steps >= 1 everywhere in the API
    t = simulate(p, L, n, X=X, y=y, activation=activation, steps=1, seeds=seeds, seed=seed, record=("ntk", "kernels"),
                 progress=progress)
    emp = {"nngp": np.asarray(t.kernels_per_seed[f"phi{L + 1}"])[:, 0], "ntk": np.asarray(t.ntk_per_seed)[:, 0]}
    return {kind: _relative(emp[kind], ref[kind]) for kind in KINDS}
