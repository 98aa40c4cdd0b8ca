"""Optimizers (``mx.optimizer``): SGD and Adam with MXNet's arithmetic, on raw arrays.

Three layers, as in ``torch.optim``:

1. A class (:class:`SGD`, :class:`Adam`) validates hyper-parameters, creates per-parameter
   state and turns ``lr_mult``/``wd_mult``, the learning-rate scheduler and the update
   counts into plain per-tensor numbers.
2. A pure function (:func:`sgd`, :func:`adam`) takes lists of raw arrays and keyword-only
   hyper-parameters and updates weights and states in place.
3. Two paths behind each function with the same signature: ``_single_tensor_*`` (a loop, the
   reference) and ``_multi_tensor_*`` (tensors grouped by array module, device, dtype and
   hyper-parameters, concatenated into one flat buffer per group, updated with a handful of
   large vectorised ops and scattered back in place).

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
from typing import Any, Callable, NamedTuple, Sequence

import numpy

from ._backend import cupy as _cupy_module, is_gpu_array

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

def _array_module(a):
    """NumPy or CuPy, whichever holds ``a``; CuPy is not imported for NumPy arrays."""
    return _cupy_module() if is_gpu_array(a) else numpy


def _device_scope(a):
    """Make ``a``'s GPU current, so that temporaries land where ``a`` lives."""
    return a.device if is_gpu_array(a) else contextlib.nullcontext()


def _device_key(a):
    return ("cupy", a.device.id) if is_gpu_array(a) else ("numpy", None)


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
        if is_gpu_array(values) != is_gpu_array(w):
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


def _group(weights, keys):
    """Positions of ``weights`` grouped by (module, device, dtype, *keys[i]), in first-seen
    order so that the update order does not depend on hashing."""
    groups: dict = {}
    for i, w in enumerate(weights):
        groups.setdefault((_device_key(w), w.dtype.str) + tuple(keys[i]), []).append(i)
    return groups.items()


# --------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------

def _sgd_math(weight, grad, mom, *, lr, wd, momentum, rescale_grad, clip_gradient):
    """MXNet's ``sgd_update``/``sgd_mom_update`` on whole arrays, in place on weight and mom.

    Clipping comes before weight decay here (MXNet's SGD kernels), unlike Adam.
    """
    xp = _array_module(weight)
    # A copy (never the caller's gradient); astype keeps 0-d inputs arrays, which the
    # in-place operations below need.
    g = grad.astype(grad.dtype, copy=True)
    g *= rescale_grad
    if clip_gradient is not None:
        xp.clip(g, -clip_gradient, clip_gradient, out=g)
    if wd != 0:
        g += wd * weight
    if mom is None:
        weight -= lr * g
    else:
        mom *= momentum
        mom -= lr * g
        weight += mom


def _single_tensor_sgd(weights, grads, moms, *, lrs, wds, momentum, rescale_grad,
                       clip_gradient, lazy_update):
    hyper = dict(momentum=momentum, rescale_grad=rescale_grad, clip_gradient=clip_gradient)
    for w, g, m, lr, wd in zip(weights, grads, moms, lrs, wds):
        with _device_scope(w):
            rows, values = _dense_or_rows(w, g, lazy_update)
            if rows is None:
                _sgd_math(w, values, m, lr=lr, wd=wd, **hyper)
                continue
            w_rows = w[rows]
            m_rows = None if m is None else m[rows]
            _sgd_math(w_rows, values, m_rows, lr=lr, wd=wd, **hyper)
            w[rows] = w_rows
            if m is not None:
                m[rows] = m_rows


def _multi_tensor_sgd(weights, grads, moms, *, lrs, wds, momentum, rescale_grad,
                      clip_gradient, lazy_update):
    hyper = dict(momentum=momentum, rescale_grad=rescale_grad, clip_gradient=clip_gradient)
    # Momentum state is all-or-nothing per group, so it is part of the key.
    keys = [(lr, wd, m is None) for lr, wd, m in zip(lrs, wds, moms)]
    for (_, _, lr, wd, no_mom), members in _group(weights, keys):
        ws = [weights[i] for i in members]
        ms = None if no_mom else [moms[i] for i in members]
        with _device_scope(ws[0]):
            xp = _array_module(ws[0])
            split = [_dense_or_rows(weights[i], grads[i], lazy_update) for i in members]
            rows_list = [rows for rows, _ in split]
            flat_w = _gather(xp, ws, rows_list)
            flat_g = xp.concatenate([values.reshape(-1) for _, values in split])
            flat_m = None if ms is None else _gather(xp, ms, rows_list)
            _sgd_math(flat_w, flat_g, flat_m, lr=lr, wd=wd, **hyper)
            _scatter(flat_w, ws, rows_list)
            if ms is not None:
                _scatter(flat_m, ms, rows_list)


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

def _adam_math(weight, grad, mean, var, *, lr, wd, beta1, beta2, epsilon, rescale_grad,
               clip_gradient):
    """MXNet's ``adam_update`` on whole arrays, in place on weight, mean and var.

    ``lr`` is already bias-corrected. Weight decay is added before clipping here (MXNet's
    Adam kernels), unlike SGD.
    """
    xp = _array_module(weight)
    # A copy (never the caller's gradient); astype keeps 0-d inputs arrays, which the
    # in-place operations below need.
    g = grad.astype(grad.dtype, copy=True)
    g *= rescale_grad
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


