"""Optimizers (``mx.optimizer``): SGD and Adam with MXNet's arithmetic, on raw arrays.

Three layers, as in ``torch.optim``:

1. A class (:class:`SGD`, :class:`Adam`) validates hyper-parameters, creates per-parameter
   state and turns ``lr_mult``/``wd_mult``, the learning-rate scheduler and the update
   counts into plain per-tensor numbers.
2. A pure function (:func:`sgd`, :func:`adam`) takes lists of raw arrays and keyword-only
   hyper-parameters and updates weights and states in place.
3. Two paths behind each function with the same signature: ``_single_tensor_*`` (a loop, the
   reference) and ``_multi_tensor_*`` (tensors grouped by array module, device, dtype and
   hyper-parameters; small ones concatenated into flat buckets, each updated with a handful
   of vectorised ops and scattered back in place; large ones updated where they lie).

On a GPU the multi-tensor path hands float32 tensors with dense gradients and C-contiguous
weights and states to a fused kernel instead (``kernels/multi_tensor.cu``): one launch per
device and optimizer configuration updates all of them in place, whatever their number,
learning rates and weight decays. ``GLUONLITE_FUSED_OPTIMIZER=0`` turns it off (every tensor
then takes the bucketed path); other dtypes and row-sparse gradients always take that path.

Arrays are NumPy (``cpu(i)``) or CuPy (``gpu(i)``) arrays; CuPy is imported only when a CuPy
array is seen. States are raw arrays, tuples of them, or None, so they pickle as they are.

Note (row-sparse gradients):
    A gradient may be row-sparse: any object with ``.indices`` (a sorted, unique int64
    array of row ids into the weight's first axis) and ``.data`` (the rows, shape
    ``[len(indices), *weight.shape[1:]]``), e.g. :class:`RowSparseGrad`. With
    ``lazy_update=True`` only those rows of the weight and of its states change (MXNet's lazy
    update: weight decay and momentum decay are applied to the present rows only). With
    ``lazy_update=False`` the gradient is expanded to a dense one (zeros elsewhere) first,
    so every row is decayed as in a dense update.

>>> import numpy as np
>>> from gluonlite import optimizer
>>> opt = optimizer.create('sgd', learning_rate=0.1, momentum=0.9)
>>> w = np.ones(3, dtype=np.float32)
>>> state = opt.create_state(0, w)
>>> opt.update([0], [w], [np.full(3, 2.0, dtype=np.float32)], [state])
>>> w
array([0.8, 0.8, 0.8], dtype=float32)
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
from typing import Any, Callable, NamedTuple, Sequence

import numpy

from .. import _kernels
from .._backend import cupy as _cupy_module, is_gpu_array

__all__ = ["Optimizer", "SGD", "Adam", "RowSparseGrad", "create", "register", "sgd", "adam"]


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

def _is_gpu(a) -> bool:
    """``is_gpu_array(a)``, answered by one type check for the common NumPy array.

    ``is_gpu_array`` reads the type's module name (about 0.25 us), and the update asks
    this several times per tensor.
    """
    return type(a) is not numpy.ndarray and is_gpu_array(a)


def _array_module(a):
    """NumPy or CuPy, whichever holds ``a``; CuPy is not imported for NumPy arrays."""
    return _cupy_module() if _is_gpu(a) else numpy


def _device_scope(a):
    """Make ``a``'s GPU current, so that temporaries land where ``a`` lives."""
    return a.device if _is_gpu(a) else contextlib.nullcontext()


def _device_key(a):
    return ("cupy", a.device.id) if _is_gpu(a) else ("numpy", None)


def _is_row_sparse(grad) -> bool:
    return hasattr(grad, "indices") and hasattr(grad, "data")


