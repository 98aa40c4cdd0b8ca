"""``mx.npx`` normalisation operators: ``batch_norm``, ``layer_norm``, ``group_norm`` and
``instance_norm``, forward and backward.

Each is one normalisation ``xhat = (x - mean) / sqrt(var + eps)`` over some axes followed
by ``xhat * gamma + beta`` per channel; they differ only in the axes (one core,
``_normalize``). float16 and bfloat16 compute in float32 and round once.

On a GPU, float32, float16 and bfloat16 batch norm, layer norm (over the last axis), group
norm and instance norm (group norm with one channel per group) run gluonlite's own kernels
(``kernels/norm.cu`` through ``gluonlite._kernels``): the statistics in one read of the data
(Welford, float32), the normalisation and batch norm's running statistics' update without
temporaries, the backward in two passes. SyncBatchNorm (statistics summed across devices),
layer norm over another axis, float64 and empty data take the array-op path of
``_normalize``, as the CPU does.

>>> import gluonlite as mx
>>> x = mx.np.array([[1., 2., 3.], [2., 4., 6.]])
>>> y = mx.npx.layer_norm(x, mx.np.ones((3,)), mx.np.zeros((3,)), eps=0)
>>> [round(v, 3) for v in y[0].tolist()]
[-1.225, 0.0, 1.225]
"""

from __future__ import annotations

import math

import numpy

from .. import _backend, autograd
from ..autograd import record_op, requires_grad
from .. import np as _np
from ..ndarray import ndarray
from .nn import _check_same_device
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any
from .._typing import RawArray
from ..device import Device

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm"]


def _compute(dtype: numpy.dtype[Any]) -> numpy.dtype[Any]:
    return numpy.dtype(numpy.float32) if dtype.name in ("float16", "bfloat16") else dtype


