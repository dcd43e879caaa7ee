"""How ``limits.solve_dmft`` solves the equations: small validated option objects (``method=``).

- :class:`MonteCarlo`: single-site sample paths marched in time (any activation).
- :class:`Exact`: the deterministic equations of linear networks (no sampling).

``method=None`` picks :class:`Exact` for linear activations and :class:`MonteCarlo` otherwise; an
option that does not apply to the problem is rejected by ``solve_dmft``, never ignored.
"""

from __future__ import annotations

import dataclasses
import functools

from .. import checks
from ..checks import integer, positive

__all__ = ["MonteCarlo", "Exact"]

DTYPES = ("float64", "float32")


@dataclasses.dataclass(frozen=True)
class MonteCarlo:
    """Monte Carlo over single-site paths, marched once forward in time (:mod:`limits.dmft.march`).

    Args:
        samples: paths per solve (even). None: ``max(8192, 5 n)`` as a power of 2 (65536 for two-layer networks, whose
            march keeps no path histories and costs ``O(S n P)``), ``n = (steps + 1) x points``
            (the response functions of depth >= 2 regress on the sources of all ``n`` grid points and need
            ``S >= 5 n``; measured accuracy in docs/theory/dmft.md section 7). Below ``5 n`` a given number of
            paths draws a warning.
        target_stderr: None (default), or a relative standard error of the loss to reach: the first pass's
            error estimate (``loss_stderr``, 16 Sobol blocks, conservative) then sets a second pass of
            ``S (error / target)^2`` paths (a power of 2, at most ``max_samples``) when it is above the target
            (no pilot solves).
        max_samples: cap of ``target_stderr``'s choice (memory grows linearly with the paths).
        qmc: scrambled-Sobol sources (randomized quasi-Monte Carlo) instead of pseudo-random normals.
        antithetic: paths in mirrored pairs (forward sources shared, backward sources negated; ``samples`` even),
            which makes every estimate exactly even in the richness ``gamma``, as the limit is.
        dtype: ``"float64"`` or ``"float32"`` (paths, kernels, responses; about twice the speed on CPU).
        stein_jitter: relative jitter added to the source covariances before their Cholesky factor:
            bounds the noise amplification of the Stein responses (bias O(jitter)). None: 1e-3 for MLPs,
            1e-4 for residual networks (whose control variates are less noisy).
        blocks: time blocks of the march (each is one compiled scan over its prefix of the grid); None:
            by the grid size.
    """

    samples: int | None = None
    target_stderr: float | None = None
    max_samples: int = 65536
    qmc: bool = True
    antithetic: bool = True
    dtype: str = "float64"
    stein_jitter: float | None = None
    blocks: int | None = None

    def __post_init__(self):
        put = functools.partial(object.__setattr__, self)  # canonical values: equal settings, equal reprs
        if self.samples is not None:
            put("samples", integer(self.samples, "MonteCarlo.samples", 16))
            if self.samples % 2 and self.antithetic:
                raise ValueError(f"MonteCarlo.samples must be even (paths come in mirrored pairs), got {self.samples}")
        if self.target_stderr is not None:
            put("target_stderr", positive(self.target_stderr, "MonteCarlo.target_stderr"))
        put("max_samples", integer(self.max_samples, "MonteCarlo.max_samples", 16))
        for name in ("qmc", "antithetic"):
            put(name, checks.boolean(getattr(self, name), f"MonteCarlo.{name}"))
        put("dtype", checks.choice(self.dtype, "MonteCarlo.dtype", DTYPES))
        if self.stein_jitter is not None:
            put("stein_jitter", checks.open_unit(self.stein_jitter, "MonteCarlo.stein_jitter"))
        if self.blocks is not None:
            put("blocks", integer(self.blocks, "MonteCarlo.blocks", 1))


@dataclasses.dataclass(frozen=True)
class Exact:
    """The deterministic DMFT of linear networks (``activation="linear"``): every average is a quadratic
    form of the Gaussian sources, marched in time (MLPs) or swept in depth (residual networks).

    Args:
        blocks: time blocks of the march (MLPs); None: by the grid size.
    """

    blocks: int | None = None

    def __post_init__(self):
        if self.blocks is not None:
            integer(self.blocks, "Exact.blocks", 1)
