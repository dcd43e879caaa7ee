"""Converged fixed points of the iterative DMFT solvers, stored as the reference for the causal march.

The iterative solvers (``limits/dmft/solver.py``, ``linear.py``, ``resnet.py``, ``resnet_mc.py`` with the damped
fixed-point driver ``iteration.py``) were replaced by the one-pass causal march. Before they were removed, this
script ran them at commit 912c7a798939d1965079d787f65702a4296466ce (the iterative code with a causal Stein
jitter and the Stein readout response; it needs that commit's ``limits``) and wrote
``tests/data/fixed_point_reference.npz``:

    git worktree add /tmp/fp 912c7a79 && cp tests/data/make_fixed_point_reference.py /tmp/fp/tests/data/ \
        && cd /tmp/fp && python tests/data/make_fixed_point_reference.py && cp tests/data/*.npz <main>/tests/data/

Every case is iterated to a relative residual below 1e-12 on fixed sources (no Monte Carlo stopping rule), so the
stored state is the fixed point of the sampled equations to rounding. ``tests/test_dmft_march.py`` checks that the
march reproduces it on the same sources.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

import limits

OUT = pathlib.Path(__file__).with_name("fixed_point_reference.npz")
DATA = dict(P=4, D=8, P_test=2, seed=1)
MC = {  # name: (table, depth, activation, steps, samples)
    "tanh_d1": ("mup", 1, "tanh", 8, 1024),
    "tanh_d2": ("mup", 2, "tanh", 6, 1024),
    "relu_d2": ("mup", 2, "relu", 6, 1024),
    "resnet_tanh_L2": ("depth-mup", 2, "tanh", 6, 1024),
    "completep_relu_L2": ("completep", 2, "relu", 5, 512),
}
EXACT = {  # name: (table, depth, steps, depth_steps)
    "linear_d3": ("mup", 3, 10, None),
    "resnet_linear_L3": ("depth-mup", 3, 6, None),
    "resnet_linear_inf64": ("depth-mup", math.inf, 6, 64),  # layer-time ODEs, Heun with depth_steps
    "resnet_linear_inf128": ("depth-mup", math.inf, 6, 128),
    "completep_linear_inf64": ("completep", math.inf, 6, 64),
    "completep_linear_inf128": ("completep", math.inf, 6, 128),
}
LR, GAMMA = 0.5, 1.0


def _grid(d):
    X_all = np.concatenate([d.X, d.X_test])
    Q = d.X_test.shape[0]
    return dict(Kx_all=X_all @ X_all.T / d.X.shape[1], y_all=np.concatenate([d.y, np.zeros(Q)]),
                train_mask=np.concatenate([np.ones(len(d.y)), np.zeros(Q)]))


def _mlp(d, depth, act, steps, S):
    from limits.dmft import solver as mc
    from limits.dmft.iteration import causal_windows, fixed_point

    g = _grid(d)
    a = limits.activations.get(act)
    pb = mc.MonteCarloProblem(act=a, depth=depth, steps=steps, gamma=GAMMA, lr=LR, samples=S, seed=0, **g)
    st0 = mc.initial_state(a, g["Kx_all"], g["y_all"], g["train_mask"], LR, GAMMA, depth, steps)
    st, res, aux, stop, _ = fixed_point(pb, st0, schedules=[causal_windows(steps + 1)], y=d.y, tol=1e-12,
                                        max_iter=2000, monte_carlo=False)
    return st, res, stop


def _resnet(d, name, depth, act, steps, S):
    from limits.dmft import resnet_mc as rm
    from limits.dmft.iteration import causal_windows, fixed_point
    from limits.dmft.resnet import _depth_weights

    p = limits.param(name, depth)
    sd, kd = _depth_weights(p, depth)
    pb = rm._problem(limits.activations.get(act), depth, sd, kd, GAMMA, X=d.X, y=d.y, X_test=d.X_test, lr=LR,
                     steps=steps, samples=S, seed=0, qmc=True, stein_jitter=1e-4)
    st, res, aux, stop, _ = fixed_point(pb, pb.initial_state(), schedules=[causal_windows(steps + 1)], y=d.y,
                                        tol=1e-12, max_iter=2000, monte_carlo=False)
    return st, res, stop


def main():
    d = limits.datasets.teacher(**DATA)
    out, info = {}, {}
    for key, (table, depth, act, steps, S) in MC.items():
        st, res, stop = (_mlp(d, depth, act, steps, S) if table == "mup" else _resnet(d, table, depth, act, steps, S))
        assert stop == "tol", (key, stop, res[-5:])
        out[f"{key}/f"] = np.asarray(st["f"]).reshape(steps + 1, -1)
        for k in ("Phi", "G", "A", "B"):
            for i, M in enumerate(st[k]):
                out[f"{key}/{k}{i}"] = np.asarray(M)
        info[key] = dict(table=table, depth=depth, activation=act, steps=steps, samples=S, seed=0, lr=LR,
                         gamma0=GAMMA, iterations=len(res), residual=res[-1])
        print(key, len(res), res[-1], flush=True)
    for key, (table, depth, steps, K) in EXACT.items():
        tr = limits.solve_dmft(table, depth, X=d.X, y=d.y, X_test=d.X_test, activation="linear", lr=LR,
                               gamma0=GAMMA, steps=steps, tol=1e-13, max_iter=2000, progress=False,
                               record="two_time" if table == "mup" else "equal_time", depth_steps=K)
        out[f"{key}/f"] = np.concatenate([tr.predictions, tr.test_predictions], axis=1)
        for name, K_ in tr.kernels.items():
            out[f"{key}/{name}"] = np.asarray(K_)
        out[f"{key}/ntk"] = np.asarray(tr.ntk)
        info[key] = dict(table=table, depth=str(depth), activation="linear", steps=steps, depth_steps=K, lr=LR,
                         gamma0=GAMMA, iterations=int(tr.diagnostics["iterations"]))
        print(key, tr.diagnostics["iterations"], tr.diagnostics["residuals"][-1], flush=True)
    out["info"] = np.array(json.dumps(dict(data=DATA, cases=info)))
    np.savez_compressed(OUT, **out)


if __name__ == "__main__":
    main()
