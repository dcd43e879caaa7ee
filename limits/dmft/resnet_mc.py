"""Monte Carlo DMFT of nonlinear residual networks at finite depth L (JAX, float64).

Network (``limits/finite/network.py``; muP in width, DMFT units of DESIGN.md)::

    h^1 = W_0 x / sqrt(D),   h^{l+1} = h^l + b W_l phi(h^l) / sqrt(N)   (l = 1..L),
    f = w . phi(h^{L+1}) / (gamma N),   b = beta L^{-alpha},

raw learning rate ``lr gamma^2 N`` (blocks ``x eta = L^{lr_exponent}``); per-block
weights ``sd = b^2``, ``kd = eta b^2``, ``c = lr gamma``, ``Dt = Delta / P``.

At infinite width one neuron carries a single-site process that is *joint across
depth*: its fields ``h^1..h^{L+1}`` (up) and ``g^1..g^{L+1}`` (down, ``g = gamma N df/dh``)
are driven by independent Gaussian sources ``u^0 ~ N(0, x.x'/D)`` (constant in time),
``u^l ~ GP(0, Phi^l)``, ``r^l ~ GP(0, G^{l+1})`` (l = 1..L) and ``r^{L+1} = w(0) ~ N(0, 1)``::

    h^1      = u^0 + M_0 g^1,                                   M_0 = [s<t] c Phi^0 Dt
    h^{l+1}  = h^l + b u^l + M_l g^{l+1},                       M_l = [s<t] (b A^l + c kd Phi^l Dt)
    g^{L+1}  = phi'(h^{L+1}) (r^{L+1} + Z_{L+1} phi(h^{L+1})),  Z_{L+1} = [s<t] c 1 Dt
    g^l      = g^{l+1} + phi'(h^l) (b r^l + Z_l phi(h^l)),      Z_l = [s<=t] b B^l + [s<t] c kd G^{l+1} Dt

with ``Phi^l = <phi(h^l) phi(h^l)^T>``, ``G^l = <g^l g^{l T}>``, the response functions
``A^l = <d phi(h^l) / d r^l>`` (strictly causal) and ``B^l = <d g^{l+1} / d u^l>``
(causal, equal times included), and the readout

    f(t) = a(t) / gamma + lr sum_{s<t} Phi^{L+1}(t, s) Dt(s),    a = <r^{L+1} phi(h^{L+1})>.

Derivation and the meaning of each term: ``docs/theory/resnet_dmft.md`` section 5.
All two-time objects are (n, n) matrices over ``n = (steps + 1) P`` (time-major,
``a = t P + mu``; test points are extra points with ``Delta = 0``).

Estimators (``S`` sample paths, common random numbers: the sources ``eps`` are drawn
once as scrambled-Sobol normals, :func:`limits.dmft.solver.gaussian_sources`):
kernels are sample second moments; ``A^l``, ``B^l`` come from Stein's lemma
(:meth:`limits.dmft.solver.MonteCarloProblem._stein`: no phi'', exact for ReLU);
``a`` from antithetic pairs ``r^{L+1} -> -r^{L+1}`` (all other sources shared), so the
``O(1)`` part of ``phi(h^{L+1})`` that does not depend on ``r^{L+1}`` cancels and the
``1/gamma`` amplification of the Monte Carlo noise is removed.

Cost per fixed-point iteration: paths ``O(L S n^2)`` (one scan over time, the depth
unrolled inside), kernels and Stein responses ``O(L S n^2)``, Cholesky factors
``O(L n^3)``; memory ``O(L (S n + n^2))``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _acts
from ..trajectory import Trajectory
from . import equations as eq
from .solver import _chol, gaussian_sources, kernel_gd

jax.config.update("jax_enable_x64", True)

__all__ = ["solve_resnet_mc", "ResNetMonteCarlo", "initial_kernels", "ntk_weights"]



def stein_response(X, eps, C, mask):
    """Response ``E[dX/dv]`` (m, n) of path quantities ``X`` (S, m) to the Gaussian source ``v = eps C^T``
    (``eps`` (S, n) standard normal, ``C`` (n, n) lower triangular) by Gaussian integration by parts
    (Stein's lemma, as :meth:`limits.dmft.solver.MonteCarloProblem._stein`):
    ``E[X eps^T] = E[dX/d eps] = E[dX/dv] C``, so ``E[dX/dv] = mask(E[(X - mean X) eps^T]) C^{-1}``.
    Unbiased for any activation (no phi''); ``mask`` zeroes the entries known to vanish (causality),
    and the triangular ``C^{-1}`` keeps that pattern. ``O(S m n + m n^2)``."""
    M = mask * ((X - X.mean(0, keepdims=True)).T @ eps) / X.shape[0]
    return jax.scipy.linalg.solve_triangular(C, M.T, lower=True, trans=1).T


# ----------------------------------------------------------------------------- lazy guess
def initial_kernels(act, Kx, L: int, sd: float):
    """Kernels at initialization (infinite width), each (P, P).

    Forward: ``K^1 = Kx``, ``K^{l+1} = K^l + sd Phi^l``, ``Phi^l = E_{K^l}[phi phi]`` (l = 1..L+1).
    Backward: ``G^{L+1} = E_{K^{L+1}}[phi' phi']``, ``G^l = G^{l+1} (1 + sd E_{K^l}[phi' phi'])``.
    Returns ``(Phis, Gs)``, lists ``[Phi^1..Phi^{L+1}]``, ``[G^1..G^{L+1}]``."""
    K = np.asarray(Kx, dtype=np.float64)
    Phis, Ds = [], []
    for _ in range(L + 1):
        d = np.diag(K)
        ff, dd = _acts.gaussian_expectations(act, d[:, None], K, d[None, :])
        Phis.append(np.asarray(ff))
        Ds.append(np.asarray(dd))
        K = K + sd * Phis[-1]
    Gs = [Ds[L]]
    for l in range(L - 1, -1, -1):
        Gs.insert(0, Gs[0] * (1.0 + sd * Ds[l]))
    return Phis, Gs


def ntk_weights(L: int, kd: float):
    """NTK layer weights: ``NTK = G^1 Phi^0 + kd sum_{l=1}^{L} G^{l+1} Phi^l + Phi^{L+1}`` (elementwise).
    Returns the weights of the pairs ``(Phi^0 G^1), (Phi^1 G^2), ..., (Phi^{L+1} 1)``, length L + 2."""
    return [1.0] + [float(kd)] * L + [1.0]


def _ntk_equal_time(Phi0, Phis, Gs, kd, T1, Pa):
    """Equal-time NTK (T1, Pa, Pa) of the residual network from two-time kernels (n, n):
    ``Phis = [Phi^1..Phi^{L+1}]``, ``Gs = [G^1..G^{L+1}]``."""
    L = len(Phis) - 1
    w = ntk_weights(L, kd)
    ones = jnp.ones_like(Phi0)
    return eq.ntk_equal_time([wi * P for wi, P in zip(w, [Phi0] + list(Phis))], list(Gs) + [ones], T1, Pa)


def lazy_predictions(ntk, y_all, train_mask, lr, steps):
    """Kernel-GD predictions (steps+1, Pa) with a frozen ``ntk`` (Pa, Pa); test points follow the train points."""
    tr = train_mask > 0
    P = int(tr.sum())
    f = np.zeros((steps + 1, y_all.shape[0]))
    f_tr = kernel_gd(ntk[np.ix_(tr, tr)], y_all[tr], lr, steps)
    f[:, tr] = f_tr
    if (~tr).any():
        inc = lr / P * (y_all[tr][None, :] - f_tr) @ ntk[np.ix_(~tr, tr)].T
        f[1:, ~tr] = np.cumsum(inc[:-1], axis=0)
    return f


def _by_importance(Z, L, T1, Pa):
    """Split the Sobol normals ``Z`` (S, 1 + Pa + 2 L T1 Pa) into the sources, the leading (best stratified)
    Sobol coordinates going to the directions that carry the most variance: ``r^{L+1}``, ``u^0``, then the
    time-0 columns of every block source (``u^1, r^1, u^2, r^2, ...``), then time 1, and so on (the columns of
    a time-major Cholesky factor are the innovations of successive times, which shrink as the kernels move
    slowly). Returns ``[u^0 (S, Pa), u^1..u^L (S, n), r^1..r^L (S, n), r^{L+1} (S, 1)]``."""
    S, n = Z.shape[0], T1 * Pa
    top, u0, rest = Z[:, :1], Z[:, 1 : 1 + Pa], Z[:, 1 + Pa :]
    blocks = rest.reshape(S, T1, 2 * L, Pa)  # (path, time, source u^1, r^1, u^2, r^2, ..., point)
    src = [blocks[:, :, j, :].reshape(S, n) for j in range(2 * L)]
    return [u0] + src[0::2] + src[1::2] + [top]


def _cv_coefficient(X, Y, axis_pairs=False):
    """Optimal control-variate coefficients ``beta = Cov(X, Y) / Var(Y)`` over the paths (axis 0).

    ``X``, ``Y`` (S, n). Per column (n,), or with ``axis_pairs`` per entry of the second-moment
    matrices ``X_a X_b`` and ``Y_a Y_b`` (n, n), from ``O(S n^2)`` products."""
    S = X.shape[0]
    if not axis_pairs:
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        return (Xc * Yc).mean(0) / jnp.maximum((Yc * Yc).mean(0), 1e-300)
    mX, mY = X.T @ X / S, Y.T @ Y / S
    XY = (X * Y).T @ (X * Y) / S
    YY = (Y * Y).T @ (Y * Y) / S
    return (XY - mX * mY) / jnp.maximum(YY - mY * mY, 1e-300)


def second_moment_cv(X, Y, EY):
    """``E[X X^T]`` (n, n) from paths ``X`` (S, n), with the control variate ``Y Y^T`` of known mean ``EY``:
    ``mean(X X^T) - beta * (mean(Y Y^T) - EY)``, ``beta`` the per-entry optimal coefficient."""
    S = X.shape[0]
    beta = _cv_coefficient(X, Y, axis_pairs=True)
    return X.T @ X / S - beta * (Y.T @ Y / S - EY)


# ----------------------------------------------------------------------------- the problem
@dataclasses.dataclass(frozen=True)
class Config:
    """Static (hashable) part of a problem: the jitted step is compiled once per Config.

    ``L`` blocks, ``S`` paths, ``T1 = steps + 1``, ``Pa`` points (train + test), ``P`` train points,
    ``b = sqrt(sd)`` branch multiplier, ``kd = eta b^2``, ``cv``: lazy-path control variates."""

    act: _acts.Activation
    L: int
    S: int
    T1: int
    Pa: int
    P: int
    gamma: float
    lr: float
    b: float
    kd: float
    cv: bool = True

    @property
    def n(self) -> int:
        return self.T1 * self.Pa


def memory(cfg: Config, state, dt, consts):
    """Memory matrices (n, n): ``Mh = [M_0..M_L]`` acting on ``g^1..g^{L+1}`` in the forward equations and
    ``Mz = [Z_1..Z_{L+1}]`` acting on ``phi(h^1)..phi(h^{L+1})`` in the backward ones (module docstring)."""
    c, b, kd, strict, incl = cfg.lr * cfg.gamma, cfg.b, cfg.kd, consts["strict"], consts["incl"]
    Dt = dt[None, :]
    Mh = [c * consts["Phi0"] * Dt * strict]
    Mh += [(b * A + c * kd * Phi * Dt) * strict for A, Phi in zip(state["A"], state["Phi"][:-1])]
    Mz = [b * B * incl + c * kd * G * Dt * strict for B, G in zip(state["B"], state["G"][1:])]
    Mz.append(c * Dt * strict)  # readout: w(t) = r^{L+1} + c sum_{s<t} Dt(s).phi(h^{L+1}(s))
    return Mh, Mz


def sources(cfg: Config, state, consts, jitter):
    """Scaled source paths (S, n): ``U = [u^0, b u^1, .., b u^L]``, ``R = [b r^1, .., b r^L, r^{L+1}]``
    and the Cholesky factors ``Cu = [chol Phi^l]``, ``Cr = [chol G^{l+1}]`` (l = 1..L), (n, n)."""
    b = cfg.b
    Cu = [_chol(K, jitter) for K in state["Phi"][:-1]]
    Cr = [_chol(K, jitter) for K in state["G"][1:]]
    U = [consts["eps_u"][0] @ consts["F0"].T] + [b * (e @ C.T) for e, C in zip(consts["eps_u"][1:], Cu)]
    R = [b * (e @ C.T) for e, C in zip(consts["eps_r"], Cr)]
    R.append(jnp.broadcast_to(consts["eps_top"], (cfg.S, cfg.n)))
    return U, R, Cu, Cr


def paths(cfg: Config, U, R, Mh, Mz):
    """Sample paths of the joint single-site process, one scan over time with the depth unrolled:
    at time t, up the network ``h^{k+1}(t) = h^k(t) + U_k(t) + M_k(t, :) g^{k+1}`` (past g only), then
    down ``g^{k+1}(t) = g^{k+2}(t) + phi'(h^{k+1}(t)) (R_k(t) + Z_{k+1}(t, :) phi(h^{k+1}))`` (phi up to
    time t). Returns ``phi(h)`` and ``g``, each (L+1, S, n) (index k = layer - 1)."""
    S, Pa, n, K = cfg.S, cfg.Pa, cfg.n, cfg.L + 1
    phi, dphi = cfg.act.fn, cfg.act.deriv

    def body(carry, t):
        ph, g = carry
        start = t * Pa

        def rows(M):
            return jax.lax.dynamic_slice(M, (start, 0), (Pa, n))

        def now(X):
            return jax.lax.dynamic_slice(X, (0, start), (S, Pa))

        hs, h = [], 0.0
        for k in range(K):
            h = h + now(U[k]) + g[k] @ rows(Mh[k]).T
            hs.append(h)
        ph = jax.lax.dynamic_update_slice(ph, phi(jnp.stack(hs)), (0, 0, start))
        gs, gk = [None] * K, 0.0
        for k in range(K - 1, -1, -1):
            gk = gk + dphi(hs[k]) * (now(R[k]) + ph[k] @ rows(Mz[k]).T)
            gs[k] = gk
        g = jax.lax.dynamic_update_slice(g, jnp.stack(gs), (0, 0, start))
        return (ph, g), None

    zeros = jnp.zeros((K, S, n))
    (ph, g), _ = jax.lax.scan(body, (zeros, zeros), jnp.arange(cfg.T1))
    return ph, g


def lazy_paths(cfg: Config, consts):
    """Control-variate paths: the same sources pushed through the network at initialization (no memory,
    no responses, kernels of init), constant in time. ``phi(h_lazy)``, ``g_lazy`` (L+1, S, n); their exact
    moments are the initial kernels, and ``E[g_lazy eps_u^T] = E[phi(h_lazy) eps_r^T] = E[r^{L+1} phi(h_lazy)] = 0``."""
    Pa, T1, b = cfg.Pa, cfg.T1, cfg.b
    phi, dphi = cfg.act.fn, cfg.act.deriv
    u = [consts["eps_u"][0] @ consts["lazy_chol_x"].T]
    u += [b * (e[:, :Pa] @ C.T) for e, C in zip(consts["eps_u"][1:], consts["lazy_chol_u"])]
    h = jnp.cumsum(jnp.stack(u), axis=0)  # (L+1, S, Pa)
    r = [b * (e[:, :Pa] @ C.T) for e, C in zip(consts["eps_r"], consts["lazy_chol_r"])] + [consts["eps_top"]]
    gs, gk = [None] * (cfg.L + 1), 0.0
    for k in range(cfg.L, -1, -1):
        gk = gk + dphi(h[k]) * r[k]
        gs[k] = gk
    return jnp.tile(phi(h), (1, 1, T1)), jnp.tile(jnp.stack(gs), (1, 1, T1))


def _responses(cfg: Config, ph, g, pl, gl, consts, Cu, Cr):
    """Stein estimates ``A^l = E[d phi(h^l)/d r^l]`` (strict) and ``B^l = E[d g^{l+1}/d u^l]`` (inclusive),
    l = 1..L, with the lazy paths as control variates (their Stein expectations vanish exactly)."""
    strict, incl = consts["strict"], consts["incl"]
    L = cfg.L

    def cv(X, Y):
        return X - _cv_coefficient(X, Y)[None, :] * Y if cfg.cv else X

    pl = ph if pl is None else pl  # unused without control variates
    gl = g if gl is None else gl

    A = [stein_response(cv(ph[k], pl[k]), consts["eps_r"][k], Cr[k], strict) for k in range(L)]
    B = [stein_response(cv(g[k + 1], gl[k + 1]), consts["eps_u"][k + 1], Cu[k], incl) for k in range(L)]
    return A, B


def _step_impl(cfg: Config, consts, state, damping, horizon, jitter):
    """One damped fixed-point iteration of the residual DMFT (module docstring); returns
    ``(damped state, residual, {"loss_stderr", "f_stderr"})``."""
    L, S, T1, Pa = cfg.L, cfg.S, cfg.T1, cfg.Pa
    y, mask, strict = consts["y"], consts["mask"], consts["strict"]
    dt = (y - state["f"]) * mask / cfg.P
    Mh, Mz = memory(cfg, state, dt, consts)
    U, R, Cu, Cr = sources(cfg, state, consts, jitter)
    ph, g = paths(cfg, U, R, Mh, Mz)
    if cfg.cv:
        pl, gl = lazy_paths(cfg, consts)
        Phi = [second_moment_cv(ph[k], pl[k], E) for k, E in enumerate(consts["lazy_Phi"])]
        G = [second_moment_cv(g[k], gl[k], E) for k, E in enumerate(consts["lazy_G"])]
        top = ph[L] - _cv_coefficient(ph[L], pl[L])[None, :] * pl[L]
    else:
        pl = gl = None
        Phi = [ph[k].T @ ph[k] / S for k in range(L + 1)]
        G = [g[k].T @ g[k] / S for k in range(L + 1)]
        top = ph[L]
    A, B = _responses(cfg, ph, g, pl, gl, consts, Cu, Cr)
    a = (consts["eps_top"] * top).mean(0)  # <r^{L+1} phi(h^{L+1})> = <d phi(h^{L+1}) / d r^{L+1}>
    f_img = eq.readout(a, Phi[L], dt, cfg.gamma, cfg.lr, strict)
    ntk_t = _ntk_equal_time(consts["Phi0"], Phi, G, cfg.kd, T1, Pa)
    f_new = eq.march(f_img, state["f"], y, mask, ntk_t, cfg.lr, cfg.P, T1, Pa)
    new = eq.within_horizon({"f": f_new, "Phi": Phi, "G": G, "A": A, "B": B}, horizon, T1, Pa)
    damped, res = eq.relax(state, new, damping, ("f", "Phi", "G"))
    return damped, res, _errors(cfg, consts["eps_top"] * top, ph[L], dt, y, mask)


def _errors(cfg: Config, rtop, top, dt, y, mask):
    """First-order Monte Carlo standard errors of the loss (T1,) and predictions (T1, Pa) from the per-path
    readout ``f_i(t) = r phi_i(t) / gamma + lr sum_{s<t} Dt(s).phi_i(s) phi_i(t)`` (plain Monte Carlo rate;
    ignores the noise the estimated kernels and responses feed back through the fixed point)."""
    S, T1, Pa = cfg.S, cfg.T1, cfg.Pa
    w = (top * dt[None, :]).reshape(S, T1, Pa).sum(-1)
    before = jnp.repeat(jnp.cumsum(w, axis=1) - w, Pa, axis=1)
    fs = rtop / cfg.gamma + cfg.lr * top * before
    fbar = fs.mean(0)
    dl = ((fs - fbar) * ((fbar - y) * mask)).reshape(S, T1, Pa).sum(-1) / cfg.P
    return {"loss_stderr": jnp.std(dl, axis=0) / math.sqrt(S), "f_stderr": (jnp.std(fs, axis=0) / math.sqrt(S)).reshape(T1, Pa)}


_step = jax.jit(_step_impl, static_argnums=(0,))


class ResNetMonteCarlo:
    """One residual DMFT problem: static :class:`Config`, the fixed sources and constants, the lazy guess.

    State (dict of JAX arrays): ``f`` (n,), ``Phi`` = [Phi^1..Phi^{L+1}], ``G`` = [G^1..G^{L+1}],
    ``A`` = [A^1..A^L], ``B`` = [B^1..B^L], each (n, n)."""

    def __init__(self, *, act, Kx_all, y_all, train_mask, depth, steps, gamma, lr, sd, kd, samples, seed,
                 qmc=True, control_variates=True, stein_jitter=1e-6):
        S = int(samples)
        if S < 2:
            raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
        act = _acts.get(act)
        Pa, T1 = int(Kx_all.shape[0]), int(steps) + 1
        self.cfg = Config(act=act, L=int(depth), S=S, T1=T1, Pa=Pa, P=int(np.sum(train_mask)), gamma=float(gamma),
                          lr=float(lr), b=math.sqrt(sd), kd=float(kd), cv=bool(control_variates))
        self.sd, self.jitter = float(sd), float(stein_jitter)
        self.Kx = np.asarray(Kx_all, dtype=np.float64)
        self.y_all, self.train_mask = np.asarray(y_all, float), np.asarray(train_mask, float)
        self.Phis0, self.Gs0 = initial_kernels(act, self.Kx, self.cfg.L, self.sd)
        strict, incl = eq.masks(T1, Pa)
        (Z,) = gaussian_sources(S, [1 + Pa + 2 * self.cfg.L * T1 * Pa], seed, qmc=qmc)
        eps = [jnp.asarray(e) for e in _by_importance(Z, self.cfg.L, T1, Pa)]
        L = self.cfg.L
        chol = lambda K: np.linalg.cholesky(K + 1e-12 * np.max(np.diag(K)) * np.eye(Pa))  # noqa: E731
        self.consts = {
            "y": jnp.asarray(np.tile(self.y_all, T1)), "mask": jnp.asarray(np.tile(self.train_mask, T1)),
            "strict": jnp.asarray(strict), "incl": jnp.asarray(incl),
            "Phi0": jnp.asarray(eq.tile_static(self.Kx, T1)), "F0": jnp.asarray(np.tile(chol(self.Kx), (T1, 1))),
            "eps_u": eps[: L + 1], "eps_r": eps[L + 1 : 2 * L + 1], "eps_top": eps[-1],
            "lazy_chol_x": jnp.asarray(chol(self.Kx)),
            "lazy_chol_u": [jnp.asarray(chol(K)) for K in self.Phis0[:-1]],
            "lazy_chol_r": [jnp.asarray(chol(K)) for K in self.Gs0[1:]],
            "lazy_Phi": [jnp.asarray(eq.tile_static(K, T1)) for K in self.Phis0],
            "lazy_G": [jnp.asarray(eq.tile_static(K, T1)) for K in self.Gs0],
        }

    @property
    def T1(self):
        return self.cfg.T1

    @property
    def P(self):
        return self.cfg.P

    def initial_state(self):
        """Lazy guess: kernels of the network at init (constant in time), ``A = B = 0``, ``f`` from kernel GD."""
        cfg = self.cfg
        pairs = zip(ntk_weights(cfg.L, cfg.kd), [self.Kx] + self.Phis0, self.Gs0 + [np.ones_like(self.Kx)])
        ntk0 = sum(w * Ph * G for w, Ph, G in pairs)
        f = lazy_predictions(ntk0, self.y_all, self.train_mask, cfg.lr, cfg.T1 - 1)
        zero = jnp.zeros((cfg.n, cfg.n))
        return {"f": jnp.asarray(f.reshape(-1)),
                "Phi": [jnp.asarray(eq.tile_static(K, cfg.T1)) for K in self.Phis0],
                "G": [jnp.asarray(eq.tile_static(K, cfg.T1)) for K in self.Gs0],
                "A": [zero] * cfg.L, "B": [zero] * cfg.L}

    def step(self, state, damping, horizon=None):
        """One damped fixed-point iteration; only times ``t < horizon`` are updated (default: all)."""
        h = self.cfg.T1 if horizon is None else int(horizon)
        return _step(self.cfg, self.consts, state, jnp.asarray(damping, dtype=jnp.float64),
                     jnp.asarray(h, dtype=jnp.int32), self.jitter)


# ----------------------------------------------------------------------------- driver
def iterate(problem, state, *, max_iter, tol, damping=None, progress=False):
    """Damped fixed-point iteration with causal continuation in time: converge the times ``< T1/4``, then
    ``< T1/2``, ``< 3 T1/4``, all (as :func:`limits.dmft.api.solve_dmft`). Adaptive damping (``damping=None``):
    start at 1, halve when the residual grows on 3 consecutive iterations (the growth right after a
    horizon is extended is an expected transient of the causal map and is not damped). Stops at ``tol``
    or, on the full horizon, once the residual is below ``min(1e-3, 0.02 x relative Monte Carlo error of the
    loss)`` (further iterations only follow the fixed point of the sampled equations more closely).
    Returns ``(state, residuals, aux, stop, damping)``."""
    T1 = problem.T1
    adaptive = damping is None
    damp = 1.0 if adaptive else float(damping)
    windows = sorted({max(1, math.ceil(T1 * k / 4)) for k in range(1, 5)})
    residuals, aux, stop = [], {}, "max_iter"
    for h in windows:
        final = h == T1
        tol_h = tol if final else max(tol, 1e-2)
        last, rising = math.inf, 0
        stop = "max_iter"
        while len(residuals) < max_iter:
            state, res, aux = problem.step(state, damp, h)
            res = float(res)
            rising = rising + 1 if res > last else 0
            if adaptive and rising >= 3 and damp > 0.1:  # persistent growth, not the transient after a new horizon
                damp, rising = max(0.1, damp / 2), 0
            last = res
            residuals.append(res)
            if progress:
                print(f"residual DMFT (Monte Carlo): horizon {h}/{T1}, iteration {len(residuals)}, residual {res:.2e}")
            if not math.isfinite(res) or res > 1e3 or not bool(jnp.all(jnp.isfinite(state["f"]))):
                return state, residuals, aux, "blew up", damp
            if res < tol_h:
                stop = "tol"
                break
            if final and len(residuals) >= 3:
                f = np.asarray(state["f"]).reshape(T1, -1)[:, : problem.P]
                loss = 0.5 * np.mean((f - problem.y_all[: problem.P]) ** 2, axis=1)
                floor = min(1e-3, 0.02 * float(np.max(np.asarray(aux["loss_stderr"]) / np.maximum(loss, 1e-300))))
                if res < floor:
                    stop = "monte carlo"
                    break
    return state, residuals, aux, stop, damp


def _check_samples(samples):
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (single-site paths; powers of 2 suit the Sobol "
                         f"sources), got {samples!r}")
    return int(samples)


def solve_resnet_mc(param, depth, width=math.inf, *, X, y, activation="tanh", gamma0=1.0, lr=0.5, steps=100,
                    X_test=None, record="equal_time", samples=4096, seed=0, max_iter=200, tol=1e-7, damping=None,
                    progress=False, qmc=True, control_variates=True, stein_jitter=1e-6, **_ignored) -> Trajectory:
    """Infinite-width DMFT of full-batch GD for a residual table (``depth-mup``, ``completep``, ``resnet``)
    with any activation, at finite depth ``L = depth`` blocks, by Monte Carlo over ``samples`` single-site
    paths (scrambled-Sobol sources, ``seed``; ``control_variates``: lazy-path control variates). Equations: module docstring and
    ``docs/theory/resnet_dmft.md`` section 5.

    Returns a :class:`Trajectory`: ``loss``, ``predictions`` (and ``test_predictions``), the lr-weighted
    equal-time NTK, with ``record="equal_time"`` the kernels ``phi1..phi{L+1}``, ``g1..g{L+1}``
    (steps+1, P, P) (``"two_time"`` adds ``phi{l}_tt``, ``g{l}_tt`` (steps+1, steps+1, P, P)),
    ``loss_stderr`` (first-order Monte Carlo error over paths, ignoring the noise of the estimated
    kernels/responses), and ``diagnostics`` (iterations, residuals, samples, stop reason, ...).
    ``depth=math.inf`` is only implemented for linear activations (``limits.solve_dmft(..., activation="linear")``).
    Cost per iteration ``O(L S n^2 + L n^3)``, ``n = (steps+1)(P+Q)``.
    """
    from ..data import validate
    from ..parametrization import resolve
    from .resnet import _check_div, _check_table, _depth_weights

    t_start = time.perf_counter()
    act = _acts.get(activation)
    if isinstance(depth, float) and math.isinf(depth):
        raise ValueError(f"the infinite-depth (depth=math.inf) DMFT of nonlinear residual networks "
                         f"(activation={act.name!r}) is not implemented; use a finite depth L (Monte Carlo DMFT, "
                         f"e.g. limits.solve_dmft('depth-mup', 16, activation={act.name!r})) or activation='linear' "
                         f"for the layer-time limit")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (number of residual blocks), got {depth!r}")
    X, y, X_test = validate(X, y, X_test)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if record not in ("equal_time", "two_time", "none"):
        raise ValueError(f"record must be 'equal_time', 'two_time' or 'none', got {record!r}")
    samples = _check_samples(samples if samples is not None else 4096)
    if damping is not None and not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    p = resolve(param, int(depth), gamma0=gamma0)
    if not p.is_residual:
        raise ValueError(f"{p.name!r} is not a residual table")
    if not (isinstance(width, (int, float, np.integer, np.floating)) and width > 0):
        raise ValueError(f"width must be a positive integer or math.inf, got {width!r}")
    gamma = float(p.effective_gamma(width))
    _check_table(p, float(gamma0))
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"effective richness gamma = {gamma} of {p.name!r} at width {width} is not positive and finite")
    L, steps = int(depth), int(steps)
    sd, kd = _depth_weights(p, L)
    P = X.shape[0]
    X_all = X if X_test is None else np.concatenate([X, X_test], axis=0)
    Q = 0 if X_test is None else X_test.shape[0]
    Pa, T1 = P + Q, steps + 1
    problem = ResNetMonteCarlo(act=act, Kx_all=X_all @ X_all.T / X.shape[1], y_all=np.concatenate([y, np.zeros(Q)]),
                               train_mask=np.concatenate([np.ones(P), np.zeros(Q)]), depth=L, steps=steps, gamma=gamma,
                               lr=lr, sd=sd, kd=kd, samples=samples, seed=seed, qmc=qmc, control_variates=control_variates,
                               stein_jitter=stein_jitter)
    state0 = problem.initial_state()
    _check_div(np.asarray(state0["f"]).reshape(T1, Pa)[:, :P], y, lr, 0)
    state, residuals, aux, stop, damp = iterate(problem, state0, max_iter=int(max_iter), tol=float(tol),
                                                damping=damping, progress=progress)
    f_all = np.asarray(state["f"]).reshape(T1, Pa)
    converged = stop in ("tol", "monte carlo")
    if stop == "blew up" or not all(bool(jnp.all(jnp.isfinite(K))) for K in state["Phi"] + state["G"]):
        raise FloatingPointError(f"the residual Monte Carlo DMFT iteration blew up after {len(residuals)} iterations "
                                 f"(lr={lr:g}, gamma={gamma:g}, damping={damp:g}); pass damping=0.5 (or smaller) "
                                 f"and/or use a smaller lr")
    _check_div(f_all[:, :P], y, lr, 1)
    if not converged:
        warnings.warn(f"residual Monte Carlo DMFT not converged after {len(residuals)} iterations (residual "
                      f"{residuals[-1]:.2e} > tol {tol:g}); increase max_iter or lower damping", RuntimeWarning,
                      stacklevel=2)
    preds = f_all[:, :P]
    loss = 0.5 * np.mean((preds - y) ** 2, axis=1)
    kernels, ntk = {}, None
    if record != "none":
        ntk = np.asarray(_ntk_equal_time(problem.consts["Phi0"], state["Phi"], state["G"], kd, T1, Pa))[:, :P, :P]
        for l in range(1, L + 2):
            for name, K in (("phi", state["Phi"][l - 1]), ("g", state["G"][l - 1])):
                K = np.asarray(K)
                kernels[f"{name}{l}"] = np.asarray(eq.equal_time(K, T1, Pa))[:, :P, :P]
                if record == "two_time":
                    kernels[f"{name}{l}_tt"] = K.reshape(T1, Pa, T1, Pa)[:, :P, :, :P].transpose(0, 2, 1, 3)
    meta = {"solver": "dmft", "parametrization": p.name, "regime": "feature_learning", "width": width,
            "depth": L, "activation": act.name, "lr": float(lr), "gamma0": float(gamma0), "gamma": gamma,
            "steps": steps, "residual": True, "branch_weight_per_block": sd, "lr_weight_per_block": kd,
            "seed": seed}
    diagnostics = {"iterations": len(residuals), "residuals": np.asarray(residuals), "converged": bool(converged),
                   "stopped": stop, "samples": samples, "control_variates": bool(control_variates), "qmc": bool(qmc),
                   "damping": damp, "prediction_stderr": np.asarray(aux["f_stderr"])[:, :P],
                   "loss_stderr_kind": "first-order Monte Carlo estimate over paths (kernel/response noise not "
                                       "included; compare seeds for the full error)",
                   "method": "residual Monte Carlo DMFT (joint single-site process over depth, Stein responses)",
                   "wall_time": time.perf_counter() - t_start}
    return Trajectory(loss=loss, predictions=preds, test_predictions=None if Q == 0 else f_all[:, P:],
                      loss_stderr=np.asarray(aux["loss_stderr"]), prediction_cov=np.zeros((T1, P, P)), ntk=ntk,
                      kernels=kernels, kernel_steps=np.arange(T1) if record != "none" else None, meta=meta,
                      diagnostics=diagnostics)
