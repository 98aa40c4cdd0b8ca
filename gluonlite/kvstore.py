"""Gradient aggregation across processes: MXNet's ``kvstore`` names on MPI (and NCCL).

``create('device')`` (or ``'local'``) is the single-process store: nothing to exchange
between processes, the Trainer sums replicas itself. ``create('dist_sync')`` (also
``'dist_sync_device'``, ``'dist_device_sync'``, ``'horovod'``) runs one process per rank under
``mpiexec``: gradients are summed over all ranks, initial parameters are broadcast from rank
0, so every replica in every process is identical after each step.

Arithmetic (as in MXNet's dist_sync): gradients are *summed* over ranks, and
``Trainer.step(batch_size)`` divides by ``batch_size``, so pass the global batch size (the
sum of all ranks' batches) to get the same update as a single process seeing all the data.

Collectives never hang forever: each waits at most ``timeout`` seconds (the environment
variable ``MXNET_KVSTORE_TIMEOUT``, in seconds, or 120 s by default; set it higher for steps
that take long between collectives) and then raises ``TimeoutError`` saying which operation
and rank; ``abort(message)`` ends every rank at once when one of them fails. A rank that
ends early without an error (``os._exit``, a signal) is what a bare ``mpiexec`` may report
as success: launch with ``python -m gluonlite.distributed.run -n N script.py``, which names
that rank and fails the job.

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

from . import _backend, _collective
from collections.abc import Callable, Sequence
from typing import Any
from ._typing import RawArray

__all__ = ["KVStore", "MPIKVStore", "create", "process_store", "DIST_NAMES"]

DIST_NAMES = ("dist_sync", "dist_sync_device", "dist_device_sync", "horovod")
_LOCAL_NAMES = ("device", "local")


class KVStore:
    """The single-process store: one worker, nothing to exchange."""

    def __init__(self, name: str = "device") -> None:
        self.type = name

    @property
    def rank(self) -> int:
        return 0

    @property
    def num_workers(self) -> int:
        return 1

    def allreduce_(
        self, arrays: Sequence[RawArray], names: Sequence[str | None] | None = None
    ) -> None:
        """Sum each raw array over all processes, in place (nothing to do here)."""

    def allreduce_rows(
        self, indices: RawArray, values: RawArray, shape: tuple[int, ...], name: str | None = None
    ) -> tuple[RawArray, RawArray]:
        """Sum a row-sparse gradient (sorted unique ``indices``, ``values [k, ...]``) over
        all processes; returns ``(indices, values)`` for the union of the rows."""
        return indices, values

    def broadcast_(
        self, arrays: Sequence[RawArray], root: int = 0, names: Sequence[str | None] | None = None
    ) -> None:
        """Overwrite each raw array with rank ``root``'s values, in place (nothing to do)."""

    def allgather_bytes(self, data: bytes, what: str = "allgather") -> list[bytes]:
        """Every rank's ``data``, in rank order (here: this process's only)."""
        return [bytes(data)]

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

    def __init__(self, name: str = "dist_sync", timeout: float | None = None) -> None:
        super().__init__(name)
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                f"kvstore={name!r} needs mpi4py and an MPI library: pip install mpi4py mpich "
                f"(then launch with mpiexec -n N python script.py)"
            ) from e
        self._mpi = MPI
        # A private communicator, so user code on COMM_WORLD cannot interleave with ours.
        self._comm = MPI.COMM_WORLD.Dup()
        self.timeout = float(
            os.environ.get("MXNET_KVSTORE_TIMEOUT", 120.0) if timeout is None else timeout
        )
        self._nccl: dict[int, Any] = {}  # device id -> NcclCommunicator
        global _PROCESS_STORE
        if _PROCESS_STORE is None:
            _PROCESS_STORE = self

    @property
    def rank(self) -> int:
        rank: int = self._comm.Get_rank()
        return rank

    @property
    def num_workers(self) -> int:
        size: int = self._comm.Get_size()
        return size

    def _wait(self, request: Any, what: str) -> None:
        """Poll a non-blocking collective until done or ``timeout`` (then TimeoutError)."""
        start = time.monotonic()
        deadline = start + self.timeout
        pause = 1e-5
        while not request.Test():
            now = time.monotonic()
            if now - start < 2e-3:
                continue  # most collectives finish within microseconds: spin first
            if now > deadline:
                raise TimeoutError(
                    f"kvstore {self.type!r}: {what} on rank {self.rank} of "
                    f"{self.num_workers} did not complete within {self.timeout:.0f} s "
                    f"(MXNET_KVSTORE_TIMEOUT); another rank probably died or stopped "
                    f"calling Trainer.step (python -m gluonlite.distributed.run names a "
                    f"rank that ends early)"
                )
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def _host_collective(
        self,
        arrays: Sequence[RawArray],
        names: Sequence[str | None] | None,
        what: str,
        start: Callable[[Any], Any],
    ) -> None:
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

    def allreduce_(
        self, arrays: Sequence[RawArray], names: Sequence[str | None] | None = None
    ) -> None:
        if self.num_workers == 1:
            return
        gpu = [a for a in arrays if _backend.is_gpu_array(a)]
        if gpu and self._nccl_available():
            self._nccl_allreduce(gpu)
            arrays = [a for a in arrays if not _backend.is_gpu_array(a)]
        mpi = self._mpi
        self._host_collective(
            arrays,
            names,
            "allreduce",
            lambda buf: self._comm.Iallreduce(mpi.IN_PLACE, buf, op=mpi.SUM),
        )

    def allreduce_rows(
        self, indices: RawArray, values: RawArray, shape: tuple[int, ...], name: str | None = None
    ) -> tuple[RawArray, RawArray]:
        if self.num_workers == 1:
            return indices, values
        gpu = _backend.is_gpu_array(values)
        xp = _backend.cupy() if gpu else numpy
        host_ids = _backend.cupy().asnumpy(indices) if gpu else numpy.asarray(indices)
        # Rows stay sparse across processes too: agree on the union of the row ids (small),
        # then sum one dense block of just those rows.
        lengths = numpy.zeros(self.num_workers, dtype=numpy.int64)
        self._wait(
            self._comm.Iallgather(numpy.array([host_ids.size], dtype=numpy.int64), lengths),
            f"row-id count exchange of {name}",
        )
        every = numpy.empty(int(lengths.sum()), dtype=numpy.int64)
        self._wait(
            self._comm.Iallgatherv(host_ids.astype(numpy.int64), (every, lengths)),
            f"row-id exchange of {name}",
        )
        union = numpy.unique(every)
        block = numpy.zeros((union.size,) + tuple(shape[1:]), dtype=values.dtype)
        block[numpy.searchsorted(union, host_ids)] = (
            _backend.cupy().asnumpy(values) if gpu else values
        )
        self.allreduce_([block], names=[name])
        if not gpu:
            return union, block
        with xp.cuda.Device(values.device.id):  # the values' device, not the current one
            return xp.asarray(union), xp.asarray(block)

    def allgather_bytes(self, data: bytes, what: str = "allgather") -> list[bytes]:
        # Non-blocking like every collective here, so a missing rank is a TimeoutError.
        mine = numpy.frombuffer(bytes(data), dtype=numpy.uint8)
        lengths = numpy.zeros(self.num_workers, dtype=numpy.int64)
        self._wait(
            self._comm.Iallgather(numpy.array([mine.size], dtype=numpy.int64), lengths),
            f"{what} (sizes)",
        )
        every = numpy.empty(int(lengths.sum()), dtype=numpy.uint8)
        self._wait(self._comm.Iallgatherv(mine, (every, lengths)), what)
        ends = numpy.cumsum(lengths)
        return [every[end - n : end].tobytes() for n, end in zip(lengths, ends)]

    def broadcast_(
        self, arrays: Sequence[RawArray], root: int = 0, names: Sequence[str | None] | None = None
    ) -> None:
        if self.num_workers == 1:
            return
        self._host_collective(
            arrays, names, "broadcast", lambda buf: self._comm.Ibcast(buf, root=root)
        )

    def barrier(self) -> None:
        self._wait(self._comm.Ibarrier(), "barrier")

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` and end every rank (MPI_Abort), so none waits on a dead peer."""
        print(f"[rank {self.rank}] {message}", file=sys.stderr, flush=True)
        self._comm.Abort(code)

    # ------------------------------------------------------------------ NCCL
    def _nccl_available(self) -> bool:
        return _collective.nccl_module() is not None

    def _nccl_comm(self, device_id: int) -> Any:
        if device_id not in self._nccl:
            nccl = _collective.require_nccl(f"kvstore {self.type!r}")
            uid = nccl.get_unique_id() if self.rank == 0 else None
            uid = self._comm.bcast(uid, root=0)
            with _backend.cupy().cuda.Device(device_id):
                self._nccl[device_id] = nccl.NcclCommunicator(self.num_workers, uid, self.rank)
        return self._nccl[device_id]

    def _nccl_allreduce(self, arrays: Sequence[RawArray]) -> None:
        nccl, cp = _collective.require_nccl(f"kvstore {self.type!r} allreduce"), _backend.cupy()
        for raw in arrays:
            code = _collective.nccl_dtype_code(raw, f"kvstore {self.type!r} allreduce")
            comm = self._nccl_comm(raw.device.id)
            with cp.cuda.Device(raw.device.id):
                stream = cp.cuda.get_current_stream()
                comm.allReduce(
                    raw.data.ptr, raw.data.ptr, raw.size, code, nccl.NCCL_SUM, stream.ptr
                )
                stream.synchronize()


_PROCESS_STORE: MPIKVStore | None = None


def process_store() -> MPIKVStore | None:
    """The first distributed store this process created (by ``Trainer(kvstore='dist_sync')``
    or ``create('dist_sync')``), or None when it created none.

    Collectives that are not a Trainer's (``SyncBatchNorm``'s statistics across ranks) run
    on it, so every rank finds the same group without being handed the Trainer's store.
    """
    return _PROCESS_STORE


def create(name: str | KVStore = "device") -> KVStore:
    """A store by MXNet's name: ``'device'``/``'local'`` or ``'dist_sync'``/``'horovod'``."""
    if isinstance(name, KVStore):
        return name
    if name in _LOCAL_NAMES:
        return KVStore(name)
    if name in DIST_NAMES:
        return MPIKVStore(name)
    raise ValueError(f"Unknown kvstore {name!r}; expected one of {_LOCAL_NAMES + DIST_NAMES}")
