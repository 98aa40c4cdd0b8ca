"""The shared machinery of every optimizer: array helpers, row-sparse gradients, and the
two paths an update runs through.

- ``_foreach_single``: the reference, a loop running an optimizer's math function tensor by
  tensor (``math_fn(grad, weight, *states, **hyper)``, in place).
- ``_foreach_multi``: tensors grouped by array module, device, dtype and hyper-parameters;
  small ones concatenated into flat buckets (elementwise math only), large ones updated where
  they lie; on a GPU the tensors a fused kernel serves go to it first.

Arrays here are raw NumPy (``cpu(i)``) or CuPy (``gpu(i)``) arrays; CuPy is imported only
when a CuPy array is seen. ``optimizer.py`` unwraps ``mx.np.ndarray`` arguments before they
reach this module.

Note (row-sparse gradients):
    A gradient may be row-sparse: any object with ``.indices`` (a sorted, unique int64
    array of row ids into the weight's first axis) and ``.data`` (the rows, shape
    ``[len(indices), *weight.shape[1:]]``), e.g. :class:`RowSparseGrad`. With a lazy update
    only those rows of the weight and of its states change (MXNet's lazy update: weight decay
    and momentum decay are applied to the present rows only). Otherwise the gradient is
    expanded to a dense one (zeros elsewhere) first, so every row is decayed as in a dense
    update.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
import math
import os
import threading
from typing import Any, NamedTuple

import numpy

from .._backend import cupy as _cupy_module, is_gpu_array
from collections.abc import Callable, Sequence
from types import ModuleType
from .._typing import DTypeLike, RawArray


class RowSparseGrad(NamedTuple):
    """A row-sparse gradient: rows ``data[k]`` belong to row ``indices[k]`` of the weight.

    Any object with these two attributes is accepted where a row-sparse gradient is; this
    class is only a convenient one. ``indices`` must be sorted and unique (not checked: the
    lazy update writes each listed row once, so a repeated id would keep one of its rows).
    """

    indices: Any
    data: Any


# --------------------------------------------------------------------------------------
# Array helpers shared by both paths
# --------------------------------------------------------------------------------------


def _is_gpu(a: Any) -> bool:
    """``is_gpu_array(a)``, answered by one type check for the common NumPy array.

    ``is_gpu_array`` reads the type's module name (about 0.25 us), and the update asks
    this several times per tensor.
    """
    return type(a) is not numpy.ndarray and is_gpu_array(a)


def _array_module(a: Any) -> ModuleType:
    """NumPy or CuPy, whichever holds ``a``; CuPy is not imported for NumPy arrays."""
    return _cupy_module() if _is_gpu(a) else numpy


def _device_scope(a: Any) -> AbstractContextManager[Any]:
    """Make ``a``'s GPU current, so that temporaries land where ``a`` lives."""
    return a.device if _is_gpu(a) else contextlib.nullcontext()


def _device_key(a: Any) -> Any:
    return ("cupy", a.device.id) if _is_gpu(a) else ("numpy", None)


def _is_row_sparse(grad: RawArray) -> bool:
    return hasattr(grad, "indices") and hasattr(grad, "data")


