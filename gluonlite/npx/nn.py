"""``mx.npx``: MXNet's neural-network operators, each with its backward next to it.

>>> import gluonlite as mx
>>> x = mx.np.ones((2, 3))
>>> w = mx.np.ones((4, 3))
>>> mx.npx.fully_connected(x, w, None, num_hidden=4, no_bias=True)
array([[3., 3., 3., 3.],
       [3., 3., 3., 3.]])
"""
from __future__ import annotations

import functools
import math

import numpy

from .. import _backend, _dropout, autograd
from ..autograd import SparseRows, record_op
from ..ndarray import ndarray, _device_mismatch
from ..np import _unary

__all__ = ["fully_connected", "activation", "relu", "sigmoid", "softmax", "log_softmax",
           "pick", "embedding", "dropout", "one_hot"]


def _check_same_device(op, *arrays):
    device = arrays[0].device
    for a in arrays[1:]:
        # Identity first: operands usually share one Device object, and the dataclass
        # equality costs more than the rest of a small op.
        if a is not None and a.device is not device and a.device != device:
            raise _device_mismatch(op, device, a.device)
    return device


# NumPy's matmul and sum of float16/bfloat16 accumulate in the 16-bit type (bfloat16 sums of
# a few hundred rows are off by percents); compute in float32 and round once, as the GPU
# kernels and cuBLAS do.
@functools.lru_cache(maxsize=None)
def _cpu_fc_compute(dtype):
    # Memoised: dtype.name is a Python-level property costing microseconds per call.
    return numpy.dtype(numpy.float32) if dtype.name in ("float16", "bfloat16") else None


def _fc_raw(xp, x2, w, b):
    if xp is not numpy:
        from .. import _kernels
        return _kernels.fc_forward(x2, w, b)
    compute = _cpu_fc_compute(x2.dtype)
    if compute is None:
        y = x2 @ w.T
        if b is not None:
            y += b
        return y
    y = x2.astype(compute) @ w.astype(compute).T
    if b is not None:
        y += b.astype(compute)
    return y.astype(x2.dtype)


def _fc_backward_raw(xp, dy, x2, w, need_dx, need_dw, need_db):
    if xp is not numpy:
        from .. import _kernels
        return _kernels.fc_backward(dy, x2, w, need_dx=need_dx, need_dw=need_dw,
                                    need_db=need_db)
    dtype = x2.dtype
    compute = _cpu_fc_compute(dtype)
    if compute is not None:
        dy, x2, w = dy.astype(compute), x2.astype(compute), w.astype(compute)
    grads = (dy @ w if need_dx else None, dy.T @ x2 if need_dw else None,
             dy.sum(axis=0) if need_db else None)
    if compute is None:
        return grads
    return tuple(None if g is None else g.astype(dtype) for g in grads)


def fully_connected(x, weight, bias=None, num_hidden=None, no_bias=False, flatten=True):
    """``y = x @ weight.T + bias`` with MXNet's semantics.

    Args:
        x: input; with ``flatten`` the trailing dims collapse to ``[batch, in_units]``,
            without it the op applies to the last axis.
        weight: ``[num_hidden, in_units]``.
        bias: ``[num_hidden]``, ignored (and may be None) when ``no_bias``.
        num_hidden: output units; checked against ``weight``.

    float16 and bfloat16 inputs are multiplied and summed in float32 and rounded once.
    """
    if no_bias:
        bias = None
    elif bias is None:
        raise ValueError("fully_connected: bias is None but no_bias=False; pass a bias or "
                         "no_bias=True")
    device = _check_same_device("fully_connected", x, weight, bias)
    w_shape = weight._data.shape
    if len(w_shape) != 2:
        raise ValueError(f"fully_connected: weight must be 2-D [num_hidden, in_units], got "
                         f"shape {weight.shape}")
    units, in_units = w_shape
    if num_hidden is not None and num_hidden != units:
        raise ValueError(f"fully_connected: num_hidden={num_hidden} but weight has shape "
                         f"{weight.shape} (expected [{num_hidden}, in_units])")
    if bias is not None and bias._data.shape != (units,):
        raise ValueError(f"fully_connected: bias has shape {bias.shape}, expected ({units},) "
                         f"for weight of shape {weight.shape}")
    x_shape = x._data.shape
    lead = x_shape[:1] if flatten else x_shape[:-1]
    x_in = math.prod(x_shape[1:]) if flatten else (x_shape[-1] if x_shape else 1)
    if not x_shape or x_in != in_units:
        raise ValueError(f"fully_connected: input of shape {x.shape} gives {x_in} input "
                         f"units (flatten={flatten}), but weight of shape {weight.shape} "
                         f"expects {in_units}")
    xp = x._xp
    with _backend.on(device):
        x2 = _backend.contiguous(xp, x._data.reshape(-1, in_units))
        y = _fc_raw(xp, x2, weight._data, None if bias is None else bias._data)
        out = ndarray(y.reshape(lead + (units,)), device)
    inputs = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        need = [autograd.requires_grad(a) for a in inputs] + [False]
        with _backend.on(device):
            dy = _backend.contiguous(xp, g.reshape(-1, units))
            dx, dw, db = _fc_backward_raw(xp, dy, x2, weight._data, need[0], need[1],
                                          need[2])
        return (None if dx is None else dx.reshape(x_shape), dw, db)[:len(inputs)]
    return record_op(out, inputs, backward)


def relu(x):
    return _unary(x, lambda xp, a: xp.maximum(a, 0), lambda xp, g, a, y: g * (a > 0))


