r"""Width-N fluctuations of a depth-2 MLP with a smooth nonlinear activation (docs/theory/finite_width.md section 6).

The network's two hidden layers are two populations of single-site neurons coupled by the order parameters

.. math::  q = (\Phi^1, A, G^2, B, f),\quad \Phi^1 = \langle\phi^1\phi^{1\top}\rangle,\
           A = \langle \partial\phi^1/\partial\tilde r\rangle,\ G^2 = \langle g^2 g^{2\top}\rangle,\
           B = \langle \partial g^2/\partial\tilde u\rangle,\ f = \langle w\,\phi^2\rangle/\gamma ,

all (n, n) on the time-major grid ``n = (steps+1) Pa`` except ``f`` (T1, Pa). A layer-1 neuron with sources
``u ~ N(0, Kx)`` and backward field ``r~ ~ N(0, G^2)`` runs (``Dt(s) = mask (y - f(s)) / P``, ``c = lr gamma``)

.. math::  h^1(t) = b_1 u + c\kappa_1 \textstyle\sum_{s<t} \Delta_s g^1(s) K_x,\quad
           z^1(t) = b_2\big(\tilde r(t) + \sum_{s\le t} B(t,s)\phi^1(s)\big) + c\kappa_2\sum_{s<t} G^2(t,s)\Delta_s\phi^1(s),

``g^1 = \phi'(h^1) z^1``; a layer-2 neuron with forward field ``u~ ~ N(0, Phi^1)`` and readout source ``r ~ N(0, 1)``

.. math::  h^2(t) = b_2\big(\tilde u(t) + \textstyle\sum_{s<t} A(t,s) g^2(s)\big) + c\kappa_2\sum_{s<t}\Phi^1(t,s)\Delta_s g^2(s),\quad
           w(t) = b_3 r + c\kappa_3 \sum_{s<t}\phi^2(s)\cdot\Delta_s,

``g^2 = \phi'(h^2) w``. At N = inf ``q`` is the fixed point of the path means ``q = <O>(q)`` (causal: exact after a
fixed number of passes). At width N the delta method gives ``N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T}``, ``D`` the
Jacobian of the path means, and ``kappa`` the covariance of the per-neuron operators *in the MSR action*: for the
operators that carry a conjugate field (``A``, ``B``) it is a second-order response, not a plain covariance,

.. math::  \kappa_{AA}(ab, cd) = \mathrm{Cov}(M_{ab}, M_{cd}) + \langle M_{ad} M_{cb}\rangle
           + \langle\phi_a \partial_b\partial_d\phi_c + \phi_c \partial_b\partial_d\phi_a\rangle,\qquad
           \kappa_{\Phi A}(ac, ef) = \mathrm{Cov}(\phi_a\phi_c, M_{ef}) + \langle (M_{af}\phi_c + \phi_a M_{cf})\phi_e\rangle,

``M = d phi^1 / d r~`` the path's response (likewise layer 2 with ``g^2``, ``d / d u~``), and
``kappa_fB(t, ef) = Cov(F_t, M_ef) + <dF_t/du~_f g_e>``. Only the rows of ``(I - D)^{-1}`` for ``f`` are needed:
``W = E_f (I + D + D^2 + ...)`` (``D`` is nilpotent), one ``vjp`` of the path means per term, and then
``N Cov(f) = W kappa W^T`` from per-path projections; no (n^2, n^2) matrix is formed.

Checks (``benchmarks/finite_width_deep_nonlinear/``): linear activation against the exact deep-linear theory, tanh
against ensembles of width-N networks. Cost ``O(S n^3 n_f)`` per pass of ``W`` (``n_f = n``), so this route is for
small ``n``; the mean shift is not derived here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .march import precision

__all__ = ["depth_two", "adjoint_rows", "prediction_covariance", "MAX_GRID", "ADJOINT_SAMPLES"]

MAX_GRID = 40
"""Largest grid ``n = (steps+1) x points`` the depth-2 route accepts: its cost grows as ``n^5`` (about 4 minutes at
n = 24 on two CPU cores, an hour at n = 40)."""

ADJOINT_SAMPLES = 2048
"""Paths (a prefix of the same sources) for the rows ``W = E_f (I - D)^{-1}``, the dominant cost."""

KEYS = ("P1", "A", "G2", "B", "F")
CHUNK_ENTRIES = 2**23
"""Per-path entries held at once when the paths are processed in chunks (64 MB in float64)."""


def _grid(q):
    T1, Pa = q["F"].shape
    return T1, Pa, T1 * Pa


def _layer1(act, cst, q, u, rt):
    r"""One layer-1 neuron: sources ``u`` (Pa,), backward Gaussian field ``rt`` (n,). Returns ``phi^1`` (n,)."""
    T1, Pa, n = _grid(q)
    c, (k1, k2, _), (b1, b2, _) = cst["c"], cst["kappa"], cst["b"]
    dt = cst["mask"] * (cst["y"] - q["F"]) / cst["P"]

    def step(carry, xs):
        run_g, phis, dphis = carry  # sum_{s<t} Dt(s) g(s) (Pa,); phi(s) for s < t; Dt(s) phi(s) for s < t
        t, rt_t, B_t, G_t, d_t = xs
        h = b1 * u + c * k1 * (run_g @ cst["Kx"])
        p = act.fn(h)
        phis = phis.at[t].set(p)
        z = b2 * (rt_t + B_t @ phis.reshape(-1)) + c * k2 * (G_t @ dphis.reshape(-1))
        g = act.deriv(h) * z
        return (run_g + d_t * g, phis, dphis.at[t].set(d_t * p)), p

    zeros = jnp.zeros((T1, Pa), u.dtype)
    xs = (jnp.arange(T1), rt.reshape(T1, Pa), q["B"].reshape(T1, Pa, n), q["G2"].reshape(T1, Pa, n), dt)
    return jax.lax.scan(step, (jnp.zeros_like(u), zeros, zeros), xs)[1].reshape(-1)


def _layer2(act, cst, q, ut, r):
    r"""One layer-2 neuron: forward Gaussian field ``ut`` (n,), readout source ``r`` (). Returns ``g^2`` (n,) and
    ``F = w phi^2 / gamma`` (n,)."""
    T1, Pa, n = _grid(q)
    c, (_, k2, k3), (_, b2, b3) = cst["c"], cst["kappa"], cst["b"]
    dt = cst["mask"] * (cst["y"] - q["F"]) / cst["P"]

    def step(carry, xs):
        gs, dgs, run_w = carry  # g(s) for s < t; Dt(s) g(s) for s < t; sum_{s<t} phi(s).Dt(s)
        t, ut_t, A_t, P_t, d_t = xs
        h = b2 * (ut_t + A_t @ gs.reshape(-1)) + c * k2 * (P_t @ dgs.reshape(-1))
        w = b3 * r + c * k3 * run_w
        p = act.fn(h)
        g = act.deriv(h) * w
        return (gs.at[t].set(g), dgs.at[t].set(d_t * g), run_w + p @ d_t), (g, w * p / cst["gamma"])

    zeros = jnp.zeros((T1, Pa), ut.dtype)
    xs = (jnp.arange(T1), ut.reshape(T1, Pa), q["A"].reshape(T1, Pa, n), q["P1"].reshape(T1, Pa, n), dt)
    g, F = jax.lax.scan(step, (zeros, zeros, jnp.zeros((), ut.dtype)), xs)[1]
    return g.reshape(-1), F.reshape(-1)


def _factor(M):
    """Lower Cholesky factor of a kernel, with a relative jitter of 1e-12 for the exactly singular directions of
    test points that coincide with train points."""
    return jnp.linalg.cholesky(M + 1e-12 * jnp.max(jnp.diag(M)) * jnp.eye(M.shape[0], dtype=M.dtype))


def _fields(q, src):
    """The Gaussian fields of both populations: ``rt = e1 chol(G^2)^T``, ``ut = e2 chol(Phi^1)^T`` (S, n)."""
    u, e1, e2, r = src
    sym = lambda M: (M + M.T) / 2  # noqa: E731  (both triangles carry the sensitivity)
    return u, e1 @ _factor(sym(q["G2"])).T, e2 @ _factor(sym(q["P1"])).T, r


def _with_jacobian(f, argnum):
    """``(x1, x2) -> (f, df / dx_argnum)`` of a per-path map with one vector output (forward mode)."""
    return jax.jacfwd(lambda *a: (f(*a), f(*a)), argnums=argnum, has_aux=True)


def _layer_sums(act, cst, q, src):
    """Sums over the paths of ``src`` of the operators ``(phi phi^T, M1, g g^T, M2, F)``."""
    u, rt, ut, r = _fields(q, src)
    M1, phi = jax.vmap(_with_jacobian(functools.partial(_layer1, act, cst, q), 1))(u, rt)
    M2, g = jax.vmap(_with_jacobian(lambda a, b: _layer2(act, cst, q, a, b)[0], 0))(ut, r)
    F = jax.vmap(lambda a, b: _layer2(act, cst, q, a, b)[1])(ut, r)
    return {"P1": phi.T @ phi, "A": M1.sum(0), "G2": g.T @ g, "B": M2.sum(0), "F": F.sum(0).reshape(q["F"].shape)}


def _chunks(S: int, per_path: int) -> list:
    size = int(max(1, min(S, CHUNK_ENTRIES // max(per_path, 1))))
    return [slice(i, min(S, i + size)) for i in range(0, S, size)]


def _means(act, cst, q, src, chunks):
    """``<O>(q)``: the path means of the order parameters' operators (a dict like ``q``)."""
    fn = _jit_sums(act)
    S = src[0].shape[0]
    tot = None
    for sl in chunks:
        part = fn(cst, q, tuple(s[sl] for s in src))
        tot = part if tot is None else jax.tree_util.tree_map(jnp.add, tot, part)
    return jax.tree_util.tree_map(lambda x: x / S, tot)


