r"""The two-layer linear model with feature learning at infinite width, as a closed recursion.

With :math:`\beta = A^\top w/(\gamma_0 N)` (the effective linear predictor, :math:`f = \beta\cdot\psi`),
:math:`K_A = A^\top A/N` (M, M), :math:`s = |w|^2/N`, :math:`g = \Lambda(w^* - \beta)` and
:math:`K_0 = A(0)^\top A(0)/N`, one step of gradient descent of :mod:`limits.scaling.problem`'s
``"two_layer_linear"`` (learning rate :math:`\eta`) is exactly, at any width,

.. math::
    \beta' &= \beta + \eta\,(s K_0 + K_A) g + \eta^2\gamma_0^2 (\beta^\top g)\, K_0 g, \\
    K_A' &= K_A + \eta\gamma_0^2 (K_0 g \beta^\top + \beta g^\top K_0) + \eta^2\gamma_0^2\, s\, K_0 g g^\top K_0, \\
    s' &= s + 2\eta\gamma_0^2\, \beta^\top g + \eta^2\gamma_0^2\, g^\top K_A g

(from :math:`w' = w + \eta\gamma_0 A g`, :math:`A' = A + \eta\gamma_0 w g^\top K_0`). Only the initial state is
random: :math:`K_A(0) = K_0`, :math:`\beta(0) = 0`, :math:`s(0) = 0` (:math:`w(0) = 0`). As :math:`N \to \infty`
at fixed M, :math:`K_0 \to I`, which makes the recursion deterministic: this is the solved model. The loss is
:math:`\tfrac12 (w^*-\beta)^\top\Lambda(w^*-\beta)`. At :math:`\gamma_0 = 0` it is the random-feature model
at infinite width.

**Low-rank kernel.** Every update of :math:`K_A` is a rank-2 matrix in the span of :math:`g` and :math:`\beta`, and
these vectors are smooth functions of :math:`\lambda_k` times :math:`w^*_k`, so :math:`U = K_A - I` has a small
numerical rank (about 15 at :math:`10^{-12}` after 3000 steps for :math:`\alpha = 2, \beta = 0.5`). It is kept as
:math:`U = V S V^\top + H C H^\top`: an orthonormal basis ``V`` (M, r) with a symmetric core ``S`` (r, r), and a
buffer ``H`` (M, 2k) of the last ``k`` steps' :math:`(g, \beta)` pairs with their coefficients
:math:`\begin{pmatrix} \eta^2\gamma_0^2 s & \eta\gamma_0^2 \\ \eta\gamma_0^2 & 0 \end{pmatrix}`. Every ``k`` steps
the buffer is folded into ``(V, S)`` (QR of ``[V, H]``, eigendecomposition of the (r + 2k)-square core) keeping
the ``r`` largest eigenvalues in magnitude; the largest discarded one, relative to the largest kept, is reported as
``diagnostics["kernel_truncation"]`` (an error is raised above 1e-8). ``diagnostics["sharpness"]`` is lr times the
largest eigenvalue of :math:`(sI + K_A)\Lambda` at the end; above 2, gradient descent has reached the edge of
stability and a warning says so. Cost :math:`O(M(r + 2k)^2/k + M(r + 2k))` per
step instead of :math:`O(M^2)`.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from .problem import Problem

__all__ = ["infinite_width_loss"]

_RANK = 48
_BUFFER = 16
_CHUNKS = 64  # folds per compiled call: 1024 steps
_TRUNCATION_TOLERANCE = 1e-8


@functools.cache
def _runner():
    """The jitted ``run(state, lam, target, gamma0, lr)`` advancing ``(beta, s, V, S, worst)`` by
    ``_CHUNKS * _BUFFER`` steps; returns the new state and the losses before each step. Built once: every argument
    is traced, so one compilation serves every problem with the same number of modes."""
    import jax
    import jax.numpy as jnp

    k = _BUFFER

    def step(carry, j, lam, target, lr, a):
        beta, s, V, S, H, C = carry
        v = target - beta
        g = lam * v
        Kg = g + V @ (S @ (V.T @ g)) + H @ (C @ (H.T @ g))
        bg = jnp.dot(beta, g)
        beta_new = beta + lr * (s * g + Kg) + lr * a * bg * g
        s_new = s + 2.0 * a * bg + lr * a * jnp.dot(g, Kg)
        H = jax.lax.dynamic_update_slice(H, jnp.stack([g, beta], axis=1), (0, 2 * j))
        block = jnp.array([[lr * a * s, a], [a, 0.0]])
        C = jax.lax.dynamic_update_slice(C, block, (2 * j, 2 * j))
        return (beta_new, s_new, V, S, H, C), 0.5 * jnp.dot(v, g)

    def fold(V, S, H, C):
        Q, R = jnp.linalg.qr(jnp.concatenate([V, H], axis=1))
        core = R @ jax.scipy.linalg.block_diag(S, C) @ R.T
        e, W = jnp.linalg.eigh(0.5 * (core + core.T))
        order = jnp.argsort(-jnp.abs(e))
        kept, dropped = order[:_RANK], order[_RANK:]
        worst = jnp.max(jnp.abs(e[dropped])) / jnp.maximum(jnp.max(jnp.abs(e)), 1e-300)
        return Q @ W[:, kept], jnp.diag(e[kept]), worst

    @jax.jit
    def run(state, lam, target, gamma0, lr):
        a = lr * gamma0**2

        def chunk(state, _):
            beta, s, V, S, worst = state
            H, C = jnp.zeros((lam.size, 2 * k)), jnp.zeros((2 * k, 2 * k))
            body = functools.partial(step, lam=lam, target=target, lr=lr, a=a)
            (beta, s, V, S, H, C), losses = jax.lax.scan(body, (beta, s, V, S, H, C), jnp.arange(k))
            V, S, dropped = fold(V, S, H, C)
            return (beta, s, V, S, jnp.maximum(worst, dropped)), losses

        state, losses = jax.lax.scan(chunk, state, None, length=_CHUNKS)
        return state, losses.reshape(-1)

    return run


def infinite_width_loss(problem: Problem, *, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Population loss of the two-layer linear model at N = ∞, shape (steps + 1,), and diagnostics:
    ``kernel_growth`` (the final :math:`s + \\lambda_{\\max}(K_A)`, 1 at the start) and ``kernel_truncation``.

    Raises ``ValueError`` if gradient descent diverges (the kernel grows with feature learning, so a learning rate
    that is stable at the start can become unstable; lower lr or gamma0), and ``FloatingPointError`` if the low-rank
    kernel would lose more than 1e-8 of its largest eigenvalue (a larger ``_RANK`` is needed)."""
    import jax
    from tqdm.auto import tqdm

    lam, target = problem.task.eigenvalues, problem.task.target
    per_call = _CHUNKS * _BUFFER
    with jax.enable_x64(True):
        run = functools.partial(_runner(), lam=lam, target=target, gamma0=problem.gamma0, lr=problem.lr)
        M = lam.size
        state = (np.zeros(M), np.float64(0.0), np.zeros((M, _RANK)), np.zeros((_RANK, _RANK)), np.float64(0.0))
        losses, done = [], 0
        calls = math.ceil((problem.steps + 1) / per_call)
        with tqdm(total=calls, desc="two-layer linear (N = inf)", disable=not progress or calls < 3,
                  leave=False) as bar:
            while done < problem.steps + 1:
                state, chunk = run(state)
                chunk = np.asarray(chunk)
                if not np.all(np.isfinite(chunk)) or chunk.max() > 1e3:
                    bad = done + int(np.argmax(~np.isfinite(chunk) | (chunk > 1e3)))
                    raise ValueError(f"gradient descent diverged near step {bad} (feature learning grew the kernel "
                                     f"past 2/lr); lower lr={problem.lr} or gamma0={problem.gamma0}")
                losses.append(chunk)
                done += per_call
                bar.update(1)
        _, s, V, S, worst = (np.asarray(x) for x in state)
    if worst > _TRUNCATION_TOLERANCE:
        raise FloatingPointError(f"the low-rank kernel dropped an eigenvalue {worst:.1e} of the largest (tolerance "
                                 f"{_TRUNCATION_TOLERANCE:g}); this run needs a larger rank than {_RANK}")
    sharpness = problem.lr * _top_eigenvalue(lam, float(s), V, S)
    if sharpness > 2.0:
        warnings.warn(f"lr * the largest eigenvalue of (s I + K_A) Lambda reached {sharpness:.2f} > 2: feature learning "
                      f"grew the kernel until gradient descent is at the edge of stability, where the steps no longer "
                      f"follow the loss smoothly (and round-off is amplified); lower lr={problem.lr}",
                      RuntimeWarning, stacklevel=3)
    diagnostics = {"kernel_growth": float(s) + 1.0 + max(0.0, float(np.max(np.diag(S)))),
                   "sharpness": sharpness, "kernel_truncation": float(worst)}
    return np.concatenate(losses)[: problem.steps + 1], diagnostics


def _top_eigenvalue(lam: np.ndarray, s: float, V: np.ndarray, S: np.ndarray) -> float:
    r"""The largest eigenvalue of :math:`\Lambda^{1/2}((1 + s) I + V S V^\top)\Lambda^{1/2}` (similar to the
    Jacobian factor :math:`(sI + K_A)\Lambda` of the step), by Lanczos on the diagonal-plus-low-rank operator."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    root = np.sqrt(lam)

    def matvec(x):
        x = np.ravel(x) * root
        return root * ((1.0 + s) * x + V @ (S @ (V.T @ x)))

    if lam.size <= 64:
        dense = root[:, None] * ((1.0 + s) * np.eye(lam.size) + V @ S @ V.T) * root[None, :]
        return float(np.linalg.eigvalsh(dense)[-1])
    op = LinearOperator((lam.size, lam.size), matvec=matvec, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", return_eigenvectors=False)[0])
