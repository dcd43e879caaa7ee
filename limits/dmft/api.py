"""``solve_dmft``: the feature-learning (muP / mean-field) infinite-width limit, marched once in time.

validate the inputs -> compile the table (:meth:`limits.Parametrization.dmft_limit`) -> solve
(:mod:`~limits.dmft.monte_carlo` march, :mod:`~limits.dmft.linear`, :mod:`~limits.dmft.resnet`,
:mod:`~limits.dmft.layer_time`) -> assemble the :class:`~limits.trajectory.Trajectory`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

from .. import activations as _acts
from .. import checks
from ..checks import integer, positive
from ..checks import default_data
from ..trajectory import Trajectory
from . import monte_carlo as mc
from .methods import Exact, MonteCarlo

__all__ = ["solve_dmft"]

_RECORD = ("ntk", "kernels", "two_time")
DEFAULT_SAMPLES = 8192
DEFAULT_SAMPLES_TWO_LAYER = 65536  # no path histories: O(S n P), seconds at most
DEFAULT_DEPTH_STEPS = {"exact": 64, "monte carlo": 4}


@dataclasses.dataclass(frozen=True)
class _Problem:
    """The data of one solve: ``Kx_all`` (Pa, Pa) input kernel of the train then test points, ``y_all`` (Pa,)
    targets (0 for test points), ``mask`` (Pa,) 1 on train points; ``P`` train points, ``y`` (P,)."""

    Kx_all: np.ndarray
    y_all: np.ndarray
    mask: np.ndarray
    P: int
    y: np.ndarray

    @classmethod
    def of(cls, X, y, X_test):
        X_all = X if X_test is None else np.concatenate([X, X_test], axis=0)
        Q = 0 if X_test is None else X_test.shape[0]
        return cls(X_all @ X_all.T / X.shape[1], np.concatenate([y, np.zeros(Q)]),
                   np.concatenate([np.ones(len(y)), np.zeros(Q)]), len(y), y)

    def data(self):
        return dict(Kx_all=self.Kx_all, y_all=self.y_all, train_mask=self.mask)


def solve_dmft(
    param="mup",
    depth=None,
    width=math.inf,
    *,
    X=None,
    y=None,
    activation="tanh",
    gamma0: float | None = None,
    lr: float = 0.5,
    steps: int = 100,
    X_test=None,
    y_test=None,
    seed: int | None = None,
    record=("ntk", "kernels"),
    progress: bool = True,
    method: MonteCarlo | Exact | None = None,
    depth_steps: int | None = None,
) -> Trajectory:
    """Infinite-width DMFT of full-batch gradient descent for a parametrization table.

    Network (DESIGN.md): ``h1 = W0 x/sqrt(D)``, ``h_{l+1} = W_l phi(h_l)/sqrt(N)``, mup readout
    ``f = w.phi(h_L)/(gamma N)``, raw learning rate ``lr gamma^2 N``, loss ``1/(2P) sum (f-y)^2``, ``steps``
    steps of full-batch GD. The table is compiled by :meth:`limits.Parametrization.dmft_limit` (richness,
    per-layer multipliers, init stds and learning-rate factors, residual branch weights); what the DMFT does
    not model (Adam, unstable tables) raises ``ValueError`` naming the field. Kernel-regime tables at
    ``width = inf`` go to :func:`limits.solve_kernel`. The equations (docs/theory/dmft.md) are causal and are
    solved in one pass forward in time; no fixed-point iteration.

    Args:
        param: preset name (``"mup"``, ``"depth-mup"``, ...) or a :class:`limits.Parametrization`.
        depth: hidden layers (MLP) or residual blocks; ``math.inf`` for the layer-time limit of a residual preset;
            None: the table's own depth (1 for a preset name).
        width: ``math.inf``, or a finite width N: the network of that width to O(1/N) (docs/theory/finite_width.md):
            the table's width-N constants (``ntk``: ``gamma = 1/sqrt N``) and, for two-layer MLPs (Monte Carlo
            paths; ReLU by central differences) and linear MLPs of any depth (exact), the covariance over
            initializations, the mean shift and the expected loss; for deeper MLPs with a smooth activation (small
            grids) the covariances and the loss's variance term, not the mean shift; other architectures warn and
            return the DMFT of the width-N constants (``meta["finite_width"]`` says which).
        X: (P, D) train inputs. y: (P,) targets (both None: ``limits.datasets.teacher()``).
        X_test: (Q, D) or None. y_test: (Q,) test targets (gives ``test_loss``) or None.
        activation: name (``linear``, ``relu``, ``tanh``, ``erf``, ``gelu``) or callable.
        gamma0: richness of a preset (default 1); rejected with a table (it carries its constants).
        lr: learning rate. steps: gradient steps (the trajectory has ``steps + 1`` entries).
        method: :class:`limits.dmft.MonteCarlo` (any activation) or :class:`limits.dmft.Exact` (linear);
            None: ``Exact()`` for ``activation="linear"``, else ``MonteCarlo()``.
        seed: seed of the Monte Carlo sources (default 0); rejected with ``Exact``.
        record: names from ``("ntk", "kernels", "two_time")`` (a name, a sequence, or None for none): ``"ntk"``
            (steps+1, P, P); ``"kernels"``: ``phi1..``, ``g1..`` of shape (steps+1, P, P) (``phi_tau``, ``g_tau`` at
            depth inf); ``"two_time"``: ``phi1_tt``, ``g1_tt``, .. of shape (steps+1, steps+1, P, P).
        depth_steps: steps in layer time at ``depth=math.inf``: Heun steps of the linear ODEs (``Exact``, default
            64, error O(depth_steps^-2)) or Euler-Maruyama steps of the Monte Carlo SDE (even, default 4), marched
            with ``depth_steps/2`` (and ``/4``) on coupled sources and Richardson-extrapolated.
        progress: a progress bar over the time steps.

    Returns:
        :class:`~limits.trajectory.Trajectory`: ``loss`` (steps+1,), ``predictions`` (steps+1, P),
        ``test_predictions`` (steps+1, Q), ``test_loss`` (steps+1,) with ``y_test``,
        ``prediction_stderr`` (steps+1, P) (Monte Carlo), ``loss_stderr`` (steps+1,) (Monte Carlo error: the spread of 16 Sobol
        blocks of the paths, a conservative estimate; 0 for exact equations), ``ntk`` (steps+1, P, P) (the lr-weighted NTK: to first order
        ``f(t+1) - f(t) = lr/P NTK(t) Delta(t)``), ``kernels``, ``meta`` (:data:`limits.checks.META_KEYS`, then the compiled table),
        ``diagnostics`` (informational: samples and how they were chosen). At a finite ``width`` (two-layer, or linear of any depth):
        ``predictions`` the width-N means, ``prediction_cov`` (steps+1, P, P), ``test_prediction_cov`` (steps+1, Q, Q),
        ``loss`` the expected loss with its variance term, ``loss_std`` (steps+1,), ``ntk_var`` / ``kernel_vars``
        (entry variances) with ``record`` "ntk" / "kernels"; ``ntk`` and ``kernels`` stay the infinite-width means.

    Cost: ``O(S n^2)`` per field for ``S`` paths on ``n = (steps + 1)(P + Q)`` grid points (a few products of the
    path histories per time step; the residual control variates multiply it by about ``2 L + 2``), ``O(n^3)``
    for the Cholesky factors; exact linear: ``O(L n^3)``. Memory ``O(S n)`` per history.
    """
    t_start = time.perf_counter()
    X, y, X_test, y_test = default_data(X, y, X_test, y_test)
    steps = integer(steps, "steps", 1)
    lr = positive(lr, "lr")
    record = checks.record(record, supported=_RECORD)
    progress = checks.boolean(progress, "progress")
    table, infinite, gamma0 = _table(param, depth, gamma0)
    width = checks.width(width)
    act = _acts.get(activation)
    cls = table.classify()
    if math.isinf(width) and cls.regime in ("kernel", "trivial") and not infinite:
        _reject_dmft_options(method, seed, depth_steps, cls.regime)
        from ..kernels import solve_kernel

        if "two_time" in record:
            raise ValueError(f"record: 'two_time' kernels belong to the DMFT; this table is in the {cls.regime!r} regime "
                             f"at width=inf (kernel gradient descent, constant kernels): drop 'two_time'")
        traj = solve_kernel(table, table.depth, X=X, y=y, activation=activation, lr=lr, steps=steps, X_test=X_test,
                            y_test=y_test, record=tuple(record), progress=progress)
        traj.meta["gamma0"] = gamma0
        return traj
    limit = table.dmft_limit(width, infinite_depth=infinite)
    method = _method(method, act)
    seed = _seed(seed, method)
    depth_steps = _depth_steps(depth_steps, infinite, method, record, limit)
    problem = _Problem.of(X, y, X_test)
    sol, extra = _solve(limit, act, method, problem, steps=steps, lr=lr, seed=seed, record=record,
                        depth_steps=depth_steps, progress=progress)
    if sol.diverged_at is not None:
        raise FloatingPointError(f"the gradient-descent dynamics diverge at step {sol.diverged_at} (predictions grow "
                                 f"without bound) with lr={lr:g}; use a smaller lr (e.g. lr={lr / 4:g})")
    traj = _trajectory(sol, extra, table, limit, act, method, problem, width=width, depth=math.inf if infinite
                       else table.depth, steps=steps, lr=lr, gamma0=gamma0, seed=seed, record=record, t_start=t_start)
    traj.meta["data"] = checks.fingerprint(X, y, X_test, y_test)
    traj = _with_test_loss(traj, y_test)
    if math.isinf(width):
        return traj
    from .finite_width import at_width

    traj = at_width(traj, width, limit=limit, act=act, problem=problem, lr=lr, seed=0 if seed is None else seed,
                    record=record, y_test=y_test, qmc=getattr(method, "qmc", True),
                    antithetic=getattr(method, "antithetic", True), progress=progress)
    traj.meta["wall_s"] = time.perf_counter() - t_start
    return traj


def _with_test_loss(traj: Trajectory, y_test) -> Trajectory:
    """``traj`` with ``test_loss`` (steps+1,) ``= 1/(2Q) sum (f_test - y_test)^2`` when ``y_test`` is given."""
    if y_test is None:
        return traj
    return traj.replace(test_loss=0.5 * np.mean((traj.test_predictions - y_test) ** 2, axis=1))


# ----------------------------------------------------------------------------- validation
def _table(param, depth, gamma0):
    """``(table, infinite, gamma0)``: the :class:`~limits.Parametrization` to solve, whether ``depth = inf``, and the
    preset's richness (None for a table); finite depths: :func:`limits.parametrization.entry_table`."""
    from ..parametrization import RESIDUAL_PRESETS, Parametrization, entry_table, resolve

    infinite = isinstance(depth, (float, np.floating)) and math.isinf(depth) and depth > 0
    if not infinite:
        table, gamma0 = entry_table(param, depth, gamma0=gamma0)
        return table, False, gamma0
    if isinstance(param, Parametrization):
        raise ValueError("depth=math.inf needs a residual preset name (e.g. 'depth-mup'); a table has a fixed depth")
    if not isinstance(param, str) or param not in RESIDUAL_PRESETS:
        raise ValueError(f"depth=math.inf is the layer-time limit of a residual preset ({', '.join(RESIDUAL_PRESETS)}); "
                         f"{param!r} has none")
    gamma0 = 1.0 if gamma0 is None else checks.positive(gamma0, "gamma0")
    return resolve(param, 4, gamma0=gamma0), True, gamma0  # a probe: the limit reads the per-block constants only




