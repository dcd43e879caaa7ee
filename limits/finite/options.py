"""Numerical options of the finite-width simulator (``simulate(..., method=Simulation(...))``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import checks

__all__ = ["Simulation"]


def _record_steps(value) -> tuple[int, ...] | None:
    """Sorted unique steps ``t >= 0`` from an int or a non-empty 1-D sequence of ints (upper bound: at the call)."""
    if value is None:
        return None
    items = np.atleast_1d(np.asarray(value, dtype=object)) if not isinstance(value, str) else None
    if items is None or items.ndim != 1 or items.size == 0:
        raise ValueError(f"Simulation.record_steps must be a non-empty list of integer steps >= 0, got {value!r}")
    return tuple(sorted({checks.integer(v, "Simulation.record_steps", 0) for v in items}))


@dataclasses.dataclass(frozen=True)
class Simulation:
    r"""How :func:`limits.finite.simulate` computes: a small frozen options object, validated on construction.

    Attributes:
        dtype: ``"float64"`` (default) or ``"float32"``, the precision of weights, optimizer state and every
            operation. Float64 runs under a scoped ``jax.enable_x64(True)``; the user's global JAX setting is left
            as it is.
        seed_batch: networks trained at once (one ``vmap`` over this many seeds; the batches run one after
            another). None: as many as fit in about 4 GiB of weights and optimizer state. Results do not depend on
            it (network ``i`` of ``seed=s`` is drawn from ``default_rng([s, i, l])`` whatever the batch), up to
            float64 rounding in the last bit (batched matmuls round differently for different batch sizes).
        divergence_factor: ``simulate`` raises :class:`~limits.finite.SimulationDiverged` at the first step whose
            seed-mean loss is non-finite or above ``divergence_factor * max(1, L_0)`` (``L_0`` the seed-mean
            initial loss of the first batch); a real number > 1. None disables the check (the trajectory then
            carries the inf / NaN values).
        adam_eps: Adam's :math:`\epsilon` in ``w <- w - lr * eta_l * mhat / (sqrt(vhat) + eps_l)``; a positive number,
            the constant of ``eps_l = adam_eps * n^-eps_exponent_l`` (the table's per-layer exponents, default 0).
            Only for Adam tables: a non-default value next to an SGD table is rejected.
        record_steps: steps ``t`` (integers in ``[0, steps]``, checked at the call) at which the ``record=``
            quantities are measured, stored sorted and unique (``K`` entries). None: ``(0, steps)``. Needs a
            non-empty ``record=``.
        devices: how many local JAX devices the seed ensemble is sharded over (``jax.sharding``: each device
            trains its share of every seed batch). None: all of ``jax.local_devices()``; 1: one device. Results do
            not depend on it beyond the last bit. On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=k``
            (set before JAX is imported) makes k devices of the host's cores. Results do not depend on it beyond the last bit (as for
            ``seed_batch``: each device trains a batch of its own size).
    """

    dtype: str = "float64"
    seed_batch: int | None = None
    divergence_factor: float | None = 1e6
    adam_eps: float = 1e-8
    record_steps: tuple[int, ...] | None = None
    devices: int | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("dtype", checks.choice(self.dtype, "Simulation.dtype", ("float64", "float32")))
        if self.seed_batch is not None:
            set_("seed_batch", checks.integer(self.seed_batch, "Simulation.seed_batch", 1))
        if self.divergence_factor is not None:
            factor = checks.positive(self.divergence_factor, "Simulation.divergence_factor")
            if factor <= 1:
                raise ValueError(f"Simulation.divergence_factor must be > 1 (or None to disable the check), "
                                 f"got {self.divergence_factor!r}")
            set_("divergence_factor", factor)
        set_("adam_eps", checks.positive(self.adam_eps, "Simulation.adam_eps"))
        set_("record_steps", _record_steps(self.record_steps))
        if self.devices is not None:
            set_("devices", checks.integer(self.devices, "Simulation.devices", 1))
