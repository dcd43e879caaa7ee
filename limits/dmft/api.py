"""``solve_dmft``: the feature-learning (mup / mean-field) infinite-width limit."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .. import activations as _acts
from ..data import validate
from ..trajectory import Trajectory
from .iteration import causal_windows, check_divergence, fixed_point

__all__ = ["solve_dmft"]

_RECORD = ("equal_time", "two_time", "none")


def _resolve(param, depth, gamma0, width):
    from ..parametrization import Parametrization, resolve

    if not isinstance(param, (str, Parametrization)):
        raise ValueError(f"param must be a preset name or a Parametrization, got {type(param).__name__}")
    p = resolve(param, depth, gamma0=gamma0)
    cls = p.classify()
    if cls.regime == "unstable":
        raise ValueError(f"parametrization {p.name!r} is unstable, it has no infinite-width limit:\n  "
                         + "\n  ".join(cls.reasons))
    if not (isinstance(width, (int, float, np.integer, np.floating)) and width > 0):
        raise ValueError(f"width must be a positive integer or math.inf, got {width!r}")
    return p, cls


def solve_dmft(
    param="mup",
    depth: int = 1,
    width=math.inf,
    *,
    X,
    y,
    activation="tanh",
    gamma0: float = 1.0,
    lr: float = 0.5,
    steps: int = 100,
    X_test=None,
    samples: int | None = None,
    seed: int = 0,
    backend: str = "jax",
    record: str = "equal_time",
    max_iter: int = 200,
    tol: float = 1e-7,
    damping: float | None = None,
    progress: bool = True,
    target_stderr: float = 0.01,
    relu_width: float = 0.1,
    response_samples: int | str | None = "auto",
    qmc: bool = True,
    responses: str = "stein",
    stein_jitter: float | None = None,
    depth_steps: int | None = None,
    dtype: str = "float64",
    window_problems: bool | str = "auto",
) -> Trajectory:
    """Infinite-width DMFT of full-batch gradient descent for the pinned network.

    Network (DESIGN.md): ``h1 = W0 x/sqrt(D)``, ``h_{l+1} = W_l phi(h_l)/sqrt(N)``,
    mup readout ``f = w.phi(h_L)/(gamma N)``, raw learning rate ``lr gamma^2 N``,
    loss ``1/(2P) sum (f-y)^2``, ``steps`` steps of full-batch GD (``steps + 1`` entries).
    ``gamma = param.effective_gamma(width)`` (``gamma0`` for mup, ``1/sqrt(width)`` for
    ntk at finite width). Kernel-regime tables at ``width = inf`` are delegated to
    :func:`limits.kernels.solve_kernel`; unstable tables raise ``ValueError``.

    Methods: ``activation="linear"`` solves the deterministic deep-linear kernel
    equations (no sampling); any other activation the Monte Carlo fixed point
    (``backend="jax"`` or ``"numba"``) with ``samples`` single-site paths per layer
    (``None``: chosen so the relative standard error of the loss is about
    ``target_stderr``, from three pilot solves with 256 paths, 1024..32768).

    Residual tables (``"depth-mup"``, ``"completep"``, ``"resnet"``; ``depth`` = number of
    blocks, or ``math.inf`` for linear activations) go to :func:`limits.dmft.resnet.solve_resnet_dmft`:
    exact equations for linear activations, Monte Carlo with Stein responses otherwise
    (``samples=None``: 8192 paths; ``backend`` and the ``responses`` options do not apply);
    ``dtype="float32"``: Monte Carlo paths, kernels and Stein responses in single precision (JAX
    backend; about twice the GEMM throughput on CPU, more on GPU; the answer moves by far less than
    its Monte Carlo error, see docs/theory/dmft.md section 7).
    ``window_problems``: solve the causal windows ``t < T/4, T/2, ...`` as problems of their own
    size (same fixed point, cost ``(window/T)^2`` per iteration; ``"auto"``: when ``n >= 512``).
    ``depth_steps``: steps in layer time ``tau`` at ``depth=math.inf`` for residual tables: Heun steps of the
    linear ODEs (default 64), or the Euler-Maruyama steps of the nonlinear Monte Carlo SDE (default 4, even),
    Richardson-extrapolated with half as many; error O(depth_steps^-2) either way.

    Cost per fixed-point iteration with ``n = (steps+1) (P + Q)`` (Q test points),
    ``S`` samples, ``L = depth``: ``O(L S n^2)`` for the sample paths, kernels and the
    Stein response functions A, B (depth >= 2), ``O(L n^3)`` for the Gaussian factors and
    triangular solves; memory ``O(L n^2 + S n)``. ``responses="tangent"`` estimates A, B by
    per-path tangent solves instead, ``O((L-1) R n^3)`` with ``R = response_samples``. Deep
    linear: ``O(L n^3)`` per iteration. Iterations: typically 10-30 (``tol`` on the largest
    relative change of the predictions and kernels, or the Monte Carlo floor, with
    ``damping``; depth >= 2 converges the trajectory in four causal windows).

    ``record``: ``"equal_time"`` (kernels ``phi1..phiL``, ``g1..gL`` at t = s, shape
    (steps+1, P, P)), ``"two_time"`` (also ``phi1_tt``..., (steps+1, steps+1, P, P)),
    or ``"none"``. ``responses``: ``"stein"`` (default) estimates the response functions by
    Gaussian integration by parts on the sample paths (unbiased for every activation, ReLU
    included; ``stein_jitter`` (default 1e-3, residual tables 1e-4) bounds its noise amplification, bias O(jitter), see
    docs/theory/dmft.md section 4a); ``"tangent"`` by per-path linearization over the first
    ``response_samples`` paths (``"auto"`` = 512 for smooth activations, all for ReLU,
    whose phi'' = delta is smoothed to a Gaussian of std ``relu_width``, a biased estimate).
    """
    from . import resnet as _resnet

    if _resnet.is_residual_request(param):  # residual tables (depth may be math.inf): limits/dmft/resnet.py
        exact = _acts.get(activation) is _acts.get("linear")  # deterministic equations: converge tightly
        return _resnet.solve_resnet_dmft(param, depth, width, X=X, y=y, activation=activation, gamma0=gamma0, lr=lr,
                                         steps=steps, X_test=X_test, record=record, tol=min(tol, 1e-10) if exact else tol,
                                         max_iter=max_iter, damping=damping, progress=progress and not exact,
                                         samples=samples, seed=seed, qmc=qmc, stein_jitter=stein_jitter,
                                         depth_steps=depth_steps)
    t_start = time.perf_counter()
    X, y, X_test = validate(X, y, X_test)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (number of hidden layers), got {depth!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if backend not in ("jax", "numba"):
        raise ValueError(f"unknown backend {backend!r}; use 'jax' or 'numba'")
    if record not in _RECORD:
        raise ValueError(f"record must be one of {_RECORD}, got {record!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2):
        raise ValueError(f"samples must be an integer >= 2 or None, got {samples!r}")
    act = _acts.get(activation)
    if responses not in ("stein", "tangent"):
        raise ValueError(f"responses must be 'stein' or 'tangent', got {responses!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if dtype == "float32" and (backend != "jax" or responses != "stein"):
        raise ValueError("dtype='float32' needs backend='jax' and responses='stein'")
    stein_jitter = 1e-3 if stein_jitter is None else stein_jitter
    if not (isinstance(stein_jitter, (int, float)) and 0 < stein_jitter < 1):
        raise ValueError(f"stein_jitter must be in (0, 1), got {stein_jitter!r}")
    if response_samples == "auto":
        response_samples = None if act.name == "relu" else 512
    elif response_samples is not None and (isinstance(response_samples, bool) or not isinstance(response_samples, (int, np.integer)) or response_samples < 1):
        raise ValueError(f"response_samples must be a positive integer, None or 'auto', got {response_samples!r}")
    depth, steps = int(depth), int(steps)
    p, cls = _resolve(param, depth, gamma0, width)
    gamma = float(p.effective_gamma(width))
    meta = {
        "solver": "dmft", "parametrization": p.name, "regime": cls.regime, "width": width, "depth": depth,
        "activation": act.name, "lr": float(lr), "gamma0": float(gamma0), "gamma": gamma, "steps": steps,
        "backend": backend, "seed": seed,
    }
    if math.isinf(width) and (cls.regime in ("kernel", "trivial") or gamma == 0.0):
        try:
            from ..kernels import solve_kernel
        except ImportError as exc:  # pragma: no cover - depends on the kernels module
            raise NotImplementedError("the kernel-regime limit needs limits.kernels.solve_kernel") from exc
        return solve_kernel(p, depth, X=X, y=y, activation=activation, lr=lr, steps=steps, X_test=X_test)
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"effective richness gamma = {gamma} of {p.name!r} at width {width} is not positive and finite")

    from . import solver as _mc

    P, D = X.shape
    X_all = X if X_test is None else np.concatenate([X, X_test], axis=0)
    Q = 0 if X_test is None else X_test.shape[0]
    Kx = X_all @ X_all.T / D
    y_all = np.concatenate([y, np.zeros(Q)])
    mask = np.concatenate([np.ones(P), np.zeros(Q)])
    linear = act.is_linear and act is _acts.get("linear")
    if damping is not None and not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")

    state0 = _mc.initial_state(act, Kx, y_all, mask, lr, gamma, depth, steps)
    check_divergence(np.asarray(state0["f"]).reshape(steps + 1, -1)[:, :P], y, lr)

    def build(S, seed_=seed):
        if linear:
            from .linear import LinearProblem

            return LinearProblem(Kx_all=Kx, y_all=y_all, train_mask=mask, depth=depth, steps=steps, gamma=gamma, lr=lr)
        kw = dict(act=act, Kx_all=Kx, y_all=y_all, train_mask=mask, depth=depth, steps=steps, gamma=gamma, lr=lr,
                  samples=S, seed=seed_, relu_width=relu_width, qmc=qmc, response_samples=response_samples,
                  responses=responses, stein_jitter=stein_jitter)
        if backend == "numba":
            from ._numba import NumbaProblem

            return NumbaProblem(window_problems=window_problems, **kw)
        return _mc.MonteCarloProblem(dtype=dtype, window_problems=window_problems, **kw)

    T1 = steps + 1

    if linear:
        schedules = [[T1]]
    elif depth == 1:  # the whole trajectory first; causal continuation only if that blows up
        schedules = [[T1], causal_windows(T1)]
    else:  # the whole-trajectory iteration of depth >= 2 can settle on a spurious state (ReLU): always continue
        schedules = [causal_windows(T1)]

    def iterate(problem, n_iter, desc="DMFT fixed point"):
        return fixed_point(problem, state0, schedules=schedules, y=y, tol=tol, max_iter=n_iter, damping=damping,
                           monte_carlo=not linear, progress=progress, desc=desc)

    sample_rule = None
    S = samples
    pilot_sd = None
    if not linear and S is None:
        # three independent randomized-QMC pilots of 256 paths; their spread sets S assuming the
        # plain Monte Carlo rate 1/sqrt(S) (conservative: scrambled Sobol converges faster)
        S0 = 256
        losses_p = []
        for rep in range(3):
            pb = build(S0, seed + 7919 * rep)
            st = iterate(pb, min(max_iter, 30), f"DMFT pilot {rep + 1}/3")[0]
            f_p = np.asarray(st["f"]).reshape(steps + 1, -1)[:, :P]
            losses_p.append(0.5 * np.mean((f_p - y) ** 2, axis=1))
        losses_p = np.array(losses_p)
        rel = float(np.max(losses_p.std(0, ddof=1) / np.maximum(losses_p.mean(0), 1e-300)))
        S = int(min(32768, max(1024, 2 ** math.ceil(math.log2(max(1.0, S0 * (rel / target_stderr) ** 2))))))
        pilot_sd = losses_p.std(0, ddof=1) * math.sqrt(S0 / S)
        sample_rule = (f"3 pilots of {S0} paths: relative loss spread {rel:.3g} -> {S} paths for target "
                       f"{target_stderr:g} (stderr scaled as 1/sqrt(S))")
    n = T1 * (P + Q)
    if not linear and depth >= 2 and responses == "stein" and S < 8 * n:
        warnings.warn(
            f"samples={S} is below 8 n = {8 * n} (n = (steps+1) x points = {n}): the Stein estimates of the response "
            f"functions are then noisy enough that the fixed-point iteration can stall (measured: depth 2, "
            f"S/n = 3.4 hovered at residual 3e-2, S/n = 10 converged); use samples >= {8 * n}, or fewer steps or "
            f"points", RuntimeWarning, stacklevel=2)
    problem = build(S if S is not None else 0)
    state, residuals, aux, stop, damp = iterate(problem, max_iter)

    Pa = P + Q
    f_all = np.asarray(state["f"]).reshape(T1, Pa)
    converged = stop in ("tol", "monte carlo")
    kernels_ok = all(np.all(np.isfinite(np.asarray(k))) for k in state["Phi"] + state["G"])
    f_blown = not np.all(np.isfinite(f_all)) or np.abs(f_all[:, :P]).max() > 1e6 * (1.0 + np.abs(y).max())
    if not kernels_ok or stop == "blew up" or (f_blown and not converged):
        # the iteration itself blew up (a converged fixed point with huge f is diverging GD, below)
        raise FloatingPointError(
            f"the DMFT fixed-point iteration blew up (non-finite or exploding iterates after "
            f"{len(residuals)} iterations; lr={lr:g}, gamma={gamma:g}, damping={damp:g}); this is the "
            f"solver's iteration, not necessarily gradient descent: pass damping=0.5 (or smaller) and/or "
            f"use a smaller lr"
        )
    check_divergence(f_all[:, :P], y, lr)
    if not converged:
        warnings.warn(
            f"DMFT fixed point not converged after {len(residuals)} iterations (residual {residuals[-1]:.2e} > tol "
            f"{tol:g}); increase max_iter or lower damping", RuntimeWarning, stacklevel=2)
    preds = f_all[:, :P]
    loss = 0.5 * np.mean((preds - y) ** 2, axis=1)
    from . import equations as eq

    Phis = [np.asarray(k) for k in state["Phi"]]
    Gs = [np.asarray(k) for k in state["G"]]
    tr = np.arange(P)
    kernels = {}
    ntk = None
    if record != "none":
        Phi_all = [np.tile(Kx, (T1, T1))] + Phis
        G_all = Gs + [np.ones_like(Gs[0])]
        ntk = np.asarray(eq.ntk_equal_time(Phi_all, G_all, T1, Pa))[:, :P, :P]
        for l in range(depth):
            kernels[f"phi{l + 1}"] = np.asarray(eq.equal_time(Phis[l], T1, Pa))[:, :P, :P]
            kernels[f"g{l + 1}"] = np.asarray(eq.equal_time(Gs[l], T1, Pa))[:, :P, :P]
            if record == "two_time":
                kernels[f"phi{l + 1}_tt"] = Phis[l].reshape(T1, Pa, T1, Pa)[:, :P][:, :, :, tr].transpose(0, 2, 1, 3)
                kernels[f"g{l + 1}_tt"] = Gs[l].reshape(T1, Pa, T1, Pa)[:, :P][:, :, :, tr].transpose(0, 2, 1, 3)
    if linear:
        loss_se, se_kind = np.zeros(T1), "exact (deterministic equations)"
    elif pilot_sd is not None:
        loss_se, se_kind = pilot_sd, "spread of independent pilot solves, scaled by 1/sqrt(samples)"
    else:
        loss_se = np.asarray(aux["loss_stderr"])
        se_kind = "first-order plain Monte Carlo estimate over paths (an upper bound for the QMC default)"
    diagnostics = {
        "iterations": len(residuals), "residuals": np.asarray(residuals), "converged": bool(converged),
        "stopped": stop,
        "samples": None if linear else int(S), "samples_rule": sample_rule, "damping": float(damp),
        "loss_stderr_kind": se_kind,
        "method": "deep-linear kernel equations" if linear else f"Monte Carlo ({backend})",
        "wall_time": time.perf_counter() - t_start,
    }
    if not linear:
        diagnostics["prediction_stderr"] = np.asarray(aux["f_stderr"])[:, :P]
    return Trajectory(
        loss=loss, predictions=preds, test_predictions=None if Q == 0 else f_all[:, P:],
        loss_stderr=loss_se, prediction_cov=np.zeros((T1, P, P)), ntk=ntk, kernels=kernels,
        kernel_steps=np.arange(T1) if record != "none" else None, meta=meta, diagnostics=diagnostics,
    )
