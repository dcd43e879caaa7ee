# JAX port of theory.py (correct to 1e-15 against it; its unrolled graph compiles for minutes: it needs a lax.scan
# over padded fixed-size arrays before it can enter limits.dmft). Imports limits.dmft.finite_width.WidthCorrections.
r"""O(1/N) corrections of deep linear MLPs from the exact finite-width dynamics (delta method, no sampling).

For ``phi(h) = h`` the width-N gradient descent of docs/theory/dmft.md section 2 uses the random matrices only
through finitely many matrix-vector products. Writing them in Gaussian-conditioning coordinates (every vector of
a layer space ``V_l = R^N`` stored as scaled coordinates ``c = Q_l^T v / sqrt N`` in an orthonormal basis grown as
directions are revealed; a fresh block ``W~ [e_1..e_r]`` with ``k`` directions already revealed is
``[eps; R] / sqrt N``, ``eps`` (k, r) i.i.d. ``N(0, 1)``, ``R`` the upper-triangular Bartlett factor, ``R_ii ~
chi_{N-k-i+1}``) makes the whole run an N-free map

.. math::  out = F(\theta),\qquad \theta = (eps, R - I) / \sqrt N \text{ over all fresh blocks},

with N only in the law of ``theta``. ``F(0)`` is the DMFT of dmft.md section 5, and the delta method gives

.. math::  N\,\mathrm{Cov}(out) = J V J^T,\qquad
           N\,(E\,out - out_\infty) = J\,m + \tfrac12 \sum_i V_{ii}\, \partial_i^2 F,

``J = dF/dtheta (0)`` (``jax.jacfwd``), ``V_ii = 1`` (Gaussian entries) or ``1/2`` (Bartlett diagonals),
``m_i = N E theta_i = -(k + i - 1)/2 - 1/4`` on the Bartlett diagonals (0 elsewhere).

With the per-layer constants of :class:`~limits.parametrization.DMFTLimit` (as in :mod:`limits.dmft.linear`):

.. math::  h^1(t) = b_1 W_0 x / \sqrt D + c \kappa_1 \sum_{s<t} (K_x Dt(s)) g^1(s),\quad
           h^{l+1}(t) = b_{l+1} W_l h^l(t)/\sqrt N + c \kappa_{l+1} \sum_{s<t} (\Phi^l(t,s) Dt(s)) g^{l+1}(s),

``g^L(t) = w(t) = b_{L+1} w(0) + c kappa_{L+1} sum_{s<t} sum_nu Dt_nu(s) h^L_nu(s)``,
``g^l(t) = b_{l+1} W_l^T g^{l+1}(t)/sqrt N + c kappa_{l+1} sum_{s<t} G^{l+1}(t,s) sum_nu Dt_nu(s) h^l_nu(s)``,
``f = w.h^L / (gamma N)``, ``Dt = mask (y - f) / P``, ``c = lr gamma``, ``NTK = sum_k kappa_k G^k Phi^{k-1}``.
Test points ride along (their ``Dt`` is 0). Inputs enter only through ``K_x`` (``x_mu / sqrt D`` is replaced by
columns of ``C`` with ``C^T C = K_x``: the law of ``W_0 C`` is the same).

Residual directions whose relative singular value is below :data:`RANK_TOL` are dropped (structural zeros are
~1e-15; the ranks and mixing matrices are fixed once at ``theta = 0`` by a numpy pass). Derivation and
validation against finite-width ensembles: the deep-linear finite-width notes (``derivation.md``).
"""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np

from .finite_width import WidthCorrections
from .march import precision

__all__ = ["RANK_TOL", "deep_linear"]

RANK_TOL = 1e-6
"""Relative singular value below which a queried residual direction is dropped."""

_NP = types.SimpleNamespace(xp=np, jax=False)
_JNP = types.SimpleNamespace(xp=jnp, jax=True)


# ----------------------------------------------------------------------------------------------- small helpers
def _set(be, a, idx, val):
    """``a[idx] = val`` for numpy (copy) or JAX arrays."""
    if be.jax:
        return a.at[idx].set(val)
    a = a.copy()
    a[idx] = val
    return a


def _add(be, a, idx, val):
    """``a[idx] += val`` for numpy (copy) or JAX arrays."""
    if be.jax:
        return a.at[idx].add(val)
    a = a.copy()
    a[idx] += val
    return a


def _orth(be, M):
    """``M chol(M^T M)^{-T}``: orthonormal columns spanning ``M`` (m, r) (full column rank), smooth in ``M``."""
    xp = be.xp
    Lc = xp.linalg.cholesky(M.T @ M)
    return M @ xp.linalg.inv(Lc).T


