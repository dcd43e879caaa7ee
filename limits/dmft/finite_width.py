r"""The network at width N to leading order in 1/N: fluctuations over initializations and the mean shift.

Two-layer MLPs (one hidden layer; docs/theory/finite_width.md). At any width N the hidden neurons of a
two-layer network are exactly independent and identically distributed *given the error trajectory*
``Dt(s) = (y - f(s)) / P`` (docs/theory/dmft.md section 2: ``h_i(t) = b_1 u_i + c kappa_1 Kx sum_{s<t} g_i(s) Dt(s)``,
``z_i(t) = r_i + c kappa_2 sum_{s<t} phi(h_i(s)).Dt(s)``, ``g_i = phi'(h_i) z_i``, sources ``u_i ~ N(0, Kx)``,
``r_i ~ N(0, 1)``), and every quantity of the network is an average over them:

.. math::  f(t) = \frac1N \sum_i F_i(t; Dt),\qquad F_i = z_i \phi(h_i) / \gamma .

So the width-N network is the fixed point ``f = \bar F_N(Dt(f))`` of an empirical mean, and the delta method
gives, with ``J = d<F>/dDt`` (strictly causal), ``A = I + J_{tr} / P`` on the train points and
``Y_i = A^{-1} (F_i - <F>)`` (one per path):

.. math::  N\,\mathrm{Cov}(f) = \mathrm{Cov}_i(Y_i) = A^{-1} \kappa A^{-T},\qquad
           N\,(E f - f_\infty) = A^{-1} \big(E_i[J_i \omega_i] + \tfrac12 E_{i \ne j} H_i[\omega_j, \omega_j]\big),

``omega_i = -Y_i / P`` (the path's first-order error response), ``J_i``, ``H_i`` the path's own first and second
derivatives in ``Dt``; kernels ``K = (1/N) sum_i k_i`` fluctuate as ``delta K_i = k_i - <k> + (dK/dDt) omega_i``.
Everything is computed on the same single-site paths as the limit: pathwise derivatives by ``jax.jvp`` where
``phi'`` is differentiable, central differences of path means on common paths for ReLU (:data:`KINKED`), whose kink
crossings pathwise derivatives would miss.

Cost: ``J`` takes one tangent march per train grid point (``n_tr = (steps+1) P`` forward-mode directions over a
prefix of ``S_J`` paths, each marched from its start step on: ``O(n_tr S_J n P)``), the mean shift one nested
forward-mode march of the ``S`` paths, the rest ``O(S n_tr^2)``; no ``(n^2, n^2)`` matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .march import precision

__all__ = ["WidthCorrections", "SMOOTH", "SAMPLES", "not_covered", "two_layer", "at_width"]

SMOOTH = ("linear", "tanh", "erf", "gelu")
"""Built-in activations whose derivative is differentiable (pathwise sensitivities are unbiased)."""

SAMPLES = 16384
"""Single-site paths of the width-N corrections (measured: N Cov(f) within 1% in trace of 8192-seed ensembles,
docs/theory/finite_width.md)."""

KERNEL_ENTRIES = 2**25
"""Per-path kernel samples kept at once (256 MB in float64): the kernel variances use a path prefix of at most
``max(1024, KERNEL_ENTRIES / ((steps+1) P^2))`` paths."""

JACOBIAN_SAMPLES_KINKED = 4096
"""Paths for the central-difference sensitivities of :data:`KINKED` activations: the paths a step moves across a
kink carry the kinks' share with a variance ~ ``1 / (step S_J)``; measured on two-layer ReLU (P = 6, 20 steps), the
summed trace of ``N Cov f`` varies by 0.6% over three seeds at 4096 paths and by 3% at 1024."""

JACOBIAN_SAMPLES = 1024
"""Paths (a prefix of the same Sobol sources) for the sensitivities ``J``: one forward-mode pass per train grid point
makes them the dominant cost; as a smooth average ``J`` needs far fewer paths than the covariances (measured on the
benchmark problem: ``tr Sigma`` moves by 0.7% and ``Sigma`` by 1.6% in Frobenius norm from 16384 paths to 1024)."""


@dataclasses.dataclass(frozen=True)
class WidthCorrections:
    """The O(1/N) coefficients of the width-N network (multiply by ``1/N``); ``T1 = steps + 1``, ``Pa`` points
    (train then test), ``P`` train points.

    ``cov`` (T1, Pa, Pa): ``N Cov(f(t))`` over initializations at equal times; ``mean_shift`` (T1, Pa):
    ``N (E f_N(t) - f_inf(t))``; ``kernel_var``: name (``"ntk"``, ``"phi1"``, ``"g1"``) -> (T1, P, P) ``N Var``
    of each entry; ``ntk_spread`` (T1, P): the per-neuron spread of the NTK's diagonal relative to its mean,
    ``sqrt(Var_i k_i) / <k>`` (the expansion parameter is ``ntk_spread / sqrt(N)``); ``samples``: paths used;
    ``ntk_mean`` (T1, P, P): the infinite-width NTK the expansion is about (None if not computed)."""

    cov: np.ndarray
    mean_shift: np.ndarray
    kernel_var: dict
    ntk_spread: np.ndarray
    samples: int
    ntk_mean: np.ndarray | None = None


def _neuron_step(act, consts, u, r, carry, d):
    """One time step of a two-layer neuron (or of a batch of them: ``u`` (..., Pa), ``r`` (...,)) driven by the
    errors ``d = Dt(t)`` (Pa,) (0 on test points). ``carry = (sum_{s<t} g(s) Dt(s), sum_{s<t} phi(h(s)).Dt(s))``
    with the shapes of ``(u, r)``. Returns the new carry and ``(F = z phi(h)/gamma, phi(h), g = phi'(h) z)``, each
    shaped like ``u``."""
    run_g, run_phi = carry
    c, k1, k2, b1 = consts["c"], consts["kappa"][0], consts["kappa"][1], consts["b"][0]
    h = b1 * u + c * k1 * (run_g @ consts["Kx"])  # Kx is symmetric
    z = (r + c * k2 * run_phi)[..., None]
    phi = act.fn(h)
    g = act.deriv(h) * z
    return (run_g + g * d, run_phi + phi @ d), (z * phi / consts["gamma"], phi, g)


def _kernels(consts, pp, gg, names):
    """The kernels ``names`` from the products ``pp`` of ``phi(h)`` and ``gg`` of ``g`` on the train points (..., P, P):
    the NTK ``kappa_1 gg * Kx + kappa_2 pp``, ``phi1 = pp``, ``g1 = gg``."""
    P = pp.shape[-1]
    out = {"ntk": consts["kappa"][0] * gg * consts["Kx"][:P, :P] + consts["kappa"][1] * pp, "phi1": pp, "g1": gg}
    return {k: v for k, v in out.items() if k in names}


def _site(act, consts, u, r, dt):
    """One neuron with sources ``u`` (Pa,), ``r`` () driven by the error trajectory ``dt`` (T1, Pa): per time
    ``(F, phi(h), g)`` (T1, Pa) each (:func:`_neuron_step`)."""
    step = functools.partial(_neuron_step, act, consts, u, r)
    return jax.lax.scan(step, (jnp.zeros_like(u), jnp.zeros_like(r)), dt)[1]


def _kernel_samples(consts, phi, g, P, names=("ntk", "phi1", "g1")):
    """Per-path kernel samples (T1, P, P) of ``names`` (:func:`_kernels`) from one path's ``phi``, ``g`` (T1, Pa)."""
    phi, g = phi[:, :P], g[:, :P]
    return _kernels(consts, phi[:, :, None] * phi[:, None, :], g[:, :, None] * g[:, None, :], names)


def _means(act, P, consts, u, r, dt, names=("ntk", "phi1", "g1"), carry=None):
    """Path means of the readout samples (T1, Pa) and of the kernel samples (name -> (T1, P, P)), reduced inside
    the time scan so that forward-mode tangents never hold per-path kernels. ``u`` (S, Pa), ``r`` (S,); ``carry``
    the neurons' state at the first step of ``dt`` (None: the initial state, zeros)."""
    S = u.shape[0]
    carry = (jnp.zeros_like(u), jnp.zeros_like(r)) if carry is None else carry

    def step(carry, d):
        carry, (F, phi, g) = _neuron_step(act, consts, u, r, carry, d)
        pp, gg = phi[:, :P].T @ phi[:, :P] / S, g[:, :P].T @ g[:, :P] / S
        return carry, (F.mean(0), _kernels(consts, pp, gg, names))

    return jax.lax.scan(step, carry, dt)[1]


@functools.partial(jax.jit, static_argnums=(0,))
def _carries(act, consts, u, r, dt):
    """The neurons' state ``(sum_{s<t} g(s) Dt(s), sum_{s<t} phi(h(s)).Dt(s))`` at every step ``t`` (T1, S, Pa) and
    (T1, S) (:func:`_neuron_step`)."""
    step = lambda carry, d: (_neuron_step(act, consts, u, r, carry, d)[0], carry)  # noqa: E731
    return jax.lax.scan(step, (jnp.zeros_like(u), jnp.zeros_like(r)), dt)[1]


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _jacobian_chunk(act, P, names, differences, consts, u, r, dt, carry, tangents, step):
    """``d<F>/dDt`` and ``d<k>/dDt`` (kernels ``names``) along each of ``tangents`` (C, T, Pa), the steps of ``dt``
    (T, Pa) from the state ``carry`` on: (C, T, Pa) and name -> (C, T, P, P). Forward mode (pathwise derivatives),
    or with ``differences`` central differences of the path means with the step ``step`` on the same paths (common
    random numbers), which also count the paths whose kinks a step moves across."""
    mean = functools.partial(_means, act, P, consts, u, r, names=names, carry=carry)

    def derivative(v):
        return _central_difference(mean, dt, v, step) if differences else jax.jvp(mean, (dt,), (v,))[1]

    return jax.vmap(derivative)(tangents)


def _central_difference(f, x, v, step):
    """``(f(x + step v) - f(x - step v)) / (2 step)`` for a pytree-valued ``f``: its derivative along ``v`` up to
    ``O(step^2)``, and across kinks the jump they cause."""
    plus, minus = f(x + step * v), f(x - step * v)
    return jax.tree_util.tree_map(lambda a, b: (a - b) / (2 * step), plus, minus)


KINKED = ("relu",)
"""Built-in activations whose derivative jumps: their sensitivities are central differences of path means on common
paths (pathwise derivatives would miss the paths that a perturbation moves across a kink)."""

FIELD_STEP = 1e-2
"""Central differences move the fields ``h`` and ``z`` by about this much (:func:`_difference_step`). Measured on
two-layer ReLU (P = 6, 20 steps): field steps of ~0.5e-2 to 1e-2 give ``N Cov f`` within 0.1% of each other and at
the ensembles' sampling floor against 4096 width-1024 networks (3.3% Frobenius); ~0.1e-2 is noisier (4.5%). On tanh
the differences equal forward mode to ~3e-5 (readout) and ~6e-4 (NTK) of their largest entries."""


def _difference_step(consts) -> float:
    """The step in ``Dt`` of the central differences: ``Dt(s)`` moves ``h`` by ``c kappa_1 Kx g Dt`` and ``z`` by
    ``c kappa_2 phi.Dt``, so the step ``FIELD_STEP / (c max(kappa_1 max Kx_aa, kappa_2))`` moves them by about
    :data:`FIELD_STEP`."""
    scale = float(consts["c"]) * max(float(consts["kappa"][0]) * float(np.max(np.diag(np.asarray(consts["Kx"])))),
                                     float(consts["kappa"][1]))
    return FIELD_STEP / max(abs(scale), 1e-12)


JACOBIAN_GROUPS = 4
"""Most groups of start times of the forward-mode directions: a direction at step ``s`` is marched from the first
step of its group on (``Dt(s)`` moves nothing before ``s``), which saves ``(1 - 1/groups) / 2`` of the sensitivities'
cost for one compilation per group. Short runs use fewer groups (one per 5 steps), where compilation dominates."""


def _jacobians(act, P, names, consts, u, r, dt, chunk, progress=False):
    """Full Jacobians in the train coordinates of ``Dt``: ``J`` (T1 Pa, T1 P) of the readout and name -> (T1 P P,
    T1 P) of the kernels, by forward mode (central differences for :data:`KINKED` activations, step
    :func:`_difference_step`) in chunks of at most ``chunk`` directions. ``J`` is strictly causal (``Dt(s)`` moves
    the outputs from ``s + 1`` on), so the directions of a group of start times are marched from the group's first
    step (:data:`JACOBIAN_GROUPS`)."""
    step = jnp.asarray(_difference_step(consts), dt.dtype)
    T1, Pa = dt.shape
    carries = _carries(act, consts, u, r, dt)
    groups = int(np.clip(T1 // 5, 1, JACOBIAN_GROUPS))
    bounds = np.unique(np.linspace(0, T1, groups + 1).astype(int))
    work = []  # (first step of the group, chunk size, columns (s, mu) of one chunk)
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        cols = [(s, mu) for s in range(s0, s1) for mu in range(P)]
        size = min(chunk, len(cols))
        work += [(s0, size, cols[i:i + size]) for i in range(0, len(cols), size)]
    if progress and len(work) > 2:
        from tqdm.auto import tqdm

        work = tqdm(work, desc="width-N sensitivities", unit="chunk", leave=False)
    JF, JK = np.zeros((T1 * P, T1, Pa)), {}
    for s0, size, part in work:  # every chunk of a group has the group's size (one compilation per group)
        tang = np.zeros((size, T1 - s0, Pa), dtype=np.asarray(dt).dtype)
        for j, (s, mu) in enumerate(part):
            tang[j, s - s0, mu] = 1.0
        carry = jax.tree_util.tree_map(lambda c: c[s0], carries)  # noqa: B023
        dF, dK = _jacobian_chunk(act, P, names, act.name in KINKED, consts, u, r, dt[s0:], carry, jnp.asarray(tang),
                                 step)
        rows = [s * P + mu for s, mu in part]
        JF[rows, s0:] = np.asarray(dF)[: len(part)]
        for k, v in dK.items():
            JK.setdefault(k, np.zeros((T1 * P, T1) + v.shape[2:]))[rows, s0:] = np.asarray(v)[: len(part)]
    return JF.reshape(T1 * P, -1).T, {k: v.reshape(T1 * P, -1).T for k, v in JK.items()}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _samples(act, P, names, SK, consts, u, r, dt):
    """Per-path readout samples (S, T1, Pa); the NTK's path mean (T1, P, P) and the variance over paths of its
    diagonal samples (T1, P); and, on the first ``SK`` paths, kernel samples name -> (SK, T1, P, P) for ``names``
    (none are formed when ``names`` is empty)."""
    F, phi, g = jax.vmap(functools.partial(_site, act, consts), in_axes=(0, 0, None))(u, r, dt)
    S = u.shape[0]
    p, q = phi[:, :, :P], g[:, :, :P]
    mean = _kernels(consts, jnp.einsum("stp,stq->tpq", p, p) / S, jnp.einsum("stp,stq->tpq", q, q) / S, ("ntk",))
    kx = jnp.diagonal(consts["Kx"])[:P]
    diag = consts["kappa"][0] * q * q * kx + consts["kappa"][1] * p * p  # (S, T1, P): the NTK's diagonal per path
    samples = jax.vmap(functools.partial(_kernel_samples, consts, P=P, names=names))(phi[:SK], g[:SK]) if names else {}
    return F, mean["ntk"], diag.var(0), samples


@functools.partial(jax.jit, static_argnums=(0,))
def _mean_shift_drive(act, consts, u, r, dt, omega, omega_other):
    """The path mean (T1, Pa) of ``J_i omega_i + 1/2 H_i[omega_j, omega_j]``: each path's derivative along its own
    error response plus half its second derivative along another path's response. Both are the second Taylor
    coefficient of one curve, ``F_i(dt + e omega_j + e^2 omega_i) = F_i + e J_i omega_j
    + e^2 (J_i omega_i + 1/2 H_i[omega_j, omega_j]) + O(e^3)``, so one nested ``jvp`` in ``e`` gives them."""

    def one(ui, ri, wi, wj):
        curve = lambda e: _site(act, consts, ui, ri, dt + e * wj + e * e * wi)[0]  # noqa: E731
        speed = lambda e: jax.jvp(curve, (e,), (jnp.ones_like(e),))[1]  # noqa: E731
        zero = jnp.zeros((), dt.dtype)
        return jax.jvp(speed, (zero,), (jnp.ones_like(zero),))[1] / 2

    return jax.vmap(one)(u, r, omega, omega_other).mean(0)


def two_layer(act, limit, *, Kx_all, y_all, train_mask, lr, f_inf, u, r, kernels=(), jacobian_samples=None,
              chunk: int | None = None, dtype="float64", progress: bool = False) -> WidthCorrections:
    """The O(1/N) coefficients of a two-layer network (module docstring, docs/theory/finite_width.md).

    Args:
        act: the activation (:mod:`limits.activations`; its derivative must be differentiable).
        limit: the table's :class:`~limits.parametrization.DMFTLimit` (one field).
        Kx_all: (Pa, Pa) input kernel; y_all: (Pa,) targets (0 on test points); train_mask: (Pa,) 1 on train points.
        lr: the learning rate.
        f_inf: (T1, Pa) the infinite-width predictions (the point the expansion is about).
        u: (S, Pa) first-layer sources ``~ N(0, Kx)``; r: (S,) readout sources ``~ N(0, 1)``.
        kernels: names from ``("ntk", "phi1", "g1")`` whose entry variances to compute.
        jacobian_samples: the first this many paths give the sensitivities ``J = d<F>/dDt`` (a smooth average,
            needing fewer paths than the covariances; None: :data:`JACOBIAN_SAMPLES`, at most ``S``).
        chunk: forward-mode directions per compiled batch (None: by memory, ``chunk S_J Pa <= 2^24``).
        progress: a progress bar over the chunks.

    Returns:
        :class:`WidthCorrections`.
    """
    mask = np.asarray(train_mask) > 0
    if not np.all(mask[: int(mask.sum())]):
        raise ValueError("the train points must come first in Kx_all")
    P, (T1, Pa), S = int(mask.sum()), np.shape(f_inf), np.shape(u)[0]
    default = JACOBIAN_SAMPLES_KINKED if act.name in KINKED else JACOBIAN_SAMPLES
    SJ = min(S, default if jacobian_samples is None else int(jacobian_samples))
    dt = (np.asarray(y_all)[None, :] - np.asarray(f_inf)) * mask[None, :] / P
    chunk = chunk or int(max(1, min(T1 * P, 2**24 // (SJ * Pa))))
    cast = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    with precision(dtype):
        consts = {"c": cast(limit.gamma * lr), "kappa": cast(limit.kappa), "b": cast(limit.b), "Kx": cast(Kx_all),
                  "gamma": cast(limit.gamma)}
        u, r, dtj = cast(u), cast(np.reshape(r, -1)), cast(dt)
        JF, JK = _jacobians(act, P, tuple(kernels), consts, u[:SJ], r[:SJ], dtj, chunk, progress)
        SK = min(S, max(1024, KERNEL_ENTRIES // (T1 * P * P)))  # kernel samples are (S, T1, P, P): a path prefix
        F, ntk_mean, ntk_diag_var, ks = _samples(act, P, tuple(kernels), SK, consts, u, r, dtj)
        tr = np.tile(mask, T1)  # train coordinates of the time-major grid
        Y_tr, Y, A = _responses(np.array(F).reshape(S, -1), JF, tr, P)
        mean = _mean_shift(act, consts, u, r, dtj, Y.reshape(S, T1, Pa), A, JF, tr, P)
    Yt = Y.reshape(S, T1, Pa)
    kvar = {}
    for name in kernels:
        k = np.asarray(ks[name]).reshape(SK, -1)
        dk = k - k.mean(0) - Y_tr[:SK] @ JK[name].T / P
        kvar[name] = (dk**2).mean(0).reshape(T1, P, P)
    ntk_mean = np.asarray(ntk_mean)
    spread = np.sqrt(np.asarray(ntk_diag_var)) / np.abs(np.diagonal(ntk_mean, axis1=1, axis2=2))
    Yt = Yt.transpose(1, 0, 2)  # (T1, S, Pa): one batched product for the equal-time covariances
    return WidthCorrections(cov=np.matmul(Yt.transpose(0, 2, 1), Yt) / S, mean_shift=mean.reshape(T1, Pa),
                            ntk_spread=spread, kernel_var=kvar, samples=S, ntk_mean=ntk_mean)


def _responses(F, JF, tr, P):
    """Per-path first-order responses of the predictions. ``F`` (S, n_a) readout samples, ``JF`` (n_a, n_tr),
    ``tr`` (n_a,) train coordinates. Returns ``(Y_tr (S, n_tr), Y (S, n_a), A)``: ``Y_tr = A^{-1} (F - <F>)_tr``
    with ``A = I + J_tr,tr / P`` (unit lower triangular in time-major order), test rows ``eps - J Y_tr / P``."""
    F = F - F.mean(0)
    A = np.eye(int(tr.sum())) + JF[tr] / P
    Y_tr = _solve_lower(A, F[:, tr].T).T
    Y = F
    Y[:, tr] = Y_tr
    if not tr.all():
        Y[:, ~tr] -= Y_tr @ JF[~tr].T / P
    return Y_tr, Y, A


def _mean_shift(act, consts, u, r, dt, Y, A, JF, tr, P):
    """``N (E f - f_inf)`` (n_a,): ``A mu_tr = (E_i J_i omega_i + 1/2 E H[omega, omega])_tr``, test rows
    ``drive - J mu_tr / P``, with ``omega_i = -Y_i / P`` on the train points (module docstring)."""
    S, T1, Pa = Y.shape
    omega = np.zeros((S, T1, Pa))
    omega[:, :, :P] = -Y[:, :, :P] / P
    if act.name in KINKED:
        drive = _kinked_drive(act, consts, u, r, dt, omega)
    else:
        other = np.roll(omega, S // 2 + 1, axis=0)  # another path (never the antithetic partner)
        drive = np.asarray(_mean_shift_drive(act, consts, u, r, dt, jnp.asarray(omega, u.dtype),
                                             jnp.asarray(other, u.dtype))).reshape(-1)
    mu_tr = _solve_lower(A, drive[tr][:, None])[:, 0]
    mean = drive - JF @ mu_tr / P
    mean[tr] = mu_tr
    return mean


@functools.partial(jax.jit, static_argnums=(0,))
def _own_response_differences(act, consts, u, r, dt, omega, step):
    """Path mean (T1, Pa) of ``J_i omega_i`` by central differences along each path's own response, with the step
    ``e_i max|omega_i| = step`` (:data:`KINKED` activations)."""

    def one(ui, ri, wi):
        e = step / jnp.maximum(jnp.max(jnp.abs(wi)), 1e-300)
        return _central_difference(lambda d: _site(act, consts, ui, ri, d)[0], dt, wi, e)

    return jax.vmap(one)(u, r, omega).mean(0)


HESSIAN_TRACE = 0.999
"""Share of ``tr Cov(omega)`` whose eigen-directions carry the Hessian term of :data:`KINKED` activations."""


def _kinked_drive(act, consts, u, r, dt, omega):
    """The mean-shift drive ``E_i[J_i omega_i] + 1/2 <H> : Cov(omega)`` (n_a,) for :data:`KINKED` activations, by
    differences of path means on common paths: the first term along each path's own response
    (:func:`_own_response_differences`), the second as the trace of the path mean's Hessian against the response
    covariance, ``sum_k lambda_k <H>[v_k, v_k]`` over its top eigen-directions (:data:`HESSIAN_TRACE` of the trace),
    each a second central difference. (For smooth activations the per-path pairing of :func:`_mean_shift_drive` is
    cheaper; for ReLU its second differences of single paths are dominated by the kink jumps.)"""
    S, T1, Pa = omega.shape
    step = _difference_step(consts)
    drive = np.asarray(_own_response_differences(act, consts, u, r, dt, jnp.asarray(omega, u.dtype),
                                                 jnp.asarray(step, u.dtype)))
    flat = omega.reshape(S, -1)
    lam, V = np.linalg.eigh(flat.T @ flat / S)
    lam, V = lam[::-1], V[:, ::-1]
    k = int(np.searchsorted(np.cumsum(lam) / max(lam.sum(), 1e-300), HESSIAN_TRACE) + 1)
    mean = functools.partial(_path_mean_readout, act, consts, u, r)
    center = np.asarray(mean(dt))
    for lam_k, v in zip(lam[:k], V[:, :k].T):
        e = step / np.abs(v).max()
        v = jnp.asarray(v.reshape(T1, Pa), u.dtype)
        second = (np.asarray(mean(dt + e * v)) + np.asarray(mean(dt - e * v)) - 2 * center) / e**2
        drive = drive + 0.5 * lam_k * second
    return drive.reshape(-1)


@functools.partial(jax.jit, static_argnums=(0,))
def _path_mean_readout(act, consts, u, r, dt):
    """``<F>`` (T1, Pa) over the paths ``u``, ``r`` driven by ``dt``."""
    return _means(act, 0, consts, u, r, dt, names=())[0]


def _solve_lower(A, B):
    """``A^{-1} B`` for a lower-triangular ``A``."""
    import scipy.linalg

    return scipy.linalg.solve_triangular(A, B, lower=True, check_finite=False)


def not_covered(limit, act, y=None, grid: int = 0) -> str | None:
    """Why the width-N theory does not cover this problem (None when it does): it is derived for two-layer MLPs
    (docs/theory/finite_width.md sections 1-4; pathwise sensitivities for a differentiable ``phi'``, central
    differences for ReLU), for linear MLPs of any depth (section 5), the latter with targets ``y`` that are not
    all zero, and for deeper MLPs with a smooth activation on a grid of ``grid = (steps+1) x points`` at most
    :data:`~limits.dmft.finite_width_deep.MAX_GRID` (section 6)."""
    from .finite_width_deep import MAX_GRID

    if limit.layer_time is not None:
        return "the layer-time limit (depth=math.inf) has no width-N theory here"
    if limit.residual:
        return "residual networks are not covered by the width-N theory yet"
    if limit.fields > 1 and act.name in KINKED:
        return (f"the width-N theory of MLPs of depth {limit.fields} needs second derivatives of the activation; "
                f"{act.name!r} has a kink (covered at depth 1 only; docs/theory/finite_width.md section 6)")
    if limit.fields > 1 and act.name != "linear" and grid > MAX_GRID:
        return (f"the deep nonlinear width-N theory costs O(n^5) in the grid n = (steps+1) x points = {grid}, "
                f"above limits.dmft.finite_width_deep.MAX_GRID = {MAX_GRID} (hours on a CPU); use fewer steps or "
                f"points, or raise MAX_GRID to run it anyway (docs/theory/finite_width.md section 6)")
    if act.name == "linear" and y is not None and np.max(np.abs(np.asarray(y)), initial=0.0) < TINY_TARGETS:
        return (f"the train targets are zero or tiny (max |y| < {TINY_TARGETS:g}): the limit barely moves, and the "
                "directions the errors reveal, on which the linear theory is built (docs/theory/finite_width.md "
                "section 5), vanish at infinite width but not at width N")
    if act.name not in SMOOTH + KINKED and act.name != "custom":  # a built-in not yet sorted into either class
        return (f"activation {act.name!r} is not classified for the width-N theory (pathwise sensitivities: "
                f"{', '.join(SMOOTH)}; central differences: {', '.join(KINKED)})")
    return None


def at_width(traj, width: int, *, limit, act, problem, lr: float, seed: int, record, y_test, qmc=True,
             antithetic=True, progress=False):
    """``traj`` (the infinite-width solution) turned into the width-``width`` prediction to O(1/N).

    ``predictions`` (and ``test_predictions``) become ``E f_N = f_inf + mean_shift / N``; ``prediction_cov``,
    ``test_prediction_cov`` the covariances ``Sigma / N``; ``loss`` the expected loss
    ``(|E f - y|^2 + tr Cov f) / (2P)`` (``test_loss`` likewise); ``loss_std`` the first-order spread
    ``sqrt((f - y)^T Cov f (f - y)) / P``; ``ntk_var`` and ``kernel_vars`` with ``record`` ``"ntk"`` /
    ``"kernels"``. ``ntk`` and ``kernels`` stay the infinite-width means (their O(1/N) shift is not computed).
    Two-layer MLPs use :func:`two_layer` (Monte Carlo single-site paths), linear MLPs of any depth
    :func:`~limits.dmft.finite_width_linear.deep_linear` (exact, no sampling), deeper nonlinear ones
    :func:`~limits.dmft.finite_width_deep.deep_nonlinear` (covariances only). Problems that :func:`not_covered`
    names keep the infinite-width answer,
    with a ``RuntimeWarning``. ``meta["finite_width"]`` says which corrections are included."""
    from . import monte_carlo as mc

    T1, Pa = traj.steps + 1, problem.Kx_all.shape[0]
    why = not_covered(limit, act, problem.y, grid=T1 * Pa)
    if why is not None:
        warnings.warn(f"width={width}: {why}; the result is the infinite-width DMFT of this width's table constants, "
                      f"without finite-width fluctuations or mean shift (meta['finite_width'])", RuntimeWarning,
                      stacklevel=3)
        traj.meta["finite_width"] = {"corrections": (), "not_covered": why}
        return traj
    P, K = problem.P, limit.fields
    kernels = (("ntk",) if "ntk" in record else ()) + (
        tuple(f"{q}{k}" for k in range(1, K + 1) for q in ("phi", "g")) if "kernels" in record else ())
    data = dict(Kx_all=problem.Kx_all, y_all=problem.y_all, train_mask=problem.mask, lr=lr, kernels=kernels)
    f_inf = np.concatenate([traj.predictions] + ([traj.test_predictions] if Pa > P else []), axis=1)
    if K > 1 and act.name != "linear":
        return _deep_nonlinear(traj, width, limit=limit, act=act, problem=problem, lr=lr, seed=seed, y_test=y_test,
                               qmc=qmc, antithetic=antithetic, f_inf=f_inf, progress=progress)
    if act.name == "linear":
        from .finite_width_linear import deep_linear

        res = deep_linear(limit, **data, steps=T1 - 1, progress=progress)
        method = ("exact: delta method on the Gaussian-conditioning map of the linear network "
                  "(docs/theory/finite_width.md section 5)")
    else:
        src = mc.mlp_sources(SAMPLES, 1, T1, Pa, seed, qmc, antithetic=antithetic)
        res = two_layer(act, limit, **data, f_inf=f_inf, u=np.asarray(src["u1"]) @ mc._input_factor(problem.Kx_all).T,
                        r=src["r_top"], progress=progress)
        method = "Monte Carlo single-site paths (docs/theory/finite_width.md sections 1-4)" + (
            "; sensitivities by central differences on common paths (ReLU)" if act.name in KINKED else "")
    _warn_if_at_the_edge_of_stability(res.ntk_mean, lr, P)
    return _assemble(traj, res, f_inf, width, P, y=problem.y, y_test=y_test, method=method)


def _deep_nonlinear(traj, width, *, limit, act, problem, lr, seed, y_test, qmc, antithetic, f_inf, progress):
    """The width-N trajectory of a nonlinear MLP of depth >= 2 (:mod:`limits.dmft.finite_width_deep`): the
    covariances, not the mean shift (not derived there) nor the kernels' variances (``meta["finite_width"]`` says
    so)."""
    from . import monte_carlo as mc
    from .finite_width_deep import deep_nonlinear, layer_sources

    (T1, Pa), K = f_inf.shape, limit.fields
    sources = layer_sources(mc.mlp_sources(SAMPLES, K, T1, Pa, seed, qmc, antithetic=antithetic), problem.Kx_all, K)
    cov, spread = deep_nonlinear(act, limit, Kx_all=problem.Kx_all, y_all=problem.y_all, train_mask=problem.mask,
                                 lr=lr, sources=sources, progress=progress)
    c = cov.reshape(T1, Pa, T1, Pa)
    res = WidthCorrections(cov=np.stack([c[t, :, t, :] for t in range(T1)]), mean_shift=None, kernel_var={},
                           ntk_spread=spread, samples=SAMPLES)
    method = ("Monte Carlo single-site paths of every layer; delta method with the MSR action's covariances "
              "(docs/theory/finite_width.md section 6)")
    traj = _assemble(traj, res, f_inf, width, problem.P, y=problem.y, y_test=y_test, method=method)
    traj.meta["finite_width"]["kernel_vars"] = "not computed for deep nonlinear networks (ntk_var stays None)"
    return traj


def _assemble(traj, res: WidthCorrections, f_inf, N: int, P: int, *, y, y_test, method: str):
    """The width-N :class:`~limits.Trajectory` from the infinite-width one, its predictions ``f_inf`` (T1, Pa) on the
    train then test points, and the O(1/N) coefficients (``res.mean_shift`` None: the mean stays ``f_inf``, and
    ``meta`` says so)."""
    shifted = res.mean_shift is not None
    mean = f_inf + res.mean_shift / N if shifted else np.asarray(f_inf)
    cov = res.cov / N
    pred, C = mean[:, :P], cov[:, :P, :P]
    err = pred - y
    changes = dict(predictions=pred, prediction_cov=C,
                   loss=0.5 * (np.sum(err**2, axis=1) + np.trace(C, axis1=1, axis2=2)) / P,
                   loss_std=np.sqrt(np.maximum(np.einsum("tp,tpq,tq->t", err, C, err), 0.0)) / P,
                   ntk_var=res.kernel_var["ntk"] / N if "ntk" in res.kernel_var else None,
                   kernel_vars={k: v / N for k, v in res.kernel_var.items() if k != "ntk"})
    if traj.test_predictions is not None:
        Ct = cov[:, P:, P:]
        changes.update(test_predictions=mean[:, P:], test_prediction_cov=Ct)
        if y_test is not None:
            Q = Ct.shape[1]
            changes["test_loss"] = 0.5 * (np.sum((mean[:, P:] - y_test) ** 2, axis=1) + np.trace(Ct, axis1=1, axis2=2)) / Q
    _warn_if_meaningless(C, y, N, res.ntk_spread)
    traj.meta["finite_width"] = {"corrections": ("covariance",) + (("mean_shift",) if shifted else ())
                                 + ("variance_in_loss",), "method": method, "samples": res.samples,
                                 "kernel_means": "infinite width (O(1/N) shift not included)"}
    if not shifted:
        traj.meta["finite_width"]["mean"] = ("infinite width: the O(1/N) mean shift is not derived for this "
                                             "architecture (docs/theory/finite_width.md section 6)")
    return traj.replace(**changes)


TINY_TARGETS = 1e-6
"""Largest ``|y|`` below which the linear width-N theory reports the targets as not covered (its rank decisions
resolve innovations down to ``RANK_TOL max |y|`` of the fields, about 1e-12 there)."""

EDGE_OF_STABILITY = 1.9
"""``lr lambda_max(NTK) / P`` from which gradient descent counts as at the edge of stability (2 is the threshold)."""


def _warn_if_at_the_edge_of_stability(ntk, lr: float, P: int) -> None:
    """Warn when the infinite-width dynamics run at the edge of stability, ``max_t lr lambda_max(NTK(t)) / P >=``
    :data:`EDGE_OF_STABILITY`: there the network-to-network spread of the oscillating mode's multiplier makes the
    response far from linear, and ``N Cov`` approaches its O(1/N) limit only at very large N
    (docs/theory/finite_width.md section 5)."""
    if ntk is None:
        return
    top = lr * np.linalg.eigvalsh(np.asarray(ntk))[:, -1] / P
    t = int(np.argmax(top))
    if top[t] >= EDGE_OF_STABILITY:
        warnings.warn(f"gradient descent runs at the edge of stability (lr lambda_max(NTK)/P = {top[t]:.2f} at step "
                      f"{t}): there the O(1/N) theory holds only at very large widths (10^4 and more); use a "
                      f"smaller lr, or simulate the width with limits.simulate", RuntimeWarning, stacklevel=4)


def _warn_if_meaningless(C, y, N: int, ntk_spread) -> None:
    """Warn when the O(1/N) expansion is not small: the NTK's relative spread over initializations
    (``ntk_spread / sqrt(N)``) above 1/2, or a predicted variance of the predictions above the mean squared target."""

    rel = float(np.max(ntk_spread)) / math.sqrt(N)
    spread = float(np.max(np.trace(C, axis1=1, axis2=2)) / C.shape[1])
    scale = float(np.mean(np.asarray(y) ** 2))
    if rel > 0.5 or spread > scale:
        warnings.warn(f"width={N}: the O(1/N) theory is not meaningful at this width: the NTK fluctuates by {rel:.0%} of "
                      f"its mean over initializations and the predictions' variance is {spread:.3g} per point (mean "
                      f"squared target {scale:.3g}); use a larger width, or simulate it with limits.simulate",
                      RuntimeWarning, stacklevel=5)
