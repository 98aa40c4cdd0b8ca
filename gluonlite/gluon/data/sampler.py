"""Samplers: iterables of dataset indices, and of batches of indices.

>>> from gluonlite.gluon.data import BatchSampler, SequentialSampler
>>> list(BatchSampler(SequentialSampler(7), 3, 'keep'))
[[0, 1, 2], [3, 4, 5], [6]]
>>> list(BatchSampler(SequentialSampler(7), 3, 'discard'))
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import numbers

import numpy
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "FilterSampler",
    "BatchSampler",
    "IntervalSampler",
]


def _check_count(owner: str, name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


class Sampler:
    """Base class: ``__iter__`` yields indices, ``__len__`` counts them."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


class SequentialSampler(Sampler):
    """The indices ``start`` to ``start + length - 1``, in order."""

    def __init__(self, length: int, start: int = 0) -> None:
        self._length = _check_count("SequentialSampler", "length", length)
        self._start = _check_count("SequentialSampler", "start", start)

    def __iter__(self) -> Iterator[Any]:
        return iter(range(self._start, self._start + self._length))

    def __len__(self) -> int:
        return self._length


class RandomSampler(Sampler):
    """The indices ``0`` to ``length-1`` in a fresh random order each epoch (NumPy's global
    generator)."""

    def __init__(self, length: int) -> None:
        self._length = _check_count("RandomSampler", "length", length)

    def __iter__(self) -> Iterator[Any]:
        return iter(numpy.random.permutation(self._length).tolist())

    def __len__(self) -> int:
        return self._length


class FilterSampler(Sampler):
    """The indices of the samples of ``dataset`` for which ``fn(sample)`` is true."""

    def __init__(self, fn: Callable[..., Any], dataset: Any) -> None:
        self._indices = [i for i in range(len(dataset)) if fn(dataset[i])]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class IntervalSampler(Sampler):
    """Every ``k``-th index from 0 (``0, k, 2k``, and on), then (with ``rollover``) from 1, and
    so on up to ``k-1``."""

    def __init__(self, length: int, interval: int, rollover: bool = True) -> None:
        self._length = _check_count("IntervalSampler", "length", length)
        self._interval = _check_count("IntervalSampler", "interval", interval, 1)
        if self._interval > max(self._length, 1):
            raise ValueError(f"IntervalSampler: interval {interval} is larger than length {length}")
        self._rollover = rollover

    def __iter__(self) -> Iterator[Any]:
        for start in range(self._interval if self._rollover else 1):
            yield from range(start, self._length, self._interval)

    def __len__(self) -> int:
        if self._rollover:
            return self._length
        return len(range(0, self._length, self._interval))


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``.

    ``last_batch``: ``'keep'`` yields a short last batch, ``'discard'`` drops it,
    ``'rollover'`` carries its indices into the first batch of the next epoch.
    """

    def __init__(self, sampler: Any, batch_size: int, last_batch: str = "keep") -> None:
        self._batch_size = _check_count("BatchSampler", "batch_size", batch_size, 1)
        if last_batch not in ("keep", "discard", "rollover"):
            raise ValueError(
                f"BatchSampler: last_batch must be 'keep', 'discard' or "
                f"'rollover', got {last_batch!r}"
            )
        self._sampler, self._last_batch = sampler, last_batch
        self._prev: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        batch, self._prev = self._prev, []
        for i in self._sampler:
            batch.append(i)
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == "keep":
                yield batch
            elif self._last_batch == "rollover":
                self._prev = batch

    def __len__(self) -> int:
        n = len(self._sampler)
        if self._last_batch == "keep":
            return (n + self._batch_size - 1) // self._batch_size
        if self._last_batch == "discard":
            return n // self._batch_size
        return (len(self._prev) + n) // self._batch_size