def _input_factor(Kx_all):
    """``C`` (r, Pa) with ``C^T C = Kx_all`` (eigen square root; zero modes dropped)."""
    lam, U = np.linalg.eigh(np.asarray(Kx_all, np.float64))
    keep = lam > 1e-14 * max(lam.max(), 1e-300)
    return np.sqrt(lam[keep])[:, None] * U[:, keep].T


# ----------------------------------------------------------------------------------------------- the structure
@dataclasses.dataclass
class _Plan:
    """Static structure found at ``theta = 0``: per residual query ``(r, V)`` (rank, mixing (m, r)); per fresh
    block ``(space, k, r, offset)``; ``size`` entries of theta; final dimension ``dims[l]`` of each space."""

    decisions: list = dataclasses.field(default_factory=list)
    blocks: list = dataclasses.field(default_factory=list)
    size: int = 0
    dims: dict = dataclasses.field(default_factory=dict)

    def _diagonals(self):
        """(positions, k + i0) of the Bartlett diagonals (i0 = 0..r-1 inside a block)."""
        pos, shift = [], []
        for (_, k, r, off) in self.blocks:
            iu = np.triu_indices(r)
            diag = np.nonzero(iu[0] == iu[1])[0]
            pos.append(off + k * r + diag)
            shift.append(k + iu[0][diag])
        return (np.concatenate(pos), np.concatenate(shift)) if pos else (np.zeros(0, int), np.zeros(0))

    def variances(self):
        """(size,) ``N Var theta_i``: 1 (Gaussian entries), 1/2 (Bartlett diagonals, chi variables)."""
        v = np.ones(self.size)
        v[self._diagonals()[0]] = 0.5
        return v

    def mean(self):
        """(size,) ``N E theta_i``: ``-(k + i - 1)/2 - 1/4`` on the Bartlett diagonals (``R_ii ~ chi_{N-k-i+1}``)."""
        m = np.zeros(self.size)
        pos, shift = self._diagonals()
        m[pos] = -0.5 * shift - 0.25
        return m


class _Machine:
    """Hands out fresh Gaussian blocks (scaled coordinates) and rank decisions. ``discover``: record them into
    ``plan`` (numpy, theta = 0); otherwise replay ``plan`` with theta (JAX)."""

    def __init__(self, be, plan: _Plan, discover: bool, dims: dict, theta=None):
        self.be, self.plan, self.discover, self.dims, self.theta = be, plan, discover, dims, theta
        self.k = {l: 0 for l in dims}
        self.query = self.block = 0

    def fresh(self, space: int, r: int):
        """(dims[space], r) coordinates of ``W~ [e_1..e_r] / sqrt N``: rows ``[0, k)`` eps, ``[k, k+r)`` I + (R - I)."""
        be, k = self.be, self.k[space]
        if self.discover:
            off = self.plan.size
            self.plan.blocks.append((space, k, r, off))
            self.plan.size += k * r + r * (r + 1) // 2
        else:
            s0, k0, r0, off = self.plan.blocks[self.block]
            assert (s0, k0, r0) == (space, k, r), "structure mismatch"
            self.block += 1
        v = _set(be, be.xp.zeros((self.dims[space], r)), slice(k, k + r), be.xp.eye(r))
        if self.theta is not None:
            iu = np.triu_indices(r)
            v = _add(be, v, slice(0, k), self.theta[off: off + k * r].reshape(k, r))
            v = _add(be, v, (k + iu[0], iu[1]), self.theta[off + k * r: off + k * r + len(iu[0])])
        self.k[space] = k + r
        return v

    def decide(self, Res, scale: float):
        """Rank ``r`` and mixing ``V`` (m, r) of a residual block (SVD at theta = 0, then replayed)."""
        if not self.discover:
            self.query += 1
            return self.plan.decisions[self.query - 1]
        R = np.asarray(Res)
        if R.shape[1] == 0 or not np.any(R):
            r, V = 0, np.zeros((R.shape[1], 0))
        else:
            _, s, Vt = np.linalg.svd(R, full_matrices=False)
            r = int(np.sum(s / max(1.0, scale) > RANK_TOL))
            V = Vt[:r].T
        self.plan.decisions.append((r, V))
        return r, V


