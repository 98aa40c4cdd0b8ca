"""kernels/pool.cu on the CPU (tests/cuda_host), through gluonlite._kernels' launch code:
pooling's input gradient against a float64 NumPy transcription (a loop over window
positions and taps) and, bit for bit, against the NumPy path of npx.pooling's backward,
whose sums it repeats in the same order.

Every launch runs under forward, reverse and shuffled thread orders into NaN-poisoned outputs
inside guard zones, for float32, float16 and bfloat16 (ml_dtypes) storage.
"""

import itertools
import zlib

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _kernels, autograd
from tests.cuda_host import harness
from tests.helpers import with_bfloat16

harness.require_toolchain()

DTYPES = with_bfloat16(["float32", "float16"])
POOLS = [("max", True), ("avg", True), ("avg", False), ("sum", True)]


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request):
    runtime = harness.HostRuntime(order=request.param, seed=11, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


@pytest.fixture
def rt_shuffled():
    """One thread order for the many storage-type and layout variants (the reference tests
    run every order)."""
    runtime = harness.HostRuntime(order="shuffled", seed=13, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def storage(values, dtype):
    if dtype == "bfloat16":
        import ml_dtypes

        return values.astype(np.float32).astype(ml_dtypes.bfloat16)
    return values.astype(dtype)


def out_shape(spatial, kernel, stride, pad, convention):
    if convention == "full":
        return tuple(
            -(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(spatial, kernel, stride, pad)
        )
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(spatial, kernel, stride, pad))


def reference_grad(x, dy, pool_type, kernel, stride, pad, include_pad):
    """float64 input gradient of channels-first pooling: a loop over output positions and
    window taps, vectorised over (N, C)."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    spatial, out = x.shape[2:], dy.shape[2:]
    dx = np.zeros_like(x)
    for o in itertools.product(*(range(n) for n in out)):
        start = [i * s - p for i, s, p in zip(o, stride, pad)]
        taps = list(itertools.product(*(range(k) for k in kernel)))
        g = dy[(slice(None), slice(None)) + o]
        if pool_type == "max":
            values = []
            for t in taps:
                pos = tuple(a + b for a, b in zip(start, t))
                inside = all(0 <= q < n for q, n in zip(pos, spatial))
                values.append(
                    x[(slice(None), slice(None)) + pos] if inside else np.full(x.shape[:2], -np.inf)
                )
            values = np.stack(values)
            has_nan = np.isnan(values).any(axis=0)
            first = np.argmax(np.where(np.isnan(values), -np.inf, values), axis=0)
            for j, t in enumerate(taps):
                pos = tuple(a + b for a, b in zip(start, t))
                if all(0 <= q < n for q, n in zip(pos, spatial)):
                    dx[(slice(None), slice(None)) + pos] += np.where((first == j) & ~has_nan, g, 0)
            continue
        lo = [0 if include_pad else p for p in pad]
        hi = [n + 2 * p if include_pad else n + p for n, p in zip(spatial, pad)]
        count = 1
        for a in range(len(o)):
            first_cell, last_cell = o[a] * stride[a], o[a] * stride[a] + kernel[a]
            count *= max(0, min(hi[a], last_cell) - max(lo[a], first_cell))
        share = g / max(count, 1) if pool_type == "avg" else g
        for t in taps:
            pos = tuple(a + b for a, b in zip(start, t))
            if all(0 <= q < n for q, n in zip(pos, spatial)):
                dx[(slice(None), slice(None)) + pos] += share
    return dx


# (shape NC..., kernel, stride, pad, pooling_convention)
GEOMETRIES = [
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1), "valid"),  # ResNet's stem pool, overlapping
    ((2, 2, 6, 8), (2, 2), (2, 2), (0, 0), "valid"),  # non-overlapping windows
    ((1, 3, 5, 7), (3, 2), (1, 2), (1, 0), "full"),  # uneven, last window past the edge
    ((2, 3, 9), (3,), (2,), (1,), "valid"),  # 1-D
    ((1, 2, 4, 5, 3), (2, 3, 2), (1, 2, 2), (1, 1, 0), "valid"),  # 3-D
    ((2, 3, 4, 5), (4, 5), (1, 1), (0, 0), "valid"),  # global
]


@pytest.mark.parametrize("pool_type, include_pad", POOLS, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "shape, kernel, stride, pad, convention", GEOMETRIES, ids=lambda v: str(v).replace(" ", "")
)
def test_pool_backward_matches_the_float64_reference(
    rt, rng, shape, kernel, stride, pad, convention, pool_type, include_pad
):
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = x.reshape(-1)[1]  # ties: the first maximum takes the gradient
    out = out_shape(shape[2:], kernel, stride, pad, convention)
    dy = rng.standard_normal(shape[:2] + out).astype(np.float32)
    dx = _kernels._pool_backward(rt, x, dy, pool_type, kernel, stride, pad, False, include_pad)
    ref = reference_grad(x, dy, pool_type, kernel, stride, pad, include_pad)
    assert dx.dtype == np.float32 and not np.isnan(dx).any()
    np.testing.assert_allclose(dx, ref, rtol=1e-6, atol=1e-6)
    expected = ["pool_argmax<float,false>"] if pool_type == "max" else []
    mode = {"max": 0, "avg": 1, "sum": 2}[pool_type]
    assert rt.launches == expected + [f"pool_backward<float,{mode},false>"]


def npx_pool_grad(
    x, dy, pool_type, kernel, stride, pad, convention, include_pad, layout, global_pool=False
):
    """The NumPy path of npx.pooling's backward (the array-op path the kernel replaces)."""
    data = mx.np.array(x)
    data.attach_grad()
    with autograd.record():
        y = mx.npx.pooling(
            data,
            kernel=kernel,
            stride=stride,
            pad=pad,
            pool_type=pool_type,
            pooling_convention=convention,
            count_include_pad=include_pad,
            layout=layout,
            global_pool=global_pool,
        )
    assert y.shape == dy.shape
    y.backward(mx.np.array(dy))
    return data.grad.asnumpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool_type, include_pad", POOLS, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "shape, kernel, stride, pad, convention",
    GEOMETRIES[:3] + GEOMETRIES[4:5],
    ids=lambda v: str(v).replace(" ", ""),
)
@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "NHWC"])
def test_pool_backward_equals_the_array_op_path_bit_for_bit(
    rt_shuffled,
    rng,
    shape,
    kernel,
    stride,
    pad,
    convention,
    pool_type,
    include_pad,
    dtype,
    channels_last,
):
    rt = rt_shuffled
    x = storage(rng.standard_normal(shape), dtype)
    out = out_shape(shape[2:], kernel, stride, pad, convention)
    dy = storage(rng.standard_normal(shape[:2] + out), dtype)
    layout = None
    if channels_last:
        x, dy = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (x, dy))
        layout = {3: "NWC", 4: "NHWC", 5: "NDHWC"}[x.ndim]
    want = npx_pool_grad(x, dy, pool_type, kernel, stride, pad, convention, include_pad, layout)
    dx = _kernels._pool_backward(
        rt, x, dy, pool_type, kernel, stride, pad, channels_last, include_pad
    )
    assert dx.dtype == want.dtype
    # Equal values (+0 and -0 alike): the same float32 sums in the same order.
    np.testing.assert_array_equal(dx.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("pool_type", ["max", "avg", "sum"])
def test_global_pool_backward_equals_the_array_op_path(rt, rng, pool_type):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 1, 1)).astype(np.float32)
    want = npx_pool_grad(
        x, dy, pool_type, (1, 1), None, None, "valid", True, None, global_pool=True
    )
    dx = _kernels._pool_backward(rt, x, dy, pool_type, (4, 5), (1, 1), (0, 0), False)
    np.testing.assert_array_equal(dx, want)