@functools.lru_cache(maxsize=None)
def _jit_sums(act):
    return jax.jit(functools.partial(_layer_sums, act))


def fixed_point(act, cst, src, T1: int, Pa: int, chunks):
    """The sample's DMFT: ``q = <O>(q)`` by ``4 T1 + 4`` causal passes from ``Phi^1 = G^2 = I``."""
    n = T1 * Pa
    dtype = src[0].dtype
    q = {"P1": jnp.eye(n, dtype=dtype), "A": jnp.zeros((n, n), dtype), "G2": jnp.eye(n, dtype=dtype),
         "B": jnp.zeros((n, n), dtype), "F": jnp.zeros((T1, Pa), dtype)}
    for _ in range(4 * T1 + 4):
        q_new = _means(act, cst, q, src, chunks)
        q_new["P1"] = (q_new["P1"] + q_new["P1"].T) / 2
        q_new["G2"] = (q_new["G2"] + q_new["G2"].T) / 2
        done = all(bool(jnp.array_equal(q_new[k], q[k])) for k in KEYS)
        q = q_new
        if done:
            break
    return q


def _vjp_sums(act, cst, q, src, cot):
    """The path sums' vjp for a batch of cotangents ``cot`` (a dict like ``q`` with a leading axis)."""
    _, pull = jax.vjp(lambda qq: _layer_sums(act, cst, qq, src), q)
    return jax.vmap(lambda c: pull(c)[0])(cot)