class _Weight:
    """An initial N(0,1) matrix ``W`` (space ``out`` x space ``inp``) queried forward (``W a / sqrt N``) and backward
    (``W^T b / sqrt N``). ``E``/``WE``: orthonormal queried input directions and coords of ``W e / sqrt N``;
    ``F``/``WtF`` the same for the output side. Conditioning: for ``e _|_ E``,
    ``W e = F (W^T F)^T e + P_F^perp W~ e`` with ``W~`` independent of the past (and symmetrically)."""

    def __init__(self, machine: _Machine, inp: int, out: int):
        self.m, self.inp, self.out = machine, inp, out
        self.E, self.WE, self.F, self.WtF = [], [], [], []

    def _query(self, C, E, WE, F, WtF, dst):
        xp = self.m.be.xp
        Res = C
        if E:
            Ea = xp.concatenate(E, 1)
            Res = C - Ea @ (Ea.T @ C)
            Res = Res - Ea @ (Ea.T @ Res)  # second Gram-Schmidt pass
        r, V = self.m.decide(Res, float(np.max(np.abs(np.asarray(C)))) if self.m.discover else 0.0)
        if r > 0:
            Enew = _orth(self.m.be, Res @ xp.asarray(V))
            Z = self.m.fresh(dst, r)
            if F:
                Fa, WtFa = xp.concatenate(F, 1), xp.concatenate(WtF, 1)
                Z = Z - Fa @ (Fa.T @ Z) + Fa @ (WtFa.T @ Enew)
            E.append(Enew)
            WE.append(Z)
        return xp.concatenate(WE, 1) @ (xp.concatenate(E, 1).T @ C)

    def fwd(self, C):
        """Coordinates of ``W C / sqrt N`` (C: (dim_inp, m) coordinates)."""
        return self._query(C, self.E, self.WE, self.F, self.WtF, self.out)

    def bwd(self, C):
        """Coordinates of ``W^T C / sqrt N``."""
        return self._query(C, self.F, self.WtF, self.E, self.WE, self.inp)


# ----------------------------------------------------------------------------------------------- the dynamics
class _Run:
    """The finite-N gradient descent in conditioning coordinates (module docstring). ``h[l][t]``: (dims[l], Pa)
    coordinates of ``h^l_mu(t)``; ``g[l][t]``: (dims[l],) of ``g^l(t)`` (the same for every mu: phi' = 1)."""

    def __init__(self, machine: _Machine, consts: dict, depth: int):
        self.m, self.c, self.L = machine, consts, depth
        self.W0 = _Weight(machine, 0, 1)
        self.Ws = {l: _Weight(machine, l, l + 1) for l in range(1, depth)}
        self.h = {l: [] for l in range(1, depth + 1)}
        self.g = {l: [] for l in range(1, depth + 1)}
        self.Dts = []

    def forward(self, t: int, H1x):
        """Append ``h^l(t)`` for l = 1..L: ``b_{l+1} W_l h^l / sqrt N`` + ``c kappa_{l+1} sum_s (Phi^l(t,s) Dt(s)) g^{l+1}(s)``."""
        xp, k, b, cc = self.m.be.xp, self.c["kappa"], self.c["b"], self.c["c"]
        Dh = xp.stack(self.Dts) if t else None  # (t, Pa)
        ht = b[0] * H1x
        if t:
            ht = ht + cc * k[0] * xp.stack(self.g[1], 1) @ (Dh @ self.c["Kx"])
        self.h[1].append(ht)
        for l in range(1, self.L):
            hn = b[l] * self.Ws[l].fwd(self.h[l][t])
            if t:
                coef = xp.einsum("ka,skb,sb->sa", self.h[l][t], xp.stack(self.h[l][:t]), Dh)  # (Phi^l(t,s) Dt(s))_a
                hn = hn + cc * k[l] * xp.stack(self.g[l + 1], 1) @ coef
            self.h[l + 1].append(hn)

    def backward(self, t: int, w):
        """Append ``g^L(t) = w(t)`` and ``g^l(t) = b_{l+1} W_l^T g^{l+1} / sqrt N + c kappa_{l+1} sum_s G^{l+1}(t,s)
        sum_nu Dt_nu(s) h^l_nu(s)`` for l = L-1..1."""
        xp, k, b, cc = self.m.be.xp, self.c["kappa"], self.c["b"], self.c["c"]
        self.g[self.L].append(w)
        for l in range(self.L - 1, 0, -1):
            gt = self.g[l + 1][t]
            zt = b[l] * self.Ws[l].bwd(gt[:, None])[:, 0]
            if t:
                Gts = xp.stack(self.g[l + 1][:t], 1).T @ gt  # (t,) G^{l+1}(t, s)
                Dh = xp.stack(self.Dts[:t])
                zt = zt + cc * k[l] * xp.einsum("s,skb,sb->k", Gts, xp.stack(self.h[l][:t]), Dh)
            self.g[l].append(zt)

    def kernels(self, t: int):
        """Equal-time ``NTK = sum_k kappa_k G^k Phi^{k-1}`` (Pa, Pa), ``Phi^l`` (L, Pa, Pa), ``G^l`` (L,) at t."""
        xp, k = self.m.be.xp, self.c["kappa"]
        G = [self.g[l][t] @ self.g[l][t] for l in range(1, self.L + 1)]
        Phi = [self.h[l][t].T @ self.h[l][t] for l in range(1, self.L + 1)]
        ntk = k[0] * G[0] * self.c["Kx"] + k[self.L] * Phi[-1]
        for l in range(1, self.L):
            ntk = ntk + k[l] * G[l] * Phi[l - 1]
        return ntk, xp.stack(Phi), xp.stack(G)


