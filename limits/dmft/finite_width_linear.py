r"""Deep linear MLPs at width N: the O(1/N) fluctuations and mean shift, exactly (delta method, no sampling).

For ``phi(h) = h`` the width-N gradient descent of docs/theory/dmft.md section 2 uses its random matrices only
through finitely many matrix-vector products. In Gaussian-conditioning coordinates (docs/theory/finite_width.md
section 5: every vector of a layer space ``V_l = R^N`` stored as scaled coordinates ``c = Q_l^T v / sqrt N`` in an
orthonormal basis grown as directions are revealed; a fresh block ``W~ [e_1..e_r]`` with ``k`` directions already
revealed is ``[eps; R] / sqrt N``, ``eps`` (k, r) i.i.d. ``N(0, 1)``, ``R`` the upper-triangular Bartlett factor,
``R_ii ~ chi_{N-k-i+1}``) the whole run is an N-free map

.. math::  out = F(\theta),\qquad \theta = (eps, R - I) / \sqrt N \text{ over all fresh blocks},

with N only in the law of ``theta``. ``F(0)`` is the DMFT (dmft.md section 5), and the delta method gives

.. math::  N\,\mathrm{Cov}(out) = J V J^T,\qquad
           N\,(E\,out - out_\infty) = J\,m + \tfrac12 \sum_i V_{ii}\, \partial_i^2 F,

``J = dF/dtheta (0)``, ``V_ii = 1`` (Gaussian entries) or ``1/2`` (Bartlett diagonals), ``m_i = N E theta_i =
-(k + i - 1)/2 - 1/4`` on the Bartlett diagonals (0 elsewhere).

With the constants of :class:`~limits.parametrization.DMFTLimit` (``c = lr gamma``, ``Dt = mask (y - f) / P``):

.. math::  h^1(t) = b_1 W_0 x / \sqrt D + c \kappa_1 \sum_{s<t} (K_x Dt(s)) g^1(s),\quad
           h^{l+1}(t) = b_{l+1} W_l h^l(t)/\sqrt N + c \kappa_{l+1} \sum_{s<t} (\Phi^l(t,s) Dt(s)) g^{l+1}(s),

``g^L(t) = w(t) = w(0) + c kappa_{L+1} sum_{s<t} sum_nu Dt_nu(s) h^L_nu(s)``,
``g^l(t) = b_{l+1} W_l^T g^{l+1}(t)/sqrt N + c kappa_{l+1} sum_{s<t} G^{l+1}(t,s) sum_nu Dt_nu(s) h^l_nu(s)``,
``f = w.h^L / (gamma N)``, ``NTK = sum_k kappa_k G^k Phi^{k-1}``. Test points ride along (their ``Dt`` is 0).
Inputs enter only through ``K_x`` (``x_mu / sqrt D`` is replaced by the columns of ``C``, ``C^T C = K_x``).

Implementation: a numpy pass at ``theta = 0`` (:func:`_structure`) fixes, for every query of a weight matrix, the
rank ``r`` of the new directions and their mixing ``V`` (residual directions with relative singular value below
:data:`RANK_TOL` are dropped; structural zeros are ~1e-15), and the final dimension of every space. The run is
then one ``lax.scan`` over time on padded fixed-size arrays (:func:`_step`, shared by the numpy pass and the JAX
map), so it compiles once per shape; ``J`` is forward mode (``jax.linearize``) and the mean shift forward over
forward, both in chunks of theta entries (memory ``O(chunk x state)``). Cost ``O(T |theta| L K^2 P)`` with ``K`` the
largest space (``K <~ P + L (T+1) + 1``) and ``|theta| <~ sum_l K_l^2``; no ``(n^2, n^2)`` object.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .march import precision

__all__ = ["RANK_TOL", "deep_linear"]

RANK_TOL = 1e-6
"""Singular value, relative to the queried vectors' scale times ``min(1, max |y|)`` (the new directions are driven
by the errors), below which a queried residual direction is dropped (docs/theory/finite_width.md
section 5: the summed trace of ``N Cov f`` moves by < 1e-5 between 1e-5 and 1e-7)."""


# ------------------------------------------------------------------------------------------------ array helpers
def _set(xp, a, idx, val):
    """``a[idx] = val`` for numpy (in place on a copy) or JAX arrays."""
    if xp is np:
        a = a.copy()
        a[idx] = val
        return a
    return a.at[idx].set(val)


def _orth(xp, M, mask):
    """Orthonormal columns spanning the live columns of ``M`` (m, r): ``M chol(M^T M)^{-T}``, smooth in ``M``.
    Dead columns (``mask`` 0, ``M`` zero there) stay zero."""
    gram = M.T @ M + xp.diag(1.0 - mask)
    chol = xp.linalg.cholesky(gram)
    if xp is np:
        return np.linalg.solve(chol, M.T).T
    return jax.scipy.linalg.solve_triangular(chol, M.T, lower=True).T


def _input_factor(Kx_all):
    """``C`` (r, Pa) with ``C^T C = Kx_all`` (eigen square root; zero modes dropped). Not
    :func:`limits.dmft.monte_carlo._input_factor`: its 1e-12 jitter would give a singular input kernel a spurious
    direction of relative size 1e-6, at the rank tolerance of the first query."""
    lam, U = np.linalg.eigh(np.asarray(Kx_all, np.float64))
    keep = lam > 1e-14 * max(lam.max(), 1e-300)
    return np.sqrt(lam[keep])[:, None] * U[:, keep].T


# ------------------------------------------------------------------------------------------------ one query
@dataclasses.dataclass
class _Side:
    """The revealed part of one weight matrix ``W`` (space ``out`` x space ``inp``), padded: ``E`` (K_inp, Ecap)
    orthonormal queried input directions, ``WE`` (K_out, Ecap) coordinates of ``W e / sqrt N``; ``F`` (K_out, Fcap),
    ``WtF`` (K_inp, Fcap) the same for the backward queries. Unused columns are zero."""

    E: object
    WE: object
    F: object
    WtF: object


jax.tree_util.register_dataclass(_Side, data_fields=["E", "WE", "F", "WtF"], meta_fields=[])


def _residual(C, E):
    """``C`` with its components along the orthonormal columns of ``E`` removed (two Gram-Schmidt passes)."""
    Res = C - E @ (E.T @ C)
    return Res - E @ (E.T @ Res)


def _query(xp, C, E, WE, F, WtF, q):
    r"""``W C / sqrt N`` in coordinates, revealing the new directions of ``C`` (conditioning lemma, dmft notes):
    for ``e _|_ E`` unit, ``W e = F (W^T F)^T e + P_F^perp W~ e`` with ``W~`` fresh.

    Args:
        C: (K_inp, m) queried coordinates. E, WE, F, WtF: the revealed sides (see :class:`_Side`).
        q: the decision of this query: ``V`` (m, rmax) mixing of the residual (zero columns beyond the rank),
            ``mask`` (rmax,), ``sel`` (K_out, rmax) the identity rows of the fresh block (rows ``k..k+r``),
            ``theta`` (K_out, rmax) its perturbation (``eps`` rows ``< k``, upper-triangular ``R - I``),
            ``put`` (rmax, Ecap) where the new directions go among the revealed ones.

    Returns:
        (out (K_out, m), E, WE) with the new directions appended.
    """
    Enew = _orth(xp, _residual(C, E) @ q["V"], q["mask"])
    Z = q["sel"] + q["theta"]
    Z = Z - F @ (F.T @ Z) + F @ (WtF.T @ Enew)
    E = E + Enew @ q["put"]
    WE = WE + Z @ q["put"]
    return WE @ (E.T @ C), E, WE


# ------------------------------------------------------------------------------------------------ one time step
def _step(xp, consts, decide, state, t):
    """One gradient-descent step ``t`` of the run in coordinates, for numpy (structure pass) or JAX (the map).

    ``state``: ``h`` (tuple over layers of (T1, K_l, Pa) histories), ``g`` (tuple of (T1, K_l)), ``Dt`` (T1, Pa),
    ``w`` (K_L,), ``sides`` (tuple over hidden weights ``W_1..W_{L-1}`` of :class:`_Side`), ``H1x`` (K_1, Pa).
    ``decide(slot, C, E)`` returns the decision (see :func:`_query`) of the query ``slot`` (``("fwd", l)``: ``W_l`` on
    ``C = h^l(t)``; ``("bwd", l)``: ``W_l^T`` on ``C = g^{l+1}(t)``; ``E`` the directions that side revealed so far).
    Returns the new state and ``(f (Pa,), ntk (Pa, Pa), phi (L, Pa, Pa), G (L,))`` at time ``t``."""
    k, b, cc = consts["kappa"], consts["b"], consts["c"]
    L = len(state["h"])
    h, g, sides = list(state["h"]), list(state["g"]), list(state["sides"])
    past = (xp.arange(state["Dt"].shape[0]) < t).astype(state["Dt"].dtype)
    Dh = state["Dt"] * past[:, None]  # (T1, Pa): Dt(s) for s < t, else 0
    ht = b[0] * state["H1x"] + cc * k[0] * g[0].T @ (Dh @ consts["Kx"])
    h[0] = _set(xp, h[0], t, ht)
    for l in range(1, L):
        s = sides[l - 1]
        out, E, WE = _query(xp, ht, s.E, s.WE, s.F, s.WtF, decide(("fwd", l), ht, s.E))
        sides[l - 1] = _Side(E, WE, s.F, s.WtF)
        coef = xp.einsum("ka,skb,sb->sa", ht, h[l - 1], Dh)  # (Phi^l(t,s) Dt(s))_a
        ht = b[l] * out + cc * k[l] * g[l].T @ coef
        h[l] = _set(xp, h[l], t, ht)
    w = state["w"]
    f = w @ ht / consts["gamma"]
    Dt_t = (consts["y"] - f) * consts["mask"] / consts["P"]
    gt = w
    g[L - 1] = _set(xp, g[L - 1], t, gt)
    for l in range(L - 1, 0, -1):
        s = sides[l - 1]
        out, F, WtF = _query(xp, gt[:, None], s.F, s.WtF, s.E, s.WE, decide(("bwd", l), gt[:, None], s.F))
        sides[l - 1] = _Side(s.E, s.WE, F, WtF)
        Gts = g[l] @ gt  # (T1,) G^{l+1}(t, s)
        gt = b[l] * out[:, 0] + cc * k[l] * xp.einsum("s,skb,sb->k", Gts, h[l - 1], Dh)
        g[l - 1] = _set(xp, g[l - 1], t, gt)
    G = [g[l][t] @ g[l][t] for l in range(L)]
    Phi = [h[l][t].T @ h[l][t] for l in range(L)]
    ntk = k[0] * G[0] * consts["Kx"] + k[L] * Phi[-1]
    for l in range(1, L):
        ntk = ntk + k[l] * G[l] * Phi[l - 1]
    w = w + cc * k[L] * h[L - 1][t] @ Dt_t
    new = dict(state, h=tuple(h), g=tuple(g), sides=tuple(sides), w=w, Dt=_set(xp, state["Dt"], t, Dt_t))
    return new, (f, ntk, xp.stack(Phi), xp.stack(G))


# ------------------------------------------------------------------------------------------------ the structure
def _slots(L: int) -> tuple:
    """The queries of one step, in the order :func:`_step` makes them."""
    return tuple(("fwd", l) for l in range(1, L)) + tuple(("bwd", l) for l in range(L - 1, 0, -1))


def _space(slot) -> int:
    """The space (1-based layer) a query's fresh block lives in: ``W_l`` maps space ``l`` to ``l + 1``."""
    kind, l = slot
    return {"in": 1, "w": l, "fwd": l + 1, "bwd": l}[kind]


