"""Finite-width ensembles (limits.simulate) of the depth-2 tanh MLP on teacher(P=4, D=8, seed=0), stored as npz."""
import os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import numpy as np
import limits

def main(N, S, T=5, act="tanh", seed=0):
    d = limits.datasets.teacher(P=4, D=8, seed=0)
    t0 = time.time()
    tr = limits.simulate("mup", 2, width=N, X=d.X, y=d.y, activation=act, lr=0.5, steps=T, seeds=S, seed=seed,
                         record=(), progress=False)
    out = f"ens_{act}_N{N}_S{S}_T{T}_seed{seed}.npz"
    np.savez(out, pred=np.asarray(tr.predictions_per_seed), cov=np.asarray(tr.prediction_cov))
    print(out, time.time() - t0, flush=True)

if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "tanh",
         int(sys.argv[5]) if len(sys.argv) > 5 else 0)
