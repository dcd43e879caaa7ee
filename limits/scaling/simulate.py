r"""Finite-width ensembles of the scaling models: the networks themselves, trained step by step.

Each seed draws :math:`A(0)` (N, M) (and, with ``data=P``, the samples :math:`\psi_\mu = \Lambda^{1/2} z_\mu`) and
runs gradient descent exactly, in the N-dimensional coordinates that the models never leave:

- :math:`B = A(0)\Lambda^{1/2}`, :math:`Q = B B^\top/N` (N, N), :math:`b = B u/\sqrt N` (:math:`u` the whitened
  target, :math:`|u| = 1`); with data, :math:`F = Z B^\top/\sqrt N` (P, N) and :math:`y = Z u`.
- random features: the readout :math:`p = w`; two-layer: :math:`A = C A(0)` with :math:`C(0) = I` (the projected
  update keeps the rows of A in the row space of :math:`A(0)`) and :math:`p = C^\top w/(\gamma_0\sqrt N)`, so
  :math:`f = p \cdot A(0)\psi/\sqrt N` in both.
- the gradient signal :math:`a = A(0)\Lambda(w^*-\beta)/\sqrt N = b - Qp` (population) or
  :math:`F^\top(y - Fp)/P` (data).
- steps: random features :math:`p \leftarrow p + \eta a`; two-layer (simultaneously)
  :math:`w \leftarrow w + \eta\gamma_0\sqrt N\, C a`, :math:`C \leftarrow C + \eta\gamma_0\, w a^\top/\sqrt N`.
- population loss :math:`\tfrac12(1 - 2 b^\top p + p^\top Q p)`.

These are the updates of the full (N, M) networks rewritten, not approximations (``tests/test_scaling.py``
checks them against the literal networks). Cost: :math:`O(N M)` per seed to set up, then :math:`O(N^2)` (or
:math:`O(NP)`) per step.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import checks
from ..trajectory import Trajectory
from .problem import Problem, problem as make_problem

__all__ = ["simulate"]

_CHUNK = 1000


def _draw(prob: Problem, seed: int, index: int, block: int = 4096):
    """One seed's (Q, b, F, y) (F, y None without data), float64, accumulated over blocks of ``block`` modes so that
    no (N, M) matrix is held at once."""
    rng = np.random.default_rng([seed, index])
    N, lam, u = int(prob.width), prob.task.eigenvalues, prob.task.whitened_target
    P = None if math.isinf(prob.data) else int(prob.data)
    Q, b = np.zeros((N, N)), np.zeros(N)
    F, y = (None, None) if P is None else (np.zeros((P, N)), np.zeros(P))
    data_rng = np.random.default_rng([seed, index, 1])
    for start in range(0, lam.size, block):
        part = slice(start, min(start + block, lam.size))
        B = rng.standard_normal((N, part.stop - start)) * np.sqrt(lam[part])
        Q += B @ B.T / N
        b += B @ u[part] / math.sqrt(N)
        if P is not None:
            Z = data_rng.standard_normal((P, part.stop - start))
            F += Z @ B.T / math.sqrt(N)
            y += Z @ u[part]
    return Q, b, F, y


@functools.cache
def _runner(rich: bool, with_data: bool, length: int):
    """The jitted, seed-vmapped ``run(state, consts, lr, gamma0, width, data)`` of ``length`` steps (see the module
    doc); built once per model kind, data mode and chunk length (the scalars are traced)."""
    import jax
    import jax.numpy as jnp

    def step(state, consts, lr, gamma0, root_n, P):
        p, w, C = state
        Q, b, F, y = consts
        a = F.T @ (y - F @ p) / P if with_data else b - Q @ p
        if rich:
            w, C = w + lr * gamma0 * root_n * (C @ a), C + lr * gamma0 * jnp.outer(w, a) / root_n
            p = C.T @ w / (gamma0 * root_n)
        else:
            p = p + lr * a
        return (p, w, C), 0.5 * (1.0 - 2.0 * jnp.dot(b, p) + jnp.dot(p, Q @ p))

    def chunk(state, consts, lr, gamma0, root_n, P):
        body = functools.partial(step, consts=consts, lr=lr, gamma0=gamma0, root_n=root_n, P=P)
        return jax.lax.scan(lambda carry, _: body(carry), state, None, length=length)

    return jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None, None, None)))


def simulate(model, *, alpha, beta, width, data=None, gamma0=None, lr=0.5, steps=1000, modes=None, seeds=8,
             seed=0, progress=True) -> Trajectory:
    """Train ``seeds`` networks of the scaling model (see :mod:`limits.scaling.problem`) at finite width.

    Args:
        model, alpha, beta, data, gamma0, lr, steps, modes: as :func:`limits.scaling.solve`.
        width: the number of features N, a positive integer.
        seeds: ensemble size (>= 1); ``seed``: base seed (seed ``i`` of the ensemble draws from ``[seed, i]``).
        progress: a tqdm bar over chunks of 1000 steps.

    Returns:
        :class:`~limits.Trajectory`: ``loss`` the ensemble mean of the population loss (steps+1,), ``losses``
        (seeds, steps+1), ``loss_stderr``; ``predictions`` is empty (steps+1, 0) (the population loss needs no
        train points); ``meta`` describes the run (``solver="scaling.simulate"``).
    """
    import jax
    from tqdm.auto import tqdm

    prob = make_problem(model, alpha=alpha, beta=beta, width=width, data=data, gamma0=gamma0, lr=lr, steps=steps,
                        modes=modes)
    if math.isinf(prob.width):
        raise ValueError("simulate needs a finite width (an integer N); for N = inf use limits.scaling.solve")
    seeds, seed = checks.integer(seeds, "seeds", 1), checks.seed(seed)
    with_data = math.isfinite(prob.data)
    N = int(prob.width)
    with jax.enable_x64(True):
        draws = [_draw(prob, seed, i) for i in range(seeds)]
        consts = tuple(np.stack([d[j] for d in draws]) if d0 is not None else np.zeros((seeds, 1))
                       for j, d0 in enumerate(draws[0]))
        eye = np.broadcast_to(np.eye(N), (seeds, N, N)) if prob.rich else np.zeros((seeds, 1, 1))
        state = (np.zeros((seeds, N)), np.zeros((seeds, N)), np.array(eye))
        length = min(_CHUNK, prob.steps)
        scalars = (prob.lr, prob.gamma0, math.sqrt(N), prob.data if with_data else 1.0)
        compiled = _runner(prob.rich, with_data, length)

        def run(state, consts):
            return compiled(state, consts, *scalars)
        first = np.stack([0.5 * np.ones(seeds)], axis=1)
        out, chunks = [first], math.ceil(prob.steps / length)
        with tqdm(total=chunks, desc=f"{prob.model} (N = {N})", disable=not progress or chunks < 3,
                  leave=False) as bar:
            for _ in range(chunks):
                state, losses = run(state, consts)
                out.append(np.asarray(losses))
                bar.update(1)
    losses = np.concatenate(out, axis=1)[:, : prob.steps + 1]
    checks.finite_result(losses, "the population loss", hint=f"gradient descent diverged: lower lr={prob.lr}")
    return _trajectory(prob, losses, seed)


def _trajectory(prob: Problem, losses: np.ndarray, seed: int) -> Trajectory:
    seeds = losses.shape[0]
    stderr = losses.std(axis=0, ddof=1) / math.sqrt(seeds) if seeds > 1 else np.full(losses.shape[1], np.nan)
    meta = {"solver": "scaling.simulate", **prob.meta(), "seeds": seeds, "seed": seed}
    return Trajectory(loss=losses.mean(axis=0), predictions=np.zeros((losses.shape[1], 0)), losses=losses,
                      loss_stderr=stderr, meta=meta)
