"""The array backends: NumPy for ``cpu(i)``, CuPy for ``gpu(i)``, and moves between devices.

Every op fetches ``xp = backend.xp(device)`` once so that one body serves both backends.
CuPy is imported lazily, on the first use of a GPU, never at ``import gluonlite``.
"""

from __future__ import annotations

import contextlib
import functools
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import numpy

from . import _cupy
from ._typing import DTypeLike, RawArray
from .device import Device, check_available

__all__ = [
    "xp",
    "cupy",
    "check_available",
    "on",
    "transfer",
    "is_gpu_array",
    "synchronize",
    "contiguous",
    "pinned_empty",
    "pinned_owner",
]


# The ``cupy`` module (real, or emulated under GLUONLITE_EMULATE_GPUS); a clear error when
# CuPy is not installed.
cupy = _cupy.module
cupyx = _cupy.cupyx
is_gpu_array = _cupy.is_array


def xp(device: Device) -> ModuleType:
    """The array module serving ``device`` (checked for availability)."""
    if device.device_type == "cpu":
        return numpy
    check_available(device)
    return cupy()


# nullcontext holds no state, so one instance serves every CPU op (ops create one per call).
_NO_CONTEXT = contextlib.nullcontext()


def on(device: Device) -> AbstractContextManager[Any]:
    """Context in which newly created arrays land on ``device`` (CuPy's current device)."""
    if device.device_type == "cpu":
        return _NO_CONTEXT
    check_available(device)
    scope: AbstractContextManager[Any] = cupy().cuda.Device(device.device_id)
    return scope


def contiguous(xp: ModuleType, raw: RawArray) -> RawArray:
    """``raw`` itself when C-contiguous, else a C-contiguous copy (NumPy or CuPy)."""
    # Checking the flag first skips a call that costs microseconds per array on CuPy.
    return raw if raw.flags.c_contiguous else xp.ascontiguousarray(raw)


def synchronize(device: Device) -> None:
    """Wait for all work queued on ``device`` (no-op on CPU)."""
    if device.device_type == "gpu":
        with on(device):
            cupy().cuda.get_current_stream().synchronize()


@functools.lru_cache(maxsize=None)
def _enable_peer_access(dst_id: int, src_id: int) -> bool:
    """Enable ``dst`` to read ``src`` directly, once per pair; False where it cannot."""
    runtime = cupy().cuda.runtime
    if not runtime.deviceCanAccessPeer(dst_id, src_id):
        return False
    with cupy().cuda.Device(dst_id):
        try:
            runtime.deviceEnablePeerAccess(src_id)
        except runtime.CUDARuntimeError as e:  # already enabled is fine
            if "PeerAccessAlreadyEnabled" not in str(e):
                raise
    return True


def transfer(raw: RawArray, src: Device, dst: Device) -> RawArray:
    """A new array on ``dst`` holding ``raw``'s values (``raw`` lives on ``src``).

    Always a copy, also between two ``cpu(i)`` (distinct devices hold distinct memory).
    GPU to GPU uses a peer-to-peer copy where the pair allows it, else goes through host
    memory. The peer copy never blocks the host; it is ordered by events (see _peer_copy).
    """
    if src.device_type == "cpu" and dst.device_type == "cpu":
        return numpy.array(raw, copy=True, order="C")
    if dst.device_type == "cpu":
        with on(src):
            return cupy().asnumpy(raw)
    if src.device_type == "cpu":
        with on(dst):
            if (
                raw.base is not None
                and raw.size
                and raw.flags.c_contiguous
                and pinned_owner(raw) is not None
            ):
                return _from_pinned(cupy(), raw)
            # Not numpy.ascontiguousarray: it makes a 0-d array 1-d.
            return cupy().asarray(numpy.asarray(raw, order="C"))
    cp = cupy()
    if src == dst:
        with on(dst):
            return raw.copy()
    with on(src):
        raw = contiguous(cp, raw)
    if not _enable_peer_access(dst.device_id, src.device_id):
        with on(src):
            host = cp.asnumpy(raw)
        with on(dst):
            return cp.asarray(host)
    with on(dst):
        out = cp.empty(raw.shape, dtype=raw.dtype)
    if raw.nbytes:
        _peer_copy(cp, out, dst, raw, src)
    return out