def _check_tensors(fn_name, weights, grads, states_lists):
    """Validate the per-tensor inputs of a pure update function (cheap: metadata only)."""
    n = len(weights)
    if len(grads) != n or any(len(s) != n for s in states_lists):
        raise ValueError(
            f"{fn_name}: weights, grads and states must have the same length; got "
            f"{n} weights, {len(grads)} grads and states of lengths "
            f"{[len(s) for s in states_lists]}")
    for i, (w, g) in enumerate(zip(weights, grads)):
        if _is_row_sparse(g):
            values, what = g.data, "row-sparse gradient data"
            if w.ndim == 0:
                raise ValueError(f"{fn_name}: tensor {i} is a scalar weight; a row-sparse "
                                 "gradient needs a weight with at least one axis")
            if _is_gpu(g.indices) != _is_gpu(w):
                raise TypeError(f"{fn_name}: tensor {i}: weight is a {type(w).__module__} "
                                f"array but its row-sparse gradient indices are a "
                                f"{type(g.indices).__module__} array")
            expected = (g.indices.shape[0],) + tuple(w.shape[1:])
            if g.indices.ndim != 1 or tuple(values.shape) != expected:
                raise ValueError(
                    f"{fn_name}: tensor {i}: row-sparse gradient with indices of shape "
                    f"{tuple(g.indices.shape)} needs data of shape {expected}, got "
                    f"{tuple(values.shape)}")
        else:
            values, what = g, "gradient"
            if tuple(g.shape) != tuple(w.shape):
                raise ValueError(f"{fn_name}: tensor {i}: gradient shape {tuple(g.shape)} "
                                 f"does not match weight shape {tuple(w.shape)}")
        if _is_gpu(values) != _is_gpu(w):
            raise TypeError(f"{fn_name}: tensor {i}: weight is a {type(w).__module__} array "
                            f"but its {what} is a {type(values).__module__} array")
        if values.dtype != w.dtype:
            raise TypeError(f"{fn_name}: tensor {i}: {what} dtype {values.dtype} differs "
                            f"from weight dtype {w.dtype}; cast the gradient first")


def _dense_or_rows(weight, grad, lazy_update):
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


def _apply_one(math_fn, values, rows, buffers, hyper):
    """Run ``math_fn`` on one tensor: in place, or on its ``rows`` gathered and written back."""
    if rows is None:
        math_fn(values, *buffers, **hyper)
        return
    picked = [b[rows] for b in buffers]
    math_fn(values, *picked, **hyper)
    for b, p in zip(buffers, picked):
        b[rows] = p


def _gather(xp, arrays, rows_list):
    """One flat buffer holding ``arrays`` (or only their ``rows``) back to back."""
    parts = [(a if rows is None else a[rows]).reshape(-1) for a, rows in zip(arrays, rows_list)]
    return xp.concatenate(parts)


def _scatter(flat, arrays, rows_list):
    """Write segments of ``flat`` back into ``arrays`` in place (inverse of ``_gather``)."""
    offset = 0
    for a, rows in zip(arrays, rows_list):
        shape = a.shape if rows is None else (rows.shape[0],) + tuple(a.shape[1:])
        size = math.prod(shape)
        segment = flat[offset:offset + size].reshape(shape)
        if rows is None:
            a[...] = segment
        else:
            a[rows] = segment
        offset += size


def _apply_bucket(math_fn, xp, bucket, hyper):
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


def _foreach_single(math_fn, grads, buffers, hypers, lazy_update):
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
        raise ValueError(f"{FUSED_OPTIMIZER_ENV}={value!r}; expected '1' (use the fused GPU "
                         "optimizer kernels) or '0' (turn them off)")
    return value == "1"


def _fusable(grad, bufs) -> bool:
    """Whether one tensor can go through the fused kernels: float32 CuPy arrays on one device,
    a dense gradient, weight and states C-contiguous (written in place by address)."""
    weight = bufs[0]
    if not _is_gpu(weight) or weight.dtype != numpy.float32 or _is_row_sparse(grad):
        return False
    device = weight.device.id
    return (_is_gpu(grad) and grad.device.id == device
            and all(_is_gpu(b) and b.dtype == numpy.float32 and b.flags.c_contiguous
                    and b.device.id == device for b in bufs))


