"""``mx.npx`` normalisation operators: ``batch_norm``, ``layer_norm``, ``group_norm`` and
``instance_norm``, forward and backward.

Each is one normalisation ``xhat = (x - mean) / sqrt(var + eps)`` over some axes followed
by ``xhat * gamma + beta`` per channel; they differ only in the axes (one core,
``_normalize``). float16 and bfloat16 compute in float32 and round once.

>>> import gluonlite as mx
>>> x = mx.np.array([[1., 2., 3.], [2., 4., 6.]])
>>> y = mx.npx.layer_norm(x, mx.np.ones((3,)), mx.np.zeros((3,)), eps=0)
>>> [round(v, 3) for v in y[0].tolist()]
[-1.225, 0.0, 1.225]
"""
from __future__ import annotations

import numpy

from .. import _backend, autograd
from ..autograd import record_op, requires_grad
from ..ndarray import ndarray
from .nn import _check_same_device

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm"]


def _compute(dtype):
    return numpy.dtype(numpy.float32) if dtype.name in ("float16", "bfloat16") else dtype


def _axis(op: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise numpy.exceptions.AxisError(axis, ndim, f"{op}: axis")
    return axis % ndim


def _check_param(op: str, name: str, p, shape, data) -> None:
    if p is not None and p.shape != shape:
        raise ValueError(f"{op}: {name} has shape {p.shape}, expected {shape} for data of "
                         f"shape {data.shape}")


def _normalize(op, data, gamma, beta, view, reduce_axes, param_view, eps, fix_gamma=False,
               stats=None, reduce_stats=None):
    """The shared core.

    Args:
        view: shape ``data`` is reshaped to (e.g. channel groups split out).
        reduce_axes: axes of ``view`` the statistics run over.
        param_view: shape ``gamma``/``beta`` broadcast as against ``view``.
        stats: ``(mean, var)`` raw arrays to use instead of batch statistics (inference).
        reduce_stats: maps this call's per-slot ``(sums, counts)`` to the sums over all
            participants (SyncBatchNorm); None uses this call's data alone.

    Returns:
        The output ndarray and the raw (mean, var) used.
    """
    device = _check_same_device(op, data, gamma, beta)
    xp, dtype = data._xp, data.dtype
    compute = _compute(dtype)
    with _backend.on(device):
        x = data._data.astype(compute, copy=False).reshape(view)
        g = None if gamma is None or fix_gamma else \
            gamma._data.astype(compute, copy=False).reshape(param_view)
        b = None if beta is None else beta._data.astype(compute, copy=False).reshape(param_view)
        count = x.size // max(1, numpy.prod([x.shape[a] for a in range(x.ndim)
                                             if a not in reduce_axes], dtype=int))
        if stats is None:
            s1 = x.sum(axis=reduce_axes, keepdims=True)
            s2 = (x * x).sum(axis=reduce_axes, keepdims=True)
            local_count = count
            if reduce_stats is not None:
                (s1, s2), count = reduce_stats((s1, s2), local_count)
            mean = s1 / count
            var = xp.maximum(s2 / count - mean * mean, 0)
            if reduce_stats is None:
                # Two passes: exact for data with a large mean (no cancellation).
                centred = x - mean
                var = (centred * centred).mean(axis=reduce_axes, keepdims=True)
        else:
            mean, var = (s.astype(compute, copy=False).reshape(param_view) for s in stats)
        inv = 1 / xp.sqrt(var + eps)
        xhat = (x - mean) * inv
        y = xhat if g is None else xhat * g
        if b is not None:
            y = y + b
        out = ndarray(y.astype(dtype, copy=False).reshape(data.shape), device)
    inputs = tuple(a for a in (data, gamma, beta) if a is not None)
    param_axes = tuple(a for a in range(len(view)) if param_view[a] == 1)

    def backward(dy):
        with _backend.on(device):
            dy = dy.astype(compute, copy=False).reshape(view)
            grads = []
            if requires_grad(data):
                dxhat = dy if g is None else dy * g
                if stats is None:
                    m1 = dxhat.sum(axis=reduce_axes, keepdims=True)
                    m2 = (dxhat * xhat).sum(axis=reduce_axes, keepdims=True)
                    if reduce_stats is not None:
                        (m1, m2), _ = reduce_stats((m1, m2), local_count)
                    dx = inv * (dxhat - m1 / count - xhat * (m2 / count))
                else:
                    dx = dxhat * inv
                grads.append(dx.astype(dtype, copy=False).reshape(data.shape))
            else:
                grads.append(None)
            if gamma is not None:
                dg = None
                if fix_gamma:
                    dg = xp.zeros(gamma.shape, dtype=gamma.dtype)
                elif requires_grad(gamma):
                    dg = (dy * xhat).sum(axis=param_axes).reshape(gamma.shape)
                    dg = dg.astype(gamma.dtype, copy=False)
                grads.append(dg)
            if beta is not None:
                grads.append(dy.sum(axis=param_axes).reshape(beta.shape)
                             .astype(beta.dtype, copy=False)
                             if requires_grad(beta) else None)
        return tuple(grads)
    return record_op(out, inputs, backward), mean, var


