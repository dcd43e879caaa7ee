r"""Finite-width simulation of full-batch training, vmapped over random seeds.

:func:`simulate` instantiates the parametrization at the requested width (the
one numeric source of truth, :meth:`Parametrization.instantiate`) and trains an
ensemble of ``seeds`` independent networks (MLPs, or ResNets for residual
tables such as ``"depth-mup"``; see :mod:`limits.finite.network`) with
full-batch SGD or Adam:

- SGD:  ``w_l <- w_l - lr * lr_scales[l] * dLoss/dw_l``;
- Adam: ``w_l <- w_l - lr * lr_scales[l] * mhat_l / (sqrt(vhat_l) + eps)``, standard
  bias-corrected Adam with ``betas = (0.9, 0.999)`` and ``eps = adam_eps`` (1e-8),
  moments per raw weight, ``mhat = m / (1 - b1^k)`` at update ``k = 1, 2, ...``.

The whole trajectory runs in a ``lax.scan`` (split into a few chunks so progress
can be shown and a divergence stops the run early); seeds are a ``vmap``
(processed in batches of ``seed_batch`` seeds if memory requires). Network ``i``
of ``seed=s`` draws layer ``l`` from NumPy's ``default_rng([s, i, l])``, so results
are deterministic and the first k seeds of a larger ensemble are the same networks.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _activations
from .. import data as _data
from ..checks import integer as _check_int
from ..checks import positive as _check_positive
from ..parametrization import Parametrization, resolve
from ..trajectory import Trajectory
from . import network as _net

jax.config.update("jax_enable_x64", True)  # float64 is the package default (DESIGN.md)

__all__ = ["simulate", "SimulationDiverged", "RECORDABLE"]

RECORDABLE = ("ntk", "kernels", "features", "spectral")
"""Quantities :func:`simulate` can record at ``record_steps``:

- ``"ntk"``: learning-rate-weighted empirical NTK (K, P, P);
- ``"kernels"``: ``phi1..phiL`` and ``g1..gL`` (each (K, P, P); ResNets with L blocks:
  ``phi1..phi{L+1}``, ``g1..g{L+1}`` for the residual stream ``h^1..h^{L+1}``), see :mod:`limits.finite.network`;
