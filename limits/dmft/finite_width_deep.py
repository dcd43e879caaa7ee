r"""Width-N fluctuations of a deep MLP (depth K >= 2) with a smooth nonlinear activation
(docs/theory/finite_width.md section 6).

The K hidden layers are K populations of single-site neurons coupled by the order parameters

.. math::  q = (\Phi^k, A^k, G^{k+1}, B^k)_{k=1}^{K-1} \cup (f),\quad \Phi^k = \langle\phi^k\phi^{k\top}\rangle,\
           A^k = \langle \partial\phi^k/\partial\tilde r^k\rangle,\ G^{k+1} = \langle g^{k+1} g^{k+1\top}\rangle,\
           B^k = \langle \partial g^{k+1}/\partial\tilde u^{k+1}\rangle,\ f = \langle z^K\phi^K\rangle/\gamma ,

all (n, n) on the time-major grid ``n = (steps+1) Pa`` except ``f`` (T1, Pa). A neuron of layer k has a forward
source (``u ~ N(0, Kx)`` for k = 1, else the Gaussian field ``u~^k ~ N(0, Phi^{k-1})``) and a backward one (the
Gaussian field ``r~^k ~ N(0, G^{k+1})``, or the readout source ``r ~ N(0, 1)`` for k = K), and runs the DMFT of
docs/theory/dmft.md (``Dt(s) = mask (y - f(s)) / P``, ``c = lr gamma``):

.. math::  h^k(t) = b_{k-1}\big(\tilde u^k(t) + \textstyle\sum_{s<t} A^{k-1}(t,s) g^k(s)\big)
                    + c\kappa_{k-1}\sum_{s<t}\Phi^{k-1}(t,s)\Delta_s g^k(s)
           \quad (h^1 = b_0 u + c\kappa_0 \textstyle\sum_{s<t}\Delta_s g^1(s) K_x),

.. math::  z^k(t) = b_k\big(\tilde r^k(t) + \textstyle\sum_{s\le t} B^k(t,s)\phi^k(s)\big)
                    + c\kappa_k\sum_{s<t} G^{k+1}(t,s)\Delta_s\phi^k(s)
           \quad (z^K = b_K r + c\kappa_K \textstyle\sum_{s<t}\phi^K(s)\cdot\Delta_s),

``g^k = phi'(h^k) z^k``. At N = inf ``q`` is the fixed point of the path means ``q = <O>(q)`` (causal). At width N the
delta method gives ``N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T}`` with ``D`` the Jacobian of the path means and
``kappa`` the covariance of the per-neuron operators *in the MSR action*: an operator that carries conjugate fields
(``A``: the backward field's, ``B``: the forward field's) contributes through derivatives of the products,
``kappa(<X jhat_b>, <Y jhat'_d>) = <d_b d'_d (X Y)> - <d_b X><d'_d Y>``, e.g.

.. math::  \kappa_{AA}(ab, cd) = \mathrm{Cov}(M_{ab}, M_{cd}) + \langle M_{ad} M_{cb}\rangle
           + \langle\phi_a \partial_b\partial_d\phi_c + \phi_c \partial_b\partial_d\phi_a\rangle,\qquad
           \kappa_{\Phi A}(ac, ef) = \mathrm{Cov}(\phi_a\phi_c, M_{ef}) + \langle (M_{af}\phi_c + \phi_a M_{cf})\phi_e\rangle,

``M = d phi / d r~`` the path's response; the populations are independent. Only the rows of ``(I - D)^{-1}`` for
``f`` are needed: ``W = E_f (I + D + D^2 + ...)`` (``D`` is nilpotent), one ``vjp`` of the path means per term, and
then ``N Cov(f) = W kappa W^T`` from per-path projections; no (n^2, n^2) matrix and no per-path Hessian is formed.

Checks (``benchmarks/finite_width_deep_nonlinear/``, ``benchmarks/finite_width_theory.py``): linear activation against
the exact deep-linear theory, tanh against ensembles of width-N networks. Cost ``O(S n^4 K)`` per pass of ``W``, so
this route is for small ``n``; the mean shift is not derived here.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .march import precision

__all__ = ["deep_nonlinear", "initial_kernel_covariance", "layer_sources", "adjoint_rows", "prediction_covariance", "MAX_GRID", "ADJOINT_SAMPLES"]

MAX_GRID = 40
"""Largest grid ``n = (steps+1) x points`` the route accepts: its cost grows as ``n^5`` (about 4 minutes at n = 24
for depth 2 on two CPU cores, an hour at n = 40)."""

ADJOINT_SAMPLES = 2048
"""Paths (a prefix of the same sources) for the rows ``W = E_f (I - D)^{-1}``, the dominant cost."""

CHUNK_ENTRIES = 2**26
"""Per-path entries held at once when the paths are processed in chunks (512 MB in float64; measured peak 1.2 GB
at depth 2, n = 24, where it is 20% faster than 2^23 and as fast as 2^28)."""

NILPOTENT_TOL = 1e-13
"""A term of the series ``W`` this small relative to ``W`` is round-off of a structurally zero one (``D`` is
nilpotent: the terms vanish exactly in exact arithmetic after about ``2 K T1`` passes)."""


@dataclasses.dataclass(frozen=True)
class Layer:
    """Population ``k`` (1-based) of ``K``: which order parameters it produces and which sources drive it.

    ``phi`` / ``A``: the keys of ``Phi^k`` and ``A^k`` (None for the top layer); ``g`` / ``B``: of ``G^k`` and
    ``B^{k-1}`` (None for the first layer); ``fwd_cov`` / ``bwd_cov``: the kernels of its Gaussian forward and backward
    fields (None: the input ``u`` / the readout source ``r``)."""

    k: int
    K: int

    @property
    def first(self) -> bool:
        return self.k == 1

    @property
    def last(self) -> bool:
        return self.k == self.K

    phi = property(lambda s: None if s.last else f"Phi{s.k}")
    A = property(lambda s: None if s.last else f"A{s.k}")
    g = property(lambda s: None if s.first else f"G{s.k}")
    B = property(lambda s: None if s.first else f"B{s.k - 1}")
    fwd_cov = property(lambda s: None if s.first else f"Phi{s.k - 1}")
    bwd_cov = property(lambda s: None if s.last else f"G{s.k + 1}")


def layers(K: int) -> tuple[Layer, ...]:
    return tuple(Layer(k, K) for k in range(1, K + 1))


def keys(K: int) -> tuple[str, ...]:
    """The order parameters of depth ``K`` (``F`` last)."""
    return tuple(key for L in layers(K) for key in (L.phi, L.A, L.g, L.B) if key) + ("F",)


def _grid(q):
    T1, Pa = q["F"].shape
    return T1, Pa, T1 * Pa


def _neuron(act, cst, q, L: Layer, fwd, bwd):
    r"""One neuron of layer ``L``: forward source ``fwd`` (Pa,) for the first layer, else its Gaussian field (n,);
    backward source ``bwd`` () for the top layer, else its Gaussian field (n,). Returns ``(phi, g, F)`` (n,) each
    (``F = z phi / gamma``, meaningful for the top layer)."""
    T1, Pa, n = _grid(q)
    c, kap, b = cst["c"], cst["kappa"], cst["b"]
    k = L.k
    dt = cst["mask"] * (cst["y"] - q["F"]) / cst["P"]
    rows = lambda key: q[key].reshape(T1, Pa, n) if key else jnp.zeros((T1, 1, 1))  # noqa: E731
    fields = lambda x, vec: x.reshape(T1, Pa) if vec else jnp.zeros((T1, 1))  # noqa: E731

    def step(carry, xs):
        phis, gs, dphis, dgs, run_g, run_phi = carry  # histories (T1, Pa) up to t-1; Dt-weighted; running sums
        t, fw, bw, A_t, P_t, B_t, G_t, d_t = xs
        if L.first:
            h = b[0] * fwd + c * kap[0] * (run_g @ cst["Kx"])
        else:
            h = b[k - 1] * (fw + A_t @ gs.reshape(-1)) + c * kap[k - 1] * (P_t @ dgs.reshape(-1))
        p = act.fn(h)
        phis = phis.at[t].set(p)
        if L.last:
            z = b[k] * bwd + c * kap[k] * run_phi
        else:
            z = b[k] * (bw + B_t @ phis.reshape(-1)) + c * kap[k] * (G_t @ dphis.reshape(-1))
        g = act.deriv(h) * z
        carry = (phis, gs.at[t].set(g), dphis.at[t].set(d_t * p), dgs.at[t].set(d_t * g), run_g + d_t * g,
                 run_phi + p @ d_t)
        return carry, (p, g, z * p / cst["gamma"])

    zeros = jnp.zeros((T1, Pa), dt.dtype)
    xs = (jnp.arange(T1), fields(fwd, not L.first), fields(bwd, not L.last), rows(L.fwd_cov and f"A{k - 1}"),
          rows(L.fwd_cov), rows(L.A and f"B{k}"), rows(L.bwd_cov), dt)
    init = (zeros, zeros, zeros, zeros, jnp.zeros(Pa, dt.dtype), jnp.zeros((), dt.dtype))
    return tuple(x.reshape(-1) for x in jax.lax.scan(step, init, xs)[1])


def _factor(M):
    """Lower Cholesky factor of a kernel (symmetrized: both triangles carry the sensitivity), with a relative jitter
    of 1e-12 for the exactly singular directions of test points that coincide with train points."""
    M = (M + M.T) / 2
    return jnp.linalg.cholesky(M + 1e-12 * jnp.max(jnp.diag(M)) * jnp.eye(M.shape[0], dtype=M.dtype))


def _fields(q, L: Layer, src):
    """The layer's sources ``(fwd, bwd)`` over the paths: its Gaussian fields ``e chol(K)^T`` (S, n), or the input
    ``u`` (S, Pa) / the readout source ``r`` (S,) as given."""
    fwd, bwd = src[L.k - 1]
    if L.fwd_cov:
        fwd = fwd @ _factor(q[L.fwd_cov]).T
    if L.bwd_cov:
        bwd = bwd @ _factor(q[L.bwd_cov]).T
    return fwd, bwd


def _responses(act, cst, q, L: Layer, fwd, bwd):
    """One path of layer ``L``: ``(phi, g, F)`` and, by forward mode, the Jacobians of all three in its forward field
    (``Jf``, None for the first layer) and in its backward field (``Jb``, None for the top layer): ``M_A = Jb[0]``,
    ``M_B = Jf[1]``."""
    f = functools.partial(_neuron, act, cst, q, L)
    Jf = None if L.first else jax.jacfwd(lambda x: f(x, bwd))(fwd)
    Jb = None if L.last else jax.jacfwd(lambda y: f(fwd, y))(bwd)
    return f(fwd, bwd), Jf, Jb


def _layer_sums(act, cst, q, src):
    """Sums over the paths of ``src`` of every population's operators: a dict like ``q``."""
    out = {}
    for L in layers(len(src)):
        fwd, bwd = _fields(q, L, src)
        (phi, g, F), Jf, Jb = jax.vmap(functools.partial(_responses, act, cst, q, L))(fwd, bwd)
        if L.phi:
            out[L.phi], out[L.A] = phi.T @ phi, Jb[0].sum(0)
        if L.g:
            out[L.g], out[L.B] = g.T @ g, Jf[1].sum(0)
        if L.last:
            out["F"] = F.sum(0).reshape(q["F"].shape)
    return out