def _single_tensor_adam(weights, grads, means, variances, *, lrs, wds, steps, beta1, beta2,
                        epsilon, rescale_grad, clip_gradient, lazy_update):
    hyper = dict(beta1=beta1, beta2=beta2, epsilon=epsilon, rescale_grad=rescale_grad,
                 clip_gradient=clip_gradient)
    for w, g, mean, var, lr, wd, t in zip(weights, grads, means, variances, lrs, wds, steps):
        lr_t = _bias_corrected_lr(lr, t, beta1, beta2)
        with _device_scope(w):
            rows, values = _dense_or_rows(w, g, lazy_update)
            if rows is None:
                _adam_math(w, values, mean, var, lr=lr_t, wd=wd, **hyper)
                continue
            w_rows, mean_rows, var_rows = w[rows], mean[rows], var[rows]
            _adam_math(w_rows, values, mean_rows, var_rows, lr=lr_t, wd=wd, **hyper)
            w[rows] = w_rows
            mean[rows] = mean_rows
            var[rows] = var_rows


def _multi_tensor_adam(weights, grads, means, variances, *, lrs, wds, steps, beta1, beta2,
                       epsilon, rescale_grad, clip_gradient, lazy_update):
    hyper = dict(beta1=beta1, beta2=beta2, epsilon=epsilon, rescale_grad=rescale_grad,
                 clip_gradient=clip_gradient)
    keys = [(_bias_corrected_lr(lr, t, beta1, beta2), wd) for lr, wd, t in zip(lrs, wds, steps)]
    for (_, _, lr_t, wd), members in _group(weights, keys):
        ws = [weights[i] for i in members]
        ms = [means[i] for i in members]
        vs = [variances[i] for i in members]
        with _device_scope(ws[0]):
            xp = _array_module(ws[0])
            split = [_dense_or_rows(weights[i], grads[i], lazy_update) for i in members]
            rows_list = [rows for rows, _ in split]
            flat_w = _gather(xp, ws, rows_list)
            flat_g = xp.concatenate([values.reshape(-1) for _, values in split])
            flat_m = _gather(xp, ms, rows_list)
            flat_v = _gather(xp, vs, rows_list)
            _adam_math(flat_w, flat_g, flat_m, flat_v, lr=lr_t, wd=wd, **hyper)
            _scatter(flat_w, ws, rows_list)
            _scatter(flat_m, ms, rows_list)
            _scatter(flat_v, vs, rows_list)


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
    """

    def __init__(self, learning_rate: float = 0.01, wd: float = 0.0,
                 rescale_grad: float = 1.0, clip_gradient: float | None = None,
                 lr_scheduler: Callable[[int], float] | None = None,
                 param_dict: dict | None = None, begin_num_update: int = 0,
                 use_fused_step: bool = True):
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

    @property
    def _name(self) -> str:
        return type(self).__name__

    # Validated on every assignment, because Trainer sets rescale_grad before each update.
    @property
    def lr(self) -> float:
        """The base learning rate (before the scheduler and ``lr_mult``)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _checked(self._name, "learning_rate", value, low=0.0)

    @property
    def wd(self) -> float:
        return self._wd

    @wd.setter
    def wd(self, value):
        self._wd = _checked(self._name, "wd", value, low=0.0)

    @property
    def rescale_grad(self) -> float:
        return self._rescale_grad

    @rescale_grad.setter
    def rescale_grad(self, value):
        self._rescale_grad = _checked(self._name, "rescale_grad", value, low=0.0,
                                      low_open=True)

    @property
    def clip_gradient(self) -> float | None:
        return self._clip_gradient

    @clip_gradient.setter
    def clip_gradient(self, value):
        if value is not None:
            try:
                value = _checked(self._name, "clip_gradient", value, low=0.0, low_open=True)
            except ValueError as e:
                raise ValueError(f"{e} (use None to disable clipping)") from None
        self._clip_gradient = value

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update: the scheduler's, else :attr:`lr`."""
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(self.num_update))
        return self._lr

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
            if index in self.param_dict:
                result.append(float(getattr(self.param_dict[index], what)))
            else:
                result.append(table.get(index, 1.0))
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
            wds = [self._wd * m for m in wd_mults]
            self._step(indices, weights, grads, states, lrs, wds)
        except Exception:
            self._index_update_count, self.num_update = saved
            raise

    def _step(self, indices, weights, grads, states, lrs, wds) -> None:
        raise NotImplementedError(f"{self._name} does not implement _step")

    # param_dict holds Parameters, which are not for pickling (MXNet drops it too); the
    # Trainer restores it after loading states.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["param_dict"] = {}
        return state


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

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 lazy_update: bool = True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _checked(self._name, "momentum", momentum, low=0.0, high=1.0,
                                 high_open=True)
        self.lazy_update = bool(lazy_update)

    def create_state(self, index, weight):
        """A zero momentum array like ``weight``, or None when ``momentum`` is 0."""
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def _step(self, indices, weights, grads, states, lrs, wds):
        sgd(weights, grads, states, lrs=lrs, wds=wds, momentum=self.momentum,
            rescale_grad=self._rescale_grad, clip_gradient=self._clip_gradient,
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

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8, lazy_update: bool = True,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = _checked(self._name, "beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = _checked(self._name, "beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _checked(self._name, "epsilon", epsilon, low=0.0, low_open=True)
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
             beta2=self.beta2, epsilon=self.epsilon, rescale_grad=self._rescale_grad,
             clip_gradient=self._clip_gradient, lazy_update=self.lazy_update,
             foreach=self.use_fused_step)
