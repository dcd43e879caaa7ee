r"""Exact gradient descent / gradient flow in the kernel (lazy) limit.

validate the inputs -> compile the table (:meth:`limits.Parametrization.kernel_limit`) -> kernels on the train and
test points -> solve in the NTK eigenbasis -> assemble the :class:`~limits.trajectory.Trajectory`.

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
``gradient_descent_mse_ensemble``. Discrete GD is stable iff ``eta < 2 / lambda_max(Theta / P)``; beyond it
:func:`solve_kernel` raises ``FloatingPointError``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import NamedTuple

import numpy as np

from limits import activations as _acts
from limits.checks import boolean, choice, inapplicable, integer, nonnegative, option, positive
from limits.checks import record as _record
from limits.kernels._common import Kernels, float64
from limits.kernels.mlp import BACKENDS, mlp
from limits.trajectory import Trajectory

__all__ = ["KernelGD", "solve_kernel"]

_COV_LIMIT = 1 << 25  # entries of prediction_cov recorded automatically (256 MB)
RECORD = ("ntk", "kernels", "test_variance")


@dataclasses.dataclass(frozen=True)
class KernelGD:
    """Numerical options of :func:`solve_kernel` (validated on construction).

    Args:
        flow: gradient flow sampled at times ``lr * t`` instead of discrete steps.
        backend: kernel backend, ``"auto"``, ``"numba"`` (relu, erf, linear MLPs) or ``"jax"``.
        b_std: bias std of every layer in the kernel recursion (the tables have no biases; default 0).
        quadrature_order: None (adaptive quadrature, accurate to 1e-8) or a Gauss-Hermite order in [16, 256] for
            activations without closed forms (rejected where inaccurate; see :func:`limits.kernels.mlp`).
    """

    flow: bool = False
    backend: str = "auto"
    b_std: float = 0.0
    quadrature_order: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "flow", boolean(self.flow, "KernelGD.flow"))
        choice(self.backend, "KernelGD.backend", BACKENDS)
        object.__setattr__(self, "b_std", nonnegative(self.b_std, "KernelGD.b_std"))
        _acts.check_order(self.quadrature_order, "KernelGD.quadrature_order")
        if self.quadrature_order is not None:
            object.__setattr__(self, "quadrature_order", int(self.quadrature_order))


class _Data(NamedTuple):
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None


# ----------------------------------------------------------------------------- validate
def _data(X, y, X_test, y_test) -> _Data:
    """Validated data (:func:`limits.checks.default_data`: both ``X`` and ``y`` None gives the default teacher)."""
    from limits.checks import default_data

    return _Data(*default_data(X, y, X_test, y_test))


def _table(param, depth, gamma0):
    """``(table, gamma0)``: the :class:`~limits.Parametrization` to solve and the preset's richness (None for a
    table, which carries its constants); :func:`limits.parametrization.entry_table`."""
    from limits.parametrization import entry_table

    return entry_table(param, depth, gamma0=gamma0)


def _options(method, act, table, record, data: _Data) -> KernelGD:
    """Reject options and recorded quantities that do not apply to this table, activation or data."""
    method = option(method, "method", KernelGD, KernelGD())
    closed = act.name in _acts.CLOSED_FORMS and act is _acts.get(act.name)
    if method.quadrature_order is not None and closed:
        raise inapplicable("KernelGD.quadrature_order", f"activation {act.name!r} has closed-form kernels")
    if table.is_residual and method.backend == "numba":
        raise inapplicable("KernelGD.backend", "residual tables use the JAX ResNet recursion; use backend='auto'")
    if "test_variance" in record and data.X_test is None:
        raise ValueError("record: 'test_variance' needs test inputs X_test")
    return method


# ----------------------------------------------------------------------------- compile
def _compile(table):
    """The table's :class:`~limits.parametrization.KernelLimit`; every constant it cannot honour is an error."""
    if table.optimizer != "sgd":
        raise ValueError(f"the table {table.name!r} uses optimizer={table.optimizer!r} (field 'optimizer'); kernel "
                         f"gradient descent is the lazy limit of SGD; the lazy limit of an adaptive optimizer is TP IVb's "
                         f"nonlinear 'Adam NTK' (Muon's has no derivation), which the package does not solve: "
                         f"simulate it with limits.simulate")
    cls = table.classify()
    if cls.regime == "unstable":
        raise ValueError(f"parametrization {table.name!r} is unstable; it has no infinite-width limit:\n{cls}")
    return cls.regime, table.kernel_limit()


