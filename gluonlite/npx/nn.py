"""``mx.npx``: MXNet's neural-network operators, each with its backward next to it.

>>> import gluonlite as mx
>>> x = mx.np.ones((2, 3))
>>> w = mx.np.ones((4, 3))
>>> mx.npx.fully_connected(x, w, None, num_hidden=4, no_bias=True)
array([[3., 3., 3., 3.],
       [3., 3., 3., 3.]])
"""

from __future__ import annotations

import math
from functools import partial as _partial

import numpy

from .. import _backend, _dropout, autograd
from ..autograd import SparseRows, record_op
from ..ndarray import ndarray, _device_mismatch, _new, _recording_get, scatter_add
from .. import np as xp_np
from ..np._dispatch import Recorded
from ..device import as_device, Device
from .._compat import resolve_ctx
from collections.abc import Callable
from types import ModuleType
from typing import Any
from .._typing import DTypeLike, RawArray

__all__ = [
    "fully_connected",
    "activation",
    "relu",
    "sigmoid",
    "softmax",
    "log_softmax",
    "masked_softmax",
    "masked_log_softmax",
    "pick",
    "embedding",
    "dropout",
    "one_hot",
    "topk",
    "batch_dot",
    "broadcast_like",
    "arange_like",
]


def _check_same_device(op: str, *arrays: Any) -> Device:
    device: Device = arrays[0].device
    for a in arrays[1:]:
        # Identity first: operands usually share one Device object, and the dataclass
        # equality costs more than the rest of a small op.
        if a is not None and a.device is not device and a.device != device:
            raise _device_mismatch(op, device, a.device)
    return device


# NumPy's matmul and sum of float16/bfloat16 accumulate in the 16-bit type (bfloat16 sums of
# a few hundred rows are off by percents); compute in float32 and round once, as the GPU
# kernels and cuBLAS do. Two attribute reads identify them (float16 is kind 'f', ml_dtypes'
# bfloat16 kind 'V'); dtype.name would cost microseconds per call.
_F32 = numpy.dtype(numpy.float32)


_NO_CONTEXT = _backend._NO_CONTEXT  # what on() gives for cpu: a no-op block


def _low_precision(dtype: numpy.dtype[Any]) -> bool:
    return dtype.itemsize == 2 and dtype.kind in "fV"


def _fc_raw(xp: ModuleType, x2: RawArray, w: RawArray, b: RawArray) -> RawArray:
    if xp is not numpy:
        from .. import _kernels

        return _kernels.fc_forward(x2, w, b)
    if not _low_precision(x2.dtype):
        y = x2 @ w.T
        if b is not None:
            y += b
        return y
    y = x2.astype(_F32) @ w.astype(_F32).T
    if b is not None:
        y += b.astype(_F32)
    return y.astype(x2.dtype)


_dot = numpy.dot


def _fc_backward_raw(
    xp: ModuleType,
    dy: RawArray,
    x2: RawArray,
    w: RawArray,
    need_dx: bool,
    need_dw: bool,
    need_db: bool,
) -> tuple[RawArray | None, ...]:
    if xp is not numpy:
        from .. import _kernels

        return _kernels.fc_backward(dy, x2, w, need_dx=need_dx, need_dw=need_dw, need_db=need_db)
    dtype = x2.dtype
    low = _low_precision(dtype)
    if low:
        dy, x2, w = dy.astype(_F32), x2.astype(_F32), w.astype(_F32)
    # With one row, dW is an outer product: numpy.dot of the (64, 1) column and the row
    # gives the same products (one term each, so the same bits) without matmul's slow K=1
    # path (3.5x faster) or a broadcast multiply's (2x). numpy.dot also has less overhead
    # per call than matmul on 2-D operands, with the same BLAS call (and bits) behind it.
    one_row = dy.shape[0] == 1
    dw = None if not need_dw else (_dot(dy.T, x2) if one_row else dy.T @ x2)
    # With one row the bias gradient is that row (a view: gradients are read, not written).
    db = None if not need_db else (dy[0] if one_row else dy.sum(axis=0))
    grads = (_dot(dy, w) if need_dx else None, dw, db)
    if not low:
        return grads
    return tuple(None if g is None else g.astype(dtype) for g in grads)