def _check_tensors(fn_name: str, weights: Any, grads: Any, states_lists: Any) -> None:
    """Validate the per-tensor inputs of a pure update function (cheap: metadata only)."""
    n = len(weights)
    if len(grads) != n or any(len(s) != n for s in states_lists):
        raise ValueError(
            f"{fn_name}: weights, grads and states must have the same length; got "
            f"{n} weights, {len(grads)} grads and states of lengths "
            f"{[len(s) for s in states_lists]}"
        )
    for i, (w, g) in enumerate(zip(weights, grads)):
        if _is_row_sparse(g):
            values, what = g.data, "row-sparse gradient data"
            if w.ndim == 0:
                raise ValueError(
                    f"{fn_name}: tensor {i} is a scalar weight; a row-sparse "
                    "gradient needs a weight with at least one axis"
                )
            if _is_gpu(g.indices) != _is_gpu(w):
                raise TypeError(
                    f"{fn_name}: tensor {i}: weight is a {type(w).__module__} "
                    f"array but its row-sparse gradient indices are a "
                    f"{type(g.indices).__module__} array"
                )
            expected = (g.indices.shape[0],) + tuple(w.shape[1:])
            if g.indices.ndim != 1 or tuple(values.shape) != expected:
                raise ValueError(
                    f"{fn_name}: tensor {i}: row-sparse gradient with indices of shape "
                    f"{tuple(g.indices.shape)} needs data of shape {expected}, got "
                    f"{tuple(values.shape)}"
                )
        else:
            values, what = g, "gradient"
            if tuple(g.shape) != tuple(w.shape):
                raise ValueError(
                    f"{fn_name}: tensor {i}: gradient shape {tuple(g.shape)} "
                    f"does not match weight shape {tuple(w.shape)}"
                )
        if _is_gpu(values) != _is_gpu(w):
            raise TypeError(
                f"{fn_name}: tensor {i}: weight is a {type(w).__module__} array "
                f"but its {what} is a {type(values).__module__} array"
            )
        if values.dtype != w.dtype:
            raise TypeError(
                f"{fn_name}: tensor {i}: {what} dtype {values.dtype} differs "
                f"from weight dtype {w.dtype}; cast the gradient first"
            )


def _dense_or_rows(weight: RawArray, grad: RawArray, lazy_update: bool) -> Any:
    """``(rows, values)``: rows None means ``values`` is a dense gradient for all of weight."""
    if not _is_row_sparse(grad):
        return None, grad
    if lazy_update:
        return grad.indices, grad.data
    xp = _array_module(weight)
    dense = xp.zeros_like(weight)
    dense[grad.indices] = grad.data
    return None, dense


# The multi-tensor path updates a tensor of at least _DIRECT_ELEMENTS where it lies and
# concatenates smaller ones into buckets of at most _BUCKET_ELEMENTS elements. Measured on
# NumPy (2-core CPU, float32 SGD and Adam): a bucket that stays in cache amortises the
# per-operation overhead (up to 1.8x faster than the loop for tiny tensors), while one flat
# buffer of the whole model streams every operation through main memory and was 10x slower
# than the loop for 8192-element tensors; from about 4096 elements on, batching a tensor
# saved less overhead than its two extra copies cost. On GPU each operation is a kernel
# launch and no cache argument applies, so the limits are far larger there (a choice not
# yet measured on a GPU).
_BUCKET_ELEMENTS = {"numpy": 1 << 14, "cupy": 1 << 24}
_DIRECT_ELEMENTS = {"numpy": 1 << 12, "cupy": 1 << 22}


def _apply_one(
    math_fn: Callable[..., None], values: Any, rows: Any, buffers: Any, hyper: dict[str, Any]
) -> None:
    """Run ``math_fn`` on one tensor: in place, or on its ``rows`` gathered and written back."""
    if rows is None:
        math_fn(values, *buffers, **hyper)
        return
    picked = [b[rows] for b in buffers]
    math_fn(values, *picked, **hyper)
    for b, p in zip(buffers, picked):
        b[rows] = p


def _gather(xp: ModuleType, arrays: Sequence[RawArray], rows_list: Any) -> RawArray:
    """One flat buffer holding ``arrays`` (or only their ``rows``) back to back."""
    parts = [(a if rows is None else a[rows]).reshape(-1) for a, rows in zip(arrays, rows_list)]
    return xp.concatenate(parts)


def _scatter(flat: RawArray, arrays: Sequence[RawArray], rows_list: Any) -> None:
    """Write segments of ``flat`` back into ``arrays`` in place (inverse of ``_gather``)."""
    offset = 0
    for a, rows in zip(arrays, rows_list):
        shape = a.shape if rows is None else (rows.shape[0],) + tuple(a.shape[1:])
        size = math.prod(shape)
        segment = flat[offset : offset + size].reshape(shape)
        if rows is None:
            a[...] = segment
        else:
            a[rows] = segment
        offset += size