def _foreach_fused(fused_fn, grads, buffers, hypers) -> list[int]:
    """Update the tensors that :func:`_fusable` accepts with ``fused_fn``, one call per
    device, number of state arrays and hyper-parameters other than ``lr`` and ``wd`` (those
    the kernels take per tensor); return the indices of the tensors left for the caller.

    ``fused_fn(grads, buffers, lrs, wds, **shared_hyper)`` runs one fused kernel launch.
    """
    groups: dict = {}
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
            fused_fn([grads[i] for i in members], [buffers[i] for i in members],
                     [hypers[i]["lr"] for i in members], [hypers[i]["wd"] for i in members],
                     **dict(shared))
    return rest


def _foreach_multi(math_fn, grads, buffers, hypers, lazy_update, fused_fn=None):
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
    groups: dict = {}
    for i, (bufs, hyper) in enumerate(zip(buffers, hypers)):
        key = (_device_key(bufs[0]), bufs[0].dtype.str, len(bufs), tuple(hyper.items()))
        groups.setdefault(key, []).append(i)
    for (device_key, *_), members in groups.items():
        hyper = hypers[members[0]]
        limit = _BUCKET_ELEMENTS[device_key[0]]
        direct = _DIRECT_ELEMENTS[device_key[0]]
        with _device_scope(buffers[members[0]][0]):
            xp = _array_module(buffers[members[0]][0])
            bucket, filled = [], 0
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


def _fresh_copy(grad, rescale_grad):
    # A copy (never the caller's gradient); astype keeps 0-d inputs arrays, which the
    # in-place operations of the update need.
    g = grad.astype(grad.dtype, copy=True)
    if rescale_grad != 1.0:
        g *= rescale_grad
    return g


# --------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------

def _sgd_math(grad, weight, mom=None, *, lr, wd, momentum, rescale_grad, clip_gradient):
    """MXNet's ``sgd_update``/``sgd_mom_update`` on whole arrays, in place on weight and mom.

    Clipping comes before weight decay here (MXNet's SGD kernels), unlike Adam.
    """
    g = _fresh_copy(grad, rescale_grad)
    if clip_gradient is not None:
        _array_module(g).clip(g, -clip_gradient, clip_gradient, out=g)
    if wd != 0:
        g += wd * weight
    if mom is None:
        weight -= lr * g
    else:
        mom *= momentum
        mom -= lr * g
        weight += mom


def _sgd_plan(weights, moms, lrs, wds, momentum, rescale_grad, clip_gradient):
    buffers = [(w,) if m is None else (w, m) for w, m in zip(weights, moms)]
    hypers = [dict(lr=lr, wd=wd, momentum=momentum, rescale_grad=rescale_grad,
                   clip_gradient=clip_gradient) for lr, wd in zip(lrs, wds)]
    return buffers, hypers


def _single_tensor_sgd(weights, grads, moms, *, lrs, wds, momentum, rescale_grad,
                       clip_gradient, lazy_update):
    buffers, hypers = _sgd_plan(weights, moms, lrs, wds, momentum, rescale_grad,
                                clip_gradient)
    _foreach_single(_sgd_math, grads, buffers, hypers, lazy_update)


def _fused_sgd(grads, buffers, lrs, wds, *, momentum, rescale_grad, clip_gradient):
    moms = [b[1] for b in buffers] if len(buffers[0]) == 2 else None
    _kernels.multi_tensor_sgd([b[0] for b in buffers], grads, moms, lrs, wds,
                              momentum=momentum, rescale_grad=rescale_grad,
                              clip_gradient=clip_gradient)


def _multi_tensor_sgd(weights, grads, moms, *, lrs, wds, momentum, rescale_grad,
                      clip_gradient, lazy_update):
    buffers, hypers = _sgd_plan(weights, moms, lrs, wds, momentum, rescale_grad,
                                clip_gradient)
    _foreach_multi(_sgd_math, grads, buffers, hypers, lazy_update, _fused_sgd)


