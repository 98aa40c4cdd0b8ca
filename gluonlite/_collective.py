"""NCCL for the collectives of ``Trainer`` (one process, several GPUs) and of ``kvstore``
(several processes): which NCCL is there, which dtypes it reduces, and the checks every
buffer passes before its pointer is handed over.

NCCL reads ``count`` elements from a raw pointer, so a buffer must be C-contiguous (a
strided view would be read as if it were packed: wrong values, no error) and of a dtype
NCCL knows. It sits below ``gluon/trainer.py`` and ``kvstore.py``, which both use it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

import numpy

from . import _cupy
from ._typing import RawArray
from .device import Device

__all__ = [
    "nccl_module",
    "require_nccl",
    "nccl_dtypes",
    "nccl_dtype_code",
    "nccl_can_reduce",
    "nccl_allreduce",
]


@functools.lru_cache(maxsize=None)
def nccl_module() -> ModuleType | None:
    """``cupy.cuda.nccl`` when it can be used here, else None (never raises)."""
    try:
        nccl = _cupy.nccl()
    except Exception:  # noqa: BLE001 - CuPy or its NCCL binding missing
        return None
    return nccl if getattr(nccl, "available", True) else None


@functools.lru_cache(maxsize=None)
def nccl_dtypes() -> dict[numpy.dtype[Any], int]:
    """NumPy dtype -> ``ncclDataType_t`` for the dtypes NCCL reduces (bfloat16 where
    ml_dtypes and the binding provide it)."""
    nccl = nccl_module()
    if nccl is None:
        return {}
    types: dict[numpy.dtype[Any], int] = {
        numpy.dtype(numpy.float16): nccl.NCCL_FLOAT16,
        numpy.dtype(numpy.float32): nccl.NCCL_FLOAT32,
        numpy.dtype(numpy.float64): nccl.NCCL_FLOAT64,
    }
    code = getattr(nccl, "NCCL_BFLOAT16", None)
    if code is not None:
        try:
            import ml_dtypes
        except ImportError:
            return types
        types[numpy.dtype(ml_dtypes.bfloat16)] = code
    return types


def nccl_can_reduce(arrays: Iterable[RawArray]) -> bool:
    """True when NCCL can take every array as it is (known dtype, C-contiguous)."""
    types = nccl_dtypes()
    return all(a.dtype in types and a.flags.c_contiguous for a in arrays)


def nccl_dtype_code(raw: RawArray, where: str) -> int:
    """``raw``'s ``ncclDataType_t``; ``TypeError`` for a dtype NCCL lacks, ``ValueError``
    for a buffer that is not C-contiguous (NCCL would read it as packed)."""
    code = nccl_dtypes().get(raw.dtype)
    if code is None:
        raise TypeError(
            f"{where}: NCCL cannot reduce dtype {raw.dtype}; it takes "
            f"{sorted(str(t) for t in nccl_dtypes())}"
        )
    if not raw.flags.c_contiguous:
        raise ValueError(
            f"{where}: NCCL needs a C-contiguous buffer, got one of shape "
            f"{tuple(raw.shape)} with strides {tuple(raw.strides)} on GPU "
            f"{raw.device.id}"
        )
    return code


@functools.lru_cache(maxsize=None)
def _communicators(device_ids: tuple[int, ...]) -> list[Any]:
    """One communicator per GPU for a single-process group, created once per device set."""
    communicators: list[Any] = require_nccl("NCCL communicators").NcclCommunicator.initAll(
        list(device_ids)
    )
    return communicators


def require_nccl(what: str) -> ModuleType:
    """``nccl_module()`` for ``what``, which needs it: ``RuntimeError`` where it is missing."""
    nccl = nccl_module()
    if nccl is None:
        raise RuntimeError(f"{what}: NCCL is not available here (see nccl_module())")
    return nccl


def nccl_allreduce(arrays: Sequence[RawArray], devices: Sequence[Device]) -> None:
    """Sum the GPU arrays (one per device of ``devices``) in place with one NCCL group."""
    nccl, cp = require_nccl("nccl_allreduce"), _cupy.module()
    codes = [nccl_dtype_code(a, f"allreduce on {d}") for a, d in zip(arrays, devices)]
    comms = _communicators(tuple(d.device_id for d in devices))
    # One group so NCCL launches the per-GPU parts together (separate calls would
    # deadlock: each waits for the others).
    nccl.groupStart()
    try:
        for comm, a, code, device in zip(comms, arrays, codes, devices):
            with cp.cuda.Device(device.device_id):
                comm.allReduce(
                    a.data.ptr,
                    a.data.ptr,
                    a.size,
                    code,
                    nccl.NCCL_SUM,
                    cp.cuda.get_current_stream().ptr,
                )
    finally:
        nccl.groupEnd()
