r"""The Monte Carlo DMFT solved in one causal pass over time (the *march*).

One single-site process carries ``K`` fields ``h^1..h^K`` up the network and ``g^K..g^1`` down
(an MLP with ``K`` hidden layers, or a residual network with ``K - 1`` blocks whose fields are the
residual stream before and after each block). Weight ``k`` (``k = 1..K+1``) connects field
``k - 1`` to field ``k`` (weight 1 is the input layer, ``K + 1`` the readout); it has a source
scale ``b_k`` and a learning-rate weight ``kappa_k``. With ``c = lr gamma``, ``Dt = Delta / P``,
``Delta = y - f`` and sums over the points implied,

.. math::

    h^k(t) &= [\text{skip}]\, h^{k-1}(t) + b_k u_k(t)
             + \sum_{s<t} \big(b_k A^{k-1}(t,s) + c\,\kappa_k \Phi^{k-1}(t,s) Dt(s)\big) g^k(s) \\
    z^k(t) &= b_{k+1} r_k(t) + \sum_{s\le t} b_{k+1} B^k(t,s) \phi(h^k(s))
             + \sum_{s<t} c\,\kappa_{k+1} G^{k+1}(t,s) Dt(s) \phi(h^k(s)) \\
    g^k(t) &= [\text{skip}]\, g^{k+1}(t) + \phi'(h^k(t))\, z^k(t)

with unit Gaussian sources ``u_1 ~ N(0, Kx)`` (constant in time), ``u_k ~ GP(0, Phi^{k-1})``,
``r_k ~ GP(0, G^{k+1})``, ``r_K = w(0) ~ N(0, 1)`` (``b_{K+1} = 1``, ``G^{K+1} = 1``, ``A^0 = B^K = 0``),
kernels ``Phi^k = <phi(h^k) phi(h^k)>``, ``G^k = <g^k g^k>``, responses ``A^k = <d phi(h^k)/d r_k>``,
``B^k = <d g^{k+1}/d u_{k+1}>`` and the readout

.. math::  f(t) = a(t)/\gamma + lr\,\kappa_{K+1} \sum_{s<t} \Phi^K(t,s) Dt(s),\quad a = \langle r_K \phi(h^K)\rangle .

Every coupling points back in time except the equal-time ``B^k(t,t)``, which comes from field
``k + 1`` at the same ``t`` (docs/theory/dmft.md section 3). So a forward pass in time computes the
solution: at step ``t``, up the fields (extend the Cholesky factor of ``Phi^{k-1}`` by one block row
and draw ``u_k(t)`` conditionally on each path's past; the memory terms; the new rows of ``Phi^k``
and ``A^k``), the readout ``f(t)``, then down the fields (the new rows of ``G^{k+1}``, ``B^k``, the
source ``r_k(t)``, ``z^k(t)``, ``g^k(t)``). The fixed point of the sampled equations, which the
iterative solver of earlier versions converged to (``tests/test_dmft_march.py`` checks the equality
on stored fixed points), is what this pass produces; it costs about one iteration of that solver.

Estimators of the responses (Stein's lemma, ``E[X eps^T] = E[dX/d eps]``, no ``phi''``, unbiased for
ReLU): ``whitened`` regresses the path values on the sources with their exact sample moment (MLPs,
whose fields decouple given the kernels); otherwise each response has a control variate, the same
process with its source switched off, marched alongside (residual networks). The readout response
``a`` has the control variate ``phi(h^K)|_{r_K = 0}``, or, on mirrored paths of a whitened process
(antithetic pairs with the backward sources negated), the pair's own odd part.

Layout: paths at one time are ``(S, Pa)``; histories ``(S, m)`` time-major over the prefix
``m = t1 Pa`` of the current time block ``[t0, t1)``; factors ``(m, m)``. The time blocks are
jitted ``lax.scan`` s, compiled once per :class:`Process` and block shape (reused across calls).
Cost: ``O(S n^2)`` per history product (a few per field and process), ``O(n^3)`` per source for
the factors, ``n = (steps + 1) Pa``; memory ``O(S n)`` per history and source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _acts

__all__ = ["Process", "Grid", "march", "drive_exact", "exact_constants", "row_frame", "drive", "precision", "memory_bytes", "time_blocks", "extend_factor", "stein_row",
           "stein_row_diagonal"]


@dataclasses.dataclass(frozen=True)
class Process:
    """Static shape of one march (hashable: the jitted time blocks compile once per Process).

    ``fields`` = K; ``skip``: residual stream (fields add up); ``S`` paths, ``T1 = steps + 1``,
    ``Pa`` points (train + test), ``P`` train points; ``whitened``: sample-whitened Stein responses
    instead of control variates; ``mirrored``: the paths come in antithetic pairs (backward sources negated),
    which makes the readout's control variate redundant for whitened processes; ``two_time``: keep the two-time
    kernels and responses (n, n)."""

    act: _acts.Activation
    fields: int
    skip: bool
    S: int
    T1: int
    Pa: int
    P: int
    whitened: bool
    mirrored: bool = False
    two_time: bool = False
    dtype: str = "float64"

    @property
    def n(self) -> int:
        return self.T1 * self.Pa

    @property
    def switched_off(self) -> tuple[tuple[str, int], ...]:
        """Sources switched off in the control-variate processes: ``("r", K)`` for the readout response (not
        needed by whitened processes on mirrored paths: a pair's ``r_K [phi(r) - phi(-r)] / 2`` already drops the
        part of ``phi`` even in ``r_K``); with control variates also ``("r", k)`` for ``A^k`` and ``("u", k + 1)``
        for ``B^k``."""
        K = self.fields
        if self.whitened:
            return () if self.mirrored else (("r", K),)
        return tuple(("r", k) for k in range(1, K)) + tuple(("u", k) for k in range(2, K + 1)) + (("r", K),)

    @property
    def processes(self) -> int:
        """Number of processes marched together: the main one and the switched-off ones (a batch axis)."""
        return 1 + len(self.switched_off)

    def index(self, proc) -> int:
        """Position of the process with source ``proc`` switched off on the batch axis (0: the main one)."""
        return 1 + self.switched_off.index(proc)

    def mask(self, kind: str, k: int) -> np.ndarray:
        """(processes,) 1 where source ``(kind, k)`` is on, 0 in the process that switches it off."""
        return np.array([0.0 if p == (kind, k) else 1.0 for p in (None,) + self.switched_off])

    @property
    def stored(self) -> tuple[tuple[str, int], ...]:
        """Histories ``(kind, field)`` kept for every process: those that memory terms or kernel rows read
        (``phi^k`` for k < K, ``g^k`` for k > 1; field 1 and the readout use running sums)."""
        K, out = self.fields, []
        for k in range(1, K + 1):
            if k < K or self.two_time:
                out.append(("phi", k))
            if k > 1 or self.two_time:
                out.append(("g", k))
        return tuple(out)

    @property
    def sources(self) -> tuple[str, ...]:
        """Two-time sources with a causal factor: ``u2..uK`` and ``r1..r(K-1)``."""
        K = self.fields
        return tuple(f"u{k}" for k in range(2, K + 1)) + tuple(f"r{k}" for k in range(1, K))


@dataclasses.dataclass(frozen=True)
class Grid:
    """Static shape of a deterministic march (hashable, compiled once per Grid): ``size`` fields (or layer-time
    nodes), ``T1 = steps + 1`` times, ``Pa`` points (train + test), ``P`` train points."""

    size: int
    T1: int
    Pa: int
    P: int
    dtype: str = "float64"

    @property
    def n(self) -> int:
        return self.T1 * self.Pa


@contextlib.contextmanager
def precision(dtype: str):
    """Context in which JAX computes in ``dtype`` ("float64" or "float32") without changing the user's global
    settings (``jax.enable_x64`` is scoped; compiled functions are cached per setting), with full-precision
    matrix products (GPUs default to TF32 for float32, 10 mantissa bits: the Cholesky rows then blow up)."""
    with jax.enable_x64(jnp.dtype(dtype) == jnp.float64), jax.default_matmul_precision("highest"):
        yield


def memory_bytes(pr: Process) -> int:
    """Rough peak memory of a march: the path histories and two-time sources (``S x n`` each, plus a copy while a
    time block grows), the factors (``n x n``), and the float64 Sobol draw of the sources."""
    item = jnp.dtype(pr.dtype).itemsize
    arrays = pr.processes * len(pr.stored) + len(pr.sources)
    draw = 8 * pr.S * (pr.Pa + len(pr.sources) * pr.n) * 2
    return int(2 * item * pr.S * pr.n * arrays + 3 * item * pr.n**2 * len(pr.sources) + draw)


def time_blocks(T1: int, blocks: int) -> list[tuple[int, int]]:
    """``blocks`` contiguous time blocks ``[t0, t1)`` covering ``0..T1-1``."""
    edges = np.unique(np.round(np.linspace(0, T1, max(1, min(T1, blocks)) + 1)).astype(int))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


# ----------------------------------------------------------------------------- row-block linear algebra
def extend_factor(Ci, Krow, t, Pa: int, jitter, scale):
    """One block row of the Cholesky factor ``C`` of ``K + j I`` (time-major, lower) and of ``C^{-1}``.

    ``Ci`` (m, m): ``C^{-1}`` with rows ``< t Pa`` filled, zeros after; ``Krow`` (Pa, m): ``K[t, :]`` (columns
    beyond time ``t`` are ignored). The jitter is ``j = jitter * scale``, ``scale`` the largest diagonal entry
    of ``K(0, 0)`` (set at ``t = 0``; a causal choice). Block Cholesky:
    ``C[t, <t] = K[t, <t] C_{<t}^{-T}``, ``C[t, t] = chol(K[t, t] + j I - C[t, <t] C[t, <t]^T)``,
    ``C^{-1}[t, :] = -C[t, t]^{-1} C[t, <t] C^{-1}_{<t}`` plus ``C[t, t]^{-1}`` on the diagonal block.
    Returns ``(Ci, Crow (Pa, m) = C[t, :], Ctt (Pa, Pa), scale)``; cost ``O(Pa m^2)``."""
    m = Ci.shape[0]
    start = t * Pa
    Ktt = jax.lax.dynamic_slice(Krow, (0, start), (Pa, Pa))
    Ktt = 0.5 * (Ktt + Ktt.T)
    scale = jnp.where(t == 0, jnp.max(jnp.abs(jnp.diag(Ktt))), scale)
    eye = jnp.eye(Pa, dtype=Ci.dtype)
    Crow = (Krow * (jnp.arange(m) < start)) @ Ci.T
    Ctt = jnp.linalg.cholesky(Ktt + jitter * jnp.maximum(scale, 1e-300) * eye - Crow @ Crow.T)
    Ctt_inv = jax.scipy.linalg.solve_triangular(Ctt, eye, lower=True)
    Ci_row = jax.lax.dynamic_update_slice(-(Ctt_inv @ (Crow @ Ci)), Ctt_inv, (0, start))
    return (jax.lax.dynamic_update_slice(Ci, Ci_row, (start, 0)), jax.lax.dynamic_update_slice(Crow, Ctt, (0, start)),
            Ctt, scale)


def _centered_moment(X, e, t, Pa: int, inclusive: bool):
    """``E[(X - <X>) e^T]`` (Pa, m) of path values ``X`` (S, Pa) at time ``t`` against sources ``e`` (S, m), with
    the columns of times ``> t`` (``>= t`` unless ``inclusive``) set to zero: they vanish by causality."""
    S, m = e.shape
    M = (X - X.mean(0, keepdims=True)).T @ e / S
    return M * (jnp.arange(m) < (t + int(inclusive)) * Pa)


def stein_row(X, eps, t, Pa: int, inclusive: bool, Ci, Wi=None):
    """Row block ``t`` (Pa, m) of the response ``E[dX/dv]`` to the source ``v = eps C^T`` (Stein's lemma).

    Plain (``Wi`` None): ``E[X eps^T] = E[dX/dv] C``, so ``E[dX/dv] = E[(X - <X>) eps^T] C^{-1}`` on the causal
    columns. Sample-whitened (``Wi = W^{-1}``, ``W W^T = eps^T eps / S`` the sample second moment, lower
    triangular): the same with the sources' sample moment in place of the identity,
    ``E[(X - <X>) eps^T] Sigma^{-1} C^{-1}``, ``Sigma^{-1} = W^{-T} W^{-1}`` restricted to the causal prefix (the
    least-squares coefficient of ``X`` on the sources: the part of ``X`` linear in them is recovered exactly).
    ``O(S m Pa + Pa m^2)``."""
    M = _centered_moment(X, eps, t, Pa, inclusive)
    if Wi is not None:
        m = eps.shape[1]
        M = ((M @ Wi.T) * (jnp.arange(m) < (t + int(inclusive)) * Pa)) @ Wi
    return M @ Ci


def stein_row_diagonal(X, e, t, Pa: int, Ci, Ctt):
    """Row block ``t`` of a response ``B = E[dX/dv]`` whose equal-time block is diagonal (``v = e C^T``).

    In the equal-time block Stein's lemma gives ``M(a, b) = B(a, a) C(a, b)`` (``b`` at the time of ``a``,
    ``C`` lower triangular): ``B(a, a)`` is the least-squares fit to all those entries (instead of
    ``M(a, a) / C(a, a)``, whose small denominators amplify noise). Linear in ``M``, so as unbiased as
    Stein's estimate. ``Ctt`` (Pa, Pa): the equal-time block of ``C`` at ``t``."""
    m = e.shape[1]
    start = t * Pa
    M = _centered_moment(X, e, t, Pa, inclusive=True)
    Meq = jax.lax.dynamic_slice(M, (0, start), (Pa, Pa))
    Ce = jnp.tril(Ctt)
    diag = jnp.sum(Meq * Ce, axis=1) / jnp.maximum(jnp.sum(Ce * Ce, axis=1), 1e-300)
    past = jnp.arange(m) < start
    M = jax.lax.dynamic_update_slice(M * past, diag[:, None] * Ce, (0, start))
    B = M @ Ci
    eq = jax.lax.dynamic_update_slice(jnp.zeros_like(B), jnp.eye(Pa, dtype=B.dtype), (0, start))
    return B * (past + eq)