def _dynamics(be, plan: _Plan, discover: bool, dims: dict, consts: dict, depth: int, steps: int, theta=None):
    """Run GD for ``steps`` steps. Returns dict ``f`` (T1, Pa), ``ntk`` (T1, Pa, Pa), ``phi`` (L, T1, Pa, Pa),
    ``g`` (L, T1) (equal-time ``G^l``; backward fields carry no sample index)."""
    xp = be.xp
    m = _Machine(be, plan, discover, dims, theta)
    run = _Run(m, consts, depth)
    H1x = run.W0.fwd(xp.asarray(consts["C"]))  # coords of W_0 x_mu / sqrt D
    fs, ntks, phis, gs, w = [], [], [], [], None
    for t in range(steps + 1):
        run.forward(t, H1x)
        if t == 0:
            w = consts["b"][depth] * m.fresh(depth, 1)[:, 0]  # b_{L+1} w(0) / sqrt N
        hL = run.h[depth][t]
        f = w @ hL / consts["gamma"]
        fs.append(f)
        run.Dts.append((consts["y"] - f) * consts["mask"] / consts["P"])
        run.backward(t, w)
        ntk, phi, g = run.kernels(t)
        ntks.append(ntk), phis.append(phi), gs.append(g)
        w = w + consts["c"] * consts["kappa"][depth] * hL @ run.Dts[t]
    if discover:
        plan.dims = dict(m.k)
    return {"f": xp.stack(fs), "ntk": xp.stack(ntks), "phi": xp.stack(phis, 1), "g": xp.stack(gs, 1)}


def _structure(consts: dict, depth: int, steps: int) -> _Plan:
    """The numpy pass at ``theta = 0`` fixing ranks, mixing matrices and dimensions (float64)."""
    plan = _Plan()
    Pa = consts["C"].shape[1]
    kmax = consts["C"].shape[0] + 3 * (steps + 1) * (Pa + 1) + 2
    _dynamics(_NP, plan, True, {l: kmax for l in range(1, depth + 1)}, consts, depth, steps)
    return plan


# ----------------------------------------------------------------------------------------------- the map F and its expansion
def _constants(limit, Kx_all, y_all, train_mask, lr):
    """float64 numpy constants of the run; checks the table is one this module covers."""
    if limit.residual or limit.layer_time is not None:
        raise NotImplementedError("finite_width_linear.deep_linear: residual tables are not covered (MLPs only)")
    if float(limit.b[-1]) != 1.0:
        raise NotImplementedError("finite_width_linear.deep_linear: readout source scale b_{K+1} != 1 is not covered")
    mask = np.asarray(train_mask, np.float64).reshape(-1)
    P = int(mask.sum())
    if not np.all(mask[:P] > 0):
        raise ValueError("the train points must come first in Kx_all")
    return {"C": _input_factor(Kx_all), "Kx": np.asarray(Kx_all, np.float64), "y": np.asarray(y_all, np.float64),
            "mask": mask, "P": P, "gamma": float(limit.gamma), "c": float(lr) * float(limit.gamma),
            "b": np.asarray(limit.b, np.float64), "kappa": np.asarray(limit.kappa, np.float64)}


def _map(plan: _Plan, consts: dict, depth: int, steps: int, names: tuple):
    """The pure JAX map ``theta (size,) -> (f (T1*Pa,), kernels (T1*P*P,) per name)`` on the fixed structure."""
    P = consts["P"]
    jc = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in consts.items()}

    def F(theta):
        o = _dynamics(_JNP, plan, False, plan.dims, jc, depth, steps, theta)
        T1 = o["f"].shape[0]
        ks = {"ntk": o["ntk"][:, :P, :P]}
        ks.update({f"phi{l}": o["phi"][l - 1, :, :P, :P] for l in range(1, depth + 1)})
        ks.update({f"g{l}": jnp.broadcast_to(o["g"][l - 1][:, None, None], (T1, P, P)) for l in range(1, depth + 1)})
        return o["f"].reshape(-1), {k: ks[k].reshape(-1) for k in names}

    return F


