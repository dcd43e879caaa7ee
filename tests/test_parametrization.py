"""Parametrization tables: classification (TP4 Thm 3.3), symmetry, instantiation."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import limits
from limits.parametrization import Parametrization, param, resolve

DEPTHS = [1, 2, 3, 5]


@pytest.mark.parametrize("depth", DEPTHS)
def test_preset_regimes(depth):
    assert param("sp", depth).classify().regime == "unstable"
    assert param("sp", depth, c=1).classify().regime == "kernel"
    assert param("ntk", depth).classify().regime == "kernel"
    assert param("mup", depth).classify().regime == "feature_learning"
    assert param("mup", depth, c=1).classify().regime == "trivial"
    assert param("mup", depth, optimizer="adam").classify().regime == "feature_learning"


def test_mfp_depth1_is_feature_learning_and_tp4_form():
    p = Parametrization.from_abc([0, 1], [0, 0], -1, name="mfp-tp4")
    assert p.classify().regime == "feature_learning"
    assert param("mfp", 1).classify().regime == "feature_learning"
    assert p.equivalent(param("mfp", 1))


def test_tp4_mup_form_is_equivalent_to_dmft_form():
    # TP4 Table: muP has a = (-1/2, 0, ..., 1/2), b = 1/2, c = 0 for SGD.
    for depth in (1, 3):
        a = ["-1/2"] + [0] * (depth - 1) + ["1/2"]
        tp4 = Parametrization.from_abc(a, ["1/2"] * (depth + 1), 0)
        assert tp4.classify().regime == "feature_learning"
        assert tp4.equivalent(param("mup", depth))
        assert not tp4.equivalent(param("ntk", depth))


def test_r_values_and_reasons():
    cls = param("sp", 3, c=1).classify()
    assert cls.r == sp.Rational(1, 2)
    assert cls.r_l == (sp.Rational(3, 2), sp.Rational(1, 2), sp.Rational(1, 2))
    unstable = param("sp", 2).classify()
    assert any(reason.startswith("FAILS") and "r = " in reason for reason in unstable.reasons)
    assert param("ntk", 2).classify().r == sp.Rational(1, 2)


def test_exponents_match_tp4_intuition():
    mup = param("mup", 3).exponents()
    assert all(e == 0 for e in mup.delta_h) and mup.delta_f == 0
    # spectral condition: ||W|| and ||dW|| ~ sqrt(fan_out/fan_in) for muP
    assert mup.W_spectral == mup.spectral_target == mup.dW_spectral
    # SP with c=0 blows up: after one step through the initial readout (n^-1/2) ...
    first = param("sp", 2).exponents(steps=1)
    assert first.delta_h == (sp.Rational(-1, 2), sp.Rational(1, 2)) and first.delta_f == 1
    # ... and from the second step on through the updated O(1) readout (TP4's r = -1)
    later = param("sp", 2).exponents(steps=2)
    assert later.delta_h == (0, 1) and later.delta_f == sp.Rational(3, 2)
    assert param("mup", 2).exponents(1) == param("mup", 2).exponents(5)
    ntk = param("ntk", 3).exponents()
    assert all(e == sp.Rational(-1, 2) for e in ntk.delta_h) and ntk.delta_f == 0
    assert str(param("ntk", 1).exponents().as_powers()["delta_h"][0]) == "1/sqrt(n)"


def test_mup_at_gamma_inverse_sqrt_width_instantiates_ntk():
    for width in (64, 1000):
        a = param("mup", 3, gamma0=1 / math.sqrt(width)).instantiate(width, 7)
        b = param("ntk", 3).instantiate(width, 7)
        for field in ("multipliers", "init_stds", "lr_scales"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-14)


def test_instantiate_pinned_convention():
    N, D, g = 256, 5, 0.7
    net = param("mup", 2, gamma0=g).instantiate(N, D)
    np.testing.assert_allclose(net.multipliers, [1 / math.sqrt(D), 1 / math.sqrt(N), 1 / (g * N)])
    np.testing.assert_allclose(net.init_stds, 1.0)
    np.testing.assert_allclose(net.lr_scales, g**2 * N)
    assert net.shapes == [(N, D), (N, N), (N,)]
    ntk = param("ntk", 2).instantiate(N, D)
    np.testing.assert_allclose(ntk.multipliers, [1 / math.sqrt(D), 1 / math.sqrt(N), 1 / math.sqrt(N)])
    np.testing.assert_allclose(ntk.lr_scales, 1.0)


def test_kernel_limit_layers():
    # SP with lr ~ 1/n: the input layer's update vanishes (TP4), the rest give the NTK.
    np.testing.assert_allclose(param("sp", 3, c=1).kernel_limit().layer_weights, [0, 1, 1, 1])
    ntk = param("ntk", 3).kernel_limit()
    np.testing.assert_allclose(ntk.layer_weights, 1)
    assert ntk.f0_variance == 1.0
    mup = param("mup", 2, gamma0=0.5).kernel_limit()
    assert mup.f0_variance == 0.0
    np.testing.assert_allclose(mup.W_std, [1, 1, 2])
    np.testing.assert_allclose(mup.layer_weights * mup.W_std[-1] ** 2, 1)  # gamma0 cancels
    with pytest.raises(ValueError, match="unstable"):
        param("sp", 2).kernel_limit()


def test_effective_gamma():
    assert param("mup", 2, gamma0=0.3).effective_gamma(100) == pytest.approx(0.3)
    assert param("ntk", 2).effective_gamma(400) == pytest.approx(1 / 20)
    assert param("ntk", 2).effective_gamma() == 0.0


def test_symbolic_exponents():
    s = sp.Symbol("s")
    p = Parametrization.from_abc([0, "1/2", s], [0, 0, 0], -1)
    with pytest.raises(ValueError, match="free symbols"):
        p.classify()
    assert p.subs(s=1).classify().regime == "feature_learning"
    assert p.subs(s=sp.Rational(1, 2)).classify().regime == "unstable"


def test_tables_render():
    p = param("mup", 2)
    md, tex = p.table(), p.table("latex")
    assert "| 3 (readout) | 1 | 0 | -1 |" in md
    assert "\\begin{tabular}" in tex and "\\frac{1}{2}" in tex
    with pytest.raises(ValueError, match="format"):
        p.table("html")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: param("xyz", 2), "unknown preset"),
        (lambda: param("mup", 0), "depth"),
        (lambda: param("mup", 2, gamma0=-1), "gamma0"),
        (lambda: param("mup", 2, optimizer="rmsprop"), "optimizer"),
        (lambda: Parametrization.from_abc([0, 1], [0, 0, 0], 0), "b has 3 entries"),
        (lambda: Parametrization.from_abc([0, "x/"], [0, 0], 0), r"a\[1\]"),
        (lambda: Parametrization.from_abc([0, float("nan")], [0, 0], 0), "finite"),
        (lambda: param("mup", 2).instantiate(0, 3), "width"),
        (lambda: param("mup", 2).instantiate(16, -1), "input_dim"),
        (lambda: resolve(param("mup", 2), 3), "depth 2"),
        (lambda: Parametrization.from_abc([0, 1], [0, 0], 0, multipliers=[1, 0]), "multipliers"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


exponent = st.fractions(min_value=-2, max_value=2, max_denominator=6)


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(1, 4),
    a=st.lists(exponent, min_size=5, max_size=5),
    b=st.lists(exponent, min_size=5, max_size=5),
    c=st.lists(exponent, min_size=5, max_size=5),
    theta=st.lists(exponent, min_size=5, max_size=5),
    optimizer=st.sampled_from(["sgd", "adam"]),
)
def test_symmetry_preserves_classification(depth, a, b, c, theta, optimizer):
    k = depth + 1
    p = Parametrization.from_abc(a[:k], b[:k], c[:k], optimizer=optimizer)
    q = p.shift(theta[:k])
    assert q.classify().regime == p.classify().regime
    assert q.classify().r == p.classify().r
    assert q.equivalent(p) and p.equivalent(q)
    assert q.canonical().equivalent(p)
    assert q.exponents() == p.exponents()


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(1, 4), theta=exponent)
def test_presets_move_along_symmetry(depth, theta):
    for name in ("ntk", "mup"):
        p = param(name, depth)
        assert p.shift(theta).equivalent(p)
        assert p.shift(theta).classify().regime == p.classify().regime
    if theta != 0:
        # a shift of a alone (without b, c) changes the dynamics
        p = param("mup", depth)
        moved = Parametrization.from_abc([x + theta for x in p.a], p.b, p.c)
        assert not moved.equivalent(p)


def test_public_api():
    assert limits.param("mup", 2).depth == 2
    assert isinstance(limits.param("ntk"), limits.Parametrization)


# ----------------------------------------------------------------- residual tables
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_residual_presets_depth_classification(optimizer):
    dm = param("depth-mup", 8, optimizer=optimizer)
    cp = param("completep", 8, optimizer=optimizer)
    plain = param("resnet", 8, optimizer=optimizer)
    for p in (dm, cp, plain):
        assert p.depth == 8 and len(p.layers) == 10 and p.is_residual
        assert p.classify().regime == "feature_learning"  # muP in width
    d = dm.classify_depth()
    assert d.stable and d.nontrivial and not d.every_block and d.branch_at_init == "theta(1)"
    c = cp.classify_depth()
    assert c.stable and c.nontrivial and c.every_block and c.branch_at_init == "vanishes"
    assert not plain.classify_depth().stable
    with pytest.raises(ValueError, match="residual"):
        param("mup", 3).classify_depth()


def test_residual_instantiate_branch_and_lr_scaling():
    L, N = 16, 64
    dm = param("depth-mup", L).instantiate(N, 4)
    assert dm.residual and dm.branch_multiplier == pytest.approx(L**-0.5)
    assert dm.shapes == [(N, 4)] + [(N, N)] * L + [(N,)]
    np.testing.assert_allclose(dm.lr_scales, N)  # SGD depth-muP: no depth scaling of lr
    cp = param("completep", L).instantiate(N, 4)
    assert cp.branch_multiplier == pytest.approx(1 / L)
    np.testing.assert_allclose(cp.lr_scales[1:-1], N * L)  # SGD CompleteP: block lr x L
    ad = param("depth-mup", L, optimizer="adam").instantiate(N, 4)
    np.testing.assert_allclose(ad.lr_scales[1:-1] / ad.lr_scales[0], N**-0.5 * L**-0.5)
    assert param("depth-mup", L).kernel_limit().branch_multiplier == pytest.approx(0.25)
    assert not param("depth-mup", 4).equivalent(param("completep", 4))


# ----------------------------------------------------------------- exact exponents, checked arguments (issue 15)
def test_float_exponents_are_exact_or_rejected():
    p = Parametrization.from_abc([0, 1e-7], [0, 0.5], [0.25, -1.0])
    assert p.a[1] == sp.Rational(1, 10**7) and p.a[1] != 0  # not rounded to 0 (limit_denominator did)
    assert p.b[1] == sp.Rational(1, 2) and p.c == (sp.Rational(1, 4), -1)
    with pytest.raises(ValueError, match=r"a\[1\].*'1/3' or sympy.Rational\(1, 3\)"):
        Parametrization.from_abc([0, 1 / 3], [0, 0], 0)
    with pytest.raises(ValueError, match=r"a\[1\].*not a short decimal"):
        Parametrization.from_abc([0, 0.1 + 0.2], [0, 0], 0)
    assert Parametrization.from_abc([0, sp.Float(0.25)], [0, 0], 0).a[1] == sp.Rational(1, 4)
    assert Parametrization.from_abc([0, "1e-7"], [0, 0], 0).a[1] == sp.Rational(1, 10**7)
    with pytest.raises(ValueError, match="Layer.a"):
        limits.parametrization.Layer(1 / 3, 0, 0)


def test_irrational_exponents_stay_exact():
    p = Parametrization.from_abc([0, sp.sqrt(2)], [0, 0], -1)
    assert p.a[1] == sp.sqrt(2) and p.classify().regime == "trivial"


@pytest.mark.parametrize("call, error, match", [
    (lambda: Parametrization.from_abc([0, 1j], [0, 0], 0), TypeError, r"a\[1\]"),
    (lambda: Parametrization.from_abc([0, "I"], [0, 0], 0), ValueError, "must be real"),
    (lambda: Parametrization.from_abc([0, ""], [0, 0], 0), ValueError, "empty string"),
    (lambda: Parametrization.from_abc([0, "__import__('os')"], [0, 0], 0), ValueError, "not a number"),
    (lambda: Parametrization.from_abc([0, True], [0, 0], 0), TypeError, "bool"),
    (lambda: Parametrization.from_abc({0, 1}, [0, 0], 0), TypeError, "a must be a list"),
    (lambda: Parametrization.from_abc([0, 1], [0, 0], (x for x in [0, 0])), TypeError, "c must be"),
    (lambda: param("mup", 1, multipliers=["2", 1]), TypeError, r"multipliers\[0\]"),
    (lambda: param("mup", 1, lr_scales=[1, math.inf]), ValueError, r"lr_scales\[1\]"),
    (lambda: param("mup", 1, init_stds=[1, -1]), ValueError, r"init_stds\[1\]"),
    (lambda: param("mup", 1, c=[0, 0, 0]), ValueError, r"c has 3 entries but the table has 2 rows \(depth \+ 1"),
    (lambda: param("depth-mup", 2, c=[0, 0, 0]), ValueError, "4 rows .*2 residual blocks"),
    (lambda: param("mup", 2.0), TypeError, "depth"),
    (lambda: param("MUP"), ValueError, "lower case"),
    (lambda: param("mup", beta=2.0), ValueError, "beta= does not apply"),
    (lambda: param("mup", gamma0=math.nan), ValueError, "gamma0"),
    (lambda: param("mup", gamma0=1e200), ValueError, "gamma0=1e\\+200 is out of range"),
    (lambda: param("mup", gamma0=1e-200), ValueError, "gamma0=1e-200 is out of range"),
    (lambda: param("mup", gamma0=1 + 1j), TypeError, "gamma0"),
    (lambda: param("mup", optimizer=["sgd"]), ValueError, "optimizer"),
    (lambda: resolve(param("mup", 1), 1, gamma0=2.0), ValueError, "gamma0= does not apply"),
    (lambda: Parametrization.from_abc([0, "s"], [0, 0], 0).subs(t=1), ValueError, "no symbol t"),
    (lambda: param("mup", 2).instantiate(8.0, 3), TypeError, "width"),
    (lambda: param("mup", 2).instantiate(10**400, 3), ValueError, "width=~10\\^400 is too large"),
    (lambda: param("mup", 2).effective_gamma(-math.inf), TypeError, "width"),
    (lambda: param("mup", 2).exponents(1.0), TypeError, "steps"),
    (lambda: Parametrization((limits.parametrization.Layer(0, 0, 0),) * 2, optimizer="SGD"), ValueError, "optimizer"),
])
def test_silently_coerced_inputs_are_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_subs_finds_symbols_by_name_and_stays_exact():
    s = sp.Symbol("s", positive=True)
    p = Parametrization.from_abc([0, s], [0, 0], -1)
    assert p.subs(s=0.5).a[1] == sp.Rational(1, 2)
    assert param("ntk", 2).dmft_limit(10**400).gamma == pytest.approx(1e-200)
