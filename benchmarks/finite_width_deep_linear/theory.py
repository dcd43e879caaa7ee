r"""Leading-order finite-width fluctuations of deep linear MLPs (derivation: derivation.md).

Route: the exact finite-N gradient-descent dynamics (docs/theory/dmft.md sections 1-2) written in
Gaussian-conditioning coordinates is a deterministic function out = F(theta) of a set of independent
random variables theta whose number does not grow with N (Gaussian components of fresh matrix-vector
products along already-revealed directions, and Bartlett factors of the newly revealed directions).
The N = infinity point theta_0 reproduces the DMFT (checked against limits.solve_dmft), and the delta
method at theta_0 gives

    N Cov(out) = J diag(v) J^T + O(1/N),   J = d out / d theta (theta_0),

v = 1 for Gaussian coordinates and Bartlett off-diagonals, v = 1/2 for Bartlett diagonals (chi variables).
J is computed exactly by forward-mode differentiation (numpy, no sampling, float64).

Public functions
----------------
deep_linear_prediction_cov(X, y, depth, lr, steps, gamma0=1.0) -> (T+1, P, P)  N Cov(f(t)) (equal time)
deep_linear_fluctuations(X, y, depth, lr, steps, gamma0=1.0) -> dict: mean-field values and O(1/N) covariance
    coefficients of f (two-time), of the NTK and of the feature kernels Phi^l(t, t).
two_layer_kappa_D(X, y, lr, steps, gamma0=1.0) -> Sigma_f for depth 1 from the single-site
    (I + D)^{-1} kappa (I + D)^{-T} formula (independent check at L = 1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["deep_linear_prediction_cov", "deep_linear_fluctuations", "two_layer_kappa_D"]

RANK_TOL = 1e-6      # relative singular value below which a queried residual direction is dropped (see derivation.md,
                     # section 5: structural zeros are ~1e-15; genuine directions below 1e-6 change Sigma_f by < 1e-5)


# ------------------------------------------------------------------------------------------------
# minimal forward-mode arithmetic: value v and tangent d (v.shape + (n,)), n = number of theta entries
# ------------------------------------------------------------------------------------------------

class Dual:
    __slots__ = ("v", "d")

    def __init__(self, v, d):
        self.v, self.d = v, d

    @property
    def T(self):
        return Dual(self.v.T, np.swapaxes(self.d, 0, 1))

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        return Dual(self.v[idx], self.d[idx + (Ellipsis,)] if Ellipsis not in idx else self.d[idx])

    def __add__(self, o):
        o = lift(o, self.d.shape[-1])
        return Dual(self.v + o.v, self.d + o.d)

    __radd__ = __add__

    def __sub__(self, o):
        o = lift(o, self.d.shape[-1])
        return Dual(self.v - o.v, self.d - o.d)

    def scale(self, a: float):
        return Dual(a * self.v, a * self.d)


def lift(x, n):
    if isinstance(x, Dual):
        return x
    x = np.asarray(x, np.float64)
    return Dual(x, np.zeros(x.shape + (n,)))


def ein(spec, *ops):
    """Multilinear einsum with product-rule tangents."""
    ins, out = spec.split("->")
    ins = ins.split(",")
    vals = [o.v if isinstance(o, Dual) else np.asarray(o, np.float64) for o in ops]
    v = np.einsum(spec, *vals, optimize=True)
    n = next(o.d.shape[-1] for o in ops if isinstance(o, Dual))
    d = np.zeros(v.shape + (n,))
    for i, o in enumerate(ops):
        if isinstance(o, Dual) and n:
            spec_i = ",".join(s + "Z" if j == i else s for j, s in enumerate(ins)) + "->" + out + "Z"
            args = [o.d if j == i else vals[j] for j in range(len(ops))]
            d = d + np.einsum(spec_i, *args, optimize=True)
    return Dual(v, d)


def mm(a, b):
    return ein("ij,jk->ik", a, b)


def cat(lst, axis=1):
    return Dual(np.concatenate([x.v for x in lst], axis), np.concatenate([x.d for x in lst], axis))


def stack(lst, axis=0):
    return Dual(np.stack([x.v for x in lst], axis), np.stack([x.d for x in lst], axis))


def orth(M: Dual) -> Dual:
    """E = M chol(M^T M)^{-T}: orthonormal columns spanning M (full column rank), with exact tangent."""
    S = M.v.T @ M.v
    Lc = np.linalg.cholesky(S)
    Li = np.linalg.inv(Lc)
    E = M.v @ Li.T
    dS = np.einsum("kiZ,kj->ijZ", M.d, M.v)
    dS = dS + np.swapaxes(dS, 0, 1)
    X = np.einsum("ai,ijZ,bj->abZ", Li, dS, Li)                # Lc^{-1} dS Lc^{-T}
    r = S.shape[0]
    low = np.tril(np.ones((r, r))) - 0.5 * np.eye(r)
    dL = np.einsum("ai,ibZ->abZ", Lc, X * low[:, :, None])    # dLc = Lc Phi(X)
    dE = M.d - np.einsum("ka,baZ->kbZ", E, dL)                 # dM - E dLc^T
    dE = np.einsum("kaZ,ba->kbZ", dE, Li)                      # (...) Lc^{-T}
    return Dual(E, dE)


# ------------------------------------------------------------------------------------------------
# the conditioning machine
# ------------------------------------------------------------------------------------------------

class _Plan:
    """Static structure found at theta_0: final dimension of each space, rank of each queried block."""

    def __init__(self):
        self.decisions = []      # per query: (r, Vmix (m, r))
        self.blocks = []         # per fresh block: (space, k, r, offset)
        self.size = 0            # number of theta entries
        self.K = {}
        self.gaps = []           # (smallest kept, largest dropped) relative singular values

    def weights(self):
        """N x variance of each theta entry: 1 (Gaussian), 1/2 (Bartlett diagonal = chi variable)."""
        v = np.ones(self.size)
        for (_, k, r, off) in self.blocks:
            iu = np.triu_indices(r)
            v[off + k * r: off + k * r + len(iu[0])][iu[0] == iu[1]] = 0.5
        return v


class _Machine:
    """Vectors of V_l (l = 1..L, dimension N) are coordinates c (K_l,) with v = sqrt(N) Q_l c, Q_l an
    orthonormal basis grown as the dynamics reveals new directions, so v.v'/N = c.c'.  Input-space
    (R^D) vectors are stored as they are."""

    def __init__(self, plan, discover, K, n, theta=None):
        self.plan, self.discover, self.K, self.n, self.theta = plan, discover, K, n, theta
        self.k = {l: 0 for l in K}
        self.qi = 0
        self.bi = 0

    def fresh(self, l, r):
        """Coordinates of W~ e_1..e_r / sqrt N for a fresh standard Gaussian matrix W~ and orthonormal e:
        rows [0, k): eps (k x r, N(0,1)/sqrt N each); rows [k, k+r): the Bartlett factor R/sqrt N of the part
        orthogonal to the k revealed directions (upper triangular, diag chi_{N-k-i}/sqrt N -> 1)."""
        k, K, n = self.k[l], self.K[l], self.n
        if self.discover:
            off = self.plan.size
            self.plan.blocks.append((l, k, r, off))
            self.plan.size += k * r + r * (r + 1) // 2
        else:
            l0, k0, r0, off = self.plan.blocks[self.bi]
            assert (l0, k0, r0) == (l, k, r), "plan mismatch"
            self.bi += 1
        v = np.zeros((K, r))
        v[k:k + r] = np.eye(r)
        if self.theta is not None:                             # finite theta (sample_reduced)
            v[:k] = self.theta[off: off + k * r].reshape(k, r)
            iu = np.triu_indices(r)
            v[k + iu[0], iu[1]] += self.theta[off + k * r: off + k * r + len(iu[0])]
        d = np.zeros((K, r, n))
        if n:
            idx = off + np.arange(k * r).reshape(k, r)
            d[np.arange(k)[:, None], np.arange(r)[None, :], idx] = 1.0
            iu = np.triu_indices(r)
            d[k + iu[0], iu[1], off + k * r + np.arange(len(iu[0]))] = 1.0
        self.k[l] = k + r
        return Dual(v, d)

    def decide(self, Res: Dual, scale: float):
        if self.discover:
            R = Res.v
            if R.shape[1] == 0 or not np.any(R):
                r, V, s = 0, np.zeros((R.shape[1], 0)), np.zeros(0)
            else:
                _, s, Vt = np.linalg.svd(R, full_matrices=False)
                s = s / max(1.0, scale)
                r = int(np.sum(s > RANK_TOL))
                V = Vt[:r].T
            self.plan.decisions.append((r, V))
            self.plan.gaps.append((s[r - 1] if r > 0 else np.inf, s[r] if r < len(s) else 0.0))
            return r, V
        r, V = self.plan.decisions[self.qi]
        self.qi += 1
        return r, V


class _Weight:
    """An initial Gaussian matrix W (space `out` x space `inp`, i.i.d. N(0,1)) queried forward (W a / sqrt N)
    and backward (W^T b / sqrt N).  E: orthonormal queried input directions, WE = coords of W e / sqrt N;
    F: orthonormal queried output directions, WtF = coords of W^T f / sqrt N.  Conditioning lemma:
        W e   = F (F^T W e)   + P_F^perp W~ e      for e _|_ E,   F^T W e   = (W^T F)^T e,
        W^T f = E (E^T W^T f) + P_E^perp W~^T f    for f _|_ F,   E^T W^T f = (W E)^T f,
    with W~ independent of everything revealed before."""

    def __init__(self, m: _Machine, inp, out):
        self.m, self.inp, self.out = m, inp, out
        self.E, self.WE, self.F, self.WtF = [], [], [], []

    def _query(self, C: Dual, E, WE, F, WtF, dst):
        m = self.m
        if E:
            Ea = cat(E)
            Res = C - mm(Ea, mm(Ea.T, C))
            Res = Res - mm(Ea, mm(Ea.T, Res))                  # re-orthogonalize (twice is enough)
        else:
            Res = C
        r, V = m.decide(Res, float(np.max(np.abs(C.v))))
        if r > 0:
            Enew = orth(mm(Res, V))
            Z = m.fresh(dst, r)
            if F:
                Fa, WtFa = cat(F), cat(WtF)
                Z = Z - mm(Fa, mm(Fa.T, Z)) + mm(Fa, mm(WtFa.T, Enew))
            E.append(Enew)
            WE.append(Z)
        return mm(cat(WE), mm(cat(E).T, C))

    def fwd(self, C):
        return self._query(C, self.E, self.WE, self.F, self.WtF, self.out)

    def bwd(self, C):
        return self._query(C, self.F, self.WtF, self.E, self.WE, self.inp)


def _dynamics(plan, discover, K, n, X, y, depth, lr, steps, gamma, theta=None):
    """Exact finite-N GD of the deep linear MLP in conditioning coordinates (derivation.md section 3).
    Returns Duals: f (T+1, P), ntk (T+1, P, P), phi (L, T+1, P, P)."""
    L, T1 = depth, steps + 1
    P, Dd = X.shape
    c = lr * gamma
    Kx = X @ X.T / Dd
    m = _Machine(plan, discover, K, n, theta)
    W0 = _Weight(m, 0, 1)
    Ws = {l: _Weight(m, l, l + 1) for l in range(1, L)}
    H1x = W0.fwd(lift(X.T / np.sqrt(Dd), n))                  # coords of W_0(0) x_mu / sqrt D
    h = {l: [] for l in range(1, L + 1)}                     # h[l][t]: (K_l, P)
    g = {l: [] for l in range(1, L + 1)}                     # g[l][t]: (K_l,), mu-independent (phi' = 1)
    Dts, fs, ntks, phis = [], [], [], []
    w = None
    for t in range(T1):
        # ---- forward: h^1(t) = W_0(0)x/sqrt D + c sum_{s<t} g^1(s) (Kx Dt(s))^T ; h^{l+1} = W_l(0)h^l/sqrt N + memory
        ht = H1x
        if t:
            Dh = stack(Dts)                                   # (t, P)
            ht = ht + ein("ks,sa->ka", stack(g[1], 1), ein("sb,ab->sa", Dh, Kx)).scale(c)
        h[1].append(ht)
        for l in range(1, L):
            hn = Ws[l].fwd(h[l][t])
            if t:
                Hs = stack(h[l][:t])                          # (t, K, P)
                coef = ein("ka,skb,sb->sa", h[l][t], Hs, Dh)  # sum_nu Phi^l_{a nu}(t,s) Dt_nu(s)
                hn = hn + ein("ks,sa->ka", stack(g[l + 1], 1), coef).scale(c)
            h[l + 1].append(hn)
        if t == 0:
            w = m.fresh(L, 1)[:, 0]                           # coords of w(0)/sqrt N
        f = ein("k,ka->a", w, h[L][t]).scale(1.0 / gamma)     # f = w.h^L/(gamma N)
        fs.append(f)
        Dt = (lift(y, n) - f).scale(1.0 / P)
        Dts.append(Dt)
        # ---- backward: g^L = w(t); z^l = W_l(0)^T g^{l+1}/sqrt N + c sum_{s<t} G^{l+1}(t,s) sum_nu Dt_nu(s) h^l_nu(s)
        g[L].append(w)
        for l in range(L - 1, 0, -1):
            zt = Ws[l].bwd(ein("k,j->kj", g[l + 1][t], np.ones(1)))[:, 0]
            if t:
                Gts = ein("k,ks->s", g[l + 1][t], stack(g[l + 1][:t], 1))
                zt = zt + ein("s,skb,sb->k", Gts, stack(h[l][:t]), Dh).scale(c)
            g[l].append(zt)
        # ---- NTK(t) = sum_{l=0}^{L} G^{l+1}(t,t) Phi^l(t,t), G^{L+1} = 1, Phi^0 = Kx
        ntk = ein("k,k,ab->ab", g[1][t], g[1][t], Kx)
        phit = []
        for l in range(1, L + 1):
            Phi = ein("ka,kb->ab", h[l][t], h[l][t])
            phit.append(Phi)
            ntk = ntk + (ein("k,k,ab->ab", g[l + 1][t], g[l + 1][t], Phi) if l < L else Phi)
        ntks.append(ntk)
        phis.append(stack(phit))
        w = w + ein("ka,a->k", h[L][t], Dt).scale(c)          # w(t+1) = w(t) + c sum_mu Dt_mu h^L_mu(t)
    if discover:
        plan.K = dict(m.k)
    return {"f": stack(fs), "ntk": stack(ntks), "phi": stack(phis, 1)}


def _solve(X, y, depth, lr, steps, gamma, tangents=True):
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    P = X.shape[0]
    plan = _Plan()
    Kmax = P + 3 * (steps + 1) * (P + 1) + 2
    _dynamics(plan, True, {l: Kmax for l in range(1, depth + 1)}, 0, X, y, depth, lr, steps, gamma)
    if not tangents:
        return plan, None
    out = _dynamics(plan, False, dict(plan.K), plan.size, X, y, depth, lr, steps, gamma)
    return plan, out


def sample_theta(plan, N, rng):
    """One draw of theta from its exact width-N law (minus theta_0): eps, R_ij ~ N(0,1)/sqrt N,
    R_ii = chi_{N-k-i}/sqrt N - 1 (i = 0..r-1, k revealed directions before the block)."""
    th = rng.standard_normal(plan.size) / np.sqrt(N)
    for (_, k, r, off) in plan.blocks:
        iu = np.triu_indices(r)
        pos = off + k * r + np.nonzero(iu[0] == iu[1])[0]
        th[pos] = np.sqrt(rng.chisquare(N - k - np.arange(r))) / np.sqrt(N) - 1.0
    return th


def sample_reduced(X, y, depth, lr, steps, N, seeds, gamma0=1.0, seed=0):
    """Monte Carlo of the *nonlinear* map F(theta) with theta drawn from its exact width-N law: a width-N
    ensemble in reduced coordinates (exact up to the truncation of tiny directions), cheap at any N.
    Returns predictions (seeds, T+1, P)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    plan, _ = _solve(X, y, depth, lr, steps, float(gamma0), tangents=False)
    rng = np.random.default_rng(seed)
    out = np.zeros((seeds, steps + 1, X.shape[0]))
    for i in range(seeds):
        th = sample_theta(plan, N, rng)
        out[i] = _dynamics(plan, False, dict(plan.K), 0, X, y, depth, lr, steps, float(gamma0), th)["f"].v
    return out