def sgd(weights: Sequence, grads: Sequence, moms: Sequence, *, lrs: Sequence[float],
        wds: Sequence[float], momentum: float, rescale_grad: float,
        clip_gradient: float | None, lazy_update: bool, foreach: bool = True) -> None:
    """MXNet's SGD on lists of raw arrays, updating ``weights`` and ``moms`` in place.

    Per tensor, with ``g = clip(rescale_grad * grad, clip_gradient) + wd * weight``:
    ``mom = momentum * mom - lr * g; weight += mom``, or ``weight -= lr * g`` where the
    momentum state is None.

    Args:
        weights: NumPy or CuPy arrays.
        grads: arrays of the weights' shapes and dtypes, or row-sparse gradients (see the
            module's Note).
        moms: momentum arrays shaped like the weights, or None entries (no momentum).
        lrs, wds: learning rate and weight decay per tensor (multipliers already applied).
        momentum, rescale_grad, clip_gradient: as in :class:`SGD`; ``clip_gradient=None``
            disables clipping.
        lazy_update: update only the rows present in row-sparse gradients.
        foreach: use the multi-tensor path (fewer, larger operations) instead of the loop.
    """
    _check_tensors("sgd", weights, grads, [moms, lrs, wds])
    if momentum != 0 and any(m is None for m in moms):
        raise ValueError(f"sgd: momentum={momentum} needs a momentum state for every tensor, "
                         "got None; create the states with create_state() after setting "
                         "momentum")
    fn = _multi_tensor_sgd if foreach else _single_tensor_sgd
    fn(weights, grads, moms, lrs=lrs, wds=wds, momentum=momentum, rescale_grad=rescale_grad,
       clip_gradient=clip_gradient, lazy_update=lazy_update)


# --------------------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------------------

def _adam_math(grad, weight, mean, var, *, lr, wd, beta1, beta2, epsilon, rescale_grad,
               clip_gradient):
    """MXNet's ``adam_update`` on whole arrays, in place on weight, mean and var.

    ``lr`` is already bias-corrected. Weight decay is added before clipping here (MXNet's
    Adam kernels), unlike SGD.
    """
    xp = _array_module(weight)
    g = _fresh_copy(grad, rescale_grad)
    if wd != 0:
        g += wd * weight
    if clip_gradient is not None:
        xp.clip(g, -clip_gradient, clip_gradient, out=g)
    mean *= beta1
    mean += (1.0 - beta1) * g
    var *= beta2
    var += (1.0 - beta2) * g * g
    weight -= lr * mean / (xp.sqrt(var) + epsilon)


def _bias_corrected_lr(lr, step, beta1, beta2):
    # MXNet 2 folds both bias corrections into the learning rate instead of rescaling the
    # moments, which changes where epsilon acts; kept so results match MXNet's.
    return lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)


def _adam_plan(weights, means, variances, lrs, wds, steps, beta1, beta2, epsilon,
               rescale_grad, clip_gradient):
    buffers = list(zip(weights, means, variances))
    hypers = [dict(lr=_bias_corrected_lr(lr, t, beta1, beta2), wd=wd, beta1=beta1,
                   beta2=beta2, epsilon=epsilon, rescale_grad=rescale_grad,
                   clip_gradient=clip_gradient) for lr, wd, t in zip(lrs, wds, steps)]
    return buffers, hypers


def _single_tensor_adam(weights, grads, means, variances, *, lrs, wds, steps, beta1, beta2,
                        epsilon, rescale_grad, clip_gradient, lazy_update):
    buffers, hypers = _adam_plan(weights, means, variances, lrs, wds, steps, beta1, beta2,
                                 epsilon, rescale_grad, clip_gradient)
    _foreach_single(_adam_math, grads, buffers, hypers, lazy_update)


def _fused_adam(grads, buffers, lrs, wds, **shared):
    weights, means, variances = ([b[k] for b in buffers] for k in range(3))
    _kernels.multi_tensor_adam(weights, grads, means, variances, lrs, wds, **shared)


