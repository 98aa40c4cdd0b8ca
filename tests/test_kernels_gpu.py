"""The kernels on a real GPU through gluonlite._kernels, against NumPy on fresh random inputs.

Covers both fully-connected paths (custom kernel, cuBLAS + bias epilogue), the measured
dispatch and its cache, the PTX conversion fast path against the portable reference path,
retain, and compile-error reporting. Skips where no GPU is visible; ``make gpu-check`` runs
it on a GPU machine. Each test draws a fresh seed and names it in its failure message.
"""

import os

import numpy as np
import pytest

import gluonlite
from tests.cuda_host.reference import (
    CTYPES,
    as_float64,
    assert_close,
    bf16_bits,
    make,
    retain_reference,
)
from gluonlite import _kernels

pytestmark = pytest.mark.skipif(
    gluonlite.num_gpus() == 0, reason="no GPU visible (gluonlite.num_gpus() == 0)"
)

FC_SHAPES = [
    (1, 1, 1),
    (1, 300, 70),
    (3, 5, 1),
    (65, 67, 17),
    (257, 130, 129),
    (0, 8, 4),
    (8, 8, 0),
    (1024, 512, 256),
]


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture
def seed():
    return int.from_bytes(os.urandom(4), "little")


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def upload(cp, rng, shapes, dtype):
    """Random inputs on the GPU (bfloat16 as uint16 bits) and their float64 values."""
    pairs = [make(rng, s, dtype) for s in shapes]
    return [cp.asarray(a) for a, _ in pairs], [r for _, r in pairs]


def run_forward(cp, x, w, b, dtype, path, runtime=None):
    if dtype == "bfloat16" or runtime is not None:
        # CuPy may lack a bfloat16 dtype; the internal entry takes the bits with a C type.
        return _kernels._fc_forward(
            runtime or _kernels._runtime(), x, w, b, path, ctype=CTYPES[dtype]
        )
    with _kernels.fc_path(path):
        return _kernels.fc_forward(x, w, b)


# bfloat16 travels as raw uint16 bits; the cuBLAS path of every dtype calls cublasGemmEx.
FC_CASES = [
    pytest.param(shape, dtype, path, id=f"{'x'.join(map(str, shape))}-{dtype}-{path}")
    for shape in FC_SHAPES
    for dtype in ("float32", "float16", "bfloat16")
    for path in ("kernel", "cublas")
]


@pytest.mark.parametrize("shape, dtype, path", FC_CASES)
def test_fc_forward(cp, rng, seed, shape, dtype, path):
    n, m, k = shape
    (x, w, b), (xr, wr, br) = upload(cp, rng, [(n, k), (m, k), (m,)], dtype)
    y = run_forward(cp, x, w, b, dtype, path)
    assert_close(cp.asnumpy(y), xr @ wr.T + br, dtype, f"y (seed {seed})")


@pytest.mark.parametrize("shape, dtype, path", FC_CASES)
def test_fc_backward(cp, rng, seed, shape, dtype, path):
    n, m, k = shape
    (dy, x, w, old), (dyr, xr, wr, oldr) = upload(cp, rng, [(n, m), (n, k), (m, k), (m, k)], dtype)
    rt = _kernels._runtime()
    dx, dw, db = _kernels._fc_backward(
        rt, dy, x, w, True, True, True, path, path, ctype=CTYPES[dtype]
    )
    what = f"(seed {seed})"
    assert_close(cp.asnumpy(dx), dyr @ wr, dtype, f"dx {what}")
    assert_close(cp.asnumpy(dw), dyr.T @ xr, dtype, f"dw {what}")
    assert_close(cp.asnumpy(db), dyr.sum(axis=0), dtype, f"db {what}")
    _, dw_sum, _ = _kernels._fc_backward(
        rt, dy, x, w, False, True, False, path, path, accumulate_dw=old, ctype=CTYPES[dtype]
    )
    assert dw_sum is old
    assert_close(cp.asnumpy(old), oldr + dyr.T @ xr, dtype, f"dw accumulated {what}")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_public_entry_points_with_auto_dispatch(cp, rng, seed, dtype, monkeypatch):
    monkeypatch.delenv(_kernels.FC_PATH_ENV, raising=False)
    _kernels._choices.clear()
    (x, w, b, dy), (xr, wr, br, dyr) = upload(cp, rng, [(96, 40), (72, 40), (72,), (96, 72)], dtype)
    y = _kernels.fc_forward(x, w, b)
    dx, dw, db = _kernels.fc_backward(dy, x, w)
    assert_close(cp.asnumpy(y), xr @ wr.T + br, dtype, f"y (seed {seed})")
    assert_close(cp.asnumpy(dx), dyr @ wr, dtype, "dx")
    assert_close(cp.asnumpy(dw), dyr.T @ xr, dtype, "dw")
    assert_close(cp.asnumpy(db), dyr.sum(axis=0), dtype, "db")
    device = cp.cuda.Device().id
    ops = sorted(key[1] for key in _kernels._choices if key[0] == device)
    assert ops == ["dw", "dx", "fwd"]
    assert set(_kernels._choices.values()) <= {"kernel", "cublas"}

    # The choice is cached: the same shapes are not measured again.
    def no_measure(run):
        raise AssertionError("measured twice")

    monkeypatch.setattr(_kernels, "_measure", no_measure)
    _kernels.fc_forward(x, w, b)
    _kernels.fc_backward(dy, x, w)


