"""Benchmarks of gluonlite's kernels against their peers (pytest-benchmark).

On a GPU: fully-connected forward and backward over a shape sweep (batch 1 ... 8192 x
features 64 ... 8192, float32 and bfloat16), gluonlite (``_kernels``, measured dispatch) vs
``cupy.matmul(x, w.T) + b`` vs ``torch.nn.functional.linear`` (where torch imports); retain vs
a device-to-device copy of the same bytes. Each case records its FLOPs or bytes in
``extra_info``; ``ci/gpu_check.py`` turns the JSON into TFLOP/s, GB/s and ratios.

Without a GPU the same cases run on NumPy (and torch's CPU build where importable), on the
smaller shapes only, so that ``make test`` (``--benchmark-disable``: one call each) stays
quick; ``GLUONLITE_BENCH_FULL=1`` runs every shape on the CPU too. Small cases are checked
against a float64 NumPy reference, so a benchmark of a wrong result fails.
"""

import os

import numpy as np
import pytest

import gluonlite
from gluonlite import _backend

ON_GPU = gluonlite.num_gpus() > 0
FULL = ON_GPU or os.environ.get("GLUONLITE_BENCH_FULL") == "1"
BATCHES = (1, 16, 128, 1024, 8192)
FEATURES = (64, 1024, 8192)
CPU_FLOP_LIMIT = 2**25  # forward FLOPs per case on the CPU, without GLUONLITE_BENCH_FULL
CHECK_FLOP_LIMIT = 2**26  # cases small enough to verify in float64 NumPy

try:
    import torch
except ImportError:  # torch is a peer only where installed
    torch = None

IMPLS = ("gluonlite", "cupy", "torch") if ON_GPU else ("numpy", "torch")


def _shapes():
    for n in BATCHES:
        for f in FEATURES:
            if FULL or 2 * n * f * f <= CPU_FLOP_LIMIT:
                yield n, f, f  # (batch, out features, in features)


def _bf16_dtype(xp):
    """The bfloat16 dtype of ``xp`` (NumPy or CuPy through ml_dtypes), or None."""
    try:
        import ml_dtypes

        xp.zeros(1, dtype=ml_dtypes.bfloat16)
        return np.dtype(ml_dtypes.bfloat16)
    except Exception:  # noqa: BLE001 - missing ml_dtypes, or an xp without bfloat16
        return None


class _Case:
    """Inputs of one fully-connected case on one implementation, plus how to sync."""

    def __init__(self, impl, dtype, shape, rng):
        self.impl, self.dtype = impl, dtype
        xp = _backend.cupy() if ON_GPU else np
        if dtype == "bfloat16" and impl in ("cupy", "numpy") and _bf16_dtype(xp) is None:
            pytest.skip(f"{impl} has no bfloat16 here (needs ml_dtypes and bfloat16 support)")
        n, m, k = shape
        host = [rng.standard_normal(s).astype(np.float32) for s in [(n, k), (m, k), (m,), (n, m)]]
        # float64 copies of the values after rounding to the benchmarked storage type.
        self.reference = [_round(h, dtype) for h in host]
        self.ctype = None
        if impl == "torch":
            device = "cuda" if ON_GPU else "cpu"
            tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
            self.arrays = [torch.from_numpy(h).to(device=device, dtype=tdtype) for h in host]
            self.sync = torch.cuda.synchronize if ON_GPU else (lambda: None)
            self.to_numpy = lambda a: a.float().cpu().numpy()
            return
        self.sync = (
            (lambda: xp.cuda.get_current_stream().synchronize()) if ON_GPU else (lambda: None)
        )
        if dtype == "float32":
            self.arrays = [xp.asarray(h) for h in host]
            self.to_numpy = lambda a: _host(a).astype(np.float64)
            return
        bf16 = _bf16_dtype(xp)
        if bf16 is not None:
            self.arrays = [xp.asarray(h.astype(bf16)) for h in host]
            self.to_numpy = lambda a: _host(a).astype(np.float64)
        else:  # gluonlite on a CuPy without bfloat16: the kernels take the raw bits
            self.arrays = [xp.asarray(_bf16_bits(h)) for h in host]
            self.ctype = "gl_bf16"
            self.to_numpy = lambda a: _from_bf16_bits(_host(a))


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _bf16_bits(values):
    u = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bf16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _round(values, dtype):
    if dtype == "bfloat16":
        return _from_bf16_bits(_bf16_bits(values))
    return values.astype(np.float64)


def _forward(case):
    x, w, b, _ = case.arrays
    if case.impl == "torch":
        return lambda: torch.nn.functional.linear(x, w, b)
    if case.impl in ("cupy", "numpy"):
        xp = _backend.cupy() if case.impl == "cupy" else np
        return lambda: xp.matmul(x, w.T) + b
    from gluonlite import _kernels

    if case.ctype is None:
        return lambda: _kernels.fc_forward(x, w, b)
    # bfloat16 bits: the public entry cannot tell them from uint16, so dispatch here.
    rt = _kernels._runtime()
    path = _kernels._choose(
        ("fwd", *x.shape, w.shape[0], "bf16-bits"),
        lambda p: _kernels._fc_forward(rt, x, w, b, p, ctype=case.ctype),
    )
    return lambda: _kernels._fc_forward(rt, x, w, b, path, ctype=case.ctype)