def sigmoid(x):
    def forward(xp, a):
        # Split by sign so exp never overflows.
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
    return _unary(x, forward, lambda xp, g, a, y: g * y * (1 - y))


def _softrelu(x):
    return _unary(x, lambda xp, a: xp.logaddexp(0, a).astype(a.dtype, copy=False),
                  lambda xp, g, a, y: g * (1 - xp.exp(-y)))


def activation(data, act_type="relu"):
    """MXNet's ``Activation``: ``relu``, ``sigmoid``, ``tanh``, ``softrelu`` or ``softsign``."""
    from ..np import tanh
    if act_type == "relu":
        return relu(data)
    if act_type == "sigmoid":
        return sigmoid(data)
    if act_type == "tanh":
        return tanh(data)
    if act_type == "softrelu":
        return _softrelu(data)
    if act_type == "softsign":
        return _unary(data, lambda xp, a: a / (1 + xp.abs(a)),
                      lambda xp, g, a, y: g / (1 + xp.abs(a)) ** 2)
    raise ValueError(f"activation: act_type must be one of relu, sigmoid, tanh, softrelu, "
                     f"softsign; got {act_type!r}")


def softmax(data, axis=-1, temperature=None):
    t = 1.0 if temperature is None else float(temperature)

    def forward(xp, a):
        z = a / t
        e = xp.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    return _unary(data, forward,
                  lambda xp, g, a, y: y * (g - (g * y).sum(axis=axis, keepdims=True)) / t)


def log_softmax(data, axis=-1, temperature=None):
    t = 1.0 if temperature is None else float(temperature)

    def forward(xp, a):
        z = a / t
        z = z - z.max(axis=axis, keepdims=True)
        return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    return _unary(data, forward,
                  lambda xp, g, a, y: (g - xp.exp(y) * g.sum(axis=axis, keepdims=True)) / t)


def pick(data, index, axis=-1, keepdims=False, mode="clip"):
    """``data`` at ``index`` along ``axis`` (MXNet's ``pick``; ``mode`` 'clip' or 'wrap')."""
    _check_same_device("pick", data, index)
    xp = data._xp
    axis = axis % data.ndim
    with _backend.on(data.device):
        idx = index._data.astype(xp.int64)
        n = data.shape[axis]
        idx = xp.clip(idx, 0, n - 1) if mode == "clip" else idx % n
        idx_k = xp.expand_dims(idx.reshape(data.shape[:axis] + data.shape[axis + 1:]), axis)
        y = xp.take_along_axis(data._data, idx_k, axis=axis)
        out = ndarray(y if keepdims else xp.squeeze(y, axis=axis), data.device)

    def backward(g):
        # A one-hot mask along ``axis`` scatters g back; it broadcasts where put_along_axis
        # is missing from older CuPy releases.
        positions = xp.arange(n).reshape((n,) + (1,) * (data.ndim - axis - 1))
        onehot = (idx_k == positions).astype(data.dtype)
        return (onehot * g.reshape(idx_k.shape),)
    return record_op(out, (data,), backward)


def embedding(data, weight, input_dim=None, output_dim=None, dtype=None, sparse_grad=False):
    """Rows of ``weight`` at the integer ids in ``data``: ``out[..., :] = weight[data[...]]``.

    With ``sparse_grad`` the weight's gradient is row-sparse: only the rows looked up.
    """
    _check_same_device("embedding", data, weight)
    if input_dim is not None and weight.shape[0] != input_dim:
        raise ValueError(f"embedding: input_dim={input_dim} but weight has shape "
                         f"{weight.shape}")
    if output_dim is not None and weight.shape[1] != output_dim:
        raise ValueError(f"embedding: output_dim={output_dim} but weight has shape "
                         f"{weight.shape}")
    xp = weight._xp
    with _backend.on(weight.device):
        ids = xp.clip(data._data.astype(xp.int64), 0, weight.shape[0] - 1)
        out = ndarray(weight._data[ids], weight.device)

    def backward(g):
        rows = g.reshape(-1, weight.shape[1])
        flat = ids.reshape(-1)
        if sparse_grad:
            return None, SparseRows(flat, rows, weight.shape)
        full = xp.zeros(weight.shape, dtype=weight.dtype)
        autograd._scatter_add(xp, full, flat, rows)
        return None, full
    return record_op(out, (data, weight), backward)


def dropout(data, p=0.5, axes=(), mode="training"):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

    Active in train mode (inside ``autograd.record()`` or ``train_mode()``), or always with
    ``mode='always'``; identity otherwise. ``axes`` shares the mask along those axes. The
    mask is computed on the data's device from one 64-bit key drawn from the host generator
    per call, so ``mx.random.seed`` gives the same mask on every device (``_dropout.py``).
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if p == 0 or (mode != "always" and not autograd.is_training()):
        return data
    shape = tuple(1 if i in axes else n for i, n in enumerate(data.shape))
    with _backend.on(data.device):
        mask = _dropout.mask(shape, data.dtype, data.device, p)
        out = ndarray(data._data * mask, data.device)
    return record_op(out, (data,), lambda g: (g * mask,))


def one_hot(indices, depth, on_value=1.0, off_value=0.0, dtype="float32"):
    xp = indices._xp
    with _backend.on(indices.device):
        eye = (indices._data[..., None] == xp.arange(depth))
        raw = xp.where(eye, on_value, off_value).astype(_backend.dtype_of(dtype))
    return ndarray(raw, indices.device)