def fully_connected(
    x: ndarray,
    weight: ndarray,
    bias: ndarray | None = None,
    num_hidden: int | None = None,
    no_bias: bool = False,
    flatten: bool = True,
) -> ndarray:
    """``y = x @ weight.T + bias`` with MXNet's semantics.

    Args:
        x: input; with ``flatten`` the trailing dims collapse to ``[batch, in_units]``,
            without it the op applies to the last axis.
        weight: ``[num_hidden, in_units]``.
        bias: ``[num_hidden]``, ignored (and may be None) when ``no_bias``.
        num_hidden: output units; checked against ``weight``.

    float16 and bfloat16 inputs are multiplied and summed in float32 and rounded once.
    """
    # The hot path of every Dense layer: attribute reads and tuple compares only; the
    # descriptive checks run when a fast check fails.
    if no_bias:
        bias = None
    elif bias is None:
        raise ValueError(
            "fully_connected: bias is None but no_bias=False; pass a bias or no_bias=True"
        )
    device = x._device
    if weight._device is not device or (bias is not None and bias._device is not device):
        _check_same_device("fully_connected", x, weight, bias)
    w_shape = weight._data.shape
    if len(w_shape) != 2:
        raise ValueError(
            f"fully_connected: weight must be 2-D [num_hidden, in_units], got shape {weight.shape}"
        )
    units, in_units = w_shape
    if num_hidden is not None and num_hidden != units:
        raise ValueError(
            f"fully_connected: num_hidden={num_hidden} but weight has shape "
            f"{weight.shape} (expected [{num_hidden}, in_units])"
        )
    if bias is not None and bias._data.shape != (units,):
        raise ValueError(
            f"fully_connected: bias has shape {bias.shape}, expected ({units},) "
            f"for weight of shape {weight.shape}"
        )
    raw = x._data
    x_shape = raw.shape
    if len(x_shape) == 2 and x_shape[1] == in_units:
        x2 = raw  # the common case: already [batch, in_units]
    else:
        x_in = math.prod(x_shape[1:]) if flatten else (x_shape[-1] if x_shape else 1)
        if not x_shape or x_in != in_units:
            raise ValueError(
                f"fully_connected: input of shape {x.shape} gives {x_in} input "
                f"units (flatten={flatten}), but weight of shape "
                f"{weight.shape} expects {in_units}"
            )
        if device.device_type == "cpu":
            x2 = raw.reshape(-1, in_units)
        else:
            # A reshape that must copy (a non-contiguous view, e.g. after swapaxes)
            # allocates on the current GPU: make it the input's.
            with _backend.on(device):
                x2 = raw.reshape(-1, in_units)
    cpu = device.device_type == "cpu"
    xp = numpy if cpu else x._xp
    if not x2.flags.c_contiguous:
        with _NO_CONTEXT if cpu else _backend.on(device):
            x2 = xp.ascontiguousarray(x2)
    if cpu and x2.dtype is _F32:  # the common case, _fc_raw's first branch inline
        y = _dot(x2, weight._data.T)  # matmul's product (same BLAS call), with less overhead
        if bias is not None:
            y += bias._data
    else:
        with _NO_CONTEXT if cpu else _backend.on(device):
            y = _fc_raw(xp, x2, weight._data, None if bias is None else bias._data)
    if len(x_shape) != 2:
        y = y.reshape((x_shape[:1] if flatten else x_shape[:-1]) + (units,))
    out = _new(ndarray)
    out._data, out._device = y, device
    if not _recording_get():
        return out
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return record_op(
        out,
        inputs,
        _partial(_fc_backward, x, weight, bias, x2, x_shape, units, xp),
        _partial(_fc_graph, x, weight, bias, x_shape, units, in_units),
    )


def _fc_backward(
    x: ndarray,
    weight: ndarray,
    bias: ndarray | None,
    x2: RawArray,
    x_shape: tuple[int, ...],
    units: int,
    xp: ModuleType,
    g: RawArray,
) -> Any:
    """``fully_connected``'s backward, bound to its op by ``functools.partial`` (made in C;
    a closure would create nine cells per recorded call)."""
    need_x = x._node is not None or x._grad_req != "null"
    need_w = weight._node is not None or weight._grad_req != "null"
    need_b = bias is not None and (bias._node is not None or bias._grad_req != "null")
    if xp is numpy:  # (no device block: a with statement costs two Python calls)
        dy = g if len(x_shape) == 2 else g.reshape(-1, units)
        if not dy.flags.c_contiguous:
            dy = numpy.ascontiguousarray(dy)
        dx, dw, db = _fc_backward_raw(numpy, dy, x2, weight._data, need_x, need_w, need_b)
    else:
        with _backend.on(x._device):  # a copying reshape allocates on the current GPU
            dy = g if len(x_shape) == 2 else g.reshape(-1, units)
            if not dy.flags.c_contiguous:
                dy = xp.ascontiguousarray(dy)
            dx, dw, db = _fc_backward_raw(xp, dy, x2, weight._data, need_x, need_w, need_b)
    if dx is not None and len(x_shape) != 2:
        dx = dx.reshape(x_shape)
    return (dx, dw) if bias is None else (dx, dw, db)