def _backward(case):
    x, w, _, dy = case.arrays
    if case.impl == "torch":
        return lambda: (torch.matmul(dy, w), torch.matmul(dy.T, x), dy.sum(0))
    if case.impl in ("cupy", "numpy"):
        xp = _backend.cupy() if case.impl == "cupy" else np
        # Summed in float32 as torch and gluonlite do: a bfloat16 running sum of 100+ rows
        # is off by percents, which would make the peer fail its own check.
        return lambda: (
            xp.matmul(dy, w),
            xp.matmul(dy.T, x),
            dy.sum(axis=0, dtype=np.float32).astype(dy.dtype),
        )
    from gluonlite import _kernels

    if case.ctype is None:
        return lambda: _kernels.fc_backward(dy, x, w)
    rt = _kernels._runtime()
    paths = [
        _kernels._choose(
            (op, *x.shape, w.shape[0], "bf16-bits"),
            lambda p, op=op: _kernels._fc_backward(
                rt, dy, x, w, op == "dx", op == "dw", False, p, p, ctype=case.ctype
            ),
        )
        for op in ("dx", "dw")
    ]
    return lambda: _kernels._fc_backward(rt, dy, x, w, True, True, True, *paths, ctype=case.ctype)


def _tolerance(dtype):
    return 1e-5 if dtype == "float32" else 1e-2


def _check(case, got, expected, what):
    got = case.to_numpy(got)
    error = np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30)
    assert error < _tolerance(case.dtype), f"{case.impl} {what}: relative error {error:.3g}"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", list(_shapes()), ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", ["forward", "backward"])
def test_fully_connected(benchmark, op, shape, dtype, impl):
    if impl == "torch" and torch is None:
        pytest.skip("torch is not importable")
    n, m, k = shape
    case = _Case(impl, dtype, shape, np.random.default_rng(n + m + k))
    run = _forward(case) if op == "forward" else _backward(case)
    out = run()  # warm-up: compiles kernels, measures the dispatch, picks cuBLAS algorithms
    case.sync()
    flops = (2 if op == "forward" else 4) * n * m * k
    if flops <= CHECK_FLOP_LIMIT:
        xr, wr, br, dyr = case.reference
        if op == "forward":
            _check(case, out, xr @ wr.T + br, "y")
        else:
            for got, expected, what in zip(
                out, (dyr @ wr, dyr.T @ xr, dyr.sum(axis=0)), ("dx", "dw", "db")
            ):
                _check(case, got, expected, what)

    def timed():
        run()
        case.sync()

    benchmark.group = f"fc-{op}-{dtype}-{n}x{m}x{k}"
    benchmark.extra_info.update(
        kind="fc",
        op=op,
        dtype=dtype,
        shape=[n, m, k],
        impl=impl,
        flops=flops,
        device="gpu" if ON_GPU else "cpu",
    )
    benchmark(timed)


# (rows, row width in elements, dtype, fraction of rows requested): hundreds of MB, so that
# the bandwidth, not the few launches and the one synchronisation, is measured.
RETAIN_CASES = [
    (1_000_000, 256, "float32", 0.5),
    (200_000, 1024, "float16", 0.25),
    (4_000_000, 16, "float32", 0.5),
]
CPU_RETAIN_CASES = [(5_000, 128, "float32", 0.5), (2_000, 64, "float16", 0.25)]


@pytest.mark.parametrize("impl", ["gluonlite", "copy"] if ON_GPU else ["numpy", "copy"])
@pytest.mark.parametrize(
    "case", RETAIN_CASES if FULL else CPU_RETAIN_CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}-{c[3]}"
)
def test_retain(benchmark, case, impl):
    rows, width, dtype, fraction = case
    rng = np.random.default_rng(rows + width)
    indices = np.sort(rng.choice(4 * rows, size=rows, replace=False)).astype(np.int64)
    data = rng.standard_normal((rows, width), dtype=np.float32).astype(dtype, copy=False)
    wanted = rng.choice(indices, size=int(rows * fraction), replace=False)
    kept = np.isin(indices, wanted)
    nbytes = 2 * int(kept.sum()) * width * data.itemsize  # read + written
    xp = _backend.cupy() if ON_GPU else np
    d_data, d_indices, d_wanted = xp.asarray(data), xp.asarray(indices), xp.asarray(wanted)
    sync = (lambda: xp.cuda.get_current_stream().synchronize()) if ON_GPU else (lambda: None)
    if impl == "copy":
        # The same bytes moved by a plain device-to-device (or memory-to-memory) copy.
        src = xp.asarray(data[kept])
        dst = xp.empty_like(src)
        run = lambda: xp.copyto(dst, src)  # noqa: E731
    elif impl == "numpy":

        def run():
            keep = np.isin(indices, wanted)
            return data[keep], indices[keep]
    else:
        from gluonlite import _kernels

        run = lambda: _kernels.retain(d_data, d_indices, d_wanted)  # noqa: E731
    out = run()
    sync()
    if impl != "copy":
        got_data, got_indices = (_host(a) for a in out)
        np.testing.assert_array_equal(got_indices, indices[kept])
        assert got_data.tobytes() == data[kept].tobytes()

    def timed():
        run()
        sync()

    benchmark.group = f"retain-{rows}x{width}-{dtype}-{fraction}"
    benchmark.extra_info.update(
        kind="retain",
        shape=[rows, width],
        dtype=dtype,
        impl=impl,
        bytes=nbytes,
        device="gpu" if ON_GPU else "cpu",
    )
    benchmark(timed)
