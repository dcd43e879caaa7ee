"""Property tests over the public API: for any generated input, the result is finite (and correct where a closed
form checks it), or the error is a ValueError / TypeError whose message names the offending argument.

Sizes are tiny and the grid of shapes small, so that the compiled functions are reused (< 60 s in CI).
"""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import limits

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
                    derandomize=True)
DATA = limits.datasets.teacher(P=4, D=3, P_test=2)

# values an argument may take: valid ones, and the kinds of wrong ones users pass
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["", "no", "1", "tanh", "mup", "ntk"]), st.just(1.9), st.just(8.9), st.just(-1),
    st.just(complex(1, 1)), st.just([1, 2]),
)
ARGS = {
    "lr": st.one_of(st.sampled_from([0.05, 0.3]), anything),
    "steps": st.one_of(st.sampled_from([1, 2, 3]), anything),
    "gamma0": st.one_of(st.sampled_from([None, 0.5, 2.0]), anything),
    "seed": st.one_of(st.sampled_from([None, 0, 7]), anything),
    "record": st.one_of(st.sampled_from([None, "ntk", ("ntk", "kernels"), "two_time", "spectral"]), anything),
    "progress": st.one_of(st.just(False), anything),
    "activation": st.one_of(st.sampled_from(["linear", "tanh", "relu"]), anything),
}


def _names_an_argument(exc: Exception, kwargs: dict) -> bool:
    """The message names one of the arguments given (as a word: ``lr``, ``steps``, ``record``, ...)."""
    names = [k for k in kwargs if k not in ("X", "y")] + ["activation"]
    return re.search(r"\b(" + "|".join(map(re.escape, names)) + r")\b", str(exc)) is not None


def _check(fn, kwargs):
    try:
        traj = fn(**kwargs)
    except (ValueError, TypeError) as exc:
        assert _names_an_argument(exc, kwargs), (type(exc).__name__, str(exc), kwargs)
        return None
    except FloatingPointError as exc:  # divergence at a large lr: must name the lr and the step
        assert "lr" in str(exc), str(exc)
        return None
    assert np.all(np.isfinite(traj.loss)) and np.all(np.isfinite(traj.predictions)), kwargs
    return traj


@SETTINGS
@given(lr=ARGS["lr"], steps=ARGS["steps"], gamma0=ARGS["gamma0"], record=ARGS["record"], progress=ARGS["progress"])
def test_solve_dmft_linear(lr, steps, gamma0, record, progress):
    kwargs = dict(X=DATA.X, y=DATA.y, activation="linear", lr=lr, steps=steps, gamma0=gamma0, record=record,
                  progress=progress)
    traj = _check(lambda **k: limits.solve_dmft("mup", 2, **k), kwargs)
    if traj is not None:
        assert traj.loss[0] == pytest.approx(0.5 * np.mean(DATA.y ** 2))  # f = 0 at init in the muP limit


@SETTINGS
@given(lr=ARGS["lr"], steps=ARGS["steps"], activation=ARGS["activation"], record=ARGS["record"])
def test_solve_kernel(lr, steps, activation, record):
    kwargs = dict(X=DATA.X, y=DATA.y, lr=lr, steps=steps, activation=activation, record=record, progress=False)
    _check(lambda **k: limits.solve_kernel("ntk", 1, **k), kwargs)


@SETTINGS
@given(lr=ARGS["lr"], steps=ARGS["steps"], seed=ARGS["seed"], width=st.one_of(st.sampled_from([8, 16]), anything),
       seeds=st.one_of(st.sampled_from([1, 2]), anything))
def test_simulate(lr, steps, seed, width, seeds):
    kwargs = dict(X=DATA.X, y=DATA.y, lr=lr, steps=steps, seed=seed, width=width, seeds=seeds, record=None,
                  progress=False)
    traj = _check(lambda **k: limits.simulate("mup", 1, **k), kwargs)
    if traj is not None:
        assert traj.losses.shape == (seeds, steps + 1)


@SETTINGS
@given(X=st.sampled_from(["zeros", "nan", "complex", "1d", "object", "empty", "ok"]),
       y=st.sampled_from(["ok", "short", "inf", "2d"]))
def test_bad_data_is_named(X, y):
    Xs = {"zeros": np.zeros((4, 3)), "nan": np.full((4, 3), np.nan), "complex": DATA.X + 1j, "1d": DATA.X[:, 0],
          "object": np.array([[None] * 3] * 4), "empty": np.zeros((0, 3)), "ok": DATA.X}[X]
    ys = {"ok": DATA.y, "short": DATA.y[:2], "inf": np.full(4, np.inf), "2d": np.ones((4, 2))}[y]
    for fn in (lambda: limits.solve_dmft("mup", 1, X=Xs, y=ys, activation="linear", steps=2, progress=False),
               lambda: limits.solve_kernel("ntk", 1, X=Xs, y=ys, steps=2, progress=False)):
        try:
            traj = fn()
        except (ValueError, TypeError) as exc:
            assert re.search(r"\b(X|y)\b", str(exc)), str(exc)
        else:
            assert X in ("ok", "zeros") and y == "ok" and np.all(np.isfinite(traj.loss))


def test_no_silent_nan_from_a_huge_learning_rate():
    """Gradient descent far past its stability limit raises (naming lr), for every solver."""
    for fn in (lambda: limits.solve_kernel("ntk", 1, X=DATA.X, y=DATA.y, lr=1e4, steps=50, progress=False),
               lambda: limits.solve_dmft("mup", 1, X=DATA.X, y=DATA.y, activation="linear", lr=1e4, steps=50,
                                         progress=False),
               lambda: limits.simulate("mup", 1, 8, X=DATA.X, y=DATA.y, lr=1e4, steps=50, seeds=1, progress=False)):
        with pytest.raises((FloatingPointError, ValueError), match="lr"):
            fn()
    assert math.isfinite(limits.solve_kernel("ntk", 1, X=DATA.X, y=DATA.y, lr=0.1, steps=3, progress=False).final_loss)
