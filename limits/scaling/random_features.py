r"""Deterministic equivalent of the random-feature model trained by population gradient descent.

Model (lazy; the :math:`\gamma_0 \to 0` limit of the two-layer model): :math:`f(\psi) = w \cdot A\psi/\sqrt N`,
:math:`A \in \mathbb{R}^{N \times M}` frozen with i.i.d. :math:`N(0, 1)` entries, :math:`w(0) = 0`, gradient descent
with learning rate :math:`\eta` on the population loss :math:`\mathcal L = \tfrac12 E[(f - y)^2]`. In the whitened
error :math:`e = \Lambda^{1/2}(w^* - A^\top w/\sqrt N)` one step is :math:`e \leftarrow (I - \eta K) e` with
:math:`K = \Lambda^{1/2} A^\top A \Lambda^{1/2} / N`, so

.. math:: \mathcal L(t) = \tfrac12\, u^\top (I - \eta K)^{2t} u = \tfrac12 \int (1 - \eta x)^{2t}\, d\mu(x),

with :math:`\mu` the spectral measure of :math:`K` weighted by :math:`u` (mass 1). Its generating function, with
:math:`z = e^{-\sigma}`, splits by partial fractions into two resolvents
:math:`R(s) = u^\top (K + s)^{-1} u = \int d\mu(x)/(x + s)`:

.. math:: \hat G(\sigma) = \sum_{t \ge 0} \mathcal L(t) e^{-\sigma t}
          = \frac{e^{\sigma/2}}{4\eta}\,[R(s_+) - R(s_-)], \qquad
          s_\pm = (\pm e^{\sigma/2} - 1)/\eta.

Averaged over :math:`A` (:math:`N, M \to \infty`), :math:`R` has the deterministic equivalent

.. math:: R(s) \simeq \sum_k \frac{u_k^2\, \tilde\kappa}{s\,(\lambda_k + \tilde\kappa)}, \qquad
          \tilde\kappa \Big(1 - \frac{\mathrm{df}(\tilde\kappa)}{N}\Big) = s, \qquad
          \mathrm{df}(\kappa) = \sum_k \frac{\lambda_k}{\lambda_k + \kappa},

(:math:`\tilde\kappa = s` at :math:`N = \infty`), whose atom at :math:`s = 0` is the width floor
:math:`\mathcal L(\infty) = \tfrac12 \sum_k u_k^2 \kappa_0/(\lambda_k + \kappa_0)`, :math:`\mathrm{df}(\kappa_0) = N`.
The singularities of :math:`\hat G` lie on the real axis at :math:`\sigma = 2\log|1 - \eta x| \le 0` (for
:math:`\eta x < 2`), so :math:`\mathcal L(t)` is the Bromwich integral of :math:`\hat G e^{\sigma t}` over one
period, deformed into a fixed Talbot contour (Abate & Valkó 2004) inside the strip
:math:`|\mathrm{Im}\,\sigma| < \pi` for :math:`t \ge 16`, and a discrete Fourier transform on a circle
:math:`|z| = 0.6` for :math:`t < 16`. :math:`\tilde\kappa` is found by Newton's method continued along each
contour from its real point.

Sums over modes use every mode up to 1024 and, beyond, the midpoint-rule integral
:math:`\sum_{k=a}^{b} g(k) \approx \int_{a-1/2}^{b+1/2} g(k)\,dk` by Gauss–Legendre in :math:`\log k`
(16 nodes per octave); the summands are smooth in :math:`k` there.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .task import PowerLawTask

__all__ = ["Modes", "quadrature_modes", "width_floor", "population_loss"]

_EXACT_MODES = 1024
_NODES_PER_OCTAVE = 16
_TALBOT_NODES = 24
_SUBSTEPS = 4
_FFT_NODES = 64
_FFT_RADIUS = 0.6
FIRST_TALBOT_STEP = 16


class Modes:
    """Quadrature over the modes: :math:`\\sum_k h(\\lambda_k, u_k^2) \\approx \\sum_j c_j h(\\lambda_j, u^2_j)`.

    Attributes:
        eigenvalues, power, weights: arrays of shape (J,) (``power`` is :math:`u^2_j`).
    """

    def __init__(self, eigenvalues: np.ndarray, power: np.ndarray, weights: np.ndarray):
        self.eigenvalues, self.power, self.weights = eigenvalues, power, weights
        self.trace = float(np.sum(weights * eigenvalues))

    def df(self, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`\\mathrm{df}(\\kappa)` and its derivative, for ``kappa`` of any shape (complex allowed)."""
        kappa = np.asarray(kappa)
        flat = np.ascontiguousarray(kappa.reshape(-1), dtype=np.complex128)
        df, ddf = _df_kernel()(flat, self.eigenvalues, self.weights * self.eigenvalues)
        if kappa.dtype.kind != "c":
            df, ddf = df.real, ddf.real
        return df.reshape(kappa.shape), ddf.reshape(kappa.shape)

    def resolvent(self, s: np.ndarray, kappa: np.ndarray) -> np.ndarray:
        """:math:`R(s) = \\sum_k u_k^2 \\tilde\\kappa / (s(\\lambda_k + \\tilde\\kappa))` (shape of ``s``)."""
        return (1.0 / (self.eigenvalues + kappa[..., None])) @ (self.weights * self.power) * kappa / s