def _apply_bucket(
    math_fn: Callable[..., None],
    xp: ModuleType,
    bucket: Sequence[tuple[RawArray, Any, Sequence[RawArray]]],
    hyper: dict[str, Any],
) -> None:
    """Run ``math_fn`` once over the concatenation of ``bucket``'s tensors, then scatter."""
    if len(bucket) == 1:
        _apply_one(math_fn, *bucket[0], hyper)
        return
    rows_list = [rows for _, rows, _ in bucket]
    values = xp.concatenate([v.reshape(-1) for v, _, _ in bucket])
    columns = list(zip(*[buffers for _, _, buffers in bucket]))  # one per state kind
    flats = [_gather(xp, list(column), rows_list) for column in columns]
    math_fn(values, *flats, **hyper)
    for flat, column in zip(flats, columns):
        _scatter(flat, list(column), rows_list)


def _foreach_single(
    math_fn: Callable[..., None],
    grads: Any,
    buffers: Any,
    hypers: Sequence[dict[str, Any]],
    lazy_update: bool,
) -> None:
    """The reference path: ``math_fn`` tensor by tensor.

    ``buffers[i]`` is the tuple of arrays updated in place for tensor ``i`` (its weight
    first, then its states); ``hypers[i]`` its scalar hyper-parameters.
    """
    for grad, bufs, hyper in zip(grads, buffers, hypers):
        with _device_scope(bufs[0]):
            rows, values = _dense_or_rows(bufs[0], grad, lazy_update)
            _apply_one(math_fn, values, rows, bufs, hyper)


# The fused GPU kernels are on unless this environment variable is "0" (read at every
# update, so it can be flipped in a running process).
FUSED_OPTIMIZER_ENV = "GLUONLITE_FUSED_OPTIMIZER"


def _fused_kernel_enabled() -> bool:
    value = os.environ.get(FUSED_OPTIMIZER_ENV, "1")
    if value not in ("0", "1"):
        raise ValueError(
            f"{FUSED_OPTIMIZER_ENV}={value!r}; expected '1' (use the fused GPU "
            "optimizer kernels) or '0' (turn them off)"
        )
    return value == "1"


def _fusable(grad: RawArray, bufs: Sequence[RawArray]) -> bool:
    """Whether one tensor can go through the fused kernels: float32 CuPy arrays on one device,
    a dense gradient, weight and states C-contiguous (written in place by address)."""
    weight = bufs[0]
    if not _is_gpu(weight) or weight.dtype != numpy.float32 or _is_row_sparse(grad):
        return False
    device = weight.device.id
    return (
        _is_gpu(grad)
        and grad.device.id == device
        and all(
            _is_gpu(b)
            and b.dtype == numpy.float32
            and b.flags.c_contiguous
            and b.device.id == device
            for b in bufs
        )
    )


def _foreach_fused(
    fused_fn: Callable[..., Any], grads: Any, buffers: Any, hypers: Sequence[dict[str, Any]]
) -> list[int]:
    """Update the tensors that :func:`_fusable` accepts with ``fused_fn``, one call per
    device, number of state arrays and hyper-parameters other than ``lr`` and ``wd`` (those
    the kernels take per tensor); return the indices of the tensors left for the caller.

    ``fused_fn(grads, buffers, lrs, wds, **shared_hyper)`` runs one fused kernel launch.
    """
    groups: dict[Any, Any] = {}
    rest = []
    for i, (grad, bufs, hyper) in enumerate(zip(grads, buffers, hypers)):
        if not _fusable(grad, bufs):
            rest.append(i)
            continue
        shared = tuple((k, v) for k, v in hyper.items() if k not in ("lr", "wd"))
        groups.setdefault((bufs[0].device.id, len(bufs), shared), []).append(i)
    # Read only when there is something to fuse, so the NumPy path never depends on it.
    if groups and not _fused_kernel_enabled():
        return list(range(len(buffers)))
    for (_, _, shared), members in groups.items():
        with _device_scope(buffers[members[0]][0]):
            fused_fn(
                [grads[i] for i in members],
                [buffers[i] for i in members],
                [hypers[i]["lr"] for i in members],
                [hypers[i]["wd"] for i in members],
                **dict(shared),
            )
    return rest


