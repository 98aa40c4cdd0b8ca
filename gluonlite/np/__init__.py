"""``mx.np``: NumPy-style functions on gluonlite arrays, differentiable where it makes sense.

>>> import gluonlite as mx
>>> x = mx.np.arange(4, device=mx.cpu(1))
>>> mx.np.exp(x * 0).sum().item()
4.0
"""
from __future__ import annotations

import numpy as _numpy

from .. import _backend, random
from ..autograd import record_op
from ..ndarray import (ndarray, _device_mismatch, arange, array, empty, from_dlpack,
                      full, full_like, matmul, ones, ones_like, zeros, zeros_like)

__all__ = ["ndarray", "array", "zeros", "ones", "full", "empty", "arange", "zeros_like",
           "ones_like", "full_like", "from_dlpack", "random", "exp", "log", "tanh", "sqrt",
           "square", "abs", "sign", "maximum", "minimum", "matmul", "dot", "sum", "mean",
           "max", "min", "reshape", "transpose", "concatenate", "stack", "where", "argmax",
           "clip", "expand_dims", "float16", "float32", "float64", "int32", "int64", "uint8",
           "bool_"]

float16, float32, float64 = _numpy.float16, _numpy.float32, _numpy.float64
int32, int64, uint8, bool_ = _numpy.int32, _numpy.int64, _numpy.uint8, _numpy.bool_


def _unary(x: ndarray, forward, backward) -> ndarray:
    """Apply ``forward(xp, raw)``; ``backward(xp, g, x_raw, y_raw)`` gives dL/dx."""
    xp = x._xp
    with _backend.on(x.device):
        y = forward(xp, x._data)
    out = ndarray(y, x.device)
    return record_op(out, (x,), lambda g: (backward(xp, g, x._data, y),))


def exp(x):
    return _unary(x, lambda xp, a: xp.exp(a), lambda xp, g, a, y: g * y)


def log(x):
    return _unary(x, lambda xp, a: xp.log(a), lambda xp, g, a, y: g / a)


def tanh(x):
    return _unary(x, lambda xp, a: xp.tanh(a), lambda xp, g, a, y: g * (1 - y * y))


def sqrt(x):
    return _unary(x, lambda xp, a: xp.sqrt(a), lambda xp, g, a, y: g / (2 * y))


def square(x):
    return _unary(x, lambda xp, a: a * a, lambda xp, g, a, y: 2 * g * a)


def abs(x):  # noqa: A001 - the NumPy name
    return _unary(x, lambda xp, a: xp.abs(a), lambda xp, g, a, y: g * xp.sign(a))


def sign(x):
    return _unary(x, lambda xp, a: xp.sign(a), lambda xp, g, a, y: g * 0)


def clip(x, a_min, a_max):
    return _unary(x, lambda xp, a: xp.clip(a, a_min, a_max),
                  lambda xp, g, a, y: g * ((a >= (-_numpy.inf if a_min is None else a_min))
                                           & (a <= (_numpy.inf if a_max is None else a_max))))


def _select(a, b, pick_a):
    """Elementwise choice between ``a`` and ``b`` where ``pick_a(xp, ra, rb)`` is true.

    Serves maximum/minimum (a tie sends the gradient to ``a``) and where.
    """
    like = a if isinstance(a, ndarray) else b
    xp = like._xp
    ra = a._data if isinstance(a, ndarray) else a
    rb = b._data if isinstance(b, ndarray) else b
    if isinstance(a, ndarray) and isinstance(b, ndarray) and a.device != b.device:
        raise _device_mismatch("select", a.device, b.device)
    with _backend.on(like.device):
        take_a = pick_a(xp, ra, rb)
        out = ndarray(xp.where(take_a, ra, rb).astype(like.dtype, copy=False), like.device)
    inputs = tuple(v for v in (a, b) if isinstance(v, ndarray))

    def backward(g):
        from ..ndarray import _unbroadcast
        grads = []
        if isinstance(a, ndarray):
            grads.append(_unbroadcast(g * take_a, a.shape))
        if isinstance(b, ndarray):
            grads.append(_unbroadcast(g * ~take_a, b.shape))
        return tuple(grads)
    return record_op(out, inputs, backward)


def maximum(a, b):
    return _select(a, b, lambda xp, ra, rb: xp.asarray(ra >= rb))


def minimum(a, b):
    return _select(a, b, lambda xp, ra, rb: xp.asarray(ra <= rb))


def dot(a, b):
    """Matrix product (``matmul``) for arrays of up to two dimensions."""
    return matmul(a, b)


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return a.sum(axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims=False):
    return a.mean(axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return a.max(axis=axis, keepdims=keepdims)


def min(a, axis=None, keepdims=False):  # noqa: A001
    return a.min(axis=axis, keepdims=keepdims)


def argmax(a, axis=None):
    return a.argmax(axis=axis)


def reshape(a, newshape):
    return a.reshape(newshape)


def transpose(a, axes=None):
    return a.transpose(axes) if axes is not None else a.transpose()


def expand_dims(a, axis):
    shape = list(a.shape)
    shape.insert(axis if axis >= 0 else len(shape) + axis + 1, 1)
    return a.reshape(tuple(shape))


def _same_device(arrays, op):
    device = arrays[0].device
    for a in arrays[1:]:
        if a.device != device:
            raise _device_mismatch(op, device, a.device)
    return device


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    device = _same_device(arrays, "concatenate")
    xp = arrays[0]._xp
    with _backend.on(device):
        out = ndarray(xp.concatenate([a._data for a in arrays], axis=axis), device)
    bounds = [int(b) for b in _numpy.cumsum([a.shape[axis] for a in arrays])[:-1]]
    return record_op(out, tuple(arrays), lambda g: tuple(xp.split(g, bounds, axis=axis)))


def stack(arrays, axis=0):
    arrays = list(arrays)
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


def where(condition, x, y):
    """Elements of ``x`` where ``condition``, else of ``y``; the gradient follows the choice."""
    like = x if isinstance(x, ndarray) else y
    cond = condition._data if isinstance(condition, ndarray) else condition
    xp = like._xp
    with _backend.on(like.device):
        cond = xp.asarray(cond).astype(bool)
    return _select(x, y, lambda xp_, ra, rb: cond)