def _needs_grad(a: Any) -> bool:
    return a is not None and (a._node is not None or a._grad_req != "null")


def _fc_graph(
    x: ndarray,
    weight: ndarray,
    bias: ndarray | None,
    x_shape: tuple[int, ...],
    units: int,
    in_units: int,
    out: ndarray,
    g: ndarray,
) -> tuple[Any, ...]:
    """``fully_connected``'s gradients with recorded ops (create_graph): dx = dy W,
    dW = dy^T x, db = sum(dy); bound by ``functools.partial`` as ``_fc_backward``."""
    dy = g if len(x_shape) == 2 else g.reshape(-1, units)
    dx = dw = db = None
    if _needs_grad(x):
        dx = dy @ weight
        if len(x_shape) != 2:
            dx = dx.reshape(x_shape)
    if _needs_grad(weight):
        dw = dy.T @ (x if len(x_shape) == 2 else x.reshape(-1, in_units))
    if bias is not None and _needs_grad(bias):
        db = dy.sum(axis=0)
    return (dx, dw) if bias is None else (dx, dw, db)


# ----------------------------------------------------------------------- activations
def _elementwise(x: ndarray, forward: Callable[..., Any], backward: Callable[..., Any]) -> ndarray:
    """``forward(xp, raw)`` recorded with ``backward(xp, g, x_raw, y_raw) -> dL/dx``."""
    device = x._device
    if device.device_type == "cpu":
        xp = numpy
        y = forward(xp, x._data)
    else:
        xp = x._xp
        with _backend.on(device):
            y = forward(xp, x._data)
    out = _new(ndarray)  # ndarray(y, device) without the call of __init__ (hot: activations)
    out._data, out._device = y, device
    if not _recording_get():
        return out
    return record_op(
        out,
        (x,),
        _elementwise_backward(backward, xp, x, y),
        _elementwise_graph(backward, device, x),
    )


def _elementwise_backward(
    backward: Callable[..., Any], xp: ModuleType, x: ndarray, y: RawArray
) -> Callable[[RawArray], tuple[Any]]:
    # Outside _elementwise: a closure there would make its cells on every call.
    return lambda g: (backward(xp, g, x._data, y),)


def _elementwise_graph(
    backward: Callable[..., Any], device: Device, x: ndarray
) -> Callable[[ndarray, ndarray], tuple[Any]]:
    return lambda out, g: (backward(Recorded(device), g, x, out),)


# exp(-a) stays finite for a above these (float32: exp(88.7) overflows).
_EXP_SAFE = {numpy.dtype(numpy.float32): -88.0, numpy.dtype(numpy.float64): -709.0}


def _sigmoid(xp: ModuleType, a: Any) -> RawArray:
    limit = _EXP_SAFE.get(a.dtype) if xp is numpy and a.size else None
    if limit is not None and a.min() > limit:
        # No exp(-a) can overflow: 1 / (1 + exp(-a)) in four in-place NumPy calls.
        t = numpy.negative(a)
        numpy.exp(t, out=t)
        t += 1
        return numpy.reciprocal(t, out=t)
    # Split by sign so exp never overflows.
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def _softplus(xp: ModuleType, a: Any) -> RawArray:
    return xp.logaddexp(0, a).astype(a.dtype, copy=False)


def _mish_grad(xp: ModuleType, g: RawArray, a: Any, y: RawArray) -> RawArray:
    t = xp.tanh(_softplus(xp, a))
    return g * (t + a * _sigmoid(xp, a) * (1 - t * t))


# act_type -> (forward(xp, x), backward(xp, g, x, y)): MXNet 2's Activation operator.
_ACTIVATIONS = {
    "relu": (lambda xp, a: xp.maximum(a, 0), lambda xp, g, a, y: g * (a > 0)),
    "sigmoid": (_sigmoid, lambda xp, g, a, y: g * y * (1 - y)),
    "log_sigmoid": (lambda xp, a: -_softplus(xp, -a), lambda xp, g, a, y: g * _sigmoid(xp, -a)),
    "mish": (lambda xp, a: a * xp.tanh(_softplus(xp, a)), _mish_grad),
    "tanh": (lambda xp, a: xp.tanh(a), lambda xp, g, a, y: g * (1 - y * y)),
    "softrelu": (_softplus, lambda xp, g, a, y: g * _sigmoid(xp, a)),
    "softsign": (lambda xp, a: a / (1 + xp.abs(a)), lambda xp, g, a, y: g / (1 + xp.abs(a)) ** 2),
}