def _foreach_each(
    math_fn: Callable[..., None],
    grads: Any,
    buffers: Any,
    hypers: Sequence[dict[str, Any]],
    lazy_update: bool,
    fused_one: Callable[..., None],
) -> None:
    """Tensor by tensor, as :func:`_foreach_single`, but each tensor :func:`_fusable` accepts
    goes through ``fused_one(grad, bufs, hyper)`` (that tensor's kernel launches) instead of
    ``math_fn``: for updates that cannot be bucketed (per-tensor norms, or noise drawn in
    the order of the reference loop)."""
    enabled = None
    for grad, bufs, hyper in zip(grads, buffers, hypers):
        with _device_scope(bufs[0]):
            if _fusable(grad, bufs):
                if enabled is None:  # read only when there is something to fuse
                    enabled = _fused_kernel_enabled()
                if enabled:
                    fused_one(grad, bufs, hyper)
                    continue
            rows, values = _dense_or_rows(bufs[0], grad, lazy_update)
            _apply_one(math_fn, values, rows, bufs, hyper)


def _foreach_multi(
    math_fn: Callable[..., None],
    grads: Any,
    buffers: Any,
    hypers: Sequence[dict[str, Any]],
    lazy_update: bool,
    fused_fn: Callable[..., Any] | None = None,
) -> None:
    """The multi-tensor path: same arguments and results as :func:`_foreach_single`.

    With ``fused_fn`` (the fused GPU kernel doing ``math_fn``'s arithmetic), the tensors it
    serves go through it first (see :func:`_foreach_fused`). The others are grouped by array
    module, device, dtype, number of state arrays and hyper-parameters (first-seen order, so
    the result does not depend on hashing); within a group they are concatenated into
    buckets (see ``_BUCKET_ELEMENTS``) and updated with one call of ``math_fn`` per bucket.
    """
    if fused_fn is not None:
        rest = _foreach_fused(fused_fn, grads, buffers, hypers)
        if len(rest) < len(buffers):
            grads, buffers, hypers = ([seq[i] for i in rest] for seq in (grads, buffers, hypers))
    groups: dict[Any, Any] = {}
    for i, (bufs, hyper) in enumerate(zip(buffers, hypers)):
        key = (_device_key(bufs[0]), bufs[0].dtype.str, len(bufs), tuple(hyper.items()))
        groups.setdefault(key, []).append(i)
    for (device_key, *_), members in groups.items():
        hyper = hypers[members[0]]
        limit = _BUCKET_ELEMENTS[device_key[0]]
        direct = _DIRECT_ELEMENTS[device_key[0]]
        with _device_scope(buffers[members[0]][0]):
            xp = _array_module(buffers[members[0]][0])
            bucket: list[Any] = []
            filled = 0
            for i in members:
                rows, values = _dense_or_rows(buffers[i][0], grads[i], lazy_update)
                if values.size >= direct:
                    _apply_one(math_fn, values, rows, buffers[i], hyper)
                    continue
                if bucket and filled + values.size > limit:
                    _apply_bucket(math_fn, xp, bucket, hyper)
                    bucket, filled = [], 0
                bucket.append((values, rows, buffers[i]))
                filled += values.size
            if bucket:
                _apply_bucket(math_fn, xp, bucket, hyper)


def _fresh_copy(grad: RawArray, rescale_grad: float) -> RawArray:
    # A copy (never the caller's gradient); astype keeps 0-d inputs arrays, which the
    # in-place operations of the update need.
    g = grad.astype(grad.dtype, copy=True)
    if rescale_grad != 1.0:
        g *= rescale_grad
    return g


def _prepared_grad(
    grad: RawArray,
    weight: RawArray,
    *,
    rescale_grad: float,
    clip_gradient: float | None,
    wd: float,
    wd_first: bool = False,
) -> RawArray:
    """A fresh gradient ``rescale_grad * grad`` clipped to ``[-clip_gradient, clip_gradient]``
    and with ``wd * weight`` added: after the clipping (MXNet's SGD family), or before it
    with ``wd_first`` (MXNet's Adam family). ``wd * weight`` is added only for ``wd != 0``
    (``0 * inf`` would turn an infinite weight's gradient into NaN)."""
    g = _fresh_copy(grad, rescale_grad)
    if wd_first and wd != 0:
        g += wd * weight
    if clip_gradient is not None:
        _array_module(g).clip(g, -clip_gradient, clip_gradient, out=g)
    if not wd_first and wd != 0:
        g += wd * weight
    return g


