"""The scaling exponents of limits.scaling.exponents: values, identities, continuity, symbolic/numeric agreement, errors."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from limits.scaling.exponents import ALPHA, BETA, REGIMES, ScalingExponents, exponents, symbolic, task_difficulty

RATES = ("time", "width", "data", "compute", "width_compute", "time_compute")
H = sp.Symbol("h", positive=True)
HARD, ABOVE = 1 - H, 2 - 1 / (1 + H)  # beta < 1, and 1 < beta < 2 (sympy decides both); beta -> 1 as h -> 0
GRID = [(a, b) for a in (1.1, 1.5, 2.0, 3.0, 5.0) for b in (0.05, 0.3, 0.5, 0.9, 0.999, 1.0, 1.2, 1.5, 2.0, 3.5)]


def _branch(expr, beta):
    """``expr`` of :func:`symbolic` on the branch selected by substituting ``beta`` (e.g. ``1 - h``)."""
    out = expr.subs(BETA, beta)
    assert not out.has(sp.Piecewise), f"branch not decided: {out}"
    return out


@pytest.mark.parametrize("regime, expected", [
    ("lazy", dict(task="hard", time=0.5, width=1.0, data=1.0, compute=1 / 3, width_compute=1 / 3, time_compute=2 / 3)),
    ("rich", dict(task="hard", time=2 / 3, width=1.0, data=1.0, compute=0.4, width_compute=0.4, time_compute=0.6)),
])
def test_values_hard_task(regime, expected):
    e = exponents(2, 0.5, regime)
    assert (e.alpha, e.beta, e.regime) == (2.0, 0.5, regime)
    assert e.task == expected["task"]
    for name in RATES:
        assert getattr(e, name) == pytest.approx(expected[name]), name


@pytest.mark.parametrize("regime", REGIMES)
def test_values_easy_tasks_are_the_same_in_both_regimes(regime):
    e = exponents(2, 1.25, regime)  # easy: 1 <= 1.25 < 2 - 1/2
    assert e.task == "easy"
    assert (e.time, e.width, e.data) == pytest.approx((1.25, 2.0, 2.5))
    assert (e.compute, e.width_compute, e.time_compute) == pytest.approx((2.5 / 3.5, 1.5 / 3.5, 2 / 3.5))
    s = exponents(3, 2.5, regime)  # super-easy: same formulas without SGD noise; data saturates at 2 alpha
    assert s.task == "super-easy"
    assert (s.time, s.width, s.data) == pytest.approx((2.5, 3.0, 6.0))
    assert (s.compute, s.width_compute, s.time_compute) == pytest.approx((7.5 / 8.5, 5.5 / 8.5, 3 / 8.5))


def test_numeric_fields_are_floats_and_exact_inputs_give_exact_results():
    e = exponents(np.int64(3), Fraction(1, 2), "rich")
    assert all(type(getattr(e, name)) is float for name in ("alpha", "beta", *RATES))
    x = exponents(sp.Integer(2), sp.Rational(1, 2), "rich")
    assert x.task == "hard"
    assert (x.time, x.compute, x.width_compute) == (sp.Rational(2, 3), sp.Rational(2, 5), sp.Rational(2, 5))
    assert exponents(2, sp.Rational(1, 2)).compute == sp.Rational(1, 3)  # a Python int next to sympy stays exact


def test_task_difficulty_boundaries_belong_to_the_upper_class():
    assert task_difficulty(2, 0.999) == "hard"
    assert task_difficulty(2, 1) == "easy"
    assert task_difficulty(2, 1.499) == "easy"
    assert task_difficulty(2, 1.5) == "super-easy"  # 2 - 1/alpha
    assert task_difficulty(sp.Integer(3), sp.Rational(5, 3)) == "super-easy"
    assert task_difficulty(sp.Integer(3), sp.Rational(5, 3) - sp.Rational(1, 10**9)) == "easy"
    assert task_difficulty(ALPHA, sp.Rational(1, 2)) == "hard"  # decided although alpha is a symbol
    undecided = task_difficulty(ALPHA, BETA)
    assert isinstance(undecided, sp.Piecewise)
    assert undecided.subs({ALPHA: 4, BETA: 1.75}) == sp.Symbol("super-easy")
    assert undecided.subs({ALPHA: 4, BETA: 1.7}) == sp.Symbol("easy")


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("beta", [1 - H, 1 + H], ids=["hard", "beta>1"])
def test_compute_identities_hold_symbolically_on_each_branch(regime, beta):
    e = symbolic(regime)
    time, width, compute, n_c, t_c = (_branch(getattr(e, n), beta) for n in ("time", "width", "compute",
                                                                             "width_compute", "time_compute"))
    assert sp.simplify(n_c + t_c - 1) == 0
    assert sp.simplify(compute - time * t_c) == 0  # L* ~ t*^-time
    if beta == 1 - H:
        assert sp.simplify(compute - width * n_c) == 0  # the width floor is balanced: L* ~ N*^-width
    else:  # the transient N^-1 t^-(1-1/alpha) is balanced: N* ~ t*^(beta - 1 + 1/alpha)
        assert sp.simplify(n_c - t_c * (beta - 1 + 1 / ALPHA)) == 0
        assert sp.simplify(_branch(e.width, beta) - ALPHA) == 0


def test_rich_improves_on_lazy_only_for_hard_tasks():
    lazy, rich = symbolic("lazy"), symbolic("rich")
    for name, gain in (("time", BETA * (1 - BETA) / (1 + BETA)),
                       ("compute", ALPHA**2 * BETA * (1 - BETA) / ((1 + ALPHA) * (ALPHA * (1 + BETA) + 2)))):
        assert sp.simplify(_branch(getattr(rich, name), 1 - H) - _branch(getattr(lazy, name), 1 - H)
                           - gain.subs(BETA, 1 - H)) == 0
    for alpha, beta in GRID:
        le, re = exponents(alpha, beta, "lazy"), exponents(alpha, beta, "rich")
        assert re.time >= le.time and re.compute >= le.compute
        assert (re.time > le.time and re.compute > le.compute) if beta < 1 else (re.as_dict() | {"regime": "lazy"}
                                                                                  == le.as_dict())


@pytest.mark.parametrize("regime", REGIMES)
def test_every_field_is_continuous_at_beta_1_and_data_at_beta_2(regime):
    e = symbolic(regime)
    for name in RATES:
        expr = getattr(e, name)
        below, above = _branch(expr, HARD).subs(H, 0), _branch(expr, ABOVE).subs(H, 0)
        assert sp.simplify(below - above) == 0 and sp.simplify(expr.subs(BETA, 1) - above) == 0, name
    assert sp.simplify(_branch(e.data, 2 - H).subs(H, 0) - e.data.subs(BETA, 2)) == 0
    for alpha in (1.3, 2.0, 4.0):
        below, at = exponents(alpha, 1 - 1e-9, regime), exponents(alpha, 1.0, regime)
        for name in RATES:
            assert getattr(below, name) == pytest.approx(getattr(at, name), rel=1e-6), name


@pytest.mark.parametrize("regime", REGIMES)
def test_symbolic_formulas_agree_with_numeric_values(regime):
    e = symbolic(regime)
    assert e.symbolic() == e and exponents(2, 0.5, regime).symbolic() == e
    for alpha, beta in GRID:
        numeric = exponents(alpha, beta, regime)
        values = {ALPHA: sp.Float(alpha), BETA: sp.Float(beta)}
        for name in RATES:
            assert float(getattr(e, name).subs(values)) == pytest.approx(getattr(numeric, name), rel=1e-12), name
        assert e.task.subs(values).name == numeric.task == task_difficulty(alpha, beta)


def test_result_is_a_frozen_dataclass_with_the_pinned_fields():
    e = exponents(1.5, 0.7)
    assert list(e.as_dict()) == ["alpha", "beta", "regime", "task", *RATES]
    assert [f.name for f in dataclasses.fields(ScalingExponents)] == list(e.as_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.time = 1.0
    assert math.isclose(e.width_compute + e.time_compute, 1)
    assert any("data exponent" in note for note in exponents(1.5, 0.7, "rich").notes)
    assert not any("rich" in note for note in e.notes)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=1, beta=0.5), r"alpha must be > 1.*trace"),
    (dict(alpha=0.5, beta=0.5), r"alpha must be > 1"),
    (dict(alpha=2, beta=0), r"beta must be > 0"),
    (dict(alpha=2, beta=-1.0), r"beta must be > 0"),
    (dict(alpha=math.nan, beta=0.5), r"alpha must be finite"),
    (dict(alpha=2, beta=math.inf), r"beta must be finite"),
    (dict(alpha="2", beta=0.5), r"alpha must be a real number"),
    (dict(alpha=True, beta=0.5), r"alpha must be a real number"),
    (dict(alpha=2, beta=np.bool_(True)), r"beta must be a real number"),
    (dict(alpha=2, beta=None), r"beta must be a real number"),
    (dict(alpha=2 + 0j, beta=0.5), r"alpha must be a real number"),
    (dict(alpha=sp.Rational(1, 2), beta=0.5), r"alpha must be > 1"),
    (dict(alpha=sp.oo, beta=0.5), r"alpha must be finite"),
    (dict(alpha=sp.nan, beta=0.5), r"alpha must be finite"),
    (dict(alpha=sp.I, beta=0.5), r"alpha must be real"),
    (dict(alpha=2, beta=sp.Symbol("b", negative=True)), r"beta must be > 0"),
    (dict(alpha=2, beta=sp.Eq(BETA, 1)), r"beta must be a real number"),
    (dict(alpha=2, beta=0.5, regime="kernel"), r"regime must be one of 'lazy', 'rich'"),
    (dict(alpha=2, beta=0.5, regime=None), r"regime must be one of 'lazy', 'rich'"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exponents(**kwargs)
    if "regime" not in kwargs:
        with pytest.raises(ValueError, match=match):
            task_difficulty(**kwargs)
