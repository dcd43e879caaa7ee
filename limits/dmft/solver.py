"""Monte Carlo fixed-point solver of the discrete-time DMFT (JAX backend).

The solver iterates the map  state -> (sample single-site paths with the state's
kernels, response functions and errors) -> new kernels, response functions,
predictions, with damping, until the relative change falls below ``tol``.
The Gaussian sources are drawn once (``seed``) and reused in every iteration
(common random numbers), so the iteration converges to the fixed point of the
sampled equations and the residual goes to zero; the Monte Carlo error is the
spread over sample paths, reported as ``loss_stderr``.

Cost per fixed-point iteration, ``n = (steps + 1) * P`` (P counts test points
too), ``S`` samples, ``L`` = depth:

- sources: one Cholesky factor per hidden layer, ``O(L n^3 / 3)``;
- sample paths (forward march over time, blocked): ``O(L S n^2)`` flops, memory ``O(S n)``;
- feature/gradient kernels: ``O(L S n^2)``;
- response functions A^l, B^l (depth >= 2 only), default ``responses="stein"``: Gaussian
  integration by parts on the same paths, two GEMMs and two triangular solves per layer,
  ``O(S n^2 + n^3)``; ``responses="tangent"``: one causal (unit lower triangular) solve per
  path over ``R`` paths, ``O((L - 1) R n^3)``, blocked in time (``response_blocks``);
- storage of the state: ``O(L n^2)`` (two-time kernels are kept internally;
  only the equal-time blocks are returned unless ``record="two_time"``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _acts
from . import equations as eq
from .sources import gaussian_sources, whiten

jax.config.update("jax_enable_x64", True)

__all__ = ["second_derivative", "initial_state", "MonteCarloProblem"]


def second_derivative(act: _acts.Activation, relu_width: float = 0.1):
    """phi'' as an elementwise function. ReLU's phi'' = delta(h) is replaced by a
    Gaussian bump of standard deviation ``relu_width`` (see docs/theory/dmft.md)."""
    name = act.name
    if name == "linear" and act is _acts.get("linear"):
        return lambda x: jnp.zeros_like(x)
    if name == "tanh" and act is _acts.get("tanh"):
        return lambda x: -2.0 * jnp.tanh(x) * (1.0 - jnp.tanh(x) ** 2)
    if name == "relu" and act is _acts.get("relu"):
        w = float(relu_width)
        return lambda x: jnp.exp(-0.5 * (x / w) ** 2) / (w * math.sqrt(2.0 * math.pi))
    if name == "erf" and act is _acts.get("erf"):
        return lambda x: -(4.0 / math.sqrt(math.pi)) * x * jnp.exp(-(x**2))
    d = act.deriv
    g = jax.grad(lambda u: jnp.sum(d(u)))
    return lambda x: g(x)


def initial_kernels(act, Kx, depth):
    """Kernels at initialization: Phi^0..Phi^L (P, P) and G^1..G^{L+1}."""
    Phis = [np.asarray(Kx)]
    dots = []
    for _ in range(depth):
        K = Phis[-1]
        d = np.diag(K)
        ff, dd = _acts.gaussian_expectations(act, d[:, None], K, d[None, :])
        Phis.append(np.asarray(ff))
        dots.append(np.asarray(dd))
    Gs = [np.ones_like(Kx)]  # G^{L+1}
    for l in range(depth, 0, -1):
        Gs.insert(0, dots[l - 1] * Gs[0])
    return Phis, Gs


def kernel_gd(ntk, y, lr, steps):
    """f(t+1) = f(t) + lr/P * NTK (y - f(t)), f(0) = 0: (steps+1, P)."""
    P = y.shape[0]
    f = np.zeros((steps + 1, P))
    M = np.eye(P) - lr / P * ntk
    d = y.copy()
    for t in range(steps + 1):
        f[t] = y - d
        d = M @ d
    return f


def initial_state(act, Kx_all, y, train_mask, lr, gamma, depth, steps):
    """Lazy (frozen-kernel) guess: kernels constant in time, A = B = 0, f from kernel GD.

    Test points (``train_mask == 0``) follow the train points through the NTK."""
    T1 = steps + 1
    Phis, Gs = initial_kernels(act, Kx_all, depth)
    ntk = sum(Gs[l] * Phis[l] for l in range(depth + 1))
    tr = train_mask > 0
    P = int(tr.sum())
    f_tr = kernel_gd(ntk[np.ix_(tr, tr)], y[tr], lr, steps)
    d_tr = y[tr][None, :] - f_tr  # (T1, P)
    f = np.zeros((T1, Kx_all.shape[0]))
    f[:, tr] = f_tr
    # test points: f_*(t+1) = f_*(t) + lr/P ntk_*tr Delta(t)
    te = ~tr
    if te.any():
        inc = lr / P * d_tr @ ntk[np.ix_(te, tr)].T
        f[1:, te] = np.cumsum(inc[:-1], axis=0)
    state = {
        "f": jnp.asarray(f.reshape(-1)),
        "Phi": [jnp.asarray(eq.tile_static(Phis[l], T1)) for l in range(1, depth + 1)],
        "G": [jnp.asarray(eq.tile_static(Gs[l - 1], T1)) for l in range(1, depth + 1)],
        "A": [jnp.zeros((T1 * Kx_all.shape[0],) * 2) for _ in range(depth - 1)],
        "B": [jnp.zeros((T1 * Kx_all.shape[0],) * 2) for _ in range(depth - 1)],
    }
    return state


def _chol(K, jitter=1e-10, block=None):
    """Cholesky factor of ``K + jitter * scale * I`` with ``scale`` the largest diagonal entry of the first
    time block (``block`` points; the whole diagonal when None): a causal choice, known at t = 0."""
    n = K.shape[0]
    d = jnp.diag(K) if block is None else jnp.diag(K)[:block]
    scale = jnp.maximum(jnp.max(jnp.abs(d)), 1e-300)
    return jnp.linalg.cholesky(0.5 * (K + K.T) + jitter * scale * jnp.eye(n, dtype=K.dtype))


def _whiten(eps):
    e, W = whiten(eps)
    return jnp.asarray(e), jnp.asarray(W)


def _largest_divisor(S, cap):
    cap = max(1, min(S, cap))
    for c in range(cap, 0, -1):
        if S % c == 0:
            return c
    return 1


class MonteCarloProblem(eq.ProblemGrid):
    """Static description of one DMFT problem; builds the jitted fixed-point step once."""

    def __init__(self, *, act, Kx_all, y_all, train_mask, depth, steps, gamma, lr, samples, seed, relu_width=0.1, qmc=True, response_samples=1024,
                 chunk_bytes=2**28, response_blocks=8, responses="stein", stein_jitter=1e-3, path_blocks=8,
                 window_problems="auto", dtype="float64"):
        if responses not in ("stein", "tangent"):
            raise ValueError(f"responses must be 'stein' or 'tangent', got {responses!r}")
        self.responses = responses
        self.path_blocks = int(path_blocks)
        self.stein_jitter = float(stein_jitter)
        super().__init__(Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, depth=depth, steps=steps, gamma=gamma,
                         lr=lr)
        self.act = act
        self.S = int(samples)
        # static Gaussian factor of u^1: constant in time, covariance Kx
        Lx = np.linalg.cholesky(Kx_all + 1e-12 * np.max(np.diag(Kx_all)) * np.eye(self.Pa))
        F1 = jnp.asarray(np.tile(Lx, (self.T1, 1)))  # (n, Pa)
        L = self.depth
        dims = [(self.Pa if l == 0 else self.n) for l in range(L)] + [(1 if l == L - 1 else self.n) for l in range(L)]
        eps = gaussian_sources(self.S, dims, seed, qmc=qmc)
        eps_u = [jnp.asarray(e) for e in eps[:L]]
        eps_r = [jnp.asarray(e) for e in eps[L:]]
        # response functions average over the first R paths (a balanced Sobol subset when R is a power of 2)
        self.R = int(min(self.S, response_samples)) if response_samples else self.S
        self.chunk = _largest_divisor(self.R, max(1, chunk_bytes // (8 * 8 * self.n * self.n)))
        self.response_blocks = int(response_blocks)
        self.phi = act.fn
        self.dphi = act.deriv
        self.d2phi = second_derivative(act, relu_width)
        self.consts = dict(self.consts, F1=F1, eps_u=eps_u, eps_r=eps_r,
                           white_u=[_whiten(e) for e in eps_u], white_r=[_whiten(e) for e in eps_r])
        # causal windows t < h solved as problems of their own size (exact: every coupling is causal and the
        # sources are time-major); "auto": when the n^2 work outweighs the extra compilations
        self.window_problems = self.n >= 512 if window_problems == "auto" else bool(window_problems)
        self._windows = {}
        # float32: about twice the GEMM throughput; the sources are drawn and whitened in float64 first
        self.dtype = jnp.dtype(dtype)
        if self.dtype not in (jnp.float32, jnp.float64):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if self.dtype != jnp.float64:
            if responses != "stein":
                raise ValueError("float32 needs responses='stein'")
            self.consts = jax.tree_util.tree_map(lambda x: x.astype(self.dtype), self.consts)
        self._step = jax.jit(self._step_impl, static_argnums=(3,))

    # ------------------------------------------------------------------ paths
    def _paths(self, U, Rr, Mh, Mz, tangent):
        """Forward march over time for all samples. Returns h, z, phi(h), g (S, n) and, when
        ``tangent``, d phi(h)/d r along r = 1 (the readout response).

        Blocked in time (``path_blocks``): before a block [t0, t1) starts, the memory terms from
        all finished blocks are one GEMM each, ``(S, t0 P) x (t0 P, (t1 - t0) P)``; inside the
        block each step only touches the block's own columns. Flops ``~ S n^2 (1/2 + 1/nb)``,
        mostly in large GEMMs, instead of ``S n^2`` in memory-bound per-step products."""
        S, Pa = U.shape[0], self.Pa
        phi, dphi, d2phi = self.phi, self.dphi, self.d2phi
        blocks = self._time_blocks(self.path_blocks)
        ph_blocks, g_blocks, dph_blocks, dg_blocks, h_blocks, z_blocks = [], [], [], [], [], []
        for t0, t1 in blocks:
            p0, m = t0 * Pa, t1 * Pa
            bl = m - p0
            if p0 > 0:
                ph_done, g_done = jnp.concatenate(ph_blocks, 1), jnp.concatenate(g_blocks, 1)
                Ub = U[:, p0:m] + g_done @ Mh[p0:m, :p0].T
                Rb = Rr[:, p0:m] + ph_done @ Mz[p0:m, :p0].T
                if tangent:
                    dHb = jnp.concatenate(dg_blocks, 1) @ Mh[p0:m, :p0].T
                    dZb = 1.0 + jnp.concatenate(dph_blocks, 1) @ Mz[p0:m, :p0].T
            else:
                Ub, Rb = U[:, p0:m], Rr[:, p0:m]
                dHb, dZb = jnp.zeros((S, bl), U.dtype), jnp.ones((S, bl), U.dtype)
            Mh_b, Mz_b = Mh[p0:m, p0:m], Mz[p0:m, p0:m]

            def body(carry, j, Ub=Ub, Rb=Rb, dHb=dHb, dZb=dZb, Mh_b=Mh_b, Mz_b=Mz_b, bl=bl):
                ph, g, dph, dg = carry  # (S, bl): the block's columns
                r0 = j * Pa
                Mh_r = jax.lax.dynamic_slice(Mh_b, (r0, 0), (Pa, bl))
                Mz_r = jax.lax.dynamic_slice(Mz_b, (r0, 0), (Pa, bl))
                h_t = jax.lax.dynamic_slice(Ub, (0, r0), (S, Pa)) + g @ Mh_r.T
                ph = jax.lax.dynamic_update_slice(ph, phi(h_t), (0, r0))
                z_t = jax.lax.dynamic_slice(Rb, (0, r0), (S, Pa)) + ph @ Mz_r.T  # equal time included
                d1 = dphi(h_t)
                g = jax.lax.dynamic_update_slice(g, d1 * z_t, (0, r0))
                if tangent:
                    dh_t = jax.lax.dynamic_slice(dHb, (0, r0), (S, Pa)) + dg @ Mh_r.T
                    dph = jax.lax.dynamic_update_slice(dph, d1 * dh_t, (0, r0))
                    dz_t = jax.lax.dynamic_slice(dZb, (0, r0), (S, Pa)) + dph @ Mz_r.T
                    dg = jax.lax.dynamic_update_slice(dg, d2phi(h_t) * z_t * dh_t + d1 * dz_t, (0, r0))
                return (ph, g, dph, dg), (h_t, z_t)

            zb = jnp.zeros((S, bl), U.dtype)
            (ph, g, dph, dg), (hs, zs) = jax.lax.scan(body, (zb, zb, zb, zb), jnp.arange(t1 - t0))
            ph_blocks.append(ph)
            g_blocks.append(g)
            dph_blocks.append(dph)
            dg_blocks.append(dg)
            h_blocks.append(jnp.transpose(hs, (1, 0, 2)).reshape(S, bl))
            z_blocks.append(jnp.transpose(zs, (1, 0, 2)).reshape(S, bl))
        cat = lambda xs: jnp.concatenate(xs, axis=1)  # noqa: E731
        return cat(h_blocks), cat(z_blocks), cat(ph_blocks), cat(g_blocks), cat(dph_blocks)

    def _time_blocks(self, nb=None):
        """Time blocks [t0, t1) of the causal marches (``nb``, default ``response_blocks``, of them)."""
        nb = max(1, min(self.T1, int(self.response_blocks if nb is None else nb)))
        edges = np.unique(np.round(np.linspace(0, self.T1, nb + 1)).astype(int))
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    def _responses(self, h, z, Mh, Mz, need_A, need_B):
        """Sample means of the Jacobians A = E[d phi(h)/d r] and B = E[d g/d u].

        Tangent paths for all n source directions at once, marched forward in time
        (the linearized single-site equations, docs/theory/dmft.md section 4):
        dh_t = M_h[t] dg + du_t, dz_t = dr_t + M_z[t] dphi, dg_t = D1 dh_t + D2 dz_t,
        dphi_t = D2 dh_t. Causality: before the end of time t1 only the rows and the
        source columns of times < t1 can be non-zero, so the march runs in time blocks
        [t0, t1) on the leading ``t1 P`` columns only, and the contribution of the
        finished blocks to a block is one GEMM with ``(t1 - t0) P`` rows (blocked forward
        substitution) instead of ``t1 - t0`` memory-bound GEMMs with ``P`` rows. Flops per
        path and direction set ~ (nb + 1)(2 nb + 1) / (6 nb^2) of the dense ``2 n^3``
        (0.40 for nb = 8 blocks)."""
        n, Pa = self.n, self.Pa
        dphi, d2phi = self.dphi, self.d2phi
        sets = (["r"] if need_A else []) + (["u"] if need_B else [])
        ns = len(sets)
        C = self.chunk
        blocks = self._time_blocks()

        def chunk(hc, zc):
            d2 = dphi(hc)  # (C, n)
            d1 = d2phi(hc) * zc
            dph = jnp.zeros((n, C, ns, n))
            dg = jnp.zeros((n, C, ns, n))
            eye = jnp.eye(n)
            for t0, t1 in blocks:
                p0, m = t0 * Pa, t1 * Pa  # block rows p0:m; rows and source columns >= m are still zero
                bl = m - p0
                if p0 > 0:  # contributions of the finished blocks: one GEMM with bl rows each
                    Hp = (Mh[p0:m, :p0] @ dg[:p0, :, :, :m].reshape(p0, -1)).reshape(bl, C, ns, m)
                    Zp = (Mz[p0:m, :p0] @ dph[:p0, :, :, :m].reshape(p0, -1)).reshape(bl, C, ns, m)
                else:
                    Hp = Zp = jnp.zeros((bl, C, ns, m))
                Mh_b, Mz_b, E_b = Mh[p0:m, p0:m], Mz[p0:m, p0:m], eye[p0:m, :m]
                d2b, d1b = d2[:, p0:m].T, d1[:, p0:m].T  # (bl, C)

                def body(carry, j, m=m, bl=bl, Hp=Hp, Zp=Zp, Mh_b=Mh_b, Mz_b=Mz_b, E_b=E_b, d2b=d2b, d1b=d1b):
                    bph, bg = carry  # (bl, C, ns, m): the block's rows
                    r0 = j * Pa
                    Mh_r = jax.lax.dynamic_slice(Mh_b, (r0, 0), (Pa, bl))
                    Mz_r = jax.lax.dynamic_slice(Mz_b, (r0, 0), (Pa, bl))
                    E_t = jax.lax.dynamic_slice(E_b, (r0, 0), (Pa, m))[:, None, :]  # own source, (Pa, 1, m)
                    D2 = jax.lax.dynamic_slice(d2b, (r0, 0), (Pa, C))[:, :, None, None]
                    D1 = jax.lax.dynamic_slice(d1b, (r0, 0), (Pa, C))[:, :, None, None]
                    dh_t = jax.lax.dynamic_slice(Hp, (r0, 0, 0, 0), (Pa, C, ns, m))
                    dh_t = dh_t + (Mh_r @ bg.reshape(bl, -1)).reshape(Pa, C, ns, m)
                    if need_B:
                        dh_t = dh_t.at[:, :, ns - 1, :].add(E_t)
                    bph = jax.lax.dynamic_update_slice(bph, D2 * dh_t, (r0, 0, 0, 0))
                    dz_t = jax.lax.dynamic_slice(Zp, (r0, 0, 0, 0), (Pa, C, ns, m))
                    dz_t = dz_t + (Mz_r @ bph.reshape(bl, -1)).reshape(Pa, C, ns, m)
                    if need_A:
                        dz_t = dz_t.at[:, :, 0, :].add(E_t)
                    bg = jax.lax.dynamic_update_slice(bg, D1 * dh_t + D2 * dz_t, (r0, 0, 0, 0))
                    return (bph, bg), None

                zb = jnp.zeros((bl, C, ns, m))
                (bph, bg), _ = jax.lax.scan(body, (zb, zb), jnp.arange(t1 - t0))
                dph = dph.at[p0:m, :, :, :m].set(bph)
                dg = dg.at[p0:m, :, :, :m].set(bg)
            return dph.sum(1), dg.sum(1)  # (n, ns, n) sums over the chunk

        hc = h.reshape(-1, C, n)
        zc = z.reshape(-1, C, n)

        def body(acc, xs):
            a, b = chunk(*xs)
            return (acc[0] + a, acc[1] + b), None

        zero = jnp.zeros((n, ns, n))
        (Sph, Sg), _ = jax.lax.scan(body, (zero, zero), (hc, zc))
        S = h.shape[0]
        A = Sph[:, 0, :] / S if need_A else None
        B = Sg[:, ns - 1, :] / S if need_B else None
        return A, B

    def _responses_dense(self, h, z, Mh, Mz, need_A, need_B):
        """Reference implementation of :meth:`_responses` without the causal blocking (kept for
        tests and the speed comparison). Sample means of the Jacobians A = E[d phi(h)/d r] and B = E[d g/d u].

        Tangent paths for all n source directions at once, marched forward in time
        (the linearized single-site equations, docs/theory/dmft.md section 4):
        dh_t = M_h[t] dg + du_t, dz_t = dr_t + M_z[t] dphi, dg_t = D1 dh_t + D2 dz_t,
        dphi_t = D2 dh_t. Each time step is one GEMM of (P x n) by (n x C k) for a
        chunk of C paths and k = n (or 2n) directions: O(n^3) flops per path."""
        n, Pa, T1 = self.n, self.Pa, self.T1
        dphi, d2phi = self.dphi, self.d2phi
        k = n * (int(need_A) + int(need_B))
        C = self.chunk
        eye = jnp.eye(n)
        # source rows of the directions: r-directions first (for A), then u-directions (for B)
        src_r = [eye] if need_A else []
        src_u = [eye] if need_B else []
        Er = jnp.concatenate(src_r + [jnp.zeros((n, n))] * len(src_u), axis=1) if need_A else jnp.zeros((n, k))
        Eu = jnp.concatenate([jnp.zeros((n, n))] * len(src_r) + src_u, axis=1) if need_B else jnp.zeros((n, k))

        def chunk(hc, zc):
            d2 = dphi(hc)  # (C, n)
            d1 = d2phi(hc) * zc
            zeros = jnp.zeros((n, C, k))

            def body(carry, t):
                dph, dg = carry  # (n, C, k)
                start = t * Pa
                Mh_r = jax.lax.dynamic_slice(Mh, (start, 0), (Pa, n))
                Mz_r = jax.lax.dynamic_slice(Mz, (start, 0), (Pa, n))
                eu = jax.lax.dynamic_slice(Eu, (start, 0), (Pa, k))[:, None, :]
                er = jax.lax.dynamic_slice(Er, (start, 0), (Pa, k))[:, None, :]
                D2 = jax.lax.dynamic_slice(d2, (0, start), (C, Pa)).T[:, :, None]  # (Pa, C, 1)
                D1 = jax.lax.dynamic_slice(d1, (0, start), (C, Pa)).T[:, :, None]
                dh_t = (Mh_r @ dg.reshape(n, C * k)).reshape(Pa, C, k) + eu
                dp_t = D2 * dh_t
                dph = jax.lax.dynamic_update_slice(dph, dp_t, (start, 0, 0))
                dz_t = (Mz_r @ dph.reshape(n, C * k)).reshape(Pa, C, k) + er
                dg_t = D1 * dh_t + D2 * dz_t
                dg = jax.lax.dynamic_update_slice(dg, dg_t, (start, 0, 0))
                return (dph, dg), None

            (dph, dg), _ = jax.lax.scan(body, (zeros, zeros), jnp.arange(T1))
            return dph.sum(1), dg.sum(1)  # (n, k) sums over the chunk

        hc = h.reshape(-1, C, n)
        zc = z.reshape(-1, C, n)

        def body(acc, xs):
            a, b = chunk(*xs)
            return (acc[0] + a, acc[1] + b), None

        (Sph, Sg), _ = jax.lax.scan(body, (jnp.zeros((n, k)), jnp.zeros((n, k))), (hc, zc))
        S = h.shape[0]
        A = Sph[:, :n] / S if need_A else None
        B = Sg[:, k - n :] / S if need_B else None
        return A, B

    def _stein(self, X, white, C, mask):
        """Response function ``E[dX/dv]`` of path quantities ``X`` (S, n) to the source ``v = eps C^T``
        by Gaussian integration by parts (Stein's lemma): ``E[X eps^T] = E[dX/d eps] = E[dX/dv] C``.

        ``white = (e, W)``: the sources whitened on the sample, ``eps = e W^T`` with ``W`` lower
        triangular and ``e^T e / S = I`` exactly (:func:`_whiten`), so that ``v = e (C W)^T`` and
        ``E[dX/dv] = mask(E[(X - mean X) e^T]) (C W)^{-1}``. On the sample this is the least-squares
        coefficient of X on the sources: the part of X linear in the sources is recovered exactly,
        and only the nonlinear remainder contributes sampling noise. Unbiased for any activation
        (ReLU's kink crossings included, no phi''); ``O(S n^2 + n^3)``. ``mask``: the causal pattern
        of the expectation (entries that vanish exactly are set to zero, removing their noise); the
        triangular factors keep it."""
        e, W = white
        S = X.shape[0]
        Xc = X - X.mean(0, keepdims=True)
        M = mask * (Xc.T @ e) / S
        M = jax.scipy.linalg.solve_triangular(W, M.T, lower=True, trans=1).T  # M W^{-1}
        return jax.scipy.linalg.solve_triangular(C, M.T, lower=True, trans=1).T  # ... C^{-1}

    # ------------------------------------------------------------------ step
    def _step_impl(self, consts, state, damping, responses=True, horizon=None):
        y_flat, mask_flat, strict, incl = consts["y"], consts["mask"], consts["strict"], consts["incl"]
        Phi0, F1, eps_u, eps_r = consts["Phi0"], consts["F1"], consts["eps_u"], consts["eps_r"]
        G_top = jnp.ones_like(strict)
        L, S, c = self.depth, self.S, self.lr * self.gamma
        delta = (y_flat - state["f"]) * mask_flat
        dt = delta / self.P
        new_Phi, new_G = [], []
        new_A = [None] * (L - 1)
        new_B = [None] * (L - 1)
        a = None
        f_samples = None
        for l in range(1, L + 1):
            Phi_prev, G_next, Mh, Mz = eq.layer_memory(l, L, c, dt, Phi0, G_top, new_Phi, new_A, state, strict, incl)
            jit_src = self.stein_jitter if self.responses == "stein" else 1e-10
            if l == 1:
                U = eps_u[0] @ F1.T
            else:
                Cu = _chol(Phi_prev, jit_src, self.Pa)
                U = eps_u[l - 1] @ Cu.T
            if l == L:
                Rr = jnp.broadcast_to(eps_r[l - 1], (S, self.n))
            else:
                Cr = _chol(G_next, jit_src, self.Pa)
                Rr = eps_r[l - 1] @ Cr.T
            h, z, ph, g, _ = self._paths(U, Rr, Mh, Mz, tangent=False)
            new_Phi.append(ph.T @ ph / S)
            new_G.append(g.T @ g / S)
            need_A, need_B = l <= L - 1, l >= 2
            if not responses:  # keep the current response functions (cheap iteration)
                if need_A:
                    new_A[l - 1] = state["A"][l - 1]
                if need_B:
                    new_B[l - 2] = state["B"][l - 2]
            elif self.responses == "stein":
                if need_A:
                    new_A[l - 1] = self._stein(ph, consts["white_r"][l - 1], Cr, strict)
                if need_B:
                    new_B[l - 2] = self._stein(g, consts["white_u"][l - 1], Cu, incl)
            elif need_A or need_B:
                A_l, B_lm1 = self._responses(h[: self.R], z[: self.R], Mh, Mz, need_A, need_B)
                if need_A:
                    new_A[l - 1] = A_l
                if need_B:
                    new_B[l - 2] = B_lm1
            if l == L:
                # readout response a = E[r^L phi(h^L)] (Stein) with the control variate phi(h^L)|_{r^L = 0}
                ph_off = self._paths(U, jnp.zeros_like(Rr), Mh, Mz, tangent=False)[2]
                ra = eps_r[l - 1] * (ph - ph_off)
                a = ra.mean(0)
                # per-sample readout f_i(t) = ra_i(t)/gamma + lr phi_i(t) sum_{s<t} Dt(s).phi_i(s)
                w = (ph * dt[None, :]).reshape(S, self.T1, self.Pa).sum(-1)
                w_before = jnp.cumsum(w, axis=1) - w  # sum over s < t
                f_samples = ra / self.gamma + self.lr * ph * jnp.repeat(w_before, self.Pa, axis=1)
        f_new = eq.readout(a, new_Phi[-1], dt, self.gamma, self.lr, strict)
        Phi_all = [Phi0] + new_Phi
        G_all = new_G + [G_top]
        ntk_t = eq.ntk_equal_time(Phi_all, G_all, self.T1, self.Pa)
        f_new = eq.march(f_new, state["f"], y_flat, mask_flat, ntk_t, self.lr, self.P, self.T1, self.Pa)
        new = {"f": f_new, "Phi": new_Phi, "G": new_G, "A": new_A, "B": new_B}
        new = eq.within_horizon(new, horizon, self.T1, self.Pa)
        # the residual measures the outputs (predictions, kernels); the response functions are
        # intermediate and, estimated by Stein's lemma, fluctuate at the Monte Carlo level
        damped, res = eq.relax(state, new, damping, ("f", "Phi", "G"))
        # Monte Carlo standard error of the train loss (first order in the sample mean of f)
        T1, Pa = self.T1, self.Pa
        fbar = f_samples.mean(0)
        err = (fbar - y_flat) * mask_flat
        dl = ((f_samples - fbar[None, :]) * err[None, :]).reshape(S, T1, Pa).sum(-1) / self.P
        loss_se = jnp.std(dl, axis=0) / jnp.sqrt(S)
        f_se = (jnp.std(f_samples, axis=0) / jnp.sqrt(S)).reshape(T1, Pa)
        return damped, res, {"loss_stderr": loss_se, "f_stderr": f_se}

    def step(self, state, damping, responses=True, horizon=None):
        """One damped fixed-point iteration; ``responses=False`` reuses A, B (skips the response part);
        ``horizon``: only times ``t < horizon`` are updated (causal continuation, default all), by the
        window's own problem of ``horizon`` time points when ``window_problems`` (cost ``(horizon/T1)^2``
        of a full step), else on the full grid with the later times overwritten."""
        h = self.T1 if horizon is None else int(horizon)
        responses = bool(responses and self.depth > 1)
        if h >= self.T1 or not self.window_problems:
            return self._run_step(state, damping, responses, h)
        m = h * self.Pa
        part = jax.tree_util.tree_map(lambda x: x[:m] if x.ndim == 1 else x[:m, :m], state)
        part, res, aux = self._window(h)._run_step(part, damping, responses, h)
        return _extend(part, state, h, self.T1, self.Pa), res, _pad_errors(aux, self.T1)

    def _run_step(self, state, damping, responses, horizon):
        state = jax.tree_util.tree_map(lambda x: x.astype(self.dtype), state)
        return self._step(self.consts, state, jnp.asarray(damping, dtype=self.dtype), responses,
                          jnp.asarray(horizon, dtype=jnp.int32))

    def _window(self, h):
        """This problem restricted to the first ``h`` time points (same paths, sources, constants)."""
        if h not in self._windows:
            import copy

            m, n = h * self.Pa, self.n
            sub = copy.copy(self)
            sub.T1, sub.n, sub.window_problems, sub._windows = h, m, False, {}

            def cols(x):  # a source (S, d): its first m columns when it is time-major over the grid
                return x[:, :m] if x.shape[1] == n else x

            c = self.consts
            sub.consts = dict(c, y=c["y"][:m], mask=c["mask"][:m], strict=c["strict"][:m, :m],
                              incl=c["incl"][:m, :m], Phi0=c["Phi0"][:m, :m], F1=c["F1"][:m],
                              eps_u=[cols(e) for e in c["eps_u"]], eps_r=[cols(e) for e in c["eps_r"]],
                              white_u=[(cols(e), W[:m, :m]) for e, W in c["white_u"]],
                              white_r=[(cols(e), W[:m, :m]) for e, W in c["white_r"]])
            sub._step = jax.jit(sub._step_impl, static_argnums=(3,))
            self._windows[h] = sub
        return self._windows[h]


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _extend(part, state, h, T1, Pa):
    """Embed the window state ``part`` (times < h) into the full grid and continue it beyond the horizon
    (:func:`limits.dmft.equations.within_horizon`, which reads only times < h)."""
    m = h * Pa

    def embed(p, full):
        return full.at[:m].set(p) if full.ndim == 1 else full.at[:m, :m].set(p)

    full = jax.tree_util.tree_map(embed, part, state)
    return eq.within_horizon(full, h, T1, Pa)


def _pad_errors(aux, T1):
    """Window error estimates, (h,) and (h, Pa), padded to T1 time points with their last entry."""
    return {k: jnp.concatenate([v, jnp.repeat(v[-1:], T1 - v.shape[0], axis=0)], axis=0) for k, v in aux.items()}
