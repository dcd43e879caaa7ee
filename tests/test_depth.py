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
    from limits.analysis import DepthTransferResult, transfer

    d = limits.datasets.teacher()
    kw = dict(X=d.X, y=d.y, activation="tanh", steps=5, seeds=4, limit=False, cache_dir=False, progress=False)
    lrs = np.geomspace(1 / 16, 16, 17)
    mup = transfer("depth-mup", None, [64], lrs, depths=[4, 16, 64], **kw)
    plain = transfer("resnet", None, [64], lrs, depths=[4, 16, 64], **kw)
    assert isinstance(mup, DepthTransferResult) and mup.losses.shape == (3, 1, 17)
    assert not mup.at_edge.any() and not plain.at_edge.any()
    assert abs(mup.exponent) < 0.1, mup.table()
    assert plain.exponent < -0.12 and plain.optima[-1, 0] < 0.7 * plain.optima[0, 0], plain.table()
    assert "depth exponent" in plain.table()
    assert plain.plot(tmp_path / "depth_transfer.png").exists()


def test_transfer_depths_bad_inputs():
    from limits.analysis import transfer

    kw = dict(steps=1, seeds=1, cache_dir=False, progress=False, limit=False)
    with pytest.raises(ValueError, match="depths"):
        transfer("depth-mup", None, [16], [0.1], depths=[0, 2], **kw)
    with pytest.raises(ValueError, match="not one of depths"):
        transfer("depth-mup", 3, [16], [0.1], depths=[2, 4], **kw)
    with pytest.raises(ValueError, match="fixed depth"):
        transfer(limits.param("depth-mup", 2), None, [16], [0.1], depths=[2, 4], **kw)
    with pytest.raises(ValueError, match="depth is required"):
        transfer("depth-mup", None, [16], [0.1], **kw)


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