def activation(data: ndarray, act_type: str = "relu", **kwargs: Any) -> ndarray:
    """MXNet's ``Activation``: ``act_type`` one of relu, sigmoid, log_sigmoid, mish, tanh,
    softrelu (softplus) or softsign, elementwise with its gradient."""
    row = _ACTIVATIONS.get(act_type)
    if row is None:
        raise ValueError(
            f"activation: act_type must be one of {', '.join(_ACTIVATIONS)}; got {act_type!r}"
        )
    if type(data) is not ndarray:
        _check_array("activation", "data", data)
    return _elementwise(data, *row)


def relu(x: ndarray) -> ndarray:
    return _elementwise(x, *_ACTIVATIONS["relu"])


def sigmoid(x: ndarray) -> ndarray:
    return _elementwise(x, *_ACTIVATIONS["sigmoid"])


def _check_array(op: str, name: str, value: Any) -> None:
    if not isinstance(value, ndarray):
        raise TypeError(f"{op}: {name} must be an mx.np.ndarray, got {type(value).__name__}")


def _check_float(op: str, data: ndarray) -> None:
    _check_array(op, "data", data)
    if data.dtype.kind != "f" and data.dtype.name != "bfloat16":
        raise TypeError(
            f"{op}: data must be a floating-point array, got {data.dtype} on {data.device}"
        )


def _axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, numpy.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise numpy.exceptions.AxisError(
            f"{op}: axis {axis} is out of bounds for an array of dimension {ndim}"
        )
    return int(axis) % ndim


# ----------------------------------------------------------------------- softmax family
def _softmax(
    op: str,
    data: ndarray,
    axis: int,
    temperature: float | None,
    dtype: DTypeLike,
    mask: ndarray,
    log: bool,
    fill: float,
) -> ndarray:
    """Softmax (or log-softmax) of ``data / temperature`` along ``axis`` over the positions
    where the raw boolean ``mask`` holds (all when None); masked positions hold ``fill``.

    Backward: softmax ``dx = p * (g - sum(g * p)) / t``; log-softmax
    ``dx = (g' - p * sum(g')) / t`` with ``g'`` the gradient on the unmasked positions.
    """
    _check_float(op, data)
    axis = _axis(op, axis, data.ndim)
    t = 1.0 if temperature is None else float(temperature)
    if t == 0:
        raise ValueError(f"{op}: temperature must be nonzero")
    in_dtype = data.dtype
    out_dtype = in_dtype if dtype is None else _backend.dtype_of(dtype)
    if out_dtype.kind != "f":
        raise TypeError(f"{op}: dtype must be a floating-point type, got {out_dtype}")
    xp = data._xp
    with _backend.on(data._device):
        a = data._data.astype(numpy.promote_types(in_dtype, out_dtype), copy=False)
        z = a / t if t != 1.0 else a
        if mask is not None:
            z = xp.where(mask, z, -xp.inf)
        top = z.max(axis=axis, keepdims=True)
        if mask is not None:  # a fully masked row has max -inf
            top = xp.where(xp.isfinite(top), top, 0)
        e = xp.exp(z - top)
        total = e.sum(axis=axis, keepdims=True)
        if mask is not None:
            total = xp.where(total == 0, 1, total)
        p = e / total
        if log:
            y = z - top - xp.log(total)
            if mask is not None:
                y = xp.where(mask, y, fill)
        else:
            y = p
        out = ndarray(y.astype(out_dtype, copy=False), data._device)

    def backward(g: RawArray) -> Any:
        if log:
            gm = g if mask is None else xp.where(mask, g, 0)
            dx = gm - p * gm.sum(axis=axis, keepdims=True)
        else:
            dx = p * (g - (g * p).sum(axis=axis, keepdims=True))
        return ((dx / t if t != 1.0 else dx).astype(in_dtype, copy=False),)

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        # The same formulas on recorded arrays, p from the output (create_graph).
        m = None if mask is None else ndarray(mask, data._device)
        if log:
            p_ = xp_np.exp(out) if m is None else xp_np.where(m, xp_np.exp(out), 0)
            gm = g if m is None else xp_np.where(m, g, 0)
            dx = gm - p_ * gm.sum(axis=axis, keepdims=True)
        else:
            dx = out * (g - (g * out).sum(axis=axis, keepdims=True))
        dx = dx / t if t != 1.0 else dx
        return (dx if dx.dtype == in_dtype else dx.astype(in_dtype),)

    return record_op(out, (data,), backward, graph)


