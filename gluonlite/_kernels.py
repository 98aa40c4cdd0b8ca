"""GPU implementations behind ``npx.fully_connected``, row-sparse ``retain``,
``npx.dropout``'s mask, the optimizers' fused multi-tensor steps, convolution's row gather,
pooling (forward reduction, backward), ``npx.batch_norm``, ``npx.layer_norm`` and
``npx.group_norm`` (``npx.instance_norm``).

The public functions take and return CuPy arrays that live on the current CuPy device. They
run gluonlite's own CUDA kernels (``kernels/*.cu``), compiled lazily with ``cupy.RawModule``
and memoised per (device, source file, type), never at import.

The launch logic (argument checks, grid sizes, output allocation) lives in the private
``_fc_forward``, ``_fc_backward``, ``_retain``, ``_dropout_mask``,
``_multi_tensor_step``, ``_bn_forward``/``_bn_backward``, ``_ln_forward``/``_ln_backward``,
``_gn_forward``/``_gn_backward``,
``_pool_backward`` and the others, which take a *runtime*: an object with ``xp`` (the array module),
``empty(shape, dtype)``, ``ptr(array)``, ``gemm(data_type, ...)`` (cuBLAS's column-major
GemmEx) and ``kernel(source, type_key, name_expression)`` returning a callable
``kernel(grid, block, args)`` like ``cupy.RawKernel``. On a GPU that runtime is
``_CupyRuntime``; the CPU host harness in ``tests/cuda_host/`` supplies one that runs the same
``.cu`` sources compiled with g++, so the code below is exercised without a GPU.

Fully-connected dispatch: per (device, operation, shape, dtype) the faster of the custom
kernel and cuBLAS (``cublasGemmEx`` with float32 compute, called directly, plus the
fused-bias epilogue kernel) is measured once on the GPU in use and cached. Calling GemmEx
directly rather than through ``cupy.matmul`` serves bfloat16 (which CuPy's matmul may lack),
accumulates ``dW`` in place for ``grad_req='add'`` (beta = 1, no temporary), and skips
matmul's generic shape handling on small, launch-bound shapes.
``set_fc_path('kernel' | 'cublas' | 'auto')``, ``with fc_path(...)`` or the environment
variable ``GLUONLITE_FC_PATH`` force one path.

Numerics: CuPy compiles every ``RawModule`` with ``-ftz=true`` (float32 subnormal inputs and
results flush to zero; CuPy overrides a ``-ftz=false`` of ours) and NVRTC contracts ``a*b+c``
into fused multiply-adds (one rounding instead of two) unless told ``--fmad=false``. The
fully-connected, retain and dropout kernels keep both defaults: their tests compare with a
tolerance (fc) or move bits without arithmetic (retain, dropout). The optimizer kernels
(``multi_tensor.cu``) are compiled with ``--fmad=false`` so that a fused step rounds like
the NumPy single-tensor step (each product and sum rounded on its own); they can still
differ where a weight, gradient or state is subnormal (flushed on the GPU, kept by NumPy).
``_COMPILE_OPTIONS`` holds these per-source options.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy

from . import _cupy
from ._backend import contiguous

__all__ = [
    "fc_forward",
    "fc_backward",
    "retain",
    "set_fc_path",
    "fc_path",
    "KernelCompileError",
    "kernel_source",
    "name_expressions",
    "instantiations",
    "KERNEL_SOURCES",
    "FC_PATH_ENV",
    "dropout_mask",
    "multi_tensor_sgd",
    "multi_tensor_adam",
    "gather_rows",
    "pool_reduce",
    "optimizer_step",
    "layerwise_step",
    "norm_ctype",
    "batch_norm_forward",
    "batch_norm_backward",
    "pool_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "group_norm_forward",
    "group_norm_backward",
]

KERNEL_SOURCES = (
    "retain.cu",
    "fully_connected.cu",
    "dropout.cu",
    "multi_tensor.cu",
    "conv.cu",
    "optimizers.cu",
    "norm.cu",
    "pool.cu",
)
FC_PATH_ENV = "GLUONLITE_FC_PATH"
_FC_PATHS = ("auto", "kernel", "cublas")

# Storage types of fully_connected.cu by NumPy/CuPy dtype name. bfloat16 arrays (ml_dtypes or
# a CuPy with bfloat16) map to gl_bf16; the host harness passes raw uint16 bits explicitly.
_FC_CTYPES = {"float32": "float", "float16": "gl_f16", "bfloat16": "gl_bf16"}
# The GEMM's operand layouts (A r-contiguous, B r-contiguous); see fully_connected.cu.
_GEMM_LAYOUTS = {"fwd": (True, True), "dx": (True, False), "dw": (False, False)}
# cuBLAS constants (library_types.h, cublas_api.h): the cudaDataType of each storage type
# (CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF), CUBLAS_COMPUTE_32F (float32 accumulation for all
# three, never TF32), CUBLAS_GEMM_DEFAULT, CUBLAS_POINTER_MODE_HOST, then the operations.
_CUDA_DATA_TYPES = {"float": 0, "gl_f16": 2, "gl_bf16": 14}
_CUBLAS_COMPUTE_32F = 68
_CUBLAS_GEMM_DEFAULT = -1
_CUBLAS_POINTER_MODE_HOST = 0
_CUBLAS_OP = {False: 0, True: 1}  # CUBLAS_OP_N, CUBLAS_OP_T
_FC_TILE = 64
# Copy units of retain_gather, widest first: (bytes, C++ type, dtype of the same size that
# both NumPy and CuPy have; complex128 is the only 16-byte one, used here as raw bits).
_RETAIN_UNITS = (
    (16, "uint4", "complex128"),
    (8, "unsigned long long", "uint64"),
    (4, "unsigned int", "uint32"),
    (2, "unsigned short", "uint16"),
    (1, "unsigned char", "uint8"),
)
# dropout.cu stores raw bits of the mask's storage width: (bytes, C++ type, dtype of that
# width); see the kernel for why bits suffice.
_DROPOUT_UNITS = (
    (2, "unsigned short", "uint16"),
    (4, "unsigned int", "uint32"),
    (8, "unsigned long long", "uint64"),
)
# conv.cu: the row gather moves raw bits of the element width (bytes -> C++ type, dtype of
# that width); pooling reduces float32 or float64 (16-bit data is widened before).
_GATHER_UNITS = {
    2: ("unsigned short", "uint16"),
    4: ("unsigned int", "uint32"),
    8: ("unsigned long long", "uint64"),
}
_POOL_CTYPES = {"float32": "float", "float64": "double"}
# norm.cu: kernels per storage type (float, gl_f16, gl_bf16; the same names as
# fully_connected.cu's), and the type-free ones every module of the source also holds.
_NORM_TEMPLATES = (
    "bn_stats_partial",
    "bn_forward",
    "bn_backward_partial",
    "bn_backward_dx",
    "ln_forward",
    "ln_backward",
    "ln_param_partial",
    "gn_forward",
    "gn_backward",
    "gn_param_partial",
)
_NORM_PLAIN = ("bn_stats_finish", "bn_backward_finish", "ln_param_finish")
# pool.cu's MODE template argument per pool type (GL_POOL_MAX, GL_POOL_AVG, GL_POOL_SUM).
_POOL_MODES = {"max": 0, "avg": 1, "sum": 2}
_NORM_THREADS = 256  # GL_NORM_THREADS: the block size the reduction kernels are written for
# The per-channel reductions split each channel's elements into chunks of at least
# _BN_CHUNK_MIN elements, into about _BN_BLOCKS blocks in all.
_BN_CHUNK_MIN = 2048
_BN_BLOCKS = 1024
# Layer norm's parameter gradients: blocks of 32 columns x 8 row lanes (GL_LN_COLUMNS,
# GL_LN_LANES), row chunks of at least _LN_CHUNK_MIN rows, about _LN_BLOCKS blocks in all.
_LN_COLUMNS, _LN_LANES = 32, 8
_LN_CHUNK_MIN = 64
_LN_BLOCKS = 512
_INT32_MAX = 2**31 - 1
_MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y (and z)
# Grid-stride kernels get at most this many blocks; enough to fill any current GPU.
_MAX_STRIDE_BLOCKS = 4096
# The bias gradient splits dy's rows into chunks of at least this many rows, into about this
# many blocks in all (see _bias_grad).
_BIAS_GRAD_ROWS = 256
_BIAS_GRAD_BLOCKS = 512


# NVRTC options per kernel source beyond -std=c++17 (see the module docstring's Numerics).
_COMPILE_OPTIONS = {"multi_tensor.cu": ("--fmad=false",)}


class KernelCompileError(RuntimeError):
    """A kernel source failed to compile; the message holds the options and the source lines
    around each error."""


def _kernel_dir_fallback() -> Path:
    # Running from a source tree without an install: kernels/ sits next to gluonlite/.
    return Path(__file__).resolve().parent.parent / "kernels"


# A quoted include of another kernels/ file (e.g. gl_convert.cuh), on a line of its own.
_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)


def _read_kernel_file(filename: str) -> str:
    try:
        return importlib.resources.files("gluonlite.kernels").joinpath(filename).read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return (_kernel_dir_fallback() / filename).read_text()


def kernel_source(filename: str) -> str:
    """The text of ``kernels/<filename>``, read as package data of ``gluonlite.kernels``,
    with each ``#include "x.cuh"`` of a sibling file replaced by that file's text (NVRTC
    gets one self-contained text and needs no include paths; nvcc and the host harness's
    g++ resolve the same include from the file's folder)."""
    return _LOCAL_INCLUDE.sub(
        lambda m: kernel_source(m.group(1)).rstrip("\n"), _read_kernel_file(filename)
    )