def _axis(op: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise numpy.exceptions.AxisError(axis, ndim, f"{op}: axis")
    return axis % ndim


def _check_param(op: str, name: str, p: Any, shape: tuple[int, ...], data: ndarray) -> None:
    if p is not None and p.shape != shape:
        raise ValueError(
            f"{op}: {name} has shape {p.shape}, expected {shape} for data of shape {data.shape}"
        )


def _graph(
    data: ndarray,
    gamma: ndarray | None,
    beta: ndarray | None,
    view: tuple[int, ...],
    reduce_axes: tuple[int, ...],
    param_view: tuple[int, ...],
    eps: float,
    fix_gamma: bool,
    stats: Any,
) -> Callable[..., Any]:
    """The normalisation's gradients on recorded arrays (create_graph), as the ``graph``
    of its ``record_op``: batch statistics (``stats`` None) are recomputed from the data so
    that their dependence on it is recorded too; otherwise ``stats`` are the raw (mean,
    1/sqrt(var + eps)) that normalised, constants of the data's device."""
    device = data.device
    param_axes = tuple(a for a in range(len(view)) if param_view[a] == 1)

    def graph(out: ndarray, dy: ndarray) -> tuple[Any, ...]:
        xv = data.reshape(view)
        dy = dy.reshape(view)
        if stats is None:
            mu = xv.mean(axis=reduce_axes, keepdims=True)
            centred = xv - mu
            inv_ = 1 / _np.sqrt((centred * centred).mean(axis=reduce_axes, keepdims=True) + eps)
        else:
            centred = xv - ndarray(stats[0].reshape(param_view), device)
            inv_ = ndarray(stats[1].reshape(param_view), device)
        xhat_ = centred * inv_
        grads: list[ndarray | None] = []
        if requires_grad(data):
            dxhat = dy if gamma is None or fix_gamma else dy * gamma.reshape(param_view)
            if stats is None:
                dx = inv_ * (
                    dxhat
                    - dxhat.mean(axis=reduce_axes, keepdims=True)
                    - xhat_ * (dxhat * xhat_).mean(axis=reduce_axes, keepdims=True)
                )
            else:
                dx = dxhat * inv_
            grads.append(dx.reshape(data.shape))
        else:
            grads.append(None)
        if gamma is not None:
            dg = None
            if fix_gamma:
                dg = _np.zeros(gamma.shape, dtype=gamma.dtype, device=device)
            elif requires_grad(gamma):
                dg = (dy * xhat_).sum(axis=param_axes).reshape(gamma.shape)
            grads.append(dg)
        if beta is not None:
            grads.append(
                dy.sum(axis=param_axes).reshape(beta.shape) if requires_grad(beta) else None
            )
        return tuple(grads)

    return graph


def _normalize(
    op: str,
    data: ndarray,
    gamma: ndarray,
    beta: ndarray,
    view: tuple[int, ...],
    reduce_axes: tuple[int, ...],
    param_view: tuple[int, ...],
    eps: float,
    fix_gamma: bool = False,
    stats: Any = None,
    reduce_stats: Any = None,
) -> tuple[ndarray, RawArray, RawArray]:
    """The shared core.

    Args:
        view: shape ``data`` is reshaped to (e.g. channel groups split out).
        reduce_axes: axes of ``view`` the statistics run over.
        param_view: shape ``gamma``/``beta`` broadcast as against ``view``.
        stats: ``(mean, var)`` raw arrays to use instead of batch statistics (inference).
        reduce_stats: ``reduce_stats(arrays, count, merge)`` gathers this call's per-slot
            ``(arrays, count)`` with every other participant's (SyncBatchNorm's devices
            and ranks) and returns ``merge`` of them all (``_merge_moments`` forward,
            ``_merge_sums`` backward); None uses this call's data alone.

    Returns:
        The output ndarray and the raw (mean, var) used.
    """
    device = _check_same_device(op, data, gamma, beta)
    xp, dtype = data._xp, data.dtype
    compute = _compute(dtype)
    with _backend.on(device):
        x = data._data.astype(compute, copy=False).reshape(view)
        g = (
            None
            if gamma is None or fix_gamma
            else gamma._data.astype(compute, copy=False).reshape(param_view)
        )
        b = None if beta is None else beta._data.astype(compute, copy=False).reshape(param_view)
        # A Python int: a NumPy int64 would promote float32 statistics to float64.
        count = x.size // max(
            1, math.prod(x.shape[a] for a in range(x.ndim) if a not in reduce_axes)
        )
        if stats is None:
            s1 = x.sum(axis=reduce_axes, keepdims=True)
            local_count = count
            mean = s1 / count
            # Two passes: exact for data with a large mean (no cancellation).
            centred = x - mean
            if reduce_stats is None:
                var = (centred * centred).mean(axis=reduce_axes, keepdims=True)
            else:
                m2 = (centred * centred).sum(axis=reduce_axes, keepdims=True)
                (s1, m2), count = reduce_stats((s1, m2), local_count, _merge_moments)
                mean, var = s1 / count, m2 / count
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

    def backward(dy: RawArray) -> Any:
        with _backend.on(device):
            dy = dy.astype(compute, copy=False).reshape(view)
            grads = []
            if requires_grad(data):
                dxhat = dy if g is None else dy * g
                if stats is None:
                    m1 = dxhat.sum(axis=reduce_axes, keepdims=True)
                    m2 = (dxhat * xhat).sum(axis=reduce_axes, keepdims=True)
                    if reduce_stats is not None:
                        (m1, m2), _ = reduce_stats((m1, m2), local_count, _merge_sums)
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
                grads.append(
                    dy.sum(axis=param_axes).reshape(beta.shape).astype(beta.dtype, copy=False)
                    if requires_grad(beta)
                    else None
                )
        return tuple(grads)

    if reduce_stats is not None:  # statistics shared across calls (SyncBatchNorm)
        return record_op(out, inputs, backward, op), mean, var

    graph = _graph(
        data,
        gamma,
        beta,
        view,
        reduce_axes,
        param_view,
        eps,
        fix_gamma,
        None if stats is None else (mean, inv),
    )
    return record_op(out, inputs, backward, graph), mean, var


def _merge_sums(parts: Any) -> tuple[list[Any], Any]:
    """``[(arrays, count), ...]`` -> their element-wise sums and total count, added in
    the order given (so every participant that merges the same list gets the same bits)."""
    arrays = [sum(p[0][i] for p in parts) for i in range(len(parts[0][0]))]
    return arrays, sum(p[1] for p in parts)