# ----------------------------------------------------------------------------- one time step
def _kernel_row(X, hist, S: int):
    """``<X(t) x(s)>`` (Pa, m) of path values ``X`` (S, Pa) against a history (S, m)."""
    return X.T @ hist / S


def _extend(pr: Process, consts, carry, name: str, Krow, t, rows):
    """Extend the factor of source ``name`` by the block row ``t`` of its covariance ``Krow`` (Pa, m); returns the
    row ``C[t, :]`` (Pa, m) of the factor (``v = eps C^T``)."""
    carry["Ci"][name], Crow, rows[f"Ctt_{name}"], carry["scale"][name] = extend_factor(
        carry["Ci"][name], Krow, t, pr.Pa, consts["jitter"], carry["scale"][name])
    return Crow


def _stein(pr: Process, consts, carry, X, name: str, t, inclusive: bool):
    """Row block ``t`` of ``E[dX/dv]`` for the source ``name`` (whitened or plain, :func:`stein_row`)."""
    return stein_row(X, consts[f"e_{name}"], t, pr.Pa, inclusive, carry["Ci"][name],
                     consts[f"Wi_{name}"] if pr.whitened else None)


def _times(H, M):
    """``H @ M^T`` for a history ``H`` (processes, S, m) and rows ``M`` (Pa, m): (processes, S, Pa), one GEMM."""
    p, S, m = H.shape
    return (H.reshape(p * S, m) @ M.T).reshape(p, S, -1)