# Scratch arrays of at most this many elements come from a per-thread buffer kept between
# updates (see _scratch); larger ones are allocated per call.
_SCRATCH_ELEMENTS = 1 << 22
_scratch_local = threading.local()


def _scratch(like: RawArray, count: int) -> list[RawArray]:
    """``count`` uninitialised arrays shaped and typed like ``like``, as ``out=`` targets.

    On NumPy, for up to ``_SCRATCH_ELEMENTS`` elements, they are views of a per-thread buffer
    reused by every call: a fresh temporary of a few hundred KiB costs an mmap and its page
    faults each time, which made the update several times slower than its arithmetic. The
    views are valid until the next call in the same thread. CuPy's memory pool already
    reuses blocks, so there they are fresh arrays.
    """
    xp = _array_module(like)
    n = like.size
    if xp is not numpy or n > _SCRATCH_ELEMENTS:
        return [xp.empty(like.shape, like.dtype) for _ in range(count)]
    buffers = getattr(_scratch_local, "buffers", None)
    if buffers is None:
        buffers = _scratch_local.buffers = {}
    flat = buffers.get(like.dtype.str)
    if flat is None or flat.size < count * n:
        flat = buffers[like.dtype.str] = numpy.empty(max(count * n, 1 << 12), like.dtype)
    return [flat[k * n : (k + 1) * n].reshape(like.shape) for k in range(count)]


def _adam_moments(mean: RawArray, var: RawArray, g: RawArray, beta1: float, beta2: float) -> None:
    """Adam's moment estimates, in place: ``mean = beta1 * mean + (1 - beta1) * g``,
    ``var = beta2 * var + (1 - beta2) * g * g``."""
    mean *= beta1
    mean += (1.0 - beta1) * g
    var *= beta2
    var += (1.0 - beta2) * g * g


def _cast_grad(grad: RawArray, dtype: DTypeLike) -> Any:
    if _is_row_sparse(grad):
        return RowSparseGrad(grad.indices, grad.data.astype(dtype))
    return grad.astype(dtype)


def _zeros_like(weight: RawArray, dtype: DTypeLike = None) -> RawArray:
    with _device_scope(weight):
        return _array_module(weight).zeros_like(weight, dtype=dtype)


def _norm(a: Any) -> RawArray:
    """The L2 norm of all of ``a``, as a 0-d array of ``a``'s module (no device sync)."""
    xp = _array_module(a)
    return xp.sqrt(xp.sum(xp.square(a, dtype=numpy.float64 if xp is numpy else None)))


def _ratio_or_none(numerator: RawArray, denominator: RawArray) -> tuple[RawArray, RawArray]:
    """``(numerator / denominator, ok)``: ``ok`` is False where the ratio is NaN, infinite or
    0, where MXNet's layer-wise optimizers fall back to a factor of 1 (0-d arrays)."""
    xp = _array_module(numerator)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator / denominator
    return ratio, xp.isfinite(ratio) & (ratio != 0)


def _trust_ratio(numerator: RawArray, denominator: RawArray) -> RawArray:
    """``numerator / denominator``, or 1 where that is NaN, infinite or 0 (MXNet's layer-wise
    trust ratio rule), as a 0-d array."""
    ratio, ok = _ratio_or_none(numerator, denominator)
    return _array_module(numerator).where(ok, ratio, 1.0)


def elementwise_kernel(name: str) -> Callable[..., None]:
    """The fused GPU path of optimizer ``name`` for ``_foreach_multi``: ``fused(grads,
    buffers, lrs, wds, **shared)`` updating each float32 CuPy tensor with one launch of
    ``kernels/optimizers.cu`` (see ``_kernels.optimizer_step``)."""

    def fused(
        grads: Any, buffers: Any, lrs: Sequence[float], wds: Sequence[float], **shared: Any
    ) -> None:
        from .. import _kernels

        for grad, bufs, lr, wd in zip(grads, buffers, lrs, wds):
            _kernels.optimizer_step(name, bufs[0], grad, bufs[1:], lr=lr, wd=wd, **shared)

    return fused
