"""Batchify functions: turn a list of samples into a batch of ``mx.np`` arrays.

>>> import numpy
>>> from gluonlite.gluon.data import batchify
>>> batchify.Pad(val=-1)([numpy.array([1, 2, 3]), numpy.array([4])])
array([[ 1,  2,  3],
       [ 4, -1, -1]], dtype=int64)
>>> x, y = batchify.Group(batchify.Stack(), batchify.Stack())([(1.0, 0), (2.0, 1)])
>>> x.shape, y.dtype
((2,), dtype('int64'))
"""

from __future__ import annotations

import numbers

import numpy

from ... import _backend
from ...device import cpu
from ...ndarray import ndarray
from collections.abc import Callable
from typing import Any
from ..._typing import DTypeLike, RawArray

__all__ = ["Stack", "Pad", "Group", "Tuple", "Append", "default_batchify_fn"]


def _host(x: ndarray) -> RawArray:
    """A sample field as a NumPy array (Python floats become float32, as mx.np.array)."""
    if isinstance(x, ndarray):
        return x.asnumpy()
    if isinstance(x, float):
        return numpy.float32(x)
    return numpy.asarray(x)


def _on_one_device(data: Any) -> Any:
    """The device shared by a list of mx.np arrays not on the host, else None."""
    if isinstance(data[0], ndarray) and data[0].device.device_type != "cpu":
        device = data[0].device
        if all(isinstance(d, ndarray) and d.device == device for d in data):
            return device
    return None


def _check_samples(owner: str, data: Any) -> None:
    if not isinstance(data, (list, tuple)) or not data:
        raise ValueError(
            f"{owner}: expects a non-empty list of samples, got "
            f"{type(data).__name__} of length "
            f"{len(data) if hasattr(data, '__len__') else '?'}"
        )


class Stack:
    """Stack equally shaped samples along a new first axis (arrays or numbers)."""

    def __init__(self, use_shared_mem: bool = False) -> None:
        self._use_shared_mem = use_shared_mem  # accepted for MXNet; batches are host NumPy

    def __call__(self, data: Any) -> Any:
        _check_samples("Stack", data)
        device = _on_one_device(data)
        if device is not None:
            xp = data[0]._xp
            with _backend.on(device):
                return ndarray(xp.stack([d._data for d in data]), device)
        arrays = [_host(d) for d in data]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"Stack: samples have different shapes {sorted(shapes)}; use "
                f"batchify.Pad for variable-length samples"
            )
        return ndarray(numpy.stack(arrays), cpu(0))


class Pad:
    """Pad samples with ``val`` to the largest size in every axis, then stack them.

    Args:
        val: the padding value (0 if None).
        dtype: the batch's dtype (the samples' dtype if None).
        round_to: round each padded size up to a multiple of this.
    """

    def __init__(
        self,
        val: Any = None,
        dtype: DTypeLike = None,
        round_to: int | None = None,
        use_shared_mem: bool = False,
    ) -> None:
        if val is not None and not isinstance(val, numbers.Number):
            raise TypeError(f"Pad: val must be a number, got {type(val).__name__}")
        if round_to is not None and (not isinstance(round_to, int) or round_to < 1):
            raise ValueError(f"Pad: round_to must be a positive int, got {round_to!r}")
        self._val = 0 if val is None else val
        self._dtype, self._round_to = dtype, round_to

    def __call__(self, data: Any) -> Any:
        _check_samples("Pad", data)
        arrays = [_host(d) for d in data]
        ndims = {a.ndim for a in arrays}
        if len(ndims) > 1:
            raise ValueError(f"Pad: samples have different numbers of axes {sorted(ndims)}")
        shape = [max(a.shape[i] for a in arrays) for i in range(arrays[0].ndim)]
        if self._round_to:
            shape = [-(-n // self._round_to) * self._round_to for n in shape]
        dtype = self._dtype if self._dtype is not None else numpy.result_type(*arrays)
        out = numpy.full([len(arrays)] + shape, self._val, dtype=dtype)
        for i, a in enumerate(arrays):
            out[(i,) + tuple(slice(0, n) for n in a.shape)] = a
        return ndarray(out, cpu(0))


class Append:
    """Keep the samples separate: a list of arrays, each with a new batch axis of size 1
    (``expand``)."""

    def __init__(
        self, expand: bool = True, batch_axis: int = 0, use_shared_mem: bool = False
    ) -> None:
        self._expand, self._batch_axis = expand, batch_axis

    def __call__(self, data: Any) -> Any:
        _check_samples("Append", data)
        out = []
        for d in data:
            a = _host(d)
            if self._expand:
                a = numpy.expand_dims(a, self._batch_axis)
            out.append(ndarray(a, cpu(0)))
        return out


class Group:
    """Apply ``fns[i]`` to the ``i``-th field of the samples: ``Group(Stack(), Pad())``
    batches ``(data, label)`` samples into ``(stacked data, padded labels)``."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        fns = list(fn) if isinstance(fn, (list, tuple)) else [fn]
        fns += list(args)
        for f in fns:
            if not callable(f):
                raise TypeError(
                    f"Group: every batchify function must be callable, got {type(f).__name__}"
                )
        self._fns = fns

    def __call__(self, data: Any) -> Any:
        _check_samples("Group", data)
        if len(data[0]) != len(self._fns):
            raise ValueError(
                f"Group: samples have {len(data[0])} fields but {len(self._fns)} "
                f"batchify functions were given"
            )
        return tuple(fn([sample[i] for sample in data]) for i, fn in enumerate(self._fns))


Tuple = Group


def default_batchify_fn(data: Any) -> Any:
    """Stack every field: tuples of samples become tuples of batches."""
    if isinstance(data[0], (tuple, list)):
        return tuple(default_batchify_fn(list(field)) for field in zip(*data))
    return Stack()(data)