def _write(hist, key, X, start):
    """``hist[key]`` (processes, S, m) with the values ``X`` (processes, S, Pa) of time ``t`` at column ``start``."""
    hist[key] = jax.lax.dynamic_update_slice(hist[key], X, (0, 0, start))


def _response_input(pr: Process, vals, key: str, source):
    """The main process's path values ``vals[key][0]`` (S, Pa), minus those of the process with ``source`` switched
    off when the responses use control variates."""
    X = vals[key][0]
    return X if pr.whitened else X - vals[key][pr.index(source)]


def _up(pr: Process, consts, carry, t, rows, vals):
    """Fields ``1..K`` at time ``t`` for every process (batched), with the rows ``Phi^k(t, :)``, ``A^k(t, :)``."""
    K, Pa, S = pr.fields, pr.Pa, pr.S
    b, kappa, c = consts["b"], consts["kappa"], consts["c"]
    hist, Dt = carry["hist"], carry["Dt"]
    start = t * Pa
    past = jnp.arange(Dt.shape[0]) < start
    dtype = Dt.dtype
    for k in range(1, K + 1):
        if k == 1:
            src = b[0] * consts["u1"]
            mem = c * kappa[0] * (carry["run1"] @ consts["Kx"])
        else:
            Krow = rows[f"Phi{k - 1}"]
            src = b[k - 1] * (consts[f"e_u{k}"] @ _extend(pr, consts, carry, f"u{k}", Krow, t, rows).T)
            mem = _times(hist[f"g{k}"], (b[k - 1] * rows[f"A{k - 1}"] + c * kappa[k - 1] * Krow * Dt[None, :]) * past)
        h = jnp.asarray(pr.mask("u", k), dtype)[:, None, None] * src[None] + mem
        if pr.skip and k > 1:
            h = h + vals[f"h{k - 1}"]
        vals[f"h{k}"], vals[f"phi{k}"], vals[f"dphi{k}"] = h, pr.act.fn(h), pr.act.deriv(h)
        if ("phi", k) in pr.stored:
            _write(hist, f"phi{k}", vals[f"phi{k}"], start)
            rows[f"Phi{k}"] = _kernel_row(vals[f"phi{k}"][0], hist[f"phi{k}"][0], S)
        if k < K:
            X = _response_input(pr, vals, f"phi{k}", ("r", k))
            rows[f"A{k}"] = _stein(pr, consts, carry, X, f"r{k}", t, inclusive=False)