@functools.cache
def _df_kernel():
    """Numba kernel: :math:`\\sum_j c_j\\lambda_j/(\\lambda_j+\\kappa_i)` and minus the sum of the squares over
    :math:`\\lambda_j+\\kappa_i`, for complex ``kappa`` (n,) in one pass (NumPy's broadcast spends most of a solve
    allocating (n, J) temporaries)."""
    import numba

    @numba.njit(cache=True)
    def kernel(kappa, lam, weighted):
        df = np.zeros(kappa.size, dtype=np.complex128)
        ddf = np.zeros(kappa.size, dtype=np.complex128)
        for i in range(kappa.size):
            a, b = 0j, 0j
            for j in range(lam.size):
                r = 1.0 / (lam[j] + kappa[i])
                a += weighted[j] * r
                b += weighted[j] * r * r
            df[i], ddf[i] = a, -b
        return df, ddf

    return kernel


def quadrature_modes(task: PowerLawTask) -> Modes:
    """The :class:`Modes` of ``task``: exact for ``k <= 1024``, Gauss–Legendre in log k beyond (see module doc)."""
    alpha, M = task.alpha, task.modes
    exact = min(M, _EXACT_MODES)
    lam, power, weight = [task.eigenvalues[:exact]], [task.whitened_target[:exact] ** 2], [np.ones(exact)]
    if M > exact:
        norm = task.whitened_target[0] ** 2  # u_k^2 = norm * k^(-alpha beta - 1)
        lo, hi = math.log(exact + 0.5), math.log(M + 0.5)
        octaves = max(1, math.ceil((hi - lo) / math.log(2.0)))
        x, w = np.polynomial.legendre.leggauss(_NODES_PER_OCTAVE)
        edges = np.linspace(lo, hi, octaves + 1)
        half = np.diff(edges)[:, None] / 2.0
        logk = (edges[:-1, None] + half * (x + 1.0)).ravel()
        k = np.exp(logk)
        lam.append(k**-alpha)
        power.append(norm * k ** (-alpha * task.beta - 1.0))
        weight.append((half * w).ravel() * k)  # dk = k dlog k
    return Modes(np.concatenate(lam), np.concatenate(power), np.concatenate(weight))


def _edge_kappa(modes: Modes, width: float) -> float:
    """:math:`\\kappa_0 > 0` with :math:`\\mathrm{df}(\\kappa_0) = N` (bisection in log κ)."""
    lo, hi = -60.0, 10.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if modes.df(np.array(math.exp(mid)))[0] > width:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def width_floor(modes: Modes, width: float) -> float:
    """The loss after infinitely many steps, :math:`\\tfrac12 \\sum_k u_k^2 \\kappa_0 / (\\lambda_k + \\kappa_0)`;
    0 at infinite width."""
    if not math.isfinite(width):
        return 0.0
    kappa0 = _edge_kappa(modes, width)
    return 0.5 * float(np.sum(modes.weights * modes.power * kappa0 / (modes.eigenvalues + kappa0)))


def _inverse(count: float) -> float:
    """:math:`1/N` (0 for ``math.inf``)."""
    return 0.0 if math.isinf(count) else 1.0 / count


