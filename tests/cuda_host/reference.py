"""NumPy references and checks shared by the kernel tests on the CPU harness and on a GPU:
16-bit test data, the issue's tolerances, retain cases."""

import numpy as np

from gluonlite import _kernels

# Relative error, max |out - ref| / max |ref|, allowed per storage type (the bounds).
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}
CTYPES = {"float32": "float", "float16": "gl_f16", "bfloat16": "gl_bf16"}
RETAIN_DTYPES = ("float16", "bfloat16", "float32", "float64")


def bf16_bits(values) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even), as raw uint16 bits."""
    u = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_values(bits) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def make(rng, shape, dtype: str):
    """(NumPy array to pass, its exact values in float64) for a storage dtype name;
    bfloat16 travels as uint16 bits."""
    values = rng.standard_normal(shape).astype(np.float32)
    if dtype == "bfloat16":
        bits = bf16_bits(values)
        return bits, bf16_values(bits).astype(np.float64)
    array = values.astype(dtype)
    return array, array.astype(np.float64)


def as_float64(array, dtype: str) -> np.ndarray:
    return (bf16_values(array) if dtype == "bfloat16" else array).astype(np.float64)


def assert_close(out, reference, dtype: str, what: str):
    """``out`` (NumPy) matches ``reference`` within the tolerance, with nothing unwritten."""
    values = as_float64(out, dtype)
    assert values.shape == reference.shape, what
    assert not np.isnan(values).any(), f"{what}: unwritten (NaN-poisoned) elements remain"
    if values.size == 0:
        return
    scale = max(np.abs(reference).max(), 1e-30)
    error = np.abs(values - reference).max() / scale
    assert error < TOLERANCE[dtype], f"{what}: relative error {error:.3g}"


def retain_reference(data, indices, row_ids):
    wanted = np.unique(np.asarray(row_ids, np.int64))
    keep = np.isin(indices, wanted)
    return data[keep], indices[keep]


def retain_case(rng, k, row_shape, dtype, universe=100):
    indices = np.sort(rng.choice(universe, size=k, replace=False)).astype(np.int64)
    data, _ = make(rng, (k,) + row_shape, "float32" if dtype == "float64" else dtype)
    return (data.astype(np.float64) if dtype == "float64" else data), indices


def check_retain(rt, data, indices, row_ids):
    out, out_indices = _kernels._retain(rt, data, indices, row_ids)
    ref, ref_indices = retain_reference(data, indices, row_ids)
    assert out.dtype == data.dtype and out_indices.dtype == np.int64
    np.testing.assert_array_equal(out_indices, ref_indices)
    # Bit-exact: a retain only moves bytes (and NaN-poison left behind would differ).
    assert out.shape == ref.shape
    assert out.tobytes() == ref.tobytes()
    return out, out_indices


# cudaDataType values (library_types.h) that gluonlite passes to cublasGemmEx, with the
# element layout and the float64 decoding of each.
GEMM_DATA_TYPES = {
    0: ("float32", np.uint32),
    2: ("float16", np.uint16),
    14: ("bfloat16", np.uint16),
}


def _decode(bits, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return bf16_values(bits).astype(np.float64)
    return bits.view(dtype).astype(np.float64)


def _encode(values, dtype: str, bits_type) -> np.ndarray:
    if dtype == "bfloat16":
        return bf16_bits(values.astype(np.float32))
    return values.astype(dtype).view(bits_type)


def gemm_ex(
    data_type: int,
    transa: bool,
    transb: bool,
    m: int,
    n: int,
    k: int,
    a,
    lda: int,
    b,
    ldb: int,
    c,
    ldc: int,
    beta: float,
) -> None:
    """cuBLAS's column-major ``c = op(a) @ op(b) + beta * c`` (GemmEx with float32 compute)
    on flat NumPy buffers of raw element bits (uint32 for float32, uint16 for float16 and
    bfloat16), with cuBLAS's argument checks."""
    dtype, bits_type = GEMM_DATA_TYPES[data_type]
    for name, flat in (("a", a), ("b", b), ("c", c)):
        if flat.dtype != bits_type or flat.ndim != 1:
            raise TypeError(
                f"gemm_ex: {name} must be flat {np.dtype(bits_type)} bits of "
                f"{dtype}, got {flat.dtype} of {flat.ndim} dims"
            )

    def operand(flat, transposed, rows, cols, ld, name):
        # op(X) is rows x cols; X itself is stored cols x rows when transposed.
        stored_rows = cols if transposed else rows
        if ld < max(1, stored_rows):
            raise ValueError(f"ld{name}={ld} < {stored_rows} (CUBLAS_STATUS_INVALID_VALUE)")
        i, j = np.arange(rows)[:, None], np.arange(cols)[None, :]
        at = j + i * ld if transposed else i + j * ld
        return _decode(flat[at], dtype)

    if min(m, n, k) < 0 or ldc < max(1, m):
        raise ValueError("invalid sizes (CUBLAS_STATUS_INVALID_VALUE)")
    product = operand(a, transa, m, k, lda, "a") @ operand(b, transb, k, n, ldb, "b")
    at = np.arange(m)[:, None] + np.arange(n)[None, :] * ldc
    if beta:
        product += beta * _decode(c[at], dtype)
    c[at] = _encode(product, dtype, bits_type)


# Philox4x32-10 known-answer vectors, the three "philox4x32 10" lines of tests/kat_vectors in
# the Random123 distribution (https://github.com/DEShawResearch/random123): counter words,
# key words, expected output words.
PHILOX4X32_10_KAT = (
    (
        (0x00000000, 0x00000000, 0x00000000, 0x00000000),
        (0x00000000, 0x00000000),
        (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8),
    ),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
)

# A test-only kernel appended to kernels/dropout.cu, so that its Philox device function can
# be checked on its own (against the vectors above and arbitrary counters) on the CPU harness
# and on a GPU: out[4t .. 4t+3] = Philox4x32-10(counter[4t .. 4t+3], key[2t], key[2t+1]).
PHILOX_PROBE_KERNEL = """
__global__ void philox_probe(const unsigned int* __restrict__ counter,
                             const unsigned int* __restrict__ key, int n,
                             unsigned int* __restrict__ out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n) return;
  unsigned int c[4] = {counter[4 * t], counter[4 * t + 1], counter[4 * t + 2],
                       counter[4 * t + 3]};
  gl_philox4x32_10(c, key[2 * t], key[2 * t + 1]);
  for (int j = 0; j < 4; ++j) out[4 * t + j] = c[j];
}
"""
# Storage types the dropout mask is tested in (bfloat16 as uint16 bits where NumPy lacks it).
DROPOUT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def dropout_case(p: float, dtype: str):
    """(array dtype to pass, threshold, scale in that dtype) for the kernel and NumPy masks;
    bfloat16 travels as uint16 bits, its scale as bits."""
    from gluonlite import _dropout

    threshold = _dropout.threshold(p)
    if dtype == "bfloat16":
        return np.dtype(np.uint16), threshold, bf16_bits(np.float32(1 / (1 - p)))[()]
    return np.dtype(dtype), threshold, _dropout.scale(p, dtype)