def deep_linear_fluctuations(X, y, depth, lr, steps, gamma0=1.0):
    """Mean-field trajectory and O(1/N) covariance coefficients (N x covariance) of a depth-`depth` linear MLP.

    Returns dict: 'f0' (T+1,P) N = infinity predictions; 'Sigma_f_full' (T+1,P,T+1,P) = N Cov(f_mu(t), f_nu(s));
    'Sigma_f' (T+1,P,P) equal time; 'ntk0' (T+1,P,P); 'Sigma_ntk' (T+1,P,P,P,P) = N Cov(NTK_{mu nu}(t), NTK_{ab}(t));
    'ntk_var' (T+1,P,P); 'phi0' (L,T+1,P,P) feature kernels Phi^l(t,t); 'Sigma_phi0' (L,L,P,P,P,P) =
    N Cov(Phi^l(0,0)_{mu nu}, Phi^l'(0,0)_{ab}); 'phi_var' (L,T+1,P,P); 'plan' diagnostics."""
    plan, o = _solve(X, y, depth, lr, steps, float(gamma0))
    v = plan.weights()
    T1, P = o["f"].v.shape
    Jf = o["f"].d.reshape(T1 * P, -1)
    Sf = (Jf * v) @ Jf.T
    res = {"f0": o["f"].v, "ntk0": o["ntk"].v, "phi0": o["phi"].v,
           "plan": {"theta": plan.size, "K": plan.K, "queries": len(plan.decisions),
                    "min_kept_rel_sv": float(min(a for a, _ in plan.gaps)),
                    "max_dropped_rel_sv": float(max(b for _, b in plan.gaps))}}
    res["Sigma_f_full"] = Sf.reshape(T1, P, T1, P)
    res["Sigma_f"] = np.stack([res["Sigma_f_full"][t, :, t, :] for t in range(T1)])
    Jn = o["ntk"].d.reshape(T1, P * P, -1)
    Sn = np.einsum("tai,tbi,i->tab", Jn, Jn, v)
    res["Sigma_ntk"] = Sn.reshape(T1, P, P, P, P)
    res["ntk_var"] = np.einsum("taa->ta", Sn).reshape(T1, P, P)
    Jp = o["phi"].d                                           # (L, T1, P, P, n)
    J0 = Jp[:, 0].reshape(depth, P * P, -1)
    res["Sigma_phi0"] = np.einsum("lai,mbi,i->lmab", J0, J0, v).reshape(depth, depth, P, P, P, P)
    res["phi_var"] = np.einsum("ltabi,i->ltab", Jp ** 2, v)
    return res


