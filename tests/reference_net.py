"""A small plain-NumPy finite-width network in the pinned DMFT convention (tests only).

    h1 = W0 x / sqrt(D),  h_{l+1} = W_l phi(h_l) / sqrt(N),  f = w . phi(h_L) / (gamma0 N)

raw weights i.i.d. N(0, 1), every raw weight updated by full-batch GD on
``1/(2P) sum (f - y)^2`` with learning rate ``lr * gamma0^2 * N``. Backprop is
written by hand. The hidden N x N matrices are never rewritten: each GD update
of ``W_l`` has rank <= P, so ``W_l(t) = W_l(0) + U V^T`` is kept in factored form
(the same arithmetic as dense GD, fewer memory passes). Seeds run in batches.
Seeds come in antithetic pairs (w, -w), which have the same law.
``extrapolate`` removes the O(1/N) bias of the ensemble mean.
"""

from __future__ import annotations

import numpy as np

ACTS = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(x.dtype)),
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
}


def _train_batch(X, y, rng, N, S, depth, phi, dphi, gamma0, lr, steps):
    P, D = X.shape
    W0 = rng.standard_normal((S, N, D))
    Ws = [rng.standard_normal((S, N, N)) for _ in range(depth - 1)]
    w = rng.standard_normal((S, N))
    if S % 2 == 0:  # antithetic pairs (w, -w): same law, lower variance of the ensemble mean
        half = S // 2
        W0[half:], w[half:] = W0[:half], -w[:half]
        for W in Ws:
            W[half:] = W[:half]
    WsT = [np.ascontiguousarray(W.transpose(0, 2, 1)) for W in Ws]
    k = P * steps
    Us = [np.zeros((S, N, k)) for _ in Ws]
    Vs = [np.zeros((S, N, k)) for _ in Ws]
    eta = lr * gamma0**2 * N
    sqN = np.sqrt(N)
    losses = np.empty((S, steps + 1))
    preds = np.empty((S, steps + 1, P))
    for t in range(steps + 1):
        m = P * t  # number of rank-one terms so far
        hs = [X @ W0.transpose(0, 2, 1) / np.sqrt(D)]  # (S, P, N)
        for l in range(depth - 1):
            a = phi(hs[-1])
            h = a @ WsT[l] + (a @ Vs[l][:, :, :m]) @ Us[l][:, :, :m].transpose(0, 2, 1)
            hs.append(h / sqN)
        aL = phi(hs[-1])
        f = np.einsum("sn,spn->sp", w, aL) / (gamma0 * N)
        preds[:, t] = f
        err = f - y[None, :]
        losses[:, t] = 0.5 * np.mean(err**2, axis=1)
        if t == steps:
            break
        df = err / P  # dL/df
        grad_w = np.einsum("sp,spn->sn", df, aL) / (gamma0 * N)
        dh = df[:, :, None] * w[:, None, :] / (gamma0 * N) * dphi(hs[-1])  # dL/dh_L
        for l in range(depth - 2, -1, -1):  # W_{l+1} maps h_{l+1} -> h_{l+2} (0-based hs)
            a = phi(hs[l])
            dh_next = dh
            back = dh_next @ Ws[l] + (dh_next @ Us[l][:, :, :m]) @ Vs[l][:, :, :m].transpose(0, 2, 1)
            dh = back / sqN * dphi(hs[l])
            # grad W = dh_next^T a / sqrt(N): rank-P update U V^T with U = -eta dh_next^T / sqrt N, V = a^T
            Us[l][:, :, m : m + P] = -eta * dh_next.transpose(0, 2, 1) / sqN
            Vs[l][:, :, m : m + P] = a.transpose(0, 2, 1)
        grad_W0 = dh.transpose(0, 2, 1) @ X / np.sqrt(D)
        w = w - eta * grad_w
        W0 = W0 - eta * grad_W0
    return losses, preds


def train(X, y, *, width, depth, activation="tanh", gamma0=1.0, lr=0.5, steps=20, seeds=8, seed=0, batch=16):
    """Per-seed train losses (seeds, steps+1) and predictions (seeds, steps+1, P)."""
    phi, dphi = ACTS[activation]
    rng = np.random.default_rng(seed)
    out_l, out_p = [], []
    left = int(seeds)
    while left > 0:
        S = min(batch, left)
        l, p = _train_batch(np.asarray(X, float), np.asarray(y, float), rng, int(width), S, depth, phi, dphi,
                            gamma0, lr, steps)
        out_l.append(l)
        out_p.append(p)
        left -= S
    return np.concatenate(out_l), np.concatenate(out_p)


