"""Residual (depth-scaled) tables compiled into their kernel limits."""

import numpy as np
import pytest

import limits
from limits.kernels import resnet, resnet_infinite_depth


@pytest.fixture(scope="module")
def data():
    return limits.datasets.teacher(P=6, D=4, seed=3)


def test_depth_mup_kernel_is_the_resnet_kernel(data):
    L = 8
    traj = limits.solve_kernel("depth-mup", L, X=data.X, y=data.y, activation="relu", lr=0.5, steps=3)
    ref = resnet(L, "relu", 1.0, 0.0, L**-0.5)(data.X)
    np.testing.assert_allclose(traj.ntk[0], ref.ntk, rtol=1e-10)
    # gamma0 cancels in the lazy dynamics of a muP-in-width table
    other = limits.solve_kernel("depth-mup", L, X=data.X, y=data.y, activation="relu", lr=0.5, steps=3, gamma0=0.5)
    np.testing.assert_allclose(other.loss, traj.loss, rtol=1e-10)


def test_depth_mup_kernel_converges_in_depth(data):
    inf = resnet_infinite_depth("relu", 1.0, 0.0, 1.0)(data.X).ntk
    errs = []
    for L in (4, 16, 64):
        ntk = limits.solve_kernel("depth-mup", L, X=data.X, y=data.y, activation="relu", steps=1).ntk[0]
        errs.append(np.abs(ntk - inf).max() / np.abs(inf).max())
    slope = np.polyfit(np.log([4, 16, 64]), np.log(errs), 1)[0]
    assert -1.2 < slope < -0.8  # forward Euler in layer time: O(1/L)


def test_completep_branches_vanish_at_init(data):
    # alpha = 1: branch variance L^-1 -> the NNGP tends to that of the shallow (input+readout) network
    L = 256
    nngp = limits.solve_kernel("completep", L, X=data.X, y=data.y, activation="relu", steps=1).kernels["nngp"][0]
    shallow = resnet(1, "relu", 1.0, 0.0, 0.0)(data.X).nngp
    assert np.abs(nngp - shallow).max() < 5e-3 * np.abs(shallow).max()