def _newton(modes: Modes, s: np.ndarray, kappa: np.ndarray, inv_n: float, inv_p: float,
            iterations: int = 30) -> np.ndarray:
    """Newton for :math:`\\tilde\\kappa(1 - d/N)(1 - d/P) = s`, :math:`d = \\mathrm{df}(\\tilde\\kappa)`.

    Args:
        modes: the quadrature over the modes.
        s: targets, any shape (complex allowed).
        kappa: starting points, the shape of ``s``.
        inv_n, inv_p: :math:`1/N`, :math:`1/P` (0 for infinite).
        iterations: the most Newton steps.

    Returns:
        :math:`\\tilde\\kappa`, the shape of ``s``.
    """
    for _ in range(iterations):
        df, ddf = modes.df(kappa)
        rn, rp = 1.0 - df * inv_n, 1.0 - df * inv_p
        step = (kappa * rn * rp - s) / (rn * rp - kappa * ddf * (inv_n * rp + inv_p * rn))
        kappa = kappa - step
        if np.all(np.abs(step) <= 1e-14 * np.abs(kappa)):
            break
    return kappa


def _real_start(modes: Modes, s: np.ndarray, width: float, data: float) -> np.ndarray:
    """:math:`\\tilde\\kappa` at real ``s`` (shape (n,)) on the branch with :math:`\\tilde\\kappa \\approx s` at
    :math:`|s| \\to \\infty`.

    For ``s > 0``: bisection on :math:`(\\kappa_c, \\kappa_c + s + \\mathrm{tr}\\Lambda/N + \\mathrm{tr}\\Lambda/P]`,
    :math:`\\mathrm{df}(\\kappa_c) = \\min(N, P)`, on which the left side increases from 0 (it exceeds ``s`` at the
    upper end since :math:`d \\le \\mathrm{tr}\\Lambda/\\tilde\\kappa`), then polished by Newton. For ``s < 0``:
    Newton from ``s``, which must land left of :math:`-\\lambda_1` (else gradient descent is unstable).
    """
    inv_n, inv_p = _inverse(width), _inverse(data)
    s = np.asarray(s, dtype=np.float64)
    kappa = np.empty_like(s)
    pos = s > 0
    if np.any(pos):
        smallest = min(width, data)
        edge = _edge_kappa(modes, smallest) if math.isfinite(smallest) else 0.0
        lo = np.full(pos.sum(), edge)
        hi = lo + s[pos] + modes.trace * (inv_n + inv_p)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            df = modes.df(mid)[0]
            high = mid * (1.0 - df * inv_n) * (1.0 - df * inv_p) > s[pos]
            hi, lo = np.where(high, mid, hi), np.where(high, lo, mid)
        kappa[pos] = _newton(modes, s[pos], 0.5 * (lo + hi), inv_n, inv_p, iterations=5)
    if np.any(~pos):
        left = _newton(modes, s[~pos], s[~pos].copy(), inv_n, inv_p)
        if not np.all(np.isfinite(left) & (left < -modes.eigenvalues.max())):
            raise ValueError(
                "the learning rate is too large for this width and data: gradient descent on the random-feature "
                "model is unstable (lr * the largest eigenvalue of the trained kernel exceeds 2); lower lr"
            )
        kappa[~pos] = left
    return kappa


def _continued_kappa(modes: Modes, s_path: np.ndarray, width: float, data: float) -> np.ndarray:
    """:math:`\\tilde\\kappa` along paths ``s_path`` (n_nodes, n) whose first row is real: Newton warm-started from
    the previous node through ``_SUBSTEPS`` intermediate points. Returns (n_nodes, n) complex."""
    if math.isinf(width) and math.isinf(data):
        return s_path.astype(np.complex128)
    inv_n, inv_p = _inverse(width), _inverse(data)
    kappa = np.empty(s_path.shape, dtype=np.complex128)
    kappa[0] = _real_start(modes, s_path[0].real, width, data)
    for j in range(1, s_path.shape[0]):
        k = kappa[j - 1]
        for frac in np.arange(1, _SUBSTEPS + 1) / _SUBSTEPS:
            k = _newton(modes, s_path[j - 1] + frac * (s_path[j] - s_path[j - 1]), k, inv_n, inv_p, iterations=12)
        kappa[j] = k
    return kappa


def _transform(modes: Modes, sigma: np.ndarray, lr: float, width: float) -> np.ndarray:
    """:math:`\\hat G(\\sigma)` on paths ``sigma`` (n_nodes, n) whose first row is real (see module doc)."""
    half = np.exp(sigma / 2.0)
    out = np.zeros(sigma.shape, dtype=np.complex128)
    for sign in (1.0, -1.0):
        s = (sign * half - 1.0) / lr
        kappa = _continued_kappa(modes, s, width, math.inf)
        out += sign * modes.resolvent(s, kappa)
    return half / (4.0 * lr) * out