def _length_mask(
    op: str, data: ndarray, axis: int, length: ndarray | None, use_length: bool
) -> Any:
    if not use_length:
        if length is not None:
            raise ValueError(f"{op}: length is given but use_length=False")
        return None
    if length is None:
        raise ValueError(f"{op}: use_length=True needs a length array")
    _check_array(op, "length", length)
    _check_same_device(op, data, length)
    axis = _axis(op, axis, data.ndim)
    expect = data.shape[:axis] + data.shape[axis + 1 :]
    if length.shape != expect:
        raise ValueError(
            f"{op}: length has shape {length.shape}, expected {expect} (data's "
            f"shape {data.shape} without axis {axis})"
        )
    xp = data._xp
    with _backend.on(data._device):
        n = data.shape[axis]
        positions = xp.arange(n).reshape((n,) + (1,) * (data.ndim - axis - 1))
        return positions < xp.expand_dims(length._data.astype(xp.int64), axis)


def softmax(
    data: ndarray,
    axis: int = -1,
    length: ndarray | None = None,
    temperature: float | None = None,
    use_length: bool = False,
    dtype: DTypeLike = None,
) -> ndarray:
    """``exp(x / t) / sum(exp(x / t))`` along ``axis`` (MXNet's ``npx.softmax``).

    With ``use_length``, only the first ``length[...]`` positions along ``axis`` take part
    (``length`` has data's shape without ``axis``); the others are 0. ``dtype`` sets the
    output type (computed in the wider of it and the input's).
    """
    mask = _length_mask("softmax", data, axis, length, use_length)
    return _softmax("softmax", data, axis, temperature, dtype, mask, False, 0)


def log_softmax(
    data: ndarray,
    axis: int = -1,
    length: ndarray | None = None,
    temperature: float | None = None,
    use_length: bool = False,
    dtype: DTypeLike = None,
) -> ndarray:
    """``log(softmax(data))``, computed stably; arguments as :func:`softmax` (positions past
    ``length`` are 0, as in MXNet)."""
    mask = _length_mask("log_softmax", data, axis, length, use_length)
    return _softmax("log_softmax", data, axis, temperature, dtype, mask, True, 0)


def _bool_mask(op: str, data: ndarray, mask: ndarray) -> Any:
    _check_array(op, "mask", mask)
    _check_same_device(op, data, mask)
    try:
        numpy.broadcast_shapes(mask.shape, data.shape)
    except ValueError:
        raise ValueError(
            f"{op}: mask of shape {mask.shape} does not broadcast to data's shape {data.shape}"
        ) from None
    with _backend.on(data._device):
        return mask._data.astype(bool, copy=False)


def masked_softmax(
    data: ndarray,
    mask: ndarray,
    axis: int = -1,
    temperature: float = 1.0,
    dtype: DTypeLike = None,
    normalize: bool = True,
) -> ndarray:
    """Softmax over the positions where ``mask`` (broadcast to data) is true; 0 elsewhere,
    and 0 for a row with nothing unmasked."""
    m = None if mask is None else _bool_mask("masked_softmax", data, mask)
    return _softmax("masked_softmax", data, axis, temperature, dtype, m, False, 0)


def masked_log_softmax(
    data: ndarray,
    mask: ndarray,
    axis: int = -1,
    temperature: float = 1.0,
    dtype: DTypeLike = None,
    normalize: bool = True,
) -> ndarray:
    """Log-softmax over the positions where ``mask`` is true; ``-inf`` elsewhere."""
    m = None if mask is None else _bool_mask("masked_log_softmax", data, mask)
    return _softmax("masked_log_softmax", data, axis, temperature, dtype, m, True, -numpy.inf)