def _down(pr: Process, consts, carry, t, rows, vals):
    """Fields ``K..1`` at time ``t`` for every process (batched), with the rows ``G^k(t, :)``, ``B^k(t, :)``."""
    K, Pa, S = pr.fields, pr.Pa, pr.S
    b, kappa, c = consts["b"], consts["kappa"], consts["c"]
    hist, Dt = carry["hist"], carry["Dt"]
    start = t * Pa
    cols = jnp.arange(Dt.shape[0])
    past, upto = cols < start, cols < start + Pa
    dtype = Dt.dtype
    for k in range(K, 0, -1):
        if k == K:
            src = b[K] * consts["r_top"]
            mem = c * kappa[K] * carry["runK"]
        else:
            Grow = rows[f"G{k + 1}"]
            src = b[k] * (consts[f"e_r{k}"] @ _extend(pr, consts, carry, f"r{k}", Grow, t, rows).T)
            X = _response_input(pr, vals, f"g{k + 1}", ("u", k + 1))
            if pr.whitened:
                B = _stein(pr, consts, carry, X, f"u{k + 1}", t, inclusive=True)
            else:
                B = stein_row_diagonal(X, consts[f"e_u{k + 1}"], t, Pa, carry["Ci"][f"u{k + 1}"], rows[f"Ctt_u{k + 1}"])
            rows[f"B{k}"] = B
            mem = _times(hist[f"phi{k}"], b[k] * B * upto + c * kappa[k] * Grow * Dt[None, :] * past)
        g = vals[f"dphi{k}"] * (jnp.asarray(pr.mask("r", k), dtype)[:, None, None] * src[None] + mem)
        if pr.skip and k < K:
            g = g + vals[f"g{k + 1}"]
        vals[f"g{k}"] = g
        if ("g", k) in pr.stored:
            _write(hist, f"g{k}", g, start)
            rows[f"G{k}"] = _kernel_row(g[0], hist[f"g{k}"][0], S)