def _merge_moments(parts: Any) -> tuple[list[Any], Any]:
    """``[((sum, m2), count), ...]``, ``m2`` the sum of squared deviations from each part's
    own mean, -> the same for the union of the parts (Chan et al.'s pairwise update).

    Unlike merging sums of squares, no cancellation: exact for data whose mean is large
    against its spread. Merging merged groups gives the same result, so the devices of a
    process and then the processes can merge in turn.
    """
    nonempty = [p for p in parts if p[1] > 0]
    if not nonempty:
        return _merge_sums(parts)  # count 0: the mean is 0/0, as without SyncBatchNorm
    parts = nonempty
    (total,), count = _merge_sums([((p[0][0],), p[1]) for p in parts])
    mean = total / count
    m2 = sum(p[0][1] + p[1] * (p[0][0] / p[1] - mean) ** 2 for p in parts)
    return [total, m2], count


# The GPU kernels of batch_norm, layer_norm and group_norm/instance_norm (kernels/norm.cu);
# tests switch them off to compare with the array-op path.
_use_kernels = True


def _kernel_path(x: ndarray) -> bool:
    if not _use_kernels or x._xp is numpy or x.size == 0:
        return False
    from .. import _kernels

    return _kernels.norm_ctype(x.dtype) is not None


def _float32(xp: ModuleType, p: ndarray | None) -> RawArray:
    """A parameter's data as a C-contiguous float32 array (no copy when it is one)."""
    return None if p is None else _backend.contiguous(xp, p._data.astype(numpy.float32, copy=False))


def _batch_norm_kernels(
    x: ndarray,
    gamma: ndarray | None,
    beta: ndarray | None,
    running_mean: ndarray,
    running_var: ndarray,
    axis: int,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    training: bool,
) -> tuple[ndarray, RawArray, RawArray]:
    """batch_norm through kernels/norm.cu: (out, mean, var) as ``_normalize`` returns them,
    the running statistics updated in training."""
    from .. import _kernels

    device, xp = x.device, x._xp
    with _backend.on(device):
        raw = _backend.contiguous(xp, x._data)
        g = None if fix_gamma else _float32(xp, gamma)
        b = _float32(xp, beta)
        if training:
            running = (running_mean._data, running_var._data)
            in_place = all(r.dtype == numpy.float32 and r.flags.c_contiguous for r in running)
            y, mean, var, invstd = _kernels.batch_norm_forward(
                raw, axis, g, b, eps, None, running if in_place else None, momentum
            )
            if not in_place:  # running statistics of another dtype: updated as _normalize's
                _update_running(running_mean, running_var, mean, var, momentum)
        else:
            y, mean, var, invstd = _kernels.batch_norm_forward(
                raw, axis, g, b, eps, (_float32(xp, running_mean), _float32(xp, running_var))
            )
        out = ndarray(y, device)
    inputs = tuple(a for a in (x, gamma, beta) if a is not None)

    def backward(dy: RawArray) -> tuple[Any, ...]:
        with _backend.on(device):
            dy = _backend.contiguous(xp, dy.astype(x.dtype, copy=False))
            want_gamma = gamma is not None and not fix_gamma and requires_grad(gamma)
            want_beta = beta is not None and requires_grad(beta)
            dx, dg, db = _kernels.batch_norm_backward(
                raw,
                dy,
                axis,
                mean,
                invstd,
                g,
                training,
                need_dx=requires_grad(x),
                need_params=want_gamma or want_beta,
            )
            grads = [dx]
            if gamma is not None:
                if fix_gamma:
                    grads.append(xp.zeros(gamma.shape, dtype=gamma.dtype))
                else:
                    grads.append(
                        dg.reshape(gamma.shape).astype(gamma.dtype, copy=False)
                        if want_gamma
                        else None
                    )
            if beta is not None:
                grads.append(
                    db.reshape(beta.shape).astype(beta.dtype, copy=False) if want_beta else None
                )
        return tuple(grads)

    param_view = tuple(x.shape[axis] if a == axis else 1 for a in range(x.ndim))
    graph = _graph(
        x,
        gamma,
        beta,
        x.shape,
        tuple(a for a in range(x.ndim) if a != axis),
        param_view,
        eps,
        fix_gamma,
        None if training else (mean, invstd),
    )
    return record_op(out, inputs, backward, graph), mean, var