@functools.lru_cache(maxsize=None)
def _jit_vjp(act):
    return jax.jit(functools.partial(_vjp_sums, act))


def adjoint_rows(act, cst, q, src, chunks, progress=False):
    r"""The rows of ``(I - D)^{-1}`` for ``f``: ``W = E_f (I + D + D^2 + ...)``, ``D = d<O>/dq`` nilpotent (causal).
    One vjp of the path means per term, until a term is at round-off level (:data:`NILPOTENT_TOL`; at most
    ``4 T1 + 4`` terms, about ``2 T1`` in practice).

    Returns:
        a dict like ``q`` whose entries have a leading axis ``n_f = T1 Pa`` (one row per prediction).
    """
    T1, Pa, n = _grid(q)
    S = src[0].shape[0]
    term = {k: jnp.zeros((n,) + q[k].shape, q[k].dtype) for k in KEYS}
    term["F"] = jnp.eye(n, dtype=q["F"].dtype).reshape(n, T1, Pa)
    W = term
    fn = _jit_vjp(act)
    bar = _bar(4 * T1 + 4, progress, "width-N adjoint")
    for _ in range(4 * T1 + 4):
        nxt = None
        for sl in chunks:
            part = fn(cst, q, tuple(s[sl] for s in src), term)
            nxt = part if nxt is None else jax.tree_util.tree_map(jnp.add, nxt, part)
        term = jax.tree_util.tree_map(lambda x: x / S, nxt)
        bar.update(1)
        W = jax.tree_util.tree_map(jnp.add, W, term)
        if _largest(term) <= NILPOTENT_TOL * _largest(W):
            break
    bar.close()
    return W


