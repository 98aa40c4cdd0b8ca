"""Parameter replicas that other threads read whole while a Trainer writes them.

``replica_lock`` is held by whoever writes a Parameter's replicas as a unit (a Trainer's
``allreduce_grads``/``update``, ``Parameter.set_data``) and by the copying reads of a
``Replica`` (``asnumpy``, ``copyto``, ``copy``, ``astype``, ``to_device``, and what builds
on them: ``item``, ``tolist``, ``numpy.asarray``), and by ``save_parameters`` /
``Trainer.save_states`` for the whole of a save. A single-threaded program takes it once
or twice per step, uncontended; ``Parameter.data()`` and the arithmetic on a replica do
not take it at all. See the note on concurrent reads in ``gluonlite.gluon.parameter``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy

from ._typing import DTypeLike
from .device import Device
from .ndarray import ndarray

__all__ = ["Replica", "replica_lock"]

# One lock for every parameter: a step writes many parameters and a checkpoint reads them
# all, and both must see one step; re-entrant because a save reads replicas while holding it.
replica_lock = threading.RLock()


class Replica(ndarray):
    """A Parameter's data or gradient replica: an ``mx.np.ndarray`` whose copying reads
    wait for a write in progress, so they see one whole version."""

    __slots__ = ()

    def asnumpy(self) -> numpy.ndarray:
        with replica_lock:
            return super().asnumpy()

    def copyto(self, other: Any) -> ndarray:
        with replica_lock:
            return super().copyto(other)

    def copy(self) -> ndarray:
        with replica_lock:
            return super().copy()

    def astype(self, dtype: DTypeLike, copy: bool = True) -> ndarray:
        with replica_lock:
            return super().astype(dtype, copy)

    def to_device(self, device: Device) -> ndarray:
        with replica_lock:
            return super().to_device(device)