def _channel_sums(xp, a3):
    """Per-channel sums of ``a3`` (pre, C, post): a matrix-vector product with ones (BLAS,
    measured twice as fast as ``sum(axis=(0, 2))`` on ResNet shapes)."""
    return (a3 @ xp.ones(a3.shape[2], dtype=a3.dtype)).sum(axis=0)


def _channel_dots(xp, a3, b3):
    """Per-channel sums of ``a3 * b3`` without the product's temporary array."""
    return xp.einsum("ncx,ncx->c", a3, b3)


def _batch_norm_train(op, data, gamma, beta, axis, eps, fix_gamma):
    """``_normalize`` for batch statistics over every axis but ``axis``, in fewer passes
    over the data: per-channel reductions as products (no squared temporaries), the
    centred data scaled in place into ``xhat``, and a backward that reads ``dy`` and
    ``xhat`` once for all three gradients. Same formulas as ``_normalize``."""
    device = _check_same_device(op, data, gamma, beta)
    xp, dtype = data._xp, data.dtype
    compute = _compute(dtype)
    channels = data.shape[axis]
    view = (int(numpy.prod(data.shape[:axis], dtype=int)), channels,
            int(numpy.prod(data.shape[axis + 1:], dtype=int)))
    count = view[0] * view[2]
    with _backend.on(device):
        x3 = data._data.astype(compute, copy=False).reshape(view)
        g = None if gamma is None or fix_gamma else gamma._data.astype(compute, copy=False)
        b = None if beta is None else beta._data.astype(compute, copy=False)
        mean = _channel_sums(xp, x3) / count
        xhat = x3 - mean[:, None]
        # Two passes: exact for data with a large mean (no cancellation).
        var = _channel_dots(xp, xhat, xhat) / count
        inv = 1 / xp.sqrt(var + eps)
        xhat *= inv[:, None]
        y = xhat * g[:, None] if g is not None else xhat.copy()
        if b is not None:
            y += b[:, None]
        out = ndarray(y.astype(dtype, copy=False).reshape(data.shape), device)
    inputs = tuple(a for a in (data, gamma, beta) if a is not None)

    def backward(dy):
        with _backend.on(device):
            dy3 = dy.astype(compute, copy=False).reshape(view)
            sum_dy = _channel_sums(xp, dy3)
            sum_dy_xhat = _channel_dots(xp, dy3, xhat)
            grads = [None]
            if requires_grad(data):
                # dx = g inv (dy - sum(dy) / count - xhat sum(dy xhat) / count)
                scale = inv if g is None else g * inv
                dx = dy3 * scale[:, None]
                shift = xhat * (scale * sum_dy_xhat / count)[:, None]
                shift += (scale * sum_dy / count)[:, None]
                dx -= shift
                grads[0] = dx.astype(dtype, copy=False).reshape(data.shape)
            if gamma is not None:
                dg = None
                if fix_gamma:
                    dg = xp.zeros(gamma.shape, dtype=gamma.dtype)
                elif requires_grad(gamma):
                    dg = sum_dy_xhat.astype(gamma.dtype, copy=False)
                grads.append(dg)
            if beta is not None:
                grads.append(sum_dy.astype(beta.dtype, copy=False)
                             if requires_grad(beta) else None)
        return tuple(grads)
    return record_op(out, inputs, backward), mean, var


def _with_stats(out, mean, var, device, output_mean_var):
    if not output_mean_var:
        return out
    return out, ndarray(mean.reshape(-1), device), ndarray(var.reshape(-1), device)