def name_expressions(source: str, type_key: str) -> tuple[str, ...]:
    """The kernel name expressions compiled together for ``source`` and one type.

    ``type_key`` is the storage type for fully_connected.cu (``float``, ``gl_f16``,
    ``gl_bf16``), the copy unit for retain.cu (``uint4`` ... ``unsigned char``), the
    bit width's type for dropout.cu (``unsigned short`` ... ``unsigned long long``) and
    ``float`` (the only storage type) for multi_tensor.cu; for conv.cu the element width's
    type (``unsigned short`` ... ``unsigned long long``) for the row gather, ``float`` or
    ``double`` for pooling.
    """
    if source == "fully_connected.cu":
        return tuple(_gemm_name(type_key, layout) for layout in _GEMM_LAYOUTS) + (
            f"fc_bias_grad<{type_key}>",
            f"fc_bias_grad_finish<{type_key}>",
            f"fc_bias_add<{type_key}>",
        )
    if source == "retain.cu":
        return ("retain_mark", f"retain_gather<{type_key}>")
    if source == "dropout.cu":
        return (f"dropout_mask<{type_key}>",)
    if source == "multi_tensor.cu":
        return tuple(expression for expression, _ in _MULTI_TENSOR_KERNELS.values())
    if source == "optimizers.cu":
        return (
            tuple(f"optimizer_step<glo_{name}>" for name in _OPTIMIZER_KERNELS)
            + _layerwise_expressions()
        )
    if source == "norm.cu":
        return tuple(f"{name}<{type_key}>" for name in _NORM_TEMPLATES) + _NORM_PLAIN
    if source == "pool.cu":
        return tuple(f"pool_argmax<{type_key},{cl}>" for cl in ("false", "true")) + tuple(
            f"pool_backward<{type_key},{mode},{cl}>"
            for mode in _POOL_MODES.values()
            for cl in ("false", "true")
        )
    if source == "conv.cu":
        if type_key in _POOL_CTYPES.values():
            return (f"pool_reduce<{type_key},true>", f"pool_reduce<{type_key},false>")
        return (f"conv_gather_rows<{type_key}>",)
    raise ValueError(f"unknown kernel source {source!r}; expected one of {KERNEL_SOURCES}")


def instantiations() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Every (type_key, name expressions) the library can launch, per source file."""
    return {
        "fully_connected.cu": [
            (t, name_expressions("fully_connected.cu", t)) for t in _FC_CTYPES.values()
        ],
        "retain.cu": [(unit[1], name_expressions("retain.cu", unit[1])) for unit in _RETAIN_UNITS],
        "dropout.cu": [
            (unit[1], name_expressions("dropout.cu", unit[1])) for unit in _DROPOUT_UNITS
        ],
        "multi_tensor.cu": [("float", name_expressions("multi_tensor.cu", "float"))],
        "optimizers.cu": [("float", name_expressions("optimizers.cu", "float"))],
        "conv.cu": [
            (t, name_expressions("conv.cu", t))
            for t in [u[0] for u in _GATHER_UNITS.values()] + list(_POOL_CTYPES.values())
        ],
        "norm.cu": [(t, name_expressions("norm.cu", t)) for t in _FC_CTYPES.values()],
        "pool.cu": [(t, name_expressions("pool.cu", t)) for t in _FC_CTYPES.values()],
    }


def _compile_error_message(source_name: str, source: str, options, expressions, log: str) -> str:
    """The compiler log with the offending source lines (3 either side) quoted under it."""
    lines = source.splitlines()
    parts = [
        f"Compiling kernels {', '.join(expressions)} of {source_name} with options "
        f"{tuple(options)} failed:",
        log.rstrip(),
    ]
    seen = set()
    for match in re.finditer(r"\((\d+)\): (?:catastrophic )?error", log):
        line = int(match.group(1))
        if line in seen or not 1 <= line <= len(lines):
            continue
        seen.add(line)
        parts.append(f"--- {source_name} around line {line}:")
        for n in range(max(1, line - 3), min(len(lines), line + 3) + 1):
            marker = ">>" if n == line else "  "
            parts.append(f"{marker}{n:5d}| {lines[n - 1]}")
    return "\n".join(parts)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _i32(name: str, value: int) -> numpy.int32:
    # Kernel sizes are C ints; a silent wrap-around on a GPU would be a wrong answer.
    if not 0 <= value <= _INT32_MAX:
        raise ValueError(f"{name}={value} does not fit the kernels' 32-bit size arguments")
    return numpy.int32(value)


# ---------------------------------------------------------------------------------------
# fully-connected


@functools.lru_cache(maxsize=None)
def _fc_ctype(dtype) -> str | None:
    # Memoised: dtype.name is a Python-level property costing microseconds per call.
    return _FC_CTYPES.get(numpy.dtype(dtype).name)


def _check_fc(op: str, x, w, b=None):
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(
            f"{op}: expected 2-D x [N, K] and weight [M, K], got x of shape "
            f"{tuple(x.shape)} and weight of shape {tuple(w.shape)}"
        )
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"{op}: x has {x.shape[1]} input features but the weight expects "
            f"{w.shape[1]} (weight shape {tuple(w.shape)})"
        )
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        raise TypeError(
            f"{op}: x, weight and bias must share one dtype, got {x.dtype}, "
            f"{w.dtype}" + ("" if b is None else f", {b.dtype}")
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")


def _gemm_name(ctype: str, layout: str) -> str:
    a_contig, b_contig = _GEMM_LAYOUTS[layout]
    return f"fc_gemm<{ctype},{str(a_contig).lower()},{str(b_contig).lower()}>"


def _blas(
    rt,
    ctype: str,
    layout: str,
    a,
    lda: int,
    b,
    ldb: int,
    c,
    ldc: int,
    ni: int,
    nj: int,
    nr: int,
    accumulate: bool,
) -> None:
    """The product of ``_gemm`` (no bias) through cuBLAS's GemmEx.

    cuBLAS is column-major, where a row-major [rows, cols] array reads as its transpose, so
    c^T (nj x ni, leading dimension ldc) = B (nj x nr) @ A^T (nr x ni); each operand is
    transposed for cuBLAS exactly when its reduction axis is the contiguous one.
    """
    if nr == 0:  # an empty sum: not asked of cuBLAS
        if not accumulate:
            c[...] = 0  # +0.0 in float32, float16 and bfloat16 bits alike
        return
    a_contig, b_contig = _GEMM_LAYOUTS[layout]
    rt.gemm(
        _CUDA_DATA_TYPES[ctype],
        b_contig,
        not a_contig,
        nj,
        ni,
        nr,
        b,
        ldb,
        a,
        lda,
        c,
        ldc,
        accumulate,
    )


def _gemm(
    rt,
    ctype: str,
    layout: str,
    a,
    lda: int,
    b,
    ldb: int,
    bias,
    c,
    ldc: int,
    ni: int,
    nj: int,
    nr: int,
    accumulate: bool,
) -> None:
    """One launch of fc_gemm: c (+)= A B^T (+ bias); see fully_connected.cu for A and B."""
    grid_y = _ceil_div(nj, _FC_TILE)
    if grid_y > _MAX_GRID_Y:
        raise ValueError(
            f"fully_connected: {nj} output columns exceed the kernel's grid "
            f"limit of {_MAX_GRID_Y * _FC_TILE}"
        )
    fn = rt.kernel("fully_connected.cu", ctype, _gemm_name(ctype, layout))
    # Without a bias any array of the right type stands in: has_bias=0 keeps it unread.
    fn(
        (_ceil_div(ni, _FC_TILE), grid_y, 1),
        (16, 16, 1),
        (
            a,
            numpy.int64(lda),
            b,
            numpy.int64(ldb),
            c if bias is None else bias,
            numpy.int32(bias is not None),
            c,
            numpy.int64(ldc),
            _i32("rows", ni),
            _i32("columns", nj),
            _i32("reduction", nr),
            numpy.int32(bool(accumulate)),
        ),
    )


def _bias_add(rt, ctype: str, y, bias) -> None:
    n, m = y.shape
    fn = rt.kernel("fully_connected.cu", ctype, f"fc_bias_add<{ctype}>")
    fn(
        (_ceil_div(m, 256), min(n, _MAX_GRID_Y), 1),
        (256, 1, 1),
        (y, bias, numpy.int64(n), _i32("columns", m)),
    )


def _bias_grad(rt, ctype: str, dy, db) -> None:
    n, m = dy.shape
    column_blocks = _ceil_div(m, 32)
    # Enough row chunks that a tall, narrow dy still occupies the GPU (about
    # _BIAS_GRAD_BLOCKS blocks in all), each chunk at least _BIAS_GRAD_ROWS rows long.
    chunks = max(
        1, min(_ceil_div(n, _BIAS_GRAD_ROWS), _BIAS_GRAD_BLOCKS // column_blocks, _MAX_GRID_Y)
    )
    rows_per_chunk = _ceil_div(n, chunks) if n else 0
    # A single chunk writes db directly; the float* argument is then a placeholder.
    partial = rt.empty((chunks, m) if chunks > 1 else (1,), numpy.float32)
    fn = rt.kernel("fully_connected.cu", ctype, f"fc_bias_grad<{ctype}>")
    fn(
        (column_blocks, chunks, 1),
        (32, 32, 1),
        (
            dy,
            _i32("rows", n),
            _i32("columns", m),
            _i32("rows per chunk", rows_per_chunk),
            partial,
            db,
        ),
    )
    if chunks > 1:
        finish = rt.kernel("fully_connected.cu", ctype, f"fc_bias_grad_finish<{ctype}>")
        finish(
            (_ceil_div(m, 256), 1, 1),
            (256, 1, 1),
            (partial, numpy.int32(chunks), _i32("columns", m), db),
        )


def _fc_forward(rt, x, w, b, path: str, ctype: str | None = None):
    """``x @ w.T + b`` on ``path`` ('kernel' or 'cublas'); ``ctype`` overrides the storage
    type derived from the dtype (the host harness passes bfloat16 as uint16 bits)."""
    _check_fc("fc_forward", x, w, b)
    xp = rt.xp
    ctype = ctype or _fc_ctype(x.dtype)
    x, w = contiguous(xp, x), contiguous(xp, w)
    b = None if b is None else contiguous(xp, b)
    (n, k), m = x.shape, w.shape[0]
    y = rt.empty((n, m), x.dtype)
    if n == 0 or m == 0:
        return y
    if path == "cublas":
        _blas(rt, ctype, "fwd", x, k, w, k, y, m, n, m, k, accumulate=False)
        if b is not None:
            _bias_add(rt, ctype, y, b)
    else:
        _gemm(rt, ctype, "fwd", x, k, w, k, b, y, m, n, m, k, accumulate=False)
    return y


def _fc_backward(
    rt,
    dy,
    x,
    w,
    need_dx: bool,
    need_dw: bool,
    need_db: bool,
    path_dx: str,
    path_dw: str,
    accumulate_dw=None,
    ctype: str | None = None,
):
    """``(dx, dw, db)`` of ``y = x @ w.T + b``; dw is added into ``accumulate_dw`` if given."""
    _check_fc("fc_backward", x, w)
    xp = rt.xp
    ctype = ctype or _fc_ctype(x.dtype)
    dy, x, w = (contiguous(xp, a) for a in (dy, x, w))
    (n, k), m = x.shape, w.shape[0]
    if tuple(dy.shape) != (n, m) or dy.dtype != x.dtype:
        raise ValueError(
            f"fc_backward: dy must be {x.dtype} of shape {(n, m)}, got "
            f"{dy.dtype} of shape {tuple(dy.shape)}"
        )
    dx = dw = db = None
    if need_dx:
        dx = rt.empty((n, k), x.dtype)
        if n and k:
            if path_dx == "cublas":
                _blas(rt, ctype, "dx", dy, m, w, k, dx, k, n, k, m, accumulate=False)
            else:
                _gemm(rt, ctype, "dx", dy, m, w, k, None, dx, k, n, k, m, accumulate=False)
    if need_dw:
        if accumulate_dw is None:
            dw = rt.empty((m, k), x.dtype)
        else:
            if (
                tuple(accumulate_dw.shape) != (m, k)
                or accumulate_dw.dtype != x.dtype
                or not accumulate_dw.flags.c_contiguous
            ):
                raise ValueError(
                    f"fc_backward: accumulate_dw must be a C-contiguous {x.dtype} "
                    f"array of shape {(m, k)}, got {accumulate_dw.dtype} of shape "
                    f"{tuple(accumulate_dw.shape)}"
                )
            dw = accumulate_dw
        if m and k:
            if path_dw == "cublas":
                _blas(
                    rt,
                    ctype,
                    "dw",
                    dy,
                    m,
                    x,
                    k,
                    dw,
                    k,
                    m,
                    k,
                    n,
                    accumulate=accumulate_dw is not None,
                )
            else:
                _gemm(
                    rt,
                    ctype,
                    "dw",
                    dy,
                    m,
                    x,
                    k,
                    None,
                    dw,
                    k,
                    m,
                    k,
                    n,
                    accumulate=accumulate_dw is not None,
                )
    if need_db:
        db = rt.empty((m,), x.dtype)
        if m:
            _bias_grad(rt, ctype, dy, db)
    return dx, dw, db


# ---------------------------------------------------------------------------------------
# retain


def _retain_unit(row_bytes: int, *pointers: int) -> tuple[int, str, str]:
    """The widest copy unit dividing the row size and every buffer's address."""
    for unit in _RETAIN_UNITS[:-1]:
        if row_bytes % unit[0] == 0 and all(p % unit[0] == 0 for p in pointers):
            return unit
    return _RETAIN_UNITS[-1]  # single bytes always fit