def test_max_pool_backward_nan_and_infinite_windows(rt):
    # Window 0 holds a NaN: no element takes its gradient (the array-op path's NaN == NaN
    # is false). Then, padded by one: window [pad, -inf] is all -inf and its first tap, the
    # padding cell, takes the gradient (nothing arrives in the data); in [-inf, -inf] the
    # first element takes it.
    x = np.array([[[np.nan, 1.0, 2.0, -np.inf, -np.inf, 5.0]]], np.float32)
    dy = np.array([[[10.0, 20.0, 30.0]]], np.float32)
    dx = _kernels._pool_backward(rt, x, dy, "max", (2,), (2,), (0,), False)
    np.testing.assert_array_equal(dx, [[[0, 0, 20, 0, 0, 30]]])
    dx = _kernels._pool_backward(rt, x[:, :, 3:5], dy[:, :, :2], "max", (2,), (1,), (1,), False)
    np.testing.assert_array_equal(dx, [[[20, 0]]])


def test_pool_backward_grid_stride_loop(rt, rng, monkeypatch):
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 1)
    x = rng.standard_normal((3, 4, 9, 10)).astype(np.float32)
    dy = rng.standard_normal((3, 4, 4, 5)).astype(np.float32)
    dx = _kernels._pool_backward(rt, x, dy, "max", (3, 2), (2, 2), (1, 0), False)
    np.testing.assert_allclose(
        dx, reference_grad(x, dy, "max", (3, 2), (2, 2), (1, 0), True), rtol=1e-6
    )


def test_pool_backward_argument_errors(rt):
    x = np.zeros((1, 2, 4, 4), np.float32)
    dy = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="pool_type must be one of"):
        _kernels._pool_backward(rt, x, dy, "lp", (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="need 2 entries"):
        _kernels._pool_backward(rt, x, dy, "max", (2,), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="does not fit data"):
        _kernels._pool_backward(rt, x, dy[:, :1], "max", (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        _kernels._pool_backward(rt, x, dy, "max", (2, 2), (2, 2), (2, 0), False)
    with pytest.raises(TypeError, match="no kernel for float64"):
        _kernels._pool_backward(
            rt, x.astype(np.float64), dy.astype(np.float64), "max", (2, 2), (2, 2), (0, 0), False
        )
    assert rt.launches == []


@pytest.mark.slow
@pytest.mark.skipif(harness.sanitizer() is not None, reason="this is the sanitizer run")
@pytest.mark.parametrize("test_file", ["test_kernels_host_norm.py", "test_kernels_host_pool.py"])
def test_norm_and_pool_kernels_under_address_sanitizer(tmp_path, test_file):
    """norm.cu's and pool.cu's host tests again (one thread order and float32, to stay within
    a few minutes), kernels built with -fsanitize=address (as test_kernels_host.py's
    sanitizer runs do for the other kernels)."""
    harness.run_under_asan(
        tmp_path, [test_file], "(shuffled and not float16 and not bfloat16) or errors or nan"
    )