NILPOTENT_TOL = 1e-13
"""A term of the series ``W`` this small relative to ``W`` is round-off of a structurally zero one (``D`` is
nilpotent: the terms vanish exactly in exact arithmetic after about ``2 T1`` passes)."""


def _largest(tree) -> float:
    return max(float(jnp.max(jnp.abs(x))) for x in jax.tree_util.tree_leaves(tree))


def _bar(total, progress, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


def _second_order(f, x, dirs):
    """``K_i = d/dx [J(x) dirs_i]`` (n_f, n, n) with ``dirs_i`` held fixed: second derivatives of ``f`` contracted
    with one direction each, ``K_i[c, d] = sum_b d_b d_d f_c dirs_i[b]``."""
    return jax.vmap(lambda v: jax.jacfwd(lambda y: jax.jvp(f, (y,), (v,))[1])(x))(dirs)


def _conjugate_terms(x, M, K, WX, WR):
    r"""One path's extra (MSR) terms of ``W kappa W^T`` for one population (module docstring): ``x`` (n,) the
    operator's field (``phi^1`` or ``g^2``), ``M`` (n, n) its response, ``K`` (n_f, n, n) its second derivatives
    contracted with ``a_i = WR_i^T x``; ``WX``, ``WR`` (n_f, n, n) the rows over the kernel and response blocks.
    Returns (n_f, n_f): ``tr(WR_i M^T WR_j M^T) + [s_i^T M a_j + <WR_j, K_i> + (i <-> j)]``."""
    Z = WR @ M.T
    a = WR.transpose(0, 2, 1) @ x
    s = (WX + WX.transpose(0, 2, 1)) @ x
    one = s @ M @ a.T + jnp.einsum("icd,jcd->ij", K, WR)
    return jnp.einsum("iac,jca->ij", Z, Z) + one + one.T


def _layer1_projection(act, cst, q, W, u, rt):
    """One layer-1 path: its projection ``y_i = phi^T W^P1_i phi + <W^A_i, M>`` (n_f,) and its MSR terms (n_f, n_f)."""
    f = functools.partial(_layer1, act, cst, q, u)
    M, x = _with_jacobian(lambda a, b: f(b), 1)(u, rt)
    WX, WR = W["P1"], W["A"]
    K = _second_order(f, rt, WR.transpose(0, 2, 1) @ x)
    y = jnp.einsum("a,iab,b->i", x, WX, x) + jnp.einsum("iab,ab->i", WR, M)
    return y, _conjugate_terms(x, M, K, WX, WR)


def _layer2_projection(act, cst, q, W, ut, r):
    """One layer-2 path: ``y_i = g^T W^G2_i g + <W^B_i, M> + W^F_i . F`` and its MSR terms, with
    ``kappa_fB``'s ``<dF/du~ g>`` (n_f, n_f)."""
    both = lambda a: _layer2(act, cst, q, a, r)  # noqa: E731
    f = lambda a: both(a)[0]  # noqa: E731
    (M, dF), (x, F) = jax.jacfwd(lambda a: (both(a), both(a)), has_aux=True)(ut)
    WX, WR, WF = W["G2"], W["B"], W["F"].reshape(W["F"].shape[0], -1)
    K = _second_order(f, ut, WR.transpose(0, 2, 1) @ x)
    y = jnp.einsum("a,iab,b->i", x, WX, x) + jnp.einsum("iab,ab->i", WR, M) + WF @ F
    fb = (WF @ dF) @ (WR.transpose(0, 2, 1) @ x).T
    return y, _conjugate_terms(x, M, K, WX, WR) + fb + fb.T


def _projection_sums(act, cst, q, W, src):
    """Sums over a chunk of paths of both populations' ``y``, ``y y^T`` and MSR terms."""
    u, rt, ut, r = _fields(q, src)
    y1, e1 = jax.vmap(functools.partial(_layer1_projection, act, cst, q, W))(u, rt)
    y2, e2 = jax.vmap(functools.partial(_layer2_projection, act, cst, q, W))(ut, r)
    return {"y1": y1.sum(0), "yy1": y1.T @ y1, "y2": y2.sum(0), "yy2": y2.T @ y2, "msr": (e1 + e2).sum(0)}


@functools.lru_cache(maxsize=None)
def _jit_projection(act):
    return jax.jit(functools.partial(_projection_sums, act))


def prediction_covariance(act, cst, q, W, src, chunks, progress=False):
    r"""``N Cov(f) = W kappa W^T`` (n_f, n_f): the path covariances of each population's projections plus the mean of
    the MSR terms (module docstring)."""
    S = src[0].shape[0]
    fn = _jit_projection(act)
    tot = None
    for sl in _bar_iter(chunks, progress, "width-N covariance"):
        part = fn(cst, q, W, tuple(s[sl] for s in src))
        tot = part if tot is None else jax.tree_util.tree_map(jnp.add, tot, part)
    tot = {k: np.asarray(v) / S for k, v in tot.items()}
    cov = lambda m, mm: (mm - np.outer(m, m)) * S / (S - 1)  # noqa: E731
    return cov(tot["y1"], tot["yy1"]) + cov(tot["y2"], tot["yy2"]) + tot["msr"]


def _bar_iter(items, progress, desc):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not progress, leave=False)


