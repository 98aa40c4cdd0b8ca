"""The array backends: NumPy for ``cpu(i)``, CuPy for ``gpu(i)``, and moves between devices.

Every op fetches ``xp = backend.xp(device)`` once so that one body serves both backends.
CuPy is imported lazily, on the first use of a GPU, never at ``import gluonlite``.
"""
from __future__ import annotations

import contextlib
import functools

import numpy

from .device import Device, num_gpus

__all__ = ["xp", "cupy", "check_available", "on", "transfer", "is_gpu_array", "synchronize",
           "contiguous"]


def cupy():
    """The ``cupy`` module; raises a clear error when it is not installed."""
    try:
        import cupy as _cupy
    except ImportError as e:
        raise RuntimeError(
            "A GPU device was requested, but CuPy is not installed. "
            "Install gluonlite[cuda12] or gluonlite[cuda13].") from e
    return _cupy


def check_available(device: Device) -> None:
    """Raise ``RuntimeError`` unless ``device`` can be used here."""
    if device.device_type == "gpu":
        n = num_gpus()
        if device.device_id >= n:
            cupy()  # a missing CuPy is the more useful message
            plural = "GPU is" if n == 1 else "GPUs are"
            raise RuntimeError(f"{device} requested, but {n} {plural} visible")


def xp(device: Device):
    """The array module serving ``device`` (checked for availability)."""
    if device.device_type == "cpu":
        return numpy
    check_available(device)
    return cupy()


# nullcontext holds no state, so one instance serves every CPU op (ops create one per call).
_NO_CONTEXT = contextlib.nullcontext()


def on(device: Device):
    """Context in which newly created arrays land on ``device`` (CuPy's current device)."""
    if device.device_type == "cpu":
        return _NO_CONTEXT
    check_available(device)
    return cupy().cuda.Device(device.device_id)


def contiguous(xp, raw):
    """``raw`` itself when C-contiguous, else a C-contiguous copy (NumPy or CuPy)."""
    # Checking the flag first skips a call that costs microseconds per array on CuPy.
    return raw if raw.flags.c_contiguous else xp.ascontiguousarray(raw)


def is_gpu_array(raw) -> bool:
    return type(raw).__module__.startswith("cupy")


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


def transfer(raw, src: Device, dst: Device):
    """A new array on ``dst`` holding ``raw``'s values (``raw`` lives on ``src``).

    Always a copy, also between two ``cpu(i)`` (distinct devices hold distinct memory).
    GPU to GPU uses a peer-to-peer copy where the pair allows it, else goes through host
    memory.
    """
    if src.device_type == "cpu" and dst.device_type == "cpu":
        return numpy.array(raw, copy=True, order="C")
    if dst.device_type == "cpu":
        with on(src):
            return cupy().asnumpy(raw)
    if src.device_type == "cpu":
        with on(dst):
            return cupy().asarray(numpy.ascontiguousarray(raw))
    cp = cupy()
    if src == dst:
        with on(dst):
            return raw.copy()
    with on(src):
        raw = cp.ascontiguousarray(raw)
    if not _enable_peer_access(dst.device_id, src.device_id):
        with on(src):
            host = cp.asnumpy(raw)
        with on(dst):
            return cp.asarray(host)
    with on(dst):
        out = cp.empty(raw.shape, dtype=raw.dtype)
        if raw.nbytes:
            # The source device's pending writes must land before the copy reads them.
            with on(src):
                cp.cuda.get_current_stream().synchronize()
            stream = cp.cuda.get_current_stream()
            cp.cuda.runtime.memcpyPeerAsync(out.data.ptr, dst.device_id, raw.data.ptr,
                                            src.device_id, raw.nbytes, stream.ptr)
        return out


def dtype_of(dtype):
    """Normalise a dtype argument, accepting ``'bfloat16'`` where ml_dtypes provides it."""
    if dtype is None:
        return numpy.dtype(numpy.float32)
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as e:
            raise TypeError("bfloat16 needs the ml_dtypes package") from e
        return numpy.dtype(ml_dtypes.bfloat16)
    return numpy.dtype(dtype)