def deep_linear_prediction_cov(X, y, depth, lr, steps, gamma0=1.0):
    """(T+1, P, P) array Sigma_f: Cov(f_mu(t), f_nu(t)) = Sigma_f[t] / N + O(1/N^2) at width N."""
    return deep_linear_fluctuations(X, y, depth, lr, steps, gamma0)["Sigma_f"]


# ------------------------------------------------------------------------------------------------
# depth 1 check: neurons i.i.d. given the error trajectory -> Sigma_f = (I + D)^{-1} kappa (I + D)^{-T}
# ------------------------------------------------------------------------------------------------

def two_layer_kappa_D(X, y, lr, steps, gamma0=1.0):
    """Two-layer (depth 1) linear network.  Per neuron s_i = (a_i, w_i) in R^{D+1} (a_i the row of W_0):
        a_i(t+1) = a_i(t) + (c/sqrt D) w_i(t) X^T Dt(t),   w_i(t+1) = w_i(t) + (c/sqrt D) Dt(t).X a_i(t),
    i.e. s(t+1) = M_t s(t), s(0) ~ N(0, I).  psi_mu(t) = w_i(t) a_i(t).x_mu / (gamma sqrt D) = s(0)^T Qt_{t mu} s(0),
    f = mean_i psi_i.  kappa = Cov(psi, psi) = 2 Tr(Qt Qt') (Isserlis), D = d<psi>/dDelta (causal, here by
    forward-mode tangents of M_t), Sigma_f = (I + D)^{-1} kappa (I + D)^{-T}.
    Returns (Sigma_f equal time (T+1,P,P), full (n,n), f0 (T+1,P), D (n,n), kappa (n,n))."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    P, Dd = X.shape
    gamma = float(gamma0)
    c = lr * gamma
    Xs = X / np.sqrt(Dd)
    T1, n = steps + 1, (steps + 1) * P
    q = np.zeros((P, Dd + 1, Dd + 1))
    for mu in range(P):
        q[mu, Dd, :Dd] = Xs[mu] / (2 * gamma)
        q[mu] = q[mu] + q[mu].T
    # march: Pi_t = M_{t-1} ... M_0, with tangents dPi/dDelta (Delta entries of earlier times)
    Pi = np.eye(Dd + 1)
    dPi = np.zeros((Dd + 1, Dd + 1, n))
    Qt, dmean = [], []
    f0 = np.zeros((T1, P))
    for t in range(T1):
        Q = np.einsum("ia,mij,jb->mab", Pi, q, Pi)                       # (P, D+1, D+1)
        Qt.append(Q)
        dQ = np.einsum("iaZ,mij,jb->mabZ", dPi, q, Pi)
        dQ = dQ + np.swapaxes(dQ, 1, 2)
        dmean.append(np.einsum("maaZ->mZ", dQ))
        f0[t] = np.einsum("maa->m", Q)
        Dt = (y - f0[t]) / P
        M = np.eye(Dd + 1)
        M[:Dd, Dd] = c * Xs.T @ Dt
        M[Dd, :Dd] = c * Dt @ Xs
        dM = np.zeros((Dd + 1, Dd + 1, n))                               # d M_t / d Delta_nu(t)
        dM[:Dd, Dd, t * P:(t + 1) * P] = c * Xs.T / P
        dM[Dd, :Dd, t * P:(t + 1) * P] = c * Xs.T / P
        dPi = np.einsum("ij,jkZ->ikZ", M, dPi) + np.einsum("ijZ,jk->ikZ", dM, Pi)
        Pi = M @ Pi
    Qa = np.concatenate(Qt)                                               # (n, D+1, D+1)
    kappa = 2 * np.einsum("aij,bji->ab", Qa, Qa)
    Dm = np.concatenate(dmean)                                            # (n, n) d<psi>/dDelta
    A = np.linalg.inv(np.eye(n) + Dm)
    S = A @ kappa @ A.T
    Seq = np.stack([S.reshape(T1, P, T1, P)[t, :, t, :] for t in range(T1)])
    return Seq, S, f0, Dm, kappa


if __name__ == "__main__":
    import sys
    import time
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    import limits
    d = limits.datasets.teacher(P=6, D=8, seed=0)
    for L in (1, 2, 3):
        t0 = time.time()
        r = deep_linear_fluctuations(d.X, d.y, L, 0.5, 20)
        el = time.time() - t0
        s = limits.solve_dmft("mup", L, X=d.X, y=d.y, activation="linear", lr=0.5, steps=20, progress=False)
        print(f"depth {L}: {el:.1f}s", r["plan"], "max|f0 - dmft| = %.2e" % np.abs(r["f0"] - s.predictions).max())
        print("  trace Sigma_f per t:", np.round(np.einsum("tii->t", r["Sigma_f"]), 4))
        if L == 1:
            Seq, *_ = two_layer_kappa_D(d.X, d.y, 0.5, 20)
            print("  kappa-D check: max|diff| = %.2e (scale %.2e)" % (np.abs(Seq - r["Sigma_f"]).max(), np.abs(Seq).max()))


# ------------------------------------------------------------------------------------------------
# batched evaluation of the nonlinear map F(theta) (reduced-coordinate Monte Carlo at any width)
# ------------------------------------------------------------------------------------------------

def _bT(a):
    return np.swapaxes(a, -1, -2)


def _borth(M):
    Lc = np.linalg.cholesky(_bT(M) @ M)
    return M @ _bT(np.linalg.inv(Lc))


class _BWeight:
    def __init__(self, mach, inp, out):
        self.m, self.inp, self.out = mach, inp, out
        self.E, self.WE, self.F, self.WtF = [], [], [], []

    def _query(self, C, E, WE, F, WtF, dst):
        m = self.m
        if E:
            Ea = np.concatenate(E, -1)
            Res = C - Ea @ (_bT(Ea) @ C)
            Res = Res - Ea @ (_bT(Ea) @ Res)
        else:
            Res = C
        r, V = m.plan.decisions[m.qi]
        m.qi += 1
        if r > 0:
            Enew = _borth(Res @ V)
            Z = m.fresh(dst, r)
            if F:
                Fa, WtFa = np.concatenate(F, -1), np.concatenate(WtF, -1)
                Z = Z - Fa @ (_bT(Fa) @ Z) + Fa @ (_bT(WtFa) @ Enew)
            E.append(Enew)
            WE.append(Z)
        return np.concatenate(WE, -1) @ (_bT(np.concatenate(E, -1)) @ C)

    def fwd(self, C):
        return self._query(C, self.E, self.WE, self.F, self.WtF, self.out)

    def bwd(self, C):
        return self._query(C, self.F, self.WtF, self.E, self.WE, self.inp)


class _BMachine:
    def __init__(self, plan, theta):
        self.plan, self.theta = plan, theta          # theta (S, size)
        self.k = {l: 0 for l in plan.K}
        self.qi = self.bi = 0

    def fresh(self, l, r):
        l0, k0, r0, off = self.plan.blocks[self.bi]
        assert (l0, k0, r0) == (l, self.k[l], r)
        self.bi += 1
        S, k = self.theta.shape[0], self.k[l]
        v = np.zeros((S, self.plan.K[l], r))
        v[:, k:k + r] = np.eye(r)
        v[:, :k] = self.theta[:, off: off + k * r].reshape(S, k, r)
        iu = np.triu_indices(r)
        v[:, k + iu[0], iu[1]] += self.theta[:, off + k * r: off + k * r + len(iu[0])]
        self.k[l] = k + r
        return v


def _dynamics_batched(plan, X, y, depth, lr, steps, gamma, theta):
    """Same as _dynamics (values only) for a batch of theta (S, size); returns f (S, T+1, P)."""
    L, T1 = depth, steps + 1
    P, Dd = X.shape
    c = lr * gamma
    Kx = X @ X.T / Dd
    S = theta.shape[0]
    m = _BMachine(plan, theta)
    W0 = _BWeight(m, 0, 1)
    Ws = {l: _BWeight(m, l, l + 1) for l in range(1, L)}
    H1x = W0.fwd(np.broadcast_to(X.T / np.sqrt(Dd), (S, Dd, P)))
    h = {l: [] for l in range(1, L + 1)}
    g = {l: [] for l in range(1, L + 1)}
    Dts, fs = [], []
    w = None
    for t in range(T1):
        ht = H1x
        if t:
            Dh = np.stack(Dts, 1)                                     # (S, t, P)
            ht = ht + c * np.stack(g[1], -1) @ (Dh @ Kx)
        h[1].append(ht)
        for l in range(1, L):
            hn = Ws[l].fwd(h[l][t])
            if t:
                Hs = np.stack(h[l][:t], 1)                            # (S, t, K, P)
                coef = np.einsum("zka,zskb,zsb->zsa", h[l][t], Hs, Dh)
                hn = hn + c * np.stack(g[l + 1], -1) @ coef
            h[l + 1].append(hn)
        if t == 0:
            w = m.fresh(L, 1)[:, :, 0]
        f = np.einsum("zk,zka->za", w, h[L][t]) / gamma
        fs.append(f)
        Dt = (y[None] - f) / P
        Dts.append(Dt)
        g[L].append(w)
        for l in range(L - 1, 0, -1):
            zt = Ws[l].bwd(g[l + 1][t][:, :, None])[:, :, 0]
            if t:
                Gts = np.einsum("zk,zks->zs", g[l + 1][t], np.stack(g[l + 1][:t], -1))
                zt = zt + c * np.einsum("zs,zskb,zsb->zk", Gts, np.stack(h[l][:t], 1), Dh)
            g[l].append(zt)
        w = w + c * np.einsum("zka,za->zk", h[L][t], Dt)
    return np.stack(fs, 1)


def sample_reduced_batched(X, y, depth, lr, steps, N, seeds, gamma0=1.0, seed=0, batch=500):
    """Width-N ensemble of the nonlinear reduced map F(theta), theta from its exact law; (seeds, T+1, P)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    plan, _ = _solve(X, y, depth, lr, steps, float(gamma0), tangents=False)
    rng = np.random.default_rng(seed)
    out = []
    for b0 in range(0, seeds, batch):
        B = min(batch, seeds - b0)
        th = np.stack([sample_theta(plan, N, rng) for _ in range(B)])
        out.append(_dynamics_batched(plan, X, y, depth, lr, steps, float(gamma0), th))
    return np.concatenate(out)
