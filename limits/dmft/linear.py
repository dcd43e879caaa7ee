"""Deterministic DMFT of deep linear networks (phi(h) = h): no sampling.

For phi = identity the single-site fields are linear in the Gaussian sources,

    h = Q^{-1} (u + M_h r),   z = r + M_z h,   Q = I - M_h M_z  (unit lower triangular),

so every average is a matrix identity (docs/theory/dmft.md, "Deep linear networks"):

    Phi^l   = Q^{-1} (Phi^{l-1} + M_h G^{l+1} M_h^T) Q^{-T}
    A^l     = Q^{-1} M_h,            B^{l-1} = M_z Q^{-1}
    G^l     = B^{l-1} Phi^{l-1} B^{l-1 T} + (I + B^{l-1} M_h) G^{l+1} (I + B^{l-1} M_h)^T
    a       = A^L 1   (readout response).

Cost per fixed-point iteration: ``O(L n^3)`` with ``n = (steps + 1) P``; memory ``O(L n^2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from . import equations as eq

jax.config.update("jax_enable_x64", True)

__all__ = ["LinearProblem"]


class LinearProblem(eq.ProblemGrid):
    """Deep linear DMFT; ``step(state, damping)`` has the same contract as the Monte Carlo solver."""

    def __init__(self, *, Kx_all, y_all, train_mask, depth, steps, gamma, lr):
        super().__init__(Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, depth=depth, steps=steps, gamma=gamma,
                         lr=lr)
        self._step = jax.jit(self._step_impl)

    def _step_impl(self, consts, state, damping):
        y_flat, mask_flat, strict, incl, Phi0 = consts["y"], consts["mask"], consts["strict"], consts["incl"], consts["Phi0"]
        G_top = jnp.ones_like(strict)
        L, c, n = self.depth, self.lr * self.gamma, self.n
        eye = jnp.eye(n)
        dt = (y_flat - state["f"]) * mask_flat / self.P
        new_Phi, new_G = [], []
        new_A = [None] * (L - 1)
        new_B = [None] * (L - 1)
        a = None
        for l in range(1, L + 1):
            Phi_prev, G_next, Mh, Mz = eq.layer_memory(l, L, c, dt, Phi0, G_top, new_Phi, new_A, state, strict, incl)
            Q = eye - Mh @ Mz
            Qi = jsl.solve_triangular(Q, eye, lower=True, unit_diagonal=True)
            A_l = Qi @ Mh
            B_l = Mz @ Qi
            new_Phi.append(Qi @ (Phi_prev + Mh @ G_next @ Mh.T) @ Qi.T)
            Cr = eye + B_l @ Mh
            new_G.append(B_l @ Phi_prev @ B_l.T + Cr @ G_next @ Cr.T)
            if l <= L - 1:
                new_A[l - 1] = A_l
            if l >= 2:
                new_B[l - 2] = B_l
            if l == L:
                a = A_l.sum(axis=1)
        f_new = eq.readout(a, new_Phi[-1], dt, self.gamma, self.lr, strict)
        Phi_all = [Phi0] + new_Phi
        G_all = new_G + [G_top]
        ntk_t = eq.ntk_equal_time(Phi_all, G_all, self.T1, self.Pa)
        f_new = eq.march(f_new, state["f"], y_flat, mask_flat, ntk_t, self.lr, self.P, self.T1, self.Pa)
        new = {"f": f_new, "Phi": new_Phi, "G": new_G, "A": new_A, "B": new_B}
        damped, res = eq.relax(state, new, damping)
        return damped, res, {}

    def step(self, state, damping, responses=True, horizon=None):  # deterministic: no continuation needed
        return self._step(self.consts, state, jnp.asarray(damping, dtype=jnp.float64))
