r"""Finite-width simulation of full-batch training, vmapped over random seeds.

:func:`simulate` instantiates the parametrization at the requested width (the
one numeric source of truth, :meth:`Parametrization.instantiate`) and trains an
ensemble of ``seeds`` independent networks (MLPs, or ResNets for residual
tables such as ``"depth-mup"``; see :mod:`limits.finite.network`) with
full-batch SGD or Adam:

- SGD:  ``w_l <- w_l - lr * lr_scales[l] * dLoss/dw_l``;
- Adam: ``w_l <- w_l - lr * lr_scales[l] * mhat_l / (sqrt(vhat_l) + eps)``, standard
  bias-corrected Adam with ``betas = (0.9, 0.999)`` and ``eps = Simulation.adam_eps`` (1e-8),
  moments per raw weight, ``mhat = m / (1 - b1^k)`` at update ``k = 1, 2, ...``.

The whole trajectory runs in a ``lax.scan`` (split into a few chunks so progress
can be shown and a divergence stops the run early); seeds are a ``vmap``
(processed in batches of ``Simulation.seed_batch`` seeds if memory requires). Network ``i``
of ``seed=s`` draws layer ``l`` from NumPy's ``default_rng([s, i, l])``, so results
are deterministic and the first k seeds of a larger ensemble are the same networks.

A call runs in four named steps: :func:`_validate` (arguments -> :class:`_Setup`), :func:`_compile` (the jitted
chunk function, cached per setting and dtype), :func:`_run` (seed batches x chunks) and :func:`_assemble`
(-> :class:`~limits.Trajectory`). Float64 runs under a scoped ``jax.enable_x64(True)``: nothing global changes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _activations
from .. import checks
from ..parametrization import Parametrization, entry_table
from ..trajectory import Trajectory
from . import network as _net
from . import optimizers as _optimizers
from .options import Simulation

__all__ = ["simulate", "SimulationDiverged", "RECORDABLE", "Simulation", "resolve_table"]

RECORDABLE = ("ntk", "kernels", "features", "spectral")
"""Quantities :func:`simulate` can record at ``Simulation.record_steps`` (``K`` steps, default ``(0, steps)``):

- ``"ntk"``: learning-rate-weighted empirical NTK, ``Trajectory.ntk`` (K, P, P) and ``ntk_per_seed`` (S, K, P, P);
- ``"kernels"``: ``phi1..phiL`` and ``g1..gL`` (``kernels`` (K, P, P), ``kernels_per_seed`` (S, K, P, P); ResNets
  with L blocks: ``phi1..phi{L+1}``, ``g1..g{L+1}`` for the residual stream ``h^1..h^{L+1}``), see
  :mod:`limits.finite.network`;