# ----------------------------------------------------------------------- indexing ops
def pick(
    data: ndarray, index: Any, axis: int = -1, mode: str = "clip", keepdims: bool = False
) -> ndarray:
    """``data`` at ``index`` along ``axis`` (MXNet's ``pick``; ``mode`` 'clip' or 'wrap').

    ``index`` has data's shape without ``axis`` (or with it as 1); float indices are
    truncated, as in MXNet.
    """
    _check_array("pick", "data", data)
    _check_array("pick", "index", index)
    _check_same_device("pick", data, index)
    if mode not in ("clip", "wrap"):
        raise ValueError(f"pick: mode must be 'clip' or 'wrap', got {mode!r}")
    axis = _axis("pick", axis, data.ndim)
    rest = data.shape[:axis] + data.shape[axis + 1 :]
    if index.shape not in (rest, data.shape[:axis] + (1,) + data.shape[axis + 1 :]):
        raise ValueError(
            f"pick: index has shape {index.shape}, expected {rest} (data's "
            f"shape {data.shape} without axis {axis})"
        )
    xp = data._xp
    n = data.shape[axis]
    with _backend.on(data._device):
        idx = index._data.astype(xp.int64)
        idx = xp.clip(idx, 0, n - 1) if mode == "clip" else idx % n
        idx_k = xp.expand_dims(idx.reshape(rest), axis)
        y = xp.take_along_axis(data._data, idx_k, axis=axis)
        out = ndarray(y if keepdims else xp.squeeze(y, axis=axis), data._device)

    def backward(g: RawArray) -> Any:
        # A one-hot mask along ``axis`` scatters g back; it broadcasts where put_along_axis
        # is missing from older CuPy releases.
        positions = xp.arange(n).reshape((n,) + (1,) * (data.ndim - axis - 1))
        onehot = (idx_k == positions).astype(data.dtype)
        return (onehot * g.reshape(idx_k.shape),)

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        with _backend.on(data._device):
            positions = xp.arange(n).reshape((n,) + (1,) * (data.ndim - axis - 1))
            onehot = ndarray((idx_k == positions).astype(data.dtype), data._device)
        return (onehot * g.reshape(idx_k.shape),)

    return record_op(out, (data,), backward, graph)


def embedding(
    data: ndarray,
    weight: ndarray,
    input_dim: int | None = None,
    output_dim: int | None = None,
    dtype: str = "float32",
    sparse_grad: bool = False,
    **kwargs: Any,
) -> ndarray:
    """Rows of ``weight`` at the integer ids in ``data``: ``out[..., :] = weight[data[...]]``.

    Ids past the table are clipped to its last row, as MXNet does. With ``sparse_grad``
    the weight's gradient is row-sparse: only the rows looked up.
    """
    _check_array("embedding", "data", data)
    _check_array("embedding", "weight", weight)
    _check_same_device("embedding", data, weight)
    if weight.ndim != 2:
        raise ValueError(
            f"embedding: weight must be 2-D [input_dim, output_dim], got shape {weight.shape}"
        )
    if input_dim is not None and weight.shape[0] != input_dim:
        raise ValueError(f"embedding: input_dim={input_dim} but weight has shape {weight.shape}")
    if output_dim is not None and weight.shape[1] != output_dim:
        raise ValueError(f"embedding: output_dim={output_dim} but weight has shape {weight.shape}")
    xp = weight._xp
    with _backend.on(weight._device):
        ids = xp.clip(data._data.astype(xp.int64), 0, weight.shape[0] - 1)
        out = ndarray(weight._data[ids], weight._device)

    def backward(g: RawArray) -> Any:
        rows = g.reshape(-1, weight.shape[1])
        flat = ids.reshape(-1)
        if sparse_grad:
            return None, SparseRows(flat, rows, weight.shape)
        full = xp.zeros(weight.shape, dtype=weight.dtype)
        autograd._scatter_add(xp, full, flat, rows)
        return None, full

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:  # dense, recorded (create_graph)
        return None, scatter_add(g.reshape(-1, weight.shape[1]), weight.shape, ids.reshape(-1))

    return record_op(out, (data, weight), backward, graph)


def dropout(
    data: ndarray,
    p: float = 0.5,
    mode: str = "training",
    axes: Any = (),
    cudnn_off: bool = True,
    **kwargs: Any,
) -> ndarray:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

    Active in train mode (inside ``autograd.record()`` or ``train_mode()``), or always with
    ``mode='always'``; identity otherwise. ``axes`` shares the mask along those axes. The
    mask is computed on the data's device from one 64-bit key drawn from the host generator
    per call, so ``mx.random.seed`` gives the same mask on every device (``_dropout.py``).
    ``cudnn_off`` is accepted for MXNet compatibility (there is one implementation).
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if mode not in ("training", "always"):
        raise ValueError(f"dropout: mode must be 'training' or 'always', got {mode!r}")
    if p == 0 or (mode != "always" and not autograd.is_training()):
        return data
    shape = tuple(1 if i in axes else n for i, n in enumerate(data.shape))
    with _backend.on(data.device):
        mask = _dropout.mask(shape, data.dtype, data.device, p)
        out = ndarray(data._data * mask, data.device)
    return record_op(
        out, (data,), lambda g: (g * mask,), lambda out, g: (g * ndarray(mask, out._device),)
    )


