"""kernels/dropout.cu on the CPU (tests/cuda_host), through gluonlite._kernels, against the
NumPy mask of gluonlite/_dropout.py, bit for bit.

Every launch goes through ``_kernels._dropout_mask`` (the GPU launch code), under forward,
reverse and shuffled thread orders, into NaN-poisoned outputs inside guard zones. The kernel's
Philox device function is also checked on its own against Random123's known answers, and the
public, CuPy-facing entry point runs against the NumPy-backed CuPy stand-in.
"""

import sys

import numpy as np
import pytest

from gluonlite import _dropout, _kernels, _philox
from tests.cuda_host import fake_cupy, harness
from tests.cuda_host.reference import (
    DROPOUT_DTYPES,
    PHILOX4X32_10_KAT,
    PHILOX_PROBE_KERNEL,
    dropout_case,
)

harness.require_toolchain()

UNIT = {2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
# Keys with both 32-bit halves non-zero and distinct, so a swapped or dropped half shows.
KEYS = (0x0123456789ABCDEF, 0xFFFFFFFF00000001, 0)


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request):
    runtime = harness.HostRuntime(order=request.param, seed=99, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


def assert_same_bits(out, expected):
    assert out.dtype == expected.dtype and out.shape == expected.shape
    # Bitwise, so that NaN poison left unwritten (never in the reference) or a -0 shows.
    assert out.tobytes() == expected.tobytes()


# Sizes around the 4-element Philox blocks (0, 1, 3, 4, 5), a block of 256 threads' worth
# (1024) and its tails, and several dimensions.
SHAPES = [(0,), (1,), (3,), (4,), (5,), (2, 0, 3), (7, 9), (1023,), (1025,), (3, 5, 67)]


@pytest.mark.parametrize("dtype", DROPOUT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_kernel_matches_numpy_bit_for_bit(rt, shape, dtype):
    array_dtype, threshold, scale = dropout_case(0.3, dtype)
    key = KEYS[len(shape) % len(KEYS)]
    mask = _kernels._dropout_mask(rt, shape, array_dtype, key, threshold, scale)
    assert_same_bits(mask, _dropout.numpy_mask(shape, array_dtype, key, threshold, scale))
    n = int(np.prod(shape))
    assert rt.launches == ([] if n == 0 else [f"dropout_mask<{UNIT[array_dtype.itemsize]}>"])


@pytest.mark.parametrize("p", [1e-9, 0.5, 0.9, 1 - 2**-40])
def test_threshold_extremes(rt, p):
    # p = 1e-9 rounds to a threshold of 4 (a few drops in 2^32); 1 - 2^-40 clamps to
    # 2^32 - 1: nearly everything dropped, still the same bits on both sides.
    array_dtype, threshold, scale = dropout_case(p, "float32")
    mask = _kernels._dropout_mask(rt, (2000,), array_dtype, KEYS[0], threshold, scale)
    assert_same_bits(mask, _dropout.numpy_mask((2000,), array_dtype, KEYS[0], threshold, scale))
    kept = np.count_nonzero(mask)
    assert (kept == 2000) if p < 1e-6 else (kept < 2000)


def test_word_equal_to_threshold_is_kept(rt):
    # keep = word >= threshold: with the threshold set to element 5's own word, element 5 is
    # kept and every smaller word dropped (random thresholds almost never hit a word).
    words = _philox.stream(KEYS[0], 64)
    threshold = int(words[5])
    mask = _kernels._dropout_mask(rt, (64,), np.float32, KEYS[0], threshold, np.float32(2))
    assert mask[5] == 2
    np.testing.assert_array_equal(mask, np.where(words >= words[5], 2, 0).astype(np.float32))


def test_grid_stride_loop(monkeypatch, rt):
    # Two blocks of 256 threads for 3.5 grids' worth of Philox blocks: every thread loops.
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 2)
    n = 4 * 256 * 2 * 3 + 4 * 256 + 3
    array_dtype, threshold, scale = dropout_case(0.5, "float16")
    mask = _kernels._dropout_mask(rt, (n,), array_dtype, KEYS[1], threshold, scale)
    assert_same_bits(mask, _dropout.numpy_mask((n,), array_dtype, KEYS[1], threshold, scale))


def test_argument_errors():
    rt = harness.HostRuntime()
    with pytest.raises(TypeError, match="no kernel for int8 \\(1-byte elements\\)"):
        _kernels._dropout_mask(rt, (3,), np.int8, 1, 5, 1)
    with pytest.raises(ValueError, match="threshold must fit 32 bits"):
        _kernels._dropout_mask(rt, (3,), np.float32, 1, 2**32, 1.0)
    with pytest.raises(ValueError, match="key 64 bits"):
        _kernels._dropout_mask(rt, (3,), np.float32, -1, 5, 1.0)
    assert rt.launches == []


@pytest.fixture(scope="module")
def philox_probe(tmp_path_factory):
    source = tmp_path_factory.mktemp("philox") / "dropout_probe.cu"
    source.write_text(_kernels.kernel_source("dropout.cu") + PHILOX_PROBE_KERNEL)
    return harness.HostModule(source, ["philox_probe"], harness.sanitizer()).get_function(
        "philox_probe"
    )


def run_probe(probe, counters, keys, order="shuffled"):
    counters = np.ascontiguousarray(counters, np.uint32)
    keys = np.ascontiguousarray(keys, np.uint32)
    n = counters.shape[0]
    out = np.full((n, 4), 0xDEADBEEF, np.uint32)
    probe(-(-n // 64), 64, (counters, keys, np.int32(n), out), order=order, seed=3)
    return out


def test_device_philox_known_answers(philox_probe):
    counters, keys, expected = (np.array(column, np.uint32) for column in zip(*PHILOX4X32_10_KAT))
    np.testing.assert_array_equal(run_probe(philox_probe, counters, keys), expected)


def test_device_philox_matches_numpy_on_random_words(philox_probe):
    # Counters with high words set, which the mask kernel only reaches past 2^34 elements.
    rng = np.random.default_rng(11)
    counters = rng.integers(0, 2**32, size=(300, 4), dtype=np.uint32)
    keys = rng.integers(0, 2**32, size=(300, 2), dtype=np.uint32)
    expected = np.stack([_philox.philox4x32(c, k) for c, k in zip(counters, keys)])
    np.testing.assert_array_equal(run_probe(philox_probe, counters, keys, "reverse"), expected)


# ------------------------------------------- public entry point through a stand-in CuPy


@pytest.fixture
def cupy_stand_in(monkeypatch):
    """``cupy`` replaced by cuda_host.fake_cupy, gluonlite's CuPy-side caches emptied."""
    fake = fake_cupy.module(order="shuffled", sanitize=harness.sanitizer())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()
    yield fake
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_public_dropout_mask(cupy_stand_in, dtype):
    t, s = _dropout.threshold(0.25), _dropout.scale(0.25, dtype)
    mask = _kernels.dropout_mask((33, 7), dtype, KEYS[0], t, s)
    assert isinstance(mask, fake_cupy.Array)  # allocated through "cupy"
    assert_same_bits(np.asarray(mask), _dropout.numpy_mask((33, 7), dtype, KEYS[0], t, s))
    # Compiled through RawModule, once, for the bit width's module.
    assert _kernels._load_module.cache_info().currsize == 1
