"""kernels/conv.cu on the CPU (tests/cuda_host), through gluonlite._kernels' launch code:
the convolution's row gather against NumPy's take, bit for bit, and the pooling reduction
against a loop over the taps, under forward, reverse and shuffled thread orders, into
NaN-poisoned outputs inside guard zones."""

import numpy as np
import pytest

from gluonlite import _kernels
from gluonlite.npx import conv
from tests.cuda_host import harness

harness.require_toolchain()


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request):
    runtime = harness.HostRuntime(order=request.param, seed=7, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("rows, taps, width", [(1, 1, 1), (37, 4, 17), (0, 3, 2)])
def test_gather_rows_matches_take_bit_for_bit(rt, dtype, rows, taps, width):
    rng = np.random.default_rng(0)
    src = rng.standard_normal((50, width)).astype(dtype)
    index = rng.integers(0, 50, (rows, taps)).astype(np.int64)
    out = rt.empty((rows, taps, width), dtype)
    _kernels._gather_rows(rt, src, index, out)
    assert out.tobytes() == np.take(src, index, axis=0).tobytes()
    unit = {2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}[src.itemsize]
    assert rt.launches == ([] if rows == 0 else [f"conv_gather_rows<{unit}>"])


def test_gather_rows_grid_stride_loop(monkeypatch, rt):
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 2)
    src = np.arange(600, dtype=np.float32).reshape(200, 3)
    index = np.arange(199, -1, -1, dtype=np.int64).repeat(4).reshape(200, 4)
    out = rt.empty((200, 4, 3), np.float32)
    _kernels._gather_rows(rt, src, index, out)
    np.testing.assert_array_equal(out, src[index])


def test_gather_rows_rejects_mismatched_arguments(rt):
    src = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="out must be C-contiguous of shape"):
        _kernels._gather_rows(rt, src, np.zeros((2, 2), np.int64), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="2-, 4- or 8-byte"):
        _kernels._gather_rows(
            rt, src.astype(np.int8), np.zeros(2, np.int64), np.zeros((2, 3), np.int8)
        )


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pool_reduce_matches_the_numpy_tap_loop_bit_for_bit(rt, is_max, dtype):
    # A real pooling geometry: 3x3 windows, stride 2, padding 1 over a 2x7x6 batch.
    grid = conv._Grid(2, (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 5))
    buf = conv._to_phases(np, x, grid, -np.inf if is_max else 0, np.dtype(dtype))
    out = _kernels._pool_reduce(rt, buf, grid.offsets, grid.rows, is_max)
    offsets = grid.offsets.tolist()
    want = buf[offsets[0] : offsets[0] + grid.rows].copy()
    for off in offsets[1:]:
        (np.maximum if is_max else np.add)(want, buf[off : off + grid.rows], out=want)
    assert out.tobytes() == want.tobytes()


def test_pool_reduce_propagates_nan_and_checks_bounds(rt):
    src = np.array([[1.0], [np.nan], [3.0], [0.0]], np.float32)
    out = _kernels._pool_reduce(rt, src, [0, 1], 3, True)
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 0]) and out[2, 0] == 3.0
    with pytest.raises(ValueError, match="read past"):
        _kernels._pool_reduce(rt, src, [0, 2], 3, True)
    with pytest.raises(TypeError, match="float32 or float64"):
        _kernels._pool_reduce(rt, src.astype(np.float16), [0], 3, True)