def one_hot(
    data: ndarray,
    depth: int | None = None,
    on_value: float = 1.0,
    off_value: float = 0.0,
    dtype: str = "float32",
) -> ndarray:
    """``out[..., j] = on_value if data[...] == j else off_value`` for ``j < depth``; ids
    outside ``[0, depth)`` give a row of ``off_value``. Not differentiable."""
    _check_array("one_hot", "data", data)
    if depth is None or int(depth) != depth or depth < 0:
        raise ValueError(f"one_hot: depth must be a non-negative int, got {depth!r}")
    xp = data._xp
    with _backend.on(data._device):
        eye = data._data[..., None] == xp.arange(int(depth))
        raw = xp.where(eye, on_value, off_value).astype(_backend.dtype_of(dtype))
    return ndarray(raw, data._device)


_RET_TYPES = ("value", "indices", "mask", "both")


def topk(
    data: ndarray,
    axis: int = -1,
    k: int = 1,
    ret_typ: str = "indices",
    is_ascend: bool = False,
    dtype: str = "float32",
) -> Any:
    """The ``k`` largest (``is_ascend``: smallest) elements along ``axis``, sorted.

    ``ret_typ``: 'value' (differentiable), 'indices' (in ``dtype``), 'mask' (1 at the
    chosen positions, data's dtype) or 'both' ([values, indices]). ``axis=None`` works on
    the flattened array; ``k < 1`` sorts the whole axis. Ties keep the lower index first.
    """
    _check_array("topk", "data", data)
    if ret_typ not in _RET_TYPES:
        raise ValueError(f"topk: ret_typ must be one of {_RET_TYPES}, got {ret_typ!r}")
    src = data.reshape(-1) if axis is None else data
    axis = _axis("topk", -1 if axis is None else axis, src.ndim)
    n = src.shape[axis]
    k = n if k < 1 else int(k)
    if k > n:
        raise ValueError(f"topk: k={k} exceeds the {n} elements along axis {axis}")
    index_dtype = _backend.dtype_of(dtype)
    if n > 2 ** (
        numpy.finfo(index_dtype).nmant + 1
        if index_dtype.kind == "f"
        else 8 * index_dtype.itemsize - 1
    ):
        raise ValueError(f"topk: dtype {index_dtype} cannot represent indices up to {n}")
    xp = src._xp
    with _backend.on(src._device):
        raw = src._data
        order = xp.argsort(raw if is_ascend else -raw, axis=axis, kind="stable")
        idx = xp.take(order, xp.arange(k), axis=axis)
        # rank[i]: where element i lands in the sorted order (the inverse permutation);
        # the mask and the values' gradient gather by it (CuPy lacks put_along_axis).
        rank = xp.argsort(order, axis=axis)
        if ret_typ == "mask":
            return ndarray((rank < k).astype(raw.dtype).reshape(data.shape), src._device)
        indices = ndarray(idx.astype(index_dtype), src._device)
        if ret_typ == "indices":
            return indices
        values = ndarray(xp.take_along_axis(raw, idx, axis=axis), src._device)

    def backward(g: RawArray) -> Any:
        pad = list(g.shape)
        pad[axis] = n - k
        padded = xp.concatenate([g, xp.zeros(pad, dtype=g.dtype)], axis=axis)
        return (xp.take_along_axis(padded, rank, axis=axis),)

    values = record_op(values, (src,), backward, "topk")
    return values if ret_typ == "value" else [values, indices]