def _retain(rt, data, indices, row_ids):
    """Rows of (``data``, sorted unique ``indices``) whose ids occur in ``row_ids``."""
    xp = rt.xp
    if data.ndim < 1 or indices.ndim != 1 or indices.shape[0] != data.shape[0]:
        raise ValueError(
            f"retain: expected data [k, ...] and indices [k], got shapes "
            f"{tuple(data.shape)} and {tuple(indices.shape)}"
        )
    data = contiguous(xp, data)
    indices = contiguous(xp, indices.astype(xp.int64, copy=False))
    wanted = contiguous(xp, xp.asarray(row_ids).astype(xp.int64, copy=False).ravel())
    k, row_shape = data.shape[0], tuple(data.shape[1:])
    row_bytes = data.itemsize * int(numpy.prod(row_shape, dtype=numpy.int64))
    if k == 0 or wanted.size == 0:
        return rt.empty((0,) + row_shape, data.dtype), rt.empty((0,), numpy.int64)
    found = xp.zeros(k, numpy.uint8)
    # The marking kernel sits in every unit's module; any unit fits it.
    mark = rt.kernel("retain.cu", _RETAIN_UNITS[-1][1], "retain_mark")
    n = int(wanted.size)
    mark(
        (min(_ceil_div(n, 256), _MAX_STRIDE_BLOCKS), 1, 1),
        (256, 1, 1),
        (indices, numpy.int64(k), wanted, numpy.int64(n), found),
    )
    rows = xp.flatnonzero(found)  # ascending, so the result's indices stay sorted
    out_indices = indices[rows]
    n_rows = int(rows.size)
    out = rt.empty((n_rows,) + row_shape, data.dtype)
    if n_rows and row_bytes:
        size, ctype, dtype = _retain_unit(row_bytes, rt.ptr(data), rt.ptr(out))
        units = row_bytes // size
        row_elems = row_bytes // data.itemsize
        src = data.reshape(k, row_elems).view(dtype)
        dst = out.reshape(n_rows, row_elems).view(dtype)
        lanes_log2 = min(8, (units - 1).bit_length())  # next power of two, at most 256
        gather = rt.kernel("retain.cu", ctype, f"retain_gather<{ctype}>")
        gather(
            (min(_ceil_div(n_rows, 256 >> lanes_log2), _MAX_STRIDE_BLOCKS), 1, 1),
            (256, 1, 1),
            (src, rows, numpy.int64(n_rows), numpy.int64(units), numpy.int32(lanes_log2), dst),
        )
    return out, out_indices


# ---------------------------------------------------------------------------------------
# dropout


def _dropout_mask(rt, shape, dtype, key: int, threshold: int, scale):
    """A new ``dtype`` array of ``shape``: ``scale`` where word ``i`` of Philox key ``key``
    is >= ``threshold``, +0 elsewhere (``gluonlite/_philox.py`` has the NumPy twin).

    Any 2-, 4- or 8-byte storage type works (the kernel stores bits); the host harness
    passes bfloat16 as ``uint16`` with ``scale`` as its bits.
    """
    dtype = numpy.dtype(dtype)
    unit = next((u for u in _DROPOUT_UNITS if u[0] == dtype.itemsize), None)
    if unit is None:
        raise TypeError(
            f"dropout_mask: no kernel for {dtype} ({dtype.itemsize}-byte "
            f"elements); expected a 2-, 4- or 8-byte type"
        )
    if not 0 <= threshold < 2**32 or not 0 <= key < 2**64:
        raise ValueError(
            f"dropout_mask: threshold must fit 32 bits and key 64 bits, got "
            f"threshold={threshold}, key={key}"
        )
    _, ctype, bits = unit
    scale_bits = numpy.asarray(scale, dtype=dtype).view(bits).item()
    mask = rt.empty(shape, dtype)
    n = int(mask.size)
    if n:
        fn = rt.kernel("dropout.cu", ctype, f"dropout_mask<{ctype}>")
        fn(
            (min(_ceil_div(_ceil_div(n, 4), 256), _MAX_STRIDE_BLOCKS), 1, 1),
            (256, 1, 1),
            (
                numpy.int64(n),
                numpy.uint64(key),
                numpy.uint32(threshold),
                numpy.uint64(scale_bits),
                mask.reshape(-1).view(bits),
            ),
        )
    return mask


# ---------------------------------------------------------------------------------------
# fused multi-tensor optimizer steps

# Kernel of each update and the arrays per tensor it takes (weight, gradient, states).
_MULTI_TENSOR_KERNELS = {
    "sgd": ("multi_tensor_sgd<false>", 2),
    "sgd_momentum": ("multi_tensor_sgd<true>", 3),
    "adam": ("multi_tensor_adam", 4),
}
# Elements a block updates per chunk: large enough that a big tensor costs few table entries
# and each block streams long contiguous runs, small enough that a large tensor still spreads
# over many blocks. Not yet tuned on a GPU.
_MULTI_TENSOR_CHUNK = 1 << 14
_MULTI_TENSOR_THREADS = 256