def _reject_dmft_options(method, seed, depth_steps, regime):
    for name, value in (("method", method), ("seed", seed), ("depth_steps", depth_steps)):
        if value is not None:
            raise ValueError(f"{name}= applies to the DMFT; this table is in the {regime!r} regime at width=inf and is "
                             f"solved by kernel gradient descent (limits.solve_kernel): drop {name}=")


def _method(method, act):
    if method is None:
        return Exact() if act is _acts.get("linear") else MonteCarlo()
    if isinstance(method, Exact):
        if act is not _acts.get("linear"):
            raise ValueError(f"method=Exact() solves linear networks (activation='linear'); activation {act.name!r} "
                             f"needs method=limits.dmft.MonteCarlo()")
        return method
    if isinstance(method, MonteCarlo):
        return method
    raise checks.ArgumentTypeError(f"method must be limits.dmft.MonteCarlo(...), limits.dmft.Exact(...) or None, got {method!r}")


def _seed(seed, method):
    if isinstance(method, Exact):
        if seed is not None:
            raise ValueError("seed= applies to Monte Carlo sources; method=Exact() has none")
        return None
    return 0 if seed is None else checks.seed(seed)


def _depth_steps(depth_steps, infinite, method, record, limit):
    kind = "exact" if isinstance(method, Exact) else "monte carlo"
    if not infinite:
        if depth_steps is not None:
            raise ValueError("depth_steps= applies to depth=math.inf (layer time); this depth is finite")
        if "two_time" in record and limit.residual and kind == "exact":
            raise ValueError("record='two_time' is not available for the exact linear residual solver; drop it, or "
                             "use method=limits.dmft.MonteCarlo()")
        return None
    if "two_time" in record:
        raise ValueError("record='two_time' is not available at depth=math.inf; drop it, or use a finite depth")
    K = DEFAULT_DEPTH_STEPS[kind] if depth_steps is None else integer(depth_steps, "depth_steps", 1)
    if kind == "monte carlo" and (K < 2 or K % 2):
        raise ValueError(f"depth_steps must be an even integer >= 2 for the Monte Carlo layer-time solver (Richardson "
                         f"extrapolation from depth_steps, depth_steps/2, ..), got {depth_steps!r}")
    return K


