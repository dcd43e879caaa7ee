"""The damped fixed-point iteration shared by every Monte Carlo DMFT problem.

A *problem* has ``problem.step(state, damping, horizon=h) -> (state, residual, aux)``: one damped
Picard update of the self-consistent equations in which only times ``t < h`` move (all couplings
are causal, so the solution on ``t < h`` does not depend on later times), ``aux["loss_stderr"]``
(T1,) the Monte Carlo error of the loss. :func:`fixed_point` drives it through a schedule of
horizons; :func:`check_divergence` names the step where gradient descent itself blows up.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["causal_windows", "fixed_point", "check_divergence"]


def causal_windows(T1: int, parts: int = 4) -> list[int]:
    """Horizons ``ceil(T1 k / parts)``, k = 1..parts (never 1 alone: ``f(0) = 0`` there, and the relative
    residual of :func:`limits.dmft.equations.relax` is ill-defined)."""
    return sorted({min(T1, max(2, math.ceil(T1 * k / parts))) for k in range(1, parts + 1)})


def fixed_point(problem, state0, *, schedules, y, tol, max_iter, damping=None, monte_carlo=True, progress=False,
                desc="DMFT fixed point"):
    """Damped fixed-point iteration with causal continuation.

    ``schedules``: a list of horizon lists, tried in turn until one does not blow up (e.g.
    ``[[T1], causal_windows(T1)]``: the whole trajectory first, continuation if that blows up). A window
    of a continuation (a list of several horizons) that blows up is retried from the last converged one
    with half the extension (the lazy guess, or the frozen continuation, is worse the further it
    reaches: depth 2, P = 16, lr 0.5 converges from the lazy guess on 26 steps, not on 51); so is a window
    that stalls (residual still above 0.5 after 8 iterations: oscillating at O(1)). On each
    horizon but the last the iteration stops at ``max(tol, 1e-2)`` (an intermediate guess), on the last
    at ``tol`` or, with ``monte_carlo``, at the Monte Carlo floor ``min(1e-3, 0.02 x the largest relative
    standard error of the loss)``: iterating further only follows the sampling noise of the fixed point.
    ``damping=None``: adaptive, start at 1 and halve (down to 0.1) whenever the residual more than doubles
    after having contracted below 0.5 (large residuals right after the lazy guess or a horizon extension
    are the expected transient), or has not reached a new low in this window for 6 iterations (a slow
    oscillation: depth 2, P = 16, 125 steps cycled between residuals 2e-2 and 7e-2 undamped). ``y`` (P,): train targets, for the relative loss error.

    Returns ``(state, residuals, aux, stop, damping)``, ``stop`` one of ``"tol"``, ``"monte carlo"``,
    ``"max_iter"``, ``"blew up"``.
    """
    adaptive = damping is None
    damping0 = 1.0 if adaptive else float(damping)
    y = np.asarray(y)
    P = y.shape[0]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=desc, leave=False)
    try:
        for horizons in schedules:
            damp, state, residuals, aux, stop = damping0, state0, [], {}, "max_iter"
            pending, done, good = list(horizons), 0, state0  # horizons to go, last converged one, its state
            while pending:
                h = pending[0]
                final = h == horizons[-1]
                tol_h = tol if final else max(tol, 1e-2)
                last, stop, start, since_best = math.inf, "max_iter", len(residuals), 0
                while len(residuals) < max_iter:
                    state, res, aux = problem.step(state, damp, horizon=h)
                    res = float(res)
                    best = min(residuals[start:], default=math.inf)
                    since_best = 0 if res < best else since_best + 1
                    if adaptive and damp > 0.1 and ((last < 0.5 and res > 2.0 * last) or since_best >= 6):
                        damp, since_best = max(0.1, damp / 2), 0  # oscillating: damp harder
                    last = res
                    residuals.append(res)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(residual=f"{res:.2e}", horizon=h)
                    if not math.isfinite(res) or res > 1e3 or not np.all(np.isfinite(np.asarray(state["f"]))):
                        stop = "blew up"
                        break
                    if res < tol_h:
                        stop = "tol"
                        break
                    if len(horizons) > 1 and len(residuals) - start >= 8 and min(residuals[start:]) > 0.5:
                        stop = "blew up"  # stalled: no contraction in 8 iterations (oscillating at O(1))
                        break
                    if monte_carlo and final and len(residuals) >= 3:
                        f = np.asarray(state["f"]).reshape(problem.T1, -1)
                        loss = 0.5 * np.mean((f[:, :P] - y) ** 2, axis=1)
                        rel = float(np.max(np.asarray(aux["loss_stderr"]) / np.maximum(loss, 1e-300)))
                        if res < min(1e-3, 0.02 * rel):
                            stop = "monte carlo"
                            break
                if stop == "blew up" and len(horizons) > 1 and h - done > 2:
                    # too long a step from the last converged window (the Picard iteration of a causal map
                    # grows errors with the window length): retry from there with half the extension
                    pending.insert(0, max(2, done + (h - done) // 2))
                    state, damp = good, damping0
                    continue
                if stop == "blew up":
                    break
                pending.pop(0)
                done, good = h, state
            if stop != "blew up":
                break
    finally:
        if bar is not None:
            bar.close()
    return state, residuals, aux, stop, damp


def check_divergence(f_traj, y, lr):
    """Raise ``FloatingPointError`` naming the first step where the predictions (steps+1, P) blow up."""
    bad = ~np.isfinite(f_traj).all(axis=1) | (np.abs(f_traj).max(axis=1) > 1e6 * (1.0 + np.abs(y).max()))
    if bad.any():
        t = int(np.argmax(bad))
        raise FloatingPointError(
            f"the gradient-descent dynamics diverge at step {t} (predictions grow without bound) with lr={lr:g}; "
            f"use a smaller lr (e.g. lr={lr / 4:g})")
