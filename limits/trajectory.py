"""The result type shared by every solver and the finite-width simulator.

A :class:`Trajectory` records full-batch gradient descent at steps ``t = 0..T``
(``T + 1`` entries). Solvers (kernel limit, DMFT) and the simulator all return
it, so analysis code never needs to know where a trajectory came from.

Shapes (``T = steps``, ``P`` train points, ``Q`` test points, ``S`` seeds):

- ``loss``: (T+1,) train loss ``1/(2P) sum (f - y)^2`` averaged over random
  initializations (ensemble mean for a simulator).
- ``predictions``: (T+1, P) mean predictor on the train set.
- ``test_predictions``: (T+1, Q) or None.
- ``losses``: (S, T+1) per-seed losses (simulator) or None.
- ``loss_stderr``: (T+1,) standard error of ``loss`` (seeds or Monte Carlo) or None.
- ``prediction_cov``: (T+1, P, P) covariance of train predictions over
  initializations, or None (zero in deterministic limits); for ``solve_dmft(..., width=N)`` the leading-order
  theory at width N (docs/theory/finite_width.md).
- ``test_prediction_cov``: (T+1, Q, Q) the same for the test points, or None.
- ``loss_std``: (T+1,) standard deviation of the train loss over initializations (simulator: over seeds;
  ``solve_dmft(..., width=N)``: leading order in 1/N), or None.
- ``ntk``: (K, P, P) NTK at ``kernel_steps`` or None.
- ``kernels``: mapping name -> array, e.g. ``"phi1"`` of shape (K, P, P) for the
  feature kernel of layer 1 at ``kernel_steps``; ``"g2"`` for gradient kernels.
- ``kernel_steps``: (K,) integer steps at which kernels were recorded.
- ``predictions_per_seed``: (S, T+1, P) per-seed train predictions (simulator) or None.
- ``test_predictions_per_seed``: (S, T+1, Q) or None. ``test_losses``: (S, T+1) or None.
- ``ntk_per_seed``: (S, K, P, P) or None. ``kernels_per_seed``: name -> (S, K, P, P).
- ``ntk_var``: (K, P, P) variance of each NTK entry over initializations (``solve_dmft(..., width=N)``) or None;
  ``kernel_vars``: name -> (K, P, P), the same for the kernels.
- ``prediction_stderr``: (T+1, P) Monte Carlo standard error of ``predictions`` (DMFT) or None.
- ``test_prediction_var``: (T+1, Q) variance of the test predictions over initializations / the posterior
  (kernel limit, ``record="test_variance"``) or None.
- ``meta``: settings that produced the trajectory; always the keys of :data:`limits.checks.META_KEYS`
  (``solver``, ``param``, ``depth``, ``width``, ``activation``, ``gamma0``, ``lr``, ``steps``, ``seed``,
  ``method``, ``wall_s``), then solver-specific ones.
- ``diagnostics``: solver-specific, informational scalars and text (how samples were chosen, timings of parts,
  ...); nothing that analysis code reads: arrays that code reads are typed fields above.

A Trajectory is a JAX pytree: the arrays (and the kernel mappings) are leaves, ``meta`` and ``diagnostics`` are
static, so ``jax.tree_util.tree_map(np.log, traj)`` or ``jax.device_put(traj)`` work on it. It is registered
(:func:`register_pytree`) when a Trajectory is made with JAX loaded, as every solver does; ``import limits`` itself
stays free of JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import sys

import numpy as np

__all__ = ["Trajectory", "register_pytree"]


_LEAVES = ("loss", "predictions", "test_predictions", "test_loss", "losses", "loss_stderr", "prediction_cov", "ntk",
           "kernels", "kernel_steps", "predictions_per_seed", "test_predictions_per_seed", "test_losses",
           "ntk_per_seed", "kernels_per_seed", "prediction_stderr", "test_prediction_var", "test_prediction_cov",
           "loss_std", "ntk_var", "kernel_vars")


class _Static:
    """Static pytree data (``meta``, ``diagnostics``): equal when it is the same object (they hold arrays, so value
    equality would be ambiguous), hashed by identity."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Static) and other.value is self.value

    def __hash__(self):
        return id(self.value)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Gradient-descent trajectory of a network or of one of its limits."""

    loss: np.ndarray
    predictions: np.ndarray
    test_predictions: np.ndarray | None = None
    test_loss: np.ndarray | None = None
    losses: np.ndarray | None = None
    loss_stderr: np.ndarray | None = None
    prediction_cov: np.ndarray | None = None
    ntk: np.ndarray | None = None
    kernels: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    kernel_steps: np.ndarray | None = None
    predictions_per_seed: np.ndarray | None = None
    test_predictions_per_seed: np.ndarray | None = None
    test_losses: np.ndarray | None = None
    ntk_per_seed: np.ndarray | None = None
    kernels_per_seed: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    prediction_stderr: np.ndarray | None = None
    test_prediction_var: np.ndarray | None = None
    test_prediction_cov: np.ndarray | None = None
    loss_std: np.ndarray | None = None
    ntk_var: np.ndarray | None = None
    kernel_vars: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    diagnostics: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if "jax" in sys.modules:  # a pytree as soon as JAX is loaded (the solvers load it); `import limits` does not
            register_pytree()
        loss = np.asarray(self.loss)
        if loss.ndim != 1:
            raise ValueError(f"Trajectory.loss must have shape (steps+1,), got {loss.shape}")
        preds = np.asarray(self.predictions)
        if preds.ndim != 2 or preds.shape[0] != loss.shape[0]:
            raise ValueError(
                "Trajectory.predictions must have shape (steps+1, P) matching loss; "
                f"got {preds.shape} with loss {loss.shape}"
            )
        if self.losses is not None and np.asarray(self.losses).shape[-1] != loss.shape[0]:
            raise ValueError("Trajectory.losses must have shape (seeds, steps+1)")

    @property
    def steps(self) -> int:
        """Number of gradient steps ``T`` (the trajectory has ``T + 1`` entries)."""
        return int(np.asarray(self.loss).shape[0] - 1)

    @property
    def times(self) -> np.ndarray:
        """Step indices ``0..T``."""
        return np.arange(self.steps + 1)

    @property
    def width_corrections(self) -> tuple:
        """The finite-width corrections this trajectory includes (``meta["finite_width"]["corrections"]`` of a
        ``solve_dmft(..., width=N)`` theory, e.g. ``("covariance", "mean_shift", "variance_in_loss")``); ``()``
        for anything else."""
        info = self.meta.get("finite_width")
        return tuple(info.get("corrections", ())) if isinstance(info, Mapping) else ()

    @property
    def final_loss(self) -> float:
        return float(np.asarray(self.loss)[-1])

    def kernel(self, name: str) -> np.ndarray:
        """Recorded kernel by name (``"ntk"``, ``"phi1"``, ``"g2"``, ...)."""
        if name == "ntk":
            if self.ntk is None:
                raise KeyError("this trajectory recorded no NTK; ask the solver to record it")
            return np.asarray(self.ntk)
        if name not in self.kernels:
            known = ", ".join(sorted(self.kernels)) or "none"
            raise KeyError(f"kernel {name!r} was not recorded (recorded: {known})")
        return np.asarray(self.kernels[name])

    def tree_flatten(self):
        return tuple(getattr(self, k) for k in _LEAVES), (_Static(self.meta), _Static(self.diagnostics))

    @classmethod
    def tree_unflatten(cls, aux, children):
        out = object.__new__(cls)  # no shape checks: JAX transforms pass placeholder leaves
        for k, v in zip(_LEAVES, children):
            object.__setattr__(out, k, v)
        object.__setattr__(out, "meta", aux[0].value)
        object.__setattr__(out, "diagnostics", aux[1].value)
        return out

    def replace(self, **changes: Any) -> "Trajectory":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-able dict of every field (arrays as ``{"ndarray": nested lists, "dtype": ...}``, exact for float64;
        NaN/inf kept by ``json.dumps``' default); :meth:`from_dict` reads it back. Values in ``meta`` and
        ``diagnostics`` that are neither numbers, strings, arrays nor containers of them are stored as their repr."""
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Trajectory":
        """The :class:`Trajectory` of :meth:`to_dict`'s output."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"not a Trajectory dict: unknown fields {sorted(unknown)}")
        return cls(**{k: _decode(v) for k, v in data.items()})

    def summary(self) -> str:
        """One-line human-readable summary."""
        solver = self.meta.get("solver", "?")
        width = self.meta.get("width", "?")
        return (
            f"Trajectory[{solver}, width={width}, steps={self.steps}]: "
            f"loss {float(np.asarray(self.loss)[0]):.4g} -> {self.final_loss:.4g}"
        )

    def __repr__(self) -> str:  # keep reprs short: arrays can be large
        return self.summary()


def _encode(value):
    """JSON-able form of a field value (see :meth:`Trajectory.to_dict`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {"mapping": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v) for v in value]}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            return {"ndarray": arr.tolist(), "dtype": str(arr.dtype), "shape": list(arr.shape)}
    return {"repr": repr(value)}


def _decode(value):
    if not isinstance(value, dict):
        return value
    if "ndarray" in value:
        return np.asarray(value["ndarray"], dtype=value["dtype"]).reshape(value["shape"])
    if "mapping" in value:
        return {k: _decode(v) for k, v in value["mapping"].items()}
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "list" in value:
        return [_decode(v) for v in value["list"]]
    return value["repr"]


def register_pytree() -> None:
    """Register :class:`Trajectory` as a JAX pytree (once). Called when a Trajectory is made with JAX loaded, so that
    ``import limits`` (tables, the CLI) does not pay for importing JAX."""
    if not getattr(register_pytree, "done", False):
        import jax

        jax.tree_util.register_pytree_node(Trajectory, Trajectory.tree_flatten, Trajectory.tree_unflatten)
        register_pytree.done = True
