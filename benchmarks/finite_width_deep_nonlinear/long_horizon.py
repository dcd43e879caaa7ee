"""The adjoint prototype with a structural tolerance (PROTO_TOL) against the T = 12 ensembles, truncated to T steps.

    PROTO_TOL=1e-3 python long_horizon.py S SD T
"""
import os
import sys

import numpy as np

import prototype
from prototype_adjoint import HERE, relF, setup, width_covariance_adjoint


def main(S, SD, T, act="tanh"):
    cst, rnd, rndD = setup(act, T, S, SD)
    print(f"[{act}] T={T}, S={S}, S_D={SD}, TOL={prototype.TOL:g}", flush=True)
    th = width_covariance_adjoint(cst, rnd, rndD, verbose=False)["covf"]
    E = {}
    for fn in sorted(os.listdir(HERE)):
        if fn.startswith(f"ens_{act}_N") and fn.endswith("_T12_seed0.npz"):
            N = int(fn.split("_N")[1].split("_")[0])
            z = np.load(os.path.join(HERE, fn))
            E[N] = N * z["cov"][:T + 1]
            Sn = z["pred"].shape[0]
            C = E[N]
            trC, trT = np.trace(C, axis1=1, axis2=2).sum(), np.trace(th, axis1=1, axis2=2).sum()
            print(f"  N={N:4d} seeds={Sn}: sum tr ens {trC:.4f} theory {trT:.4f} ratio {trC / trT:.3f} relF {relF(C, th):.3f}")
    for t in range(T + 1):
        print(f"   t={t:2d}  {np.trace(th[t]):9.4f} |" + "".join(f" {np.trace(E[N][t]):9.4f}" for N in E), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
