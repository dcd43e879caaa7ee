r"""NNGP and NTK of deep fully connected networks (neural-tangents conventions).

The network is ``stax.serial([Dense(W_std, b_std), act] * depth + [Dense(1, W_std, b_std)])``:

.. math::
    K^1 = W_0^2\, x\cdot x'/D + b^2,\qquad
    K^{l+1} = W_l^2\, E[\phi(u)\phi(u')] + b^2,\qquad
    \Theta^{l+1} = K^{l+1} + W_l^2\, E[\phi'(u)\phi'(u')]\,\Theta^l,

with ``(u, u') ~ N(0, K^l)`` on ``{x, x'}``, ``Theta^1 = K^1`` and ``NNGP = K^{L+1}``,
``NTK = Theta^{L+1}``. Unrolled, ``Theta = sum_l Theta_l`` with the contribution of
layer l's parameters ``Theta_l = K^l prod_{m=l}^{L} W_m^2 E[phi' phi']_{K^m}``; a
weighted NTK ``sum_l lambda_l Theta_l`` is computed in the same single pass.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from limits import activations as _act
from limits.checks import ArgumentTypeError, boolean, choice, real
from limits.kernels import _jax, _numba
from limits.kernels._common import Kernels, check_depth, check_inputs, float64, layer_stds, nonneg

__all__ = ["MLPKernel", "mlp", "BACKENDS"]

BACKENDS = ("auto", "numba", "jax")
_BLOCK_ENTRIES = 1 << 24  # entries per block; above one block a progress bar is shown


def _relu_diag(q):
    return 0.5 * q, np.full_like(q, 0.5)


def _erf_diag(q):
    return (2.0 / np.pi) * np.arcsin(2.0 * q / (1.0 + 2.0 * q)), (4.0 / np.pi) / np.sqrt(1.0 + 4.0 * q)


def _linear_diag(q):
    return q, np.ones_like(q)


_DIAG = {"relu": _relu_diag, "erf": _erf_diag, "linear": _linear_diag}
"""``(E[phi(u)^2], E[phi'(u)^2])`` for u ~ N(0, q), in NumPy (cheap diagonals)."""


def _mirror_upper(A: np.ndarray) -> np.ndarray:
    """``A`` with its lower triangle replaced by the transposed upper one (exactly symmetric)."""
    upper = np.triu(A)
    return upper + np.triu(A, 1).T


def _finite(*arrays) -> None:
    for arr in arrays:
        if not np.all(np.isfinite(arr)):
            raise FloatingPointError(
                "the kernel overflowed float64 (non-finite entries): the inputs X or the weight scales W_std / b_std "
                "are too large for this depth; rescale X (e.g. to unit norm per feature) or reduce W_std"
            )


@np.errstate(over="ignore", invalid="ignore")  # overflow is reported by _finite
def _diag_numpy(sqnorm, w2, b2, lam, expect):
    k = w2[0] * sqnorm + b2
    t = lam[0] * k
    qs = [k]
    for l in range(len(w2) - 1):
        e, ed = expect(k)
        k = w2[l + 1] * e + b2
        t = lam[l + 1] * k + w2[l + 1] * ed * t
        qs.append(k)
    return np.stack(qs), t


class MLPKernel:
    """Kernel function of an MLP; call it as ``k(X1, X2=None)`` (see :func:`mlp`)."""

    def __init__(self, depth: int, activation, W_std, b_std: float, backend: str, quadrature_order: int | None):
        self.depth = check_depth(depth)
        self.activation = _act.get(activation)
        self.W_std = layer_stds(W_std, self.depth)
        self.b_std = nonneg(b_std, "b_std")
        self.backend = choice(backend, "backend", BACKENDS)
        self.quadrature_order = _act.check_order(quadrature_order)
        self._closed = self.activation.name in _act.CLOSED_FORMS and self.activation is _act.get(self.activation.name)

    def __repr__(self) -> str:
        return (
            f"MLPKernel(depth={self.depth}, activation={self.activation.name!r}, "
            f"W_std={self.W_std.tolist()}, b_std={self.b_std})"
        )

    # ------------------------------------------------------------------ helpers
    def _resolve_backend(self, backend: str | None) -> str:
        backend = self.backend if backend is None else choice(backend, "backend", BACKENDS)
        numba_ok = self._closed and self.activation.name in _numba.ACTIVATION_CODES
        if backend == "auto":
            return "numba" if numba_ok else "jax"
        if backend == "numba" and not numba_ok:
            raise ValueError(
                f"the numba backend supports {', '.join(_numba.ACTIVATION_CODES)}; "
                f"use backend='jax' for {self.activation.name!r}"
            )
        return backend

    def _weights(self, layer_weights) -> np.ndarray:
        if layer_weights is None:
            return np.ones(self.depth + 1)
        if not isinstance(layer_weights, (Sequence, np.ndarray)) or isinstance(layer_weights, str):
            raise ArgumentTypeError(f"layer_weights must be {self.depth + 1} finite numbers (one per layer), got "
                                    f"{layer_weights!r}")
        lam = np.array([real(v, f"layer_weights[{i}]") for i, v in enumerate(np.asarray(layer_weights, object).ravel())])
        lam = lam.reshape(np.shape(layer_weights))
        if lam.shape != (self.depth + 1,) or not np.all(np.isfinite(lam)):
            raise ValueError(f"layer_weights must be {self.depth + 1} finite numbers (one per layer), got {lam.shape}")
        return lam

    def _w2(self, dim: int) -> np.ndarray:
        w2 = self.W_std**2
        w2[0] /= dim
        return w2

    def _diag(self, X: np.ndarray, lam: np.ndarray):
        """``q`` (L+1, P) with ``q[l] = K^{l+1}(x, x)``, the NTK diagonal ``t`` (P,), and the variances' maxima
        per layer (L,) (they choose the quadrature of each layer)."""
        sqnorm = np.einsum("ij,ij->i", X, X)
        w2 = self._w2(X.shape[1])
        if self._closed:
            expect = _DIAG.get(self.activation.name) or (lambda q: _act.diagonal_expectations(self.activation, q))
            q, t = _diag_numpy(sqnorm, w2, self.b_std**2, lam, lambda k: tuple(map(np.asarray, expect(k))))
        else:
            q, t = _jax.mlp_diag(sqnorm, w2, self.b_std**2, lam, self.activation, self.quadrature_order)
        _finite(q, t)
        return q, t

    def _rules(self, q1: np.ndarray, q2: np.ndarray) -> tuple:
        """The static quadrature rule of each hidden layer (None for closed forms) from the diagonals."""
        if self._closed:
            return (None,) * self.depth
        return tuple(
            _act.quadrature(max(q1[l].max(initial=0.0), q2[l].max(initial=0.0)), self.quadrature_order,
                            where=f"of layer {l + 1}")
            for l in range(self.depth)
        )

    # ------------------------------------------------------------------ public
    @float64
    def diag(self, X, *, layer_weights: Sequence[float] | None = None) -> Kernels:
        """Diagonals ``k(x, x)``: NNGP and NTK of shape (P,)."""
        X, _ = check_inputs(X)
        q, t = self._diag(X, self._weights(layer_weights))
        return Kernels(q[-1], t)

    @float64
    def __call__(
        self,
        X1,
        X2=None,
        *,
        per_layer: bool = False,
        layer_weights: Sequence[float] | None = None,
        backend: str | None = None,
        progress: bool | None = None,
    ) -> Kernels:
        """NNGP and NTK between ``X1`` (P1, D) and ``X2`` (P2, D) (``X2=None``: ``X1``).

        ``layer_weights`` (L+1,) returns the weighted NTK ``sum_l lambda_l Theta_l``;
        ``per_layer=True`` also returns ``ntk_layers`` (L+1, P1, P2). Large inputs are
        processed in row blocks with a progress bar (``progress=None``: automatic).
        """
        X1, X2 = check_inputs(X1, X2)
        backend = self._resolve_backend(backend)
        lam = self._weights(layer_weights)
        per_layer = boolean(per_layer, "per_layer")
        progress = None if progress is None else boolean(progress, "progress")
        if per_layer:
            layers = []
            nngp = None
            for l in range(self.depth + 1):
                onehot = np.zeros(self.depth + 1)
                onehot[l] = lam[l]
                out = self._compute(X1, X2, onehot, backend, progress)
                nngp = out[0]
                layers.append(out[1])
            stack = np.stack(layers)
            return Kernels(nngp, stack.sum(axis=0), stack)
        nngp, ntk = self._compute(X1, X2, lam, backend, progress)
        return Kernels(nngp, ntk)

    def _compute(self, X1, X2, lam, backend, progress):
        sym = X2 is None
        Xb = X1 if sym else X2
        P1, P2 = X1.shape[0], Xb.shape[0]
        q1, t1 = self._diag(X1, lam)
        q2 = q1 if sym else self._diag(Xb, lam)[0]
        rules = self._rules(q1, q2)
        per_entry = 1 if self._closed else max(rule.points for rule in rules)
        rows = max(1, min(P1, _BLOCK_ENTRIES // max(1, P2 * per_entry)))
        starts = range(0, P1, rows)
        if progress is None:
            progress = len(starts) > 1 and P1 * P2 >= 1 << 26
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"kernel rows ({backend})", unit="block")
        if backend == "numba":
            K, T = self._numba(X1, Xb, q1, q2, lam, sym, starts, rows)
        else:
            K, T = self._jax(X1, Xb, q1, q2, lam, starts, rows, rules)
        if sym:  # exact diagonal (the off-diagonal formula has arccos(1 - eps) ~ sqrt(eps) there), exact symmetry
            np.fill_diagonal(K, q1[-1])
            np.fill_diagonal(T, t1)
            K, T = _mirror_upper(K), _mirror_upper(T)
        _finite(K, T)
        return K, T

    def _numba(self, X1, X2, q1, q2, lam, sym, starts, rows):
        name = self.activation.name
        code = _numba.ACTIVATION_CODES[name]
        L = self.depth
        if name == "relu":
            r1, r2 = np.sqrt(q1[:L]), np.sqrt(q2[:L])
        elif name == "erf":
            r1, r2 = np.sqrt(1.0 + 2.0 * q1[:L]), np.sqrt(1.0 + 2.0 * q2[:L])
        else:
            r1, r2 = np.ones((L, X1.shape[0])), np.ones((L, X2.shape[0]))
        ir1 = np.ascontiguousarray(np.where(r1 > 0, 1.0 / np.where(r1 > 0, r1, 1.0), 0.0))
        ir2 = np.ascontiguousarray(np.where(r2 > 0, 1.0 / np.where(r2 > 0, r2, 1.0), 0.0))
        r1, r2 = np.ascontiguousarray(r1), np.ascontiguousarray(r2)
        P1, P2 = X1.shape[0], X2.shape[0]
        K = np.empty((P1, P2))
        T = np.empty((P1, P2))
        w2 = self._w2(X1.shape[1])
        b2 = self.b_std**2
        X2T = np.ascontiguousarray(X2.T)
        for i0 in starts:
            i1 = min(i0 + rows, P1)
            _numba.mlp_rows(
                K[i0:i1], T[i0:i1], X1[i0:i1], X2T, np.ascontiguousarray(r1[:, i0:i1]),
                np.ascontiguousarray(ir1[:, i0:i1]), r2, ir2, w2, b2, lam, code, i0, sym, _numba.CHUNK,
            )
        if sym:
            _numba.mirror_upper(K, T)
        return K, T

    def _jax(self, X1, X2, q1, q2, lam, starts, rows, rules):
        P1, P2 = X1.shape[0], X2.shape[0]
        K = np.empty((P1, P2))
        T = np.empty((P1, P2))
        w2 = jnp.asarray(self._w2(X1.shape[1]))
        X2j, q2j, lamj = jnp.asarray(X2), jnp.asarray(q2), jnp.asarray(lam)
        for i0 in starts:
            i1 = min(i0 + rows, P1)
            G = jnp.asarray(X1[i0:i1]) @ X2j.T
            k, t = _jax.mlp_block(
                G, jnp.asarray(q1[:, i0:i1]), q2j, w2, self.b_std**2, lamj, self.activation, rules
            )
            K[i0:i1] = np.asarray(k)
            T[i0:i1] = np.asarray(t)
        return K, T


def mlp(
    depth: int,
    activation: str | Callable | _act.Activation = "tanh",
    W_std: float | Sequence[float] = 1.0,
    b_std: float = 0.0,
    *,
    backend: str = "auto",
    quadrature_order: int | None = None,
) -> MLPKernel:
    """Kernel function of ``[Dense(W_std, b_std), act] * depth + [Dense(1, W_std, b_std)]``.

    Args:
        depth: hidden layers L >= 1.
        activation: ``relu``, ``erf``, ``gelu``, ``linear`` (closed forms), ``tanh`` (default) or any
            JAX-traceable callable (quadrature, see ``quadrature_order``).
        W_std: one number or ``depth + 1`` per-layer values (index 0 the input layer, ``depth`` the readout).
        b_std: bias std (>= 0).
        backend: ``"numba"`` (fused CPU loops; relu, erf, linear), ``"jax"`` (any activation, GPU, autodiff) or
            ``"auto"`` (numba when it applies).
        quadrature_order: None (default): the adaptive rule of :mod:`limits.activations`, accurate to 1e-8 at
            every pre-activation variance up to 1e6 (larger raise ``ValueError``); an integer in [16, 256]:
            Gauss-Hermite with that many nodes per dimension, faster at small variances and rejected at call
            time where inaccurate (variance above :func:`limits.activations.hermite_limit`).

    Returns:
        :class:`MLPKernel` ``k``: ``k(X1, X2=None)`` gives :class:`Kernels` ``(nngp, ntk)`` of shape (P1, P2)
        (exactly symmetric for ``X2=None``), ``k.diag(X)`` the diagonals (P,). Computed in float64 (a scoped
        ``jax.enable_x64``; the global JAX setting is not changed).
    """
    return MLPKernel(depth, activation, W_std, b_std, backend, quadrature_order)