def _multi_tensor_adam(weights, grads, means, variances, *, lrs, wds, steps, beta1, beta2,
                       epsilon, rescale_grad, clip_gradient, lazy_update):
    buffers, hypers = _adam_plan(weights, means, variances, lrs, wds, steps, beta1, beta2,
                                 epsilon, rescale_grad, clip_gradient)
    _foreach_multi(_adam_math, grads, buffers, hypers, lazy_update, _fused_adam)


def adam(weights: Sequence, grads: Sequence, means: Sequence, variances: Sequence, *,
         lrs: Sequence[float], wds: Sequence[float], steps: Sequence[int], beta1: float,
         beta2: float, epsilon: float, rescale_grad: float, clip_gradient: float | None,
         lazy_update: bool, foreach: bool = True) -> None:
    """MXNet's Adam on lists of raw arrays, updating weights, means and variances in place.

    Per tensor at its step ``t`` (1 for the first update), with
    ``g = clip(rescale_grad * grad + wd * weight, clip_gradient)``::

        mean = beta1 * mean + (1 - beta1) * g
        var = beta2 * var + (1 - beta2) * g * g
        weight -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * mean / (sqrt(var) + epsilon)

    Args:
        weights, grads: as in :func:`sgd`.
        means, variances: first and second moment arrays shaped like the weights.
        lrs, wds: learning rate and weight decay per tensor (multipliers already applied).
        steps: the update count ``t`` per tensor, for the bias correction.
        beta1, beta2, epsilon, rescale_grad, clip_gradient: as in :class:`Adam`.
        lazy_update: update only the rows present in row-sparse gradients.
        foreach: use the multi-tensor path instead of the loop.
    """
    _check_tensors("adam", weights, grads, [means, variances, lrs, wds, steps])
    fn = _multi_tensor_adam if foreach else _single_tensor_adam
    fn(weights, grads, means, variances, lrs=lrs, wds=wds, steps=steps, beta1=beta1,
       beta2=beta2, epsilon=epsilon, rescale_grad=rescale_grad, clip_gradient=clip_gradient,
       lazy_update=lazy_update)


# --------------------------------------------------------------------------------------
# Classes: validation, state, per-parameter multipliers and update counts
# --------------------------------------------------------------------------------------

_REGISTRY: dict[str, type] = {}


def register(klass: type) -> type:
    """Class decorator making ``klass`` available to :func:`create` by its lower-case name."""
    name = klass.__name__.lower()
    if name in _REGISTRY and _REGISTRY[name] is not klass:
        raise ValueError(f"register: an optimizer named {name!r} is already registered "
                         f"({_REGISTRY[name].__module__}.{_REGISTRY[name].__name__})")
    _REGISTRY[name] = klass
    return klass


def create(name: str, **kwargs) -> "Optimizer":
    """The optimizer registered as ``name`` (case-insensitive), built with ``kwargs``.

    >>> create('adam', learning_rate=0.01).learning_rate
    0.01
    """
    if not isinstance(name, str):
        raise TypeError(f"create: expected an optimizer name such as 'sgd', got {name!r}")
    try:
        klass = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"create: unknown optimizer {name!r}; registered optimizers are "
                         f"{sorted(_REGISTRY)}") from None
    return klass(**kwargs)


def _checked(owner, name, value, *, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, or a ValueError naming the owner, the setting and the range."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or too_low or too_high:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{owner}: {name} must be in {lo}, {hi}, got {value!r}")
    return value


class _Checked:
    """A float attribute validated by :func:`_checked` on every assignment."""

    def __init__(self, label, *, optional=False, **bounds):
        self.label, self.optional, self.bounds = label, optional, bounds

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value):
        if value is None and self.optional:
            setattr(obj, self.slot, None)
            return
        try:
            value = _checked(type(obj).__name__, self.label, value, **self.bounds)
        except ValueError as e:
            if self.optional:
                raise ValueError(f"{e} (use None to disable it)") from None
            raise
        setattr(obj, self.slot, value)