def _padded(rec, K: int, cap: int) -> dict:
    """The padded arrays of one fresh block ``rec`` (rank ``r``, offset ``k`` in its space of dimension ``K``, offset
    ``e`` among its side's ``cap`` directions, mixing ``V`` (m, r) or None for the readout): ``V`` (m, m), ``mask``
    (m,), ``sel`` (K, m) the identity rows ``k..k+r``, ``put`` (m, cap) where the new directions go."""
    r, k, e, V = rec["r"], rec["k"], rec["e"], rec["V"]
    rmax = 1 if V is None else V.shape[0]
    sel = np.zeros((K, rmax))
    sel[k + np.arange(r), np.arange(r)] = 1.0
    put = np.zeros((rmax, cap))
    put[np.arange(r), e + np.arange(r)] = 1.0
    Vp = np.zeros((rmax, rmax)) if V is None else np.pad(V, ((0, 0), (0, rmax - r)))
    return dict(V=Vp, mask=(np.arange(rmax) < r).astype(np.float64), sel=sel, put=put)


class _Discover:
    """The decisions of the numpy pass at ``theta = 0``: for each query the rank of its residual (relative singular
    values above :data:`RANK_TOL`), the mixing ``V`` and where its fresh block goes; arrays padded to ``cap``."""

    def __init__(self, cap: int, err_scale: float = 1.0):
        self.cap, self.count, self.revealed, self.records = cap, {}, {}, []
        self.err_scale = min(1.0, err_scale)

    def block(self, slot, r: int, V=None, side=None):
        """Record a fresh block of ``r`` directions for ``slot`` and return its decision (``theta`` = 0)."""
        space = _space(slot)
        k, e = self.count.get(space, 0), self.revealed.get(side, 0)
        rec = dict(slot=slot, r=r, k=k, e=e, V=V, side=side)
        self.records.append(rec)
        self.count[space], self.revealed[side] = k + r, e + r
        dec = _padded(rec, self.cap, self.cap)
        return dict(dec, theta=np.zeros_like(dec["sel"]))

    def __call__(self, slot, C, E):
        Res = _residual(C, E)
        if not np.any(Res):
            r, V = 0, np.zeros((C.shape[1], 0))
        else:
            _, sv, Vt = np.linalg.svd(Res, full_matrices=False)
            scale = max(1.0, float(np.max(np.abs(C)))) * self.err_scale  # innovations scale with the errors
            r = int(np.sum(sv / scale > RANK_TOL))
            V = Vt[:r].T
        kind, l = slot
        return self.block(slot, r, V, side=(l, "F" if kind == "bwd" else "E"))