def _multi_tensor_step(rt, kind: str, arrays, lrs, wds, scalars) -> None:
    """One launch of the fused ``kind`` update over every tensor of ``arrays``.

    ``arrays[a][t]`` is array ``a`` of tensor ``t``: weights, then gradients, then the
    states, in the order of multi_tensor.cu; all float32, weights and states C-contiguous
    (updated in place), on the current device. ``scalars`` are the kernel's trailing float
    arguments. Gradients are only read; a non-contiguous one is read from a contiguous copy.
    """
    expression, count = _MULTI_TENSOR_KERNELS[kind]
    if len(arrays) != count:
        raise ValueError(
            f"multi_tensor {kind}: expected {count} lists of arrays (weights, "
            f"gradients, states), got {len(arrays)}"
        )
    weights = arrays[0]
    n = len(weights)
    if len(lrs) != n or len(wds) != n or any(len(column) != n for column in arrays):
        raise ValueError(
            f"multi_tensor {kind}: {n} weights but lists of lengths "
            f"{[len(c) for c in arrays]}, {len(lrs)} lrs, {len(wds)} wds"
        )
    xp = rt.xp
    arrays = [list(column) for column in arrays]
    for a, column in enumerate(arrays):
        for t, array in enumerate(column):
            what = ("weight", "gradient")[a] if a < 2 else f"state {a - 2}"
            if array.dtype != numpy.float32:
                raise TypeError(
                    f"multi_tensor {kind}: the {what} of tensor {t} is "
                    f"{array.dtype}; the fused kernels take float32 only"
                )
            if tuple(array.shape) != tuple(weights[t].shape):
                raise ValueError(
                    f"multi_tensor {kind}: the {what} of tensor {t} has shape "
                    f"{tuple(array.shape)}, its weight {tuple(weights[t].shape)}"
                )
            if a == 1:
                column[t] = contiguous(xp, array)  # read only: a copy is as good
            elif not array.flags.c_contiguous:
                raise TypeError(
                    f"multi_tensor {kind}: the {what} of tensor {t} is not "
                    "C-contiguous; it is updated in place, so it must be"
                )
    sizes = numpy.array([w.size for w in weights], numpy.int64)
    chunk = _MULTI_TENSOR_CHUNK
    chunks = -(-sizes // chunk)  # empty tensors get no chunk
    total = int(chunks.sum())
    if total == 0:
        return
    # The chunk table: tensor and first element of every chunk, tensor by tensor.
    chunk_tensor = numpy.repeat(numpy.arange(n, dtype=numpy.int64), chunks)
    first = numpy.cumsum(chunks) - chunks
    chunk_start = (numpy.arange(total, dtype=numpy.int64) - first[chunk_tensor]) * chunk
    ptrs = numpy.array([rt.ptr(a) for column in arrays for a in column], numpy.uint64)
    # Two uploads per launch: every integer table in one int64 array, lrs and wds in one
    # float32 array; the kernel gets views into them.
    table = xp.asarray(
        numpy.concatenate([ptrs.view(numpy.int64), sizes, chunk_tensor, chunk_start])
    )
    floats = xp.asarray(numpy.array([*lrs, *wds], numpy.float32))
    at = numpy.cumsum([0, ptrs.size, n, total, total])
    fn = rt.kernel("multi_tensor.cu", "float", expression)
    fn(
        (min(total, _MAX_STRIDE_BLOCKS), 1, 1),
        (_MULTI_TENSOR_THREADS, 1, 1),
        (
            table[at[0] : at[1]].view(xp.uint64),
            _i32("tensors", n),
            table[at[1] : at[2]],
            floats[:n],
            floats[n:],
            table[at[2] : at[3]],
            table[at[3] : at[4]],
            _i32("chunks", total),
            numpy.int32(chunk),
            *scalars,
        ),
    )


def _clip_scalar(clip_gradient) -> numpy.float32:
    # The kernels' encoding of the Python code's None (no clipping): a negative bound.
    return numpy.float32(-1.0 if clip_gradient is None else clip_gradient)


def _multi_tensor_sgd(
    rt, weights, grads, moms, lrs, wds, *, momentum, rescale_grad, clip_gradient
) -> None:
    """``optimizer._sgd_math`` over every tensor in one launch; ``moms`` None: no momentum."""
    kind, arrays = (
        ("sgd", [weights, grads]) if moms is None else ("sgd_momentum", [weights, grads, moms])
    )
    _multi_tensor_step(
        rt,
        kind,
        arrays,
        lrs,
        wds,
        (numpy.float32(momentum), numpy.float32(rescale_grad), _clip_scalar(clip_gradient)),
    )


def _multi_tensor_adam(
    rt,
    weights,
    grads,
    means,
    variances,
    lrs,
    wds,
    *,
    beta1,
    beta2,
    epsilon,
    rescale_grad,
    clip_gradient,
) -> None:
    """``optimizer._adam_math`` over every tensor in one launch (``lrs`` bias-corrected)."""
    # 1 - beta in double, then rounded, as NumPy rounds the Python float (1.0 - beta1).
    _multi_tensor_step(
        rt,
        "adam",
        [weights, grads, means, variances],
        lrs,
        wds,
        (
            numpy.float32(beta1),
            numpy.float32(1.0 - beta1),
            numpy.float32(beta2),
            numpy.float32(1.0 - beta2),
            numpy.float32(epsilon),
            numpy.float32(rescale_grad),
            _clip_scalar(clip_gradient),
        ),
    )


# ---------------------------------------------------------------------------------------
# fused per-tensor optimizer steps (kernels/optimizers.cu)


def _f32(*values) -> tuple:
    return tuple(numpy.float32(v) for v in values)


def _signum_scalars(h, states):
    wd_lh = h["wd_lh"]
    if states == 0:
        decay = 1.0 - h["lr"] * (h["wd"] + wd_lh)
    else:
        decay = 1.0 - h["lr"] * wd_lh if wd_lh != 0 else 1.0
    return _f32(h["momentum"], 1.0 - h["momentum"], decay, states > 0)


def _adam_like_scalars(h, states):
    return _f32(h["beta1"], 1.0 - h["beta1"], h["beta2"], 1.0 - h["beta2"], h["epsilon"])


# Each optimizer's functor (glo_<name>) takes up to eight scalars h[0..7] of its own, formed on
# the host from the Python hyper-parameters (the keyword arguments of its _<name>_math) and
# the number of state arrays; see kernels/optimizers.cu for each list.
_OPTIMIZER_KERNELS = {
    "nag": lambda h, n: _f32(h["momentum"], n > 0),
    "signum": _signum_scalars,
    "dcasgd": lambda h, n: _f32(h["momentum"], h["lamda"], n > 1),
    "adamw": _adam_like_scalars,
    "adamax": lambda h, n: _f32(h["beta1"], 1.0 - h["beta1"], h["beta2"]),
    "nadam": lambda h, n: (
        _adam_like_scalars(h, n)
        + _f32(
            h["coef2"],
            h["momentum_t_1"] / (1.0 - h["m_schedule_next"]),
            (1.0 - h["momentum_t"]) / (1.0 - h["m_schedule"]),
        )
    ),
    "adabelief": _adam_like_scalars,
    "adagrad": lambda h, n: _f32(h["epsilon"]),
    "adadelta": lambda h, n: _f32(h["rho"], 1.0 - h["rho"], h["epsilon"]),
    "rmsprop": lambda h, n: _f32(
        h["rho"],
        1.0 - h["rho"],
        h["momentum"],
        h["epsilon"],
        -1.0 if h["clip_weights"] is None else h["clip_weights"],
        n == 3,
    ),
    "ftrl": lambda h, n: _f32(h["lamda1"], h["beta"]),
    "ftml": lambda h, n: (
        _adam_like_scalars(h, n) + _f32(h["coef2"], h["coef1"] / h["lr"], -h["beta1"])
    ),
    # The noise is passed as the state array (see glo_sgld).
    "sgld": lambda h, n: _f32(h["lr"] / 2),
}
_OPTIMIZER_THREADS = 256


def _check_optimizer_arrays(what_call: str, weight, grad, states, max_states: int) -> None:
    if len(states) > max_states:
        raise ValueError(f"{what_call}: at most {max_states} state arrays, got {len(states)}")
    for what, array in [("weight", weight), ("gradient", grad)] + [
        (f"state {k}", a) for k, a in enumerate(states)
    ]:
        if array.dtype != numpy.float32:
            raise TypeError(
                f"{what_call}: the {what} is {array.dtype}; the fused kernels take float32 only"
            )
        if tuple(array.shape) != tuple(weight.shape):
            raise ValueError(
                f"{what_call}: the {what} has shape {tuple(array.shape)}, the "
                f"weight {tuple(weight.shape)}"
            )
        if what != "gradient" and not array.flags.c_contiguous:
            raise TypeError(
                f"{what_call}: the {what} is not C-contiguous; it is updated in "
                "place, so it must be"
            )


def _optimizer_step(rt, name: str, weight, grad, states, **hyper) -> None:
    """One launch of optimizer ``name``'s fused step on one float32 tensor, in place.

    ``states`` are the arrays of the optimizer's Python math function after the weight, in
    its order; ``hyper`` its keyword arguments (lr, wd, rescale_grad, clip_gradient and the
    optimizer's own). The weight and states must be C-contiguous (updated by address); the
    gradient is only read (a non-contiguous one is read from a contiguous copy).
    """
    try:
        scalars_of = _OPTIMIZER_KERNELS[name]
    except KeyError:
        raise ValueError(
            f"optimizer_step: no fused kernel for optimizer {name!r}; kernels "
            f"exist for {sorted(_OPTIMIZER_KERNELS)}"
        ) from None
    states = list(states)
    _check_optimizer_arrays(f"optimizer_step {name}", weight, grad, states, 3)
    n = int(weight.size)
    if n == 0:
        return
    scalars = scalars_of(hyper, len(states))
    scalars += (numpy.float32(0),) * (8 - len(scalars))
    slots = states + [weight] * (3 - len(states))  # unused slots: never touched
    clip = hyper["clip_gradient"]
    fn = rt.kernel("optimizers.cu", "float", f"optimizer_step<glo_{name}>")
    fn(
        (min(_ceil_div(n, _OPTIMIZER_THREADS), _MAX_STRIDE_BLOCKS), 1, 1),
        (_OPTIMIZER_THREADS, 1, 1),
        (
            numpy.int64(n),
            weight,
            contiguous(rt.xp, grad),
            *slots,
            *_f32(hyper["lr"], hyper["wd"], hyper["rescale_grad"], -1.0 if clip is None else clip),
            *scalars,
        ),
    )


# convolution and pooling (conv.cu)


def _stride_grid(total: int) -> tuple:
    return (max(1, min(_ceil_div(total, 256), _MAX_STRIDE_BLOCKS)), 1, 1)


def _gather_rows(rt, src, index, out) -> None:
    """``out[...] = src[index]`` for a 2-D C-contiguous ``src`` (rows, width), an int64 row
    table ``index`` of any shape and a C-contiguous ``out`` of shape index.shape + (width,)."""
    xp = rt.xp
    unit = _GATHER_UNITS.get(numpy.dtype(src.dtype).itemsize)
    if src.ndim != 2 or unit is None or out.dtype != src.dtype:
        raise TypeError(
            f"gather_rows: expected a 2-D source of 2-, 4- or 8-byte elements and "
            f"an output of its dtype, got {src.dtype} {tuple(src.shape)} and "
            f"{out.dtype}"
        )
    width = int(src.shape[1])
    if tuple(out.shape) != tuple(index.shape) + (width,) or not out.flags.c_contiguous:
        raise ValueError(
            f"gather_rows: out must be C-contiguous of shape "
            f"{tuple(index.shape) + (width,)}, got {tuple(out.shape)}"
        )
    src = contiguous(xp, src)
    rows = int(index.size)
    if rows == 0 or width == 0:
        return
    ctype, bits = unit
    table = contiguous(xp, index.astype(numpy.int64, copy=False).reshape(-1))
    fn = rt.kernel("conv.cu", ctype, f"conv_gather_rows<{ctype}>")
    fn(
        _stride_grid(rows * width),
        (256, 1, 1),
        (
            src.view(bits),
            table,
            numpy.int64(rows),
            numpy.int64(width),
            out.reshape(rows, width).view(bits),
        ),
    )


def _pool_reduce(rt, src, offsets, rows: int, is_max: bool):
    """(rows, width): max or sum over taps ``j`` of ``src[r + offsets[j]]`` (float32 or
    float64 ``src`` of at least ``rows + max(offsets)`` rows)."""
    xp = rt.xp
    ctype = _POOL_CTYPES.get(numpy.dtype(src.dtype).name)
    if ctype is None or src.ndim != 2:
        raise TypeError(
            f"pool_reduce: expected a 2-D float32 or float64 source, got "
            f"{src.dtype} {tuple(src.shape)}"
        )
    offsets = numpy.asarray(offsets, dtype=numpy.int64)
    if offsets.size == 0 or offsets.min() < 0 or rows + int(offsets.max()) > src.shape[0]:
        raise ValueError(
            f"pool_reduce: taps {offsets.tolist()} over {rows} rows read past the "
            f"{src.shape[0]} rows of the source"
        )
    src = contiguous(xp, src)
    width = int(src.shape[1])
    out = rt.empty((rows, width), src.dtype)
    if rows and width:
        expression = f"pool_reduce<{ctype},{str(bool(is_max)).lower()}>"
        fn = rt.kernel("conv.cu", ctype, expression)
        fn(
            _stride_grid(rows * width),
            (256, 1, 1),
            (
                src,
                xp.asarray(offsets),
                _i32("taps", int(offsets.size)),
                numpy.int64(rows),
                numpy.int64(width),
                out,
            ),
        )
    return out


def _bound(value) -> float:
    return -1.0 if value is None else value


# Layer-wise optimizers (see optimizers.cu): per name, whether its norms phases write a
# scratch array (slot s2), then its phases in launch order: (kernel, functor, scalars,
# priors), ``scalars(hyper, n_states)`` the h values of that launch, ``priors`` the indices
# of up to two earlier phases whose partial sums it reads (as p1, p2). A phase of kernel
# "norms" leaves partial sums; LARS with ``layer_wise`` False skips those phases.
_LAYERWISE_KERNELS = {
    "lamb": (
        True,
        (
            (
                "norms",
                "lamb",
                lambda h, n: _adam_like_scalars(h, n) + _f32(h["coef1"], h["coef2"]),
                (),
            ),
            (
                "layerwise",
                "lamb",
                lambda h, n: _f32(_bound(h["lower_bound"]), _bound(h["upper_bound"])),
                (0,),
            ),
        ),
    ),
    "lars": (
        False,
        (
            ("norms", "lars", lambda h, n: (), ()),
            (
                "layerwise",
                "lars",
                lambda h, n: _f32(h["eta"], h["epsilon"], n > 0, h["momentum"]),
                (0,),
            ),
        ),
    ),
    "lans": (
        True,
        (
            ("norms", "lans_norms", lambda h, n: (), ()),
            (
                "norms",
                "lans_moments",
                lambda h, n: _adam_like_scalars(h, n) + _f32(h["coef1"], h["coef2"]),
                (0,),
            ),
            (
                "norms",
                "lans_step",
                lambda h, n: _f32(
                    h["beta1"],
                    h["epsilon"],
                    h["coef2"],
                    _bound(h["lower_bound"]),
                    _bound(h["upper_bound"]),
                ),
                (0, 1),
            ),
            (
                "layerwise",
                "lans_finish",
                lambda h, n: _f32(
                    1.0 - h["beta1"], _bound(h["lower_bound"]), _bound(h["upper_bound"])
                ),
                (0, 2),
            ),
        ),
    ),
}
# The norms kernel runs at most this many blocks: every thread of a later phase adds up
# their partial sums, so they must stay few.
_NORM_BLOCKS = 64


def _layerwise_expressions() -> tuple:
    return tuple(
        dict.fromkeys(
            f"optimizer_{kernel}<glo_{op}>"
            for _, phases in _LAYERWISE_KERNELS.values()
            for kernel, op, _, _ in phases
        )
    )


def _layerwise_step(rt, name: str, weight, grad, states, **hyper) -> None:
    """Optimizer ``name``'s update of one float32 tensor in place, one launch per phase of
    ``_LAYERWISE_KERNELS[name]``: per-tensor norms (``optimizer_norms``, block partial sums
    in float32) and elementwise steps scaled by them (``optimizer_layerwise``). Arguments as
    :func:`_optimizer_step`; LARS with ``layer_wise`` False skips the norms."""
    try:
        scratch, phases = _LAYERWISE_KERNELS[name]
    except KeyError:
        raise ValueError(
            f"layerwise_step: no kernels for optimizer {name!r}; kernels "
            f"exist for {sorted(_LAYERWISE_KERNELS)}"
        ) from None
    states = list(states)
    _check_optimizer_arrays(f"layerwise_step {name}", weight, grad, states, 2 if scratch else 3)
    n = int(weight.size)
    if n == 0:
        return
    grad = contiguous(rt.xp, grad)
    slots = states + [weight] * (3 - len(states))
    if scratch:
        slots[2] = rt.empty(tuple(weight.shape), numpy.float32)
    common = _f32(hyper["lr"], hyper["wd"], hyper["rescale_grad"], _bound(hyper["clip_gradient"]))
    threads = _OPTIMIZER_THREADS
    norm_blocks = min(_ceil_div(n, threads), _NORM_BLOCKS)
    partials = {}  # phase index -> its partial sums
    for index, (kernel, op, scalars, priors) in enumerate(phases):
        if kernel == "norms" and not hyper.get("layer_wise", True):
            continue
        prior = []
        for k in (priors + (None, None))[:2]:
            # Absent: any valid address with 0 blocks (never read).
            prior += (
                [weight, numpy.int32(0)]
                if k not in partials
                else [partials[k], numpy.int32(norm_blocks)]
            )
        h = scalars(hyper, len(states))
        h += (numpy.float32(0),) * (8 - len(h))
        fn = rt.kernel("optimizers.cu", "float", f"optimizer_{kernel}<glo_{op}>")
        args = (numpy.int64(n), weight, grad, *slots, *prior, *common, *h)
        if kernel == "norms":
            partials[index] = rt.empty((2 * norm_blocks,), numpy.float32)
            fn((norm_blocks, 1, 1), (threads, 1, 1), args + (partials[index],))
        else:
            fn((min(_ceil_div(n, threads), _MAX_STRIDE_BLOCKS), 1, 1), (threads, 1, 1), args)


# ---------------------------------------------------------------------------------------
# batch normalisation (norm.cu)


@functools.lru_cache(maxsize=None)
def norm_ctype(dtype) -> str | None:
    """The storage type of norm.cu and pool.cu for ``dtype`` (float32, float16, bfloat16),
    or None where those kernels do not apply (float64 and others stay on array ops)."""
    return _FC_CTYPES.get(numpy.dtype(dtype).name)


def _norm_type(op: str, x, ctype: str | None) -> str:
    ctype = ctype or norm_ctype(x.dtype)
    if ctype is None:
        raise TypeError(
            f"{op}: no kernel for {x.dtype} data; kernels exist for {', '.join(_FC_CTYPES)}"
        )
    return ctype


def _channel_view(op: str, x, axis: int) -> tuple[int, int, int]:
    """(outer, channels, inner) of C-contiguous ``x`` around ``axis``."""
    if not x.flags.c_contiguous:
        raise ValueError(f"{op}: data must be C-contiguous")
    if not 0 <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} out of range for data of shape {tuple(x.shape)}")
    shape = tuple(int(s) for s in x.shape)
    outer = int(numpy.prod(shape[:axis], dtype=numpy.int64))
    inner = int(numpy.prod(shape[axis + 1 :], dtype=numpy.int64))
    if outer * inner == 0 or shape[axis] == 0:
        raise ValueError(
            f"{op}: data of shape {shape} has no elements to normalise over axis {axis}"
        )
    return outer, shape[axis], inner


