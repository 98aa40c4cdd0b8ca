"""Gradient aggregation across processes: MXNet's ``kvstore`` names on MPI (and NCCL).

``create('device')`` (or ``'local'``) is the single-process store: nothing to exchange
between processes, the Trainer sums replicas itself. ``create('dist_sync')`` (also
``'dist_sync_device'``, ``'dist_device_sync'``, ``'horovod'``) runs one process per rank under
``mpiexec``: gradients are summed over all ranks, initial parameters are broadcast from rank
0, so every replica in every process is identical after each step.

Arithmetic (as in MXNet's dist_sync): gradients are *summed* over ranks, and
``Trainer.step(batch_size)`` divides by ``batch_size``, so pass the global batch size (the
sum of all ranks' batches) to get the same update as a single process seeing all the data.

Collectives never hang forever: each waits at most ``timeout`` seconds (``MXNET_KVSTORE_
TIMEOUT`` or 120 s by default) and then raises ``TimeoutError`` saying which operation and
rank; ``abort(message)`` ends every rank at once when one of them fails.

>>> import gluonlite as mx
>>> kv = mx.kv.create('device')
>>> (kv.type, kv.rank, kv.num_workers)
('device', 0, 1)
"""
from __future__ import annotations

import os
import sys
import time

import numpy

from . import _backend

__all__ = ["KVStore", "MPIKVStore", "create"]

_DIST_NAMES = ("dist_sync", "dist_sync_device", "dist_device_sync", "horovod")
_LOCAL_NAMES = ("device", "local")


class KVStore:
    """The single-process store: one worker, nothing to exchange."""

    def __init__(self, name: str = "device"):
        self.type = name

    @property
    def rank(self) -> int:
        return 0

    @property
    def num_workers(self) -> int:
        return 1

    def allreduce_(self, arrays, names=None) -> None:
        """Sum each raw array over all processes, in place (nothing to do here)."""

    def broadcast_(self, arrays, root: int = 0, names=None) -> None:
        """Overwrite each raw array with rank ``root``'s values, in place (nothing to do)."""

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for)."""

    def abort(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(code)


class MPIKVStore(KVStore):
    """Synchronous data-parallel store over MPI (``mpi4py``); NCCL for CuPy arrays.

    CPU (NumPy) buffers go through MPI's own Allreduce/Bcast. GPU (CuPy) buffers use one NCCL
    communicator per process, created on first use with the unique id sent over MPI; where
    CuPy has no NCCL they are staged through host memory and MPI.
    """

    def __init__(self, name: str = "dist_sync", timeout: float | None = None):
        super().__init__(name)
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                f"kvstore={name!r} needs mpi4py and an MPI library: pip install mpi4py mpich "
                f"(then launch with mpiexec -n N python script.py)") from e
        self._mpi = MPI
        # A private communicator, so user code on COMM_WORLD cannot interleave with ours.
        self._comm = MPI.COMM_WORLD.Dup()
        self.timeout = float(os.environ.get("MXNET_KVSTORE_TIMEOUT", 120.0)
                             if timeout is None else timeout)
        self._nccl = {}  # device id -> NcclCommunicator

    @property
    def rank(self) -> int:
        return self._comm.Get_rank()

    @property
    def num_workers(self) -> int:
        return self._comm.Get_size()

    def _wait(self, request, what: str) -> None:
        """Poll a non-blocking collective until done or ``timeout`` (then TimeoutError)."""
        deadline = time.monotonic() + self.timeout
        pause = 1e-5
        while not request.Test():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kvstore {self.type!r}: {what} on rank {self.rank} of "
                    f"{self.num_workers} did not complete within {self.timeout:.0f} s; "
                    f"another rank probably died or stopped calling Trainer.step")
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def _host_collective(self, arrays, names, what, start):
        """Run ``start(buffer)`` (a non-blocking MPI call) on host copies of ``arrays``."""
        for i, raw in enumerate(arrays):
            label = f"{what} of {names[i] if names else f'array {i}'}"
            if _backend.is_gpu_array(raw):
                cp = _backend.cupy()
                with cp.cuda.Device(raw.device.id):
                    host = cp.asnumpy(raw)
                    self._wait(start(host), label)
                    raw[...] = cp.asarray(host)
            else:
                if not raw.flags.c_contiguous:
                    raise ValueError(f"kvstore: {label} needs a C-contiguous array")
                self._wait(start(raw), label)

    def allreduce_(self, arrays, names=None) -> None:
        if self.num_workers == 1:
            return
        gpu = [a for a in arrays if _backend.is_gpu_array(a)]
        if gpu and self._nccl_available():
            self._nccl_allreduce(gpu)
            arrays = [a for a in arrays if not _backend.is_gpu_array(a)]
        mpi = self._mpi
        self._host_collective(
            arrays, names, "allreduce",
            lambda buf: self._comm.Iallreduce(mpi.IN_PLACE, buf, op=mpi.SUM))

    def broadcast_(self, arrays, root: int = 0, names=None) -> None:
        if self.num_workers == 1:
            return
        self._host_collective(arrays, names, "broadcast",
                              lambda buf: self._comm.Ibcast(buf, root=root))

    def barrier(self) -> None:
        self._wait(self._comm.Ibarrier(), "barrier")

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` and end every rank (MPI_Abort), so none waits on a dead peer."""
        print(f"[rank {self.rank}] {message}", file=sys.stderr, flush=True)
        self._comm.Abort(code)

    # ------------------------------------------------------------------ NCCL
    def _nccl_available(self) -> bool:
        try:
            from cupy.cuda import nccl
            return nccl.available
        except Exception:  # noqa: BLE001 - any failure means "use the host path"
            return False

    def _nccl_comm(self, device_id: int):
        if device_id not in self._nccl:
            from cupy.cuda import nccl
            uid = nccl.get_unique_id() if self.rank == 0 else None
            uid = self._comm.bcast(uid, root=0)
            with _backend.cupy().cuda.Device(device_id):
                self._nccl[device_id] = nccl.NcclCommunicator(self.num_workers, uid,
                                                              self.rank)
        return self._nccl[device_id]

    def _nccl_allreduce(self, arrays) -> None:
        from cupy.cuda import nccl
        cp = _backend.cupy()
        types = {numpy.dtype(numpy.float16): nccl.NCCL_FLOAT16,
                 numpy.dtype(numpy.float32): nccl.NCCL_FLOAT32,
                 numpy.dtype(numpy.float64): nccl.NCCL_FLOAT64,
                 numpy.dtype(numpy.int32): nccl.NCCL_INT32,
                 numpy.dtype(numpy.int64): nccl.NCCL_INT64}
        for raw in arrays:
            if raw.dtype not in types:
                raise TypeError(f"kvstore: NCCL cannot reduce dtype {raw.dtype}")
            device_id = raw.device.id
            comm = self._nccl_comm(device_id)
            with cp.cuda.Device(device_id):
                stream = cp.cuda.get_current_stream()
                comm.allReduce(raw.data.ptr, raw.data.ptr, raw.size, types[raw.dtype],
                               nccl.NCCL_SUM, stream.ptr)
                stream.synchronize()


def create(name: str = "device") -> KVStore:
    """A store by MXNet's name: ``'device'``/``'local'`` or ``'dist_sync'``/``'horovod'``."""
    if isinstance(name, KVStore):
        return name
    if name in _LOCAL_NAMES:
        return KVStore(name)
    if name in _DIST_NAMES:
        return MPIKVStore(name)
    raise ValueError(f"Unknown kvstore {name!r}; expected one of "
                     f"{_LOCAL_NAMES + _DIST_NAMES}")