@dataclasses.dataclass(frozen=True)
class _Structure:
    """What the numpy pass fixes: ``dims`` (space -> final dimension), ``reveal`` (side -> number of directions),
    ``records`` (every fresh block in order: slot, rank ``r``, offset ``k`` in its space, offset ``e`` among its
    side's directions, mixing ``V``), ``steps``, ``L`` hidden layers, ``rC`` input rank, ``Pa`` points."""

    dims: dict
    reveal: dict
    records: tuple
    steps: int
    L: int
    rC: int
    Pa: int

    @property
    def offsets(self) -> np.ndarray:
        """Start of each block's entries in theta (one more entry: the total size)."""
        n = [rec["k"] * rec["r"] + rec["r"] * (rec["r"] + 1) // 2 for rec in self.records]
        return np.concatenate([[0], np.cumsum(n)]).astype(int)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def _diagonals(self):
        """(positions in theta, k + i) of the Bartlett diagonals."""
        pos, shift = [], []
        for rec, off in zip(self.records, self.offsets):
            k, r = rec["k"], rec["r"]
            iu = np.triu_indices(r)
            d = np.nonzero(iu[0] == iu[1])[0]
            pos.append(off + k * r + d)
            shift.append(k + iu[0][d])
        return np.concatenate(pos).astype(int), np.concatenate(shift)

    def variances(self) -> np.ndarray:
        """(size,) ``N Var theta_i``: 1 (Gaussian entries), 1/2 (Bartlett diagonals, chi variables)."""
        v = np.ones(self.size)
        v[self._diagonals()[0]] = 0.5
        return v

    def mean(self) -> np.ndarray:
        """(size,) ``N E theta_i``: ``-(k + i)/2 - 1/4`` on the Bartlett diagonals (``R_ii ~ chi_{N-k-i}``,
        0-based ``i``)."""
        m = np.zeros(self.size)
        pos, shift = self._diagonals()
        m[pos] = -0.5 * shift - 0.25
        return m

    def decision(self, rec, off: int):
        """The padded arrays of one block for the JAX map; ``theta`` as an index into ``[theta, 0]``."""
        r, k = rec["r"], rec["k"]
        dec = _padded(rec, self.dims[_space(rec["slot"])], self.reveal.get(rec["side"], 1))
        idx = np.full(dec["sel"].shape, self.size, dtype=np.int32)
        idx[:k, :r] = off + np.arange(k * r).reshape(k, r)
        iu = np.triu_indices(r)
        idx[k + iu[0], iu[1]] = off + k * r + np.arange(len(iu[0]))
        return dict(dec, theta=idx)


def _initial(xp, consts, decide, dims: dict, reveal: dict, L: int, T1: int):
    """The state before step 0: ``W_0 x`` queried once (space 1), the readout ``w(0)`` (a fresh direction of space
    ``L``), zero histories and empty revealed sides of the hidden weights."""
    C = consts["C"]
    rC, Pa = C.shape
    E0, WE0 = xp.zeros((rC, reveal.get((0, "E"), rC))), xp.zeros((dims[1], reveal.get((0, "E"), rC)))
    H1x, _, _ = _query(xp, C, E0, WE0, xp.zeros((dims[1], 0)), xp.zeros((rC, 0)), decide(("in", 0), C, E0))
    q = decide(("w", L), None, None)
    w = consts["b"][L] * (q["sel"] + q["theta"])[:, 0]
    sides = tuple(_Side(xp.zeros((dims[l], reveal.get((l, "E"), 1))), xp.zeros((dims[l + 1], reveal.get((l, "E"), 1))),
                        xp.zeros((dims[l + 1], reveal.get((l, "F"), 1))), xp.zeros((dims[l], reveal.get((l, "F"), 1))))
                  for l in range(1, L))
    return dict(h=tuple(xp.zeros((T1, dims[l], Pa)) for l in range(1, L + 1)),
                g=tuple(xp.zeros((T1, dims[l])) for l in range(1, L + 1)),
                Dt=xp.zeros((T1, Pa)), w=w, sides=sides, H1x=H1x)


def _structure(consts, L: int, steps: int) -> _Structure:
    """The numpy pass at ``theta = 0`` fixing ranks, mixings and dimensions (float64)."""
    rC, Pa = consts["C"].shape
    T1 = steps + 1
    cap = rC + 3 * T1 * (Pa + 1) + 2
    disc = _Discover(cap, float(np.max(np.abs(consts["y"] * consts["mask"]))))

    def decide(slot, C, E):
        return disc.block(slot, 1, side=("w", L)) if slot[0] == "w" else disc(slot, C, E)

    dims, reveal = {l: cap for l in range(1, L + 1)}, {(l, s): cap for l in range(L) for s in "EF"}
    state = _initial(np, consts, decide, dims, reveal, L, T1)
    for t in range(T1):
        state, _ = _step(np, consts, decide, state, t)
    return _Structure(dims={l: max(disc.count.get(l, 0), 1) for l in range(1, L + 1)}, reveal=dict(disc.revealed),
                      records=tuple(disc.records), steps=steps, L=L, rC=rC, Pa=Pa)


# ---------------------------------------------------------------------------------------------- the map and its expansion
def _key(slot) -> str:
    return f"{slot[0]}{slot[1]}"


def _data(st: _Structure, consts) -> dict:
    """Every array the JAX map reads: the run's constants and the decisions, the step ones stacked over time."""
    offs = st.offsets
    decs = [st.decision(rec, off) for rec, off in zip(st.records, offs)]
    slots = _slots(st.L)
    n = len(slots)
    steps = [dict(zip(map(_key, slots), decs[2 + t * n: 2 + (t + 1) * n])) for t in range(st.steps + 1)]
    stacked = {key: {f: np.stack([d[key][f] for d in steps]) for f in decs[0]} for key in map(_key, slots)}
    c = {k: np.asarray(consts[k], np.float64) for k in ("C", "Kx", "y", "mask", "P", "gamma", "c", "b", "kappa")}
    return dict(consts=c, first=dict(in0=decs[0], w=decs[1]), steps=stacked)


def _with_theta(dec, theta_ext):
    """A decision with its theta index replaced by the entries of ``theta_ext = [theta, 0]``."""
    return dict(dec, theta=theta_ext[dec["theta"]])


def _outputs(theta, data, shape):
    """The JAX map ``theta (size,) -> (f (T1, Pa), ntk (T1, Pa, Pa), phi (T1, L, Pa, Pa), G (T1, L))``; ``shape =
    (L, T1, dims, reveal)`` static (``dims``, ``reveal`` as sorted item tuples)."""
    L, T1, dims, reveal = shape
    theta_ext = jnp.concatenate([theta, jnp.zeros(1, theta.dtype)])
    consts = data["consts"]
    first = {k: _with_theta(d, theta_ext) for k, d in data["first"].items()}
    steps = {k: _with_theta(d, theta_ext) for k, d in data["steps"].items()}
    state = _initial(jnp, consts, lambda slot, C, E: first["in0" if slot[0] == "in" else "w"], dict(dims),
                     dict(reveal), L, T1)

    def body(state, xs):
        t, dec = xs
        return _step(jnp, consts, lambda slot, C, E: dec[_key(slot)], state, t)

    _, out = jax.lax.scan(body, state, (jnp.arange(T1), steps))
    return out


_primal = jax.jit(_outputs, static_argnames=("shape",))
"""``F(0)`` on the fixed structure: the infinite-width run."""


@functools.partial(jax.jit, static_argnames=("shape",))
def _tangents(E, data, shape):
    """``dF/dtheta (0) [e]`` for every row ``e`` of ``E`` (chunk, size): leading axis chunk, one forward-mode pass."""
    _, lin = jax.linearize(lambda th: _outputs(th, data, shape), jnp.zeros(E.shape[1], E.dtype))
    return jax.vmap(lin)(E)


def _directions(weights, chunk: int, progress: str | None = None):
    """Batches of the scaled unit directions ``weights_i e_i`` (size = ``len(weights)``), ``chunk`` per batch and
    padded with zero rows (one compiled shape): yields ``(n, E)``, ``E`` (chunk, size) with ``n`` live rows;
    ``progress``: the description of a bar over the batches (None: no bar)."""
    size = len(weights)
    chunk = min(chunk, size)
    starts = range(0, size, chunk)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, unit="chunk", leave=False)
    for i0 in starts:
        n = min(size, i0 + chunk) - i0
        E = np.zeros((chunk, size))
        E[np.arange(n), i0 + np.arange(n)] = weights[i0:i0 + n]
        yield n, jnp.asarray(E)