class Optimizer:
    """Base class: hyper-parameters shared by all optimizers, multipliers and update counts.

    Subclasses implement :meth:`create_state` and :meth:`_step`.

    Args:
        learning_rate: base learning rate, >= 0. Ignored when ``lr_scheduler`` is given
            (it becomes the scheduler's ``base_lr`` where the scheduler has one).
        wd: weight decay (L2 penalty coefficient), >= 0.
        rescale_grad: factor applied to every gradient first (Trainer sets
            ``1 / batch_size``), > 0.
        clip_gradient: clip the rescaled gradient to ``[-clip_gradient, clip_gradient]``;
            None disables clipping.
        lr_scheduler: optional callable ``num_update -> learning rate``.
        param_dict: optional ``{index: parameter}``; each parameter's ``lr_mult`` and
            ``wd_mult`` attributes scale its learning rate and weight decay.
        begin_num_update: update count to start from (Adam's bias correction uses it).
        use_fused_step: use the multi-tensor path (True) or the per-tensor loop (False).
        multi_precision: keep a float32 master copy of each float16 weight; see
            :meth:`update_multi_precision`.
    """

    def __init__(self, learning_rate: float = 0.01, wd: float = 0.0,
                 rescale_grad: float = 1.0, clip_gradient: float | None = None,
                 lr_scheduler: Callable[[int], float] | None = None,
                 param_dict: dict | None = None, begin_num_update: int = 0,
                 use_fused_step: bool = True, multi_precision: bool = False):
        self.lr = learning_rate
        self.wd = wd
        self.rescale_grad = rescale_grad
        self.clip_gradient = clip_gradient
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise TypeError(f"{self._name}: lr_scheduler must be callable as "
                            f"lr_scheduler(num_update), got {lr_scheduler!r}")
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lr"):
            lr_scheduler.base_lr = self.lr
        self.param_dict = dict(param_dict) if param_dict else {}
        if isinstance(begin_num_update, bool) or not isinstance(begin_num_update, int) \
                or begin_num_update < 0:
            raise ValueError(f"{self._name}: begin_num_update must be a non-negative int, "
                             f"got {begin_num_update!r}")
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._index_update_count: dict = {}
        self.lr_mult: dict = {}
        self.wd_mult: dict = {}
        self.use_fused_step = bool(use_fused_step)
        self.multi_precision = bool(multi_precision)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # Validated on every assignment too, because Trainer sets rescale_grad before each update.
    lr = _Checked("learning_rate", low=0.0)  # the base rate, before scheduler and lr_mult
    wd = _Checked("wd", low=0.0)
    rescale_grad = _Checked("rescale_grad", low=0.0, low_open=True)
    clip_gradient = _Checked("clip_gradient", low=0.0, low_open=True, optional=True)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update: the scheduler's, else :attr:`lr`."""
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(self.num_update))
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        """Set the base learning rate; an error while a scheduler decides it."""
        if self.lr_scheduler is not None:
            raise RuntimeError(f"{self._name}.set_learning_rate: an lr_scheduler decides the "
                               "learning rate; change the scheduler instead")
        self.lr = lr

    def _checked_mults(self, what, mults: dict) -> dict:
        return {index: _checked(self._name, f"{what}[{index!r}]", m, low=0.0)
                for index, m in dict(mults).items()}

    def set_lr_mult(self, args_lr_mult: dict) -> None:
        """Replace the ``{index: lr_mult}`` table (a ``param_dict`` entry takes precedence)."""
        self.lr_mult = self._checked_mults("lr_mult", args_lr_mult)

    def set_wd_mult(self, args_wd_mult: dict) -> None:
        """Replace the ``{index: wd_mult}`` table (a ``param_dict`` entry takes precedence)."""
        self.wd_mult = self._checked_mults("wd_mult", args_wd_mult)

    def _mults(self, what, indices, given):
        if given is not None:
            if len(given) != len(indices):
                raise ValueError(f"{self._name}.update: {len(indices)} indices but "
                                 f"{len(given)} {what}s")
            return [_checked(self._name, what, m, low=0.0) for m in given]
        table = getattr(self, what)
        result = []
        for index in indices:
            if index not in self.param_dict:
                result.append(table.get(index, 1.0))
                continue
            value = getattr(self.param_dict[index], what)
            # Read (not cached) every update, so a changed multiplier takes effect. A float
            # >= 0 is what _checked would return unchanged; only other values pay for the
            # full check (about 1 us, per parameter and update) and its message.
            if type(value) is not float or not value >= 0.0:
                value = _checked(self._name, f"{what} of parameter {index!r}", value,
                                 low=0.0)
            result.append(value)
        return result

    def _update_count(self, indices) -> None:
        for index in indices:
            count = self._index_update_count.get(index, self.begin_num_update) + 1
            self._index_update_count[index] = count
            self.num_update = max(self.num_update, count)

    def create_state(self, index, weight):
        """The optimizer state for ``weight`` (raw arrays, a tuple of them, or None)."""
        raise NotImplementedError(f"{self._name} does not implement create_state")

    def update(self, indices: Sequence, weights: Sequence, grads: Sequence,
               states: Sequence, *, lr_mults: Sequence[float] | None = None,
               wd_mults: Sequence[float] | None = None) -> None:
        """Apply one step to each ``weights[i]`` in place (MXNet 2's list signature).

        Args:
            indices: unique keys of the parameters (for multipliers and update counts).
            weights: raw NumPy/CuPy arrays.
            grads: dense arrays or row-sparse gradients (see the module's Note).
            states: what :meth:`create_state` returned for each weight; updated in place.
            lr_mults, wd_mults: per-call multipliers overriding ``param_dict`` and the
                tables of :meth:`set_lr_mult`/:meth:`set_wd_mult`.
        """
        indices, weights, grads, states = (list(x) for x in (indices, weights, grads, states))
        if not len(indices) == len(weights) == len(grads) == len(states):
            raise ValueError(f"{self._name}.update: got {len(indices)} indices, "
                             f"{len(weights)} weights, {len(grads)} grads and {len(states)} "
                             "states; expected one of each per parameter")
        if len(set(indices)) != len(indices):
            raise ValueError(f"{self._name}.update: indices must be unique, got {indices}")
        lr_mults = self._mults("lr_mult", indices, lr_mults)
        wd_mults = self._mults("wd_mult", indices, wd_mults)
        # A rejected call (bad shapes, missing states) must not advance the counts that
        # Adam's bias correction and the scheduler read.
        saved = dict(self._index_update_count), self.num_update
        self._update_count(indices)
        try:
            lr = self.learning_rate
            lrs = [lr * m for m in lr_mults]
            wds = [self.wd * m for m in wd_mults]
            self._step(indices, weights, grads, states, lrs, wds)
        except Exception:
            self._index_update_count, self.num_update = saved
            raise

    def _step(self, indices, weights, grads, states, lrs, wds) -> None:
        raise NotImplementedError(f"{self._name} does not implement _step")

    def _keeps_master_copy(self, weight) -> bool:
        return self.multi_precision and weight.dtype == numpy.float16

    def create_state_multi_precision(self, index, weight):
        """Like :meth:`create_state`; for a float16 weight under ``multi_precision``, the
        pair ``(float32 copy of weight, state of that copy)``."""
        if not self._keeps_master_copy(weight):
            return self.create_state(index, weight)
        with _device_scope(weight):
            master = weight.astype(numpy.float32)
        return (master, self.create_state(index, master))

    def update_multi_precision(self, indices: Sequence, weights: Sequence, grads: Sequence,
                               states: Sequence, **mults) -> None:
        """Like :meth:`update`, with states from :meth:`create_state_multi_precision`.

        A float16 weight under ``multi_precision`` is updated through its float32 master
        copy (its gradient cast up), then overwritten with the copy cast down, so that small
        steps accumulate instead of rounding away in float16 (MXNet's ``mp_*_update``).
        """
        weights, grads, states = list(weights), list(grads), list(states)
        masters = [i for i, w in enumerate(weights) if self._keeps_master_copy(w)]
        targets = weights[:]
        for i in masters:
            master, state = states[i]
            weights[i], states[i] = master, state
            grads[i] = _cast_grad(grads[i], numpy.float32)
        self.update(indices, weights, grads, states, **mults)
        for i in masters:
            targets[i][...] = weights[i].astype(numpy.float16)

    # param_dict holds Parameters, which are not for pickling (MXNet drops it too); the
    # Trainer restores it after loading states.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["param_dict"] = {}
        return state


