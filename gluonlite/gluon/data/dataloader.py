"""``DataLoader``: batches from a dataset, loaded by worker processes in parallel.

With ``num_workers > 0`` a pool of worker processes (forked, so the dataset is not pickled)
each builds whole batches: reads the samples, applies the lazy transforms, batchifies. The
main process keeps ``prefetch`` batches in flight and yields them in sampler order. The pool
lives as long as the loader; an iteration that ends early for any reason (an exception in a
worker or in the loop body, Ctrl-C, ``break``) terminates it, and the next iteration starts a
fresh one, so no worker outlives an error.

>>> import numpy
>>> import gluonlite as mx
>>> ds = mx.gluon.data.ArrayDataset(numpy.arange(10).reshape(5, 2), numpy.arange(5))
>>> [(x.shape, y.tolist()) for x, y in mx.gluon.data.DataLoader(ds, batch_size=2)]
[((2, 2), [0, 1]), ((2, 2), [2, 3]), ((1, 2), [4])]
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.pool
import numbers
import os
import random
import signal
import sys
import threading
import weakref

import numpy

from ... import _backend
from ...device import num_gpus
from ...ndarray import ndarray
from .batchify import default_batchify_fn
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _check_count
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DataLoader", "default_batchify_fn"]

# The worker process's dataset and batchify function, set once by the pool initializer.
_worker_dataset: Any = None
_worker_batchify: Any = None


def _worker_init(dataset: Any, batchify_fn: Callable[..., Any] | None, seed: int) -> None:
    global _worker_dataset, _worker_batchify
    _worker_dataset, _worker_batchify = dataset, batchify_fn
    # Ctrl-C goes to the whole process group: the parent handles it and terminates the pool;
    # workers ignoring it keeps their tracebacks off the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Forked workers inherit one NumPy and one Python random state: give each its own
    # streams so random augmentations differ between workers.
    numpy.random.seed((seed + os.getpid()) % (2**32))
    random.seed(seed + os.getpid())


def _worker_fn(indices: Any) -> Any:
    return _worker_batchify([_worker_dataset[i] for i in indices])


def _thread_fn(dataset: Any, batchify_fn: Callable[..., Any], indices: Any) -> Any:
    return batchify_fn([dataset[i] for i in indices])


def _check_int(name: str, value: Any, minimum: int) -> int:
    return _check_count("DataLoader", name, value, minimum)


def _pinned(batch: Any, device_id: int) -> Any:
    """``batch`` with each host array (an ``mx.np`` array on a CPU, or a NumPy array) copied
    into page-locked memory of CuPy's pinned pool, through tuples, lists and dicts; other
    values as they are."""
    if type(batch) is ndarray and batch.device.device_type == "cpu":
        return ndarray(_pinned(batch._data, device_id), batch.device)
    if type(batch) is numpy.ndarray:
        host = _backend.pinned_empty(batch.shape, batch.dtype, device_id)
        host[...] = batch
        return host
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_pinned(b, device_id) for b in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_pinned(b, device_id) for b in batch)
    if isinstance(batch, dict):
        return {k: _pinned(v, device_id) for k, v in batch.items()}
    return batch


class DataLoader:
    """Load ``dataset`` in mini-batches (MXNet 2's signature).

    Args:
        dataset: anything with ``__getitem__`` and ``__len__``.
        batch_size: samples per batch (unless ``batch_sampler`` is given).
        shuffle: draw samples in a random order (exclusive with ``sampler``).
        sampler: yields sample indices (default sequential or random).
        last_batch: ``'keep'`` (default), ``'discard'`` or ``'rollover'``.
        batch_sampler: yields lists of indices; excludes batch_size, shuffle, sampler and
            last_batch.
        batchify_fn: list of samples -> batch (default: stack every field into an
            ``mx.np`` array).
        num_workers: worker processes (0: load in the calling process).
        pin_memory: when a GPU is present, each batch's host arrays are placed in page-locked
            (pinned) memory from CuPy's pinned memory pool (MXNet's ``cpu_pinned``), so
            that the following copy to a GPU (``to_device``, ``split_and_load``) is queued
            on the GPU's stream without blocking the host. The batches stay ``cpu(0)``
            arrays. Without a GPU it changes nothing (as in MXNet's CPU build). As with
            any asynchronous copy, do not write into a pinned batch on the host before
            the GPU has read it (``mx.npx.waitall()``); gluonlite itself never does.
        pin_device_id: the GPU current while the pinned memory is allocated (MXNet's
            ``cpu_pinned(pin_device_id)``); an id below ``mx.num_gpus()``.
        prefetch: batches in flight with workers (default ``2 * num_workers``, at least 1).
        thread_pool: use threads instead of processes (for datasets that cannot fork).
        timeout: seconds to wait for one batch from the workers before ``TimeoutError``.
    """

    _pin_memory: bool
    _pin_device_id: int
    _pin: bool

    _batchify_fn: Callable[..., Any]
    _thread_pool: bool
    _timeout: float

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = None,
        shuffle: bool = False,
        sampler: Any = None,
        last_batch: str | None = None,
        batch_sampler: Any = None,
        batchify_fn: Callable[..., Any] | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        pin_device_id: int = 0,
        prefetch: int | None = None,
        thread_pool: bool = False,
        timeout: float = 120,
        try_nopython: bool | None = None,
    ) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(
                f"DataLoader: dataset must support indexing and len(), got {type(dataset).__name__}"
            )
        self._dataset = dataset
        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("DataLoader: batch_size must be given unless batch_sampler is")
            batch_size = _check_int("batch_size", batch_size, 1)
            if sampler is None:
                sampler = (
                    RandomSampler(len(dataset)) if shuffle else SequentialSampler(len(dataset))
                )
            elif shuffle:
                raise ValueError("DataLoader: shuffle must not be given together with sampler")
            if last_batch is not None and last_batch not in ("keep", "discard", "rollover"):
                raise ValueError(
                    f"DataLoader: last_batch must be 'keep', 'discard' or "
                    f"'rollover', got {last_batch!r}"
                )
            batch_sampler = BatchSampler(sampler, batch_size, last_batch or "keep")
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise ValueError(
                "DataLoader: batch_size, shuffle, sampler and last_batch must "
                "not be given together with batch_sampler"
            )
        self._batch_sampler = batch_sampler
        self._num_workers = _check_int("num_workers", num_workers, 0)
        self._prefetch = max(
            1,
            _check_int("prefetch", prefetch, 0) if prefetch is not None else 2 * self._num_workers,
        )
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout <= 0:
            raise ValueError(
                f"DataLoader: timeout must be a positive number of seconds, got {timeout!r}"
            )
        if batchify_fn is not None and not callable(batchify_fn):
            raise TypeError(
                f"DataLoader: batchify_fn must be callable, got {type(batchify_fn).__name__}"
            )
        self._batchify_fn = batchify_fn or default_batchify_fn
        self._thread_pool, self._timeout = thread_pool, timeout
        if (
            isinstance(pin_device_id, (bool, numpy.bool_))
            or not isinstance(pin_device_id, (int, numpy.integer))
            or pin_device_id < 0
        ):
            raise TypeError(
                f"DataLoader: pin_device_id must be a GPU id (an int >= 0), got {pin_device_id!r}"
            )
        gpus = num_gpus() if pin_memory else 0
        if gpus and pin_device_id >= gpus:
            raise ValueError(
                f"DataLoader: pin_device_id={pin_device_id}, but there are only "
                f"{gpus} GPUs (gpu(0)..gpu({gpus - 1}))"
            )
        self._pin_memory, self._pin_device_id = bool(pin_memory), int(pin_device_id)
        self._pin = self._pin_memory and gpus > 0  # without a GPU: nothing to pin for
        self._pool: Any = None
        self._finalizer: Any = None

    def __len__(self) -> int:
        return len(self._batch_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self._num_workers == 0:
            return self._iter_here()
        return self._iter_workers()

    def _iter_here(self) -> Iterator[Any]:
        for indices in self._batch_sampler:
            yield self._ready(self._batchify_fn([self._dataset[i] for i in indices]))

    def _ready(self, batch: Any) -> Any:
        """The batch as the loop gets it: in pinned memory with ``pin_memory`` (in this
        process: CUDA memory registered in a worker would be the worker's)."""
        return _pinned(batch, self._pin_device_id) if self._pin else batch

    # ----------------------------------------------------------------- workers
    def _start_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._thread_pool:
            pool: Any = multiprocessing.pool.ThreadPool(self._num_workers)
        else:
            method = (
                "fork"
                if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"
                else "spawn"
            )
            ctx = multiprocessing.get_context(method)
            seed = int(numpy.random.randint(0, 2**31))
            pool = ctx.Pool(
                self._num_workers,
                initializer=_worker_init,
                initargs=(self._dataset, self._batchify_fn, seed),
            )
        self._pool = pool
        # Terminates the workers when the loader is garbage-collected or at exit.
        self._finalizer = weakref.finalize(self, _terminate, pool, self._thread_pool)
        return pool

    def _shutdown(self) -> None:
        """Terminate the workers now (bounded: SIGTERM, then join)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._finalizer = None

    def _submit(self, pool: Any, indices: Any) -> Any:
        if self._thread_pool:
            return pool.apply_async(_thread_fn, (self._dataset, self._batchify_fn, indices))
        return pool.apply_async(_worker_fn, (indices,))

    def _iter_workers(self) -> Iterator[Any]:
        pool = self._start_pool()
        batches = iter(self._batch_sampler)
        pending: collections.deque[Any] = collections.deque()
        completed = False
        try:
            for indices in batches:
                pending.append(self._submit(pool, indices))
                if len(pending) >= self._prefetch:
                    break
            while pending:
                result = pending.popleft()
                for indices in batches:  # refill the window before waiting
                    pending.append(self._submit(pool, indices))
                    break
                try:
                    batch = result.get(self._timeout)
                except multiprocessing.TimeoutError:
                    raise TimeoutError(
                        f"DataLoader: no batch from the {self._num_workers} "
                        f"workers within timeout={self._timeout}s; raise "
                        f"timeout for slow datasets"
                    ) from None
                yield self._ready(batch)
            completed = True
        finally:
            if not completed:
                self._shutdown()


def _terminate(pool: Any, threads: bool) -> None:
    if threads:
        # A thread cannot be killed: one stuck in a dataset would block terminate() until
        # it returns, so the thread pool is wound down in the background instead.
        threading.Thread(target=pool.terminate, daemon=True).start()
        return
    pool.terminate()
    pool.join()