def _jacobian(data, shape, size: int, chunk: int = 512):
    """``dF/dtheta (0)`` (per output, leading axis ``size``) in batches of ``chunk`` unit directions, so that memory
    stays ``O(chunk x state)``."""
    parts = [jax.tree_util.tree_map(lambda a: np.asarray(a)[:n], _tangents(E, data, shape))
             for n, E in _directions(np.ones(size), chunk)]
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)


@functools.partial(jax.jit, static_argnames=("shape",))
def _curvature(E, data, shape):
    """``sum_rows e of E: d^2 f / d theta^2 [e, e]`` at 0 (forward over forward), f (T1, Pa)."""
    zero = jnp.zeros(E.shape[1], E.dtype)

    def one(e):
        first = lambda th: jax.jvp(lambda x: _outputs(x, data, shape)[0], (th,), (e,))[1]
        return jax.jvp(first, (zero,), (e,))[1]

    return jax.vmap(one)(E).sum(0)


def _second_order(data, shape, v, chunk: int = 256, progress: bool = False):
    """``sum_i v_i d^2 f / d theta_i^2`` at 0, ``chunk`` directions ``sqrt(v_i) e_i`` per compiled batch;
    ``progress``: a bar over the batches."""
    bar = "width-N mean shift" if progress else None
    return sum(np.asarray(_curvature(E, data, shape)) for _, E in _directions(np.sqrt(v), chunk, bar))


