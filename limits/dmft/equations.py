"""Discrete-time DMFT equations of the pinned network (shared by every backend).

Notation (see ``docs/theory/dmft.md`` for the derivation). ``T = steps``,
``P`` train points, ``n = (T + 1) P``; a "path" quantity is a vector of length
``n`` indexed time-major, ``a = t * P + mu``; kernels and response functions
are ``(n, n)`` matrices with the same index on both sides.

For hidden layer ``l = 1..L`` the single-site process is

    h^l = u^l + M_h^l g^l,        u^l ~ N(0, Phi^{l-1})
    z^l = r^l + M_z^l phi(h^l),   r^l ~ N(0, G^{l+1})
    g^l = phi'(h^l) z^l

with the (causal) memory matrices

    M_h^l(t, s) = [s < t]  (A^{l-1}(t, s) + c Phi^{l-1}(t, s) Dt(s))
    M_z^l(t, s) = [s <= t] B^l(t, s) + [s < t] c G^{l+1}(t, s) Dt(s)

``c = lr * gamma``, ``Dt(s) = diag(Delta(s)) / P``, ``Delta = y - f``,
``Phi^0 = x.x'/D`` (time independent), ``G^{L+1} = 1`` (all ones),
``A^0 = B^L = 0``. Response functions: ``A^l = E[d phi(h^l)/d r^l]``,
``B^{l-1} = E[d g^l / d u^l]``; the readout is

    f(t) = a(t) / gamma + lr sum_{s<t} Phi^L(t, s) Delta(s) / P,
    a = E[d phi(h^L) / d r^L]  (r^L = w(0), one scalar per neuron).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ProblemGrid", "masks", "memory_matrices", "readout", "ntk_equal_time", "equal_time", "tile_static"]


class ProblemGrid:
    """Set-up shared by every DMFT problem (Monte Carlo and deep linear): the time-major grid
    ``n = (steps + 1) P`` (P counts test points) and ``consts``, the arrays passed to the jitted
    step (their one home): the flattened targets and train mask ``y``, ``mask`` (n,), the causal
    masks ``strict``, ``incl`` and the input kernel ``Phi0`` (n, n)."""

    def __init__(self, *, Kx_all, y_all, train_mask, depth, steps, gamma, lr):
        self.depth = int(depth)
        self.T1 = int(steps) + 1
        self.Pa = int(Kx_all.shape[0])
        self.n = self.T1 * self.Pa
        self.gamma, self.lr = float(gamma), float(lr)
        self.P = int(np.sum(train_mask))
        strict, incl = masks(self.T1, self.Pa)
        self.consts = {"y": jnp.asarray(np.tile(y_all, self.T1)),
                       "mask": jnp.asarray(np.tile(train_mask.astype(np.float64), self.T1)),
                       "strict": jnp.asarray(strict), "incl": jnp.asarray(incl),
                       "Phi0": jnp.asarray(tile_static(Kx_all, self.T1))}


def masks(T1: int, P: int):
    """Strict (``s < t``) and inclusive (``s <= t``) causal block masks, (n, n) float."""
    t = np.repeat(np.arange(T1), P)
    strict = (t[:, None] > t[None, :]).astype(np.float64)
    incl = (t[:, None] >= t[None, :]).astype(np.float64)
    return strict, incl


def memory_matrices(c, dt_col, Phi_prev, G_next, A_prev, B_this, strict, incl):
    """``(M_h, M_z)`` of one layer. ``dt_col``: (n,) ``Delta/P`` at the column index.

    ``A_prev`` / ``B_this`` may be None (first layer / last layer)."""
    Mh = c * Phi_prev * dt_col[None, :]
    if A_prev is not None:
        Mh = Mh + A_prev
    Mh = Mh * strict
    Mz = c * G_next * dt_col[None, :] * strict
    if B_this is not None:
        Mz = Mz + B_this * incl
    return Mh, Mz


def readout(a, Phi_L, dt_flat, gamma, lr, strict):
    """Infinite-width predictions ``f`` (n,) from ``a = E[d phi(h^L)/d r^L]`` and ``Phi^L``."""
    return a / gamma + lr * ((Phi_L * strict) @ dt_flat)


def equal_time(K, T1: int, P: int):
    """(T+1, P, P) equal-time blocks of an (n, n) two-time kernel."""
    K4 = jnp.reshape(K, (T1, P, T1, P))
    idx = jnp.arange(T1)
    return K4[idx, :, idx, :]


def ntk_equal_time(Phis, Gs, T1: int, P: int):
    """NTK(t) = sum_{l=0}^{L} G^{l+1}(t,t) * Phi^l(t,t) (elementwise), (T+1, P, P).

    ``Phis``: [Phi^0..Phi^L]; ``Gs``: [G^1..G^{L+1}] as (n, n) matrices."""
    out = 0.0
    for Phi, G in zip(Phis, Gs):
        out = out + equal_time(Phi, T1, P) * equal_time(G, T1, P)
    return out


def tile_static(K0, T1: int):
    """(n, n) two-time kernel constant in time with blocks ``K0`` (P, P)."""
    return jnp.tile(K0, (T1, T1))


def march(f_image, f_old, y_flat, mask_flat, ntk_t, lr, P: int, T1: int, Pa: int):
    """Preconditioned update of the predictions (avoids Picard's transient growth).

    Plain fixed-point iteration ``f <- F(f)`` on the causal map ``F`` multiplies an
    error at step s by ``(lr NTK / P)^k binom(t - s, k)`` after k iterations, which
    explodes for long trajectories. Instead march in time with the increments of
    ``F(f_old)`` and the NTK part of the dependence on Delta treated implicitly:

        f(t+1) = f(t) + [F(f_old)(t+1) - F(f_old)(t)] + lr/P NTK(t) (Delta(t) - Delta_old(t)).

    At the fixed point ``f = f_old = F(f_old)``; the error that remains explicit is
    the non-NTK part of d incr / d Delta, O(lr gamma) per step."""
    F = jnp.reshape(f_image, (T1, Pa))
    fo = jnp.reshape(f_old, (T1, Pa))
    yy = jnp.reshape(y_flat, (T1, Pa))[0]
    m = jnp.reshape(mask_flat, (T1, Pa))[0]
    incr = F[1:] - F[:-1]

    def body(f_t, xs):
        inc, K, fo_t = xs
        d_new = (yy - f_t) * m
        d_old = (yy - fo_t) * m
        f_next = f_t + inc + (lr / P) * (K @ (d_new - d_old))
        return f_next, f_next

    _, rest = jax.lax.scan(body, F[0], (incr, ntk_t[:-1], fo[:-1]))
    return jnp.concatenate([F[:1], rest], axis=0).reshape(-1)


def within_horizon(new, horizon, T1: int, P: int):
    """Extend ``new`` beyond the horizon (causal continuation in time).

    Quantities at times ``< horizon`` depend only on earlier times, so the early part can be
    converged first; what the iterate does beyond the horizon (it may blow up while the early
    kernels are still wrong) is discarded and replaced by a guess built from the early part:
    predictions and kernels (``f``, ``Phi``, ``G``) of a process frozen after ``horizon - 1``
    (kernels stay positive semi-definite), response functions (``A``, ``B``) continued at
    constant lag, ``R(t, s) = R(horizon - 1, s - t + horizon - 1)`` (zero for negative arguments)."""
    last = horizon - 1
    t = jnp.arange(T1)
    frozen = jnp.minimum(t, last)
    idx = (frozen[:, None] * P + jnp.arange(P)[None, :]).reshape(-1)
    # lag continuation: rows t > last read row `last` at column s - (t - last)
    shift = jnp.maximum(t - last, 0)
    rows = jnp.broadcast_to(jnp.minimum(t, last)[:, None], (T1, T1))
    cols = t[None, :] - shift[:, None]
    valid = (cols >= 0) & (t[None, :] <= jnp.maximum(t[:, None], last))

    def freeze(x):
        return x[idx] if x.ndim == 1 else x[idx][:, idx]

    def lagged(x):
        K4 = x.reshape(T1, P, T1, P).transpose(0, 2, 1, 3)
        K4 = jnp.where(valid[:, :, None, None], K4[rows, jnp.clip(cols, 0, T1 - 1)], 0.0)
        return K4.transpose(0, 2, 1, 3).reshape(T1 * P, T1 * P)

    out = {k: jax.tree_util.tree_map(lagged if k in ("A", "B") else freeze, v) for k, v in new.items()}
    return out


def relax(state, new, damping, residual_keys=None):
    """Damped fixed-point update ``(1 - damping) state + damping new`` and the residual,
    the largest relative change over the state components named in ``residual_keys``
    (all when None; dicts of arrays or lists of arrays)."""
    res = jnp.zeros(())
    keys = state.keys() if residual_keys is None else residual_keys
    for k in keys:
        for old_x, new_x in zip(jax.tree_util.tree_leaves(state[k]), jax.tree_util.tree_leaves(new[k])):
            scale = jnp.maximum(jnp.max(jnp.abs(new_x)), 1e-12)
            res = jnp.maximum(res, jnp.max(jnp.abs(new_x - old_x)) / scale)
    damped = jax.tree_util.tree_map(lambda o, nw: (1.0 - damping) * o + damping * nw, state, new)
    return damped, res


def layer_memory(l, L, c, dt, Phi0, G_top, new_Phi, new_A, state, strict, incl):
    """Sources ``(Phi^{l-1}, G^{l+1})`` and memory matrices ``(Mh, Mz)`` of layer ``l`` (1..L) in the Gauss-Seidel sweep over depth: the
    layer below is taken from this iteration (``new_Phi``, ``new_A``), the layer above
    from the previous state, so every layer sees the same errors Delta."""
    Phi_prev = Phi0 if l == 1 else new_Phi[l - 2]
    G_next = G_top if l == L else state["G"][l]
    A_prev = None if l == 1 else new_A[l - 2]
    B_this = None if l == L else state["B"][l - 1]
    Mh, Mz = memory_matrices(c, dt, Phi_prev, G_next, A_prev, B_this, strict, incl)
    return Phi_prev, G_next, Mh, Mz