_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
"""XLA options for the long unrolled graphs here (compile time dominates; measured 3x faster to compile)."""


def _compiled(fn, *args):
    """``jit(fn)`` compiled for ``args`` with :data:`_FAST_COMPILE` (plain compile if the options are refused)."""
    lowered = jax.jit(fn).lower(*args)
    try:
        return lowered.compile(compiler_options=_FAST_COMPILE)
    except Exception:  # noqa: BLE001 -- an XLA build without these options
        return lowered.compile()


def _value_and_jacobian(F, size: int):
    """``F(0)`` and ``dF/dtheta (0)`` (outputs x size) in one compiled forward-mode pass (``jax.linearize``)."""
    def both(theta):
        out, lin = jax.linearize(F, theta)
        tangents = jax.vmap(lin)(jnp.eye(size))
        return out, jax.tree_util.tree_map(lambda a: a.T, tangents)

    theta0 = jnp.zeros(size)
    return _compiled(both, theta0)(theta0)


def _second_order(F, v, size: int, chunk: int = 128):
    """``sum_i v_i d^2 F / d theta_i^2`` at 0 (forward over forward, ``chunk`` directions per compiled batch)."""
    def curvature(E):
        def one(e):
            first = lambda th: jax.jvp(F, (th,), (e,))[1]
            return jax.jvp(first, (jnp.zeros(size),), (e,))[1]
        return jax.vmap(one)(E).sum(0)

    chunk = min(chunk, size)
    batched = _compiled(curvature, jnp.zeros((chunk, size)))
    total = 0.0
    for i0 in range(0, size, chunk):
        idx = np.arange(i0, min(size, i0 + chunk))
        E = np.zeros((chunk, size))  # padded rows are zero directions (one compiled shape)
        E[np.arange(len(idx)), idx] = np.sqrt(v[idx])
        total = total + np.asarray(batched(jnp.asarray(E)))
    return total


def deep_linear(limit, *, Kx_all, y_all, train_mask, lr, steps, kernels=(), mean_shift=True) -> WidthCorrections:
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

    Returns:
        :class:`~limits.dmft.finite_width.WidthCorrections`: ``cov`` (T1, Pa, Pa) ``N Cov(f(t))``; ``mean_shift``
        (T1, Pa) ``N (E f_N - f_inf)`` (zeros if ``mean_shift=False``); ``kernel_var`` name -> (T1, P, P)
        ``N Var`` of each train-block entry; ``ntk_spread`` (T1, P) ``sqrt(N Var NTK_mumu) / NTK_mumu``;
        ``samples`` 0 (no sampling).
    """
    K = limit.fields
    valid = {"ntk"} | {f"{q}{l}" for q in ("phi", "g") for l in range(1, K + 1)}
    unknown = set(kernels) - valid
    if unknown:
        raise ValueError(f"unknown kernels {sorted(unknown)}; use {sorted(valid)}")
    consts = _constants(limit, Kx_all, y_all, train_mask, lr)
    names = tuple(sorted(set(kernels) | {"ntk"}))
    P, Pa, T1 = consts["P"], len(consts["y"]), int(steps) + 1
    plan = _structure(consts, K, int(steps))
    v = plan.variances()
    with precision("float64"):
        F = _map(plan, consts, K, int(steps), names)
        (_, k0), (Jf, Jk) = _value_and_jacobian(F, plan.size)
        Jf = np.asarray(Jf)
        shift = np.zeros(T1 * Pa)
        if mean_shift and plan.size:
            second = _second_order(lambda th: F(th)[0], v, plan.size)
            shift = Jf @ plan.mean() + 0.5 * second
    cov = np.einsum("tai,tbi,i->tab", Jf.reshape(T1, Pa, -1), Jf.reshape(T1, Pa, -1), v)
    kvar = {n: np.einsum("ai,i->a", np.asarray(Jk[n]) ** 2, v).reshape(T1, P, P) for n in names}
    ntk0 = np.asarray(k0["ntk"]).reshape(T1, P, P)
    spread = np.sqrt(np.diagonal(kvar["ntk"], axis1=1, axis2=2)) / np.abs(np.diagonal(ntk0, axis1=1, axis2=2))
    return WidthCorrections(cov=cov, mean_shift=shift.reshape(T1, Pa), ntk_spread=spread,
                            kernel_var={n: kvar[n] for n in kernels}, samples=0)