def _cast_grad(grad, dtype):
    if _is_row_sparse(grad):
        return RowSparseGrad(grad.indices, grad.data.astype(dtype))
    return grad.astype(dtype)


def _zeros_like(weight):
    with _device_scope(weight):
        return _array_module(weight).zeros_like(weight)


@register
class SGD(Optimizer):
    """Stochastic gradient descent with momentum and weight decay (MXNet's ``sgd``).

    Per parameter, with ``g = clip(rescale_grad * grad, clip_gradient) + wd * weight``:
    ``mom = momentum * mom - lr * g; weight += mom`` (no momentum: ``weight -= lr * g``).

    Args:
        momentum: in [0, 1); 0 keeps no state.
        lazy_update: for row-sparse gradients, update only the rows present.
        **kwargs: see :class:`Optimizer`.

    >>> import numpy as np
    >>> opt = SGD(learning_rate=0.5, wd=0.1)
    >>> w = np.array([1.0, -2.0])
    >>> opt.update([0], [w], [np.array([0.2, 0.2])], [opt.create_state(0, w)])
    >>> w
    array([ 0.85, -2.  ])
    """

    momentum = _Checked("momentum", low=0.0, high=1.0, high_open=True)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 lazy_update: bool = True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.lazy_update = bool(lazy_update)

    def create_state(self, index, weight):
        """A zero momentum array like ``weight``, or None when ``momentum`` is 0."""
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _step(self, indices, weights, grads, states, lrs, wds):
        sgd(weights, grads, states, lrs=lrs, wds=wds, momentum=self.momentum,
            rescale_grad=self.rescale_grad, clip_gradient=self.clip_gradient,
            lazy_update=self.lazy_update, foreach=self.use_fused_step)


