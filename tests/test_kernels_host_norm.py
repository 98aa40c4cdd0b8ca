"""kernels/norm.cu on the CPU (tests/cuda_host), through gluonlite._kernels' launch code,
against a float64 NumPy transcription of batch, layer and group normalisation.

Every launch runs under forward, reverse and shuffled thread orders, into NaN-poisoned
outputs inside guard zones (running statistics updated in place sit in guard zones too), for
float32, float16 and bfloat16 storage (bfloat16 as raw uint16 bits).
"""

import zlib

import numpy as np
import pytest

from gluonlite import _kernels
from tests.cuda_host import harness
from tests.cuda_host.reference import CTYPES, TOLERANCE, as_float64, assert_close, bf16_bits, make

harness.require_toolchain()

DTYPES = ("float32", "float16", "bfloat16")
# Statistics and parameter gradients are float32 sums whatever the storage type.
STAT_TOLERANCE = 2e-5


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request):
    runtime = harness.HostRuntime(order=request.param, seed=5, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def guarded(rt, values):
    """float32 ``values`` copied into an array inside the runtime's guard zones."""
    array = rt.empty(values.shape, np.float32)
    array[...] = values
    return array


def close32(out, reference, what, tolerance=STAT_TOLERANCE):
    out = np.asarray(out, np.float64)
    assert out.shape == reference.shape and not np.isnan(out).any(), what
    scale = max(np.abs(reference).max(), 1e-30)
    error = np.abs(out - reference).max() / scale
    assert error < tolerance, f"{what}: relative error {error:.3g}"


def bn_reference(x, axis, gamma, beta, eps, stats=None):
    """float64 batch norm: (y, mean, var, xhat, invstd) with per-channel arrays (C,)."""
    axes = tuple(a for a in range(x.ndim) if a != axis)
    view = [1] * x.ndim
    view[axis] = x.shape[axis]
    if stats is None:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(view)) ** 2).mean(axis=axes)
    else:
        mean, var = stats
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(view)) * invstd.reshape(view)
    y = xhat * (1 if gamma is None else gamma.reshape(view)) + (
        0 if beta is None else beta.reshape(view)
    )
    return y, mean, var, xhat, invstd


def bn_grad_reference(dy, xhat, invstd, axis, gamma, batch_stats):
    axes = tuple(a for a in range(dy.ndim) if a != axis)
    view = [1] * dy.ndim
    view[axis] = dy.shape[axis]
    m = dy.size // dy.shape[axis]
    g = 1 if gamma is None else gamma.reshape(view)
    dxhat = dy * g
    if batch_stats:
        dx = invstd.reshape(view) * (
            dxhat
            - dxhat.sum(axis=axes).reshape(view) / m
            - xhat * (dxhat * xhat).sum(axis=axes).reshape(view) / m
        )
    else:
        dx = dxhat * invstd.reshape(view)
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