def _constants(limit, Kx_all, y_all, train_mask, lr) -> dict:
    """float64 numpy constants of the run; checks the table is one this module covers."""
    if limit.residual or limit.layer_time is not None:
        raise NotImplementedError("deep_linear covers MLPs (residual tables are not covered)")
    mask = np.asarray(train_mask, np.float64).reshape(-1)
    P = int(mask.sum())
    if not np.all(mask[:P] > 0):
        raise ValueError("the train points must come first in Kx_all")
    return {"C": _input_factor(Kx_all), "Kx": np.asarray(Kx_all, np.float64), "y": np.asarray(y_all, np.float64),
            "mask": mask, "P": float(P), "gamma": float(limit.gamma), "c": float(lr) * float(limit.gamma),
            "b": np.asarray(limit.b, np.float64), "kappa": np.asarray(limit.kappa, np.float64)}


def _kernel_outputs(out, names, P: int) -> dict:
    """Name -> (..., T1, P, P) train-block kernels from the map's outputs (``G^l`` carries no point index)."""
    _, ntk, phi, G = out
    ks = {"ntk": ntk[..., :P, :P]}
    for l in range(1, phi.shape[-3] + 1):
        ks[f"phi{l}"] = phi[..., l - 1, :P, :P]
        ks[f"g{l}"] = jnp.broadcast_to(G[..., l - 1, None, None], G.shape[:-1] + (P, P))
    return {n: ks[n] for n in names}


