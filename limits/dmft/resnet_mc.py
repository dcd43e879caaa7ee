"""Monte Carlo DMFT of nonlinear residual networks at finite depth L and in layer time (JAX, float64).

Network (``limits/finite/network.py``; muP in width, DMFT units of DESIGN.md)::

    h^1 = W_0 x / sqrt(D),   h^{l+1} = h^l + b W_l phi(h^l) / sqrt(N)   (l = 1..L),
    f = w . phi(h^{L+1}) / (gamma N),   b = beta L^{-alpha},

raw learning rate ``lr gamma^2 N`` (blocks ``x eta = L^{lr_exponent}``); per-block
weights ``sd = b^2``, ``kd = eta b^2``; ``c = lr gamma``, ``Dt = Delta / P``.

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
(causal; its equal-time part is diagonal in the points), and the readout

    f(t) = a(t) / gamma + lr sum_{s<t} Phi^{L+1}(t, s) Dt(s),    a = <r^{L+1} phi(h^{L+1})>.

Derivation and the meaning of each term: ``docs/theory/resnet_dmft.md`` section 5.
All two-time objects are (n, n) matrices over ``n = (steps + 1) P`` (time-major,
``a = t P + mu``; test points are extra points with ``Delta = 0``).

Estimators (``S`` sample paths, common random numbers: the sources are drawn once as
scrambled-Sobol normals, :func:`limits.dmft.solver.gaussian_sources`, the leading Sobol
coordinates given to the directions of largest variance): kernels are sample second
moments; ``A^l``, ``B^l`` and ``a`` come from Stein's lemma (no phi'': exact for ReLU), each
with a control variate that has an exactly vanishing Stein expectation, the same paths
with the source in question switched off (:func:`responses`, :func:`readout_response`).

At ``depth=math.inf`` (:func:`solve_layer_time`) the same process, with per-block weights ``sigma2/K``,
``kappa/K``, is the Euler-Maruyama scheme of the layer-time SDE; ``K``, ``K/2``, ``K/4`` steps on coupled
sources (:func:`pair_blocks`) are Richardson-extrapolated (docs/theory/resnet_dmft.md section 6).

Cost per fixed-point iteration: ``2 L + 2`` path computations (one scan over time each, the
depth unrolled inside, ``O(L S n^2)`` each), kernels and Stein responses ``O(L S n^2)``,
Cholesky factors ``O(L n^3)``; memory ``O(L S n + L n^2)``.
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
from .iteration import causal_windows, check_divergence, fixed_point
from .solver import _chol, kernel_gd
from .sources import gaussian_sources, pair_blocks, split_sources

jax.config.update("jax_enable_x64", True)

__all__ = ["solve_monte_carlo", "solve_layer_time", "euler_levels", "pair_blocks", "richardson_weights", "ResNetMonteCarlo", "Config", "initial_kernels", "ntk_weights", "stein_response",
           "stein_response_equal_time"]

DEFAULT_SAMPLES = 8192


# ----------------------------------------------------------------------------- small pieces
def stein_response(X, eps, C, mask):
    """Response ``E[dX/dv]`` (m, n) of path quantities ``X`` (S, m) to the Gaussian source ``v = eps C^T``
    (``eps`` (S, n) standard normal, ``C`` (n, n) lower triangular) by Gaussian integration by parts
    (Stein's lemma, as in :mod:`limits.dmft.solver`): ``E[X eps^T] = E[dX/d eps] = E[dX/dv] C``, so
    ``E[dX/dv] = mask(E[(X - mean X) eps^T]) C^{-1}``. Unbiased for any activation (no phi'');
    ``mask`` zeroes the entries known to vanish (causality), the triangular ``C^{-1}`` keeps that
    pattern. ``O(S m n + m n^2)``."""
    M = mask * ((X - X.mean(0, keepdims=True)).T @ eps) / X.shape[0]
    return jax.scipy.linalg.solve_triangular(C, M.T, lower=True, trans=1).T


def stein_response_equal_time(X, eps, C, strict):
    """Stein estimate of a response ``B = E[dX/dv]`` whose equal-time blocks are diagonal (``X`` (S, n), source
    ``v = eps C^T``, pattern ``strict + I``). Stein's lemma gives ``M = E[X eps^T] = B C``; in an equal-time
    block of row ``a`` only ``B(a, a)`` contributes, ``M(a, b) = B(a, a) C(a, b)`` for ``b`` at the time of ``a``
    (lower triangular). ``B(a, a)`` is fitted to all those entries by least squares (instead of
    ``M(a, a) / C(a, a)``, whose small denominators amplify the noise), the equal-time part of ``M`` is replaced
    by the fit, and ``B = M C^{-1}`` with the known zeros set. Linear in ``M``, hence as unbiased as Stein's
    estimate itself; ``O(S n^2 + n^3)``."""
    n = C.shape[0]
    eq_lower = (1.0 - strict) * jnp.tril(jnp.ones((n, n)))  # equal-time blocks, lower triangle with diagonal
    M = ((X - X.mean(0, keepdims=True)).T @ eps) / X.shape[0]
    Ce = C * eq_lower
    diag = jnp.sum(M * Ce, axis=1) / jnp.maximum(jnp.sum(Ce * Ce, axis=1), 1e-300)
    M = M * strict + diag[:, None] * Ce
    B = jax.scipy.linalg.solve_triangular(C, M.T, lower=True, trans=1).T
    return B * (strict + jnp.eye(n))


def initial_kernels(act, Kx, L: int, sd: float):
    """Kernels of the residual network at initialization (infinite width), each (P, P).

    Forward ``K^1 = Kx``, ``K^{l+1} = K^l + sd Phi^l`` with ``Phi^l = E_{K^l}[phi phi]`` (l = 1..L+1);
    backward ``G^{L+1} = E_{K^{L+1}}[phi' phi']``, ``G^l = G^{l+1} (1 + sd E_{K^l}[phi' phi'])``.
    Returns ``([Phi^1..Phi^{L+1}], [G^1..G^{L+1}])``."""
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
    """Weights of ``NTK = G^1 Phi^0 + kd sum_{l=1}^{L} G^{l+1} Phi^l + Phi^{L+1} 1`` (elementwise products),
    one per pair ``(Phi^0, G^1), (Phi^1, G^2), .., (Phi^{L+1}, 1)``: a list of length L + 2."""
    return [1.0] + [kd] * L + [1.0]


def ntk_equal_time(Phi0, Phis, Gs, kd, T1: int, Pa: int):
    """Equal-time lr-weighted NTK (T1, Pa, Pa) from two-time kernels (n, n), ``Phis = [Phi^1..Phi^{L+1}]``,
    ``Gs = [G^1..G^{L+1}]``: to first order ``f(t+1) - f(t) = lr/P NTK(t) Delta(t)``."""
    w = ntk_weights(len(Phis) - 1, kd)
    return eq.ntk_equal_time([wi * K for wi, K in zip(w, [Phi0] + list(Phis))], list(Gs) + [jnp.ones_like(Phi0)],
                             T1, Pa)


def lazy_predictions(ntk, y_all, train_mask, lr, steps: int):
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


# ----------------------------------------------------------------------------- the equations
@dataclasses.dataclass(frozen=True)
class Config:
    """Static (hashable) shape of a problem; the jitted step compiles once per Config.

    ``L`` blocks, ``S`` paths, ``T1 = steps + 1``, ``Pa`` points (train + test), ``P`` train points;
    ``skip=False`` drops the skip connections: the same equations then describe an MLP with L + 1
    hidden layers (with ``b = kd = 1``), a cross-check against :mod:`limits.dmft.solver`.
    ``responses=False`` (branches without noise, ``b = 0``: the CompleteP layer-time limit) skips the
    Stein responses, which then vanish identically."""

    act: _acts.Activation
    L: int
    S: int
    T1: int
    Pa: int
    P: int
    skip: bool = True
    responses: bool = True

    @property
    def n(self) -> int:
        return self.T1 * self.Pa


def memory(cfg: Config, state, dt, consts):
    """Memory matrices (n, n): ``Mh = [M_0..M_L]`` acting on ``g^1..g^{L+1}`` in the forward equations and
    ``Mz = [Z_1..Z_{L+1}]`` acting on ``phi(h^1)..phi(h^{L+1})`` in the backward ones (module docstring)."""
    c, b, kd = consts["c"], consts["b"], consts["kd"]
    strict, Dt = consts["strict"], dt[None, :]
    Mh = [c * consts["Phi0"] * Dt * strict]
    Mh += [(b * A + c * kd * Phi * Dt) * strict for A, Phi in zip(state["A"], state["Phi"][:-1])]
    Mz = [b * B * consts["incl"] + c * kd * G * Dt * strict for B, G in zip(state["B"], state["G"][1:])]
    Mz.append(c * Dt * strict)  # readout: w(t) = r^{L+1} + c sum_{s<t} Dt(s).phi(h^{L+1}(s))
    return Mh, Mz


def sources(cfg: Config, state, consts):
    """Scaled source paths (S, n): ``U = [u^0, b u^1, .., b u^L]``, ``R = [b r^1, .., b r^L, r^{L+1}]``, and
    the Cholesky factors ``Cu = [chol Phi^l]``, ``Cr = [chol G^{l+1}]`` (l = 1..L) of the two-time kernels
    (plus ``stein_jitter`` times their largest diagonal entry: bounds the amplification of the Stein noise
    in nearly singular directions, and adds that much white noise to the sources)."""
    b, jit = consts["b"], consts["jitter"]
    Cu = [_chol(K, jit, cfg.Pa) for K in state["Phi"][:-1]]
    Cr = [_chol(K, jit, cfg.Pa) for K in state["G"][1:]]
    U = [consts["eps_u"][0] @ consts["F0"].T] + [b * (e @ C.T) for e, C in zip(consts["eps_u"][1:], Cu)]
    R = [b * (e @ C.T) for e, C in zip(consts["eps_r"], Cr)]
    R.append(jnp.broadcast_to(consts["eps_top"], (cfg.S, cfg.n)))
    return U, R, Cu, Cr


def paths(cfg: Config, U, R, Mh, Mz):
    """Sample paths of the joint single-site process: one scan over time, the depth unrolled inside. At
    time t, up the network ``h^{k+1}(t) = h^k(t) + U_k(t) + M_k(t, :) g^{k+1}`` (past g only), then down
    ``g^{k+1}(t) = g^{k+2}(t) + phi'(h^{k+1}(t)) (R_k(t) + Z_{k+1}(t, :) phi(h^{k+1}))`` (phi up to time t).
    ``U``, ``R``: lists of L+1 (S, n). Returns ``phi(h)`` and ``g``, each (L+1, S, n) (index k = layer - 1).
    Internally time-major, (L+1, n, S): each step is a (P, n) x (n, S) product per layer and memory."""
    S, Pa, n, K = cfg.S, cfg.Pa, cfg.n, cfg.L + 1
    phi, dphi = cfg.act.fn, cfg.act.deriv
    UT, RT = jnp.stack([u.T for u in U]), jnp.stack([r.T for r in R])  # (K, n, S)

    def body(carry, t):
        ph, g = carry  # (K, n, S)
        start = t * Pa

        def rows(M):
            return jax.lax.dynamic_slice(M, (start, 0), (Pa, n))

        u_t = jax.lax.dynamic_slice(UT, (0, start, 0), (K, Pa, S))
        r_t = jax.lax.dynamic_slice(RT, (0, start, 0), (K, Pa, S))
        hs, h = [], 0.0
        for k in range(K):
            h = (h if cfg.skip else 0.0) + u_t[k] + rows(Mh[k]) @ g[k]
            hs.append(h)
        ph = jax.lax.dynamic_update_slice(ph, phi(jnp.stack(hs)), (0, start, 0))
        gs, gk = [None] * K, 0.0
        for k in range(K - 1, -1, -1):
            gk = (gk if cfg.skip else 0.0) + dphi(hs[k]) * (r_t[k] + rows(Mz[k]) @ ph[k])
            gs[k] = gk
        g = jax.lax.dynamic_update_slice(g, jnp.stack(gs), (0, start, 0))
        return (ph, g), None

    zeros = jnp.zeros((K, n, S))
    (ph, g), _ = jax.lax.scan(body, (zeros, zeros), jnp.arange(cfg.T1))
    return jnp.swapaxes(ph, 1, 2), jnp.swapaxes(g, 1, 2)


def _switched_off(src, k):
    """``src`` (a list of source paths) with entry ``k`` replaced by zeros."""
    return [jnp.zeros_like(x) if j == k else x for j, x in enumerate(src)]


def responses(cfg: Config, U, R, Mh, Mz, ph, g, Cu, Cr, consts):
    """Stein estimates (n, n) of ``A^l = <d phi(h^l)/d r^l>`` and ``B^l = <d g^{l+1}/d u^l>``, l = 1..L.

    Control variates: the same paths with the source in question switched off (``r^l = 0`` for ``A^l``,
    ``u^l = 0`` for ``B^l``) do not depend on it, so their Stein expectation vanishes exactly. Subtracting
    them leaves only the part of ``phi(h^l)`` (``g^{l+1}``) that the source changes (``O(lr gamma)`` for A)
    instead of the whole O(1) field: no ``1/gamma`` noise amplification as ``gamma -> 0``, and ~3x less
    noise in the loss at ``gamma0 = 1``. ``2 L`` extra path computations."""
    A, B = [], []
    for k in range(cfg.L):
        ph_off = paths(cfg, U, _switched_off(R, k), Mh, Mz)[0][k]
        A.append(stein_response(ph[k] - ph_off, consts["eps_r"][k], Cr[k], consts["strict"]))
        g_off = paths(cfg, _switched_off(U, k + 1), R, Mh, Mz)[1][k + 1]
        B.append(stein_response_equal_time(g[k + 1] - g_off, consts["eps_u"][k + 1], Cu[k], consts["strict"]))
    return A, B


def readout_response(cfg: Config, U, R, Mh, Mz, top, r):
    """Per-path terms (S, n) of ``a = <r^{L+1} phi(h^{L+1})> = <d phi(h^{L+1})/d r^{L+1}>``, with the control
    variate ``phi(h^{L+1})|_{r^{L+1}=0}`` (independent of ``r^{L+1}``): ``r^{L+1} [phi(h^{L+1}) - phi(h^{L+1})|_0]``.
    The bracket is ``O(lr gamma)``, so ``a/gamma`` in the readout has no ``1/gamma`` noise (the plain mean
    would make ``f(0) = a(0)/gamma`` a noise of order ``1/(gamma sqrt S)``). ``top``: ``phi(h^{L+1})`` (S, n)."""
    ph0, _ = paths(cfg, U, _switched_off(R, cfg.L), Mh, Mz)
    return r * (top - ph0[-1])


def _step_impl(cfg: Config, consts, state, damping, horizon):
    """One damped fixed-point iteration of the residual DMFT (module docstring). Returns
    ``(damped state, residual, {"loss_stderr" (T1,), "f_stderr" (T1, Pa)})``."""
    L, S, T1, Pa = cfg.L, cfg.S, cfg.T1, cfg.Pa
    y, mask, strict = consts["y"], consts["mask"], consts["strict"]
    gamma, lr = consts["gamma"], consts["lr"]
    dt = (y - state["f"]) * mask / cfg.P
    Mh, Mz = memory(cfg, state, dt, consts)
    U, R, Cu, Cr = sources(cfg, state, consts)
    ph, g = paths(cfg, U, R, Mh, Mz)
    Phi = [ph[k].T @ ph[k] / S for k in range(L + 1)]
    G = [g[k].T @ g[k] / S for k in range(L + 1)]
    if cfg.responses:
        A, B = responses(cfg, U, R, Mh, Mz, ph, g, Cu, Cr, consts)
    else:
        A, B = state["A"], state["B"]  # zeros: b = 0
    ra = readout_response(cfg, U, R, Mh, Mz, ph[L], consts["eps_top"])
    f_img = eq.readout(ra.mean(0), Phi[L], dt, gamma, lr, strict)
    ntk_t = ntk_equal_time(consts["Phi0"], Phi, G, consts["kd"], T1, Pa)
    f_new = eq.march(f_img, state["f"], y, mask, ntk_t, lr, cfg.P, T1, Pa)
    new = eq.within_horizon({"f": f_new, "Phi": Phi, "G": G, "A": A, "B": B}, horizon, T1, Pa)
    damped, res = eq.relax(state, new, damping, ("f", "Phi", "G"))
    return damped, res, _errors(cfg, ra / gamma, ph[L], dt, consts)


def _errors(cfg: Config, ra, top, dt, consts):
    """First-order Monte Carlo standard errors of the loss (T1,) and predictions (T1, Pa) from the per-path
    readout ``f_i(t) = ra_i(t) + lr phi_i(t) sum_{s<t} Dt(s).phi_i(s)`` (plain Monte Carlo rate over paths;
    ignores the noise that the estimated kernels and responses feed back through the fixed point)."""
    S, T1, Pa = cfg.S, cfg.T1, cfg.Pa
    w = (top * dt[None, :]).reshape(S, T1, Pa).sum(-1)
    before = jnp.repeat(jnp.cumsum(w, axis=1) - w, Pa, axis=1)
    fs = ra + consts["lr"] * top * before
    fbar = fs.mean(0)
    dl = ((fs - fbar) * ((fbar - consts["y"]) * consts["mask"])).reshape(S, T1, Pa).sum(-1) / cfg.P
    return {"loss_stderr": jnp.std(dl, axis=0) / math.sqrt(S),
            "f_stderr": (jnp.std(fs, axis=0) / math.sqrt(S)).reshape(T1, Pa)}


_step = jax.jit(_step_impl, static_argnums=(0,))


class ResNetMonteCarlo(eq.ProblemGrid):
    """One residual DMFT problem: its :class:`Config`, the fixed sources and constants, the lazy guess
    (the grid, targets and causal masks of :class:`limits.dmft.equations.ProblemGrid`).

    State (dict of JAX arrays): ``f`` (n,), ``Phi = [Phi^1..Phi^{L+1}]``, ``G = [G^1..G^{L+1}]``,
    ``A = [A^1..A^L]``, ``B = [B^1..B^L]``, each (n, n). ``sd = b^2``, ``kd = eta b^2`` per block.
    ``eps``: the standard normal sources in the layout of :func:`split_sources` (default: drawn from
    ``seed``; :func:`pair_blocks` couples a problem with half the blocks to another's)."""

    def __init__(self, *, act, Kx_all, y_all, train_mask, depth, steps, gamma, lr, sd, kd, samples, seed,
                 qmc=True, stein_jitter=1e-4, skip=True, eps=None):
        super().__init__(Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, depth=depth, steps=steps, gamma=gamma,
                         lr=lr)
        S, T1, Pa, L = int(samples), self.T1, self.Pa, self.depth
        self.cfg = Config(act=_acts.get(act), L=L, S=S, T1=T1, Pa=Pa, P=self.P, skip=bool(skip),
                          responses=float(sd) > 0)
        self.sd, self.kd = float(sd), float(kd)
        self.Kx = np.asarray(Kx_all, dtype=np.float64)
        self.y_all, self.train_mask = np.asarray(y_all, float), np.asarray(train_mask, float)
        if eps is None:
            (Z,) = gaussian_sources(S, [1 + Pa + 2 * L * T1 * Pa], seed, qmc=qmc)
            eps = split_sources(Z, L, T1, Pa)
        if len(eps) != 2 * L + 2 or any(e.shape[0] != S for e in eps):
            raise ValueError(f"eps must be {2 * L + 2} source arrays with {S} rows (split_sources), got {len(eps)}")
        eps = [jnp.asarray(e) for e in eps]
        Lx = np.linalg.cholesky(self.Kx + 1e-12 * np.max(np.diag(self.Kx)) * np.eye(Pa))
        scalar = lambda v: jnp.asarray(float(v), dtype=jnp.float64)  # noqa: E731  (traced: no recompilation)
        self.consts.update({
            "F0": jnp.asarray(np.tile(Lx, (T1, 1))),
            "eps_u": eps[: L + 1], "eps_r": eps[L + 1 : 2 * L + 1], "eps_top": eps[-1],
            "gamma": scalar(gamma), "lr": scalar(lr), "c": scalar(lr * gamma), "b": scalar(math.sqrt(sd)),
            "kd": scalar(kd), "jitter": scalar(stein_jitter),
        })

    def initial_state(self):
        """Lazy guess: kernels of the network at init (constant in time), ``A = B = 0``, ``f`` from kernel GD."""
        cfg = self.cfg
        Phis, Gs = initial_kernels(cfg.act, self.Kx, cfg.L, self.sd)
        pairs = zip(ntk_weights(cfg.L, self.kd), [self.Kx] + Phis, Gs + [np.ones_like(self.Kx)])
        ntk0 = sum(w * Ph * G for w, Ph, G in pairs)
        f = lazy_predictions(ntk0, self.y_all, self.train_mask, self.lr, cfg.T1 - 1)
        zero = jnp.zeros((cfg.n, cfg.n))
        return {"f": jnp.asarray(f.reshape(-1)),
                "Phi": [jnp.asarray(eq.tile_static(K, cfg.T1)) for K in Phis],
                "G": [jnp.asarray(eq.tile_static(K, cfg.T1)) for K in Gs],
                "A": [zero] * cfg.L, "B": [zero] * cfg.L}

    def step(self, state, damping, horizon=None):
        """One damped fixed-point iteration; only times ``t < horizon`` are updated (default: all)."""
        h = self.cfg.T1 if horizon is None else int(horizon)
        return _step(self.cfg, self.consts, state, jnp.asarray(damping, dtype=jnp.float64),
                     jnp.asarray(h, dtype=jnp.int32))


# ----------------------------------------------------------------------------- driver
def _checked(samples, stein_jitter):
    if samples is None:
        samples = DEFAULT_SAMPLES
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (single-site paths; powers of 2 suit the Sobol "
                         f"sources), got {samples!r}")
    stein_jitter = 1e-4 if stein_jitter is None else stein_jitter
    if not (isinstance(stein_jitter, (int, float)) and 0 < stein_jitter < 1):
        raise ValueError(f"stein_jitter must be in (0, 1), got {stein_jitter!r}")
    return int(samples), float(stein_jitter)


def _problem(act, L, sd, kd, gamma, *, X, y, X_test, lr, steps, samples, seed, qmc, stein_jitter, eps=None):
    """The :class:`ResNetMonteCarlo` problem of data ``X`` (P, D), ``y`` (P,), ``X_test`` (Q, D) or None."""
    Q = 0 if X_test is None else X_test.shape[0]
    X_all = X if X_test is None else np.concatenate([X, X_test], axis=0)
    return ResNetMonteCarlo(act=act, Kx_all=X_all @ X_all.T / X.shape[1], y_all=np.concatenate([y, np.zeros(Q)]),
                            train_mask=np.concatenate([np.ones(X.shape[0]), np.zeros(Q)]), depth=L, steps=steps,
                            gamma=gamma, lr=lr, sd=sd, kd=kd, samples=samples, seed=seed, qmc=qmc,
                            stein_jitter=stein_jitter, eps=eps)


def _converge(problem, y, *, lr, gamma, tol, max_iter, damping, progress, desc):
    """Drive ``problem`` to its fixed point (:func:`limits.dmft.iteration.fixed_point`, four causal windows).
    Raises on blow-up or diverging gradient descent, warns if not converged. Returns
    ``(state, residuals, aux, stop, damping)``."""
    P, T1, Pa = y.shape[0], problem.T1, problem.Pa
    state0 = problem.initial_state()
    check_divergence(np.asarray(state0["f"]).reshape(T1, Pa)[:, :P], y, lr)
    state, residuals, aux, stop, damp = fixed_point(problem, state0, schedules=[causal_windows(T1)], y=y,
                                                    tol=float(tol), max_iter=int(max_iter), damping=damping,
                                                    progress=progress, desc=desc)
    if stop == "blew up" or not all(bool(jnp.all(jnp.isfinite(K))) for K in state["Phi"] + state["G"]):
        raise FloatingPointError(f"the residual Monte Carlo DMFT iteration blew up after {len(residuals)} iterations "
                                 f"(lr={lr:g}, gamma={gamma:g}, damping={damp:g}); pass damping=0.5 (or smaller) "
                                 f"and/or use a smaller lr")
    check_divergence(np.asarray(state["f"]).reshape(T1, Pa)[:, :P], y, lr)
    if stop not in ("tol", "monte carlo"):
        warnings.warn(f"residual Monte Carlo DMFT not converged after {len(residuals)} iterations (residual "
                      f"{residuals[-1]:.2e} > tol {tol:g}); increase max_iter or lower damping", RuntimeWarning,
                      stacklevel=4)
    return state, residuals, aux, stop, damp


def _equal_time_kernels(problem, state):
    """Equal-time kernels of the train points, ``[Phi^1..Phi^{L+1}]`` and ``[G^1..G^{L+1}]``, each (T1, P, P)."""
    T1, Pa, P = problem.T1, problem.Pa, problem.P
    et = lambda K: np.asarray(eq.equal_time(K, T1, Pa))[:, :P, :P]  # noqa: E731
    return [et(K) for K in state["Phi"]], [et(K) for K in state["G"]]


def _ntk(problem, state):
    """Equal-time lr-weighted NTK of the train points (T1, P, P)."""
    ntk = ntk_equal_time(problem.consts["Phi0"], state["Phi"], state["G"], problem.kd, problem.T1, problem.Pa)
    return np.asarray(ntk)[:, : problem.P, : problem.P]


def _diagnostics(residuals, stop, samples, qmc, stein_jitter, damp, t_start, **extra):
    return {"iterations": len(residuals), "residuals": np.asarray(residuals),
            "converged": stop in ("tol", "monte carlo"), "stopped": stop, "samples": int(samples), "qmc": bool(qmc),
            "stein_jitter": float(stein_jitter), "damping": damp,
            "loss_stderr_kind": "first-order Monte Carlo estimate over paths (the noise of the estimated kernels and "
                                "responses is not included; compare seeds for the full error)",
            "wall_time": time.perf_counter() - t_start, **extra}


def solve_monte_carlo(p, L: int, width, gamma: float, *, X, y, X_test, act, gamma0, lr, steps: int, record, samples,
                      seed, qmc, stein_jitter, max_iter, tol, damping, progress, t_start) -> Trajectory:
    """Monte Carlo DMFT of the validated residual table ``p`` with ``L`` blocks at richness ``gamma``
    (inputs checked by :func:`limits.dmft.resnet.solve_resnet_dmft`, the public entry, through
    ``limits.solve_dmft``). ``samples=None``: 8192 paths; ``stein_jitter=None``: 1e-4 (the control
    variates keep the Stein noise small enough for a smaller jitter than the MLP solver's). The fixed point
    is driven by :func:`limits.dmft.iteration.fixed_point` through four causal windows.

    Returns a :class:`Trajectory`: ``loss``, ``predictions`` (``test_predictions``), the lr-weighted
    equal-time NTK, with ``record="equal_time"`` the kernels ``phi1..phi{L+1}``, ``g1..g{L+1}``
    (steps+1, P, P) (``"two_time"`` adds ``phi{l}_tt``, ``g{l}_tt``, (steps+1, steps+1, P, P)),
    ``loss_stderr`` (first-order Monte Carlo error over paths; the noise of the estimated kernels and
    responses is not in it: compare ``seed`` s for the full error) and ``diagnostics``.
    Cost per iteration ``O(L^2 S n^2 + L n^3)``, memory ``O(L S n + L n^2)``, ``n = (steps+1)(P+Q)``.
    """
    from .resnet import _depth_weights

    samples, stein_jitter = _checked(samples, stein_jitter)
    sd, kd = _depth_weights(p, L)
    P, T1 = X.shape[0], steps + 1
    problem = _problem(act, L, sd, kd, gamma, X=X, y=y, X_test=X_test, lr=lr, steps=steps, samples=samples, seed=seed,
                       qmc=qmc, stein_jitter=stein_jitter)
    Pa = problem.Pa
    state, residuals, aux, stop, damp = _converge(problem, y, lr=lr, gamma=gamma, tol=tol, max_iter=max_iter,
                                                  damping=damping, progress=progress, desc="residual DMFT fixed point")
    f_all = np.asarray(state["f"]).reshape(T1, Pa)
    preds = f_all[:, :P]
    loss = 0.5 * np.mean((preds - y) ** 2, axis=1)
    kernels, ntk = {}, None
    if record != "none":
        ntk = _ntk(problem, state)
        phis, gs = _equal_time_kernels(problem, state)
        for l in range(1, L + 2):
            kernels[f"phi{l}"], kernels[f"g{l}"] = phis[l - 1], gs[l - 1]
            if record == "two_time":
                for name, K in (("phi", state["Phi"][l - 1]), ("g", state["G"][l - 1])):
                    kernels[f"{name}{l}_tt"] = np.asarray(K).reshape(T1, Pa, T1, Pa)[:, :P, :, :P].transpose(0, 2, 1, 3)
    meta = {"solver": "dmft", "parametrization": p.name, "regime": "feature_learning", "width": width,
            "depth": L, "activation": act.name, "lr": float(lr), "gamma0": float(gamma0), "gamma": gamma,
            "steps": steps, "residual": True, "branch_weight_per_block": sd, "lr_weight_per_block": kd, "seed": seed}
    diagnostics = _diagnostics(residuals, stop, samples, qmc, stein_jitter, damp, t_start,
                               prediction_stderr=np.asarray(aux["f_stderr"])[:, :P],
                               method="residual Monte Carlo DMFT (joint single-site process over depth, Stein "
                                      "responses)")
    return Trajectory(loss=loss, predictions=preds, test_predictions=None if Pa == P else f_all[:, P:],
                      loss_stderr=np.asarray(aux["loss_stderr"]), prediction_cov=np.zeros((T1, P, P)), ntk=ntk,
                      kernels=kernels, kernel_steps=np.arange(T1) if record != "none" else None, meta=meta,
                      diagnostics=diagnostics)


def richardson_weights(m: int):
    """Weights ``w`` (m,) of the extrapolation ``sum_i w_i X(2^i h)`` that cancels the terms ``h, .., h^(m-1)`` of
    an expansion ``X(h) = X(0) + e1 h + e2 h^2 + ..`` (``m = 2``: ``(2, -1)``; ``m = 3``: ``(8/3, -2, 1/3)``)."""
    V = np.array([[2.0 ** (i * k) for i in range(m)] for k in range(m)])
    return np.linalg.solve(V, np.eye(m)[0])


def euler_levels(act, levels, s2, k2, gamma, *, X, y, X_test, lr, steps, samples, seed, qmc, stein_jitter, tol,
                 max_iter, damping, progress):
    """Euler-Maruyama solves of the layer-time SDE (densities ``s2 = sigma2``, ``k2 = kappa``) with ``k`` steps for
    each ``k`` in ``levels`` (each the double of the next, e.g. ``[16, 8, 4, 2, 1]``), on coupled sources: the
    finest draws them from ``seed``, each coarser one gets the summed increments of the previous
    (:func:`pair_blocks`), so differences between levels carry little sampling noise. Returns
    ``[(problem, (state, residuals, aux, stop, damping)), ...]`` in the order of ``levels``."""
    if any(a != 2 * b for a, b in zip(levels, levels[1:])):
        raise ValueError(f"levels must halve step by step, got {levels}")
    out, eps = [], None
    for k in levels:
        prob = _problem(act, k, s2 / k, k2 / k, gamma, X=X, y=y, X_test=X_test, lr=lr, steps=steps, samples=samples,
                        seed=seed, qmc=qmc, stein_jitter=stein_jitter, eps=eps)
        out.append((prob, _converge(prob, y, lr=lr, gamma=gamma, tol=tol, max_iter=max_iter, damping=damping,
                                    progress=progress, desc=f"layer-time DMFT, {k} steps in tau")))
        if k != levels[-1]:
            c = prob.consts
            eps = pair_blocks(list(c["eps_u"]) + list(c["eps_r"]) + [c["eps_top"]], k)
    return out


def solve_layer_time(p, K: int, width, gamma: float, *, X, y, X_test, act, gamma0, lr, steps: int, record, samples,
                     seed, qmc, stein_jitter, max_iter, tol, damping, progress, t_start) -> Trajectory:
    """Infinite-depth (``L -> inf`` after ``N -> inf``) Monte Carlo DMFT of a nonlinear residual table ``p``.

    In layer time ``tau = (l - 1)/L`` the single-site process becomes a forward-backward SDE: ``h`` is driven
    up by the Brownian source ``sigma dU(tau)`` (``Cov dU = Phi(tau) dtau``) with drift
    ``[sigma2 A(tau) + kappa c Phi(tau) Dt] g(tau) dtau``, ``g`` down by ``phi'(h) [sigma dR(tau) + (sigma2 B(tau)
    + kappa c G(tau) Dt) phi(h) dtau]`` (``sigma2 = lim L b^2``, ``kappa = lim L eta b^2``, ``A = lim <dphi/dr>/b``,
    ``B`` likewise; docs/theory/resnet_dmft.md section 6). Its Euler-Maruyama scheme with ``K`` steps is the
    finite-depth process of :class:`ResNetMonteCarlo` with per-block weights ``sd = sigma2/K``, ``kd = kappa/K``,
    whose weak error has an expansion ``e1/K + e2/K^2 + ..`` (Talay-Tubaro). The solver runs ``K``, ``K/2`` and
    (when ``4 | K``) ``K/4`` steps and combines them with :func:`richardson_weights`, which cancels the terms
    through ``K^-2`` (``K^-1`` with two levels). Each coarser level runs on the summed Brownian increments of
    the finer one (:func:`pair_blocks`), so their Monte Carlo errors largely cancel in the combination.

    ``K``: even number of layer-time steps (default 4 through ``solve_dmft``). Returns a :class:`Trajectory` with
    the extrapolated predictions, loss and NTK, and with ``record="equal_time"`` the kernels ``phi_tau``,
    ``g_tau`` (k + 1, steps+1, P, P) on the coarsest level's nodes ``meta["tau"] = j/k``;
    ``diagnostics["depth_error"]`` (steps+1,) is ``|loss - loss_K|``, the error of the plain ``K``-step
    solution that the extrapolation removed, and ``loss_stderr`` bounds the Monte Carlo error of the
    combination by ``sqrt(sum_i w_i^2 s_i^2)`` (no credit for the coupling).
    Cost: finite-depth solves at ``K``, ``K/2`` (and ``K/4``) blocks, ``O(K^2 S n^2)`` per iteration.
    """
    from .resnet import _depth_weights

    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2 or K % 2:
        raise ValueError(f"depth_steps must be an even integer >= 2 for the nonlinear layer-time solver (Richardson "
                         f"extrapolation from depth_steps, depth_steps/2, ..), got {K!r}")
    if record == "two_time":
        raise ValueError("record='two_time' is not available at depth=math.inf; use 'equal_time' or a finite depth")
    samples, stein_jitter = _checked(samples, stein_jitter)
    s2, k2 = _depth_weights(p, math.inf)
    P, T1 = X.shape[0], steps + 1
    levels = [K, K // 2] + ([K // 4] if K % 4 == 0 else [])
    w = richardson_weights(len(levels))
    problems, runs = zip(*euler_levels(act, levels, s2, k2, gamma, X=X, y=y, X_test=X_test, lr=lr, steps=steps,
                                       samples=samples, seed=seed, qmc=qmc, stein_jitter=stein_jitter, tol=tol,
                                       max_iter=max_iter, damping=damping, progress=progress))
    combine = lambda xs: sum(wi * x for wi, x in zip(w, xs))  # noqa: E731
    Pa = problems[0].Pa
    fs = [np.asarray(run[0]["f"]).reshape(T1, Pa) for run in runs]
    f_all = combine(fs)
    check_divergence(f_all[:, :P], y, lr)
    preds = f_all[:, :P]
    loss = 0.5 * np.mean((preds - y) ** 2, axis=1)
    loss_levels = {k: 0.5 * np.mean((f[:, :P] - y) ** 2, axis=1) for k, f in zip(levels, fs)}
    kernels, ntk = {}, None
    if record != "none":
        ntk = combine([_ntk(prob, run[0]) for prob, run in zip(problems, runs)])
        ets = [_equal_time_kernels(prob, run[0]) for prob, run in zip(problems, runs)]
        k_min = levels[-1]
        for name, idx in (("phi_tau", 0), ("g_tau", 1)):
            kernels[name] = np.stack([combine([et[idx][j * k // k_min] for k, et in zip(levels, ets)])
                                      for j in range(k_min + 1)])
    stderr = np.sqrt(sum((wi * np.asarray(run[2]["loss_stderr"])) ** 2 for wi, run in zip(w, runs)))
    f_err = np.sqrt(sum((wi * np.asarray(run[2]["f_stderr"])) ** 2 for wi, run in zip(w, runs)))[:, :P]
    stops = [run[3] for run in runs]
    stop = next((st for st in stops if st not in ("tol", "monte carlo")), stops[0])
    residuals = [r for run in runs for r in run[1]]
    meta = {"solver": "dmft", "parametrization": p.name.replace("depth 4", "depth inf"), "regime": "feature_learning",
            "width": width, "depth": math.inf, "activation": act.name, "lr": float(lr), "gamma0": float(gamma0),
            "gamma": gamma, "steps": steps, "residual": True, "seed": seed, "depth_steps": int(K),
            "depth_levels": levels, "richardson_weights": w, "tau": np.arange(levels[-1] + 1) / levels[-1],
            "branch_variance_density": s2, "lr_density": k2}
    diagnostics = _diagnostics(residuals, stop, samples, qmc, stein_jitter, min(run[4] for run in runs), t_start,
                               prediction_stderr=f_err, depth_error=np.abs(loss - loss_levels[K]),
                               loss_depth_steps=loss_levels,
                               iterations_per_solve={k: len(run[1]) for k, run in zip(levels, runs)},
                               method=f"layer-time Monte Carlo DMFT (Euler-Maruyama in tau with "
                                      f"{'/'.join(map(str, levels))} steps on coupled sources, Richardson "
                                      f"extrapolation)")
    return Trajectory(loss=loss, predictions=preds, test_predictions=None if Pa == P else f_all[:, P:],
                      loss_stderr=stderr, prediction_cov=np.zeros((T1, P, P)), ntk=ntk, kernels=kernels,
                      kernel_steps=np.arange(T1) if record != "none" else None, meta=meta, diagnostics=diagnostics)