@register
class Adam(Optimizer):
    """Adam (MXNet's ``adam``), with the bias correction folded into the learning rate.

    Args:
        beta1, beta2: decay rates of the moment estimates, in [0, 1).
        epsilon: added to ``sqrt(var)``, > 0.
        lazy_update: for row-sparse gradients, update only the rows present.
        **kwargs: see :class:`Optimizer`.
    """

    beta1 = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2 = _Checked("beta2", low=0.0, high=1.0, high_open=True)
    epsilon = _Checked("epsilon", low=0.0, low_open=True)

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8, lazy_update: bool = True,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = bool(lazy_update)

    def create_state(self, index, weight):
        """``(mean, var)``: two zero arrays like ``weight``."""
        return (_zeros_like(weight), _zeros_like(weight))

    def _step(self, indices, weights, grads, states, lrs, wds):
        for index, state in zip(indices, states):
            if not (isinstance(state, tuple) and len(state) == 2):
                raise ValueError(f"Adam.update: the state of index {index!r} must be the "
                                 f"(mean, var) pair from create_state(), got {state!r}")
        adam(weights, grads, [s[0] for s in states], [s[1] for s in states], lrs=lrs,
             wds=wds, steps=[self._index_update_count[i] for i in indices], beta1=self.beta1,
             beta2=self.beta2, epsilon=self.epsilon, rescale_grad=self.rescale_grad,
             clip_gradient=self.clip_gradient, lazy_update=self.lazy_update,
             foreach=self.use_fused_step)
