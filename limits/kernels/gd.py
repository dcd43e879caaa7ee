r"""Exact gradient descent / gradient flow in the kernel (lazy) limit.

With the limiting NTK ``Theta`` (P, P), NNGP ``K``, learning rate ``eta`` and
``A = I - (eta/P) Theta = V diag(a) V^T``, full-batch GD on ``L = 1/(2P) |f - y|^2``
gives ``f_{t+1} = f_t - (eta/P) Theta (f_t - y)``, so

.. math::
    f_t = A^t f_0 + (I - A^t) y,\qquad
    f^*_t = f^*_0 - \Theta_* V\,\mathrm{diag}(g_t)\,V^\top (f_0 - y),\quad
    g_t = (1 - a^t)/\lambda,

with ``a = 1 - eta lambda/P`` (discrete steps) or ``a^t = exp(-eta lambda t/P)``
(gradient flow at time ``eta t``). The initial function is a centered GP with
covariance ``f0_variance * NNGP``, so predictions have mean ``(I - A^t) y``
(train) and covariance ``f0_variance * A^t K A^t``; the reported loss is the
expected loss ``1/(2P) (|mean - y|^2 + tr Cov)``, as in neural-tangents'
``gradient_descent_mse_ensemble``.
"""

from __future__ import annotations

import warnings

import numpy as np

from limits.activations import get as _get_activation
from limits.kernels._common import Kernels, check_depth
from limits.kernels.mlp import mlp
from limits.trajectory import Trajectory

__all__ = ["solve_kernel"]

_COV_LIMIT = 1 << 25  # entries of prediction_cov recorded automatically (256 MB)


def _resolve(param, depth: int, gamma0: float):
    from limits import parametrization as _p

    if isinstance(param, str):
        return _p.param(param, depth=depth, gamma0=gamma0)
    if isinstance(param, _p.Parametrization):
        if param.depth != depth:
            raise ValueError(f"the parametrization has depth {param.depth} but depth={depth} was requested; they must match")
        return param
    raise ValueError(f"param must be a preset name ({', '.join(_p.PRESETS)}) or a Parametrization, got {type(param).__name__}")


def _decay(lam: np.ndarray, rate: float, times: np.ndarray, flow: bool) -> tuple[np.ndarray, np.ndarray]:
    """``a^t`` and ``g_t = (1 - a^t)/lambda`` of shape (T+1, P) (``g -> rate t`` as lambda -> 0)."""
    x = rate * lam  # eta lambda / P
    t = times[:, None]
    if flow:
        one_minus = -np.expm1(-x * t)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            small = np.abs(x) < 0.5
            one_minus = np.where(small, -np.expm1(t * np.log1p(-np.where(small, x, 0.0))), 1.0 - (1.0 - x) ** t)
    safe = np.where(lam != 0, lam, 1.0)
    g = np.where(lam != 0, one_minus / safe, rate * t)
    return 1.0 - one_minus, g