def test_resnet_layer_weights_match_finite_differences_of_lr(data):
    # NTK is linear in the layer weights: Theta(lam_in, lam_b, lam_out) = sum of the three groups
    X = data.X
    parts = [resnet(4, "relu", 1.2, 0.1, 0.5, layer_weights=w)(X).ntk for w in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    full = resnet(4, "relu", 1.2, 0.1, 0.5)(X).ntk
    np.testing.assert_allclose(sum(parts), full, rtol=1e-12)
    mixed = resnet(4, "relu", 1.2, 0.1, 0.5, layer_weights=(2.0, 3.0, 0.5))(X).ntk
    np.testing.assert_allclose(2 * parts[0] + 3 * parts[1] + 0.5 * parts[2], mixed, rtol=1e-12)


# ------------------------------------------------ finite-width depth analysis
def test_depthwise_lr_transfer_direction(tmp_path):
    """1/sqrt(L) branches: lr* flat in depth; plain branches: lr* shrinks (benchmarks/depth_transfer.py)."""
    from limits.analysis import DepthTransferResult, depth_transfer, transfer

    d = limits.datasets.teacher()
    kw = dict(X=d.X, y=d.y, activation="tanh", steps=5, seeds=4, limit=False, progress=False)
    lrs = np.geomspace(1 / 16, 16, 17)
    mup = transfer("depth-mup", None, [64], lrs, depths=[4, 16, 64], **kw)
    plain = depth_transfer("resnet", [4, 16, 64], [64], lrs, **kw)
    assert isinstance(mup, DepthTransferResult) and mup.losses.shape == (3, 1, 17)
    assert not mup.at_edge.any() and not plain.at_edge.any()
    assert abs(mup.exponent) < 0.1, mup.table()
    assert plain.exponent < -0.12 and plain.optima[-1, 0] < 0.7 * plain.optima[0, 0], plain.table()
    assert "depth exponent" in plain.table() and plain.meta["depths"] == [4, 16, 64]
    assert plain.plot(tmp_path / "depth_transfer.png").exists()


def test_depth_transfer_takes_a_callable_table():
    from limits.analysis import depth_transfer

    d = limits.datasets.teacher(P=4, D=3)
    kw = dict(X=d.X, y=d.y, steps=1, seeds=1, progress=False, limit=False)
    r = depth_transfer(lambda L: limits.param("depth-mup", L, beta=0.5), [2, 4], [16], [0.1, 0.2], **kw)
    assert r.losses.shape == (2, 1, 2) and r.meta["gamma0"] is None
    assert sorted(r.per_depth) == [2, 4] and r.per_depth[4].meta["depth"] == 4


@pytest.mark.parametrize("call, error, match", [
    (dict(depths=[0, 2]), ValueError, r"depths\[0\] must be an integer >= 1"),
    (dict(depths=[2, 2.5]), TypeError, r"depths\[1\] must be an integer"),
    (dict(depths=[2, 2]), ValueError, r"depths lists \[2\] more than once"),
    (dict(depths=[4]), ValueError, "at least 2 depths"),
    (dict(depths=4), TypeError, "depths must be a list"),
    (dict(depths=[2, 4], depth=3), ValueError, "pass depth=None"),
    (dict(depths=[2, 4], param=limits.param("depth-mup", 2)), ValueError, "fixed depth"),
    (dict(depths=[2, 4], param=lambda L: limits.param("depth-mup", L), gamma0=2.0), ValueError, "gamma0= does not apply"),
    (dict(depths=[2, 4], param=lambda L: "depth-mup"), TypeError, r"param\(2\) must return a limits.Parametrization"),
    (dict(depths=[2, 4], param=3), TypeError, "param must be a preset name or a callable"),
    (dict(depths=[2, 4], widths=[16, 16]), ValueError, r"widths lists \[16\] more than once"),
    (dict(depths=[2, 4], lrs=[0.1, 0.0]), ValueError, r"lrs\[1\] must be a positive"),
    (dict(depths=[2, 4], limit=True, optimizer="adam"), ValueError, "'adam'.*pass limit=False"),
])
def test_transfer_depths_bad_inputs(call, error, match):
    from limits.analysis import transfer

    kw = dict(param="depth-mup", depth=None, widths=[16], lrs=[0.1], steps=1, seeds=1, progress=False, limit=False)
    kw.update(call)
    with pytest.raises(error, match=match):
        transfer(kw.pop("param"), kw.pop("depth"), kw.pop("widths"), kw.pop("lrs"), **kw)


def test_width_depth_commutation_small_grid(tmp_path):
    from limits.analysis import kernel_commutation

    c = kernel_commutation(widths=(32, 256), depths=(2, 16), X=limits.datasets.teacher(P=5, D=4, seed=2).X, seeds=4)
    for kind in ("nngp", "ntk"):
        e = c.errors[kind]  # rows n = 32, 256, inf; columns L = 2, 16
        assert e[-1, 1] < e[-1, 0] / 4  # n = inf first: O(1/L) in depth
        assert e[1, 1] < e[0, 1] / 1.8  # L large first: O(n^-1/2) in width
        assert e[1, 1] < e[0, 0]  # jointly
    assert "depth first" in c.table()
    assert c.plot(tmp_path / "c.png").exists()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(widths=(32, 32)), ValueError, r"widths lists \[32\] more than once"),
    (dict(widths=(32,)), ValueError, "widths needs at least 2"),
    (dict(depths=(2, 0)), ValueError, r"depths\[1\] must be an integer >= 1"),
    (dict(depths=8), TypeError, "depths must be a list"),
    (dict(seeds=1), ValueError, "seeds must be an integer >= 2"),
    (dict(beta=0.0), ValueError, "beta must be a positive"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
    (dict(progress="no"), TypeError, "progress must be True or False"),
    (dict(activation="swish"), ValueError, "unknown activation"),
])
def test_kernel_commutation_bad_inputs(kwargs, error, match):
    from limits.analysis import kernel_commutation

    with pytest.raises(error, match=match):
        kernel_commutation(**{"widths": (8, 16), "depths": (2, 4), **kwargs})