def deep_linear(limit, *, Kx_all, y_all, train_mask, lr, steps, kernels=(), mean_shift=True, progress=False):
    r"""O(1/N) coefficients of a deep linear MLP (``phi(h) = h``, ``limit.fields`` hidden layers) by the delta
    method on the exact finite-width dynamics (module docstring). Deterministic, float64.

    Args:
        limit: the table's :class:`~limits.parametrization.DMFTLimit` (``gamma``, ``b`` (K+1,), ``kappa`` (K+1,));
            residual tables raise ``NotImplementedError``.
        Kx_all: (Pa, Pa) input kernel ``X X^T / D`` over train then test points.
        y_all: (Pa,) targets (0 on test points); train_mask: (Pa,) 1 on the (leading) train points.
        lr: the learning rate; steps: number of GD steps (``T1 = steps + 1``).
        kernels: names among ``"ntk"``, ``"phi1".."phiK"``, ``"g1".."gK"`` whose entry variances to return.
        mean_shift: compute the second-order mean shift (one forward-over-forward pass per theta entry).
        progress: a progress bar over the mean shift's batches.

    Returns:
        :class:`~limits.dmft.finite_width.WidthCorrections`: ``cov`` (T1, Pa, Pa) ``N Cov(f(t))``; ``mean_shift``
        (T1, Pa) ``N (E f_N - f_inf)`` (zeros if ``mean_shift=False``); ``kernel_var`` name -> (T1, P, P)
        ``N Var`` of each train-block entry; ``ntk_spread`` (T1, P) ``sqrt(N Var NTK_mumu) / NTK_mumu``;
        ``samples`` 0 (no sampling).
    """
    from .finite_width import WidthCorrections

    K = limit.fields
    valid = {"ntk"} | {f"{q}{l}" for q in ("phi", "g") for l in range(1, K + 1)}
    unknown = set(kernels) - valid
    if unknown:
        raise ValueError(f"unknown kernels {sorted(unknown)}; use {sorted(valid)}")
    consts = _constants(limit, Kx_all, y_all, train_mask, lr)
    names = tuple(sorted(set(kernels) | {"ntk"}))
    P, Pa, T1 = int(consts["P"]), len(consts["y"]), int(steps) + 1
    st = _structure(consts, K, int(steps))
    v = st.variances()
    shape = (K, T1, tuple(sorted(st.dims.items())), tuple(sorted(st.reveal.items(), key=str)))
    with precision("float64"):
        data = jax.tree_util.tree_map(jnp.asarray, _data(st, consts))
        out0 = _primal(jnp.zeros(st.size), data, shape)
        tangents = _jacobian(data, shape, st.size)
        Jf = np.asarray(tangents[0]).reshape(st.size, T1 * Pa).T  # (T1 Pa, size)
        Jk = {n: np.asarray(a).reshape(st.size, -1) for n, a in _kernel_outputs(tangents, names, P).items()}
        k0 = {n: np.asarray(a) for n, a in _kernel_outputs(out0, names, P).items()}
        shift = np.zeros(T1 * Pa)
        if mean_shift and st.size:
            shift = Jf @ st.mean() + 0.5 * _second_order(data, shape, v, progress=progress).reshape(-1)
    cov = np.einsum("tai,tbi,i->tab", Jf.reshape(T1, Pa, -1), Jf.reshape(T1, Pa, -1), v)
    kvar = {n: np.einsum("ia,i->a", Jk[n] ** 2, v).reshape(T1, P, P) for n in names}
    diag = np.diagonal(k0["ntk"], axis1=1, axis2=2)
    spread = np.sqrt(np.diagonal(kvar["ntk"], axis1=1, axis2=2)) / np.abs(diag)
    return WidthCorrections(cov=cov, mean_shift=shift.reshape(T1, Pa), ntk_spread=spread,
                            kernel_var={n: kvar[n] for n in kernels}, samples=0, ntk_mean=k0["ntk"])