# ----------------------------------------------------------------------------- solve
def _solve(limit, act, method, problem: _Problem, *, steps, lr, seed, record, depth_steps, progress):
    """``(Solution, extra)``; ``extra`` holds what a solver adds (NTK at depth inf, levels, samples rule)."""
    from . import layer_time, linear, resnet

    kw = dict(problem.data(), steps=steps, lr=lr)
    if isinstance(method, Exact):
        if limit.layer_time is not None:
            sol, ntk = resnet.solve_layer_time(**kw, limit=limit, depth_steps=depth_steps, blocks=method.blocks,
                                               progress=progress)
            return sol, {"ntk": ntk, "method": f"layer-time linear ODEs, Heun with {depth_steps} steps in tau"}
        if limit.residual:
            return (resnet.solve(**kw, limit=limit, blocks=method.blocks, progress=progress),
                    {"method": "linear residual Riccati sweep, marched in time"})
        return (linear.solve(**kw, limit=limit, two_time="two_time" in record, blocks=method.blocks,
                             progress=progress), {"method": "deep-linear kernel equations, marched in time"})
    jitter = method.stein_jitter if method.stein_jitter is not None else (1e-4 if limit.residual else 1e-3)

    def run(S):
        if limit.layer_time is not None:
            level = layer_time.monte_carlo_level(act, **problem.data(), steps=steps, lr=lr, samples=S, seed=seed,
                                                 qmc=method.qmc, stein_jitter=jitter, dtype=method.dtype,
                                                 antithetic=method.antithetic, blocks=method.blocks, progress=progress)
            res = layer_time.solve(limit, depth_steps, level, Kx_all=problem.Kx_all)
            return res.solution, {"ntk": res.ntk, "levels": res}
        _check_memory(mc.process(act, limit, S=S, steps=steps, Pa=problem.Kx_all.shape[0], P=problem.P,
                                 dtype=method.dtype, two_time="two_time" in record, mirrored=method.antithetic))
        draw = mc.resnet_sources if limit.residual else mc.mlp_sources
        sources = draw(S, limit.fields, steps + 1, problem.Kx_all.shape[0], seed, method.qmc,
                       antithetic=method.antithetic)
        pr, consts = mc.build(act, **kw, limit=limit, sources=sources, stein_jitter=jitter, dtype=method.dtype,
                              two_time="two_time" in record, mirrored=method.antithetic)
        return mc.solve(pr, consts, blocks=method.blocks, progress=progress), {}

    n = (steps + 1) * problem.Kx_all.shape[0]
    needed = _samples_for_responses(limit, n)
    S, rule = method.samples, None
    if S is not None and S < needed:
        warnings.warn(f"samples={S} is below {needed} (5 n as a power of 2, n = (steps+1) x points = {n}): the response functions "
                      f"regress each path on the sources of all n earlier grid points, and with S/n = {S / n:.1f} "
                      f"their noise biases late, small losses (measured: 10-40% at S/n = 5 with one-sided sources, "
                      f"a factor 3 at S/n = 2.5; docs/theory/dmft.md section 7); use samples >= {needed}",
                      RuntimeWarning, stacklevel=3)
    if S is None:
        base = DEFAULT_SAMPLES_TWO_LAYER if limit.fields == 1 else DEFAULT_SAMPLES
        S = max(base, needed)
        rule = f"default: max({base}, 5 n) paths (n = {n} grid points)"
    sol, extra = run(S)
    if method.target_stderr is not None:
        S2, rule2 = _samples_rule(sol, problem, method, S)
        rule = f"{rule}; {rule2}" if rule else rule2
        if S2 != S:
            S = S2
            sol, extra = run(S)
    extra.update(samples=S, samples_rule=rule, stein_jitter=jitter,
                 method=("layer-time Monte Carlo march (Euler-Maruyama levels, Richardson)" if limit.layer_time
                         else "Monte Carlo march") + f" ({S} paths, {method.dtype})")
    return sol, extra


