"""AdamW, weight decay and Muon: tables (rules, symmetry, errors) and simulate against hand-written NumPy updates."""

from __future__ import annotations

import numpy as np
import pytest

import limits
from limits.finite import Simulation, network as net_fns
from limits.parametrization import Parametrization

DATA = limits.datasets.teacher(P=5, D=3, seed=1)


# ------------------------------------------------------------------ NumPy reference (independent of the package)
def _grads(W, m, X, y):
    """Predictions and dLoss/dW of a tanh MLP ``f = m_L w_L . tanh(h_L)``, ``h_1 = m_0 W_0 x``, loss
    ``|f - y|^2 / (2P)``, by hand-written backpropagation."""
    L = len(W) - 1
    acts, pre = [X], []
    h = m[0] * X @ W[0].T
    for l in range(1, L + 1):
        pre.append(h)
        acts.append(np.tanh(h))
        h = m[l] * acts[l] @ W[l].T if l < L else None
    f = m[L] * acts[L] @ W[L]
    r = (f - y) / len(y)
    grads = [None] * (L + 1)
    grads[L] = m[L] * acts[L].T @ r
    delta = (m[L] * r[:, None] * W[L][None, :]) * (1 - np.tanh(pre[L - 1]) ** 2)
    for l in range(L - 1, -1, -1):
        grads[l] = m[l] * delta.T @ acts[l]
        if l > 0:
            delta = (delta @ (m[l] * W[l])) * (1 - np.tanh(pre[l - 1]) ** 2)
    return f, grads


def _numpy_ns(G):
    """Quintic Newton-Schulz, 5 steps, on the wide orientation (Jordan et al.'s Muon)."""
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / np.sqrt(np.sum(X * X))
    for _ in range(5):
        A = X @ X.T
        X = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def _numpy_train(W, net, X, y, lr, steps, eps=1e-8):
    """Predictions (steps+1, P) under the table's optimizer: Adam(W) per raw weight, Muon (momentum 0.95,
    Nesterov) on its rows, then decoupled (w -= lr eta lambda w) or independent (w -= lambda w) weight decay."""
    W = [np.array(w, dtype=np.float64) for w in W]
    m1 = [np.zeros_like(w) for w in W]
    m2 = [np.zeros_like(w) for w in W]
    out = []
    for k in range(1, steps + 2):
        f, g = _grads(W, net.multipliers, X, y)
        out.append(f)
        new = []
        for l, w in enumerate(W):
            rate = lr * net.lr_scales[l]
            if net.muon and net.muon[l]:
                m1[l] = 0.95 * m1[l] + g[l]
                u = max(1.0, w.shape[0] / w.shape[1]) ** 0.5 * _numpy_ns(g[l] + 0.95 * m1[l])
            else:
                m1[l] = 0.9 * m1[l] + 0.1 * g[l]
                m2[l] = 0.999 * m2[l] + 0.001 * g[l] ** 2
                u = (m1[l] / (1 - 0.9**k)) / (np.sqrt(m2[l] / (1 - 0.999**k)) + eps * net.eps_scales[l])
            lam = net.weight_decays[l]
            new.append(w - rate * u - (rate * lam if net.decay == "decoupled" else lam) * w)
        W = new
    return np.array(out)


