"""kernels/*.cu on the CPU (tests/cuda_host), through gluonlite._kernels, against NumPy.

Every launch goes through the same launch code as on a GPU (``_fc_forward``, ``_fc_backward``,
``_retain``), runs under forward, reverse and shuffled thread orders, writes into outputs
poisoned with NaN inside guard zones, and is compared with a float64 NumPy reference. The
last section runs the public, CuPy-facing entry points against a NumPy-backed CuPy stand-in.
``test_under_address_sanitizer`` reruns the CPU kernel tests with the kernels built with ASan.
"""

import sys
import time
import zlib

import numpy as np
import pytest

from tests.cuda_host import fake_cupy, harness
from tests.cuda_host.reference import (
    CTYPES,
    RETAIN_DTYPES,
    TOLERANCE,
    as_float64,
    assert_close,
    bf16_bits,
    bf16_values,
    check_retain,
    gemm_ex,
    make,
    retain_case,
)
from gluonlite import _kernels

harness.require_toolchain()

FC_DTYPES = tuple(TOLERANCE)


def ctype_of(dtype: str) -> str:
    return CTYPES[dtype]


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request):
    runtime = harness.HostRuntime(order=request.param, seed=1234, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


@pytest.fixture
def rng(request):
    # Seeded by the test id: reproducible (str hash() is randomised per process).
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


# (N, M, K): batch, out features, in features; tails of the 64 x 64 x 16 tiles, K=1, N=1,
# an empty batch, no output features, no input features (y = b).
FC_SHAPES = [
    (1, 1, 1),
    (1, 7, 5),
    (3, 4, 1),
    (64, 64, 16),
    (65, 67, 17),
    (70, 130, 33),
    (0, 5, 3),
    (4, 0, 3),
    (5, 3, 0),
]


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize("shape", FC_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_fc_forward_kernel(rt, rng, shape, dtype, bias):
    n, m, k = shape
    (x, xr), (w, wr) = make(rng, (n, k), dtype), make(rng, (m, k), dtype)
    b, br = make(rng, (m,), dtype) if bias else (None, np.zeros(m))
    x_before = x.copy()
    y = _kernels._fc_forward(rt, x, w, b, "kernel", ctype=ctype_of(dtype))
    assert y.dtype == x.dtype
    assert_close(y, xr @ wr.T + br, dtype, "y")
    np.testing.assert_array_equal(x, x_before)  # inputs are read-only to the kernel
    launched = [e for e in rt.launches if e.startswith("fc_gemm")]
    assert launched == ([] if n * m == 0 else [f"fc_gemm<{ctype_of(dtype)},true,true>"])


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1), (65, 67, 17), (300, 3, 2), (0, 4, 2), (4, 3, 0)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_fc_forward_cublas_path_bias_epilogue(rt, rng, shape, dtype):
    # On the CPU a NumPy emulation of cuBLAS's column-major GemmEx stands in for cuBLAS;
    # the bias epilogue kernel is the real one.
    n, m, k = shape
    (x, xr), (w, wr), (b, br) = (make(rng, s, dtype) for s in ((n, k), (m, k), (m,)))
    y = _kernels._fc_forward(rt, x, w, b, "cublas", ctype=ctype_of(dtype))
    assert_close(y, xr @ wr.T + br, dtype, "y")
    assert rt.launches == ([] if n == 0 else [f"fc_bias_add<{ctype_of(dtype)}>"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_conversions_round_to_nearest_even(rt, dtype):
    # y[n, j] = x[n] * 1 + b[j] is one float32 addition of two 16-bit values, then one
    # rounding to 16 bits: bit for bit what NumPy does, across the whole range (subnormals,
    # ties, overflow to infinity) since x and b are random bit patterns.
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**16, size=128 + 64, dtype=np.uint16)
    if dtype == "float16":
        values = bits.view(np.float16)
        values = np.where(np.isfinite(values), values, np.float16(65504)).astype(np.float16)
        x, b, one = values[:128, None].copy(), values[128:].copy(), np.float16(1)
        with np.errstate(over="ignore"):
            expected = (x.astype(np.float32) + b.astype(np.float32)).astype(np.float16)
        as_bits = lambda a: a.view(np.uint16)  # noqa: E731
    else:
        values = bf16_values(bits)
        bits = np.where(np.isfinite(values), bits, np.uint16(0x7F7F))
        x, b, one = bits[:128, None].copy(), bits[128:].copy(), bf16_bits(1.0)
        with np.errstate(over="ignore"):
            expected = bf16_bits(bf16_values(x) + bf16_values(b))
        as_bits = lambda a: a  # noqa: E731
    w = np.full((64, 1), one, dtype=x.dtype)
    y = _kernels._fc_forward(rt, x, w, b, "kernel", ctype=ctype_of(dtype))
    mismatch = np.flatnonzero(as_bits(y) != as_bits(expected))
    assert mismatch.size == 0, (
        as_bits(y).ravel()[mismatch[:5]],
        as_bits(expected).ravel()[mismatch[:5]],
    )
    magnitudes = np.abs(as_float64(y, dtype))
    assert np.isinf(magnitudes).any()  # the overflow branch was exercised
    if dtype == "float16":  # and the subnormal one
        assert ((magnitudes > 0) & (magnitudes < 2.0**-14)).any()


@pytest.mark.parametrize("data_type, dtype", [(0, "float32"), (2, "float16"), (14, "bfloat16")])
@pytest.mark.parametrize(
    "transa, transb", [(False, False), (True, False), (False, True), (True, True)]
)
def test_cublas_emulation_is_column_major(rng, transa, transb, data_type, dtype):
    # The oracle of the cuBLAS path, checked against Fortran-order reshapes.
    m, n, k, lda, ldb, ldc = 3, 4, 5, 7, 6, 5
    bits_type = np.uint32 if dtype == "float32" else np.uint16
    a, b, c = (make(rng, size, dtype)[0].view(bits_type) for size in (lda * 5, ldb * 5, ldc * n))
    c0 = c.copy()
    values = lambda bits: as_float64(bits if dtype == "bfloat16" else bits.view(dtype), dtype)  # noqa: E731
    stored_a = values(a[: lda * (m if transa else k)]).reshape(lda, -1, order="F")
    stored_b = values(b[: ldb * (k if transb else n)]).reshape(ldb, -1, order="F")
    op_a = stored_a[:k, :m].T if transa else stored_a[:m, :k]
    op_b = stored_b[:n, :k].T if transb else stored_b[:k, :n]
    old = values(c0).reshape(ldc, n, order="F")[:m]
    gemm_ex(data_type, transa, transb, m, n, k, a, lda, b, ldb, c, ldc, 0.5)
    got = values(c).reshape(ldc, n, order="F")
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(got[:m], op_a @ op_b + 0.5 * old, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(c.reshape(n, ldc)[:, m:], c0.reshape(n, ldc)[:, m:])
    with pytest.raises(ValueError, match="INVALID_VALUE"):
        gemm_ex(data_type, transa, transb, m, n, k, a, 1, b, ldb, c, ldc, 0.0)
    with pytest.raises(TypeError, match="bits"):  # bits of the wrong width are refused
        gemm_ex(data_type, transa, transb, m, n, k, a.view(np.uint8), lda, b, ldb, c, ldc, 0)


def test_bias_epilogue_strides_rows_over_the_grid_limit(monkeypatch):
    # More rows than gridDim.y may hold: each block row must loop. The limit is lowered
    # (65535 on a GPU) so that the CPU runs a few blocks instead of 65535.
    monkeypatch.setattr(_kernels, "_MAX_GRID_Y", 3)
    rt = harness.HostRuntime(order="reverse", sanitize=harness.sanitizer())
    y0 = np.arange(11, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = rt.empty(y0.shape, np.float32)
    y[...] = y0
    bias = np.array([0.5, -2.0], np.float32)
    _kernels._bias_add(rt, "float", y, bias)
    np.testing.assert_array_equal(y, y0 + bias)
    rt.check_guards()


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize("shape", FC_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fc_backward_kernel(rt, rng, shape, dtype):
    n, m, k = shape
    (dy, dyr), (x, xr), (w, wr) = (make(rng, s, dtype) for s in ((n, m), (n, k), (m, k)))
    dx, dw, db = _kernels._fc_backward(
        rt, dy, x, w, True, True, True, "kernel", "kernel", ctype=ctype_of(dtype)
    )
    assert_close(dx, dyr @ wr, dtype, "dx")
    assert_close(dw, dyr.T @ xr, dtype, "dw")
    assert_close(db, dyr.sum(axis=0), dtype, "db")


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize("rows, columns", [(700, 5), (37, 70), (1, 3)])
def test_bias_grad_in_row_chunks(monkeypatch, rt, rng, rows, columns, dtype):
    # Small chunks, so that a few rows already need several chunks and the finishing pass.
    monkeypatch.setattr(_kernels, "_BIAS_GRAD_ROWS", 8)
    dy, dyr = make(rng, (rows, columns), dtype)
    db = rt.empty((columns,), dy.dtype)
    _kernels._bias_grad(rt, ctype_of(dtype), dy, db)
    assert_close(db, dyr.sum(axis=0), dtype, "db")
    finished = f"fc_bias_grad_finish<{ctype_of(dtype)}>" in rt.launches
    assert finished == (rows > 8)


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize(
    "shape", [(65, 67, 17), (0, 3, 2), (1, 70, 1)], ids=lambda s: "x".join(map(str, s))
)
def test_fc_backward_accumulates_dw(rt, rng, shape, dtype):
    n, m, k = shape
    (dy, dyr), (x, xr), (w, _), (old, oldr) = (
        make(rng, s, dtype) for s in ((n, m), (n, k), (m, k), (m, k))
    )
    target = rt.empty((m, k), old.dtype)
    target[...] = old
    dx, dw, db = _kernels._fc_backward(
        rt,
        dy,
        x,
        w,
        False,
        True,
        False,
        "kernel",
        "kernel",
        accumulate_dw=target,
        ctype=ctype_of(dtype),
    )
    assert dx is None and db is None and dw is target
    assert_close(dw, oldr + dyr.T @ xr, dtype, "dw accumulated")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize(
    "shape", [(65, 67, 17), (0, 3, 2), (3, 0, 2), (1, 5, 70)], ids=lambda s: "x".join(map(str, s))
)
def test_fc_backward_cublas_paths(rt, rng, shape, accumulate, dtype):
    n, m, k = shape
    (dy, dyr), (x, xr), (w, wr), (old, oldr) = (
        make(rng, s, dtype) for s in ((n, m), (n, k), (m, k), (m, k))
    )
    target = old.copy() if accumulate else None
    dx, dw, db = _kernels._fc_backward(
        rt,
        dy,
        x,
        w,
        True,
        True,
        True,
        "cublas",
        "cublas",
        accumulate_dw=target,
        ctype=ctype_of(dtype),
    )
    assert_close(dx, dyr @ wr, dtype, "dx")
    assert_close(dw, (oldr if accumulate else 0) + dyr.T @ xr, dtype, "dw")
    assert_close(db, dyr.sum(axis=0), dtype, "db")


def test_fc_argument_errors():
    rt = harness.HostRuntime()
    x, w = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="x has 2 input features but the weight expects 3"):
        _kernels._fc_forward(rt, np.zeros((2, 2), np.float32), w, None, "kernel")
    with pytest.raises(TypeError, match="share one dtype"):
        _kernels._fc_forward(rt, x, w.astype(np.float16), None, "kernel")
    with pytest.raises(ValueError, match="bias must have shape \\(4,\\)"):
        _kernels._fc_forward(rt, x, w, np.zeros(3, np.float32), "kernel")
    with pytest.raises(ValueError, match="dy must be float32 of shape \\(2, 4\\)"):
        _kernels._fc_backward(
            rt, np.zeros((2, 3), np.float32), x, w, True, True, True, "kernel", "kernel"
        )
    with pytest.raises(ValueError, match="accumulate_dw must be a C-contiguous float32"):
        _kernels._fc_backward(
            rt,
            np.zeros((2, 4), np.float32),
            x,
            w,
            False,
            True,
            False,
            "kernel",
            "kernel",
            accumulate_dw=np.zeros((3, 4), np.float32),
        )


def test_fc_non_contiguous_inputs_are_made_contiguous(rng):
    rt = harness.HostRuntime(order="shuffled")
    x = rng.standard_normal((9, 20)).astype(np.float32)[:, ::2]
    w = np.asfortranarray(rng.standard_normal((6, 10)).astype(np.float32))
    y = _kernels._fc_forward(rt, x, w, None, "kernel")
    assert_close(y, x.astype(np.float64) @ w.T.astype(np.float64), "float32", "y")


# ------------------------------------------------------------------------------- retain


@pytest.mark.parametrize("dtype", RETAIN_DTYPES)
@pytest.mark.parametrize(
    "row_shape",
    [(), (1,), (3,), (4,), (5,), (2, 3), (300,), (1100,)],
    ids=lambda s: "x".join(map(str, s)) or "scalar",
)
def test_retain_row_widths(rt, rng, row_shape, dtype):
    data, indices = retain_case(rng, 12, row_shape, dtype)
    # Present ids, absent ids, duplicates, out of order.
    row_ids = np.concatenate([indices[[7, 1, 1, 11]], [-5, 1000, indices[3] + 1000]])
    check_retain(rt, data, indices, rng.permutation(row_ids))


@pytest.mark.parametrize(
    "case", ["none-found", "all-found", "empty-request", "empty-data", "empty-rows", "many-rows"]
)
def test_retain_edge_cases(rt, rng, case):
    data, indices = retain_case(rng, 40, (3,), "float32")
    row_ids = {
        "none-found": np.setdiff1d(np.arange(-3, 120), indices),
        "all-found": np.repeat(indices, 2),
        "empty-request": np.zeros(0, np.int64),
        "empty-data": np.arange(10),
        "empty-rows": indices[::3],
        "many-rows": None,
    }[case]
    if case == "empty-data":
        data, indices = data[:0], indices[:0]
    if case == "empty-rows":
        data = np.zeros((40, 0), np.float32)
    if case == "many-rows":  # several blocks of 256 one-unit rows each
        data, indices = retain_case(rng, 1500, (), "float32", universe=5000)
        row_ids = rng.choice(5000, 2500)
    out, out_indices = check_retain(rt, data, indices, row_ids)
    expected_rows = {"none-found": 0, "all-found": 40, "empty-request": 0, "empty-data": 0}
    if case in expected_rows:
        assert out_indices.size == expected_rows[case]


def test_retain_grid_stride_loops(monkeypatch, rt, rng):
    # Fewer blocks than work items: mark and gather threads must take several items each.
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 2)
    data, indices = retain_case(rng, 700, (), "float32", universe=2000)
    check_retain(rt, data, indices, rng.choice(2000, 1200))


@pytest.mark.parametrize(
    "offset_bytes, unit", [(0, "uint4"), (8, "unsigned long long"), (4, "unsigned int")]
)
def test_retain_copy_unit_follows_alignment(rt, rng, offset_bytes, unit):
    # Same 16-byte rows; a source that starts off a 16-byte boundary needs narrower units.
    data, indices = retain_case(rng, 9, (4,), "float32")
    raw = np.empty(data.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 16 + offset_bytes
    shifted = raw[start : start + data.nbytes].view(np.float32).reshape(data.shape)
    shifted[...] = data
    check_retain(rt, shifted, indices, indices[::2])
    assert f"retain_gather<{unit}>" in rt.launches


def test_retain_shape_errors():
    rt = harness.HostRuntime()
    with pytest.raises(ValueError, match="expected data \\[k, ...\\] and indices \\[k\\]"):
        _kernels._retain(rt, np.zeros((3, 2)), np.arange(2), np.arange(2))


# ------------------------------------------------------------------------- sanitizer run


@pytest.mark.slow
@pytest.mark.skipif(harness.sanitizer() is not None, reason="this is the sanitizer run")
@pytest.mark.parametrize(
    "files",
    [
        ["test_kernels_host.py"],
        ["test_kernels_host_dropout.py"],
        ["test_kernels_host_multi_tensor.py"],
        ["test_kernels_host_random.py", "test_kernels_host_conv.py", "cuda_host/test_shim.py"],
    ],
    ids=lambda files: files[0].removeprefix("test_kernels_host").removesuffix(".py") or "fc",
)
def test_under_address_sanitizer(tmp_path, files):
    """The CPU kernel tests again, kernels built with -fsanitize=address. One thread order:
    the other orders make the same memory accesses in another sequence, which the main run
    covers; every dtype, since element sizes change the byte offsets."""
    harness.run_under_asan(tmp_path, files, "not reverse and not shuffled")


# ------------------------------------------- public entry points through a stand-in CuPy


@pytest.fixture
def cupy_stand_in(monkeypatch):
    """``cupy`` replaced by cuda_host.fake_cupy, gluonlite's CuPy-side caches emptied."""
    fake = fake_cupy.module(order="shuffled", sanitize=harness.sanitizer())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_kernels, "_choices", {})
    monkeypatch.delenv(_kernels.FC_PATH_ENV, raising=False)
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()
    yield fake
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_public_fc_with_measured_dispatch(cupy_stand_in, rng, dtype, monkeypatch):
    (x, xr), (w, wr), (b, br), (dy, dyr), (acc, accr) = (
        make(rng, s, dtype) for s in ((33, 20), (70, 20), (70,), (33, 70), (70, 20))
    )
    x, w, b, dy, acc = map(fake_cupy.as_array, (x, w, b, dy, acc))
    assert_close(_kernels.fc_forward(x, w, b), xr @ wr.T + br, dtype, "y")
    dx, dw, db = _kernels.fc_backward(dy, x, w, accumulate_dw=acc)
    assert dw is acc
    assert_close(dx, dyr @ wr, dtype, "dx")
    assert_close(dw, accr + dyr.T @ xr, dtype, "dw")
    assert_close(db, dyr.sum(axis=0), dtype, "db")
    assert {key[:2] for key in _kernels._choices} == {(0, "fwd"), (0, "dx"), (0, "dw")}
    assert set(_kernels._choices.values()) <= {"kernel", "cublas"}
    # Cached: the same shapes are not measured again.
    monkeypatch.setattr(_kernels, "_measure", lambda run: pytest.fail("measured twice"))
    _kernels.fc_forward(x, w, b)
    _kernels.fc_backward(dy, x, w, need_dx=False)


@pytest.mark.parametrize("path", ["kernel", "cublas"])
def test_public_fc_forced_paths(cupy_stand_in, rng, path):
    (x, xr), (w, wr), (b, br) = (make(rng, s, "float32") for s in ((5, 3), (4, 3), (4,)))
    with _kernels.fc_path(path):
        y = _kernels.fc_forward(*map(fake_cupy.as_array, (x, w, b)))
    assert_close(y, xr @ wr.T + br, "float32", "y")
    assert _kernels._choices == {}


def test_measurement_picks_the_faster_path(cupy_stand_in, monkeypatch):
    def run(path):
        time.sleep(0.004 if path == "kernel" else 0.0)

    assert _kernels._measure(run) == "cublas"
    assert _kernels._measure(lambda path: time.sleep(0.004 if path == "cublas" else 0)) == "kernel"

    def kernel_only(path):
        if path == "cublas":
            raise TypeError("no bfloat16 in cuBLAS here")

    assert _kernels._measure(kernel_only) == "kernel"
    with pytest.raises(ZeroDivisionError):  # a failing custom kernel is a bug, not skipped
        _kernels._measure(lambda path: 1 / 0)


@pytest.mark.parametrize("dtype", FC_DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_cublas_path_through_the_cupy_runtime(cupy_stand_in, rng, dtype, accumulate):
    # _CupyRuntime.gemm's call of cublas.gemmEx (arguments, data types, alpha/beta, pointer
    # mode) as the stand-in reads them: one GemmEx per product, dW accumulated by cuBLAS
    # itself (beta = 1) rather than through a temporary.
    rt = _kernels._runtime()
    (x, xr), (w, wr), (b, br), (dy, dyr), (acc, accr) = (
        make(rng, s, dtype) for s in ((9, 20), (7, 20), (7,), (9, 7), (7, 20))
    )
    x, w, b, dy, acc = map(fake_cupy.as_array, (x, w, b, dy, acc))
    y = _kernels._fc_forward(rt, x, w, b, "cublas", ctype=ctype_of(dtype))
    assert_close(y, xr @ wr.T + br, dtype, "y")
    dx, dw, _ = _kernels._fc_backward(
        rt,
        dy,
        x,
        w,
        True,
        True,
        False,
        "cublas",
        "cublas",
        accumulate_dw=acc if accumulate else None,
        ctype=ctype_of(dtype),
    )
    assert_close(dx, dyr @ wr, dtype, "dx")
    assert_close(dw, (accr if accumulate else 0) + dyr.T @ xr, dtype, "dw")
    assert (dw is acc) == accumulate
    data_type = {"float32": 0, "float16": 2, "bfloat16": 14}[dtype]
    assert cupy_stand_in.cuda.cublas.calls == [data_type] * 3
    assert cupy_stand_in.cuda.cublas.mode == 1  # the caller's pointer mode is restored


def test_public_fc_float64_uses_cublas_only(cupy_stand_in, rng):
    x, w, b = (fake_cupy.as_array(rng.standard_normal(s)) for s in ((5, 3), (4, 3), (4,)))
    np.testing.assert_allclose(_kernels.fc_forward(x, w, b), x @ w.T + b, rtol=1e-12)
    dx, dw, db = _kernels.fc_backward(fake_cupy.as_array(np.ones((5, 4))), x, w)
    np.testing.assert_allclose(dw, np.ones((4, 5)) @ x, rtol=1e-12)
    assert _kernels._choices == {}


def test_public_retain(cupy_stand_in, rng):
    data, indices = retain_case(rng, 50, (3, 2), "float32")
    row_ids = np.concatenate([indices[::4], indices[::4], [-1, 999]])
    out, out_indices = _kernels.retain(
        fake_cupy.as_array(data), fake_cupy.as_array(indices), fake_cupy.as_array(row_ids)
    )
    np.testing.assert_array_equal(out_indices, indices[::4])
    np.testing.assert_array_equal(out, data[::4])


def test_compile_error_becomes_kernel_compile_error(cupy_stand_in, monkeypatch):
    real = _kernels.kernel_source
    monkeypatch.setattr(
        _kernels,
        "kernel_source",
        lambda name: real(name).replace("found[lo] = 1;", "found[lo] = nope;"),
    )
    with pytest.raises(
        _kernels.KernelCompileError,
        match=r"(?s)kernels retain_mark, retain_gather<uint4> of retain.cu with "
        r"options \('-std=c\+\+17',\) failed.*nope",
    ):
        _kernels._runtime().kernel("retain.cu", "uint4", "retain_mark")