def _layer_norm_kernels(
    data: ndarray, gamma: ndarray | None, beta: ndarray | None, eps: float
) -> tuple[ndarray, RawArray, RawArray]:
    """layer_norm over the last axis through kernels/norm.cu: (out, mean, var)."""
    from .. import _kernels

    last = data.ndim - 1
    param_view = tuple(data.shape[last] if a == last else 1 for a in range(data.ndim))
    return _row_norm_kernels(
        data,
        gamma,
        beta,
        eps,
        _kernels.layer_norm_forward,
        _kernels.layer_norm_backward,
        (data.shape, (last,), param_view),
    )


def _group_norm_kernels(
    data: ndarray, gamma: ndarray | None, beta: ndarray | None, groups: int, eps: float
) -> tuple[ndarray, RawArray, RawArray]:
    """group_norm (and instance_norm, ``groups`` = C) of (N, C, ...) data through
    kernels/norm.cu: (out, mean, var), the statistics (N, groups)."""
    from .. import _kernels

    return _row_norm_kernels(
        data,
        gamma,
        beta,
        eps,
        partial(_kernels.group_norm_forward, groups=groups),
        partial(_kernels.group_norm_backward, groups=groups),
        _group_view(data.shape, groups),
    )


def _row_norm_kernels(
    data: ndarray,
    gamma: ndarray | None,
    beta: ndarray | None,
    eps: float,
    forward: Callable[..., Any],
    backward_kernel: Callable[..., Any],
    graph_view: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]],
) -> tuple[ndarray, RawArray, RawArray]:
    """A norm over rows with saved row statistics (layer and group norm) through the
    kernels ``forward`` / ``backward_kernel``; ``graph_view`` = (view, reduce axes, parameter
    view) of the recorded graph (create_graph), the array-op form of the same norm."""
    device, xp = data.device, data._xp
    with _backend.on(device):
        raw = _backend.contiguous(xp, data._data)
        g, b = _float32(xp, gamma), _float32(xp, beta)
        y, mean, var, invstd = forward(raw, gamma=g, beta=b, eps=eps)
        out = ndarray(y, device)
    inputs = tuple(a for a in (data, gamma, beta) if a is not None)

    def backward(dy: RawArray) -> tuple[Any, ...]:
        with _backend.on(device):
            dy = _backend.contiguous(xp, dy.astype(data.dtype, copy=False))
            want_gamma = gamma is not None and requires_grad(gamma)
            want_beta = beta is not None and requires_grad(beta)
            dx, dg, db = backward_kernel(
                raw,
                dy,
                mean=mean,
                invstd=invstd,
                gamma=g,
                need_dx=requires_grad(data),
                need_params=want_gamma or want_beta,
            )
            grads = [dx]
            if gamma is not None:
                grads.append(dg.astype(gamma.dtype, copy=False) if want_gamma else None)
            if beta is not None:
                grads.append(db.astype(beta.dtype, copy=False) if want_beta else None)
        return tuple(grads)

    view, reduce_axes, param_view = graph_view
    graph = _graph(data, gamma, beta, view, reduce_axes, param_view, eps, False, None)
    return record_op(out, inputs, backward, graph), mean, var