TABLES = {
    "adamw decoupled": lambda: limits.param("mup", 2, optimizer="adamw", weight_decay=0.3, gamma0=0.7),
    "adamw independent": lambda: limits.param("mup", 2, optimizer="adamw", weight_decay=0.02, decay="independent"),
    "adamw per-layer, eps exponents": lambda: Parametrization.from_abc(
        [0, "1/2", 1], 0, [0, "1/2", 0], optimizer="adamw", weight_decay=[0.1, 0.2, 0.05], d=[0, "-1/2", 0],
        eps_exponent=[1, "3/2", 1]),
    "muon": lambda: limits.param("mup", 3, optimizer="muon", weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(TABLES))
def test_updates_match_handwritten_numpy(name):
    """simulate's AdamW / Muon steps (float64) equal an independent NumPy implementation to rtol 1e-10 over
    4 steps, for decoupled and independent decay, per-layer decay and epsilon exponents, and Muon rows."""
    p = TABLES[name]()
    n, lr, seed, eps = 8, 0.02, 5, 1e-3  # a large epsilon so that its per-layer scales matter
    net = p.instantiate(n, DATA.X.shape[1])
    params = net_fns.init_params(seed, 0, net.init_stds, p.depth, n, DATA.X.shape[1])
    expect = _numpy_train(params, net, DATA.X, DATA.y, lr, 4, eps)
    t = limits.simulate(p, p.depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=4, seeds=1, seed=seed, progress=False,
                        record=(), method=Simulation(adam_eps=eps))
    np.testing.assert_allclose(t.predictions_per_seed[0], expect, rtol=1e-10, atol=1e-13)
    assert t.meta["optimizer"] == p.optimizer
    again = limits.simulate(p, p.depth, n, X=DATA.X, y=DATA.y, lr=lr, steps=4, seeds=1, seed=seed, progress=False,
                            record=(), method=Simulation(adam_eps=eps))
    np.testing.assert_array_equal(again.losses, t.losses)  # deterministic for a seed


def test_newton_schulz_agrees_with_optax():
    """The package's Newton-Schulz equals optax's Muon orthogonalization (momentum 0: the update is NS(g))."""
    optax = pytest.importorskip("optax")
    import jax
    import jax.numpy as jnp

    from limits.finite.optimizers import newton_schulz

    G = np.random.default_rng(0).normal(size=(12, 7))
    with jax.enable_x64(True):
        tx = optax.contrib.scale_by_muon(beta=0.0, nesterov=False, eps=1e-300)  # ours adds no 1e-7 to the norm
        ref, _ = tx.update(jnp.asarray(G), tx.init(jnp.asarray(G)))
        ours = newton_schulz(jnp.asarray(G))
    scale = max(1.0, G.shape[1] / G.shape[0]) ** 0.5  # optax scales (fan_in, fan_out) storage by sqrt(max(1, out/in))
    np.testing.assert_allclose(np.asarray(ours) * scale, np.asarray(ref), rtol=1e-10, atol=1e-12)
    sv = np.linalg.svd(np.asarray(ours), compute_uv=False)
    assert 0.6 < sv.min() and sv.max() < 1.3


# ----------------------------------------------------------------------------- tables
def test_adamw_and_muon_presets():
    adamw = limits.param("mup", 2, optimizer="adamw", weight_decay=0.1)
    assert [L.weight_decay for L in adamw.layers] == [0.0, 0.1, 0.0]  # vector-like layers: no decay
    # Fan et al.'s rule: lambda ~ sqrt(n) next to lr ~ 1/n in PyTorch (a = 0) form = d = 0 in the BP form
    assert adamw.layers[1].d == 0 and adamw.canonical().layers[1].d == -limits.parametrization.sp.Rational(1, 2)
    assert adamw.exponents().decay == (None, -limits.parametrization.sp.Rational(1, 2), None)
    assert adamw.regime == "feature_learning"
    muon = limits.param("mup", 3, optimizer="muon", weight_decay=0.1)
    assert muon.muon_rows == (1, 2) and muon.regime == "feature_learning"
    e = muon.exponents()
    assert e.dW_spectral == e.spectral_target and e.delta_h == (0, 0, 0) and e.decay == (None, 0, 0, None)
    assert "muon" in muon.table() and "decoupled weight decay" in muon.table()
    sp_adamw = limits.param("sp", 2, optimizer="adamw", weight_decay=0.1)
    assert [L.d for L in sp_adamw.layers] == [0, 0, 0]
    # muP-Adam: the muP presets keep the same exponents for Adam and AdamW
    adam = limits.param("mup", 2, optimizer="adam")
    assert adam.exponents().dW_spectral == adamw.exponents().dW_spectral


def test_symmetry_moves_decay_and_epsilon_exponents():
    for decay in ("decoupled", "independent"):
        p = limits.param("mup", 2, optimizer="adamw", weight_decay=0.2, decay=decay)
        q = p.shift([0, "1/3", "-1/4"])
        assert p.equivalent(q) and p.canonical().equivalent(q.canonical())
        assert q.layers[1].eps_exponent == limits.parametrization.sp.Rational(1, 3)
        assert q.layers[1].d == (p.layers[1].d + limits.parametrization.sp.Rational(1, 3) if decay == "decoupled"
                                 else p.layers[1].d)
        n1, n2 = p.instantiate(64, 3), q.instantiate(64, 3)  # same effective decay per step
        if decay == "decoupled":
            np.testing.assert_allclose(n1.lr_scales * n1.weight_decays, n2.lr_scales * n2.weight_decays)
        else:
            np.testing.assert_allclose(n1.weight_decays, n2.weight_decays)
    p = limits.param("mup", 2, optimizer="adamw", weight_decay=0.2)
    assert not p.equivalent(limits.param("mup", 2, optimizer="adamw", weight_decay=0.3))
    assert not p.equivalent(limits.param("mup", 2, optimizer="adamw", weight_decay=0.2, decay="independent"))


def test_shifted_tables_train_identically():
    """The symmetry is exact for AdamW with decoupled decay and Muon (epsilon moved with the raw gradient)."""
    for p in (limits.param("mup", 2, optimizer="adamw", weight_decay=0.3),
              limits.param("mup", 2, optimizer="muon", weight_decay=0.3)):
        q = p.shift([0, "1/2", 0])
        kw = dict(X=DATA.X, y=DATA.y, lr=0.03, steps=5, seeds=2, progress=False, record=())
        np.testing.assert_allclose(limits.simulate(q, 2, 32, **kw).losses, limits.simulate(p, 2, 32, **kw).losses,
                                   rtol=1e-9)


def test_weight_decay_that_grows_with_width_is_unstable():
    p = limits.param("mup", 2, optimizer="adamw", weight_decay=0.1, d=[0, -1, 0])  # lr*lambda ~ n^(1/2)
    cls = p.classify()
    assert cls.regime == "unstable" and any("weight decay of layer 2" in r and "FAILS" in r for r in cls.reasons)
    from limits.finite import SimulationDiverged

    with pytest.raises(SimulationDiverged, match="weight decay of layer 2"):  # a sweep records it as diverged
        limits.simulate(limits.param("mup", 2, optimizer="adamw", weight_decay=200.0), 2, 64, X=DATA.X, y=DATA.y,
                        lr=0.5, steps=2, seeds=1, progress=False)


def test_symbols_gamma0_and_other_presets():
    """Symbols in d and eps_exponent substitute; gamma0 leaves the decoupled shrink per step unchanged; NTK-Muon is
    in the kernel regime like NTK-Adam (r = 1/2)."""
    s = limits.parametrization.sp.Symbol("s")
    p = Parametrization.from_abc([0, "1/2", 1], 0, [0, "1/2", 0], optimizer="adamw", weight_decay=[0, 0.1, 0],
                                 d=[0, s, 0], eps_exponent=[s, 0, 0]).subs(s="1/4")
    assert p.layers[1].d == limits.parametrization.sp.Rational(1, 4) and p.layers[0].eps_exponent == p.layers[1].d
    one, two = (limits.param("mup", 2, optimizer="adamw", weight_decay=0.1, gamma0=g).instantiate(64, 3)
                for g in (1.0, 2.0))
    np.testing.assert_allclose(one.lr_scales * one.weight_decays, two.lr_scales * two.weight_decays)
    assert limits.param("ntk", 2, optimizer="muon").classify().r_l == (limits.parametrization.sp.Rational(1, 2),) * 2


BAD = [
    (lambda: limits.param("mup", 2, optimizer="adamw", weight_decay=-0.1), "negative"),
    (lambda: limits.param("mup", 2, optimizer="adam", weight_decay=0.1), "weight_decay"),
    (lambda: limits.param("mup", 2, weight_decay=0.1), "weight_decay"),
    (lambda: Parametrization.from_abc([0, 1], 0, optimizer="sgd", weight_decay=0.1), "SGD's weight decay"),
    (lambda: Parametrization.from_abc([0, 1], 0, optimizer="adam", weight_decay=0.1), "optimizer='adamw'"),
    (lambda: limits.param("mup", 1, optimizer="muon"), "depth-1 MLP has none"),
    (lambda: limits.param("mup", 3, optimizer="muon", muon_layers=[1, 2]), "layer 1, the input layer"),
    (lambda: limits.param("mup", 3, optimizer="muon", muon_layers=[4]), "readout"),
    (lambda: limits.param("mup", 3, optimizer="adamw", muon_layers=[2]), "muon_layers"),
    (lambda: limits.param("depth-mup", 3, optimizer="muon", muon_layers=[2]), "one rule"),
    (lambda: Parametrization.from_abc([0, 1], 0, eps_exponent=1), "eps_exponent"),
    (lambda: limits.param("mup", 2, optimizer="adamw", decay="coupled"), "decay"),
    (lambda: Simulation(adam_eps=0.0), "adam_eps"),
    (lambda: limits.param("mup", 1, optimizer="adamw", weight_decay=0.1), "depth-1 MLP has none"),
    (lambda: limits.param("mup", 2, optimizer="adam", d=[0, 1, 0]), "no weight decay"),
    (lambda: limits.transfer("mup", None, (16, 32), [0.1], weight_decays=[0.0, 0.5], limit=False), "depth-1"),
    (lambda: Simulation(adam_eps=-1e-8), "adam_eps"),
]


@pytest.mark.parametrize("make,match", BAD)
def test_bad_optimizer_fields(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_no_limit_is_solved_for_adaptive_tables():
    for opt, kw in (("adam", {}), ("adamw", dict(weight_decay=0.1)), ("muon", {})):
        p = limits.param("mup", 2, optimizer=opt, **kw)
        with pytest.raises(ValueError, match="SGD"):
            limits.solve_dmft(p, X=DATA.X, y=DATA.y, steps=2)
        with pytest.raises(ValueError, match="SGD"):
            limits.solve_kernel(p, X=DATA.X, y=DATA.y, steps=2)


def test_decay_transfer_grid_and_sublayer_gains():
    r = limits.transfer("mup", 2, (16, 32), [0.01, 0.1], weight_decays=[0.0, 0.5], limit=False, X=DATA.X, y=DATA.y,
                        steps=3, seeds=1, progress=False)
    assert r.losses.shape == (2, 2, 2) and r.optima.shape == (2, 2) and r.meta["optimizer"] == "adamw"
    for lam in (0.0, 0.5):  # each slice is the plain transfer of the table with that weight decay
        one = limits.transfer(limits.param("mup", 2, optimizer="adamw", weight_decay=lam), None, (16, 32),
                              [0.01, 0.1], limit=False, X=DATA.X, y=DATA.y, steps=3, seeds=1, progress=False)
        np.testing.assert_array_equal(r.per_decay[lam].losses, one.losses)
    assert r.dataset["loss"].dims == ("width", "lr", "weight_decay")
    with pytest.raises(ValueError, match="limit=False"):
        limits.transfer("mup", 2, (16, 32), [0.1], weight_decays=[0.0, 0.5], X=DATA.X, y=DATA.y)
    with pytest.raises(ValueError, match="has no weight decay"):
        limits.transfer("mup", 2, (16, 32), [0.1], weight_decays=[0.0, 0.5], optimizer="adam", limit=False,
                        X=DATA.X, y=DATA.y)
    # sublayer gain RMS h^{l+1} / RMS phi(h^l): for a linear network the ratio of consecutive h_rms
    t = limits.simulate(limits.param("mup", 3, optimizer="adamw", weight_decay=0.5), 3, 32, X=DATA.X, y=DATA.y,
                        activation="linear", lr=0.05, steps=3, seeds=2, progress=False, record=("features",))
    h = t.diagnostics["h_rms"]
    np.testing.assert_allclose(t.diagnostics["gain"], h[..., 1:] / h[..., :-1], rtol=1e-12)


def test_coordinate_checks_follow_the_adaptive_exponents():
    """One step: SP-Adam's Delta h^2 ~ n and Delta f ~ n^1.5 (unstable), muP-Muon flat, each as its table predicts."""
    kw = dict(X=DATA.X, y=DATA.y, lr=0.01, steps=1, seeds=2, progress=False)
    sp = limits.coord_check(limits.param("sp", 2, optimizer="adam"), 2, (16, 32, 64), spectral=False, **kw)
    assert sp.predicted["dh2"] == 1 and sp.measured("dh2") > 0.8 and sp.consistent("dh2", tol=0.15), sp.table()
    muon = limits.coord_check(limits.param("mup", 2, optimizer="muon", weight_decay=0.1), 2, (16, 32, 64), **kw)
    for name in ("dh1", "dh2", "df", "W2", "dW2"):
        assert muon.predicted[name] == 0 and muon.consistent(name, tol=0.15), muon.table()
