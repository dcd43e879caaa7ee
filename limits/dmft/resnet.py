"""Deterministic DMFT of linear residual networks at finite depth L and at L = infinity.

Network (``limits/finite/network.py``, muP in width, DMFT units of DESIGN.md)::

    h^1 = W_0 x / sqrt(D),   h^{l+1} = h^l + b W_l phi(h^l) / sqrt(N)   (l = 1..L),
    f = w . phi(h^{L+1}) / (gamma N),   b = beta L^{-alpha},

raw learning rate ``lr gamma^2 N`` (blocks ``x eta = L^{lr_exponent}``). With
``phi = identity`` the single-site processes of all layers form one linear
Gaussian system, coupled up (h) and down (g) the depth. It is solved exactly by
a Riccati sweep in depth: down the network ``g^l = Pi_l h^l + nu_l`` (nu_l built
from the sources of layers >= l), up the network ``h^l = Y_l + R_l nu_l``
(Y_l independent of nu_l). All equations, and their layer-time limit (ODEs in
``tau = (l - 1)/L``, integrated with Heun's method), are derived in
``docs/theory/resnet_dmft.md``.

Per-block weights: ``sd = b^2`` (variance injected by a block at init) and
``kd = eta b^2`` (learning-rate weight of a block). In the depth limit
``L sd -> sigma2 = beta^2 [alpha = 1/2]`` and ``L kd -> kappa = beta^2 [1 + e - 2 alpha = 0]``.

Cost per fixed-point iteration: ``O(L n^3)`` (finite L) or ``O(K n^3)`` (``K``
layer-time steps), ``n = (steps + 1)(P + Q)``; memory ``O(L n^2)``.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from scipy.linalg import solve_triangular

from ..trajectory import Trajectory
from .iteration import check_divergence

__all__ = ["solve_resnet_dmft", "is_residual_request"]

DEFAULT_MC_DEPTH_STEPS = 4  # nonlinear layer time: Euler-Maruyama at 4 and 2 steps, Richardson-extrapolated


def is_residual_request(param) -> bool:
    """True when ``param`` names (or is) a residual table."""
    from ..parametrization import RESIDUAL_PRESETS, Parametrization

    if isinstance(param, str):
        return param.lower() in RESIDUAL_PRESETS
    return isinstance(param, Parametrization) and param.is_residual


# ----------------------------------------------------------------------------- helpers
def _masks(T1, P):
    t = np.repeat(np.arange(T1), P)
    return (t[:, None] > t[None, :]).astype(np.float64)


def _equal_time(K, T1, P):
    K4 = K.reshape(T1, P, T1, P)
    idx = np.arange(T1)
    return K4[idx, :, idx, :]


def _unit_lower_inv(Mat):
    """Inverse of the unit lower-triangular ``I - Mat`` (Mat strictly causal in time)."""
    n = Mat.shape[0]
    return solve_triangular(np.eye(n) - Mat, np.eye(n), lower=True, unit_diagonal=True, check_finite=False)


def _march(F, f_old, y_flat, mask_flat, ntk_t, lr, P, T1, Pa):
    """Same preconditioned march as ``limits.dmft.equations.march`` (NumPy)."""
    F = F.reshape(T1, Pa)
    fo = f_old.reshape(T1, Pa)
    yy, m = y_flat[:Pa], mask_flat[:Pa]
    out = np.empty_like(F)
    out[0] = F[0]
    for t in range(T1 - 1):
        d_new = (yy - out[t]) * m
        d_old = (yy - fo[t]) * m
        out[t + 1] = out[t] + (F[t + 1] - F[t]) + (lr / P) * (ntk_t[t] @ (d_new - d_old))
    return out.reshape(-1)


# ----------------------------------------------------------------------------- finite depth
def _sweep_finite(state, ctx):
    """One Picard step of the finite-L equations. Returns the new state (f image not marched yet)."""
    L, sd, kd, n, c = ctx["L"], ctx["sd"], ctx["kd"], ctx["n"], ctx["c"]
    strict, Phi0, eye, ones = ctx["strict"], ctx["Phi0"], ctx["eye"], ctx["ones"]
    dt = (ctx["y"] - state["f"]) * ctx["mask"] / ctx["P"]
    MK = lambda K: c * K * dt[None, :] * strict  # noqa: E731  memory operator M[K]
    Phi, G, R, S_old = state["Phi"], state["G"], state["R"], state["S"]  # Phi[l] = Phi^l (l=0..L+1); G[l] = G^l (l=1..L+1)
    Pi = [None] * (L + 2)
    Nn = [None] * (L + 2)
    E = [None] * (L + 2)
    J = [None] * (L + 2)
    C = [None] * (L + 2)
    Pi[L + 1] = MK(ones)
    Nn[L + 1] = ones
    for l in range(L, 0, -1):
        Cl = sd * R[l] + kd * MK(Phi[l])  # b C_h^l = b A^l + c b^2 eta M[Phi^l],  A^l = b R_l
        El = _unit_lower_inv(Pi[l + 1] @ Cl)
        EP = El @ Pi[l + 1]
        Jl = eye + Cl @ EP
        Bt = Pi[l + 1] @ Jl @ (eye + R[l] @ EP)  # B^l / b
        # G^{l+1} with the fresh Pi, N of layer l+1 (Gauss-Seidel: its equal-time part is N_{l+1})
        Qg = Pi[l + 1] @ R[l + 1] + eye
        Gl1 = Pi[l + 1] @ S_old[l + 1] @ Pi[l + 1].T + Qg @ Nn[l + 1] @ Qg.T
        Pi[l] = EP + sd * Bt + kd * MK(Gl1)
        Nn[l] = El @ (sd * (Pi[l + 1] @ Phi[l] @ Pi[l + 1].T) + Nn[l + 1]) @ El.T + sd * Gl1
        E[l + 1], J[l], C[l] = El, Jl, Cl
    M0 = MK(Phi0)
    F = _unit_lower_inv(M0 @ Pi[1])
    Rn = [None] * (L + 2)
    S = [None] * (L + 2)
    Rn[1] = F @ M0
    S[1] = F @ Phi0 @ F.T
    for l in range(1, L + 1):
        EP = E[l + 1] @ Pi[l + 1]
        Kl = eye + Rn[l] @ EP
        Phil = S[l] + Rn[l] @ Nn[l] @ Rn[l].T  # fresh Phi^l (Gauss-Seidel up the depth)
        S[l + 1] = J[l] @ (S[l] + sd * (Kl @ Phil @ Kl.T) + sd * (Rn[l] @ G[l + 1] @ Rn[l].T)) @ J[l].T
        Rn[l + 1] = (J[l] @ Rn[l] + C[l]) @ E[l + 1]
    newPhi = [Phi0] + [S[l] + Rn[l] @ Nn[l] @ Rn[l].T for l in range(1, L + 2)]
    newG = [None]
    for l in range(1, L + 2):
        Q = Pi[l] @ Rn[l] + eye
        newG.append(Pi[l] @ S[l] @ Pi[l].T + Q @ Nn[l] @ Q.T)
    a = Rn[L + 1] @ np.ones(n)
    weights = [1.0] + [kd] * L + [1.0]  # NTK weight of layer l's G^{l+1} * Phi^l
    return newPhi, newG, Rn, S, a, weights, dt


# ----------------------------------------------------------------------------- infinite depth
def _sweep_infinite(state, ctx):
    """One Picard step of the layer-time ODEs (Heun, ``K`` steps on tau in [0, 1])."""
    K, s2, k2, n, c = ctx["K"], ctx["sd"], ctx["kd"], ctx["n"], ctx["c"]
    strict, Phi0, eye, ones = ctx["strict"], ctx["Phi0"], ctx["eye"], ctx["ones"]
    h = 1.0 / K
    dt = (ctx["y"] - state["f"]) * ctx["mask"] / ctx["P"]
    MK = lambda Kk: c * Kk * dt[None, :] * strict  # noqa: E731
    Phi, G, R, S_old = state["Phi"], state["G"], state["R"], state["S"]  # node k = tau_k = k/K, k = 0..K (Phi[0] = Phi(tau=0))
    Cn = [s2 * R[k] + k2 * MK(Phi[k]) for k in range(K + 1)]

    def back_rhs(k, Pi, N):  # d/dtau of (Pi, N)
        Ck = Cn[k]
        PC = Pi @ Ck
        Qg = Pi @ R[k] + eye
        Gk = Pi @ S_old[k] @ Pi.T + Qg @ N @ Qg.T  # fresh G(tau) (Gauss-Seidel)
        dPi = -(PC @ Pi + s2 * (Pi + Pi @ R[k] @ Pi) + k2 * MK(Gk))
        dN = -(PC @ N + N @ PC.T + s2 * (Pi @ Phi[k] @ Pi.T + Gk))
        return dPi, dN

    Pi = [None] * (K + 1)
    Nn = [None] * (K + 1)
    Pi[K], Nn[K] = MK(ones), ones.copy()
    for k in range(K, 0, -1):
        d1P, d1N = back_rhs(k, Pi[k], Nn[k])
        Pp, Np = Pi[k] - h * d1P, Nn[k] - h * d1N
        d2P, d2N = back_rhs(k - 1, Pp, Np)
        Pi[k - 1] = Pi[k] - 0.5 * h * (d1P + d2P)
        Nn[k - 1] = Nn[k] - 0.5 * h * (d1N + d2N)

    def fwd_rhs(k, Rk, Sk):
        Ck = Cn[k]
        CP = Ck @ Pi[k]
        dR = Ck + CP @ Rk + Rk @ Pi[k] @ Ck
        Kk = eye + Rk @ Pi[k]
        Phik = Sk + Rk @ Nn[k] @ Rk.T  # fresh Phi(tau) (Gauss-Seidel)
        dS = CP @ Sk + Sk @ CP.T + s2 * (Kk @ Phik @ Kk.T + Rk @ G[k] @ Rk.T)
        return dR, dS

    M0 = MK(Phi0)
    F = _unit_lower_inv(M0 @ Pi[0])
    Rn = [None] * (K + 1)
    S = [None] * (K + 1)
    Rn[0], S[0] = F @ M0, F @ Phi0 @ F.T
    for k in range(K):
        d1R, d1S = fwd_rhs(k, Rn[k], S[k])
        d2R, d2S = fwd_rhs(k + 1, Rn[k] + h * d1R, S[k] + h * d1S)
        Rn[k + 1] = Rn[k] + 0.5 * h * (d1R + d2R)
        S[k + 1] = S[k] + 0.5 * h * (d1S + d2S)
    newPhi = [S[k] + Rn[k] @ Nn[k] @ Rn[k].T for k in range(K + 1)]
    newG = []
    for k in range(K + 1):
        Q = Pi[k] @ Rn[k] + eye
        newG.append(Pi[k] @ S[k] @ Pi[k].T + Q @ Nn[k] @ Q.T)
    a = Rn[K] @ np.ones(n)
    return newPhi, newG, Rn, S, a, dt


# ----------------------------------------------------------------------------- driver
def _depth_weights(p, L_eff):
    """(sd, kd) per block at finite depth, or the layer-time densities (sigma2, kappa) at L = inf."""
    r = p.residual
    alpha = float(r.alpha)
    e = float(r.lr_exponent)
    beta = float(r.beta)
    if math.isinf(L_eff):
        s2 = beta**2 if abs(alpha - 0.5) < 1e-12 else 0.0
        k2 = beta**2 if abs(1 + e - 2 * alpha) < 1e-12 else 0.0
        return s2, k2
    b = beta * L_eff ** (-alpha)
    return b * b, b * b * L_eff**e


def _check_table(p, gamma):
    if p.optimizer != "sgd":
        raise ValueError(f"residual DMFT supports SGD tables only, got optimizer {p.optimizer!r}")
    cls = p.classify()
    if cls.regime == "unstable":
        raise ValueError(f"parametrization {p.name!r} is unstable, it has no infinite-width limit:\n  " + "\n  ".join(cls.reasons))
    if cls.regime != "feature_learning":
        raise ValueError(f"residual DMFT needs a feature-learning (muP-in-width) table; {p.name!r} is in the "
                         f"{cls.regime!r} regime: use limits.solve_kernel")
    for i, lay in enumerate(p.layers[:-1]):
        if abs(lay.W_std - 1.0) > 1e-12:
            raise ValueError(f"residual DMFT assumes multiplier * init_std = 1 below the readout (layer {i + 1} has "
                             f"{lay.W_std:g}); fold the constant into beta or use limits.simulate")
    for i, lay in enumerate(p.layers):
        if abs(lay.lr_scale - gamma**2) > 1e-12 * max(1.0, gamma**2):
            raise ValueError(f"residual DMFT assumes every lr factor equals gamma0^2 = {gamma**2:g} (layer {i + 1} has "
                             f"{lay.lr_scale:g}); use limits.simulate for custom per-layer learning rates")


def solve_resnet_dmft(param, depth, width=math.inf, *, X, y, activation="linear", gamma0=1.0, lr=0.5, steps=100,
                      X_test=None, record="equal_time", max_iter=200, tol=1e-10, damping=None, progress=False,
                      depth_steps: int | None = None, samples=None, seed=0, qmc=True, stein_jitter=None, method="auto",
                      **_ignored) -> Trajectory:
    """Infinite-width DMFT of full-batch GD for a residual table (``depth-mup``, ``completep``, ``resnet``).

    ``depth``: number of blocks ``L`` (int) or ``math.inf`` (layer time ``tau`` in [0, 1], tables whose
    ``classify_depth().stable`` is True). Linear: ODEs with ``depth_steps`` Heun steps (default 64, error
    O(depth_steps^-2)). Nonlinear: the Monte Carlo SDE in ``tau`` with Euler-Maruyama at ``depth_steps`` and
    ``depth_steps/2`` steps (default 4, even), Richardson-extrapolated (error O(depth_steps^-2); cost that of
    finite-depth solves at those depths; :func:`limits.dmft.resnet_mc.solve_layer_time`).
    ``activation="linear"``: deterministic equations (docs/theory/resnet_dmft.md sections 1-4);
    any other activation: Monte Carlo over ``samples`` single-site paths
    (default 8192, scrambled-Sobol sources from ``seed``; :mod:`limits.dmft.resnet_mc`, section 5),
    whose fixed point stops at ``tol`` or at its Monte Carlo floor. ``method="monte carlo"`` samples
    linear activations too (a cross-check of the two solvers); ``"auto"`` picks as above.
    Returns a :class:`Trajectory` with loss, predictions, test predictions, the lr-weighted NTK and,
    with ``record="equal_time"``, the equal-time kernels ``phi1..phi{L+1}``, ``g1..g{L+1}`` (finite L)
    or ``phi_tau``, ``g_tau`` of shape (depth_steps+1, steps+1, P, P) (L = inf; depth_steps/2 + 1 nodes
    when nonlinear, ``meta['tau']``).
    Cost per fixed-point iteration ``O(L n^3)`` / ``O(depth_steps n^3)``, ``n = (steps+1)(P+Q)``.
    """
    from .. import activations as _acts
    from ..data import validate
    from ..parametrization import Parametrization, resolve

    t_start = time.perf_counter()
    X, y, X_test = validate(X, y, X_test)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    act = _acts.get(activation)
    if method not in ("auto", "monte carlo"):
        raise ValueError(f"method must be 'auto' or 'monte carlo', got {method!r}")
    linear = act.is_linear and act is _acts.get("linear") and method == "auto"
    if record not in ("equal_time", "none") + (() if linear else ("two_time",)):
        raise ValueError(f"residual DMFT records 'equal_time'{'' if linear else ', ' + repr('two_time')} or 'none', "
                         f"got {record!r}")
    infinite = isinstance(depth, float) and math.isinf(depth) and depth > 0
    if depth_steps is None:
        depth_steps = 64 if linear else DEFAULT_MC_DEPTH_STEPS
    if not infinite and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1):
        raise ValueError(f"depth must be an integer >= 1 (number of residual blocks) or math.inf, got {depth!r}")
    if infinite:
        if isinstance(param, Parametrization):
            raise ValueError("depth=math.inf needs a preset name (a table has a fixed depth); "
                             "pass e.g. 'depth-mup'")
        probe = resolve(param, 4, gamma0=gamma0)
        dcls = probe.classify_depth()
        if not dcls.stable:
            raise ValueError(f"{probe.name!r} has no infinite-depth limit (depth=math.inf):\n  " + "\n  ".join(dcls.reasons))
        p = probe
    else:
        p = resolve(param, int(depth), gamma0=gamma0)
    if not p.is_residual:
        raise ValueError(f"{p.name!r} is not a residual table")
    if not (isinstance(width, (int, float, np.integer, np.floating)) and width > 0):
        raise ValueError(f"width must be a positive integer or math.inf, got {width!r}")
    gamma = float(p.effective_gamma(width))
    _check_table(p, float(gamma0))
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"effective richness gamma = {gamma} of {p.name!r} at width {width} is not positive and finite")
    if damping is not None and not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    if not linear:
        from .resnet_mc import solve_layer_time, solve_monte_carlo

        kw = dict(X=X, y=y, X_test=X_test, act=act, gamma0=gamma0, lr=lr, steps=int(steps), record=record,
                  samples=samples, seed=seed, qmc=qmc, stein_jitter=stein_jitter, max_iter=max_iter, tol=tol,
                  damping=damping, progress=progress, t_start=t_start)
        if infinite:
            return solve_layer_time(p, depth_steps, width, gamma, **kw)
        return solve_monte_carlo(p, int(depth), width, gamma, **kw)

    steps = int(steps)
    P, D = X.shape
    X_all = X if X_test is None else np.concatenate([X, X_test], axis=0)
    Q = 0 if X_test is None else X_test.shape[0]
    Pa, T1 = P + Q, steps + 1
    n = T1 * Pa
    Kx = X_all @ X_all.T / D
    Phi0 = np.tile(Kx, (T1, T1))  # never modified in place (Phi[0] of the finite-L state is this array)
    y_flat = np.tile(np.concatenate([y, np.zeros(Q)]), T1)
    mask_flat = np.tile(np.concatenate([np.ones(P), np.zeros(Q)]), T1)
    L_eff = math.inf if infinite else int(depth)
    sd, kd = _depth_weights(p, L_eff)
    ctx = {"L": None if infinite else int(depth), "K": int(depth_steps), "sd": sd, "kd": kd, "n": n, "c": lr * gamma,
           "strict": _masks(T1, Pa), "Phi0": Phi0, "eye": np.eye(n), "ones": np.ones((n, n)), "y": y_flat,
           "mask": mask_flat, "P": P}
    if infinite and (isinstance(depth_steps, bool) or int(depth_steps) < 1):
        raise ValueError(f"depth_steps must be an integer >= 1, got {depth_steps!r}")

    # lazy initial guess: kernels at init, R = 0, f from kernel GD with the initial NTK
    if infinite:
        K = ctx["K"]
        taus = np.arange(K + 1) / K
        Phi = [math.exp(sd * t) * Phi0 for t in taus]
        G = [math.exp(sd * (1 - t)) * ctx["ones"] for t in taus]
        R = [np.zeros((n, n)) for _ in taus]
        ntk0 = Kx * G[0][:Pa, :Pa] + kd * np.trapezoid([Phi[k][:Pa, :Pa] * G[k][:Pa, :Pa] for k in range(K + 1)], dx=1 / K, axis=0) + Phi[-1][:Pa, :Pa]
    else:
        Lb = int(depth)
        Phi = [Phi0] + [(1 + sd) ** (l - 1) * Phi0 for l in range(1, Lb + 2)]
        G = [None] + [(1 + sd) ** (Lb + 1 - l) * ctx["ones"] for l in range(1, Lb + 2)]
        R = [None] + [np.zeros((n, n)) for _ in range(Lb + 1)]
        ntk0 = Kx * G[1][:Pa, :Pa] + kd * sum(Phi[l][:Pa, :Pa] * G[l + 1][:Pa, :Pa] for l in range(1, Lb + 1)) + Phi[-1][:Pa, :Pa]
    f = np.zeros((T1, Pa))
    for t in range(steps):
        f[t + 1] = f[t] + lr / P * ntk0 @ ((np.concatenate([y, np.zeros(Q)]) - f[t]) * mask_flat[:Pa])
    S0 = [None if M is None else M.copy() for M in Phi]
    if not infinite:
        S0[0] = None
    state = {"f": f.reshape(-1), "Phi": Phi, "G": G, "R": R, "S": S0}
    check_divergence(f[:, :P], y, lr)

    adaptive = damping is None
    damp = 1.0 if adaptive else float(damping)
    residuals = []
    ntk_t = None

    def sub(M, m):
        return None if M is None else M[:m, :m]

    # continuation in the horizon: every coupling is causal in time, so the solution for
    # steps' < steps is the leading block of the full one; solve horizon t = 1..steps in turn,
    # warm-started (a plain Picard iteration on the whole horizon has Volterra transient growth)
    for t_h in range(1, T1):
        m = (t_h + 1) * Pa
        sctx = dict(ctx, n=m, strict=ctx["strict"][:m, :m], Phi0=Phi0[:m, :m], eye=np.eye(m), ones=np.ones((m, m)),
                    y=y_flat[:m], mask=mask_flat[:m])
        last = math.inf
        for it in range(max_iter):
            cur = {"f": state["f"][:m], **{k: [sub(M, m) for M in state[k]] for k in ("Phi", "G", "R", "S")}}
            if infinite:
                nPhi, nG, nR, nS, a, dt = _sweep_infinite(cur, sctx)
                Kk = ctx["K"]
                et = lambda M: _equal_time(M, t_h + 1, Pa)  # noqa: E731
                ntk_t = (et(Phi0[:m, :m]) * et(nG[0]) + et(nPhi[-1])
                         + kd * np.trapezoid(np.stack([et(nPhi[k]) * et(nG[k]) for k in range(Kk + 1)]), dx=1 / Kk, axis=0))
            else:
                nPhi, nG, nR, nS, a, weights, dt = _sweep_finite(cur, sctx)
                Lb = ctx["L"]
                et = lambda M: _equal_time(M, t_h + 1, Pa)  # noqa: E731
                ntk_t = et(Phi0[:m, :m]) * et(nG[1]) + et(nPhi[-1])
                for l in range(1, Lb + 1):
                    ntk_t = ntk_t + kd * et(nPhi[l]) * et(nG[l + 1])
            F_img = a / gamma + lr * ((nPhi[-1] * sctx["strict"]) @ dt)
            f_new = _march(F_img, cur["f"], y_flat[:m], mask_flat[:m], ntk_t, lr, P, t_h + 1, Pa)
            new = {"f": [f_new], "Phi": nPhi, "G": nG, "R": nR, "S": nS}
            old = {"f": [cur["f"]], "Phi": cur["Phi"], "G": cur["G"], "R": cur["R"], "S": cur["S"]}
            res = 0.0
            for key in ("f", "Phi", "G", "R"):
                for o, nw in zip(old[key], new[key]):
                    if o is None or nw is None:
                        continue
                    res = max(res, float(np.max(np.abs(nw - o)) / max(np.max(np.abs(nw)), 1e-12)))
            if not math.isfinite(res):
                raise FloatingPointError(f"the residual DMFT iteration produced non-finite values at step {t_h} "
                                         f"(lr={lr:g}); use a smaller lr")
            if adaptive and math.isfinite(last) and res > 2.0 * last and damp > 0.1:
                damp = max(0.1, damp / 2)
            last = res
            residuals.append(res)
            state["f"][:m] = (1 - damp) * cur["f"] + damp * f_new
            for key in ("Phi", "G", "R", "S"):
                for i, (o, nw) in enumerate(zip(cur[key], new[key])):
                    if o is None or nw is None or (key == "Phi" and i == 0 and not infinite):
                        continue
                    state[key][i][:m, :m] = (1 - damp) * o + damp * nw
            if res < tol:
                break
        if progress:
            print(f"residual DMFT: step {t_h}/{steps}, {it + 1} iterations, residual {res:.2e}")
    if steps >= 1 and record != "none" and ntk_t is None:
        raise RuntimeError("internal error: no NTK computed")
    converged = residuals[-1] < tol
    if not converged:
        warnings.warn(f"residual DMFT fixed point not converged after {len(residuals)} iterations (residual "
                      f"{residuals[-1]:.2e} > tol {tol:g}); increase max_iter or lower damping", RuntimeWarning, stacklevel=2)
    f_all = state["f"].reshape(T1, Pa)
    check_divergence(f_all[:, :P], y, lr)
    preds = f_all[:, :P]
    loss = 0.5 * np.mean((preds - y) ** 2, axis=1)
    kernels = {}
    ntk = None
    if record != "none":
        ntk = ntk_t[:, :P, :P]
        if infinite:
            kernels["phi_tau"] = np.stack([_equal_time(M, T1, Pa)[:, :P, :P] for M in state["Phi"]])
            kernels["g_tau"] = np.stack([_equal_time(M, T1, Pa)[:, :P, :P] for M in state["G"]])
        else:
            for l in range(1, ctx["L"] + 2):
                kernels[f"phi{l}"] = _equal_time(state["Phi"][l], T1, Pa)[:, :P, :P]
                kernels[f"g{l}"] = _equal_time(state["G"][l], T1, Pa)[:, :P, :P]
    meta = {"solver": "dmft", "parametrization": p.name if not infinite else p.name.replace("depth 4", "depth inf"),
            "regime": "feature_learning", "width": width, "depth": depth, "activation": act.name, "lr": float(lr),
            "gamma0": float(gamma0), "gamma": gamma, "steps": steps, "residual": True,
            "branch_weight_per_block": sd, "lr_weight_per_block": kd}
    if infinite:
        meta["depth_steps"] = ctx["K"]
        meta["tau"] = np.arange(ctx["K"] + 1) / ctx["K"]
    diagnostics = {"iterations": len(residuals), "residuals": np.asarray(residuals), "converged": bool(converged),
                   "samples": None, "damping": damp, "loss_stderr_kind": "exact (deterministic equations)",
                   "method": "residual deep-linear kernel equations" + (" (layer-time ODE, Heun)" if infinite else ""),
                   "wall_time": time.perf_counter() - t_start}
    return Trajectory(loss=loss, predictions=preds, test_predictions=None if Q == 0 else f_all[:, P:],
                      loss_stderr=np.zeros(T1), prediction_cov=np.zeros((T1, P, P)), ntk=ntk, kernels=kernels,
                      kernel_steps=np.arange(T1) if record != "none" else None, meta=meta, diagnostics=diagnostics)