def _readout(pr: Process, consts, carry, vals):
    """Per-path predictions (S, Pa) at time t: ``r_K [phi(h^K) - phi(h^K)|_{r_K=0}] / gamma
    + lr kappa_{K+1} phi(h^K) sum_{s<t} Dt(s).phi(h^K(s))`` (on mirrored paths of a whitened process, ``r_K phi(h^K)``
    in the first term: the pair mean is the same difference with ``phi(h^K)|_{-r}``); their mean is ``f(t)``."""
    K = pr.fields
    top = vals[f"phi{K}"]
    off = top[pr.index(("r", K))] if ("r", K) in pr.switched_off else 0.0
    ra = consts["r_top"] * (top[0] - off)
    return ra / consts["gamma"] + consts["lr"] * consts["kappa"][K] * top[0] * carry["runK"][0]


ERROR_BLOCKS = 16


def _standard_errors(f_paths, f, consts, pr: Process):
    """Monte Carlo standard errors of the predictions (Pa,) and of the train loss at one time, given the kernels.

    The paths are cut into ``ERROR_BLOCKS`` contiguous blocks; with scrambled-Sobol sources each block of
    ``S / 16`` consecutive points (a power of 2) is itself a randomized QMC net, so the spread of the block
    means over ``sqrt(16)`` estimates the error of the full mean with QMC's accuracy (the per-path spread over
    ``sqrt(S)`` would assume plain Monte Carlo and overstate it up to ~10x). The loss error is first order:
    ``dL = sum_mu (f_mu - y_mu) df_mu / P`` over the train points. Noise fed back through the estimated kernels
    and responses is not in it (measured: these errors are 1.5-10x the seed-to-seed spread on the reference
    problems, docs/theory/dmft.md section 7)."""
    S = f_paths.shape[0]
    R = ERROR_BLOCKS if S % ERROR_BLOCKS == 0 and S >= 4 * ERROR_BLOCKS else S
    blocks = f_paths.reshape(R, S // R, -1).mean(1)
    f_se = jnp.std(blocks, axis=0) / math.sqrt(R)
    dl = (blocks - f[None, :]) @ ((f - consts["y"]) * consts["mask"]) / pr.P
    return f_se, jnp.std(dl) / math.sqrt(R)


def step(pr: Process, consts, carry, t):
    """One time step of the march (module docstring). ``carry``: histories (processes, S, m), inverse factors,
    running sums, ``Dt`` (m,) and, with ``two_time``, the (m, m) kernels and responses; returns
    ``(carry, outputs at t)``."""
    K, Pa, S = pr.fields, pr.Pa, pr.S
    carry = {k: (dict(v) if isinstance(v, dict) else v) for k, v in carry.items()}
    start = t * Pa
    vals, rows = {}, {}
    _up(pr, consts, carry, t, rows, vals)
    f_paths = _readout(pr, consts, carry, vals)
    f = f_paths.mean(0)
    dt = (consts["y"] - f) * consts["mask"] / pr.P
    _down(pr, consts, carry, t, rows, vals)
    carry["Dt"] = jax.lax.dynamic_update_slice(carry["Dt"], dt, (start,))
    carry["run1"] = carry["run1"] + vals["g1"] * dt
    carry["runK"] = carry["runK"] + vals[f"phi{K}"] @ dt[:, None]
    if pr.two_time:
        for key in carry["two"]:
            carry["two"][key] = jax.lax.dynamic_update_slice(carry["two"][key], rows[key], (start, 0))
    f_se, loss_se = _standard_errors(f_paths, f, consts, pr)
    out = {"f": f, "f_se": f_se, "loss_se": loss_se,
           "phi": jnp.stack([vals[f"phi{k}"][0].T @ vals[f"phi{k}"][0] / S for k in range(1, K + 1)]),
           "g": jnp.stack([vals[f"g{k}"][0].T @ vals[f"g{k}"][0] / S for k in range(1, K + 1)])}
    return carry, out


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _block(pr: Process, consts, carry, ts):
    return jax.lax.scan(functools.partial(step, pr, consts), carry, ts)


# ----------------------------------------------------------------------------- driver
def _grow(x, m: int, axes):
    pad = [(0, m - x.shape[a]) if a in axes else (0, 0) for a in range(x.ndim)]
    return jnp.pad(x, pad)


def initial_carry(pr: Process, dtype):
    """Empty histories, factors and running sums (prefix length 0, grown block by block)."""
    S, Pa, K, n_proc = pr.S, pr.Pa, pr.fields, pr.processes
    zeros = lambda *shape: jnp.zeros(shape, dtype)  # noqa: E731
    carry = {
        "hist": {f"{kind}{k}": zeros(n_proc, S, 0) for kind, k in pr.stored},
        "run1": zeros(n_proc, S, Pa),
        "runK": zeros(n_proc, S, 1),
        "Ci": {s: zeros(0, 0) for s in pr.sources},
        "scale": {s: zeros() for s in pr.sources},
        "Dt": zeros(0),
        "two": {},
    }
    if pr.two_time:
        carry["two"] = {f"{q}{k}": zeros(0, 0) for k in range(1, K + 1) for q in ("Phi", "G")}
        carry["two"].update({f"{q}{k}": zeros(0, 0) for k in range(1, K) for q in ("A", "B")})
    return carry


def _grown(carry, m: int):
    """``carry`` with every prefix (histories, factors, two-time matrices, ``Dt``) extended to length ``m``."""
    out = dict(carry)
    out["hist"] = {k: _grow(v, m, (2,)) for k, v in carry["hist"].items()}
    out["Ci"] = {k: _grow(v, m, (0, 1)) for k, v in carry["Ci"].items()}
    out["two"] = {k: _grow(v, m, (0, 1)) for k, v in carry["two"].items()}
    out["Dt"] = _grow(carry["Dt"], m, (0,))
    return out


def _prefix(consts, m: int, n: int):
    """The constants restricted to the first ``m`` grid columns (sources (S, n) and factors (n, n))."""
    out = {}
    for k, v in consts.items():
        if k.startswith("e_") and v.shape[1] == n:
            out[k] = v[:, :m]
        elif k.startswith("Wi_"):
            out[k] = v[:m, :m]
        else:
            out[k] = v
    return out


def drive(block, carry, consts, *, T1: int, Pa: int, P: int, blocks: int, grow, prefix=None, progress=False,
          desc="DMFT march"):
    """Run a march over all ``T1`` time steps in ``blocks`` jitted time blocks (shared by every DMFT march).

    ``block(consts, carry, ts) -> (carry, outputs)`` scans the steps ``ts`` of one block; ``grow(carry, m)``
    extends the carry's prefixes to ``m = t1 Pa`` grid columns before block ``[t0, t1)``, ``prefix(consts, m)``
    restricts the constants to them. Returns ``(outputs, carry)``: the per-step outputs stacked over time
    (NumPy) and ``outputs["diverged_at"]``, the first step where the train predictions ``outputs["f"][:, :P]``
    are non-finite or explode (the march stops there: gradient descent diverges), else None."""
    outs, bar = [], None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=T1, desc=desc, unit="step", leave=False)
    ybound = 1e6 * (1.0 + float(np.max(np.abs(np.asarray(consts["y"])))))
    diverged = None
    try:
        for t0, t1 in time_blocks(T1, blocks):
            m = t1 * Pa
            carry = grow(carry, m)
            carry, ys = block(consts if prefix is None else prefix(consts, m), carry, jnp.arange(t0, t1))
            ys = jax.tree_util.tree_map(np.asarray, ys)
            outs.append(ys)
            if bar is not None:
                bar.update(t1 - t0)
            f = ys["f"][:, :P]
            bad = ~np.isfinite(f).all(axis=1) | (np.abs(np.where(np.isfinite(f), f, 0.0)).max(axis=1) > ybound)
            if bad.any():
                diverged = t0 + int(np.argmax(bad))
                break
    finally:
        if bar is not None:
            bar.close()
    out = {k: np.concatenate([o[k] for o in outs], axis=0) for k in outs[0]}
    out["diverged_at"] = diverged
    return out, carry


