"""Verification of theory.py against direct finite-width simulations (sim.py) and internal checks.

    bash run_sims.sh 1 2 3          # ensembles (sims/*.npz), ~20 min on 2 cores
    python check.py                 # this report (~1 min), also writes check_results.json

Data: limits.datasets.teacher(P=6, D=8, seed=0), lr 0.5, 20 steps, gamma0 = 1, phi = identity.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import theory  # noqa: E402
import limits  # noqa: E402

LR, STEPS, D = 0.5, 20, 8
CONFIGS = [(6, 0, (1, 2, 3), 1.0), (8, 1, (2, 3), 1.0), (6, 0, (2,), 0.5)]
# (P, data seed, depths, gamma0): teacher(P, D=8, seed); the gamma0 != 1 rows only where sims exist
WIDTHS = (128, 256, 512, 1024)
GROUPS = 20


def load(depth, N, P=6, DS=0, gamma0=1.0):
    g = f"_g{gamma0}" if gamma0 != 1.0 else ""
    files = sorted(glob.glob(os.path.join(HERE, "sims", f"d{depth}_N{N}_S*_s*_P{P}_D{D}_ds{DS}_lr{LR}_T{STEPS}{g}.npz")))
    if not files:
        return None, None
    z = [np.load(f) for f in files]
    return np.concatenate([a["F"] for a in z]), np.concatenate([a["NTK"] for a in z])


def ncov(F, N):
    """N x sample covariance over seeds, (T+1, P, P)."""
    Fc = F - F.mean(0)
    return N * np.einsum("sta,stb->tab", Fc, Fc) / (F.shape[0] - 1)


def nvar(A, N):
    return N * A.var(0, ddof=1)


def main():
    d = limits.datasets.teacher(P=6, D=D, seed=0)        # internal checks on the first configuration
    Kx = d.X @ d.X.T / D
    out = {}
    print("# Internal checks")
    th = {}
    for L in (1, 2, 3):
        t0 = time.time()
        th[L] = theory.deep_linear_fluctuations(d.X, d.y, L, LR, STEPS)
        el = time.time() - t0
        s = limits.solve_dmft("mup", L, X=d.X, y=d.y, activation="linear", lr=LR, steps=STEPS, progress=False,
                              record=("ntk", "kernels"))
        KK = np.einsum("ac,bd->abcd", Kx, Kx) + np.einsum("ad,bc->abcd", Kx, Kx)
        init = max(np.abs(th[L]["Sigma_phi0"][l, m] - min(l + 1, m + 1) * KK).max() for l in range(L) for m in range(L))
        print(f"depth {L}: theory {el:.1f}s, theta {th[L]['plan']['theta']}, dims {th[L]['plan']['K']}; "
              f"max|f_inf - solve_dmft| = {np.abs(th[L]['f0'] - s.predictions).max():.1e}, "
              f"max|NTK_inf(T) - solve_dmft| = {np.abs(th[L]['ntk0'][-1] - s.ntk[-1]).max():.1e}; "
              f"N Cov(Phi^l(0),Phi^l'(0)) - min(l,l')(KK+KK): {init:.1e}; "
              f"Sigma_f(0) - Kx/gamma^2: {np.abs(th[L]['Sigma_f'][0] - Kx).max():.1e}")
    Seq, *_ = theory.two_layer_kappa_D(d.X, d.y, LR, STEPS)
    e1 = np.abs(Seq - th[1]["Sigma_f"]).max()
    print(f"depth 1: single-site (I + D)^-1 kappa (I + D)^-T vs conditioning route: max diff {e1:.1e} "
          f"(max entry {np.abs(Seq).max():.2f})")
    out["kappa_D_vs_route_L1"] = float(e1)
    # truncation tolerance (section 5 of derivation.md)
    for L in (2, 3):
        sums = {}
        for tol in (1e-5, 1e-6, 1e-7):
            theory.RANK_TOL = tol
            sums[tol] = float(np.einsum("tii->", theory.deep_linear_prediction_cov(d.X, d.y, L, LR, STEPS)))
        theory.RANK_TOL = 1e-6
        print(f"depth {L}: sum_t tr Sigma_f at RANK_TOL 1e-5 / 1e-6 / 1e-7: "
              + " / ".join(f"{v:.6f}" for v in sums.values()))
        out[f"tol_scan_L{L}"] = sums

    out["table"] = []
    for (P, DS, depths, g0) in CONFIGS:
        if all(load(L, N, P, DS, g0)[0] is None for L in depths for N in WIDTHS):
            continue
        dd = limits.datasets.teacher(P=P, D=D, seed=DS)
        thc = th if (P, DS, g0) == (6, 0, 1.0) else {
            L: theory.deep_linear_fluctuations(dd.X, dd.y, L, LR, STEPS, g0) for L in depths}
        compare(P, DS, depths, thc, out, g0)
    with open(os.path.join(HERE, "check_results.json"), "w") as fh:
        json.dump(out, fh, indent=1)


def compare(P, DS, depths, th, out, g0=1.0):
    """Table of N Cov(f) from the direct ensembles vs Sigma_f for teacher(P, D=8, seed=DS)."""
    print(f"\n# teacher(P={P}, D=8, seed={DS}), lr {LR}, {STEPS} steps, gamma0 {g0}: N x Cov(f(t)) of direct simulations vs Sigma_f")
    print("sum_t tr = sum over t = 0..20 of the trace; +- is the standard error from 20 seed groups;")
    print("relF = ||N Cov - Sigma_f||_F / ||Sigma_f||_F over the (T+1, P, P) array; floor = sampling part of relF")
    print("(half the split-half distance / ||Sigma_f||_F).\n")
    print("| depth | N | seeds | sum_t tr N Cov (meas) | predicted | rel. diff | relF | floor | NTK: sum N Var meas / pred |")
    print("|---|---|---|---|---|---|---|---|---|")
    res = []
    for L in depths:
        lam = max(np.linalg.eigvalsh(k)[-1] for k in th[L]["ntk0"])
        print(f"(depth {L}: max_t lr lambda_max(NTK_inf(t)) / P = {LR * lam / P:.2f}; 2 = edge of stability)")
    print()
    for L in depths:
        S_pred = th[L]["Sigma_f"]
        tr_pred = float(np.einsum("tii->", S_pred))
        ntk_pred = float(th[L]["ntk_var"].sum())
        xs, ys, es = [], [], []
        for N in WIDTHS:
            F, NTK = load(L, N, P, DS, g0)
            if F is None:
                continue
            S = F.shape[0]
            C = ncov(F, N)
            tr = float(np.einsum("tii->", C))
            grp = np.array_split(np.arange(S), GROUPS)
            trg = np.array([np.einsum("tii->", ncov(F[g], N)) for g in grp])
            se = float(trg.std(ddof=1) / np.sqrt(GROUPS))
            relF = float(np.linalg.norm(C - S_pred) / np.linalg.norm(S_pred))
            h = S // 2
            floor = float(0.5 * np.linalg.norm(ncov(F[:h], N) - ncov(F[h:], N)) / np.linalg.norm(S_pred))
            ntk_meas = float(nvar(NTK, N).sum())
            ntk_relF = float(np.linalg.norm(nvar(NTK, N) - th[L]["ntk_var"]) / np.linalg.norm(th[L]["ntk_var"]))
            print(f"| {L} | {N} | {S} | {tr:.3f} +- {se:.3f} | {tr_pred:.3f} | {100 * (tr / tr_pred - 1):+.1f}% | "
                  f"{100 * relF:.1f}% | {100 * floor:.1f}% | {ntk_meas:.2f} / {ntk_pred:.2f} (relF {100 * ntk_relF:.0f}%) |")
            res.append(dict(depth=L, N=N, seeds=S, trace_sum_meas=tr, trace_sum_se=se, trace_sum_pred=tr_pred,
                            relF=relF, relF_floor=floor, ntk_var_sum_meas=ntk_meas, ntk_var_sum_pred=ntk_pred,
                            ntk_relF=ntk_relF))
            xs.append(1.0 / N)
            ys.append(tr)
            es.append(se)
        if len(xs) >= 3:
            A = np.stack([np.ones(len(xs)), np.array(xs)], 1) / np.array(es)[:, None]
            coef, *_ = np.linalg.lstsq(A, np.array(ys) / np.array(es), rcond=None)
            cov = np.linalg.inv(A.T @ A)
            print(f"| {L} | inf (fit a + b/N) | | {coef[0]:.3f} +- {np.sqrt(cov[0, 0]):.3f} | {tr_pred:.3f} | "
                  f"{100 * (coef[0] / tr_pred - 1):+.1f}% | | | |")
            out[f"extrapolated_P{P}_ds{DS}_g{g0}_L{L}"] = [float(coef[0]), float(np.sqrt(cov[0, 0]))]
    out["table"] += [dict(r, P=P, data_seed=DS, gamma0=g0) for r in res]
    # pass/fail at N = 512
    print()
    for r in res:
        if r["N"] == 512 or (r["N"] == max(x["N"] for x in res) and g0 != 1.0):
            ok = abs(r["trace_sum_meas"] / r["trace_sum_pred"] - 1) < 0.10 and r["relF"] < 0.20
            print(f"P={P} seed {DS} gamma0 {g0} depth {r['depth']} N={r['N']}: trace {100 * (r['trace_sum_meas'] / r['trace_sum_pred'] - 1):+.1f}% "
                  f"(< 10%), relF {100 * r['relF']:.1f}% (< 20%): {'PASS' if ok else 'FAIL'}")
    # per-time traces at the largest width
    for L in depths:
        F, _ = load(L, 512, P, DS, g0)
        if F is not None:
            print(f"\ndepth {L}, per-time tr N Cov (N=512) vs tr Sigma_f:")
            print("  meas", np.array2string(np.einsum("tii->t", ncov(F, 512)), precision=3, max_line_width=200))
            print("  pred", np.array2string(np.einsum("tii->t", th[L]["Sigma_f"]), precision=3, max_line_width=200))


if __name__ == "__main__":
    main()