# (shape, axis): NCHW channels, a dense (N, C) batch, channels last, the first axis, odd
# sizes for chunk tails.
BN_CASES = [
    ((4, 3, 5, 7), 1),
    ((133, 6), 1),
    ((2, 5, 4, 3), 3),
    ((7, 2, 3), 0),
    ((1, 1, 1), 1),
    ((5, 4, 129), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", BN_CASES, ids=lambda v: str(v).replace(" ", ""))
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batch_norm_training_forward_and_backward(rt, rng, monkeypatch, shape, axis, dtype, affine):
    # Small chunks, so that every case with more than 64 elements per channel merges chunks.
    monkeypatch.setattr(_kernels, "_BN_CHUNK_MIN", 64)
    c = shape[axis]
    x, xr = make(rng, shape, dtype)
    x_before = x.copy()
    gamma = (rng.standard_normal(c) + 1).astype(np.float32) if affine else None
    beta = rng.standard_normal(c).astype(np.float32) if affine else None
    rmean0, rvar0 = (
        rng.standard_normal(c).astype(np.float32),
        (rng.random(c) + 0.5).astype(np.float32),
    )
    running = guarded(rt, rmean0), guarded(rt, rvar0)
    eps, momentum = 1e-3, 0.9
    y, mean, var, invstd = _kernels._bn_forward(
        rt, x, axis, gamma, beta, eps, None, running, momentum, ctype=CTYPES[dtype]
    )
    y_ref, mean_ref, var_ref, xhat, inv_ref = bn_reference(
        xr,
        axis,
        None if gamma is None else gamma.astype(np.float64),
        None if beta is None else beta.astype(np.float64),
        eps,
    )
    assert_close(y, y_ref, dtype, "y")
    close32(mean, mean_ref, "mean", STAT_TOLERANCE * max(1, np.abs(xr).max()))
    close32(var, var_ref, "var")
    close32(invstd, inv_ref, "invstd")
    close32(running[0], rmean0 * 0.9 + mean_ref * 0.1, "running mean")
    close32(running[1], rvar0 * 0.9 + var_ref * 0.1, "running var")
    assert x.tobytes() == x_before.tobytes()

    dy, dyr = make(rng, shape, dtype)
    dx, dgamma, dbeta = _kernels._bn_backward(
        rt, x, dy, axis, mean, invstd, gamma, True, ctype=CTYPES[dtype]
    )
    dx_ref, dg_ref, db_ref = bn_grad_reference(
        dyr, xhat, inv_ref, axis, None if gamma is None else gamma.astype(np.float64), True
    )
    # dx is a difference of terms of the size of dy * gamma * invstd, which may cancel:
    # the error is relative to those terms.
    terms = np.abs(dyr).max() * (1 if gamma is None else np.abs(gamma).max()) * inv_ref.max()
    error = np.abs(as_float64(dx, dtype) - dx_ref).max() / max(np.abs(dx_ref).max(), terms)
    assert error < TOLERANCE[dtype], f"dx: relative error {error:.3g}"
    close32(dgamma, dg_ref, "dgamma", 1e-4)
    close32(dbeta, db_ref, "dbeta", 1e-4)
    n_chunks = _kernels._bn_chunks(c, xr.size // c)[0]
    assert n_chunks == min(-(-(xr.size // c) // 64), max(1, 1024 // c))
    ct = CTYPES[dtype]
    assert rt.launches == [
        f"bn_stats_partial<{ct}>",
        "bn_stats_finish",
        f"bn_forward<{ct}>",
        f"bn_backward_partial<{ct}>",
        "bn_backward_finish",
        f"bn_backward_dx<{ct}>",
    ]


def test_batch_norm_channels_beyond_one_finishing_block(rt, rng):
    # 260 channels: the per-channel finishing kernels run two blocks of 256 threads.
    x = rng.standard_normal((3, 260, 2)).astype(np.float32)
    gamma = rng.standard_normal(260).astype(np.float32)
    y, mean, var, invstd = _kernels._bn_forward(rt, x, 1, gamma, None, 1e-3)
    y_ref, mean_ref, var_ref, xhat, inv_ref = bn_reference(
        x.astype(float), 1, gamma.astype(float), None, 1e-3
    )
    assert_close(y, y_ref, "float32", "y")
    close32(var, var_ref, "var")
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = _kernels._bn_backward(rt, x, dy, 1, mean, invstd, gamma, True)
    dx_ref, dg_ref, db_ref = bn_grad_reference(
        dy.astype(float), xhat, inv_ref, 1, gamma.astype(float), True
    )
    close32(dgamma, dg_ref, "dgamma", 1e-4)
    close32(dbeta, db_ref, "dbeta", 1e-4)
    assert not np.isnan(dx).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_with_given_statistics(rt, rng, dtype):
    shape, axis = (3, 4, 6), 1
    x, xr = make(rng, shape, dtype)
    gamma, beta = (
        rng.standard_normal(4).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
    )
    mean = rng.standard_normal(4).astype(np.float32)
    var = (rng.random(4) + 0.2).astype(np.float32)
    y, _, _, invstd = _kernels._bn_forward(
        rt, x, axis, gamma, beta, 1e-5, (mean, var), ctype=CTYPES[dtype]
    )
    y_ref, _, _, xhat, inv_ref = bn_reference(
        xr,
        axis,
        gamma.astype(float),
        beta.astype(float),
        1e-5,
        (mean.astype(float), var.astype(float)),
    )
    assert_close(y, y_ref, dtype, "y")
    dy, dyr = make(rng, shape, dtype)
    # Parameters' gradients without dx, then dx alone (no reduction launched for it).
    _, dgamma, dbeta = _kernels._bn_backward(
        rt, x, dy, axis, mean, invstd, gamma, False, need_dx=False, ctype=CTYPES[dtype]
    )
    rt.launches.clear()
    dx, none_g, none_b = _kernels._bn_backward(
        rt, x, dy, axis, mean, invstd, gamma, False, need_params=False, ctype=CTYPES[dtype]
    )
    assert none_g is None and none_b is None
    assert rt.launches == [f"bn_backward_dx<{CTYPES[dtype]}>"]
    dx_ref, dg_ref, db_ref = bn_grad_reference(dyr, xhat, inv_ref, axis, gamma.astype(float), False)
    assert_close(dx, dx_ref, dtype, "dx")
    close32(dgamma, dg_ref, "dgamma", 1e-4)
    close32(dbeta, db_ref, "dbeta", 1e-4)


def test_batch_norm_variance_of_data_with_a_large_mean(rt, rng):
    # One pass of sum and sum of squares in float32 loses every digit here; Welford keeps
    # the variance to float32 rounding.
    x = (1000 + 0.01 * rng.standard_normal((64, 2, 50))).astype(np.float32)
    _, mean, var, _ = _kernels._bn_forward(rt, x, 1, None, None, 0.0)
    xr = x.astype(np.float64)
    close32(var, xr.var(axis=(0, 2)), "var", 1e-3)
    close32(mean, xr.mean(axis=(0, 2)), "mean", 1e-6)


def test_batch_norm_grid_stride_loop(rt, rng, monkeypatch):
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 2)
    x = rng.standard_normal((3, 5, 301)).astype(np.float32)
    y, _, _, _ = _kernels._bn_forward(rt, x, 1, None, None, 1e-5)
    assert_close(y, bn_reference(x.astype(float), 1, None, None, 1e-5)[0], "float32", "y")


def test_batch_norm_argument_errors(rt):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match="no kernel for float64"):
        _kernels._bn_forward(rt, x.astype(np.float64), 1, None, None, 1e-5)
    with pytest.raises(
        ValueError, match="gamma must be a C-contiguous float32 array of shape \\(3,\\)"
    ):
        _kernels._bn_forward(rt, x, 1, np.ones(4, np.float32), None, 1e-5)
    with pytest.raises(ValueError, match="no elements"):
        _kernels._bn_forward(rt, x[:0], 1, None, None, 1e-5)
    with pytest.raises(ValueError, match="dy must be C-contiguous float32 of shape"):
        _kernels._bn_backward(
            rt, x, x[:1], 1, np.zeros(3, np.float32), np.ones(3, np.float32), None, True
        )
    assert rt.launches == []


# ------------------------------------------------------------------ layer norm (last axis)


def ln_reference(x, gamma, beta, eps):
    mean = x.mean(axis=-1)
    var = ((x - mean[..., None]) ** 2).mean(axis=-1)
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean[..., None]) * invstd[..., None]
    y = xhat * (1 if gamma is None else gamma) + (0 if beta is None else beta)
    return y, mean, var, xhat, invstd


# Rows shorter than a warp, rows that need several passes of a 256-thread block, one
# element, several row chunks and column blocks for the parameter gradients.
LN_SHAPES = [(4, 7), (3, 2, 300), (1, 1), (70, 33), (2, 3, 64)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LN_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_layer_norm_forward_and_backward(rt, rng, monkeypatch, shape, dtype, affine):
    monkeypatch.setattr(_kernels, "_LN_CHUNK_MIN", 8)
    d = shape[-1]
    values = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)  # a mean away from 0
    x = bf16_bits(values) if dtype == "bfloat16" else values.astype(dtype)
    xr = as_float64(x, dtype)
    gamma = (rng.standard_normal(d) + 1).astype(np.float32) if affine else None
    beta = rng.standard_normal(d).astype(np.float32) if affine else None
    y, mean, var, invstd = _kernels._ln_forward(rt, x, gamma, beta, 1e-5, ctype=CTYPES[dtype])
    g64 = None if gamma is None else gamma.astype(np.float64)
    y_ref, mean_ref, var_ref, xhat, inv_ref = ln_reference(
        xr, g64, None if beta is None else beta.astype(np.float64), 1e-5
    )
    assert_close(y, y_ref, dtype, "y")
    close32(mean, mean_ref, "mean")
    close32(var, var_ref, "var", 1e-4)
    close32(invstd, inv_ref, "invstd", 1e-4)
    dy, dyr = make(rng, shape, dtype)
    dx, dgamma, dbeta = _kernels._ln_backward(rt, x, dy, mean, invstd, gamma, ctype=CTYPES[dtype])
    dxhat = dyr * (1 if g64 is None else g64)
    dx_ref = inv_ref[..., None] * (
        dxhat
        - dxhat.mean(axis=-1, keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    )
    terms = np.abs(dxhat).max() * inv_ref.max()
    error = np.abs(as_float64(dx, dtype) - dx_ref).max() / max(np.abs(dx_ref).max(), terms)
    assert error < TOLERANCE[dtype], f"dx: relative error {error:.3g}"
    axes = tuple(range(len(shape) - 1))
    close32(dgamma, (dyr * xhat).sum(axis=axes), "dgamma", 1e-4)
    close32(dbeta, dyr.sum(axis=axes), "dbeta", 1e-4)
    ct = CTYPES[dtype]
    assert rt.launches == [
        f"ln_forward<{ct}>",
        f"ln_backward<{ct}>",
        f"ln_param_partial<{ct}>",
        "ln_param_finish",
    ]


def test_layer_norm_grid_stride_over_rows_and_parts(rt, rng, monkeypatch):
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 3)
    x = rng.standard_normal((10, 40)).astype(np.float32)
    y, mean, var, invstd = _kernels._ln_forward(rt, x, None, None, 1e-5)
    assert_close(y, ln_reference(x.astype(float), None, None, 1e-5)[0], "float32", "y")
    dy = rng.standard_normal((10, 40)).astype(np.float32)
    dx, none_g, none_b = _kernels._ln_backward(rt, x, dy, mean, invstd, None, need_params=False)
    assert none_g is None and none_b is None and not np.isnan(dx).any()


def test_layer_norm_argument_errors(rt):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="no elements"):
        _kernels._ln_forward(rt, x[:, :0], None, None, 1e-5)
    with pytest.raises(ValueError, match="beta must be a C-contiguous float32 array"):
        _kernels._ln_forward(rt, x, None, np.zeros(2, np.float32), 1e-5)
    with pytest.raises(ValueError, match="mean must be C-contiguous float32 with 2 entries"):
        _kernels._ln_backward(rt, x, x, np.zeros(3, np.float32), np.zeros(2, np.float32), None)
    assert rt.launches == []


# ------------------------------------------------------------------ group norm (N, C, ...)


def gn_reference(x, groups, gamma, beta, eps):
    """float64 group norm: (y, mean, var, xhat, invstd), statistics (N, groups)."""
    n, c = x.shape[:2]
    view = (1, c) + (1,) * (x.ndim - 2)
    rows = x.reshape(n, groups, -1)
    mean = rows.mean(axis=-1)
    var = ((rows - mean[..., None]) ** 2).mean(axis=-1)
    invstd = 1 / np.sqrt(var + eps)
    xhat = ((rows - mean[..., None]) * invstd[..., None]).reshape(x.shape)
    y = xhat * (1 if gamma is None else gamma.reshape(view)) + (
        0 if beta is None else beta.reshape(view)
    )
    return y, mean, var, xhat, invstd


# (shape, groups, affine): NCHW in two groups; (N, C) data (one element per channel) without
# parameters; instance norm (a group per channel) with a row shorter than its block; one group
# whose row needs two passes of 256 threads. Rows beyond the grid (at most 3 blocks here), and
# parameter gradients in several chunks where N * S > 64.
GN_CASES = [
    ((2, 4, 3, 5), 2, True),
    ((5, 6), 3, False),
    ((2, 3, 70), 3, True),
    ((2, 4, 100), 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, groups, affine", GN_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_group_norm_forward_and_backward(rt, rng, monkeypatch, shape, groups, affine, dtype):
    monkeypatch.setattr(_kernels, "_BN_CHUNK_MIN", 64)
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 3)
    c = shape[1]
    values = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)  # a mean away from 0
    x = bf16_bits(values) if dtype == "bfloat16" else values.astype(dtype)
    xr = as_float64(x, dtype)
    gamma = (rng.standard_normal(c) + 1).astype(np.float32) if affine else None
    beta = rng.standard_normal(c).astype(np.float32) if affine else None
    ct = CTYPES[dtype]
    y, mean, var, invstd = _kernels._gn_forward(rt, x, groups, gamma, beta, 1e-5, ctype=ct)
    g64 = None if gamma is None else gamma.astype(np.float64)
    y_ref, mean_ref, var_ref, xhat, inv_ref = gn_reference(
        xr, groups, g64, None if beta is None else beta.astype(np.float64), 1e-5
    )
    assert_close(y, y_ref, dtype, "y")
    close32(mean, mean_ref, "mean")
    close32(var, var_ref, "var", 1e-4)
    close32(invstd, inv_ref, "invstd", 1e-4)
    dy, dyr = make(rng, shape, dtype)
    dx, dgamma, dbeta = _kernels._gn_backward(rt, x, dy, groups, mean, invstd, gamma, ctype=ct)
    view = (1, c) + (1,) * (len(shape) - 2)
    n = shape[0]
    dxhat = (dyr * (1 if g64 is None else g64.reshape(view))).reshape(n, groups, -1)
    xhat_rows = xhat.reshape(n, groups, -1)
    dx_ref = inv_ref[..., None] * (
        dxhat
        - dxhat.mean(axis=-1, keepdims=True)
        - xhat_rows * (dxhat * xhat_rows).mean(axis=-1, keepdims=True)
    )
    terms = np.abs(dxhat).max() * inv_ref.max()
    error = np.abs(as_float64(dx, dtype) - dx_ref.reshape(shape)).max() / max(
        np.abs(dx_ref).max(), terms
    )
    assert error < TOLERANCE[dtype], f"dx: relative error {error:.3g}"
    axes = (0,) + tuple(range(2, len(shape)))
    close32(dgamma, (dyr * xhat).sum(axis=axes), "dgamma", 1e-4)
    close32(dbeta, dyr.sum(axis=axes), "dbeta", 1e-4)
    assert rt.launches == [
        f"gn_forward<{ct}>",
        f"gn_backward<{ct}>",
        f"gn_param_partial<{ct}>",
        "ln_param_finish",
    ]


def test_group_norm_gradients_one_at_a_time(rt, rng):
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    gamma = rng.standard_normal(4).astype(np.float32)
    _, mean, var, invstd = _kernels._gn_forward(rt, x, 2, gamma, None, 1e-5)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    rt.launches.clear()
    dx, none_g, none_b = _kernels._gn_backward(rt, x, dy, 2, mean, invstd, gamma, need_params=False)
    assert none_g is None and none_b is None and not np.isnan(dx).any()
    none_dx, dgamma, dbeta = _kernels._gn_backward(rt, x, dy, 2, mean, invstd, gamma, need_dx=False)
    assert none_dx is None and not np.isnan(dgamma).any() and not np.isnan(dbeta).any()
    assert rt.launches == ["gn_backward<float>", "gn_param_partial<float>", "ln_param_finish"]


def test_group_norm_argument_errors(rt):
    x = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match="4 channels, not divisible by groups=3"):
        _kernels._gn_forward(rt, x, 3, None, None, 1e-5)
    with pytest.raises(ValueError, match="no elements"):
        _kernels._gn_forward(rt, x[:, :, :0], 2, None, None, 1e-5)
    with pytest.raises(ValueError, match="must be C-contiguous \\(N, C, ...\\)"):
        _kernels._gn_forward(rt, x[0, 0], 1, None, None, 1e-5)
    with pytest.raises(ValueError, match="gamma must be a C-contiguous float32 array of shape"):
        _kernels._gn_forward(rt, x, 2, np.ones(2, np.float32), None, 1e-5)
    with pytest.raises(ValueError, match="invstd must be C-contiguous float32 with 4 entries"):
        _kernels._gn_backward(rt, x, x, 2, np.zeros(4, np.float32), np.zeros(3, np.float32), None)
    assert rt.launches == []