def ensemble_loss(X, y, widths, **kw):
    """Seed-mean loss (len(widths), steps+1) and its standard error."""
    means, ses = [], []
    for N in widths:
        losses, _ = train(X, y, width=N, **kw)
        means.append(losses.mean(0))
        ses.append(losses.std(0, ddof=1) / np.sqrt(losses.shape[0]))
    return np.array(means), np.array(ses)


def extrapolate(widths, values):
    """Least-squares fit ``v(N) = v_inf + b / N`` per time step; returns ``v_inf``."""
    from limits.analysis import extrapolate_in_width

    return extrapolate_in_width(widths, values)


# ---------------------------------------------------------------------------
# Stored references for the DMFT accuracy tests (deep cases are too slow to
# simulate inside the 2-minute test budget on a 2-core machine). Regenerate with
#     python tests/reference_net.py
# ---------------------------------------------------------------------------
CASES = {
    "tanh_d1": dict(depth=1, activation="tanh", lr=0.5, steps=20, widths=(1024, 4096), seeds=(512, 512)),
    "relu_d1": dict(depth=1, activation="relu", lr=0.5, steps=20, widths=(1024, 4096), seeds=(8192, 8192)),
    "tanh_d2": dict(depth=2, activation="tanh", lr=0.5, steps=20),
    "relu_d2": dict(depth=2, activation="relu", lr=0.5, steps=20),
    "linear_d3": dict(depth=3, activation="linear", lr=0.05, steps=20, widths=(128, 256, 512), seeds=(128, 64, 32)),
}
WIDTHS = (256, 512, 1024)
SEEDS = (256, 128, 64)
DATA = dict(P=6, D=8, seed=0)


def reference_path():
    import pathlib

    return pathlib.Path(__file__).parent / "data" / "dmft_reference.json"


def generate(names=None):
    import json
    import time

    import limits

    d = limits.datasets.teacher(**DATA)
    path = reference_path()
    path.parent.mkdir(exist_ok=True)
    out = json.loads(path.read_text()) if path.exists() else {}
    for name, case in CASES.items():
        if names and name not in names:
            continue
        t0 = time.time()
        case = dict(case)
        widths, seeds = case.pop("widths", WIDTHS), case.pop("seeds", SEEDS)
        means, ses = [], []
        for N, S in zip(widths, seeds):
            losses, _ = train(d.X, d.y, width=N, seeds=S, seed=N, batch=64 if case['depth'] == 1 else 16, **case)
            means.append(losses.mean(0).tolist())
            ses.append((losses.std(0, ddof=1) / np.sqrt(S)).tolist())
        out = json.loads(path.read_text()) if path.exists() else {}  # re-read: other cases may have been updated
        out[name] = dict(case=case, widths=list(widths), seeds=list(seeds), data=DATA, mean=means, stderr=ses,
                         extrapolated=extrapolate(widths, np.array(means)).tolist())
        path.write_text(json.dumps(out, indent=1))
        print(f"{name}: {time.time() - t0:.0f}s", flush=True)


# Depth-2 references from the JAX simulator (limits.simulate: same pinned convention, checked
# against ``train`` above at N = 256: relative difference of the seed means <= 1% for tanh,
# within 2.1 standard errors for ReLU). Wider nets and more seeds than the NumPy network
# affords; about 25 minutes per case on 2 cores. Regenerate with
#     python tests/reference_net.py --simulate tanh_d2 relu_d2
SIM_WIDTHS = (512, 1024, 2048)
SIM_SEEDS = (512, 256, 128)


def generate_simulate(names):
    import json
    import time

    import limits

    d = limits.datasets.teacher(**DATA)
    path = reference_path()
    for name in names:
        t0 = time.time()
        case = {k: v for k, v in CASES[name].items() if k not in ("widths", "seeds")}
        means, ses = [], []
        for N, S in zip(SIM_WIDTHS, SIM_SEEDS):
            tr = limits.simulate("mup", case["depth"], N, X=d.X, y=d.y, activation=case["activation"], lr=case["lr"],
                                 steps=case["steps"], seeds=S, seed=1000 + N, record=None, progress=False)
            means.append(np.asarray(tr.loss).tolist())
            ses.append(np.asarray(tr.loss_stderr).tolist())
        out = json.loads(path.read_text()) if path.exists() else {}
        out[name] = dict(case=case, widths=list(SIM_WIDTHS), seeds=list(SIM_SEEDS), data=DATA, mean=means, stderr=ses,
                         extrapolated=extrapolate(SIM_WIDTHS, np.array(means)).tolist(), source="limits.simulate")
        path.write_text(json.dumps(out, indent=1))
        print(f"{name}: {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--simulate"]:
        generate_simulate(sys.argv[2:] or ["tanh_d2", "relu_d2"])
    else:
        generate(sys.argv[1:] or None)