def talbot_contour(times: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The upper half of the fixed Talbot contour (Abate & Valkó 2004) for inverting at ``times`` (shape (T,)):
    :math:`\sigma_j = r\theta_j(\cot\theta_j + i)`, :math:`\theta_j = j\pi/n` (``j < n``), :math:`r = 2n/(5t)`.

    Returns:
        ``sigma`` (n, T) complex, ``weight`` (n,) complex (:math:`1 + i\tau_j`, the path's derivative factor) and
        ``r`` (T,); the inverse is :math:`(r/n)\,\mathrm{Re}\sum_j' e^{\sigma_j t} F(\sigma_j)\,w_j` with the
        ``j = 0`` term halved.
    """
    r = 2.0 * n / (5.0 * times)  # < 1 for times > 2n/5: the contour stays inside |Im sigma| < pi
    theta = np.arange(n) * math.pi / n
    cot = np.ones_like(theta)
    cot[1:] = 1.0 / np.tan(theta[1:])
    real = np.where(theta > 0, theta * cot, 1.0)
    sigma = r[None, :] * (real + 1j * theta)[:, None]
    return sigma, 1.0 + 1j * (theta + (real - 1.0) * cot), r


def _talbot(modes: Modes, times: np.ndarray, lr: float, width: float) -> np.ndarray:
    """Fixed-Talbot inversion at integer ``times >= 16`` (shape (n,))."""
    sigma, weight, r = talbot_contour(times, _TALBOT_NODES)
    terms = np.exp(sigma * times[None, :]) * _transform(modes, sigma, lr, width) * weight[:, None]
    terms[0] *= 0.5
    return (r / _TALBOT_NODES) * np.sum(terms.real, axis=0)


def _circle(modes: Modes, steps: int, lr: float, width: float) -> np.ndarray:
    """Exact inverse z-transform at ``t < min(16, steps + 1)`` by a DFT on ``|z| = 0.6``."""
    n, rho = _FFT_NODES, _FFT_RADIUS
    phi = 2.0 * math.pi * np.arange(n // 2 + 1) / n  # z = rho e^{i phi}; the other half is the conjugate
    sigma = (-math.log(rho) - 1j * phi)[:, None]
    G = _transform(modes, sigma, lr, width)[:, 0]
    full = np.concatenate([G, np.conj(G[1:-1][::-1])])
    coef = np.fft.fft(full).real / n  # sum_j G(z_j) e^{-2 pi i j t / n} / n = L(t) rho^t
    t = np.arange(min(FIRST_TALBOT_STEP, steps + 1))
    return coef[t] * rho ** (-t.astype(float))


def solved_steps(steps: int, per_decade: int = 40) -> np.ndarray:
    """The steps at which the loss is solved directly: every step below 16, then ``per_decade`` log-spaced steps
    per decade up to ``steps`` (always included)."""
    first = np.arange(min(FIRST_TALBOT_STEP, steps + 1))
    if steps < FIRST_TALBOT_STEP:
        return first
    decades = math.log10(steps / FIRST_TALBOT_STEP)
    grid = np.unique(np.round(FIRST_TALBOT_STEP * 10.0 ** np.linspace(0, decades, max(2, int(decades * per_decade) + 1))))
    return np.unique(np.concatenate([first, grid.astype(int), [steps]]))


def invert(times: np.ndarray, circle, talbot) -> np.ndarray:
    """The loss at integer ``times`` (any order, shape (n,)) from the two inversions: ``circle(steps)`` -> the loss at
    ``0..min(15, steps)`` (exact DFT), ``talbot(times)`` -> the loss at ``times >= 16`` (float array)."""
    times = np.asarray(times, dtype=np.int64)
    out = np.empty(times.shape, dtype=np.float64)
    small = times < FIRST_TALBOT_STEP
    if np.any(small):
        out[small] = circle(int(times[small].max()))[times[small]]
    if np.any(~small):
        out[~small] = talbot(times[~small].astype(np.float64))
    return out


def population_loss(modes: Modes, times: np.ndarray, lr: float, width: float) -> np.ndarray:
    r"""Expected population loss :math:`\mathcal L(t)` at integer ``times`` (any order, shape (n,))."""
    return invert(times, lambda steps: _circle(modes, steps, lr, width),
                  lambda late: _talbot(modes, late, lr, width))