def exact_constants(limit, *, Kx_all, y_all, train_mask, lr: float, **extra):
    """The float64 constants of a deterministic march of ``limit`` (a :class:`~limits.parametrization.DMFTLimit`):
    per-weight ``b``, ``kappa``, ``c = lr gamma``, ``lr``, ``gamma``, the input kernel and the targets. Call inside
    :func:`precision` ("float64")."""
    cast = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    consts = {"b": limit.b, "kappa": limit.kappa, "c": lr * limit.gamma, "lr": lr, "gamma": limit.gamma,
              "Kx": Kx_all, "y": y_all, "mask": train_mask, **extra}
    return {k: cast(v) for k, v in consts.items()}


def drive_exact(block, pr: Grid, init, limit, *, Kx_all, y_all, train_mask, lr: float, grow, blocks=None,
                progress=False, desc="DMFT march", **extra):
    """:func:`drive` for the deterministic marches (float64, :func:`exact_constants`); ``init()`` builds the empty
    carry (inside the float64 context); ``blocks`` None: by the grid size. Returns ``(outputs, carry)``."""
    from .monte_carlo import default_blocks

    with precision(pr.dtype):
        consts = exact_constants(limit, Kx_all=Kx_all, y_all=y_all, train_mask=train_mask, lr=lr, **extra)
        return drive(functools.partial(block, pr), init(), consts, T1=pr.T1, Pa=pr.Pa, P=pr.P,
                     blocks=default_blocks(pr.n) if blocks is None else blocks, grow=grow, progress=progress,
                     desc=desc)