def _chunks(S: int, per_path: int) -> list:
    """Slices of at most ``CHUNK_ENTRIES / per_path`` paths, a power of two so that a power-of-two ``S`` splits into
    equal chunks (a shorter last chunk would compile every program a second time)."""
    size = min(S, 2 ** int(np.log2(max(1, CHUNK_ENTRIES // max(per_path, 1)))))
    return [slice(i, min(S, i + size)) for i in range(0, S, size)]


def _rows(src, sl):
    return tuple((fwd[sl], bwd[sl]) for fwd, bwd in src)


def _add(a, b):
    return b if a is None else jax.tree_util.tree_map(jnp.add, a, b)


def _means(act, cst, q, src, chunks):
    """``<O>(q)``: the path means of the order parameters' operators (a dict like ``q``)."""
    fn, tot = _jit(_layer_sums, act), None
    for sl in chunks:
        tot = _add(tot, fn(cst, q, _rows(src, sl)))
    S = src[0][0].shape[0]
    return jax.tree_util.tree_map(lambda x: x / S, tot)


@functools.lru_cache(maxsize=None)
def _jit(fn, act):
    return jax.jit(functools.partial(fn, act))


def fixed_point(act, cst, src, T1: int, Pa: int, chunks):
    """The sample's DMFT: ``q = <O>(q)`` by at most ``4 K T1 + 4`` causal passes from ``Phi = G = I``."""
    n, K = T1 * Pa, len(src)
    dtype = src[0][0].dtype
    q = {key: (jnp.eye(n, dtype=dtype) if key[0] in "PG" else jnp.zeros((n, n), dtype)) for key in keys(K)}
    q["F"] = jnp.zeros((T1, Pa), dtype)
    for _ in range(4 * K * T1 + 4):
        q_new = _means(act, cst, q, src, chunks)
        done = all(bool(jnp.array_equal(q_new[key], q[key])) for key in q)
        q = q_new
        if done:
            break
    return q


def _vjp_sums(act, cst, q, src, cot):
    """The path sums' vjp for a batch of cotangents ``cot`` (a dict like ``q`` with a leading axis)."""
    _, pull = jax.vjp(lambda qq: _layer_sums(act, cst, qq, src), q)
    return jax.vmap(lambda c: pull(c)[0])(cot)


def _largest(tree) -> float:
    return max(float(jnp.max(jnp.abs(x))) for x in jax.tree_util.tree_leaves(tree))


def adjoint_rows(act, cst, q, src, chunks, progress=False, start=None):
    r"""The rows of ``(I - D)^{-1}`` for ``f``: ``W = E_f (I + D + D^2 + ...)``, ``D = d<O>/dq`` nilpotent (causal).
    One vjp of the path means per term, until a term is at round-off (:data:`NILPOTENT_TOL`).

    Args:
        start: other rows ``E`` than ``E_f`` (a dict like ``q`` with a leading axis), e.g. kernel entries.

    Returns:
        a dict like ``q`` whose entries have a leading axis, one row per prediction ``n_f = T1 Pa`` (or per row
        of ``start``).
    """
    T1, Pa, n = _grid(q)
    K, S = len(src), src[0][0].shape[0]
    if start is None:
        start = {key: jnp.zeros((n,) + q[key].shape, q[key].dtype) for key in q}
        start["F"] = jnp.eye(n, dtype=q["F"].dtype).reshape(n, T1, Pa)
    term = start
    W, fn = term, _jit(_vjp_sums, act)
    with _bar(4 * K * T1 + 4, progress, "width-N adjoint") as bar:
        for _ in range(4 * K * T1 + 4):
            nxt = None
            for sl in chunks:
                nxt = _add(nxt, fn(cst, q, _rows(src, sl), term))
            term = jax.tree_util.tree_map(lambda x: x / S, nxt)
            W = jax.tree_util.tree_map(jnp.add, W, term)
            bar.update(1)
            if _largest(term) <= NILPOTENT_TOL * _largest(W):
                break
    return W


def _bar(total, progress, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


def _second_order(f, x, dirs):
    """``K_i = d/dx [J(x) dirs_i]`` (n_f, n, n) with ``dirs_i`` held fixed: ``K_i[c, d] = sum_b d_d d_b f_c dirs_i[b]``."""
    return jax.vmap(lambda v: jax.jacfwd(lambda z: jax.jvp(f, (z,), (v,))[1])(x))(dirs)


def _mixed_second_order(f, x, y, dirs):
    """``K_i = d/dy [d_x f(x, y) dirs_i]`` (n_f, n, n): ``K_i[c, d] = sum_b d_{y_d} d_{x_b} f_c dirs_i[b]``."""
    return jax.vmap(lambda v: jax.jacfwd(lambda w: jax.jvp(lambda z: f(z, w), (x,), (v,))[1])(y))(dirs)


def _sym(C):
    return C + C.T


def _add_field_terms(acc, x, M, K, a, WX, WR):
    r"""Adds one field's terms to ``acc = (y, E)``: ``x`` (n,) the field (``phi`` or ``g``), ``M`` (n, n) its response
    to its Gaussian field, ``K`` (n_f, n, n) its second derivatives along ``a_i = WR_i^T x``; ``WX``, ``WR``
    (n_f, n, n) the rows over its kernel and response. ``y_i += x^T WX_i x + <WR_i, M>``, ``E_ij += tr(WR_i M^T WR_j
    M^T) + [s_i^T M a_j + <WR_j, K_i> + (i <-> j)]`` with ``s_i = (WX_i + WX_i^T) x``."""
    y, E = acc
    Z = WR @ M.T
    s = (WX + WX.transpose(0, 2, 1)) @ x
    y = y + jnp.einsum("a,iab,b->i", x, WX, x) + jnp.einsum("iab,ab->i", WR, M)
    return y, E + jnp.einsum("iac,jca->ij", Z, Z) + _sym(s @ M @ a.T + jnp.einsum("icd,jcd->ij", K, WR))


def _projection(act, cst, q, W, L: Layer, fwd, bwd):
    r"""One path of layer ``L``: its projection on the rows, ``y_i = sum_X x^T W^X_i x + sum_R <W^R_i, M_R>
    (+ W^F_i . F)`` (n_f,), and its MSR terms (n_f, n_f) (docs/theory/finite_width.md section 6)."""
    f = functools.partial(_neuron, act, cst, q, L)
    phi_of = lambda x, y: f(x, y)[0]  # noqa: E731
    g_of = lambda x, y: f(x, y)[1]  # noqa: E731
    (phi, g, F), Jf, Jb = _responses(act, cst, q, L, fwd, bwd)
    tr = lambda Wb: Wb.transpose(0, 2, 1)  # noqa: E731
    y, E = 0.0, 0.0
    if L.A:  # kernel Phi^k and response A^k: derivatives in the backward field
        a = tr(W[L.A]) @ phi
        KA = _second_order(lambda y_: phi_of(fwd, y_), bwd, a)
        y, E = _add_field_terms((y, E), phi, Jb[0], KA, a, W[L.phi], W[L.A])
    if L.B:  # kernel G^k and response B^{k-1}: derivatives in the forward field
        b = tr(W[L.B]) @ g
        KB = _second_order(lambda x_: g_of(x_, bwd), fwd, b)
        y, E = _add_field_terms((y, E), g, Jf[1], KB, b, W[L.g], W[L.B])
    if L.A and L.B:  # a middle layer: the cross terms of the two conjugate fields
        E = E + _sym(_middle_terms(phi_of, g_of, fwd, bwd, phi, g, Jf[0], Jb[1], W, L))
    if L.last:
        WF = W["F"].reshape(W["F"].shape[0], -1)
        dF = Jf[2]
        y = y + WF @ F
        E = E + _sym((WF @ dF) @ (tr(W[L.B]) @ g).T)
    return y, E


def _middle_terms(phi_of, g_of, fwd, bwd, phi, g, Pu, Rg, W, L: Layer):
    r"""The MSR cross terms of a layer with both conjugate fields, as (n_f, n_f) ``C`` (the caller adds ``C^T``):
    ``kappa_AB(ab, cd) = Cov(M_A, M_B) + <d_{u_d} phi_a d_{r_b} g_c> + <g_c d_{r_b} d_{u_d} phi_a>
    + <phi_a d_{r_b} d_{u_d} g_c>`` (rows i over ``A``, j over ``B``), ``kappa_PhiB(ac, ef) += <(d_{u_f} phi_a phi_c
    + phi_a d_{u_f} phi_c) g_e>`` and ``kappa_GA(ac, ef) += <(d_{r_f} g_a g_c + g_a d_{r_f} g_c) phi_e>``;
    ``Pu = d phi / d fwd``, ``Rg = d g / d bwd`` (n, n)."""
    tr = lambda Wb: Wb.transpose(0, 2, 1)  # noqa: E731
    WP, WA, WG, WB = W[L.phi], W[L.A], W[L.g], W[L.B]
    a, bvec = tr(WA) @ phi, tr(WB) @ g
    one = jnp.einsum("jac,iac->ij", Pu @ tr(WB), WA @ Rg.T)
    two = jnp.einsum("jab,iab->ij", _mixed_second_order(phi_of, fwd, bwd, bvec), WA)
    three = jnp.einsum("icd,jcd->ij", _mixed_second_order(lambda y, x: g_of(x, y), bwd, fwd, a), WB)
    phiB = ((WP + tr(WP)) @ phi) @ Pu @ bvec.T
    gA = ((WG + tr(WG)) @ g) @ Rg @ a.T
    return one + two + three + phiB + gA


def _projection_sums(act, cst, q, W, src):
    """Sums over a chunk of paths, per layer, of ``y``, ``y y^T`` and the MSR terms."""
    out = []
    for L in layers(len(src)):
        fwd, bwd = _fields(q, L, src)
        y, E = jax.vmap(functools.partial(_projection, act, cst, q, W, L))(fwd, bwd)
        out.append({"y": y.sum(0), "yy": y.T @ y, "msr": E.sum(0)})
    return out


def prediction_covariance(act, cst, q, W, src, chunks, progress=False):
    r"""``N Cov(f) = W kappa W^T`` (n_f, n_f): each population's path covariance of its projections plus the mean of
    its MSR terms (module docstring)."""
    from tqdm.auto import tqdm

    S, fn, tot = src[0][0].shape[0], _jit(_projection_sums, act), None
    for sl in tqdm(chunks, desc="width-N covariance", disable=not progress, leave=False):
        tot = _add(tot, fn(cst, q, W, _rows(src, sl)))
    cov = 0.0
    for part in tot:
        m, mm, msr = (np.asarray(part[key]) / S for key in ("y", "yy", "msr"))
        cov = cov + (mm - np.outer(m, m)) * S / (S - 1) + msr
    return cov


def _kernel_spread(act, cst, q, src):
    """``max(sqrt(Var x^2) / <x^2>)`` over the order parameters' fields ``x`` (``phi^k``, ``g^k``) per grid point."""
    rel = []
    for L in layers(len(src)):
        fwd, bwd = _fields(q, L, src)
        phi, g, _ = jax.vmap(functools.partial(_neuron, act, cst, q, L))(fwd, bwd)
        for x, used in ((phi, L.phi), (g, L.g)):
            if used:
                rel.append(np.asarray(jnp.std(x**2, axis=0) / jnp.mean(x**2, axis=0)))
    return np.max(rel, axis=0)


def layer_sources(src, Kx, K: int) -> list:
    """The per-layer ``(forward, backward)`` sources of :func:`deep_nonlinear` from
    :func:`~limits.dmft.monte_carlo.mlp_sources` (``K`` hidden layers), the input source scaled to ``N(0, Kx)``."""
    from . import monte_carlo as mc

    u = np.asarray(src["u1"]) @ mc._input_factor(Kx).T
    return [(u, src["r1"])] + [(src[f"u{k}"], src[f"r{k}"]) for k in range(2, K)] + [(src[f"u{K}"], src["r_top"])]


def deep_nonlinear(act, limit, *, Kx_all, y_all, train_mask, lr, sources, adjoint_samples=None, dtype="float64",
                   progress=False):
    r"""``N Cov(f)`` of an MLP of depth ``K = limit.fields >= 2`` with a smooth activation at O(1/N) (module docstring).

    Args:
        act: the activation (:mod:`limits.activations`; twice differentiable).
        limit: the table's :class:`~limits.parametrization.DMFTLimit` (``K >= 2`` fields).
        Kx_all: (Pa, Pa) input kernel (train points first); y_all: (Pa,) targets; train_mask: (Pa,) 1 on train points.
        lr: the learning rate; the number of steps is set by ``sources``.
        sources: per layer ``(forward, backward)`` standard normal sources: layer 1 ``(u (S, Pa) ~ N(0, Kx),
            e (S, n))``, middle layers ``(e (S, n), e (S, n))``, layer K ``(e (S, n), r (S,))``.
        adjoint_samples: the first this many paths give the rows ``W`` (None: :data:`ADJOINT_SAMPLES`, at most S).
        progress: progress bars over the adjoint passes and the covariance chunks.

    Returns:
        ``(cov, spread)``: ``cov`` (n, n) ``N Cov(f)`` over all pairs of grid points ``(t, p)`` (time-major);
        ``spread`` (T1, P) the largest per-neuron spread of the kernel diagonals relative to their mean,
        ``sqrt(Var_i x_i^2) / <x^2>`` (``spread / sqrt(N)`` is the expansion's relative size).
    """
    mask = np.asarray(train_mask) > 0
    Pa, K = mask.size, len(sources)
    if K != limit.fields or K < 2:
        raise ValueError(f"sources for {K} layers given for a depth-{limit.fields} table (depth >= 2 needed here)")
    S, n = np.shape(sources[0][1])
    T1 = n // Pa
    cast = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    with precision(dtype):
        cst = {"c": cast(limit.gamma * lr), "kappa": tuple(cast(k) for k in limit.kappa),
               "b": tuple(cast(b) for b in limit.b), "Kx": cast(Kx_all), "gamma": cast(limit.gamma),
               "y": cast(y_all), "mask": cast(mask), "P": cast(mask.sum())}
        src = tuple((cast(f), cast(np.reshape(b, -1) if k == K - 1 else b)) for k, (f, b) in enumerate(sources))
        q = fixed_point(act, cst, src, T1, Pa, _chunks(S, 2 * K * n * n))
        SD = min(S, ADJOINT_SAMPLES if adjoint_samples is None else int(adjoint_samples))
        W = adjoint_rows(act, cst, q, tuple((f[:SD], b[:SD]) for f, b in src), _chunks(SD, 8 * K * n**3), progress)
        cov = prediction_covariance(act, cst, q, W, src, _chunks(S, 8 * K * n**3), progress)
        spread = _kernel_spread(act, cst, q, src)
    return cov, spread.reshape(T1, Pa)[:, mask]


def initial_kernel_covariance(act, limit, Kx, *, samples: int = 16384, seed: int = 0, dtype="float64"):
    r"""``N Cov`` over initializations of the feature kernels ``Phi^1 .. Phi^{K-1}`` of a depth-K MLP at width N, to
    O(1/N): the same delta method as :func:`deep_nonlinear` with rows on the kernels at ``t = 0``. At initialization
    only the forward chain ``Phi^{k-1} -> Phi^k`` enters (no conjugate fields), so first pathwise derivatives suffice
    and kinked activations (ReLU) are covered. For one input, ``N Cov(Phi^k, Phi^l) / (Phi^k Phi^l) =
    min(k, l) (E phi(z)^4 / (E phi(z)^2)^2 - 1)`` for a homogeneous ``phi`` (5 for ReLU, 2 for linear).

    Args:
        act: the activation; limit: a :class:`~limits.parametrization.DMFTLimit` with ``K >= 2`` fields.
        Kx: (P, P) input kernel. samples, seed: Sobol paths per layer and their seed.

    Returns:
        (K-1, P, P, K-1, P, P): ``N Cov(Phi^k_{mu nu}, Phi^l_{rho sigma})``.
    """
    from . import monte_carlo as mc

    K, P = limit.fields, np.shape(Kx)[0]
    if K < 2:
        raise ValueError(f"the feature kernels' covariance needs depth >= 2 (got {K})")
    sources = layer_sources(mc.mlp_sources(samples, K, 1, P, seed, True, antithetic=True), Kx, K)
    cast = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    with precision(dtype):
        cst = {"c": cast(limit.gamma * 0.0), "kappa": tuple(cast(k) for k in limit.kappa),
               "b": tuple(cast(b) for b in limit.b), "Kx": cast(Kx), "gamma": cast(limit.gamma),
               "y": cast(np.zeros(P)), "mask": cast(np.zeros(P)), "P": cast(1.0)}
        src = tuple((cast(f), cast(np.reshape(b, -1) if k == K - 1 else b)) for k, (f, b) in enumerate(sources))
        q = fixed_point(act, cst, src, 1, P, _chunks(samples, 2 * K * P * P))
        R = (K - 1) * P * P
        start = {key: jnp.zeros((R,) + q[key].shape, q[key].dtype) for key in q}
        for k in range(1, K):
            rows = jnp.eye(R, dtype=q["F"].dtype)[(k - 1) * P * P:k * P * P].reshape(P * P, R).T
            start[f"Phi{k}"] = rows.reshape(R, P, P)
        chunks = _chunks(samples, 8 * K * P**3 * R)
        W = adjoint_rows(act, cst, q, src, chunks, start=start)
        cov = prediction_covariance(act, cst, q, W, src, chunks)
    return cov.reshape(K - 1, P, P, K - 1, P, P)