def _check_memory(pr):
    """Raise before a march that would not fit in this machine's memory (rough estimate, :func:`memory_bytes`)."""
    import os

    from .march import memory_bytes

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platform without sysconf
        return
    need = memory_bytes(pr)
    if need > 0.9 * total:
        fits = int(pr.S * 0.9 * total / need)
        raise MemoryError(f"the march needs about {need / 1e9:.1f} GB for samples={pr.S} on n = {pr.n} grid points "
                          f"(this machine has {total / 1e9:.1f} GB): use at most samples={2 ** max(4, fits.bit_length() - 1)}, "
                          f"dtype='float32', or fewer steps or points")


def _samples_for_responses(limit, n: int) -> int:
    """Paths the Stein response functions need on a grid of ``n`` points: ``5 n`` (a power of 2) when the process has
    responses (two fields or more), else none beyond the first pass."""
    if limit.layer_time is not None:
        responses = limit.layer_time[0] > 0  # branch noise: CompleteP's vanishes, and its responses with it
    else:
        responses = limit.fields >= 2 and (not limit.residual or any(b > 0 for b in limit.b[1:-1]))
    return int(2 ** math.ceil(math.log2(5 * n))) if responses else 0


def _relative_loss_error(sol, problem: _Problem) -> float:
    """Largest relative standard error of the loss over the trajectory (loss floored at 1e-3 of its start)."""
    loss = 0.5 * np.mean((sol.f[:, : problem.P] - problem.y) ** 2, axis=1)
    return float(np.max(sol.loss_se / np.maximum(loss, 1e-3 * loss[0])))