- ``"features"``: RMS feature movement ``|h^l_t - h^l_0|`` per layer and ``|f_t - f_0|``;
- ``"spectral"``: spectral norms of the effective weights ``m_l w_l`` (ResNet blocks: ``b m_l W_l``) and of their change since init.
"""

_MAX_CHUNK = 128
_DEFAULT_MEMORY = 4 * 2**30


class SimulationDiverged(ValueError):
    """Training diverged: the loss became non-finite or exploded at ``step``."""

    def __init__(self, message: str, step: int, lr: float):
        super().__init__(message)
        self.step = step
        self.lr = lr


# --------------------------------------------------------------------- checks
def _check_record(record: Iterable[str] | str | None) -> frozenset:
    if record is None:
        return frozenset()
    if isinstance(record, str):
        record = (record,)
    names = frozenset(record)
    unknown = sorted(names - set(RECORDABLE))
    if unknown:
        raise ValueError(f"cannot record {unknown}; choose from {list(RECORDABLE)}")
    return names


def _check_record_steps(record_steps, steps: int) -> np.ndarray:
    if record_steps is None:
        return np.unique(np.array([0, steps], dtype=np.int64))
    arr = np.atleast_1d(np.asarray(record_steps))
    if arr.size == 0 or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"record_steps must be a non-empty list of integers in [0, {steps}], got {record_steps!r}")
    if arr.min() < 0 or arr.max() > steps:
        raise ValueError(f"record_steps must lie in [0, steps={steps}], got {sorted(arr.tolist())}")
    return np.unique(arr.astype(np.int64))


# ----------------------------------------------------------- compiled pieces
def _init_batch(seed: int, ids: Sequence[int], net, dtype) -> tuple:
    """Stacked raw weights (one array per entry of the params layout, leading axis = seeds in ``ids``)."""
    per_seed = [_net.init_params(seed, int(i), net.init_stds, net.depth, net.width, net.input_dim, dtype,
                                 residual=net.residual) for i in ids]
    return tuple(jnp.asarray(np.stack([ws[l] for ws in per_seed])) for l in range(len(per_seed[0])))


def _bcast(scale, w):
    """Per-layer scale broadcast against ``w`` (stacked residual blocks: (L,) -> (L, 1, 1))."""
    return jnp.reshape(scale, jnp.shape(scale) + (1,) * (w.ndim - jnp.ndim(scale)))


@functools.lru_cache(maxsize=64)
def _chunk_fn(
    depth: int,
    residual: bool,
    activation: _activations.Activation,
    optimizer: str,
    record: frozenset,
    length: int,
    has_test: bool,
    adam: tuple[float, float, float],
):
    """Jitted: ``count <= length`` observations/updates from step ``t0`` for a batch of seeds.

    State ``(params, opt, buffers)``; per step it observes the network (loss,
    train/test outputs), records into ``buffers[name][k]`` when ``t ==
    record_steps[k]``, then updates the weights.
    """
    phi, dphi = activation.fn, activation.deriv
    b1, b2, eps = adam

    def step_one(params, opt, t, mult, lr_scales, lr, X, y, Xt):
        f, vjp, hs = jax.vjp(lambda p: _net.forward(p, mult, X, phi), params, has_aux=True)
        r = f - y
        loss = 0.5 * jnp.mean(r * r)
        (grads,) = vjp(r / y.shape[0])
        ft = _net.forward(params, mult, Xt, phi)[0] if has_test else jnp.zeros((0,), f.dtype)
        if optimizer == "sgd":
            new = tuple(w - lr * _bcast(lr_scales[l], w) * g for l, (w, g) in enumerate(zip(params, grads)))
            return new, opt, loss, f, ft, hs
        m, v = opt
        k = (t + 1).astype(f.dtype)
        m = tuple(b1 * mi + (1 - b1) * g for mi, g in zip(m, grads))
        v = tuple(b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads))
        c1, c2 = 1 - b1**k, 1 - b2**k
        new = tuple(
            w - lr * _bcast(lr_scales[l], w) * (mi / c1) / (jnp.sqrt(vi / c2) + eps)
            for l, (w, mi, vi) in enumerate(zip(params, m, v))
        )
        return new, (m, v), loss, f, ft, hs

    def measure_one(params, f, hs, f0, hs0, params0, mult, lr_scales, X):
        out = {}
        if "ntk" in record or "kernels" in record:
            gs = _net.backward_fields(params, mult, hs, dphi)
            if "ntk" in record:
                out["ntk"] = _net.ntk(params, mult, lr_scales, X, hs, gs, phi)
            if "kernels" in record:
                out["phi"], out["g"] = _net.kernels(hs, gs, phi)
        if "features" in record:
            H, H0 = _net._stack(hs), _net._stack(hs0)
            out["delta_h"] = jnp.sqrt(jnp.mean((H - H0) ** 2, axis=(-2, -1)))
            out["h_rms"] = jnp.sqrt(jnp.mean(H**2, axis=(-2, -1)))
            out["delta_f"] = jnp.sqrt(jnp.mean((f - f0) ** 2))
        if "spectral" in record:
            out["W_spectral"] = _net.effective_spectral_norms(params, mult)
            out["dW_spectral"] = _net.effective_spectral_norms(tuple(w - w0 for w, w0 in zip(params, params0)), mult)
        return out

    def run(state, t0, count, mult, lr_scales, lr, X, y, Xt, record_steps, params0):
        # ``count`` is traced, so XLA sees a while loop it cannot unroll (fast compiles)
        S, P, Q = state[0][0].shape[0], X.shape[0], Xt.shape[0]
        outs = (jnp.zeros((length, S), X.dtype), jnp.zeros((length, S, P), X.dtype), jnp.zeros((length, S, Q), X.dtype))

        def body(i, carry):
            params, opt, buf, origin, outs = carry
            t = t0 + i
            new, opt2, loss, f, ft, hs = jax.vmap(step_one, in_axes=(0, 0, None, None, None, None, None, None, None))(
                params, opt, t, mult, lr_scales, lr, X, y, Xt
            )
            if "features" in record:  # remember f and h^l at t = 0
                origin = jax.lax.cond(t == 0, lambda o: (f, hs), lambda o: o, origin)
            if record:
                match = record_steps == t

                def write(b):
                    vals = jax.vmap(measure_one, in_axes=(0, 0, 0, 0, 0, 0, None, None, None))(
                        params, f, hs, *origin, params0, mult, lr_scales, X
                    )
                    idx = jnp.argmax(match)
                    return {name: b[name].at[idx].set(vals[name]) for name in b}

                buf = jax.lax.cond(jnp.any(match), write, lambda b: b, buf)
            outs = tuple(o.at[i].set(v) for o, v in zip(outs, (loss, f, ft)))
            return new, opt2, buf, origin, outs

        *state, outs = jax.lax.fori_loop(0, count, body, (*state, outs))
        return tuple(state), outs

    return jax.jit(run, donate_argnums=(0,))


# ------------------------------------------------------------------- driver
def _buffers(record: frozenset, K: int, S: int, P: int, depth: int, dtype) -> dict:
    """NaN-filled record buffers (K, S, ...); ``depth`` = number of hidden representations (layers - 1)."""
    shapes: dict[str, tuple] = {}
    if "ntk" in record:
        shapes["ntk"] = (P, P)
    if "kernels" in record:
        shapes["phi"] = shapes["g"] = (depth, P, P)
    if "features" in record:
        shapes["delta_h"] = shapes["h_rms"] = (depth,)
        shapes["delta_f"] = ()
    if "spectral" in record:
        shapes["W_spectral"] = shapes["dW_spectral"] = (depth + 1,)
    return {k: jnp.full((K, S) + s, jnp.nan, dtype) for k, s in shapes.items()}


def _seed_batch(seed_batch, seeds: int, net, optimizer: str, spectral: bool, itemsize: int) -> int:
    if seed_batch is not None:
        return min(_check_int(seed_batch, "seed_batch", 1), seeds)
    count = sum(math.prod(s) for s in net.shapes)
    factor = (3 if optimizer == "sgd" else 5) + (1 if spectral else 0)
    per_seed = count * itemsize * factor
    return max(1, min(seeds, _DEFAULT_MEMORY // per_seed))


def _first_bad_step(losses: np.ndarray, threshold: float) -> int | None:
    """First step whose seed-mean loss is non-finite or above ``threshold``."""
    mean = losses.mean(axis=0)
    bad = ~np.isfinite(mean) | (mean > threshold)
    return int(np.argmax(bad)) if bad.any() else None


def simulate(
    param: str | Parametrization = "mup",
    depth: int = 2,
    width: int = 256,
    *,
    X=None,
    y=None,
    activation: str | Callable = "tanh",
    gamma0: float = 1.0,
    lr: float = 0.1,
    steps: int = 100,
    seeds: int = 8,
    X_test=None,
    y_test=None,
    optimizer: str | None = None,
    record: Sequence[str] | str | None = ("ntk", "kernels"),
    record_steps: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
    dtype: str = "float64",
    adam_eps: float = 1e-8,
    seed_batch: int | None = None,
    check_divergence: bool = True,
    divergence_factor: float = 1e6,
) -> Trajectory:
    r"""Train ``seeds`` independent width-``width`` networks and return their :class:`Trajectory`.

    ``param``: preset name (``limits.param(name, depth, gamma0=gamma0,
    optimizer=optimizer or "sgd")``) or a :class:`Parametrization` of depth
    ``depth`` (for residual tables, ``"depth-mup"``, ``"completep"``, ``"resnet"``:
    the number of blocks L; the network is the ResNet of :mod:`limits.finite.network`).
    Data ``X`` (P, D), ``y`` (P,) (default: ``limits.datasets.teacher()``);
    loss ``1/(2P) sum (f - y)^2``, full batch, ``steps`` updates (``steps + 1``
    entries). ``record`` names quantities from :data:`RECORDABLE`, measured at
    ``record_steps`` (default ``(0, steps)``).

    Returns a Trajectory with ``losses`` (S, T+1), ``loss`` (seed mean),
    ``loss_stderr``, ``predictions`` (T+1, P, seed mean), ``prediction_cov``
    (T+1, P, P over seeds, None if S = 1 or too large), ``test_predictions``
    (T+1, Q) and ``test_loss`` (with ``y_test``), ``ntk`` (K, P, P, seed mean),
    ``kernels`` (``phi{l}``, ``g{l}``: (K, P, P), seed mean). ``diagnostics``
    holds per-seed arrays: ``predictions_per_seed`` (S, T+1, P),
    ``test_predictions_per_seed``, ``ntk_per_seed`` (S, K, P, P),
    ``kernels_per_seed``, ``delta_h`` and ``h_rms`` (S, K, L), ``delta_f`` (S, K),
    ``W_spectral`` and ``dW_spectral`` (S, K, L+1), ``wall_s``, ``init_s`` and
    ``steps_per_s`` (whole ensemble, including compilation on a first call).

    Raises :class:`SimulationDiverged` (a ValueError) naming the first step whose
    seed-mean loss is non-finite or above ``divergence_factor * max(1, loss_0)``
    unless ``check_divergence=False``.
    """
    depth = _check_int(depth, "depth", 1)
    p = resolve(param, depth, gamma0=gamma0, optimizer=optimizer)
    if X is None and y is None:
        ds = _data.teacher()
        X, y = ds.X, ds.y
    elif X is None or y is None:
        raise ValueError("give both X and y (or neither, for the default teacher dataset)")
    X, y, X_test = _data.validate(X, y, X_test)
    if y_test is not None:
        if X_test is None:
            raise ValueError("y_test was given without X_test")
        y_test = np.asarray(y_test, dtype=np.float64).reshape(-1)
        if y_test.shape[0] != X_test.shape[0] or not np.all(np.isfinite(y_test)):
            raise ValueError(f"y_test must be finite with one entry per row of X_test ({X_test.shape[0]})")
    lr = _check_positive(lr, "lr")
    steps = _check_int(steps, "steps", 0)
    seeds = _check_int(seeds, "seeds", 1)
    seed = _check_int(seed, "seed", 0)
    adam_eps = _check_positive(adam_eps, "adam_eps")
    divergence_factor = _check_positive(divergence_factor, "divergence_factor")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    act = _activations.get(activation)
    rec = _check_record(record)
    rsteps = _check_record_steps(record_steps, steps)
    net = p.instantiate(width, X.shape[1])
    P, Q, K = X.shape[0], (0 if X_test is None else X_test.shape[0]), len(rsteps)
    hidden = len(net.multipliers) - 1  # hidden representations h^1..: L (MLP) or L+1 (ResNet, L blocks)
    jdt = jnp.dtype(dtype)
    batch = _seed_batch(seed_batch, seeds, net, p.optimizer, "spectral" in rec, jdt.itemsize)

    total = steps + 1
    length = _MAX_CHUNK  # static buffer size; the step count per chunk is traced (one compile for any steps)
    n_chunks = -(-total // length)
    adam = (0.9, 0.999, adam_eps)
    run = _chunk_fn(depth, bool(net.residual), act, p.optimizer, rec, length, X_test is not None, adam)

    mult, lr_scales = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jdt), _net.layer_scales(net))
    Xj, yj = jnp.asarray(X, jdt), jnp.asarray(y, jdt)
    Xt = jnp.asarray(X_test if X_test is not None else np.zeros((0, X.shape[1])), jdt)
    rsteps_j = jnp.asarray(rsteps)

    loss_parts, f_parts, ft_parts, rec_parts = [], [], [], []
    batches = [np.arange(s, min(s + batch, seeds)) for s in range(0, seeds, batch)]
    bar = _progress(len(batches) * n_chunks, progress, f"simulate {p.name} n={net.width}")
    start = time.perf_counter()
    init_s = 0.0
    threshold = None
    try:
        for ids in batches:
            tick = time.perf_counter()
            params = _init_batch(seed, ids, net, np.dtype(dtype))
            init_s += time.perf_counter() - tick
            dummy = tuple(jnp.zeros((len(ids),), jdt) for _ in params)
            params0 = tuple(jnp.copy(w) for w in params) if "spectral" in rec else dummy
            h0 = (jnp.zeros((len(ids), hidden, P, net.width), jdt) if net.residual
                  else [jnp.zeros((len(ids), P, net.width), jdt) for _ in range(hidden)])
            origin = (jnp.zeros((len(ids), P), jdt), h0) if "features" in rec else ((), ())
            opt = () if p.optimizer == "sgd" else tuple(tuple(jnp.zeros_like(w) for w in params) for _ in range(2))
            state = (params, opt, _buffers(rec, K, len(ids), P, hidden, jdt), origin)
            losses, fs, fts = [], [], []
            for c in range(n_chunks):
                count = min(length, total - c * length)
                state, (lo, f, ft) = run(state, c * length, count, mult, lr_scales, jnp.asarray(lr, jdt), Xj, yj, Xt, rsteps_j, params0)
                losses.append(np.asarray(lo)[:count])
                fs.append(np.asarray(f)[:count])
                fts.append(np.asarray(ft)[:count])
                bar.update(1)
                if check_divergence:
                    seen = np.concatenate(losses)[:total].T
                    threshold = threshold or divergence_factor * max(1.0, float(np.mean(seen[:, 0])))
                    bad = _first_bad_step(seen, threshold)
                    if bad is not None:
                        value = float(seen[:, bad].mean())
                        raise SimulationDiverged(
                            f"simulation diverged at step {bad} (seed-mean loss {value:.3g}) for {p.name} at "
                            f"width {net.width}, depth {depth}{' blocks' if net.residual else ''}, lr={lr:g}; "
                            f"try a smaller learning rate "
                            f"(e.g. lr={lr / 4:g})",
                            bad,
                            lr,
                        )
            loss_parts.append(np.concatenate(losses)[:total].T)
            f_parts.append(np.concatenate(fs)[:total].transpose(1, 0, 2))
            ft_parts.append(np.concatenate(fts)[:total].transpose(1, 0, 2))
            rec_parts.append({k: np.swapaxes(np.asarray(v), 0, 1) for k, v in state[2].items()})
            del state, params, params0, opt, origin
    finally:
        bar.close()
    wall = time.perf_counter() - start

    losses = np.concatenate(loss_parts)  # (S, T+1)
    preds = np.concatenate(f_parts)  # (S, T+1, P)
    recs = {k: np.concatenate([r[k] for r in rec_parts]) for k in rec_parts[0]} if rec else {}
    return _trajectory(
        p, net, act, losses, preds, np.concatenate(ft_parts) if Q else None, y_test, recs, rsteps, rec,
        dict(lr=lr, steps=steps, seeds=seeds, seed=seed, dtype=dtype, gamma0=gamma0 if isinstance(param, str) else None,
             adam_eps=adam_eps if p.optimizer == "adam" else None),
        (wall, init_s),
    )


def _trajectory(p, net, act, losses, preds, test_preds, y_test, recs, rsteps, rec, settings, timing) -> Trajectory:
    S, T1, P = preds.shape
    with np.errstate(all="ignore"):  # diverged runs (check_divergence=False) carry inf/nan
        return _assemble(p, net, act, losses, preds, test_preds, y_test, recs, rsteps, rec, settings, timing, S, T1, P)


def _assemble(p, net, act, losses, preds, test_preds, y_test, recs, rsteps, rec, settings, timing, S, T1, P) -> Trajectory:
    wall, init_s = timing
    train_s = wall - init_s
    loss_stderr = losses.std(axis=0, ddof=1) / math.sqrt(S) if S > 1 else np.zeros(T1)
    cov = None
    if S > 1 and T1 * P * P <= 2e7:
        centered = preds - preds.mean(axis=0)
        cov = np.einsum("stp,stq->tpq", centered, centered) / (S - 1)
    kernels: dict[str, np.ndarray] = {}
    diagnostics: dict[str, Any] = {
        "predictions_per_seed": preds,
        "wall_s": wall,  # everything after input checks, compilation included
        "init_s": init_s,  # drawing the initial weights
        "steps_per_s": T1 / train_s if train_s > 0 else math.inf,  # observations+updates (T+1) per second
    }
    if "kernels" in rec:
        per_seed = {}
        for l in range(recs["phi"].shape[2]):
            per_seed[f"phi{l + 1}"] = recs["phi"][:, :, l]
            per_seed[f"g{l + 1}"] = recs["g"][:, :, l]
        kernels = {k: v.mean(axis=0) for k, v in per_seed.items()}
        diagnostics["kernels_per_seed"] = per_seed
    ntk = None
    if "ntk" in rec:
        diagnostics["ntk_per_seed"] = recs["ntk"]
        ntk = recs["ntk"].mean(axis=0)
    for name in ("delta_h", "h_rms", "delta_f", "W_spectral", "dW_spectral"):
        if name in recs:
            diagnostics[name] = recs[name]
    test_loss = None
    if test_preds is not None:
        diagnostics["test_predictions_per_seed"] = test_preds
        if y_test is not None:
            per_seed_test = 0.5 * np.mean((test_preds - y_test) ** 2, axis=2)
            diagnostics["test_losses"] = per_seed_test
            test_loss = per_seed_test.mean(axis=0)
    meta = {
        "solver": "simulate",
        "param": p.name,
        "depth": net.depth,
        "residual": bool(net.residual),
        "branch_multiplier": float(net.branch_multiplier) if net.residual else None,
        "width": net.width,
        "input_dim": net.input_dim,
        "optimizer": net.optimizer,
        "activation": act.name,
        "multipliers": net.multipliers.tolist(),
        "init_stds": net.init_stds.tolist(),
        "lr_scales": net.lr_scales.tolist(),
        **settings,
    }
    return Trajectory(
        loss=losses.mean(axis=0),
        predictions=preds.mean(axis=0),
        test_predictions=None if test_preds is None else test_preds.mean(axis=0),
        test_loss=test_loss,
        losses=losses,
        loss_stderr=loss_stderr,
        prediction_cov=cov,
        ntk=ntk,
        kernels=kernels,
        kernel_steps=rsteps if rec else None,
        meta=meta,
        diagnostics=diagnostics,
    )


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled or total <= 1:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