def pinned_empty(shape: Any, dtype: Any, device_id: int) -> numpy.ndarray[Any, Any]:
    """An uninitialised NumPy array in page-locked (pinned) host memory from CuPy's pinned
    memory pool, allocated while ``gpu(device_id)`` is current (MXNet's ``cpu_pinned``
    memory): copies from it to a GPU can run asynchronously (see ``transfer``)."""
    cp = cupy()
    dtype = numpy.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    count = int(numpy.prod(shape, dtype=numpy.int64))
    with on(Device("gpu", device_id)):
        memory = cp.cuda.alloc_pinned_memory(max(count * dtype.itemsize, 1))
    out: numpy.ndarray[Any, Any] = numpy.frombuffer(memory, dtype, count).reshape(shape)
    return out


def pinned_owner(raw: Any) -> Any:
    """The CuPy ``PinnedMemoryPointer`` whose memory NumPy array ``raw`` views, or None
    for ordinary (pageable) host memory."""
    base = raw
    while isinstance(base, numpy.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if base is None or type(base).__name__ != "PinnedMemoryPointer":
        return None  # cheap first: most host arrays own their memory
    return base if isinstance(base, cupy().cuda.PinnedMemoryPointer) else None


def _from_pinned(cp: ModuleType, raw: Any) -> RawArray:
    """``raw`` (C-contiguous, in pinned host memory) copied to the current GPU without
    blocking the host: the copy is queued on the current stream, so later work on that
    stream sees its result, and ``raw`` is held until the copy has read it (the pinned
    pool could otherwise hand the memory to the next batch while it is being read)."""
    out = cp.empty(raw.shape, dtype=raw.dtype)
    stream = cp.cuda.get_current_stream()
    out.set(raw, stream=stream)
    copied = cp.cuda.Event(disable_timing=True)
    copied.record(stream)
    _in_flight[:] = [(event, held) for event, held in _in_flight if not event.done]
    _in_flight.append((copied, raw))
    return out


# Sources of peer copies and of copies from pinned host memory still in flight, with the
# event that marks each copy done: CuPy may hand a buffer's memory to new work once its last
# reference goes, so the source is held here until the copy has read it. Pruned on every
# copy.
_in_flight: list[tuple[Any, RawArray]] = []


def _peer_copy(cp: Any, out: RawArray, dst: Device, raw: RawArray, src: Device) -> None:
    """Copy ``raw`` (C-contiguous, on ``src``) into ``out`` (on ``dst``) without a host
    synchronisation.

    The copy runs on the source's current stream, after the destination's stream has made
    ``out`` ready (an event), so it reads ``raw`` after every pending write to it and before
    anything later on that stream can reuse its memory; the destination's stream then waits
    for the copy's event, so whatever reads ``out`` there sees the copied values.
    """
    with on(dst):
        dst_stream = cp.cuda.get_current_stream()
        out_ready = cp.cuda.Event(disable_timing=True)
        out_ready.record(dst_stream)
    with on(src):
        src_stream = cp.cuda.get_current_stream()
        src_stream.wait_event(out_ready)
        cp.cuda.runtime.memcpyPeerAsync(
            out.data.ptr, dst.device_id, raw.data.ptr, src.device_id, raw.nbytes, src_stream.ptr
        )
        copied = cp.cuda.Event(disable_timing=True)
        copied.record(src_stream)
    with on(dst):
        dst_stream.wait_event(copied)
    _in_flight[:] = [(event, held) for event, held in _in_flight if not event.done]
    _in_flight.append((copied, raw))


def dtype_of(dtype: DTypeLike) -> numpy.dtype[Any]:
    """Normalise a dtype argument, accepting ``'bfloat16'`` where ml_dtypes provides it."""
    if dtype is None:
        return numpy.dtype(numpy.float32)
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as e:
            raise TypeError("bfloat16 needs the ml_dtypes package") from e
        return numpy.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return numpy.dtype(dtype)
