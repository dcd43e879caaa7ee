r"""Deterministic DMFT of linear residual networks, marched in time (a Riccati sweep per time row).

With ``phi = identity`` the single-site process of a residual table (fields ``h^1..h^K``, ``K = L + 1``
for ``L`` blocks; :mod:`limits.dmft.march`) is linear and Gaussian:

.. math::

    h^1 = b_1 u_1 + C_1 g^1,\quad h^{k+1} = h^k + b_{k+1} u_{k+1} + C_{k+1} g^{k+1},\qquad
    g^K = r_K 1 + D_K h^K,\quad g^k = g^{k+1} + b_{k+1} r_k + D_k h^k,

``C_1 = kappa_1 M[Phi^0]``, ``C_{k+1} = b_{k+1}^2 R_k + kappa_{k+1} M[Phi^k]``, ``D_K = kappa_{K+1} M[1]``,
``D_k = b_{k+1} B^k + kappa_{k+1} M[G^{k+1}]`` with ``M[K](t, s) = c [s < t] K(t, s) Dt(s)``. Going down,
``g^k = Pi_k h^k + nu_k`` (``nu_k`` built from the sources of fields ``>= k``, covariance ``N_k``); going
up, ``h^k = Y_k + R_k nu_k`` (``Y_k`` independent of ``nu_k``, covariance ``S_k``). With
``E = (I - Pi_{k+1} C_{k+1})^{-1}``, ``J = I + C_{k+1} E Pi_{k+1}``, ``Q = I + R_k E Pi_{k+1}``, ``b = b_{k+1}``:

.. math::

    \Pi_K &= D_K,\ N_K = 1 1^T,\quad \Pi_k = E\Pi_{k+1} + b^2 \Pi_{k+1} J Q + \kappa_{k+1} M[G^{k+1}],\quad
    N_k = E (b^2 \Pi_{k+1}\Phi^k\Pi_{k+1}^T + N_{k+1}) E^T + b^2 G^{k+1},\\
    F &= (I - C_1\Pi_1)^{-1},\ R_1 = F C_1,\ S_1 = b_1^2 F \Phi^0 F^T,\quad
    S_{k+1} = J [S_k + b^2 Q \Phi^k Q^T + b^2 R_k G^{k+1} R_k^T] J^T,\quad R_{k+1} = (J R_k + C_{k+1}) E,\\
    \Phi^k &= S_k + R_k N_k R_k^T,\quad G^k = \Pi_k S_k \Pi_k^T + (\Pi_k R_k + I) N_k (\Pi_k R_k + I)^T,\quad
    a = R_K 1

(docs/theory/resnet_dmft.md sections 2-3). ``Pi``, ``R``, ``C`` are strictly causal in time, ``E``, ``J``,
``Q``, ``F`` unit lower triangular, so the block row ``t`` of every matrix needs the rows ``< t`` of the
down-sweep quantities and the rows ``<= t`` of the up-sweep ones: at each step, up the stream (``R``,
``S``, ``Phi`` rows), the readout ``f(t)``, then down (``E``, ``Pi``, ``N``, ``G`` rows) -- the order of the
Monte Carlo march, and no iteration. Cost ``O(K n^3)``, memory ``O(K n^2)``, ``n = (steps + 1) Pa``.
Layer time (``depth = inf``) is :mod:`limits.dmft.layer_time` on these finite-depth solves.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import march as _march
from .monte_carlo import Solution

__all__ = ["solve", "solve_layer_time"]

_FIELD = ("Pi", "N", "R", "S", "Phi", "G", "PRI")  # per field k
_WEIGHT = ("C", "E", "EP", "CE", "J", "Q", "JQ", "Mid", "Inner")  # per block weight k = 2..K
_SYMMETRIC = ("N", "S", "Phi", "G", "Mid", "Inner")


def _names(pr) -> list[str]:
    """The carried matrices of the finite-depth march: per field and per block weight (module docstring)."""
    K = pr.size
    out = [f"{q}{k}" for k in range(1, K + 1) for q in _FIELD]
    out += [f"{q}{k}" for k in range(2, K + 1) for q in _WEIGHT]
    return out + ["F", "PF", "Cin"]


def _initial_carry(pr):
    z = jnp.zeros((0, 0), jnp.dtype(pr.dtype))
    return dict({name: z for name in _names(pr)}, Dt=jnp.zeros((0,), jnp.dtype(pr.dtype)))


def _grown(carry, m: int):
    out = {k: jnp.pad(v, ((0, m - v.shape[0]), (0, m - v.shape[1]))) for k, v in carry.items() if k != "Dt"}
    out["Dt"] = jnp.pad(carry["Dt"], (0, m - carry["Dt"].shape[0]))
    return out


class _Rows:
    """Block-row writer for one time step: ``set(name, row)`` stores ``row`` (Pa, m) as block row ``t`` of the
    carried matrix ``name`` (and as its block column for symmetric ones); ``[name]`` reads the matrix."""

    def __init__(self, carry, start):
        self.carry, self.start, self.row = carry, start, {}

    def __getitem__(self, name):
        return self.carry[name]

    def set(self, name, row):
        M = self.carry[name]
        if name.rstrip("0123456789") in _SYMMETRIC:
            M = jax.lax.dynamic_update_slice(M, row.T, (0, self.start))
        self.carry[name] = jax.lax.dynamic_update_slice(M, row, (self.start, 0))
        self.row[name] = row
        return row


def _up(pr, consts, x: _Rows, e_t, MK, t):
    """Rows ``t`` of ``C, J, Q, R, S, Phi`` up the stream (needs down-sweep rows ``< t`` only)."""
    K = pr.size
    b, kappa = consts["b"], consts["kappa"]
    Cin = x.set("Cin", kappa[0] * MK(jnp.tile(consts["Kx"], (1, x["F"].shape[0] // pr.Pa))))
    F = x.set("F", e_t + Cin @ x["PF"])
    R = x.set("R1", F @ x["Cin"])
    S = x.set("S1", b[0] ** 2 * (F @ consts["Kx_full"]) @ x["F"].T)
    x.set("Phi1", S + (R @ x["N1"]) @ x["R1"].T)
    for k in range(1, K):
        w, bb = k + 1, b[k] ** 2
        C = x.set(f"C{w}", bb * x.row[f"R{k}"] + kappa[k] * MK(x.row[f"Phi{k}"]))
        x.set(f"CE{w}", C @ x[f"E{w}"])
        J = x.set(f"J{w}", e_t + C @ x[f"EP{w}"])
        Q = x.set(f"Q{w}", e_t + x.row[f"R{k}"] @ x[f"EP{w}"])
        x.set(f"JQ{w}", J @ x[f"Q{w}"])
        mid = x.row[f"S{k}"] + bb * ((Q @ x[f"Phi{k}"]) @ x[f"Q{w}"].T + (x.row[f"R{k}"] @ x[f"G{w}"]) @ x[f"R{k}"].T)
        x.set(f"Mid{w}", mid)
        R = x.set(f"R{w}", (J @ x[f"R{k}"] + C) @ x[f"E{w}"])
        S = x.set(f"S{w}", (J @ x[f"Mid{w}"]) @ x[f"J{w}"].T)
        x.set(f"Phi{w}", S + (R @ x[f"N{w}"]) @ x[f"R{w}"].T)


def _down(pr, consts, x: _Rows, e_t, MK, ones_row):
    """Rows ``t`` of ``Pi, N, G, E`` down the stream (needs the up-sweep rows ``<= t``)."""
    K = pr.size
    b, kappa = consts["b"], consts["kappa"]
    for k in range(K, 0, -1):
        if k == K:
            Pi = x.set(f"Pi{K}", kappa[K] * MK(ones_row))
            x.set(f"N{K}", ones_row)
        else:
            w, bb = k + 1, b[k] ** 2
            E = x.set(f"E{w}", e_t + x.row[f"Pi{w}"] @ x[f"CE{w}"])
            x.set(f"EP{w}", E @ x[f"Pi{w}"])
            Pi = x.set(f"Pi{k}", x.row[f"EP{w}"] + bb * (x.row[f"Pi{w}"] @ x[f"JQ{w}"]) + kappa[k] * MK(x.row[f"G{w}"]))
            x.set(f"Inner{w}", bb * (x.row[f"Pi{w}"] @ x[f"Phi{k}"]) @ x[f"Pi{w}"].T + x.row[f"N{w}"])
            x.set(f"N{k}", (E @ x[f"Inner{w}"]) @ x[f"E{w}"].T + bb * x.row[f"G{w}"])
        PRI = x.set(f"PRI{k}", Pi @ x[f"R{k}"] + e_t)
        x.set(f"G{k}", (Pi @ x[f"S{k}"]) @ x[f"Pi{k}"].T + (PRI @ x[f"N{k}"]) @ x[f"PRI{k}"].T)
    x.set("PF", x.row["Pi1"] @ x["F"])


def step(pr: _march.Grid, consts, carry, t):
    """One time step: up the stream, the readout ``f(t)``, down the stream (module docstring)."""
    K, Pa = pr.size, pr.Pa
    carry = dict(carry)
    Dt = carry["Dt"]
    m, dtype = Dt.shape[0], Dt.dtype
    start, past, e_t, MK = _march.row_frame(Dt, t, Pa, consts["c"])
    ones_row = jnp.ones((Pa, m), dtype) * (jnp.arange(m) < start + Pa)
    consts = dict(consts, Kx_full=jnp.tile(consts["Kx"], (m // Pa, m // Pa)))
    x = _Rows(carry, start)
    _up(pr, consts, x, e_t, MK, t)
    kappa = consts["kappa"]
    f = jnp.sum(x.row[f"R{K}"], axis=1) / consts["gamma"] + consts["lr"] * kappa[K] * (x.row[f"Phi{K}"] * past) @ Dt
    dt = (consts["y"] - f) * consts["mask"] / pr.P
    _down(pr, consts, x, e_t, MK, ones_row)
    carry["Dt"] = jax.lax.dynamic_update_slice(Dt, dt, (start,))
    eq = lambda k, q: jax.lax.dynamic_slice(x.row[f"{q}{k}"], (0, start), (Pa, Pa))  # noqa: E731
    return carry, {"f": f, "phi": jnp.stack([eq(k, "Phi") for k in range(1, K + 1)]),
                   "g": jnp.stack([eq(k, "G") for k in range(1, K + 1)])}


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _block(pr: _march.Grid, consts, carry, ts):
    return jax.lax.scan(functools.partial(step, pr, consts), carry, ts)


def solve(*, Kx_all, y_all, train_mask, steps: int, lr: float, limit, blocks: int | None = None,
          progress: bool = False) -> Solution:
    """March the linear residual DMFT of ``limit`` (a residual :class:`~limits.parametrization.DMFTLimit` with
    ``K`` fields) in float64; inputs as :func:`limits.dmft.monte_carlo.build`. Returns a
    :class:`~limits.dmft.monte_carlo.Solution` with zero standard errors (exact equations)."""
    pr = _march.Grid(size=limit.fields, T1=int(steps) + 1, Pa=Kx_all.shape[0], P=int(np.sum(train_mask)))
    out, _ = _march.drive_exact(_block, pr, functools.partial(_initial_carry, pr), limit, Kx_all=Kx_all, y_all=y_all,
                                train_mask=train_mask, lr=lr, grow=_grown, blocks=blocks, progress=progress,
                                desc="linear residual DMFT")
    zero = np.zeros_like(out["f"])
    return Solution(f=out["f"], f_se=zero, loss_se=zero[:, 0], phi=out["phi"], g=out["g"], two=None,
                    diverged_at=out["diverged_at"])


# ----------------------------------------------------------------------------- layer time (depth = inf)
_NODE = ("R", "S", "Phi", "C", "CPi", "RPi", "Pi", "N", "G", "PiR", "PiC")  # per tau node, stacked (K+1, m, m)


class _NodeRows:
    """Block row ``t`` of the per-node matrices (stacked over the ``K + 1`` nodes): ``mat(q, j)`` (m, m),
    ``row(q, j)`` (Pa, m), ``set(q, j, row)`` (also the block column for the symmetric ``S, Phi, N, G``)."""

    def __init__(self, carry, start, Pa):
        self.carry, self.start, self.Pa = carry, start, Pa

    def mat(self, q, j):
        return self.carry[q][j]

    def row(self, q, j):
        m = self.carry[q].shape[-1]
        return jax.lax.dynamic_slice(self.carry[q], (j, self.start, 0), (1, self.Pa, m))[0]

    def set(self, q, j, row):
        X = self.carry[q]
        if q in _SYMMETRIC:
            X = jax.lax.dynamic_update_slice(X, row.T[None], (j, 0, self.start))
        self.carry[q] = jax.lax.dynamic_update_slice(X, row[None], (j, self.start, 0))
        return row


def _lt_derived_up(x: _NodeRows, j, s2, k2, MK):
    """Rows ``t`` of ``Phi, C, C Pi, R Pi`` at node ``j`` from its rows of ``R``, ``S``."""
    R, S = x.row("R", j), x.row("S", j)
    Phi = x.set("Phi", j, S + (R @ x.mat("N", j)) @ x.mat("R", j).T)
    C = x.set("C", j, s2 * R + k2 * MK(Phi))
    Pi = x.mat("Pi", j)
    x.set("CPi", j, C @ Pi)
    x.set("RPi", j, R @ Pi)


def _lt_up_rhs(x: _NodeRows, j, s2, e_t):
    """``(dR/dtau, dS/dtau)`` rows ``t`` at node ``j``: ``C + C Pi R + R Pi C`` and
    ``C Pi S + S (C Pi)^T + sigma2 [(I + R Pi) Phi (I + R Pi)^T + R G R^T]``."""
    R, C, CPi, RPi = x.row("R", j), x.row("C", j), x.row("CPi", j), x.mat("RPi", j)
    dR = C + C @ x.mat("PiR", j) + R @ x.mat("PiC", j)
    K = (e_t + x.row("RPi", j)) @ x.mat("Phi", j)
    dS = CPi @ x.mat("S", j) + x.row("S", j) @ x.mat("CPi", j).T
    dS = dS + s2 * (K + K @ RPi.T + (R @ x.mat("G", j)) @ x.mat("R", j).T)
    return dR, dS


def _lt_derived_down(x: _NodeRows, j, e_t):
    """Rows ``t`` of ``G, Pi R, Pi C`` at node ``j`` from its rows of ``Pi``, ``N``."""
    Pi = x.row("Pi", j)
    PiR = x.set("PiR", j, Pi @ x.mat("R", j))
    x.set("PiC", j, Pi @ x.mat("C", j))
    NQ = (e_t + PiR) @ x.mat("N", j)
    x.set("G", j, (Pi @ x.mat("S", j)) @ x.mat("Pi", j).T + NQ + NQ @ x.mat("PiR", j).T)


def _lt_down_rhs(x: _NodeRows, j, s2, k2, MK):
    """``(-dPi/dtau, -dN/dtau)`` rows ``t`` at node ``j``: ``Pi C Pi + sigma2 (Pi + Pi R Pi) + kappa M[G]`` and
    ``Pi C N + N (Pi C)^T + sigma2 (Pi Phi Pi^T + G)``."""
    Pi, N, G = x.row("Pi", j), x.row("N", j), x.row("G", j)
    mPi = Pi @ x.mat("CPi", j) + s2 * (Pi + Pi @ x.mat("RPi", j)) + k2 * MK(G)
    mN = x.row("PiC", j) @ x.mat("N", j) + N @ x.mat("PiC", j).T + s2 * ((Pi @ x.mat("Phi", j)) @ x.mat("Pi", j).T + G)
    return mPi, mN


def _lt_sweep(x: _NodeRows, nodes, h, names, rhs, derived, up: bool):
    """Heun steps of the rows ``t`` of ``names`` over all nodes (``tau`` up from node 0, or down from node K):
    predictor, then the trapezoid corrector; ``derived(j)`` refreshes node ``j``. A ``fori_loop`` over nodes."""

    def body(i, carry):
        x.carry = carry
        j0 = i if up else nodes - i
        j1 = j0 + 1 if up else j0 - 1
        d1 = rhs(j0)
        for q, d in zip(names, d1):
            x.set(q, j1, x.row(q, j0) + h * d)
        derived(j1)
        d2 = rhs(j1)
        for q, a, b in zip(names, d1, d2):
            x.set(q, j1, x.row(q, j0) + 0.5 * h * (a + b))
        derived(j1)
        return x.carry

    x.carry = jax.lax.fori_loop(0, nodes, body, x.carry)


def layer_time_step(pr: _march.Grid, consts, carry, t):
    """One time step of the layer-time march: the up ODEs for ``R, S`` from ``tau = 0`` to 1 (Heun), the
    readout, the down ODEs for ``Pi, N`` from ``tau = 1`` to 0 (docs/theory/resnet_dmft.md section 3)."""
    K, Pa = pr.size, pr.Pa
    Dt = carry["Dt"]
    m, dtype = Dt.shape[0], Dt.dtype
    start, past, e_t, MK = _march.row_frame(Dt, t, Pa, consts["c"])
    s2, k2 = consts["s2"], consts["k2"]
    b, kappa, h = consts["b"], consts["kappa"], 1.0 / K
    flat = _Rows({k: carry[k] for k in ("F", "PF", "Cin")}, start)
    Cin = flat.set("Cin", kappa[0] * MK(jnp.tile(consts["Kx"], (1, m // Pa))))
    F = flat.set("F", e_t + Cin @ flat["PF"])
    x = _NodeRows({q: carry[q] for q in _NODE}, start, Pa)
    x.set("R", 0, F @ flat["Cin"])
    x.set("S", 0, b[0] ** 2 * (F @ jnp.tile(consts["Kx"], (m // Pa, m // Pa))) @ flat["F"].T)
    up_derived = lambda j: _lt_derived_up(x, j, s2, k2, MK)  # noqa: E731
    up_derived(0)
    _lt_sweep(x, K, h, ("R", "S"), lambda j: _lt_up_rhs(x, j, s2, e_t), up_derived, up=True)
    f = jnp.sum(x.row("R", K), axis=1) / consts["gamma"] + consts["lr"] * kappa[-1] * (x.row("Phi", K) * past) @ Dt
    dt = (consts["y"] - f) * consts["mask"] / pr.P
    x.set("Pi", K, kappa[-1] * MK(jnp.ones((Pa, m), dtype)))
    x.set("N", K, jnp.ones((Pa, m), dtype) * (jnp.arange(m) < start + Pa))
    down_derived = lambda j: _lt_derived_down(x, j, e_t)  # noqa: E731
    down_derived(K)
    _lt_sweep(x, K, h, ("Pi", "N"), lambda j: _lt_down_rhs(x, j, s2, k2, MK), down_derived, up=False)
    flat.set("PF", x.row("Pi", 0) @ flat["F"])
    carry = dict(x.carry, **flat.carry, Dt=jax.lax.dynamic_update_slice(Dt, dt, (start,)))
    eq = lambda q: jax.lax.dynamic_slice(carry[q], (0, start, start), (K + 1, Pa, Pa))  # noqa: E731
    return carry, {"f": f, "phi": eq("Phi"), "g": eq("G")}


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _layer_time_block(pr: _march.Grid, consts, carry, ts):
    return jax.lax.scan(functools.partial(layer_time_step, pr, consts), carry, ts)


def _grown_nodes(carry, m: int):
    out = {}
    for k, v in carry.items():
        pad = [(0, 0)] * (v.ndim - 2) + [(0, m - v.shape[-2]), (0, m - v.shape[-1])] if v.ndim >= 2 else [(0, m - v.shape[0])]
        out[k] = jnp.pad(v, pad)
    return out


def solve_layer_time(*, Kx_all, y_all, train_mask, steps: int, lr: float, limit, depth_steps: int,
                     blocks: int | None = None, progress: bool = False):
    """March the layer-time ODEs of a linear residual ``limit`` (with ``layer_time``) with ``depth_steps`` Heun
    steps in ``tau`` (error O(depth_steps^-2)). Returns ``(Solution, ntk)``: kernels on the nodes
    ``tau = j / depth_steps`` (``phi``, ``g`` of shape (T1, depth_steps + 1, Pa, Pa)) and the NTK
    ``kappa_1 G(0) Phi^0 + kappa int_0^1 G Phi dtau + kappa_{out} Phi(1)`` (trapezoid rule)."""
    K = int(depth_steps)
    pr = _march.Grid(size=K, T1=int(steps) + 1, Pa=Kx_all.shape[0], P=int(np.sum(train_mask)))
    s2, k2 = limit.layer_time

    def init():
        carry = {q: jnp.zeros((K + 1, 0, 0), jnp.float64) for q in _NODE}
        return dict(carry, F=jnp.zeros((0, 0)), PF=jnp.zeros((0, 0)), Cin=jnp.zeros((0, 0)), Dt=jnp.zeros((0,)))

    out, _ = _march.drive_exact(_layer_time_block, pr, init, limit, Kx_all=Kx_all, y_all=y_all,
                                train_mask=train_mask, lr=lr, grow=_grown_nodes, blocks=blocks, progress=progress,
                                desc="linear residual DMFT in layer time", s2=s2, k2=k2)
    zero = np.zeros_like(out["f"])
    sol = Solution(f=out["f"], f_se=zero, loss_se=zero[:, 0], phi=out["phi"], g=out["g"], two=None,
                   diverged_at=out["diverged_at"])
    ntk = (limit.kappa[0] * sol.g[:, 0] * Kx_all[None] + k2 * np.trapezoid(sol.g * sol.phi, dx=1.0 / K, axis=1)
           + limit.kappa[-1] * sol.phi[:, -1])
    return sol, ntk
