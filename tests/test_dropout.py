"""Dropout's counter-based mask: the Philox4x32-10 generator (known answers), its stream
layout, the keep statistics, and ``npx.dropout`` giving one mask per seed on every device.

Tests taking ``device``/``devices`` also run on each visible GPU, where the mask comes from
kernels/dropout.cu; the ``gpu`` tests compare that kernel with NumPy directly.
"""

import os

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _dropout, _philox, autograd, npx
from tests.cuda_host.reference import (
    DROPOUT_DTYPES,
    PHILOX4X32_10_KAT,
    PHILOX_PROBE_KERNEL,
    dropout_case,
)
from tests.helpers import with_bfloat16


@pytest.mark.parametrize("counter, key, expected", PHILOX4X32_10_KAT)
def test_philox4x32_10_known_answers(counter, key, expected):
    np.testing.assert_array_equal(_philox.philox4x32(counter, key), np.array(expected, np.uint32))


def test_stream_layout():
    # Word i is word i % 4 of the block with counter (lo32(i // 4), hi32(i // 4), 0, 0) under
    # key (lo32(key), hi32(key)); the same words the kernel computes.
    key = 0x0123456789ABCDEF
    words = _philox.stream(key, 4003)
    for i in (0, 1, 2, 3, 4, 7, 1000, 4002):
        block = _philox.philox4x32([i // 4, 0, 0, 0], [0x89ABCDEF, 0x01234567])
        assert words[i] == block[i % 4], i
    # Stateless: a shorter stream is a prefix of a longer one, and the key matters.
    np.testing.assert_array_equal(_philox.stream(key, 9), words[:9])
    assert (_philox.stream(key + 1, 64) != words[:64]).mean() > 0.9
    assert _philox.stream(key, 0).shape == (0,)


def test_stream_is_the_same_across_its_chunks(monkeypatch):
    # stream() works through the counters in cache-sized chunks: small chunks (7 counters,
    # not a divisor of anything here) must give the words of one pass.
    key, n = 0xFEEDFACE12345678, 4 * 50 + 3
    whole = _philox.stream(key, n)
    monkeypatch.setattr(_philox, "_CHUNK_GROUPS", 7)
    np.testing.assert_array_equal(_philox.stream(key, n), whole)
    i = np.arange(0, n, 4)
    blocks = _philox.philox4x32(
        np.stack([i // 4, 0 * i, 0 * i, 0 * i], axis=-1), [key & 0xFFFFFFFF, key >> 32]
    )
    np.testing.assert_array_equal(blocks.reshape(-1)[:n], whole)


def test_philox_argument_errors():
    with pytest.raises(ValueError, match="expected counter \\[..., 4\\] and key \\[2\\]"):
        _philox.philox4x32([1, 2, 3], [0, 0])
    with pytest.raises(ValueError, match="must be 32-bit"):
        _philox.philox4x32([2**32, 0, 0, 0], [0, 0])
    with pytest.raises(ValueError, match="key must be a 64-bit unsigned integer"):
        _philox.stream(2**64, 4)


def test_threshold_and_scale():
    assert _dropout.threshold(0.5) == 2**31
    assert _dropout.threshold(0.25) == 2**30
    assert _dropout.threshold(2**-34) == 0  # nothing dropped: p below the resolution
    assert _dropout.threshold(1 - 2**-40) == 2**32 - 1  # clamped to 32 bits
    with pytest.raises(ValueError, match="p must be in \\[0, 1\\)"):
        _dropout.threshold(1.0)
    assert _dropout.scale(0.5, "float16") == np.float16(2)
    assert _dropout.scale(0.3, np.float32).dtype == np.float32
    assert _dropout.scale(0.3, np.float32) == np.float32(1 / 0.7)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fraction_kept(p):
    n = 400_003
    mask = _dropout.numpy_mask(
        (n,), np.float32, 0xC0FFEE, _dropout.threshold(p), _dropout.scale(p, np.float32)
    )
    # Binomial(n, 1 - p): 6 standard deviations is about 0.005 at p = 0.5; a biased or
    # off-by-a-lane generator misses by far more. Each of the four words of a Philox block
    # (lanes i % 4) is checked too, so one stuck output word would show.
    sigma = np.sqrt(p * (1 - p) / (n / 4))
    for lane in range(4):
        kept = np.count_nonzero(mask[lane::4]) / mask[lane::4].size
        assert abs(kept - (1 - p)) < 6 * sigma, (lane, kept)
    assert set(np.unique(mask)) == {0, np.float32(1 / (1 - p))}


def test_words_are_uniform_over_the_high_bits():
    # Chi-square of the top 8 bits over 256 buckets (255 degrees of freedom: mean 255,
    # sd 22.6); 400 is over 6 sd, a deterministic key so this cannot flake.
    words = _philox.stream(12345, 2**18)
    counts = np.bincount(words >> 24, minlength=256)
    expected = words.size / 256
    assert ((counts - expected) ** 2 / expected).sum() < 400


def test_word_equal_to_threshold_is_kept():
    words = _philox.stream(3, 40)
    mask = _dropout.numpy_mask((40,), np.float64, 3, int(words[17]), 4.0)
    np.testing.assert_array_equal(mask, np.where(words >= words[17], 4.0, 0.0))
    assert mask[17] == 4.0


def reference_mask(seed, shape, dtype, p, draws_before=0):
    """What one dropout call right after ``mx.random.seed(seed)`` (and ``draws_before`` other
    keys) must give: the key is the next 64-bit draw of NumPy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    for _ in range(draws_before + 1):
        key = int(rng.integers(0, 2**64, dtype=np.uint64))
    return _dropout.numpy_mask(shape, dtype, key, _dropout.threshold(p), _dropout.scale(p, dtype))


@pytest.mark.parametrize("dtype", with_bfloat16(["float16", "float32", "float64"]))
@pytest.mark.parametrize("axes", [(), (1,), (0, 2)], ids=["axes-none", "axes-1", "axes-0-2"])
def test_npx_dropout_mask_is_the_reference(device, dtype, axes):
    # On cpu the NumPy path, on gpu the kernel: either way bit for bit the reference, with the
    # mask shared along ``axes`` and the gradient equal to the mask.
    if dtype == "bfloat16" and device.device_type == "gpu":
        pytest.skip(
            "bfloat16 arrays on a GPU need CuPy bfloat16 support; the kernel's "
            "bfloat16 masks are compared in test_gpu_kernel_matches_numpy"
        )
    shape = (6, 5, 7)
    mask_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
    expected = reference_mask(21, mask_shape, dtype, 0.4)
    x = mx.np.ones(shape, dtype=dtype, device=device)
    x.attach_grad()
    mx.random.seed(21)
    with autograd.record():
        y = npx.dropout(x, p=0.4, axes=axes)
    y.backward()
    full = np.broadcast_to(expected, shape)
    assert y.dtype == np.dtype(dtype)
    assert y.asnumpy().tobytes() == np.ascontiguousarray(full).tobytes()
    assert x.grad.asnumpy().tobytes() == np.ascontiguousarray(full).tobytes()


def test_same_seed_same_mask_on_every_device(devices):
    masks = []
    for device in devices:
        mx.random.seed(5)
        x = mx.np.ones((33, 17), device=device)
        first = npx.dropout(x, p=0.5, mode="always").asnumpy()
        second = npx.dropout(x, p=0.5, mode="always").asnumpy()
        masks.append((first, second))
    for first, second in masks:
        assert first.tobytes() == masks[0][0].tobytes()
        assert second.tobytes() == masks[0][1].tobytes()
        assert (first != second).any()  # each call draws a fresh key
    np.testing.assert_array_equal(
        masks[0][1], reference_mask(5, (33, 17), "float32", 0.5, draws_before=1)
    )


def test_one_key_per_call(device):
    # A call consumes exactly one 64-bit draw, whatever the size, so later draws (e.g. a
    # second replica's initializer) stay in step across devices.
    mx.random.seed(8)
    npx.dropout(mx.np.ones((1000,), device=device), p=0.2, mode="always")
    rng = np.random.default_rng(8)
    rng.integers(0, 2**64, dtype=np.uint64)
    assert mx.random.next_key() == int(rng.integers(0, 2**64, dtype=np.uint64))


def test_p_zero_and_predict_mode_are_the_identity(device):
    x = mx.np.ones((4, 3), device=device)
    mx.random.seed(3)
    with autograd.record():
        assert npx.dropout(x, p=0.0) is x  # p = 0 is settled before any mask or key
    assert npx.dropout(x, p=0.5) is x
    assert mx.random.next_key() == int(np.random.default_rng(3).integers(0, 2**64, dtype=np.uint64))


def test_non_float_data_is_refused(device):
    x = mx.np.ones((4,), dtype="int32", device=device)
    with pytest.raises(TypeError, match="dropout: expected a floating-point array .* got int32"):
        npx.dropout(x, p=0.5, mode="always")


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.parametrize("dtype", DROPOUT_DTYPES)
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1023, 4 * 256 * 4096 + 5, 10_000_019])
def test_gpu_kernel_matches_numpy(gpu, dtype, n):
    # Sizes past one grid of 4096 blocks make the kernel's threads loop.
    import cupy
    from gluonlite import _kernels

    key = int.from_bytes(os.urandom(8), "little")
    array_dtype, threshold, scale = dropout_case(0.3, dtype)
    with cupy.cuda.Device(gpu.device_id):
        mask = _kernels.dropout_mask((n,), array_dtype, key, threshold, scale)
        got = cupy.asnumpy(mask)
    expected = _dropout.numpy_mask((n,), array_dtype, key, threshold, scale)
    assert got.tobytes() == expected.tobytes(), f"key {key:#x}"


def test_gpu_philox_known_answers(gpu):
    import cupy
    from gluonlite import _kernels

    counters, keys, expected = (np.array(column, np.uint32) for column in zip(*PHILOX4X32_10_KAT))
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    counters = np.concatenate([counters, rng.integers(0, 2**32, (500, 4), dtype=np.uint32)])
    keys = np.concatenate([keys, rng.integers(0, 2**32, (500, 2), dtype=np.uint32)])
    expected = np.concatenate(
        [expected, np.stack([_philox.philox4x32(c, k) for c, k in zip(counters[3:], keys[3:])])]
    )
    with cupy.cuda.Device(gpu.device_id):
        module = cupy.RawModule(
            code=_kernels.kernel_source("dropout.cu") + PHILOX_PROBE_KERNEL,
            options=("-std=c++17",),
            name_expressions=["philox_probe"],
        )
        probe = module.get_function("philox_probe")
        out = cupy.zeros((len(counters), 4), cupy.uint32)
        probe(
            (-(-len(counters) // 128),),
            (128,),
            (cupy.asarray(counters), cupy.asarray(keys), np.int32(len(counters)), out),
        )
        np.testing.assert_array_equal(cupy.asnumpy(out), expected)