def _samples_rule(sol, problem: _Problem, method: MonteCarlo, S0: int):
    """Paths for the target error from the first pass of ``S0`` paths: ``S = S0 (rel / target)^2`` as a power of 2 in
    ``[S0, max_samples]``; returns ``(S, rule text)``."""
    rel = _relative_loss_error(sol, problem)
    want = S0 * (rel / method.target_stderr) ** 2
    S = int(min(method.max_samples, max(S0, 2 ** math.ceil(math.log2(max(want, 1.0))))))
    rule = (f"pass of {S0} paths: relative loss standard error {rel:.3g} -> {S} paths for target "
            f"{method.target_stderr:g}")
    if want > method.max_samples:
        warnings.warn(f"the target relative loss error {method.target_stderr:g} needs about {int(want)} paths, above "
                      f"MonteCarlo.max_samples={method.max_samples}; solving with {S} (expected error "
                      f"{rel * math.sqrt(S0 / S):.2g}): raise max_samples or target_stderr", RuntimeWarning, stacklevel=4)
    return S, rule


# ----------------------------------------------------------------------------- result
def _two_time(M, T1, Pa, P):
    """(T1, T1, P, P) of an (n, n) two-time matrix whose block rows hold the times ``s <= t`` (lower block
    triangle), completed by symmetry."""
    K4 = np.asarray(M).reshape(T1, Pa, T1, Pa)[:, :P, :, :P].transpose(0, 2, 1, 3)
    lower = np.tril(np.ones((T1, T1), bool), -1)
    out = K4.copy()
    out[lower.T] = K4.transpose(1, 0, 3, 2)[lower.T]
    return out