def _quadratic_diag(B: np.ndarray, g: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``diag(B diag(g_t) C diag(g_t) B^T)`` for every t: (T+1, Q), in memory-bounded chunks."""
    Q, P = B.shape
    out = np.empty((g.shape[0], Q))
    chunk = max(1, (1 << 22) // max(1, Q * P))
    for t0 in range(0, g.shape[0], chunk):
        BG = B[None, :, :] * g[t0 : t0 + chunk, None, :]
        out[t0 : t0 + chunk] = np.einsum("tqk,tqk->tq", BG @ C, BG)
    return out


def _limit_kernels(p, limit, depth: int, act, b_std: float, backend: str, X_all: np.ndarray):
    """NNGP and weighted NTK of the table's lazy limit on ``X_all`` (MLP or ResNet)."""
    if limit.branch_multiplier is None:
        return mlp(depth, act, limit.W_std, b_std, backend=backend)(X_all, layer_weights=limit.layer_weights)
    # Residual table: the ResNet recursion takes one W_std and one weight per group
    # (input, blocks, readout); a readout scale W_out multiplies every NTK term and
    # the NNGP by (W_out / W)^2.
    W = np.asarray(limit.W_std, dtype=float)
    lam = np.asarray(limit.layer_weights, dtype=float)
    if not (np.allclose(W[:-1], W[0]) and np.allclose(lam[1:-1], lam[1])):
        raise ValueError(
            "residual tables need equal W_std for the input and block layers and equal block weights "
            f"in the kernel limit; got W_std={W.tolist()}, layer_weights={lam.tolist()}"
        )
    from limits.kernels.resnet import resnet

    kern = resnet(depth, act, W[0], b_std, limit.branch_multiplier, layer_weights=(lam[0], lam[1], lam[-1]))(X_all)
    scale = (W[-1] / W[0]) ** 2
    return Kernels(scale * kern.nngp, scale * kern.ntk)


def solve_kernel(
    param="ntk",
    depth: int = 1,
    *,
    X=None,
    y=None,
    X_test=None,
    y_test=None,
    activation="relu",
    lr: float = 1.0,
    steps: int = 100,
    gamma0: float = 1.0,
    flow: bool = False,
    b_std: float = 0.0,
    record_cov: bool | None = None,
    backend: str = "auto",
) -> Trajectory:
    """Kernel-limit training trajectory of a parametrization, as a :class:`Trajectory`.

    ``param``: preset name (``limits.param(name, depth, gamma0=gamma0)``) or a
    ``Parametrization`` of depth ``depth``. Its ``kernel_limit()`` gives the per-layer
    ``W_std``, the layer weights ``lambda_l`` of ``Theta = sum_l lambda_l Theta_l`` and
    ``f0_variance``. Unstable tables raise ``ValueError``; feature-learning tables
    give their linearized (``gamma0 -> 0``) kernel dynamics.

    ``X`` (P, D), ``y`` (P,), ``X_test`` (Q, D), ``y_test`` (Q,) (default: the
    ``teacher`` dataset). ``steps`` GD steps with ``f_{t+1} = f_t - (lr/P) Theta (f_t - y)``,
    or with ``flow=True`` gradient flow sampled at times ``lr * t``, t = 0..steps.

    Returns: ``loss`` (T+1,) expected train loss (includes the f_0 variance),
    ``predictions`` (T+1, P) and ``test_predictions`` (T+1, Q) mean predictors,
    ``prediction_cov`` (T+1, P, P) (None when ``f0_variance = 0``, or when too large
    unless ``record_cov=True``), ``test_loss`` (T+1,) if ``y_test`` is given,
    ``ntk`` (1, P, P) with ``kernel_steps = [0]`` (the kernel is constant in time),
    ``kernels["nngp"]`` (1, P, P); ``diagnostics["test_prediction_var"]`` (T+1, Q).
    """
    from limits.data import teacher, validate

    depth = check_depth(depth)
    if X is None:
        if y is not None:
            raise ValueError("y was given without X")
        data = teacher()
        X, y, X_test, y_test = data.X, data.y, data.X_test, data.y_test
    elif y is None:
        raise ValueError("X was given without y")
    X, y, X_test = validate(X, y, X_test)
    if y_test is not None:
        if X_test is None:
            raise ValueError("y_test was given without X_test")
        _, y_test, _ = validate(X_test, y_test)
    lr = float(lr)
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    act = _get_activation(activation)

    p = _resolve(param, depth, gamma0)
    cls = p.classify()
    if cls.regime == "unstable":
        raise ValueError(f"parametrization {p.name!r} is unstable; it has no infinite-width limit:\n{cls}")
    limit = p.kernel_limit()
    f0_var = float(limit.f0_variance)

    P = X.shape[0]
    X_all = X if X_test is None else np.concatenate([X, X_test])
    kern = _limit_kernels(p, limit, depth, act, b_std, backend, X_all)
    K, Theta = kern.nngp[:P, :P], kern.ntk[:P, :P]

    lam, V = np.linalg.eigh(Theta)
    rate = lr / P
    if not flow and lam.max() * rate > 2.0:
        warnings.warn(
            f"lr={lr} exceeds the discrete-GD stability limit 2P/lambda_max = {2.0 / (lam.max() / P):.4g}; "
            "the kernel dynamics diverge",
            RuntimeWarning,
            stacklevel=2,
        )
    times = np.arange(steps + 1, dtype=float)
    a, g = _decay(lam, rate, times, flow)  # (T+1, P)
    z = V.T @ y
    mean = ((1.0 - a) * z) @ V.T  # (T+1, P)
    C = V.T @ K @ V
    trace = f0_var * (a**2 * np.diag(C)).sum(axis=1)
    loss = 0.5 / P * (((mean - y) ** 2).sum(axis=1) + trace)

    cov = None
    if f0_var > 0:
        if record_cov is None:
            record_cov = (steps + 1) * P * P <= _COV_LIMIT
        if record_cov:
            cov = np.einsum("ik,tk,kl,tl,jl->tij", V, a, f0_var * C, a, V, optimize=True)

    test_pred = test_loss = test_var = None
    if X_test is not None:
        Kst, Tst = kern.nngp[P:, :P], kern.ntk[P:, :P]
        B = Tst @ V  # (Q, P)
        test_pred = (g * z) @ B.T
        E = Kst @ V
        kss = np.diag(kern.nngp[P:, P:])
        cross = np.einsum("qk,tk->tq", B * E, g)
        quad = _quadratic_diag(B, g, C)
        test_var = f0_var * (kss[None, :] - 2.0 * cross + quad)
        if y_test is not None:
            Q = X_test.shape[0]
            test_loss = 0.5 / Q * (((test_pred - y_test) ** 2).sum(axis=1) + test_var.sum(axis=1))

    meta = {
        "solver": "kernel",
        "param": p.name,
        "regime": cls.regime,
        "depth": depth,
        "width": float("inf"),
        "activation": act.name,
        "lr": lr,
        "steps": int(steps),
        "gamma0": float(gamma0),
        "flow": bool(flow),
        "time": "lr * t (gradient flow)" if flow else "step t",
        "W_std": np.asarray(limit.W_std).tolist(),
        "b_std": float(b_std),
        "layer_weights": np.asarray(limit.layer_weights).tolist(),
        "f0_variance": f0_var,
    }
    diagnostics = {
        "ntk_eigenvalues": lam,
        "stability_lr": 2.0 * P / lam.max() if lam.max() > 0 else np.inf,
        "times": lr * times if flow else times,
        "test_prediction_var": test_var,
    }
    return Trajectory(
        loss=loss,
        predictions=mean,
        test_predictions=test_pred,
        test_loss=test_loss,
        prediction_cov=cov,
        ntk=Theta[None],
        kernels={"nngp": K[None]},
        kernel_steps=np.array([0]),
        meta=meta,
        diagnostics=diagnostics,
    )