def _kernels(limit, depth: int, act, method: KernelGD, X_all: np.ndarray, progress: bool) -> Kernels:
    """NNGP and weighted NTK of the table's lazy limit on ``X_all`` (MLP or ResNet)."""
    if limit.branch_multiplier is None:
        k = mlp(depth, act, limit.W_std, method.b_std, backend=method.backend, quadrature_order=method.quadrature_order)
        return k(X_all, layer_weights=limit.layer_weights, progress=None if progress else False)
    # Residual table: the ResNet recursion takes one W_std and one weight per group (input, blocks, readout); a
    # readout scale W_out multiplies every NTK term and the NNGP by (W_out / W)^2.
    W = np.asarray(limit.W_std, dtype=float)
    lam = np.asarray(limit.layer_weights, dtype=float)
    if not (np.allclose(W[:-1], W[0]) and np.allclose(lam[1:-1], lam[1])):
        raise ValueError(
            "residual tables need equal W_std (multiplier * init_std) for the input and block layers and equal block "
            f"weights in the kernel limit; got W_std={W.tolist()}, layer_weights={lam.tolist()}"
        )
    if method.b_std > 0 and not np.isclose(W[-1], W[0]):
        raise inapplicable("KernelGD.b_std", "a residual table whose readout W_std differs from its blocks' has no "
                           "bias-consistent ResNet kernel")
    from limits.kernels.resnet import resnet

    kern = resnet(depth, act, W[0], method.b_std, limit.branch_multiplier, quadrature_order=method.quadrature_order,
                  layer_weights=(lam[0], lam[1], lam[-1]))(X_all)
    scale = (W[-1] / W[0]) ** 2
    return Kernels(scale * kern.nngp, scale * kern.ntk)


# ----------------------------------------------------------------------------- solve
def _decay(lam: np.ndarray, rate: float, times: np.ndarray, flow: bool) -> tuple[np.ndarray, np.ndarray]:
    """``a^t`` and ``g_t = (1 - a^t)/lambda`` of shape (T+1, P) (``g -> rate t`` as lambda -> 0)."""
    x = rate * lam  # eta lambda / P
    t = times[:, None]
    if flow:
        one_minus = -np.expm1(-x * t)
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            small = np.abs(x) < 0.5
            one_minus = np.where(small, -np.expm1(t * np.log1p(-np.where(small, x, 0.0))), 1.0 - (1.0 - x) ** t)
    safe = np.where(lam != 0, lam, 1.0)
    g = np.where(lam != 0, one_minus / safe, rate * t)
    return 1.0 - one_minus, g


def _check_stable(lam: np.ndarray, lr: float, P: int, steps: int, flow: bool) -> None:
    """``FloatingPointError`` when discrete GD is past its stability limit ``lr < 2 / lambda_max(Theta/P)``."""
    top = float(lam.max(initial=0.0)) / P
    if flow or top <= 0 or lr * top <= 2.0 * (1 + 1e-12):
        return
    bound, growth = 2.0 / top, abs(1.0 - lr * top)
    onset = 1 if steps >= 1 else 0
    raise FloatingPointError(
        f"kernel gradient descent diverges: lr={lr:g} exceeds the stable bound 2/lambda_max(Theta/P) = {bound:.6g} of "
        f"the NTK operator Theta/P (lambda_max = {top:.6g}); its top mode grows by a factor {growth:.4g} per step "
        f"from step {onset} on (x{growth**max(steps, 1):.3g} by step {max(steps, 1)}). Use a smaller lr, e.g. "
        f"lr={0.5 * bound:.3g}, or gradient flow (method=KernelGD(flow=True))"
    )


