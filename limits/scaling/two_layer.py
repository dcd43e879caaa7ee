r"""The two-layer linear model with feature learning at infinite width, as a closed recursion.

With :math:`\beta = A^\top w/(\gamma_0 N)` (the effective linear predictor, :math:`f = \beta\cdot\psi`),
:math:`K_A = A^\top A/N` (M, M), :math:`s = |w|^2/N`, :math:`g = \Lambda(w^* - \beta)` and
:math:`K_0 = A(0)^\top A(0)/N`, one step of gradient descent of :mod:`limits.scaling.problem`'s
``"two_layer_linear"`` (learning rate :math:`\eta`) is exactly, at any width,

.. math::
    \beta' &= \beta + \eta\,(s K_0 + K_A) g + \eta^2\gamma_0^2 (\beta^\top g)\, K_0 g, \\
    K_A' &= K_A + \eta\gamma_0^2 (K_0 g \beta^\top + \beta g^\top K_0) + \eta^2\gamma_0^2\, s\, K_0 g g^\top K_0, \\
    s' &= s + 2\eta\gamma_0^2\, \beta^\top g + \eta^2\gamma_0^2\, g^\top K_A g.

(from :math:`w' = w + \eta\gamma_0 A g`, :math:`A' = A + \eta\gamma_0 w g^\top K_0`). Only the initial state is
random: :math:`K_A(0) = K_0`, :math:`\beta(0) = 0`, :math:`s(0) = 0` (:math:`w(0) = 0`). As :math:`N \to \infty`
at fixed M, :math:`K_0 \to I`, which makes the recursion deterministic: this is the solved model. The loss is
:math:`\tfrac12 (w^*-\beta)^\top\Lambda(w^*-\beta)`. At :math:`\gamma_0 = 0` it is the random-feature model
at infinite width. Cost: :math:`O(M^2)` per step.
"""

from __future__ import annotations

import math

import numpy as np

from .problem import Problem

__all__ = ["infinite_width_loss"]

_CHUNK = 1000


def _chunk_runner(lam, target, gamma0: float, lr: float, length: int):
    import jax
    import jax.numpy as jnp

    g2 = gamma0**2

    def step(state, _):
        beta, K, s = state
        v = target - beta
        g = lam * v
        loss = 0.5 * jnp.dot(v, g)
        bg, Kg = jnp.dot(beta, g), K @ g
        beta_new = beta + lr * (s * g + Kg) + lr**2 * g2 * bg * g
        K_new = K + lr * g2 * (jnp.outer(g, beta) + jnp.outer(beta, g)) + lr**2 * g2 * s * jnp.outer(g, g)
        s_new = s + 2.0 * lr * g2 * bg + lr**2 * g2 * jnp.dot(g, Kg)
        return (beta_new, K_new, s_new), loss

    @jax.jit
    def run(state):
        return jax.lax.scan(step, state, None, length=length)

    return run


def infinite_width_loss(problem: Problem, *, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Population loss of the two-layer linear model at N = ∞, shape (steps + 1,), and diagnostics
    (``kernel_growth``: the final :math:`s + \\lambda_{\\max}(K_A)` relative to its initial value 1).

    Raises ``ValueError`` if gradient descent diverges (the kernel grows with feature learning, so a learning rate
    that is stable at the start can become unstable; lower lr or gamma0)."""
    import jax

    from tqdm.auto import tqdm

    lam, target = problem.task.eigenvalues, problem.task.target
    with jax.enable_x64(True):
        length = min(_CHUNK, problem.steps + 1)
        run = _chunk_runner(lam, target, problem.gamma0, problem.lr, length)
        M = lam.size
        state = (np.zeros(M), np.eye(M), np.float64(0.0))
        losses, done = [], 0
        chunks = math.ceil((problem.steps + 1) / length)
        with tqdm(total=chunks, desc="two-layer linear (N = inf)", disable=not progress or chunks < 3,
                  leave=False) as bar:
            while done < problem.steps + 1:
                state, chunk = run(state)
                chunk = np.asarray(chunk)
                if not np.all(np.isfinite(chunk)) or chunk.max() > 1e3:
                    bad = done + int(np.argmax(~np.isfinite(chunk) | (chunk > 1e3)))
                    raise ValueError(f"gradient descent diverged near step {bad} (feature learning grew the kernel "
                                     f"past 2/lr); lower lr={problem.lr} or gamma0={problem.gamma0}")
                losses.append(chunk)
                done += length
                bar.update(1)
        _, K, s = state
        growth = float(s) + float(np.linalg.eigvalsh(np.asarray(K))[-1])
    return np.concatenate(losses)[: problem.steps + 1], {"kernel_growth": growth}