- ``"features"``: ``diagnostics["gain"]`` (S, K, L-1): sublayer gains ``RMS h^{l+1} / RMS phi(h^l)`` of an MLP's
  hidden matrices on the training inputs (ResNets: (S, K, 0));
  ``diagnostics["delta_h"]``, ``["h_rms"]`` (S, K, L'): RMS ``|h^l_t - h^l_0|`` and ``|h^l_t|`` per
  hidden representation (L' = L for an MLP, L+1 for a ResNet), ``["delta_f"]`` (S, K): RMS ``|f_t - f_0|``;
- ``"spectral"``: ``diagnostics["W_spectral"]``, ``["dW_spectral"]`` (S, K, L'+1): spectral norms of the effective
  weights ``m_l w_l`` (ResNet blocks: ``b m_l W_l``) and of their change since initialization.

The ``"features"`` and ``"spectral"`` arrays are what :func:`limits.coord_check` measures.
"""

_MAX_CHUNK = 128
_DEFAULT_MEMORY = 4 * 2**30


class SimulationDiverged(ValueError):
    """Training diverged: the loss became non-finite or exploded at ``step``."""

    def __init__(self, message: str, step: int, lr: float):
        super().__init__(message)
        self.step = step
        self.lr = lr


# --------------------------------------------------------------- validation
@dataclasses.dataclass(frozen=True)
class _Setup:
    """Validated arguments of one :func:`simulate` call (``net``: the table instantiated at ``width``)."""

    table: Parametrization
    net: Any
    act: _activations.Activation
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    lr: float
    steps: int
    seeds: int
    seed: int
    record: frozenset
    record_steps: np.ndarray
    method: Simulation
    gamma0: float | None
    progress: bool


def resolve_table(param, depth, gamma0, optimizer) -> tuple[Parametrization, float | None]:
    """``(table, gamma0)`` for the shared ``param, depth, gamma0, optimizer`` arguments
    (:func:`limits.parametrization.entry_table`)."""
    return entry_table(param, depth, gamma0=gamma0, optimizer=optimizer)


def _record_steps(method: Simulation, record: frozenset, steps: int) -> np.ndarray:
    """The (K,) recording steps: ``method.record_steps`` (each in [0, steps]) or ``(0, steps)``."""
    if method.record_steps is None:
        return np.unique(np.array([0, steps], dtype=np.int64))
    if not record:
        raise checks.inapplicable("Simulation.record_steps", "record= is empty, nothing is measured")
    if max(method.record_steps) > steps:
        raise ValueError(f"Simulation.record_steps must lie in [0, steps={steps}], got {list(method.record_steps)}")
    return np.asarray(method.record_steps, dtype=np.int64)


def _validate(param, depth, width, X, y, activation, gamma0, optimizer, lr, steps, X_test, y_test, seed, seeds,
              record, progress, method) -> _Setup:
    """Every argument checked (no coercion, errors name the argument) and the table instantiated."""
    table, gamma0 = resolve_table(param, depth, gamma0, optimizer)
    width = checks.width(width, "width", infinite=False)
    X, y, X_test, y_test = checks.default_data(X, y, X_test, y_test)
    method = checks.option(method, "method", Simulation, Simulation())
    if table.optimizer == "sgd" and method.adam_eps != Simulation.adam_eps:
        raise checks.inapplicable("Simulation.adam_eps", f"the table {table.name!r} trains with SGD, not Adam")
    steps = checks.integer(steps, "steps", 1)
    rec = checks.record(record, "record", supported=RECORDABLE)
    net, lr = table.instantiate(width, X.shape[1]), checks.positive(lr, "lr")
    _check_shrink(table, net, lr)
    return _Setup(
        table=table, net=net, act=_activations.get(activation), X=X, y=y,
        X_test=X_test, y_test=y_test, lr=lr, steps=steps,
        seeds=checks.integer(seeds, "seeds", 1), seed=0 if seed is None else checks.seed(seed, "seed"), record=rec,
        record_steps=_record_steps(method, rec, steps), method=method, gamma0=gamma0,
        progress=checks.boolean(progress, "progress"),
    )


def _check_shrink(table: Parametrization, net, lr: float) -> None:
    """Weight decay must shrink each layer by less than itself per step (else its weights flip sign and grow): a
    :class:`SimulationDiverged` at step 0 (a sweep records the point as diverged)."""
    if net.weight_decays is None:
        return
    shrink = net.weight_decays * (lr * net.lr_scales if table.decay == "decoupled" else 1.0)
    for i, x in enumerate(shrink):
        if x >= 1:
            what = "lr * lr_scale * lambda" if table.decay == "decoupled" else "lambda"
            raise SimulationDiverged(f"weight decay of layer {i + 1} removes {x:.3g} of the weights per step at "
                                     f"width {net.width} ({what}; must be < 1, else they flip sign and grow): lower "
                                     f"weight_decay or lr", 0, lr)


# ------------------------------------------------------------ compiled pieces
def _step_fn(activation: _activations.Activation, rule: tuple, adam: tuple[float, float, float], has_test: bool):
    """One network's observation and update at step ``t``: ``(params, opt) -> (new, opt, loss, f, f_test, hs)``.

    Loss ``1/(2P) |f - y|^2``; its gradient by one VJP of the forward pass; the update of
    :func:`limits.finite.optimizers.make_update` for ``rule = (optimizer, decay, muon rows)``.
    """
    phi = activation.fn
    update = _optimizers.make_update(*rule, adam)

    def step_one(params, opt, t, mult, scales, lr, X, y, Xt):
        f, vjp, hs = jax.vjp(lambda p: _net.forward(p, mult, X, phi), params, has_aux=True)
        r = f - y
        loss = 0.5 * jnp.mean(r * r)
        (grads,) = vjp(r / y.shape[0])
        ft = _net.forward(params, mult, Xt, phi)[0] if has_test else jnp.zeros((0,), f.dtype)
        new, opt = update(params, grads, opt, t, lr, *scales)
        return new, opt, loss, f, ft, hs

    return step_one


def _measure_fn(activation: _activations.Activation, record: frozenset):
    """One network's recorded quantities (see :data:`RECORDABLE`) given its forward pass and its state at t = 0."""
    phi, dphi = activation.fn, activation.deriv

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
            # sublayer gains of an MLP's hidden matrices: RMS h^{l+1} / RMS phi(h^l) (residual streams: none)
            out["gain"] = out["h_rms"][1:] / jnp.sqrt(jnp.mean(phi(H[:-1]) ** 2, axis=(-2, -1))) \
                if isinstance(hs, (list, tuple)) else jnp.zeros((0,), H.dtype)
            out["delta_f"] = jnp.sqrt(jnp.mean((f - f0) ** 2))
        if "spectral" in record:
            out["W_spectral"] = _net.effective_spectral_norms(params, mult)
            out["dW_spectral"] = _net.effective_spectral_norms(tuple(w - w0 for w, w0 in zip(params, params0)), mult)
        return out

    return measure_one


@functools.lru_cache(maxsize=64)
def _chunk_fn(activation: _activations.Activation, rule: tuple, record: frozenset, length: int, has_test: bool,
              adam: tuple[float, float, float], dtype: str, donate: bool = True):
    """Jitted: ``count <= length`` observations/updates from step ``t0`` for a batch of seeds.

    State ``(params, opt, buffers, origin)``; per step it observes the network (loss, train/test outputs),
    records into ``buffers[name][k]`` when ``t == record_steps[k]``, then updates the weights. Outputs (length, S),
    (length, S, P), (length, S, Q). Cached per setting and ``dtype`` (float64 and float32 traces never mix).
    """
    step_one, measure_one = _step_fn(activation, rule, adam, has_test), _measure_fn(activation, record)

    def run(state, t0, count, mult, scales, lr, X, y, Xt, record_steps, params0):
        # ``count`` is traced, so XLA sees a while loop it cannot unroll (fast compiles)
        S, P, Q = state[0][0].shape[0], X.shape[0], Xt.shape[0]
        outs = (jnp.zeros((length, S), X.dtype), jnp.zeros((length, S, P), X.dtype), jnp.zeros((length, S, Q), X.dtype))

        def body(i, carry):
            params, opt, buf, origin, outs = carry
            t = t0 + i
            new, opt2, loss, f, ft, hs = jax.vmap(step_one, in_axes=(0, 0, None, None, None, None, None, None, None))(
                params, opt, t, mult, scales, lr, X, y, Xt
            )
            if "features" in record:  # remember f and h^l at t = 0
                origin = jax.lax.cond(t == 0, lambda o: (f, hs), lambda o: o, origin)
            if record:
                match = record_steps == t

                def write(b):
                    vals = jax.vmap(measure_one, in_axes=(0, 0, 0, 0, 0, 0, None, None, None))(
                        params, f, hs, *origin, params0, mult, scales[0], X
                    )
                    idx = jnp.argmax(match)
                    return {name: b[name].at[idx].set(vals[name]) for name in b}

                buf = jax.lax.cond(jnp.any(match), write, lambda b: b, buf)
            outs = tuple(o.at[i].set(v) for o, v in zip(outs, (loss, f, ft)))
            return new, opt2, buf, origin, outs

        *state, outs = jax.lax.fori_loop(0, count, body, (*state, outs))
        return tuple(state), outs

    return jax.jit(run, donate_argnums=(0,) if donate else ())


def _compile(s: _Setup):
    """The chunk function of this setting (compiled on its first call, then cached)."""
    adam = (0.9, 0.999, s.method.adam_eps)
    muon = s.net.muon
    if s.net.residual and muon:  # the blocks are stacked: one rule for all of them
        muon = (muon[0], all(muon[1:-1]), muon[-1])
    rule = (s.table.optimizer, s.table.decay, muon or (False,) * len(s.net.shapes))
    # the state is donated on one device (it only saves memory); sharded states are not
    return _chunk_fn(s.act, rule, s.record, _MAX_CHUNK, s.X_test is not None, adam, s.method.dtype,
                     len(_devices(s)) == 1)


# ---------------------------------------------------------------------- run
def _buffers(record: frozenset, K: int, S: int, P: int, depth: int, dtype, residual: bool = False) -> dict:
    """NaN-filled record buffers (K, S, ...); ``depth`` = number of hidden representations (layers - 1)."""
    shapes: dict[str, tuple] = {}
    if "ntk" in record:
        shapes["ntk"] = (P, P)
    if "kernels" in record:
        shapes["phi"] = shapes["g"] = (depth, P, P)
    if "features" in record:
        shapes["delta_h"] = shapes["h_rms"] = (depth,)
        shapes["gain"] = (0 if residual else depth - 1,)
        shapes["delta_f"] = ()
    if "spectral" in record:
        shapes["W_spectral"] = shapes["dW_spectral"] = (depth + 1,)
    return {k: jnp.full((K, S) + s, jnp.nan, dtype) for k, s in shapes.items()}


def _seed_batch(s: _Setup) -> int:
    """Seeds per ``vmap``: ``Simulation.seed_batch``, or as many as fit in ``_DEFAULT_MEMORY`` (weights x state)."""
    if s.method.seed_batch is not None:
        return min(s.method.seed_batch, s.seeds)
    count = sum(math.prod(shape) for shape in s.net.shapes)
    factor = (3 if s.table.optimizer == "sgd" else 5) + (1 if "spectral" in s.record else 0)
    per_seed = count * np.dtype(s.method.dtype).itemsize * factor
    return max(1, min(s.seeds, _DEFAULT_MEMORY // per_seed))


def _initial_state(s: _Setup, ids: np.ndarray) -> tuple:
    """``(state, params0)`` of seeds ``ids``: weights from ``default_rng([seed, i, l])``, zero optimizer moments,
    NaN record buffers, placeholders for the t = 0 features (``"features"``) and weights (``"spectral"``)."""
    net, jdt, S, P = s.net, jnp.dtype(s.method.dtype), len(ids), s.X.shape[0]
    per_seed = [_net.init_params(s.seed, int(i), net.init_stds, net.depth, net.width, net.input_dim,
                                 np.dtype(s.method.dtype), residual=net.residual) for i in ids]
    params = tuple(jnp.asarray(np.stack([ws[l] for ws in per_seed])) for l in range(len(per_seed[0])))
    hidden = len(net.multipliers) - 1  # hidden representations h^1..: L (MLP) or L+1 (ResNet, L blocks)
    dummy = tuple(jnp.zeros((S,), jdt) for _ in params)
    params0 = tuple(jnp.copy(w) for w in params) if "spectral" in s.record else dummy
    h0 = (jnp.zeros((S, hidden, P, net.width), jdt) if net.residual
          else [jnp.zeros((S, P, net.width), jdt) for _ in range(hidden)])
    origin = (jnp.zeros((S, P), jdt), h0) if "features" in s.record else ((), ())
    opt = () if s.table.optimizer == "sgd" else tuple(tuple(jnp.zeros_like(w) for w in params) for _ in range(2))
    buffers = _buffers(s.record, len(s.record_steps), S, P, hidden, jdt, net.residual)
    return (params, opt, buffers, origin), params0


def _check_divergence(s: _Setup, seen: np.ndarray, threshold: float | None) -> float | None:
    """The divergence threshold (fixed by the first batch's initial loss); raises :class:`SimulationDiverged` at the
    first step whose seed-mean loss over ``seen`` (S_batch, t) is non-finite or above it."""
    if s.method.divergence_factor is None:
        return None
    threshold = threshold or s.method.divergence_factor * max(1.0, float(np.mean(seen[:, 0])))
    mean = seen.mean(axis=0)
    bad = ~np.isfinite(mean) | (mean > threshold)
    if bad.any():
        step = int(np.argmax(bad))
        raise SimulationDiverged(
            f"simulation diverged at step {step} (seed-mean loss {float(mean[step]):.3g}) for {s.table.name} at "
            f"width {s.net.width}, depth {s.net.depth}{' blocks' if s.net.residual else ''}, lr={s.lr:g}; "
            f"try a smaller learning rate (e.g. lr={s.lr / 4:g})",
            step,
            s.lr,
        )
    return threshold


def _devices(s: _Setup) -> list:
    """The local devices the seeds are sharded over: ``Simulation.devices`` of them (an error if more than there
    are); None: all of them."""
    devices = jax.local_devices()
    if s.method.devices is None:
        return devices
    if s.method.devices > len(devices):
        raise ValueError(f"Simulation.devices={s.method.devices} but JAX sees {len(devices)} local device(s) "
                         f"({devices[0].platform}); pass devices=None (all) or at most {len(devices)}")
    return devices[: s.method.devices]


def _shard(state: tuple, params0, devices: list) -> tuple:
    """``(state, params0)`` placed with the seed axis split over ``devices`` (axis 1 of the record buffers (K, S,
    ...), axis 0 of everything else); XLA then partitions the vmapped step over the devices (GSPMD)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("seed",))

    def put(x, axis: int = 0):
        spec = [None] * x.ndim
        spec[axis] = "seed"
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec(*spec)))

    params, opt, buffers, origin = state
    buffers = {k: put(v, 1) for k, v in buffers.items()}
    params, opt, origin, params0 = jax.tree_util.tree_map(put, (params, opt, origin, params0))
    return (params, opt, buffers, origin), params0


def _run_batch(s: _Setup, run, ids: np.ndarray, bar, threshold):
    """Train seeds ``ids`` over all chunks: ``(losses (S_b, T+1), f (S_b, T+1, P), f_test (S_b, T+1, Q),
    records {name: (S_b, K, ...)}, init seconds, threshold)``. With several devices the batch is padded to a
    multiple of their number (copies of the last network, dropped from the outputs) and sharded."""
    jdt = jnp.dtype(s.method.dtype)
    devices, n = _devices(s), len(ids)
    tick = time.perf_counter()
    padded = np.concatenate([ids, np.repeat(ids[-1:], -n % len(devices))])
    state, params0 = _initial_state(s, padded)
    if len(devices) > 1:
        state, params0 = _shard(state, params0, devices)
    init_s = time.perf_counter() - tick
    mult, *scales = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jdt), _net.layer_scales(s.net))
    X_test = s.X_test if s.X_test is not None else np.zeros((0, s.X.shape[1]))
    args = (mult, tuple(scales), jnp.asarray(s.lr, jdt), jnp.asarray(s.X, jdt), jnp.asarray(s.y, jdt),
            jnp.asarray(X_test, jdt), jnp.asarray(s.record_steps), params0)
    total = s.steps + 1
    losses, fs, fts = [], [], []
    for c in range(-(-total // _MAX_CHUNK)):
        count = min(_MAX_CHUNK, total - c * _MAX_CHUNK)
        state, (lo, f, ft) = run(state, c * _MAX_CHUNK, count, *args)
        losses.append(np.asarray(lo)[:count, :n])
        fs.append(np.asarray(f)[:count, :n])
        fts.append(np.asarray(ft)[:count, :n])
        bar.update(1)
        threshold = _check_divergence(s, np.concatenate(losses)[:total].T, threshold)
    recs = {k: np.swapaxes(np.asarray(v), 0, 1)[:n] for k, v in state[2].items()}
    out = (np.concatenate(losses).T, np.concatenate(fs).transpose(1, 0, 2), np.concatenate(fts).transpose(1, 0, 2))
    return (*out, recs, init_s, threshold)


def _run(s: _Setup, run) -> dict:
    """All seed batches: ``losses`` (S, T+1), ``preds`` (S, T+1, P), ``test_preds`` (S, T+1, Q) or None,
    ``records`` {name: (S, K, ...)}, ``init_s`` (seconds drawing weights)."""
    batch, k = _seed_batch(s), len(_devices(s))
    batch = min(s.seeds, -(-batch // k) * k)  # a multiple of the devices where the seeds allow
    batches = [np.arange(i, min(i + batch, s.seeds)) for i in range(0, s.seeds, batch)]
    chunks = -(-(s.steps + 1) // _MAX_CHUNK)
    bar = _progress(len(batches) * chunks, s.progress, f"simulate {s.table.name} n={s.net.width}")
    parts, init_s, threshold = [], 0.0, None
    try:
        for ids in batches:
            *part, t_init, threshold = _run_batch(s, run, ids, bar, threshold)
            parts.append(part)
            init_s += t_init
    finally:
        bar.close()
    losses, preds, test_preds, recs = zip(*parts)
    records = {k: np.concatenate([r[k] for r in recs]) for k in recs[0]}
    return dict(losses=np.concatenate(losses), preds=np.concatenate(preds),
                test_preds=np.concatenate(test_preds) if s.X_test is not None else None, records=records, init_s=init_s)


# ----------------------------------------------------------------- assemble
def _per_seed_kernels(s: _Setup, records: dict) -> dict[str, np.ndarray]:
    """``phi{l}``, ``g{l}`` -> (S, K, P, P) from the stacked (S, K, L', P, P) records (empty without "kernels")."""
    if "kernels" not in s.record:
        return {}
    out = {}
    for l in range(records["phi"].shape[2]):
        out[f"phi{l + 1}"] = records["phi"][:, :, l]
        out[f"g{l + 1}"] = records["g"][:, :, l]
    return out


def _meta(s: _Setup, wall: float) -> dict:
    """:data:`limits.checks.META_KEYS`, then ``seeds``, ``optimizer``, ``data`` (:func:`limits.checks.fingerprint`
    of ``X, y, X_test, y_test``) and the instantiated table's constants."""
    net = s.net
    return {
        "solver": "simulate", "param": s.table.name, "depth": net.depth, "width": net.width, "activation": s.act.name,
        "gamma0": s.gamma0, "lr": s.lr, "steps": s.steps, "seed": s.seed, "method": repr(s.method), "wall_s": wall,
        "seeds": s.seeds, "optimizer": net.optimizer, "data": checks.fingerprint(s.X, s.y, s.X_test, s.y_test),
        "residual": bool(net.residual),
        "branch_multiplier": float(net.branch_multiplier) if net.residual else None, "input_dim": net.input_dim,
        "multipliers": net.multipliers.tolist(), "init_stds": net.init_stds.tolist(),
        "lr_scales": net.lr_scales.tolist(),
    }


def _seed_cov(preds: np.ndarray) -> np.ndarray | None:
    """Equal-time covariance over seeds (T1, P, P) of per-seed predictions (S, T1, P); None for one seed or when it
    would exceed 2e7 entries."""
    S, T1, P = preds.shape
    if S < 2 or T1 * P * P > 2e7:
        return None
    centered = preds - preds.mean(axis=0)
    return np.einsum("stp,stq->tpq", centered, centered) / (S - 1)


def _assemble(s: _Setup, raw: dict, wall: float) -> Trajectory:
    """Seed means, standard errors and covariances of the raw per-seed arrays of :func:`_run`."""
    losses, preds, test_preds, records = raw["losses"], raw["preds"], raw["test_preds"], raw["records"]
    S, T1, P = preds.shape
    loss_stderr = losses.std(axis=0, ddof=1) / math.sqrt(S) if S > 1 else np.zeros(T1, losses.dtype)
    cov, test_cov = _seed_cov(preds), None if test_preds is None else _seed_cov(test_preds)
    kernels_per_seed = _per_seed_kernels(s, records)
    test_losses = None
    if s.y_test is not None:
        test_losses = 0.5 * np.mean((test_preds - s.y_test.astype(test_preds.dtype)) ** 2, axis=2)
    train_s = wall - raw["init_s"]
    diagnostics = {
        "init_s": raw["init_s"],  # drawing the initial weights
        "steps_per_s": T1 / train_s if train_s > 0 else math.inf,  # observations+updates (T+1) per second
        **{k: records[k] for k in ("delta_h", "h_rms", "gain", "delta_f", "W_spectral", "dW_spectral")
           if k in records},
    }
    return Trajectory(
        loss=losses.mean(axis=0), predictions=preds.mean(axis=0),
        test_predictions=None if test_preds is None else test_preds.mean(axis=0),
        test_loss=None if test_losses is None else test_losses.mean(axis=0), losses=losses, loss_stderr=loss_stderr,
        prediction_cov=cov, test_prediction_cov=test_cov,
        loss_std=losses.std(axis=0, ddof=1) if S > 1 else None,
        ntk=records["ntk"].mean(axis=0) if "ntk" in records else None,
        ntk_var=records["ntk"].var(axis=0, ddof=1) if "ntk" in records and S > 1 else None,
        kernel_vars={k: v.var(axis=0, ddof=1) for k, v in kernels_per_seed.items()} if S > 1 else {},
        kernels={k: v.mean(axis=0) for k, v in kernels_per_seed.items()},
        kernel_steps=s.record_steps if s.record else None, predictions_per_seed=preds,
        test_predictions_per_seed=test_preds, test_losses=test_losses, ntk_per_seed=records.get("ntk"),
        kernels_per_seed=kernels_per_seed, meta=_meta(s, wall), diagnostics=diagnostics,
    )


# --------------------------------------------------------------- entry point
def simulate(
    param: str | Parametrization = "mup",
    depth: int | None = None,
    width: int = 256,
    *,
    X=None,
    y=None,
    activation: str | Callable = "tanh",
    gamma0: float | None = None,
    optimizer: str | None = None,
    lr: float = 0.5,
    steps: int = 100,
    X_test=None,
    y_test=None,
    seed: int | None = None,
    seeds: int = 8,
    record: Sequence[str] | str | None = ("ntk", "kernels"),
    progress: bool = True,
    method: Simulation | None = None,
) -> Trajectory:
    r"""Train ``seeds`` independent width-``width`` networks by full-batch gradient descent; their :class:`Trajectory`.

    Args:
        param: preset name or :class:`Parametrization`; residual tables (``"depth-mup"``, ``"completep"``,
            ``"resnet"``) train the ResNet of :mod:`limits.finite.network`.
        depth: hidden layers (MLP) or residual blocks L; None: the table's own depth, 1 for a preset name.
        width: the width N, a positive integer.
        X, y: (P, D) inputs, (P,) targets; both None: ``limits.datasets.teacher()``.
        activation: name or callable. gamma0, optimizer: of a preset (None: 1.0, ``"sgd"``); rejected next to a
            :class:`Parametrization`, which carries its own.
        lr: learning rate; loss ``1/(2P) sum (f - y)^2``, ``steps >= 1`` updates (``steps + 1`` entries).
        X_test, y_test: (Q, D) test inputs and (Q,) targets (``y_test`` needs ``X_test``).
        seed: ensemble seed in [0, 2**32 - 1] (None: 0); network ``i`` draws layer ``l`` from
            ``default_rng([seed, i, l])``. seeds: number of networks S.
        record: names from :data:`RECORDABLE`, measured at ``method.record_steps`` (K steps, default ``(0, steps)``).
        progress: a tqdm bar over seed batches x chunks of 128 steps.
        method: :class:`Simulation` (dtype, seed_batch, divergence_factor, adam_eps, record_steps, devices); None:
            defaults. The seeds are sharded over all local JAX devices unless ``Simulation(devices=...)`` says
            otherwise.

    Returns:
        :class:`Trajectory` with ``losses`` (S, T+1), ``loss`` (seed mean), ``loss_stderr``, ``predictions``
        (T+1, P, seed mean), ``predictions_per_seed`` (S, T+1, P), ``prediction_cov`` (T+1, P, P over seeds; None if
        S = 1 or too large), ``test_prediction_cov`` (T+1, Q, Q), ``loss_std`` (T+1,) the spread of the loss over
        seeds, ``ntk_var`` and ``kernel_vars`` (variances over seeds, S > 1), ``test_predictions`` (T+1, Q) and
        ``test_predictions_per_seed`` (S, T+1, Q) with ``X_test``, ``test_loss`` (T+1,) and ``test_losses`` (S, T+1) with ``y_test``, ``ntk`` (K, P, P) and
        ``ntk_per_seed`` (S, K, P, P), ``kernels`` (``phi{l}``, ``g{l}``: (K, P, P)) and ``kernels_per_seed``
        (S, K, P, P), ``kernel_steps`` (K,). Arrays are float64 (``Simulation.dtype="float32"``: float32).
        ``meta``: :data:`limits.checks.META_KEYS` (``wall_s``: everything after the argument checks, compilation
        included), ``seeds``, ``optimizer``, ``data`` (a fingerprint of the arrays), the instantiated constants.
        ``diagnostics``: ``init_s``, ``steps_per_s`` and the ``"features"`` / ``"spectral"`` arrays of
        :data:`RECORDABLE`.

    Raises:
        ValueError: a bad argument, named (or :class:`limits.checks.ArgumentTypeError`, also a TypeError).
        SimulationDiverged: a ValueError naming the first step whose seed-mean loss is non-finite or above
            ``divergence_factor * max(1, loss_0)`` (unless ``Simulation(divergence_factor=None)``).
    """
    s = _validate(param, depth, width, X, y, activation, gamma0, optimizer, lr, steps, X_test, y_test, seed, seeds,
                  record, progress, method)
    start = time.perf_counter()
    with jax.enable_x64(s.method.dtype == "float64"):
        raw = _run(s, _compile(s))
    wall = time.perf_counter() - start
    with np.errstate(all="ignore"):  # diverged runs (divergence_factor=None) carry inf/nan
        return _assemble(s, raw, wall)


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