def _quadratic_diag(B: np.ndarray, g: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``diag(B diag(g_t) C diag(g_t) B^T)`` for every t: (T+1, Q), in memory-bounded chunks."""
    Q, P = B.shape
    out = np.empty((g.shape[0], Q))
    chunk = max(1, (1 << 22) // max(1, Q * P))
    for t0 in range(0, g.shape[0], chunk):
        BG = B[None, :, :] * g[t0 : t0 + chunk, None, :]
        out[t0 : t0 + chunk] = np.einsum("tqk,tqk->tq", BG @ C, BG)
    return out


def _train(kern: Kernels, y, P: int, lr: float, steps: int, flow: bool, f0_var: float) -> dict:
    """Train-set mean, covariance and expected loss in the NTK eigenbasis (shapes (T+1, P), (T+1, P, P), (T+1,))."""
    K, Theta = kern.nngp[:P, :P], kern.ntk[:P, :P]
    lam, V = np.linalg.eigh(0.5 * (Theta + Theta.T))
    _check_stable(lam, lr, P, steps, flow)
    times = np.arange(steps + 1, dtype=float)
    a, g = _decay(lam, lr / P, times, flow)  # (T+1, P)
    z = V.T @ y
    mean = ((1.0 - a) * z) @ V.T
    C = V.T @ K @ V
    loss = 0.5 / P * (((mean - y) ** 2).sum(axis=1) + f0_var * (a**2 * np.diag(C)).sum(axis=1))
    cov = None
    if f0_var > 0 and (steps + 1) * P * P <= _COV_LIMIT:
        cov = np.einsum("ik,tk,kl,tl,jl->tij", V, a, f0_var * C, a, V, optimize=True)
    return dict(K=K, Theta=Theta, lam=lam, V=V, z=z, g=g, C=C, mean=mean, loss=loss, cov=cov, times=times)


def _test(kern: Kernels, train: dict, P: int, y_test, f0_var: float) -> dict:
    """Test-set mean (T+1, Q), variance over initializations (T+1, Q) and expected loss (T+1,) or None."""
    g, V, C = train["g"], train["V"], train["C"]
    B = kern.ntk[P:, :P] @ V  # (Q, P)
    pred = (g * train["z"]) @ B.T
    cross = np.einsum("qk,tk->tq", B * (kern.nngp[P:, :P] @ V), g)
    var = f0_var * (np.diag(kern.nngp[P:, P:])[None, :] - 2.0 * cross + _quadratic_diag(B, g, C))
    loss = None
    if y_test is not None:
        loss = 0.5 / len(y_test) * (((pred - y_test) ** 2).sum(axis=1) + var.sum(axis=1))
    return dict(pred=pred, var=var, loss=loss)


# ----------------------------------------------------------------------------- assemble
def _trajectory(train, test, record, table, regime, limit, act, method, *, depth, gamma0, lr, steps, t0):
    f0_var = float(limit.f0_variance)
    lam, P = train["lam"], len(train["lam"])
    meta = {
        "solver": "kernel", "param": table.name, "depth": depth, "width": math.inf, "activation": act.name,
        "gamma0": gamma0, "lr": lr, "steps": steps, "seed": None, "method": repr(method),
        "wall_s": time.perf_counter() - t0,
        "regime": regime, "flow": method.flow, "time": "lr * t (gradient flow)" if method.flow else "step t",
        "W_std": np.asarray(limit.W_std).tolist(), "b_std": method.b_std,
        "layer_weights": np.asarray(limit.layer_weights).tolist(), "f0_variance": f0_var,
    }
    diagnostics = {
        "ntk_eigenvalues": lam,
        "stability_lr": 2.0 * P / lam.max() if lam.max() > 0 else np.inf,
        "times": lr * train["times"] if method.flow else train["times"],
    }
    return Trajectory(
        loss=train["loss"], predictions=train["mean"], prediction_cov=train["cov"],
        test_predictions=None if test is None else test["pred"], test_loss=None if test is None else test["loss"],
        test_prediction_var=test["var"] if "test_variance" in record else None,
        ntk=train["Theta"][None] if "ntk" in record else None,
        kernels={"nngp": train["K"][None]} if "kernels" in record else {},
        kernel_steps=np.array([0]) if record & {"ntk", "kernels"} else None,
        meta=meta, diagnostics=diagnostics,
    )


def _with_data(traj: Trajectory, data: _Data) -> Trajectory:
    """``meta["data"]``: the fingerprint :func:`limits.compare` uses to refuse runs on other data."""
    from limits.checks import fingerprint

    traj.meta["data"] = fingerprint(data.X, data.y, data.X_test, data.y_test)
    return traj


@float64
def solve_kernel(
    param="ntk",
    depth=None,
    *,
    X=None,
    y=None,
    activation="tanh",
    gamma0=None,
    lr=0.5,
    steps=100,
    X_test=None,
    y_test=None,
    record=("ntk", "kernels"),
    progress=True,
    method: KernelGD | None = None,
) -> Trajectory:
    """Kernel-limit training trajectory of a parametrization table, as a :class:`Trajectory`.

    The table's :meth:`~limits.Parametrization.kernel_limit` gives per-layer ``W_std`` (multiplier x init_std),
    the layer weights ``lambda_l = lr_scale_l / init_std_l^2`` of ``Theta = sum_l lambda_l Theta_l`` (0 where a
    layer's update vanishes) and ``f0_variance``; every constant is honoured or rejected: Adam tables
    (``optimizer="adam"``) and unstable tables raise ``ValueError``; feature-learning tables give their linearized
    (``gamma0 -> 0``) kernel dynamics. Steps ``f_{t+1} = f_t - (lr/P) Theta (f_t - y)``, or gradient flow sampled
    at times ``lr * t`` (``method=KernelGD(flow=True)``).

    Args:
        param: preset name (default ``"ntk"``) or a :class:`limits.Parametrization`.
        depth: hidden layers / residual blocks; None: the table's own depth (1 for a preset name).
        X, y: (P, D) inputs and (P,) targets; both None: :func:`limits.datasets.teacher` (its train set).
        activation: name or callable (default ``"tanh"``).
        gamma0: richness of a preset (None: 1.0); rejected next to a Parametrization.
        lr: learning rate (> 0); discrete GD needs ``lr < 2 / lambda_max(Theta/P)`` (else ``FloatingPointError``).
        steps: gradient steps (>= 0); the trajectory has ``steps + 1`` entries.
        X_test, y_test: (Q, D) test inputs and (Q,) targets (``y_test`` needs ``X_test``).
        record: names among ``"ntk"``, ``"kernels"`` (the NNGP), ``"test_variance"`` (needs ``X_test``).
        progress: a progress bar while large kernels are computed.
        method: :class:`KernelGD` (flow, backend, b_std, quadrature_order); None: ``KernelGD()``.

    Returns:
        :class:`~limits.trajectory.Trajectory`: ``loss`` (T+1,) expected train loss (includes the f_0 variance),
        ``predictions`` (T+1, P) and ``test_predictions`` (T+1, Q) mean predictors, ``prediction_cov``
        (T+1, P, P) (None when ``f0_variance = 0`` or above 2**25 entries), ``test_loss`` (T+1,) if ``y_test``
        is given, ``test_prediction_var`` (T+1, Q) (``record="test_variance"``), ``ntk`` (1, P, P) and
        ``kernels["nngp"]`` (1, P, P) with ``kernel_steps = [0]`` (constant in time), ``meta`` (the keys of
        :data:`limits.checks.META_KEYS`, then ``regime``, ``flow``, ``W_std``, ``layer_weights``, ...).
    """
    t0 = time.perf_counter()
    data = _data(X, y, X_test, y_test)
    lr, steps = positive(lr, "lr"), integer(steps, "steps", 0)
    record = _record(record, supported=RECORD)
    progress = boolean(progress, "progress")
    act = _acts.get(activation)
    table, gamma0 = _table(param, depth, gamma0)
    method = _options(method, act, table, record, data)
    regime, limit = _compile(table)
    P = data.X.shape[0]
    X_all = data.X if data.X_test is None else np.concatenate([data.X, data.X_test])
    kern = _kernels(limit, table.depth, act, method, X_all, progress)
    f0_var = float(limit.f0_variance)
    train = _train(kern, data.y, P, lr, steps, method.flow, f0_var)
    test = None if data.X_test is None else _test(kern, train, P, data.y_test, f0_var)
    traj = _trajectory(train, test, record, table, regime, limit, act, method, depth=table.depth, gamma0=gamma0,
                       lr=lr, steps=steps, t0=t0)
    return _with_data(traj, data)