def batch_dot(
    a: Any,
    b: RawArray,
    transpose_a: bool = False,
    transpose_b: bool = False,
    forward_stype: str | None = None,
) -> ndarray:
    """Batched matrix product over the leading axes: ``a[i] @ b[i]`` (each optionally
    transposed), for arrays of 3 or more dimensions with equal leading axes."""
    _check_array("batch_dot", "a", a)
    _check_array("batch_dot", "b", b)
    _check_same_device("batch_dot", a, b)
    if a.ndim < 3 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(
            f"batch_dot: needs two arrays of the same rank >= 3 with equal "
            f"batch axes, got shapes {a.shape} and {b.shape}"
        )
    xp = a._xp
    with _backend.on(a._device):
        ra = xp.swapaxes(a._data, -1, -2) if transpose_a else a._data
        rb = xp.swapaxes(b._data, -1, -2) if transpose_b else b._data
        if ra.shape[-1] != rb.shape[-2]:
            raise ValueError(
                f"batch_dot: inner dimensions differ: {a.shape} "
                f"(transpose_a={transpose_a}) and {b.shape} "
                f"(transpose_b={transpose_b})"
            )
        out = ndarray(xp.matmul(ra, rb), a._device)

    def backward(g: RawArray) -> Any:
        # d(op_a) = g @ op_b^T, d(op_b) = op_a^T @ g; undo each transpose.
        ga = xp.matmul(g, xp.swapaxes(rb, -1, -2))
        gb = xp.matmul(xp.swapaxes(ra, -1, -2), g)
        return (
            xp.swapaxes(ga, -1, -2) if transpose_a else ga,
            xp.swapaxes(gb, -1, -2) if transpose_b else gb,
        )

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        op_a = xp_np.swapaxes(a, -1, -2) if transpose_a else a
        op_b = xp_np.swapaxes(b, -1, -2) if transpose_b else b
        ga = xp_np.matmul(g, xp_np.swapaxes(op_b, -1, -2))
        gb = xp_np.matmul(xp_np.swapaxes(op_a, -1, -2), g)
        return (
            xp_np.swapaxes(ga, -1, -2) if transpose_a else ga,
            xp_np.swapaxes(gb, -1, -2) if transpose_b else gb,
        )

    return record_op(out, (a, b), backward, graph)


def broadcast_like(
    lhs: ndarray, rhs: ndarray, lhs_axes: Any = None, rhs_axes: Any = None
) -> ndarray:
    """``lhs`` broadcast to ``rhs``'s shape; with ``lhs_axes``/``rhs_axes`` only those axes
    of ``lhs`` (each of size 1) take the size of the matching ``rhs`` axes."""
    _check_array("broadcast_like", "lhs", lhs)
    _check_array("broadcast_like", "rhs", rhs)
    _check_same_device("broadcast_like", lhs, rhs)
    if (lhs_axes is None) != (rhs_axes is None):
        raise ValueError("broadcast_like: give both lhs_axes and rhs_axes, or neither")
    if lhs_axes is None:
        if lhs.ndim != rhs.ndim:
            raise ValueError(f"broadcast_like: lhs {lhs.shape} and rhs {rhs.shape} differ in rank")
        target: list[int] | tuple[int, ...] = rhs.shape
    else:
        lhs_axes = (lhs_axes,) if isinstance(lhs_axes, int) else tuple(lhs_axes)
        rhs_axes = (rhs_axes,) if isinstance(rhs_axes, int) else tuple(rhs_axes)
        if len(lhs_axes) != len(rhs_axes):
            raise ValueError(
                f"broadcast_like: lhs_axes {lhs_axes} and rhs_axes {rhs_axes} differ in length"
            )
        target = list(lhs.shape)
        for la, ra in zip(lhs_axes, rhs_axes):
            target[_axis("broadcast_like", la, lhs.ndim)] = rhs.shape[
                _axis("broadcast_like", ra, rhs.ndim)
            ]
        target = tuple(target)
    for have, want in zip(lhs.shape, target):
        if have != want and have != 1:
            raise ValueError(
                f"broadcast_like: cannot broadcast lhs of shape {lhs.shape} to {target}"
            )
    xp = lhs._xp
    shape = lhs.shape
    with _backend.on(lhs._device):
        out = ndarray(xp.broadcast_to(lhs._data, target).copy(), lhs._device)

    def backward(g: RawArray) -> Any:
        axes = tuple(i for i, (s, t) in enumerate(zip(shape, target)) if s != t)
        return ((g.sum(axis=axes, keepdims=True) if axes else g), None)

    return record_op(out, (lhs, rhs), backward, lambda out, g: backward(g))


def arange_like(
    data: ndarray,
    start: float = 0.0,
    step: float = 1.0,
    repeat: int = 1,
    ctx: Device | None = None,
    axis: int | None = None,
    device: Device | None = None,
) -> ndarray:
    """``start + step * (i // repeat)`` in data's shape (row-major ``i``), or along one
    ``axis`` (a 1-D result of that length); data's dtype, on its device unless told."""
    _check_array("arange_like", "data", data)
    if int(repeat) != repeat or repeat < 1:
        raise ValueError(f"arange_like: repeat must be a positive int, got {repeat!r}")
    device = resolve_ctx(device, ctx)
    device = data._device if device is None else as_device(device)
    if axis is None:
        shape, count = data.shape, data.size
    else:
        count = data.shape[_axis("arange_like", axis, data.ndim)]
        shape = (count,)
    xp = _backend.xp(device)
    with _backend.on(device):
        values = start + step * (xp.arange(count) // int(repeat))
        return ndarray(values.astype(data.dtype).reshape(shape), device)