def _check_dy(op: str, x, dy) -> None:
    """A norm backward's output gradient: x's shape and dtype, C-contiguous."""
    if tuple(dy.shape) != tuple(x.shape) or dy.dtype != x.dtype or not dy.flags.c_contiguous:
        raise ValueError(
            f"{op}: dy must be C-contiguous {x.dtype} of shape "
            f"{tuple(x.shape)}, got {dy.dtype} of shape {tuple(dy.shape)}"
        )


def _check_row_stats(op: str, rows: int, **arrays) -> None:
    """Saved per-row statistics (layer and group norm): C-contiguous float32, one per row."""
    for name, a in arrays.items():
        if a.dtype != numpy.float32 or a.size != rows or not a.flags.c_contiguous:
            raise ValueError(
                f"{op}: {name} must be C-contiguous float32 with {rows} "
                f"entries, got {a.dtype} of shape {tuple(a.shape)}"
            )


def _check_channel_arrays(op: str, channels: int, **arrays) -> None:
    for name, a in arrays.items():
        if a is None:
            continue
        if a.dtype != numpy.float32 or tuple(a.shape) != (channels,) or not a.flags.c_contiguous:
            raise ValueError(
                f"{op}: {name} must be a C-contiguous float32 array of shape "
                f"({channels},), got {a.dtype} of shape {tuple(a.shape)}"
            )