def _kernels(sol, limit, record, T1, Pa, P, infinite):
    """The recorded kernels: equal-time ``phi{k}``, ``g{k}`` (T1, P, P) for ``"kernels"`` (``phi_tau``, ``g_tau`` of
    shape (T1, K+1, P, P) at depth inf), two-time ``phi{k}_tt``, ``g{k}_tt`` (T1, T1, P, P) for ``"two_time"``."""
    out = {}
    if infinite:
        if "kernels" in record:
            out = {"phi_tau": sol.phi.transpose(1, 0, 2, 3)[:, :, :P, :P],
                   "g_tau": sol.g.transpose(1, 0, 2, 3)[:, :, :P, :P]}
        return out
    for k in range(1, limit.fields + 1):
        if "kernels" in record:
            out[f"phi{k}"], out[f"g{k}"] = sol.phi[:, k - 1, :P, :P], sol.g[:, k - 1, :P, :P]
        if "two_time" in record:
            out[f"phi{k}_tt"] = _two_time(sol.two[f"Phi{k}"], T1, Pa, P)
            out[f"g{k}_tt"] = _two_time(sol.two[f"G{k}"], T1, Pa, P)
    return out


def _trajectory(sol, extra, table, limit, act, method, problem, *, width, depth, steps, lr, gamma0, seed, record,
                t_start):
    P, Pa, T1 = problem.P, problem.Kx_all.shape[0], steps + 1
    infinite = limit.layer_time is not None
    preds = sol.f[:, :P]
    ntk = extra["ntk"] if "ntk" in extra else mc.ntk(sol, problem.Kx_all, limit.kappa)
    meta = {"solver": "dmft", "param": table.name.replace("depth 4", "depth inf") if infinite else table.name,
            "depth": depth, "width": width, "activation": act.name, "gamma0": gamma0, "lr": float(lr), "steps": steps,
            "seed": seed, "method": repr(method), "wall_s": time.perf_counter() - t_start,
            "regime": "feature_learning", "gamma": limit.gamma, "residual": limit.residual,
            "source_scales": limit.b, "lr_weights": limit.kappa}
    diagnostics = {"method": extra["method"], "samples": extra.get("samples"), "samples_rule": extra.get("samples_rule"),
                   "loss_stderr_kind": "exact (deterministic equations)" if isinstance(method, Exact) else
                   "spread of the loss over 16 Sobol blocks of the paths given the kernels (conservative: measured "
                   "1.5-8x the seed-to-seed spread on the reference problems; docs/theory/dmft.md section 7)"}
    if isinstance(method, MonteCarlo):
        diagnostics.update(stein_jitter=extra["stein_jitter"])
    if limit.residual and not infinite:
        meta.update(branch_weight_per_block=limit.b[1] ** 2, lr_weight_per_block=limit.kappa[1])
    if infinite:
        meta.update(depth_steps=sol.phi.shape[1] - 1 if isinstance(method, Exact) else extra["levels"].levels[0],
                    branch_variance_density=limit.layer_time[0], lr_density=limit.layer_time[1])
        meta["tau"] = np.arange(sol.phi.shape[1]) / (sol.phi.shape[1] - 1)
        if "levels" in extra:
            lv = extra["levels"]
            level_loss = {k: 0.5 * np.mean((f[:, :P] - problem.y) ** 2, axis=1) for k, f in lv.level_f.items()}
            meta.update(depth_levels=lv.levels, richardson_weights=lv.weights)
            diagnostics.update(loss_depth_steps=level_loss,
                               depth_error=np.abs(0.5 * np.mean((preds - problem.y) ** 2, axis=1) - level_loss[lv.levels[0]]))
    return Trajectory(loss=0.5 * np.mean((preds - problem.y) ** 2, axis=1), predictions=preds,
                      test_predictions=None if Pa == P else sol.f[:, P:], loss_stderr=sol.loss_se,
                      prediction_cov=np.zeros((T1, P, P)), ntk=ntk[:, :P, :P] if "ntk" in record else None,
                      kernels=_kernels(sol, limit, record, T1, Pa, P, infinite),
                      kernel_steps=np.arange(T1) if record & {"ntk", "kernels"} else None,
                      prediction_stderr=sol.f_se[:, :P] if isinstance(method, MonteCarlo) else None,
                      meta=meta, diagnostics=diagnostics)
