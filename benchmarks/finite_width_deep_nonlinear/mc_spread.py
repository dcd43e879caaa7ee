"""Monte Carlo spread of the theory (tanh, T = 3): rerun with other path seeds and a larger Jacobian sample."""
import sys, numpy as np, limits
import prototype as pr
d = limits.datasets.teacher(P=4, D=8, seed=0); X, y = np.asarray(d.X), np.asarray(d.y)
steps = 3
cst = pr.constants("tanh", X, y, 0.5, steps)
ens = {N: N * np.load(f"ens_tanh_N{N}_S{S}_T5_seed0.npz")["cov"][:steps + 1] for N, S in ((128, 8192), (256, 8192), (512, 4096))}
for seed, S, SD in [(int(a.split(":")[0]), int(a.split(":")[1]), int(a.split(":")[2])) for a in sys.argv[1:]]:
    rnd = pr.draw(cst, S, seed)
    rndD = tuple(a[:SD] if a.shape[0] == S else a[:, :SD] for a in rnd)
    out = pr.width_covariance(cst, rnd, rndD, verbose=False)
    th = out["covf"]
    trs = np.trace(th, axis1=1, axis2=2)
    print(f"seed {seed} S {S} SD {SD}: tr per t {np.round(trs, 4)}  sum {trs.sum():.4f}  "
          + "  ".join(f"N{N}: ratio {np.trace(C, axis1=1, axis2=2).sum() / trs.sum():.3f} relF {pr.relF(C, th):.3f} "
                      f"relF(t<3) {pr.relF(C[:3], th[:3]):.3f}" for N, C in ens.items()), flush=True)