def batch_norm(x, gamma, beta, running_mean, running_var, eps=1e-3, momentum=0.9,
               fix_gamma=True, use_global_stats=False, output_mean_var=False, axis=1,
               cudnn_off=False, min_calib_range=None, max_calib_range=None,
               _reduce_stats=None):
    """MXNet's ``BatchNorm`` over every axis but ``axis`` (the channels).

    In training (``autograd.record()`` or ``train_mode()``) and without
    ``use_global_stats``, the batch's statistics normalise and the running statistics
    (arrays of the data's device) are updated in place:
    ``running = running * momentum + batch * (1 - momentum)`` (biased variance, as
    MXNet). Otherwise the running statistics normalise. ``fix_gamma`` treats gamma as 1 and
    gives it a zero gradient.
    """
    del cudnn_off, min_calib_range, max_calib_range
    op = "batch_norm"
    _check_same_device(op, x, gamma, beta, running_mean, running_var)
    axis = _axis(op, axis, x.ndim)
    channels = x.shape[axis]
    for name, p in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _check_param(op, name, p, (channels,), x)
    param_view = tuple(channels if a == axis else 1 for a in range(x.ndim))
    reduce_axes = tuple(a for a in range(x.ndim) if a != axis)
    training = autograd.is_training() and not use_global_stats
    if training and _reduce_stats is None:
        out, mean, var = _batch_norm_train(op, x, gamma, beta, axis, eps, fix_gamma)
    else:
        stats = None if training else (running_mean._data, running_var._data)
        out, mean, var = _normalize(op, x, gamma, beta, x.shape, reduce_axes, param_view,
                                    eps, fix_gamma=fix_gamma, stats=stats,
                                    reduce_stats=_reduce_stats)
    if training:
        with _backend.on(x.device):
            for running, batch in ((running_mean, mean), (running_var, var)):
                raw = running._data
                update = raw.astype(batch.dtype) * momentum + batch.reshape(-1) * (1 - momentum)
                raw[...] = update.astype(raw.dtype, copy=False)
    return _with_stats(out, mean, var, x.device, output_mean_var)


def layer_norm(data=None, gamma=None, beta=None, axis=-1, eps=1e-5, output_mean_var=False):
    """MXNet's ``LayerNorm``: normalise along ``axis``; gamma and beta have that axis'
    length."""
    op = "layer_norm"
    axis = _axis(op, axis, data.ndim)
    shape = (data.shape[axis],)
    _check_param(op, "gamma", gamma, shape, data)
    _check_param(op, "beta", beta, shape, data)
    param_view = tuple(data.shape[axis] if a == axis else 1 for a in range(data.ndim))
    out, mean, var = _normalize(op, data, gamma, beta, data.shape, (axis,), param_view, eps)
    return _with_stats(out, mean, var, data.device, output_mean_var)


def group_norm(data=None, gamma=None, beta=None, num_groups=1, eps=1e-5,
               output_mean_var=False):
    """MXNet's ``GroupNorm``: data (N, C, ...) split into ``num_groups`` channel groups,
    each normalised over its channels and spatial axes; gamma and beta are per channel
    (C,)."""
    op = "group_norm"
    if data.ndim < 2:
        raise ValueError(f"{op}: data must be (N, C, ...), got shape {data.shape}")
    n, c = data.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ValueError(f"{op}: data of shape {data.shape} has {c} channels, not divisible "
                         f"by num_groups={num_groups}")
    _check_param(op, "gamma", gamma, (c,), data)
    _check_param(op, "beta", beta, (c,), data)
    rest = data.shape[2:]
    view = (n, num_groups, c // num_groups) + rest
    param_view = (1, num_groups, c // num_groups) + (1,) * len(rest)
    out, mean, var = _normalize(op, data, gamma, beta, view, tuple(range(2, len(view))),
                                param_view, eps)
    return _with_stats(out, mean, var, data.device, output_mean_var)


def instance_norm(data=None, gamma=None, beta=None, eps=1e-3):
    """MXNet's ``InstanceNorm``: each (sample, channel) normalised over its spatial axes;
    gamma and beta are per channel (C,)."""
    op = "instance_norm"
    if data.ndim < 3:
        raise ValueError(f"{op}: data must be (N, C, spatial...), got shape {data.shape}")
    c = data.shape[1]
    _check_param(op, "gamma", gamma, (c,), data)
    _check_param(op, "beta", beta, (c,), data)
    param_view = (1, c) + (1,) * (data.ndim - 2)
    out, _, _ = _normalize(op, data, gamma, beta, data.shape, tuple(range(2, data.ndim)),
                           param_view, eps)
    return out