def _group_view(
    shape: tuple[int, ...], groups: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(view, reduce_axes, param_view) of group norm over (N, C, ...) data (``_normalize``'s
    arguments): channels split into (groups, C / groups), statistics over all but N and
    the group."""
    n, c = shape[:2]
    rest = shape[2:]
    view = (n, groups, c // groups) + rest
    param_view = (1, groups, c // groups) + (1,) * len(rest)
    return view, tuple(range(2, len(view))), param_view


def _update_running(
    running_mean: ndarray, running_var: ndarray, mean: RawArray, var: RawArray, momentum: float
) -> None:
    """``running = running * momentum + batch * (1 - momentum)`` in the running arrays'
    dtype (MXNet's biased variance)."""
    with _backend.on(running_mean.device):
        for running, batch in ((running_mean, mean), (running_var, var)):
            raw = running._data
            update = raw.astype(batch.dtype) * momentum + batch.reshape(-1) * (1 - momentum)
            raw[...] = update.astype(raw.dtype, copy=False)


def _channel_sums(xp: ModuleType, a3: RawArray) -> RawArray:
    """Per-channel sums of ``a3`` (pre, C, post): a matrix-vector product with ones (BLAS,
    measured twice as fast as ``sum(axis=(0, 2))`` on ResNet shapes)."""
    return (a3 @ xp.ones(a3.shape[2], dtype=a3.dtype)).sum(axis=0)


def _channel_dots(xp: ModuleType, a3: RawArray, b3: RawArray) -> RawArray:
    """Per-channel sums of ``a3 * b3`` without the product's temporary array."""
    return xp.einsum("ncx,ncx->c", a3, b3)


def _batch_norm_train(
    op: str,
    data: ndarray,
    gamma: ndarray | None,
    beta: ndarray | None,
    axis: int,
    eps: float,
    fix_gamma: bool,
) -> tuple[ndarray, RawArray, RawArray]:
    """``_normalize`` for batch statistics over every axis but ``axis``, in fewer passes
    over the data: per-channel reductions as products (no squared temporaries), the
    centred data scaled in place into ``xhat``, and a backward that reads ``dy`` and
    ``xhat`` once for all three gradients. Same formulas as ``_normalize``."""
    device = _check_same_device(op, data, gamma, beta)
    xp, dtype = data._xp, data.dtype
    compute = _compute(dtype)
    channels = data.shape[axis]
    view = (
        int(numpy.prod(data.shape[:axis], dtype=int)),
        channels,
        int(numpy.prod(data.shape[axis + 1 :], dtype=int)),
    )
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

    def backward(dy: RawArray) -> tuple[Any, ...]:
        with _backend.on(device):
            dy3 = dy.astype(compute, copy=False).reshape(view)
            sum_dy = _channel_sums(xp, dy3)
            sum_dy_xhat = _channel_dots(xp, dy3, xhat)
            grads: list[Any] = [None]
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
                grads.append(sum_dy.astype(beta.dtype, copy=False) if requires_grad(beta) else None)
        return tuple(grads)

    param_view = tuple(channels if a == axis else 1 for a in range(data.ndim))
    graph = _graph(
        data,
        gamma,
        beta,
        data.shape,
        tuple(a for a in range(data.ndim) if a != axis),
        param_view,
        eps,
        fix_gamma,
        None,
    )
    return record_op(out, inputs, backward, graph), mean, var


def _with_stats(
    out: ndarray, mean: RawArray, var: RawArray, device: Device, output_mean_var: bool
) -> Any:
    if not output_mean_var:
        return out
    return out, ndarray(mean.reshape(-1), device), ndarray(var.reshape(-1), device)


def batch_norm(
    x: ndarray,
    gamma: ndarray,
    beta: ndarray,
    running_mean: ndarray,
    running_var: ndarray,
    eps: float = 1e-3,
    momentum: float = 0.9,
    fix_gamma: bool = True,
    use_global_stats: bool = False,
    output_mean_var: bool = False,
    axis: int = 1,
    cudnn_off: bool = False,
    min_calib_range: float | None = None,
    max_calib_range: float | None = None,
    _reduce_stats: Any = None,
) -> Any:
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
    for name, p in (
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        _check_param(op, name, p, (channels,), x)
    param_view = tuple(channels if a == axis else 1 for a in range(x.ndim))
    reduce_axes = tuple(a for a in range(x.ndim) if a != axis)
    training = autograd.is_training() and not use_global_stats
    if _reduce_stats is None and _kernel_path(x):
        out, mean, var = _batch_norm_kernels(
            x, gamma, beta, running_mean, running_var, axis, eps, momentum, fix_gamma, training
        )
        return _with_stats(out, mean, var, x.device, output_mean_var)
    if training and _reduce_stats is None:
        out, mean, var = _batch_norm_train(op, x, gamma, beta, axis, eps, fix_gamma)
    else:
        stats = None if training else (running_mean._data, running_var._data)
        out, mean, var = _normalize(
            op,
            x,
            gamma,
            beta,
            x.shape,
            reduce_axes,
            param_view,
            eps,
            fix_gamma=fix_gamma,
            stats=stats,
            reduce_stats=_reduce_stats,
        )
    if training:
        _update_running(running_mean, running_var, mean, var, momentum)
    return _with_stats(out, mean, var, x.device, output_mean_var)


def layer_norm(
    data: Any = None,
    gamma: Any = None,
    beta: Any = None,
    axis: int = -1,
    eps: float = 1e-5,
    output_mean_var: bool = False,
) -> Any:
    """MXNet's ``LayerNorm``: normalise along ``axis``; gamma and beta have that axis'
    length."""
    op = "layer_norm"
    axis = _axis(op, axis, data.ndim)
    shape = (data.shape[axis],)
    _check_param(op, "gamma", gamma, shape, data)
    _check_param(op, "beta", beta, shape, data)
    if axis == data.ndim - 1 and _kernel_path(data):
        _check_same_device(op, data, gamma, beta)
        out, mean, var = _layer_norm_kernels(data, gamma, beta, eps)
        return _with_stats(out, mean, var, data.device, output_mean_var)
    param_view = tuple(data.shape[axis] if a == axis else 1 for a in range(data.ndim))
    out, mean, var = _normalize(op, data, gamma, beta, data.shape, (axis,), param_view, eps)
    return _with_stats(out, mean, var, data.device, output_mean_var)


def group_norm(
    data: Any = None,
    gamma: Any = None,
    beta: Any = None,
    num_groups: int = 1,
    eps: float = 1e-5,
    output_mean_var: bool = False,
) -> Any:
    """MXNet's ``GroupNorm``: data (N, C, ...) split into ``num_groups`` channel groups,
    each normalised over its channels and spatial axes; gamma and beta are per channel
    (C,)."""
    op = "group_norm"
    if data.ndim < 2:
        raise ValueError(f"{op}: data must be (N, C, ...), got shape {data.shape}")
    n, c = data.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ValueError(
            f"{op}: data of shape {data.shape} has {c} channels, not divisible "
            f"by num_groups={num_groups}"
        )
    _check_param(op, "gamma", gamma, (c,), data)
    _check_param(op, "beta", beta, (c,), data)
    if _kernel_path(data):
        _check_same_device(op, data, gamma, beta)
        out, mean, var = _group_norm_kernels(data, gamma, beta, num_groups, eps)
        return _with_stats(out, mean, var, data.device, output_mean_var)
    view, reduce_axes, param_view = _group_view(data.shape, num_groups)
    out, mean, var = _normalize(op, data, gamma, beta, view, reduce_axes, param_view, eps)
    return _with_stats(out, mean, var, data.device, output_mean_var)


def instance_norm(
    data: Any = None, gamma: Any = None, beta: Any = None, eps: float = 1e-3
) -> ndarray:
    """MXNet's ``InstanceNorm``: each (sample, channel) normalised over its spatial axes;
    gamma and beta are per channel (C,). The same as ``group_norm`` with one channel per
    group (``num_groups`` = C), whose kernels it runs on a GPU."""
    op = "instance_norm"
    if data.ndim < 3:
        raise ValueError(f"{op}: data must be (N, C, spatial...), got shape {data.shape}")
    c = data.shape[1]
    _check_param(op, "gamma", gamma, (c,), data)
    _check_param(op, "beta", beta, (c,), data)
    if _kernel_path(data):
        _check_same_device(op, data, gamma, beta)
        return _group_norm_kernels(data, gamma, beta, c, eps)[0]
    param_view = (1, c) + (1,) * (data.ndim - 2)
    out, _, _ = _normalize(
        op, data, gamma, beta, data.shape, tuple(range(2, data.ndim)), param_view, eps
    )
    return out