def depth_two(act, limit, *, Kx_all, y_all, train_mask, lr, sources, adjoint_samples=None, dtype="float64",
              progress=False):
    r"""``N Cov(f)`` of a depth-2 MLP with a smooth activation at O(1/N) (module docstring).

    Args:
        act: the activation (:mod:`limits.activations`; twice differentiable).
        limit: the table's :class:`~limits.parametrization.DMFTLimit` (two fields).
        Kx_all: (Pa, Pa) input kernel (train points first); y_all: (Pa,) targets; train_mask: (Pa,) 1 on train points.
        lr: the learning rate; the number of steps is set by ``sources``.
        sources: ``(u (S, Pa) ~ N(0, Kx), e1 (S, n), e2 (S, n), r (S,))`` standard normal except ``u``.
        adjoint_samples: the first this many paths give the rows ``W`` (None: :data:`ADJOINT_SAMPLES`, at most S).
        progress: progress bars over the adjoint passes and the covariance chunks.

    Returns:
        ``(cov, spread)``: ``cov`` (n_f, n_f) ``N Cov(f)`` over all pairs of grid points ``(t, p)`` (time-major);
        ``spread`` (T1, P) the larger of the two layers' per-neuron spreads of their kernel diagonals relative to
        the mean, ``sqrt(Var_i x_i^2) / <x^2>`` (``x = phi^1, g^2``; ``spread / sqrt(N)`` is the expansion's
        relative size).
    """
    mask = np.asarray(train_mask) > 0
    Pa = mask.size
    S, n = np.shape(sources[1])
    T1 = n // Pa
    cast = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    with precision(dtype):
        cst = {"c": cast(limit.gamma * lr), "kappa": tuple(cast(k) for k in limit.kappa),
               "b": tuple(cast(b) for b in limit.b), "Kx": cast(Kx_all), "gamma": cast(limit.gamma),
               "y": cast(y_all), "mask": cast(mask), "P": cast(mask.sum())}
        src = tuple(cast(np.reshape(s, (S, -1)) if i < 3 else np.reshape(s, -1)) for i, s in enumerate(sources))
        q = fixed_point(act, cst, src, T1, Pa, _chunks(S, 2 * n * n))
        SD = min(S, ADJOINT_SAMPLES if adjoint_samples is None else int(adjoint_samples))
        W = adjoint_rows(act, cst, q, tuple(s[:SD] for s in src), _chunks(SD, 8 * n**3), progress)
        cov = prediction_covariance(act, cst, q, W, src, _chunks(S, 6 * n**3), progress)
        spread = _kernel_spread(act, cst, q, src)
    return cov, spread.reshape(T1, Pa)[:, mask]


def _kernel_spread(act, cst, q, src):
    """``max(sqrt(Var x^2) / <x^2>)`` over ``x = phi^1, g^2`` per grid point (n,)."""
    u, rt, ut, r = _fields(q, src)
    x1 = jax.vmap(functools.partial(_layer1, act, cst, q))(u, rt) ** 2
    x2 = jax.vmap(lambda a, b: _layer2(act, cst, q, a, b)[0])(ut, r) ** 2
    rel = lambda x: np.asarray(jnp.std(x, axis=0) / jnp.mean(x, axis=0))  # noqa: E731
    return np.maximum(rel(x1), rel(x2))