def row_frame(Dt, t, Pa: int, c):
    """What every deterministic row update at time ``t`` uses: ``(start, past, e_t, MK)`` with ``past`` (m,) the
    columns before ``t``, ``e_t`` (Pa, m) the block row of the identity at ``t`` and ``MK(row) = c row Dt [s < t]``
    (the learning-rate memory of a kernel row)."""
    m = Dt.shape[0]
    start = t * Pa
    past = jnp.arange(m) < start
    e_t = jax.lax.dynamic_update_slice(jnp.zeros((Pa, m), Dt.dtype), jnp.eye(Pa, dtype=Dt.dtype), (0, start))
    return start, past, e_t, lambda row: c * row * Dt[None, :] * past


def march(pr: Process, consts, *, blocks: int, progress: bool = False, desc: str = "DMFT march"):
    """The Monte Carlo march of ``(pr, consts)`` (:func:`limits.dmft.monte_carlo.build`) through :func:`drive`.

    Returns ``(outputs, carry)``: ``f``, ``f_se`` (T1, Pa), ``loss_se`` (T1,), ``phi``, ``g`` (T1, K, Pa, Pa)
    (equal-time kernels), ``diverged_at``; ``carry["two"]`` the two-time matrices when recorded."""
    return drive(functools.partial(_block, pr), initial_carry(pr, jnp.dtype(pr.dtype)), consts, T1=pr.T1, Pa=pr.Pa,
                 P=pr.P, blocks=blocks, grow=_grown, prefix=lambda c, m: _prefix(c, m, pr.n), progress=progress,
                 desc=desc)
