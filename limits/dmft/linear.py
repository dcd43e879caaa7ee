r"""Deterministic DMFT of deep linear MLPs (``phi(h) = h``), marched in time: no sampling.

For ``phi = identity`` each field of the single-site process (:mod:`limits.dmft.march`, no skip
connections) is linear in its two Gaussian sources, ``h^k = H_u^k u_k + H_r^k r_k``,
``g^k = z^k = Z_u^k u_k + Z_r^k r_k``, and every average is a quadratic form in the coefficients:

.. math::

    H_u^k(t) &= b_k E_t + M_k(t, :) Z_u^k,\qquad H_r^k(t) = M_k(t, :) Z_r^k,\\
    Z_u^k(t) &= Z_k(t, :) H_u^k,\qquad Z_r^k(t) = b_{k+1} E_t + Z_k(t, :) H_r^k,\\
    \Phi^k &= H_u^k \Phi^{k-1} H_u^{kT} + H_r^k G^{k+1} H_r^{kT},\qquad
    G^k = Z_u^k \Phi^{k-1} Z_u^{kT} + Z_r^k G^{k+1} Z_r^{kT},\\
    A^k &= H_r^k,\qquad B^k = Z_u^{k+1},\qquad a = H_r^K

(``E_t`` picks the source at time ``t``; ``u_1`` is constant in time with covariance ``Kx`` and
``r_K`` one scalar, ``G^{K+1} = 1``; memory rows ``M_k = b_k A^{k-1} + c kappa_k Phi^{k-1} Dt`` (strict),
``Z_k = b_{k+1} B^k + c kappa_{k+1} G^{k+1} Dt``). These are the Monte Carlo march's equations with
the sample averages done exactly, so both are marched in the same order (up the fields, readout,
down the fields) through :func:`limits.dmft.march.drive`. Cost ``O(K n^3)``, memory ``O(K n^2)``
with ``n = (steps + 1) Pa``; no iteration, no damping.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import march as _march
from .monte_carlo import Solution

__all__ = ["solve"]


def _source_dims(pr: _march.Grid, k: int, m: int):
    """Columns of the coefficient matrices of field ``k`` on ``(u_k, r_k)``: ``u_1`` has ``Pa`` (constant in time),
    ``r_K`` one; the others one per grid point of the prefix (``m``)."""
    return (pr.Pa if k == 1 else m), (1 if k == pr.size else m)


def _initial_carry(pr: _march.Grid):
    z = lambda *s: jnp.zeros(s, jnp.dtype(pr.dtype))  # noqa: E731
    carry = {"Dt": z(0)}
    for k in range(1, pr.size + 1):
        du, dr = _source_dims(pr, k, 0)
        carry.update({f"Hu{k}": z(0, du), f"Zu{k}": z(0, du), f"Hr{k}": z(0, dr), f"Zr{k}": z(0, dr),
                      f"Phi{k}": z(0, 0), f"G{k}": z(0, 0)})
    return carry


def _grown(pr: _march.Grid, carry, m: int):
    out = {"Dt": jnp.pad(carry["Dt"], (0, m - carry["Dt"].shape[0]))}
    for k in range(1, pr.size + 1):
        du, dr = _source_dims(pr, k, m)
        for name, cols in (("Hu", du), ("Zu", du), ("Hr", dr), ("Zr", dr), ("Phi", m), ("G", m)):
            x = carry[f"{name}{k}"]
            out[f"{name}{k}"] = jnp.pad(x, ((0, m - x.shape[0]), (0, cols - x.shape[1])))
    return out


def _symmetric_row(K, row, start):
    """``K`` with block row ``start`` and the matching block column set to ``row`` (Pa, m)."""
    K = jax.lax.dynamic_update_slice(K, row.T, (0, start))
    return jax.lax.dynamic_update_slice(K, row, (start, 0))


def _quadratic(X_t, Su, Xu, Y_t, Sr, Yr):
    """``X_t Su Xu^T + Y_t Sr Yr^T`` (Pa, m): a kernel row from source coefficients and source covariances."""
    return (X_t @ Su) @ Xu.T + (Y_t @ Sr) @ Yr.T


def step(pr: _march.Grid, consts, carry, t):
    """One time step of the deep-linear march (module docstring)."""
    K, Pa = pr.size, pr.Pa
    b, kappa, c = consts["b"], consts["kappa"], consts["c"]
    carry = dict(carry)
    Dt = carry["Dt"]
    m = Dt.shape[0]
    start = t * Pa
    cols = jnp.arange(m)
    past, upto = cols < start, cols < start + Pa
    dtype = Dt.dtype
    E_t = jax.lax.dynamic_update_slice(jnp.zeros((Pa, m), dtype), jnp.eye(Pa, dtype=dtype), (0, start))
    Kx_row = jnp.tile(consts["Kx"], (1, m // Pa))
    ones = jnp.ones((1, 1), dtype)
    cov_u = lambda k: consts["Kx"] if k == 1 else carry[f"Phi{k - 1}"]  # noqa: E731
    cov_r = lambda k: ones if k == K else carry[f"G{k + 1}"]  # noqa: E731
    rows = {}
    for k in range(1, K + 1):
        if k == 1:
            Mrow = c * kappa[0] * Kx_row * Dt[None, :] * past
        else:
            Mrow = (b[k - 1] * rows[f"Hr{k - 1}"] + c * kappa[k - 1] * rows[f"Phi{k - 1}"] * Dt[None, :]) * past
        Hu = b[k - 1] * (jnp.eye(Pa, dtype=dtype) if k == 1 else E_t) + Mrow @ carry[f"Zu{k}"]
        Hr = Mrow @ carry[f"Zr{k}"]
        carry[f"Hu{k}"] = jax.lax.dynamic_update_slice(carry[f"Hu{k}"], Hu, (start, 0))
        carry[f"Hr{k}"] = jax.lax.dynamic_update_slice(carry[f"Hr{k}"], Hr, (start, 0))
        row = _quadratic(Hu, cov_u(k), carry[f"Hu{k}"], Hr, cov_r(k), carry[f"Hr{k}"])
        carry[f"Phi{k}"] = _symmetric_row(carry[f"Phi{k}"], row, start)
        rows[f"Phi{k}"], rows[f"Hr{k}"] = row, Hr
    f = rows[f"Hr{K}"][:, 0] / consts["gamma"] + consts["lr"] * kappa[K] * jnp.sum(rows[f"Phi{K}"] * Dt * past, 1)
    dt = (consts["y"] - f) * consts["mask"] / pr.P
    for k in range(K, 0, -1):
        if k == K:
            Zrow, Er = c * kappa[K] * jnp.broadcast_to(Dt * past, (Pa, m)), jnp.ones((Pa, 1), dtype)
        else:
            Zrow = b[k] * rows[f"Zu{k + 1}"] * upto + c * kappa[k] * rows[f"G{k + 1}"] * Dt[None, :] * past
            Er = E_t
        Zu = Zrow @ carry[f"Hu{k}"]
        Zr = b[k] * Er + Zrow @ carry[f"Hr{k}"]
        carry[f"Zu{k}"] = jax.lax.dynamic_update_slice(carry[f"Zu{k}"], Zu, (start, 0))
        carry[f"Zr{k}"] = jax.lax.dynamic_update_slice(carry[f"Zr{k}"], Zr, (start, 0))
        row = _quadratic(Zu, cov_u(k), carry[f"Zu{k}"], Zr, cov_r(k), carry[f"Zr{k}"])
        carry[f"G{k}"] = _symmetric_row(carry[f"G{k}"], row, start)
        rows[f"G{k}"], rows[f"Zu{k}"] = row, Zu
    carry["Dt"] = jax.lax.dynamic_update_slice(Dt, dt, (start,))
    eq = lambda M: jax.lax.dynamic_slice(M, (0, start), (Pa, Pa))  # noqa: E731
    return carry, {"f": f, "phi": jnp.stack([eq(rows[f"Phi{k}"]) for k in range(1, K + 1)]),
                   "g": jnp.stack([eq(rows[f"G{k}"]) for k in range(1, K + 1)])}


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _block(pr: _march.Grid, consts, carry, ts):
    return jax.lax.scan(functools.partial(step, pr, consts), carry, ts)


def solve(*, Kx_all, y_all, train_mask, steps: int, lr: float, limit, two_time=False,
          blocks: int | None = None, progress: bool = False) -> Solution:
    """March the deep-linear DMFT (float64). Inputs as :func:`limits.dmft.monte_carlo.build`; returns a
    :class:`~limits.dmft.monte_carlo.Solution` with zero standard errors (the equations are exact) and, with
    ``two_time``, the two-time kernels ``Phi{k}``, ``G{k}`` and responses ``A{k} = H_r``, ``B{k}`` (n, n)."""
    pr = _march.Grid(size=limit.fields, T1=int(steps) + 1, Pa=Kx_all.shape[0], P=int(np.sum(train_mask)))
    out, carry = _march.drive_exact(_block, pr, functools.partial(_initial_carry, pr), limit, Kx_all=Kx_all, y_all=y_all,
                                    train_mask=train_mask, lr=lr, grow=functools.partial(_grown, pr), blocks=blocks,
                                    progress=progress, desc="deep-linear DMFT")
    two = None
    if two_time:
        K = pr.size
        two = {f"{q}{k}": np.asarray(carry[f"{q}{k}"]) for k in range(1, K + 1) for q in ("Phi", "G")}
        two.update({f"A{k}": np.asarray(carry[f"Hr{k}"]) for k in range(1, K)})
        two.update({f"B{k}": np.asarray(carry[f"Zu{k + 1}"]) for k in range(1, K)})
    zero = np.zeros_like(out["f"])
    return Solution(f=out["f"], f_se=zero, loss_se=zero[:, 0], phi=out["phi"], g=out["g"], two=two,
                    diverged_at=out["diverged_at"])