def _bn_chunks(channels: int, m: int) -> tuple[int, int]:
    """(chunks, chunk): each channel's m elements split into chunks of ``chunk``, enough of
    them that about _BN_BLOCKS blocks run, none shorter than _BN_CHUNK_MIN elements."""
    chunks = max(1, min(_ceil_div(m, _BN_CHUNK_MIN), _BN_BLOCKS // channels, _MAX_GRID_Y))
    chunk = _ceil_div(m, chunks)
    return _ceil_div(m, chunk), chunk


def _elementwise_blocks(n: int) -> int:
    return max(1, min(_ceil_div(n, _NORM_THREADS), _MAX_STRIDE_BLOCKS))


def _bn_forward(
    rt,
    x,
    axis: int,
    gamma,
    beta,
    eps: float,
    stats=None,
    running=None,
    momentum: float = 0.9,
    ctype: str | None = None,
):
    """Batch normalisation of C-contiguous ``x`` over every axis but ``axis``.

    ``gamma``/``beta``: float32 (C,) arrays or None (treated as 1 / 0). ``stats``: float32
    (mean, var) to normalise with (inference), or None for the batch's own statistics, in
    which case ``running`` (float32 (mean, var) arrays, or None) is updated in place as
    ``running * momentum + batch * (1 - momentum)``. Returns ``(y, mean, var, invstd)``, the
    last three float32 (C,).
    """
    op = "batch_norm"
    ctype = _norm_type(op, x, ctype)
    outer, channels, inner = _channel_view(op, x, axis)
    m = outer * inner
    running_mean, running_var = running if running is not None else (None, None)
    _check_channel_arrays(
        op, channels, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var
    )
    xp = rt.xp
    if stats is None:
        chunks, chunk = _bn_chunks(channels, m)
        partial = rt.empty((channels, chunks, 2), numpy.float32)
        fn = rt.kernel("norm.cu", ctype, f"bn_stats_partial<{ctype}>")
        fn(
            (channels, chunks, 1),
            (_NORM_THREADS, 1, 1),
            (
                x,
                numpy.int64(outer),
                _i32("channels", channels),
                numpy.int64(inner),
                numpy.int64(chunk),
                partial,
            ),
        )
        mean, var, invstd = (rt.empty((channels,), numpy.float32) for _ in range(3))
        update = running is not None
        finish = rt.kernel("norm.cu", ctype, "bn_stats_finish")
        finish(
            (_ceil_div(channels, _NORM_THREADS), 1, 1),
            (_NORM_THREADS, 1, 1),
            (
                partial,
                numpy.int32(channels),
                numpy.int32(chunks),
                numpy.int64(chunk),
                numpy.int64(m),
                numpy.float32(eps),
                numpy.float32(momentum),
                numpy.float32(1 - momentum),
                numpy.int32(update),
                mean,
                var,
                invstd,
                running_mean if update else mean,
                running_var if update else var,
            ),
        )
    else:
        mean, var = stats
        _check_channel_arrays(op, channels, mean=mean, var=var)
        invstd = 1 / xp.sqrt(var + numpy.float32(eps))
    y = rt.empty(tuple(x.shape), x.dtype)
    fn = rt.kernel("norm.cu", ctype, f"bn_forward<{ctype}>")
    n = m * channels
    fn(
        (_elementwise_blocks(n), 1, 1),
        (_NORM_THREADS, 1, 1),
        (
            x,
            numpy.int64(n),
            _i32("channels", channels),
            numpy.int64(inner),
            mean,
            invstd,
            mean if gamma is None else gamma,
            numpy.int32(gamma is not None),
            mean if beta is None else beta,
            numpy.int32(beta is not None),
            y,
        ),
    )
    return y, mean, var, invstd


def _bn_backward(
    rt,
    x,
    dy,
    axis: int,
    mean,
    invstd,
    gamma,
    batch_stats: bool,
    need_dx: bool = True,
    need_params: bool = True,
    ctype: str | None = None,
):
    """Gradients ``(dx, dgamma, dbeta)`` of ``_bn_forward`` for output gradient ``dy``.

    ``batch_stats``: the forward used the batch's statistics (which depend on x);
    ``gamma`` None means gamma = 1 (``fix_gamma`` or no gamma). dgamma and dbeta are
    float32 (C,) (None unless ``need_params``); dx has x's dtype (None unless ``need_dx``).
    """
    op = "batch_norm backward"
    ctype = _norm_type(op, x, ctype)
    outer, channels, inner = _channel_view(op, x, axis)
    _check_dy(op, x, dy)
    _check_channel_arrays(op, channels, mean=mean, invstd=invstd, gamma=gamma)
    m = outer * inner
    dgamma = dbeta = terms = dx = None
    if need_params or (need_dx and batch_stats):
        chunks, chunk = _bn_chunks(channels, m)
        partial = rt.empty((channels, chunks, 2), numpy.float32)
        fn = rt.kernel("norm.cu", ctype, f"bn_backward_partial<{ctype}>")
        fn(
            (channels, chunks, 1),
            (_NORM_THREADS, 1, 1),
            (
                x,
                dy,
                numpy.int64(outer),
                _i32("channels", channels),
                numpy.int64(inner),
                numpy.int64(chunk),
                mean,
                invstd,
                partial,
            ),
        )
        dgamma, dbeta = (rt.empty((channels,), numpy.float32) for _ in range(2))
        terms = rt.empty((channels, 2), numpy.float32)
        finish = rt.kernel("norm.cu", ctype, "bn_backward_finish")
        finish(
            (_ceil_div(channels, _NORM_THREADS), 1, 1),
            (_NORM_THREADS, 1, 1),
            (
                partial,
                numpy.int32(channels),
                numpy.int32(chunks),
                mean if gamma is None else gamma,
                numpy.int32(gamma is not None),
                numpy.float32(m),
                dgamma,
                dbeta,
                terms,
            ),
        )
    if need_dx:
        dx = rt.empty(tuple(x.shape), x.dtype)
        n = m * channels
        fn = rt.kernel("norm.cu", ctype, f"bn_backward_dx<{ctype}>")
        fn(
            (_elementwise_blocks(n), 1, 1),
            (_NORM_THREADS, 1, 1),
            (
                x,
                dy,
                numpy.int64(n),
                _i32("channels", channels),
                numpy.int64(inner),
                mean,
                invstd,
                mean if gamma is None else gamma,
                numpy.int32(gamma is not None),
                invstd if terms is None else terms,
                numpy.int32(bool(batch_stats)),
                dx,
            ),
        )
    if not need_params:
        dgamma = dbeta = None
    return dx, dgamma, dbeta


def _ln_rows(op: str, x) -> tuple[int, int]:
    if not x.flags.c_contiguous or x.ndim < 1:
        raise ValueError(f"{op}: data must be C-contiguous with at least one axis")
    d = int(x.shape[-1])
    rows = int(numpy.prod(x.shape[:-1], dtype=numpy.int64))
    if d == 0 or rows == 0:
        raise ValueError(f"{op}: data of shape {tuple(x.shape)} has no elements to normalise")
    return rows, d


def _ln_threads(d: int) -> int:
    """Threads per row: a power of two from 32 up to _NORM_THREADS, about one per element."""
    threads = 32
    while threads < min(d, _NORM_THREADS):
        threads *= 2
    return threads


def _ln_forward(rt, x, gamma, beta, eps: float, ctype: str | None = None):
    """Layer normalisation of C-contiguous ``x`` over its last axis; ``gamma``/``beta``
    float32 (d,) or None. Returns ``(y, mean, var, invstd)``, the last three float32 of
    shape ``x.shape[:-1]``."""
    op = "layer_norm"
    ctype = _norm_type(op, x, ctype)
    rows, d = _ln_rows(op, x)
    _check_channel_arrays(op, d, gamma=gamma, beta=beta)
    y = rt.empty(tuple(x.shape), x.dtype)
    mean, var, invstd = (rt.empty(tuple(x.shape[:-1]), numpy.float32) for _ in range(3))
    fn = rt.kernel("norm.cu", ctype, f"ln_forward<{ctype}>")
    fn(
        (min(rows, _MAX_STRIDE_BLOCKS), 1, 1),
        (_ln_threads(d), 1, 1),
        (
            x,
            numpy.int64(rows),
            _i32("row length", d),
            numpy.float32(eps),
            mean if gamma is None else gamma,
            numpy.int32(gamma is not None),
            mean if beta is None else beta,
            numpy.int32(beta is not None),
            y,
            mean,
            var,
            invstd,
        ),
    )
    return y, mean, var, invstd


def _ln_backward(
    rt,
    x,
    dy,
    mean,
    invstd,
    gamma,
    need_dx: bool = True,
    need_params: bool = True,
    ctype: str | None = None,
):
    """Gradients ``(dx, dgamma, dbeta)`` of ``_ln_forward`` for output gradient ``dy``;
    dgamma and dbeta float32 (d,), entries not needed None."""
    op = "layer_norm backward"
    ctype = _norm_type(op, x, ctype)
    rows, d = _ln_rows(op, x)
    _check_dy(op, x, dy)
    _check_channel_arrays(op, d, gamma=gamma)
    _check_row_stats(op, rows, mean=mean, invstd=invstd)
    dx = dgamma = dbeta = None
    if need_dx:
        dx = rt.empty(tuple(x.shape), x.dtype)
        fn = rt.kernel("norm.cu", ctype, f"ln_backward<{ctype}>")
        fn(
            (min(rows, _MAX_STRIDE_BLOCKS), 1, 1),
            (_ln_threads(d), 1, 1),
            (
                x,
                dy,
                numpy.int64(rows),
                _i32("row length", d),
                mean,
                invstd,
                mean if gamma is None else gamma,
                numpy.int32(gamma is not None),
                dx,
            ),
        )
    if need_params:
        column_blocks = _ceil_div(d, _LN_COLUMNS)
        chunks = max(
            1, min(_ceil_div(rows, _LN_CHUNK_MIN), _LN_BLOCKS // column_blocks, _MAX_GRID_Y)
        )
        chunk = _ceil_div(rows, chunks)
        chunks = _ceil_div(rows, chunk)
        partial = rt.empty((chunks, 2, d), numpy.float32)
        fn = rt.kernel("norm.cu", ctype, f"ln_param_partial<{ctype}>")
        fn(
            (column_blocks, chunks, 1),
            (_LN_COLUMNS, _LN_LANES, 1),
            (x, dy, numpy.int64(rows), numpy.int32(d), numpy.int64(chunk), mean, invstd, partial),
        )
        dgamma, dbeta = (rt.empty((d,), numpy.float32) for _ in range(2))
        finish = rt.kernel("norm.cu", ctype, "ln_param_finish")
        finish(
            (_ceil_div(d, _NORM_THREADS), 1, 1),
            (_NORM_THREADS, 1, 1),
            (partial, numpy.int32(chunks), numpy.int32(d), dgamma, dbeta),
        )
    return dx, dgamma, dbeta


def _gn_view(op: str, x, groups: int) -> tuple[int, int, int, int]:
    """(N, C, S, rows = N * groups) of C-contiguous (N, C, spatial...) ``x``, S the product
    of the spatial axes (1 for (N, C) data)."""
    if not x.flags.c_contiguous or x.ndim < 2:
        raise ValueError(f"{op}: data must be C-contiguous (N, C, ...), got {tuple(x.shape)}")
    shape = tuple(int(s) for s in x.shape)
    n, c = shape[:2]
    spatial = int(numpy.prod(shape[2:], dtype=numpy.int64))
    if groups < 1 or c % groups:
        raise ValueError(
            f"{op}: data of shape {shape} has {c} channels, not divisible by groups={groups}"
        )
    if n * c * spatial == 0:
        raise ValueError(f"{op}: data of shape {shape} has no elements to normalise")
    return n, c, spatial, n * groups


def _gn_forward(rt, x, groups: int, gamma, beta, eps: float, ctype: str | None = None):
    """Group normalisation of C-contiguous (N, C, spatial...) ``x``: each sample's channels
    in ``groups`` groups of C / groups, each group normalised over its channels and spatial
    axes; ``gamma``/``beta`` float32 (C,) or None. Returns ``(y, mean, var, invstd)``, the
    last three float32 (N, groups)."""
    op = "group_norm"
    ctype = _norm_type(op, x, ctype)
    n, c, spatial, rows = _gn_view(op, x, groups)
    d = c // groups * spatial
    _check_channel_arrays(op, c, gamma=gamma, beta=beta)
    y = rt.empty(tuple(x.shape), x.dtype)
    mean, var, invstd = (rt.empty((n, groups), numpy.float32) for _ in range(3))
    fn = rt.kernel("norm.cu", ctype, f"gn_forward<{ctype}>")
    fn(
        (min(rows, _MAX_STRIDE_BLOCKS), 1, 1),
        (_ln_threads(d), 1, 1),
        (
            x,
            numpy.int64(rows),
            _i32("group size", d),
            numpy.int64(spatial),
            _i32("groups", groups),
            numpy.float32(eps),
            mean if gamma is None else gamma,
            numpy.int32(gamma is not None),
            mean if beta is None else beta,
            numpy.int32(beta is not None),
            y,
            mean,
            var,
            invstd,
        ),
    )
    return y, mean, var, invstd


def _gn_backward(
    rt,
    x,
    dy,
    groups: int,
    mean,
    invstd,
    gamma,
    need_dx: bool = True,
    need_params: bool = True,
    ctype: str | None = None,
):
    """Gradients ``(dx, dgamma, dbeta)`` of ``_gn_forward`` for output gradient ``dy``;
    dgamma and dbeta float32 (C,), entries not needed None."""
    op = "group_norm backward"
    ctype = _norm_type(op, x, ctype)
    n, c, spatial, rows = _gn_view(op, x, groups)
    d = c // groups * spatial
    _check_dy(op, x, dy)
    _check_channel_arrays(op, c, gamma=gamma)
    _check_row_stats(op, rows, mean=mean, invstd=invstd)
    dx = dgamma = dbeta = None
    if need_dx:
        dx = rt.empty(tuple(x.shape), x.dtype)
        fn = rt.kernel("norm.cu", ctype, f"gn_backward<{ctype}>")
        fn(
            (min(rows, _MAX_STRIDE_BLOCKS), 1, 1),
            (_ln_threads(d), 1, 1),
            (
                x,
                dy,
                numpy.int64(rows),
                _i32("group size", d),
                numpy.int64(spatial),
                _i32("groups", groups),
                mean,
                invstd,
                mean if gamma is None else gamma,
                numpy.int32(gamma is not None),
                dx,
            ),
        )
    if need_params:
        chunks, chunk = _bn_chunks(c, n * spatial)
        partial = rt.empty((chunks, 2, c), numpy.float32)
        fn = rt.kernel("norm.cu", ctype, f"gn_param_partial<{ctype}>")
        fn(
            (c, chunks, 1),
            (_NORM_THREADS, 1, 1),
            (
                x,
                dy,
                numpy.int64(n),
                _i32("channels", c),
                numpy.int64(spatial),
                _i32("groups", groups),
                numpy.int64(chunk),
                mean,
                invstd,
                partial,
            ),
        )
        dgamma, dbeta = (rt.empty((c,), numpy.float32) for _ in range(2))
        finish = rt.kernel("norm.cu", ctype, "ln_param_finish")
        finish(
            (_ceil_div(c, _NORM_THREADS), 1, 1),
            (_NORM_THREADS, 1, 1),
            (partial, numpy.int32(chunks), numpy.int32(c), dgamma, dbeta),
        )
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------------------
# pooling backward (pool.cu)


def _pool_backward(
    rt,
    x,
    dy,
    pool_type: str,
    kernel,
    stride,
    pad,
    channels_last: bool,
    count_include_pad: bool = True,
    ctype: str | None = None,
):
    """The input gradient of ``npx.pooling`` (1-, 2- or 3-D windows, dilation 1) for output
    gradient ``dy``: a new array of x's shape and dtype.

    ``x`` is the pooled data ((N, C, *spatial), or (N, *spatial, C) when ``channels_last``;
    read for max only), ``dy`` the gradient of the output (N, C, *out) (or channels last);
    ``kernel``, ``stride``, ``pad`` (the low padding) per spatial axis. The output's spatial
    shape is read from ``dy``, so pooling_convention 'full' needs nothing more.
    """
    op = "pooling backward"
    ctype = _norm_type(op, x, ctype)
    if pool_type not in _POOL_MODES:
        raise ValueError(f"{op}: pool_type must be one of {tuple(_POOL_MODES)}, got {pool_type!r}")
    nd = x.ndim - 2
    if not 1 <= nd <= 3 or dy.ndim != x.ndim:
        raise ValueError(
            f"{op}: expected 3-, 4- or 5-D data and gradient, got shapes "
            f"{tuple(x.shape)} and {tuple(dy.shape)}"
        )
    geometry = [tuple(int(v) for v in t) for t in (kernel, stride, pad)]
    if any(len(t) != nd for t in geometry):
        raise ValueError(
            f"{op}: kernel {kernel}, stride {stride} and pad {pad} need "
            f"{nd} entries for data of shape {tuple(x.shape)}"
        )
    spatial = tuple(x.shape[1:-1] if channels_last else x.shape[2:])
    out = tuple(dy.shape[1:-1] if channels_last else dy.shape[2:])
    channels = int(x.shape[-1] if channels_last else x.shape[1])
    batch_c = (x.shape[0], channels)
    dy_c = (dy.shape[0], int(dy.shape[-1] if channels_last else dy.shape[1]))
    if batch_c != dy_c or dy.dtype != x.dtype:
        raise ValueError(
            f"{op}: gradient {dy.dtype} of shape {tuple(dy.shape)} does not fit "
            f"data {x.dtype} of shape {tuple(x.shape)}"
        )
    if not (x.flags.c_contiguous and dy.flags.c_contiguous):
        raise ValueError(f"{op}: data and gradient must be C-contiguous")
    kernel, stride, pad = geometry
    if min(kernel + stride) < 1 or min(pad) < 0 or any(p >= k for p, k in zip(pad, kernel)):
        raise ValueError(
            f"{op}: kernel {kernel} and stride {stride} must be positive, pad "
            f"{pad} non-negative and smaller than the kernel"
        )
    lead = (1,) * (3 - nd)
    dims = [_i32("size", v) for v in lead + spatial + lead + out]
    window = [_i32("window", v) for v in (lead + kernel + lead + stride) + ((0,) * (3 - nd) + pad)]
    cl = "true" if channels_last else "false"
    mode = _POOL_MODES[pool_type]
    dx = rt.empty(tuple(x.shape), x.dtype)
    total_in = int(numpy.prod(x.shape, dtype=numpy.int64))
    total_out = int(numpy.prod(dy.shape, dtype=numpy.int64))
    if total_in == 0:
        return dx
    channel_arg = _i32("channels", channels)
    if pool_type == "max" and total_out:
        arg = rt.empty(tuple(dy.shape), numpy.int32)
        fn = rt.kernel("pool.cu", ctype, f"pool_argmax<{ctype},{cl}>")
        fn(
            (_elementwise_blocks(total_out), 1, 1),
            (_NORM_THREADS, 1, 1),
            (x, numpy.int64(total_out), channel_arg, *dims, *window, arg),
        )
    else:
        arg = rt.empty((1,), numpy.int32)  # not read
    fn = rt.kernel("pool.cu", ctype, f"pool_backward<{ctype},{mode},{cl}>")
    fn(
        (_elementwise_blocks(total_in), 1, 1),
        (_NORM_THREADS, 1, 1),
        (
            dy,
            arg,
            numpy.int64(total_in),
            channel_arg,
            *dims,
            *window,
            numpy.int32(bool(count_include_pad)),
            dx,
        ),
    )
    return dx


# ---------------------------------------------------------------------------------------
# CuPy runtime, loader and dispatch


# alpha = 1 and beta = 0 (write) or 1 (accumulate), as float32 (the scale type of
# CUBLAS_COMPUTE_32F) in host memory that lives as long as the module, indexed by accumulate.
_GEMM_SCALAR_VALUES = numpy.array([1.0, 0.0, 1.0], numpy.float32)
_GEMM_SCALARS = {
    accumulate: (
        _GEMM_SCALAR_VALUES.ctypes.data,
        _GEMM_SCALAR_VALUES.ctypes.data + (2 if accumulate else 1) * 4,
    )
    for accumulate in (False, True)
}


class _CupyRuntime:
    """Launches the kernels on the current CuPy device.

    ``portable=True`` compiles with ``-DGL_PORTABLE_CONVERT``: the bit-level reference
    conversions the CPU harness tests, against which the GPU tests check the PTX fast path.
    """

    def __init__(self, portable: bool = False) -> None:
        self.xp = _cupy.module()
        self.portable = portable

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    @staticmethod
    def ptr(array) -> int:
        return array.data.ptr

    def gemm(
        self,
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
        accumulate: bool,
    ) -> None:
        """cuBLAS's column-major ``c = op(a) @ op(b) (+ c)`` (cublasGemmEx) on storage of
        ``data_type`` with float32 compute, on the current stream."""
        cuda = self.xp.cuda
        handle = cuda.get_cublas_handle()
        alpha, beta = _GEMM_SCALARS[bool(accumulate)]
        # The handle is shared with CuPy, which may leave another pointer mode set.
        mode = cuda.cublas.getPointerMode(handle)
        cuda.cublas.setPointerMode(handle, _CUBLAS_POINTER_MODE_HOST)
        try:
            cuda.cublas.gemmEx(
                handle,
                _CUBLAS_OP[transa],
                _CUBLAS_OP[transb],
                m,
                n,
                k,
                alpha,
                a.data.ptr,
                data_type,
                lda,
                b.data.ptr,
                data_type,
                ldb,
                beta,
                c.data.ptr,
                data_type,
                ldc,
                _CUBLAS_COMPUTE_32F,
                _CUBLAS_GEMM_DEFAULT,
            )
        finally:
            cuda.cublas.setPointerMode(handle, mode)

    def kernel(self, source: str, type_key: str, expression: str):
        device = self.xp.cuda.runtime.getDevice()
        return _load_module(device, source, type_key, self.portable)[expression]


@functools.lru_cache(maxsize=None)
def _load_module(device: int, source: str, type_key: str, portable: bool) -> dict:
    """Compile ``source`` for one type on ``device`` (once; CuPy also caches the binary on
    disk) and return its kernels by name expression."""
    cupy = _cupy.module()
    code = kernel_source(source)
    options = (
        ("-std=c++17",)
        + _COMPILE_OPTIONS.get(source, ())
        + (("-DGL_PORTABLE_CONVERT",) if portable else ())
    )
    expressions = name_expressions(source, type_key)
    with cupy.cuda.Device(device):
        module = cupy.RawModule(code=code, options=options, name_expressions=expressions)
        try:  # the first get_function compiles the module
            return {expr: module.get_function(expr) for expr in expressions}
        except cupy.cuda.compiler.CompileException as e:
            raise KernelCompileError(
                _compile_error_message(source, code, options, expressions, str(e))
            ) from e


_forced_path: str | None = None
_choices: dict[tuple, str] = {}


def set_fc_path(path: str | None) -> str | None:
    """Force the fully-connected path ('kernel', 'cublas' or 'auto'); None returns control
    to ``GLUONLITE_FC_PATH`` (default 'auto'). Returns the previous setting."""
    global _forced_path
    if path is not None and path not in _FC_PATHS:
        raise ValueError(f"set_fc_path: expected one of {_FC_PATHS} or None, got {path!r}")
    previous, _forced_path = _forced_path, path
    return previous


@contextlib.contextmanager
def fc_path(path: str):
    """``with fc_path('cublas'):`` forces one fully-connected path inside the block."""
    previous = set_fc_path(path)
    try:
        yield
    finally:
        set_fc_path(previous)


def _requested_path() -> str:
    if _forced_path is not None:
        return _forced_path
    path = os.environ.get(FC_PATH_ENV, "auto")
    if path not in _FC_PATHS:
        raise ValueError(f"{FC_PATH_ENV}={path!r}; expected one of {_FC_PATHS}")
    return path


def _measure(run: Callable[[str], object], repeats: int = 3) -> str:
    """The faster path for ``run`` on the current device, timed with CUDA events after a
    warm-up call (which also compiles the kernel and lets cuBLAS pick its algorithm).

    cuBLAS may refuse a dtype on the GPU in use (bfloat16 GemmEx before compute capability
    8.0), in which case it is no candidate; an error of the custom kernel is a bug and
    propagates."""
    cupy = _cupy.module()
    stream = cupy.cuda.get_current_stream()
    timings = {}
    for path in ("kernel", "cublas"):
        try:
            run(path)
        except Exception:  # noqa: BLE001 - see the docstring
            if path == "kernel":
                raise
            continue
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        for _ in range(repeats):
            run(path)
        stop.record(stream)
        stop.synchronize()
        timings[path] = cupy.cuda.get_elapsed_time(start, stop)
    return min(timings, key=timings.get)


def _choose(key: tuple, run: Callable[[str], object]) -> str:
    path = _requested_path()
    if path != "auto":
        return path
    cupy = _cupy.module()
    key = (cupy.cuda.runtime.getDevice(),) + key
    choice = _choices.get(key)
    if choice is None:
        choice = _choices[key] = _measure(run)
    return choice


@functools.lru_cache(maxsize=None)
def _runtime() -> _CupyRuntime:
    return _CupyRuntime()


def _plain_fc_forward(x, w, b):
    # dtypes without a custom kernel (e.g. float64): cuBLAS and an elementwise add.
    cupy = _cupy.module()
    y = cupy.matmul(x, w.T)
    if b is not None:
        y += b
    return y


def fc_forward(x: Any, w: Any, b: Any = None) -> Any:
    """``x @ w.T + b`` for 2-D ``x [N, K]``, ``w [M, K]``, ``b [M]`` or None."""
    _check_fc("fc_forward", x, w, b)
    rt = _runtime()
    if _fc_ctype(x.dtype) is None:
        return _plain_fc_forward(x, w, b)
    key = ("fwd", x.shape[0], w.shape[0], x.shape[1], x.dtype, b is not None)
    path = _choose(key, lambda p: _fc_forward(rt, x, w, b, p))
    return _fc_forward(rt, x, w, b, path)


def fc_backward(
    dy: Any,
    x: Any,
    w: Any,
    need_dx: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
    accumulate_dw: Any = None,
) -> tuple[Any, Any, Any]:
    """Gradients ``(dx, dw, db)`` of ``y = x @ w.T + b``; entries not needed are None.

    With ``accumulate_dw`` (a C-contiguous ``[M, K]`` array of the weight's dtype), ``dw`` is
    added into it (``grad_req='add'``) and it is returned as ``dw``.
    """
    _check_fc("fc_backward", x, w)
    if dy.ndim != 2:
        raise ValueError(f"fc_backward: dy must be 2-D [N, M], got shape {tuple(dy.shape)}")
    rt = _runtime()
    if _fc_ctype(x.dtype) is None:
        cupy = _cupy.module()
        dx = cupy.matmul(dy, w) if need_dx else None
        dw = None
        if need_dw:
            dw = cupy.matmul(dy.T, x)
            if accumulate_dw is not None:
                accumulate_dw += dw
                dw = accumulate_dw
        return dx, dw, (dy.sum(axis=0) if need_db else None)
    shape = (x.shape[0], w.shape[0], x.shape[1], x.dtype)
    path_dx = path_dw = "kernel"
    if need_dx:
        path_dx = _choose(
            ("dx",) + shape, lambda p: _fc_backward(rt, dy, x, w, True, False, False, p, p)
        )
    if need_dw:
        path_dw = _choose(
            ("dw",) + shape, lambda p: _fc_backward(rt, dy, x, w, False, True, False, p, p)
        )
    return _fc_backward(
        rt, dy, x, w, need_dx, need_dw, need_db, path_dx, path_dw, accumulate_dw=accumulate_dw
    )


def retain(data: Any, indices: Any, row_ids: Any) -> tuple[Any, Any]:
    """Rows of a row-sparse array (``data [k, ...]``, sorted unique int64 ``indices [k]``)
    whose ids occur in ``row_ids`` (any order, duplicates allowed).

    Returns ``(out_data, out_indices)`` with ``out_indices`` sorted and unique.
    """
    return _retain(_runtime(), data, indices, row_ids)


def dropout_mask(shape, dtype, key: int, threshold: int, scale):
    """Dropout's mask on the current CuPy device, bit for bit ``_dropout.numpy_mask``'s.

    ``scale`` where word ``i`` (row-major over ``shape``) of the Philox4x32-10 stream of the
    64-bit ``key`` is >= the 32-bit ``threshold``, +0 elsewhere; float16, bfloat16, float32
    and float64 alike.
    """
    return _dropout_mask(_runtime(), shape, dtype, key, threshold, scale)


def multi_tensor_sgd(
    weights,
    grads,
    moms,
    lrs,
    wds,
    *,
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """SGD (``gluonlite.optimizer.sgd``'s arithmetic) on lists of float32 CuPy arrays of the
    current device, in place, in one kernel launch; ``moms`` is a list, or None for no
    momentum. Gradients are only read."""
    _multi_tensor_sgd(
        _runtime(),
        weights,
        grads,
        moms,
        lrs,
        wds,
        momentum=momentum,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
    )


def multi_tensor_adam(
    weights,
    grads,
    means,
    variances,
    lrs,
    wds,
    *,
    beta1: float,
    beta2: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """Adam (``gluonlite.optimizer.adam``'s arithmetic, ``lrs`` already bias-corrected) on
    lists of float32 CuPy arrays of the current device, in place, in one kernel launch."""
    _multi_tensor_adam(
        _runtime(),
        weights,
        grads,
        means,
        variances,
        lrs,
        wds,
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
    )


def optimizer_step(name: str, weight, grad, states, **hyper) -> None:
    """Optimizer ``name``'s update (``gluonlite.optimizer.<name>``'s arithmetic) of one
    float32 CuPy tensor of the current device, in place, in one kernel launch."""
    _optimizer_step(_runtime(), name, weight, grad, states, **hyper)


def gather_rows(src, index, out) -> None:
    """``out[...] = src[index]``: rows of a 2-D CuPy array by an int64 table, into ``out``
    (the column blocks of ``npx.convolution``)."""
    _gather_rows(_runtime(), src, index, out)


def pool_reduce(src, offsets, rows: int, is_max: bool):
    """Max or sum over kernel taps in the phase layout of ``npx.pooling``: a new (rows,
    width) CuPy array with ``out[r] = reduce_j src[r + offsets[j]]``."""
    return _pool_reduce(_runtime(), src, offsets, rows, is_max)


def layerwise_step(name: str, weight, grad, states, **hyper) -> None:
    """Layer-wise optimizer ``name``'s update (LAMB, LARS, LANS) of one float32 CuPy tensor
    of the current device, in place: two kernel launches (norms, then the scaled step; four
    for LANS)."""
    _layerwise_step(_runtime(), name, weight, grad, states, **hyper)


def batch_norm_forward(
    x, axis: int, gamma, beta, eps: float, stats=None, running=None, momentum: float = 0.9
):
    """Batch normalisation on the current CuPy device (``kernels/norm.cu``): ``(y, mean,
    var, invstd)``; see ``_bn_forward`` for the arguments."""
    return _bn_forward(_runtime(), x, axis, gamma, beta, eps, stats, running, momentum)


def batch_norm_backward(
    x,
    dy,
    axis: int,
    mean,
    invstd,
    gamma,
    batch_stats: bool,
    need_dx: bool = True,
    need_params: bool = True,
):
    """``(dx, dgamma, dbeta)`` of :func:`batch_norm_forward` on the current CuPy device."""
    return _bn_backward(
        _runtime(), x, dy, axis, mean, invstd, gamma, batch_stats, need_dx, need_params
    )


def pool_backward(
    x, dy, pool_type: str, kernel, stride, pad, channels_last: bool, count_include_pad: bool = True
):
    """``npx.pooling``'s input gradient on the current CuPy device (``kernels/pool.cu``);
    see ``_pool_backward``."""
    return _pool_backward(
        _runtime(), x, dy, pool_type, kernel, stride, pad, channels_last, count_include_pad
    )


def layer_norm_forward(x, gamma, beta, eps: float):
    """Layer normalisation over the last axis on the current CuPy device
    (``kernels/norm.cu``): ``(y, mean, var, invstd)``; see ``_ln_forward``."""
    return _ln_forward(_runtime(), x, gamma, beta, eps)


def layer_norm_backward(x, dy, mean, invstd, gamma, need_dx: bool = True, need_params: bool = True):
    """``(dx, dgamma, dbeta)`` of :func:`layer_norm_forward` on the current CuPy device."""
    return _ln_backward(_runtime(), x, dy, mean, invstd, gamma, need_dx, need_params)


def group_norm_forward(x, groups: int, gamma, beta, eps: float):
    """Group normalisation of (N, C, spatial...) data on the current CuPy device
    (``kernels/norm.cu``): ``(y, mean, var, invstd)``; see ``_gn_forward``."""
    return _gn_forward(_runtime(), x, groups, gamma, beta, eps)


def group_norm_backward(
    x, dy, groups: int, mean, invstd, gamma, need_dx: bool = True, need_params: bool = True
):
    """``(dx, dgamma, dbeta)`` of :func:`group_norm_forward` on the current CuPy device."""
    return _gn_backward(_runtime(), x, dy, groups, mean, invstd, gamma, need_dx, need_params)