def test_float64_falls_back_to_cublas(cp, rng):
    x, w, b = (cp.asarray(rng.standard_normal(s)) for s in [(5, 3), (4, 3), (4,)])
    y = _kernels.fc_forward(x, w, b)
    np.testing.assert_allclose(
        cp.asnumpy(y), cp.asnumpy(x) @ cp.asnumpy(w).T + cp.asnumpy(b), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_ptx_conversions_match_portable_reference(cp, dtype):
    # The fast (inline PTX cvt) and portable conversions must agree bit for bit, over random
    # 16-bit patterns whose float32 sums cover subnormals, ties and overflow.
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    bits = rng.integers(0, 2**16, size=(4096 + 512,), dtype=np.uint16)
    if dtype == "float16":
        vals = bits.view(np.float16)
        bits = np.where(np.isfinite(vals), bits, np.uint16(0x7BFF))
        one = np.float16(1).view(np.uint16)
        storage = np.float16
    else:
        vals = (bits.astype(np.uint32) << 16).view(np.float32)
        bits = np.where(np.isfinite(vals), bits, np.uint16(0x7F7F))
        one = bf16_bits(1.0)
        storage = np.uint16
    x = cp.asarray(bits[:4096, None].view(storage))
    b = cp.asarray(bits[4096:].view(storage))
    w = cp.asarray(np.full((512, 1), one, np.uint16).view(storage))
    fast = run_forward(cp, x, w, b, dtype, "kernel", _kernels._CupyRuntime())
    portable = run_forward(cp, x, w, b, dtype, "kernel", _kernels._CupyRuntime(portable=True))
    fast_bits = cp.asnumpy(fast).view(np.uint16)
    portable_bits = cp.asnumpy(portable).view(np.uint16)
    np.testing.assert_array_equal(fast_bits, portable_bits)
    assert np.isinf(as_float64(portable_bits.view(storage), dtype)).any()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize(
    "row_shape", [(), (3,), (4,), (2, 3), (1100,)], ids=lambda s: "x".join(map(str, s)) or "scalar"
)
def test_retain(cp, rng, seed, row_shape, dtype):
    k, universe = 3000, 20000
    indices = np.sort(rng.choice(universe, size=k, replace=False)).astype(np.int64)
    data = rng.standard_normal((k,) + row_shape).astype(dtype)
    row_ids = rng.integers(-10, universe + 10, size=4000)  # absent ids and duplicates
    out, out_indices = _kernels.retain(cp.asarray(data), cp.asarray(indices), cp.asarray(row_ids))
    ref, ref_indices = retain_reference(data, indices, row_ids)
    np.testing.assert_array_equal(cp.asnumpy(out_indices), ref_indices)
    assert cp.asnumpy(out).tobytes() == ref.tobytes(), f"seed {seed}"


def test_retain_empty_cases(cp):
    data, indices = cp.ones((4, 3), cp.float32), cp.arange(4, dtype=cp.int64)
    out, out_indices = _kernels.retain(data, indices, cp.zeros(0, cp.int64))
    assert out.shape == (0, 3) and out_indices.shape == (0,)
    out, out_indices = _kernels.retain(data[:0], indices[:0], cp.arange(3))
    assert out.shape == (0, 3) and out_indices.shape == (0,)
    out, out_indices = _kernels.retain(data, indices, cp.asarray([9, 7]))
    assert out.shape == (0, 3) and out_indices.shape == (0,)


def test_compile_error_is_reported_with_source_lines(cp, monkeypatch):
    real = _kernels.kernel_source
    monkeypatch.setattr(
        _kernels,
        "kernel_source",
        lambda name: real(name).replace("found[lo] = 1;", "found[lo] = not_declared;"),
    )
    with pytest.raises(_kernels.KernelCompileError) as info:
        # A type key no other test uses, so that the memoised module is not reused.
        _kernels._load_module(cp.cuda.Device().id, "retain.cu", "unsigned char", True)
    message = str(info.value)
    assert (
        "retain_gather<unsigned char> of retain.cu with options ('-std=c++17', "
        "'-DGL_PORTABLE_CONVERT')" in message
    )
    assert "not_declared" in message and ">>" in message
