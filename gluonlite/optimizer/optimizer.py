"""The ``Optimizer`` base class (MXNet 2's interface), ``create``, ``register``, ``Updater``
and ``get_updater``.

An optimizer's public methods take ``mx.np.ndarray`` arrays, as MXNet's do (raw NumPy/CuPy
arrays are accepted as well); anything else raises TypeError before a value changes.
``update`` calls ``fused_step`` when ``use_fused_step`` is set, else ``step``, so a user
subclass that overrides ``step`` (MXNet 2's documented way) works with the Trainer.

The built-in optimizers share :class:`_MathOptimizer`: ``step`` runs their math function
tensor by tensor, ``fused_step`` through the multi-tensor path of ``_foreach`` (buckets of
small tensors on NumPy, fused CUDA kernels on GPUs).
"""

from __future__ import annotations

import math
import numbers
import pickle
import warnings
from typing import Generic, Iterable, Sequence, TypeVar, overload, Any

import numpy

from .._backend import is_gpu_array
from ..ndarray import ndarray
from ..sparse import RowSparseNDArray
from . import _foreach
from ._foreach import (
    RowSparseGrad,
    _cast_grad,
    _check_tensors,
    _device_scope,
    _foreach_multi,
    _foreach_single,
    _is_row_sparse,
)
from .._typing import DTypeLike, RawArray
from ..device import Device
from collections.abc import Callable

__all__ = ["Optimizer", "Updater", "create", "register", "get_updater"]

_REGISTRY: dict[str, type[Optimizer]] = {}
_OptimizerType = TypeVar("_OptimizerType", bound="type[Optimizer]")
_V = TypeVar("_V", float, "float | None")


def register(klass: _OptimizerType) -> _OptimizerType:
    """Class decorator making ``klass`` available to :func:`create` by its lower-case name.

    Registering another class under a taken name replaces it with a warning, as in MXNet.
    """
    if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
        raise TypeError(f"register: expected a subclass of mx.optimizer.Optimizer, got {klass!r}")
    name = klass.__name__.lower()
    old = _REGISTRY.get(name)
    if old is not None and old is not klass:
        warnings.warn(
            f"register: optimizer {klass.__module__}.{klass.__name__} replaces "
            f"{old.__module__}.{old.__name__} as {name!r}",
            UserWarning,
            stacklevel=2,
        )
    _REGISTRY[name] = klass
    return klass


def create(name: str, **kwargs: Any) -> "Optimizer":
    """The optimizer registered as ``name`` (case-insensitive), built with ``kwargs``.

    >>> create('adam', learning_rate=0.01).learning_rate
    0.01
    """
    if not isinstance(name, str):
        raise TypeError(f"create: expected an optimizer name such as 'sgd', got {name!r}")
    try:
        klass = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(
            f"create: unknown optimizer {name!r}; registered optimizers are {sorted(_REGISTRY)}"
        ) from None
    return klass(**kwargs)


def _checked(
    owner: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
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


class _Checked(Generic[_V]):
    """A float attribute validated by :func:`_checked` on every assignment."""

    def __init__(self, label: str, *, optional: bool = False, **bounds: Any) -> None:
        self.label, self.optional, self.bounds = label, optional, bounds

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Checked[_V]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> _V: ...

    def __get__(self, obj: object, objtype: type | None = None) -> _Checked[_V] | _V:
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj: object, value: _V) -> None:
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


def _is_raw(a: Any) -> bool:
    return isinstance(a, numpy.ndarray) or is_gpu_array(a)


def _raw_array(owner: str, what: str, a: Any) -> RawArray:
    """The raw NumPy/CuPy array behind ``a`` (an ``mx.np.ndarray`` or a raw array)."""
    if isinstance(a, ndarray):
        return a._data
    if _is_raw(a):
        return a
    raise TypeError(f"{owner}: {what} must be an mx.np.ndarray, got {type(a).__name__}")


def _raw_grad(owner: str, what: str, g: RawArray) -> Any:
    """A dense raw gradient, or :class:`RowSparseGrad` of raw arrays for a row-sparse one."""
    if isinstance(g, RowSparseNDArray):
        return RowSparseGrad(g._indices, g._values)
    if isinstance(g, ndarray) or _is_raw(g):
        return _raw_array(owner, what, g)
    if _is_row_sparse(g) and getattr(g, "stype", "row_sparse") == "row_sparse":
        return RowSparseGrad(
            _raw_array(owner, f"{what}.indices", g.indices),
            _raw_array(owner, f"{what}.data", g.data),
        )
    raise TypeError(
        f"{owner}: {what} must be an mx.np.ndarray or a row-sparse "
        f"mx.nd.sparse.RowSparseNDArray, got {type(g).__name__}"
    )


def _raw_state(owner: str, what: str, state: Any) -> Any:
    """``state`` (None, an array, or nested tuples of them) with raw arrays in place of
    ``mx.np.ndarray`` arrays; the arrays are the same storage, so updates land in the state."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_raw_state(owner, what, s) for s in state)
    return _raw_array(owner, what, state)


def _wrap_like(weight: RawArray, raw: RawArray) -> Any:
    """``raw`` as an ``mx.np.ndarray`` when ``weight`` is one, else as it is."""
    return ndarray(raw, weight.device) if isinstance(weight, ndarray) else raw


def _as_lists(
    owner: str, indices: Any, weights: Any, grads: Any, states: Any
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """The four per-parameter sequences as lists (a single index wraps all four, MXNet 1's
    ``update(index, weight, grad, state)``), checked for equal lengths and unique indices."""
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
        indices, weights, grads, states = [indices], [weights], [grads], [states]
    try:
        indices, weights, grads, states = (list(x) for x in (indices, weights, grads, states))
    except TypeError:
        raise TypeError(
            f"{owner}: indices, weights, grads and states must be sequences "
            "with one entry per parameter"
        ) from None
    if not len(indices) == len(weights) == len(grads) == len(states):
        raise ValueError(
            f"{owner}: got {len(indices)} indices, {len(weights)} weights, "
            f"{len(grads)} grads and {len(states)} states; expected one of "
            "each per parameter"
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"{owner}: indices must be unique, got {indices}")
    return indices, weights, grads, states


class Optimizer:
    """The base class of all optimizers (MXNet 2's ``mx.optimizer.Optimizer``).

    Subclasses implement :meth:`create_state` and :meth:`step` (and optionally
    :meth:`fused_step`); :meth:`update` calls one of them.

    Args:
        rescale_grad: factor applied to every gradient first (Trainer sets
            ``1 / batch_size``), > 0.
        param_idx2name: optional ``{index: name}``; as in MXNet, parameters whose name does
            not end in ``_weight`` or ``_gamma`` get ``wd_mult`` 0, and ``lr_mult``/``wd_mult``
            tables may be keyed by name.
        wd: weight decay (L2 penalty coefficient), >= 0.
        clip_gradient: clip the rescaled gradient to ``[-clip_gradient, clip_gradient]``;
            None disables clipping.
        learning_rate: base learning rate, >= 0. None: the ``lr_scheduler``'s ``base_lr``
            when there is one, else the optimizer's default. Given together with a
            scheduler, it becomes the scheduler's ``base_lr``.
        lr_scheduler: optional ``mx.lr_scheduler.LRScheduler`` (any callable
            ``num_update -> learning rate``).
        begin_num_update: update count to start from.
        multi_precision: keep a float32 master copy of each float16 weight; see
            :meth:`update_multi_precision`.
        param_dict: optional ``{index: Parameter}``; each parameter's ``lr_mult`` and
            ``wd_mult`` scale its learning rate and weight decay (the Trainer sets it).
        aggregate_num: how many tensors MXNet's kernels aggregate per call; kept for
            compatibility (the multi-tensor path groups every tensor it can).
        use_fused_step: :meth:`update` calls :meth:`fused_step` (True) or :meth:`step`.
    """

    _default_lr = 0.01
    # Names of the float attributes an optimizer carries from one update to the next besides
    # the update counts (Nadam's momentum schedule ``m_schedule``): ``Trainer.save_states``
    # writes them and ``load_states`` restores them, so a resumed run continues exactly.
    _scalar_state: tuple[str, ...] = ()

    def __init__(
        self,
        rescale_grad: float = 1.0,
        param_idx2name: dict[Any, Any] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        learning_rate: float | None = None,
        lr_scheduler: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[Any, Any] | None = None,
        aggregate_num: int | None = None,
        use_fused_step: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{self._name}: unexpected argument(s) {sorted(kwargs)}")
        self.rescale_grad = rescale_grad
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise TypeError(
                f"{self._name}: lr_scheduler must be an LRScheduler (callable "
                f"as lr_scheduler(num_update)), got {lr_scheduler!r}"
            )
        self.lr_scheduler = lr_scheduler
        if learning_rate is None:
            learning_rate = getattr(lr_scheduler, "base_lr", None)
            if learning_rate is None:
                learning_rate = self._default_lr
        elif lr_scheduler is not None and hasattr(lr_scheduler, "base_lr"):
            lr_scheduler.base_lr = learning_rate
        self.lr = learning_rate
        self.wd = wd
        self.clip_gradient = clip_gradient
        if param_idx2name is not None and not isinstance(param_idx2name, dict):
            raise TypeError(
                f"{self._name}: param_idx2name must be a dict of index to name, "
                f"got {type(param_idx2name).__name__}"
            )
        self.idx2name = dict(param_idx2name or {})
        self.param_dict = dict(param_dict) if param_dict else {}
        if (
            isinstance(begin_num_update, bool)
            or not isinstance(begin_num_update, int)
            or begin_num_update < 0
        ):
            raise ValueError(
                f"{self._name}: begin_num_update must be a non-negative int, "
                f"got {begin_num_update!r}"
            )
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        # Update counts per index, one table per device (MXNet's _all_index_update_counts):
        # Trainer(kvstore=None) updates each device's replica separately and selects the
        # device's table with _set_current_context; otherwise only table 0 is used.
        self._index_update_count: dict[Any, Any] = {}
        self._all_index_update_counts: dict[int, dict[Any, Any]] = {0: self._index_update_count}
        if aggregate_num is not None and (
            isinstance(aggregate_num, bool)
            or not isinstance(aggregate_num, int)
            or aggregate_num < 0
        ):
            raise ValueError(
                f"{self._name}: aggregate_num must be a non-negative int or "
                f"None, got {aggregate_num!r}"
            )
        self.aggregate_num = aggregate_num or 0
        self.use_fused_step = bool(use_fused_step)
        self.multi_precision = bool(multi_precision)
        self.set_lr_mult({})
        self.set_wd_mult({})

    @property
    def _name(self) -> str:
        return type(self).__name__

    # Validated on every assignment too, because Trainer sets rescale_grad before each update.
    # the base rate, before scheduler and lr_mult
    lr: _Checked[float] = _Checked("learning_rate", low=0.0)
    wd: _Checked[float] = _Checked("wd", low=0.0)
    rescale_grad: _Checked[float] = _Checked("rescale_grad", low=0.0, low_open=True)
    clip_gradient: _Checked[float | None] = _Checked(
        "clip_gradient", low=0.0, low_open=True, optional=True
    )

    # ----------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update: the scheduler's, else :attr:`lr`."""
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(self.num_update))
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        """Set the base learning rate. While an ``lr_scheduler`` decides the rate this only
        warns (MXNet refuses too) and changes nothing."""
        if self.lr_scheduler is not None:
            warnings.warn(
                f"{self._name}.set_learning_rate: an lr_scheduler decides the "
                "learning rate, so set_learning_rate changes nothing; change the "
                "scheduler instead",
                UserWarning,
                stacklevel=2,
            )
            return
        self.lr = lr

    def _checked_mults(self, what: str, mults: Any) -> dict[Any, float]:
        if not isinstance(mults, dict):
            raise TypeError(
                f"{self._name}.set_{what}: expected a dict of index (or name) to "
                f"multiplier, got {type(mults).__name__}"
            )
        return {
            index: _checked(self._name, f"{what}[{index!r}]", m, low=0.0)
            for index, m in mults.items()
        }

    def set_lr_mult(self, args_lr_mult: dict[Any, Any]) -> None:
        """Replace the ``{index or name: lr_mult}`` table (a ``param_dict`` entry takes
        precedence)."""
        self.lr_mult = self._checked_mults("lr_mult", args_lr_mult)

    def set_wd_mult(self, args_wd_mult: dict[Any, Any]) -> None:
        """Replace the ``{index or name: wd_mult}`` table (a ``param_dict`` entry takes
        precedence). With ``param_idx2name``, names not ending in ``_weight`` or ``_gamma``
        default to 0 (biases are not decayed), as in MXNet."""
        table = {
            name: 0.0
            for name in self.idx2name.values()
            if not (name.endswith("_weight") or name.endswith("_gamma"))
        }
        table.update(self._checked_mults("wd_mult", args_wd_mult))
        self.wd_mult = table

    def _mult(self, what: str, index: Any) -> float:
        if index in self.param_dict:
            value: float = getattr(self.param_dict[index], what)
            # Read (not cached) every update, so a changed multiplier takes effect. A float
            # >= 0 is what _checked would return unchanged; only other values pay for the
            # full check and its message.
            if type(value) is not float or not value >= 0.0:
                value = _checked(self._name, f"{what} of parameter {index!r}", value, low=0.0)
            return value
        table: dict[Any, float] = getattr(self, what)
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    def _get_lr(self, index: Any) -> float:
        """The learning rate of parameter ``index`` for this update (MXNet's ``_get_lr``)."""
        return self.learning_rate * self._mult("lr_mult", index)

    def _get_lrs(self, indices: Any) -> list[float]:
        lr = self.learning_rate
        return [lr * self._mult("lr_mult", i) for i in indices]

    def _get_wd(self, index: Any) -> float:
        """The weight decay of parameter ``index`` (MXNet's ``_get_wd``)."""
        return self.wd * self._mult("wd_mult", index)

    def _get_wds(self, indices: Any) -> list[float]:
        return [self.wd * self._mult("wd_mult", i) for i in indices]

    def _set_current_context(self, device_id: int) -> None:
        """Count the following updates in device ``device_id``'s table (MXNet's method of
        the same name): ``num_update`` stays one number, the maximum over every table."""
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})

    def _update_count(self, index: Any) -> None:
        """Count one update of ``index`` (or of each index of a list), as MXNet does."""
        for i in index if isinstance(index, (list, tuple)) else [index]:
            count = self._index_update_count.get(i, self.begin_num_update) + 1
            self._index_update_count[i] = count
            self.num_update = max(self.num_update, count)

    # ----------------------------------------------------------------- states
    def create_state(self, index: Any, weight: ndarray) -> Any:
        """The optimizer state for ``weight``: None here (a stateless optimizer)."""
        return None

    def create_state_multi_precision(self, index: Any, weight: ndarray) -> Any:
        """Like :meth:`create_state`; for a float16 weight under ``multi_precision``, the
        pair ``(float32 copy of weight, state of that copy)``."""
        if self.multi_precision and weight.dtype == numpy.float16:
            with _device_scope(weight._data if isinstance(weight, ndarray) else weight):
                master = weight.astype(numpy.float32)
            return (master, self.create_state(index, master))
        return self.create_state(index, weight)

    # ----------------------------------------------------------------- updates
    def step(self, indices: Any, weights: Any, grads: Any, states: Any) -> None:
        """Update ``weights`` (and ``states``) in place, one parameter after another."""
        raise NotImplementedError(
            f"{self._name} implements no step(); an optimizer subclass must define it"
        )

    def fused_step(self, indices: Any, weights: Any, grads: Any, states: Any) -> None:
        """Like :meth:`step`, through fused kernels; optimizers without them step."""
        self.step(indices, weights, grads, states)

    def update(
        self,
        indices: Sequence[Any],
        weights: Sequence[Any],
        grads: Sequence[Any],
        states: Sequence[Any],
    ) -> None:
        """Apply one step to each ``weights[i]`` in place (MXNet 2's list signature; a
        single index, weight, grad and state are accepted too).

        Args:
            indices: unique keys of the parameters (for multipliers and update counts).
            weights: ``mx.np.ndarray`` arrays.
            grads: ``mx.np.ndarray`` arrays or row-sparse gradients.
            states: what :meth:`create_state` returned for each weight; updated in place.
        """
        indices, weights, grads, states = _as_lists(
            f"{self._name}.update", indices, weights, grads, states
        )
        for k, (w, g) in enumerate(zip(weights, grads)):
            _raw_array(f"{self._name}.update", f"weights[{k}]", w)
            _raw_grad(f"{self._name}.update", f"grads[{k}]", g)
        if self.use_fused_step:
            self.fused_step(indices, weights, grads, states)
        else:
            self.step(indices, weights, grads, states)

    def update_multi_precision(
        self,
        indices: Sequence[Any],
        weights: Sequence[Any],
        grads: Sequence[Any],
        states: Sequence[Any],
    ) -> None:
        """Like :meth:`update`, with states from :meth:`create_state_multi_precision`.

        A float16 weight under ``multi_precision`` is updated through its float32 master
        copy (its gradient cast up), then overwritten with the copy cast down, so that small
        steps accumulate instead of rounding away in float16 (MXNet's ``mp_*_update``).
        """
        indices, weights, grads, states = _as_lists(
            f"{self._name}.update_multi_precision", indices, weights, grads, states
        )
        masters = [
            k
            for k, w in enumerate(weights)
            if self.multi_precision and getattr(w, "dtype", None) == numpy.float16
        ]
        targets = weights[:]
        for k in masters:
            if not (isinstance(states[k], tuple) and len(states[k]) == 2):
                raise ValueError(
                    f"{self._name}.update_multi_precision: the state of index "
                    f"{indices[k]!r} must be the (float32 copy, state) pair "
                    f"from create_state_multi_precision(), got {states[k]!r}"
                )
            weights[k], states[k] = states[k]
            g = grads[k]
            grads[k] = (
                g.astype(numpy.float32) if hasattr(g, "astype") else _cast_grad(g, numpy.float32)
            )
        self.update(indices, weights, grads, states)
        for k in masters:
            targets[k][...] = weights[k].astype(numpy.float16)

    # param_dict holds Parameters, which are not for pickling (MXNet drops it too); the
    # Trainer restores it after loading states.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["param_dict"] = {}
        return state


class _MathOptimizer(Optimizer):
    """An optimizer whose update is one math function over raw arrays (see ``_foreach``).

    Subclasses set ``_math`` (``math(grad, weight, *states, **hyper)``, in place),
    ``_bucketable`` (elementwise: may run over concatenated tensors; False for updates
    that take norms or draw noise), ``_lazy_rows`` (row-sparse gradients update only their
    rows; else they are expanded to dense first), ``_kernel`` (the GPU kernel of
    ``_kernels.optimizer_step``, or None) and define ``_hyper`` (per-tensor keyword
    arguments of ``_math``).
    """

    _math: Callable[..., None] = None  # type: ignore[assignment]  # each subclass sets it
    _bucketable = True
    _lazy_rows = False
    _kernel: str | None = None

    def step(self, indices: Any, weights: Any, grads: Any, states: Any) -> None:
        """One update per parameter, tensor by tensor (the reference path)."""
        self._run(indices, weights, grads, states, foreach=False)

    def fused_step(self, indices: Any, weights: Any, grads: Any, states: Any) -> None:
        """One update per parameter, through the multi-tensor path (same results as
        :meth:`step` up to rounding)."""
        self._run(indices, weights, grads, states, foreach=True)

    def _run(self, indices: Any, weights: Any, grads: Any, states: Any, foreach: bool) -> None:
        owner = f"{self._name}.update"
        indices, weights, grads, states = _as_lists(owner, indices, weights, grads, states)
        weights = [_raw_array(owner, f"weights[{k}]", w) for k, w in enumerate(weights)]
        grads = [_raw_grad(owner, f"grads[{k}]", g) for k, g in enumerate(grads)]
        states = [_raw_state(owner, f"states[{k}]", s) for k, s in enumerate(states)]
        _check_tensors(owner, weights, grads, [])
        buffers = [self._checked_buffers(i, w, s) for i, w, s in zip(indices, weights, states)]
        # A rejected call must not advance the counts (bias corrections and schedulers read
        # them) nor any other scalar state (Nadam's momentum schedule).
        saved = dict(self.__dict__), dict(self._index_update_count)
        self._update_count(indices)
        try:
            hypers = self._hypers(indices, self._get_lrs(indices), self._get_wds(indices))
            self._apply(grads, buffers, hypers, foreach)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved[0])
            # In place: the table is also one of _all_index_update_counts.
            self._index_update_count.clear()
            self._index_update_count.update(saved[1])
            raise

    def _buffers(self, weight: RawArray, state: Any) -> tuple[RawArray, ...]:
        """The arrays ``_math`` updates in place: the weight, then the state's arrays."""
        if state is None:
            return (weight,)
        return (weight, *state) if isinstance(state, tuple) else (weight, state)

    def _state_count(self) -> int:
        """How many arrays :meth:`create_state` returns (None entries not counted)."""
        return 0

    def _checked_buffers(self, index: Any, weight: RawArray, state: Any) -> tuple[RawArray, ...]:
        try:
            buffers = self._buffers(weight, state)
        except (TypeError, ValueError):
            buffers = None
        if (
            buffers is None
            or len(buffers) != 1 + self._state_count()
            or any(not _is_raw(b) or tuple(b.shape) != tuple(weight.shape) for b in buffers)
        ):
            raise ValueError(
                f"{self._name}.update: the state of index {index!r} must be "
                f"what create_state() returns for its weight of shape "
                f"{tuple(weight.shape)}, got {state!r}"
            )
        return buffers

    def _hypers(
        self, indices: Any, lrs: Sequence[float], wds: Sequence[float]
    ) -> list[dict[str, Any]]:
        return [self._hyper(i, lr, wd) for i, lr, wd in zip(indices, lrs, wds)]

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(lr=lr, wd=wd, rescale_grad=self.rescale_grad, clip_gradient=self.clip_gradient)

    def _apply(
        self, grads: Any, buffers: Any, hypers: Sequence[dict[str, Any]], foreach: bool
    ) -> None:
        lazy = self._lazy_rows and getattr(self, "lazy_update", True)
        math_fn = type(self)._math
        if foreach and self._bucketable:
            fused = None if self._kernel is None else _foreach.elementwise_kernel(self._kernel)
            _foreach_multi(math_fn, grads, buffers, hypers, lazy, fused)
        elif foreach and self._kernel is not None:
            _foreach._foreach_each(math_fn, grads, buffers, hypers, lazy, self._fused_one)
        else:
            _foreach_single(math_fn, grads, buffers, hypers, lazy)

    def _fused_one(self, grad: RawArray, bufs: Sequence[RawArray], hyper: dict[str, Any]) -> None:
        """The GPU kernels of one tensor that cannot be bucketed (``_bucketable`` False):
        the layer-wise kernels of ``_kernels.layerwise_step`` unless a subclass says
        otherwise."""
        from .. import _kernels

        _kernels.layerwise_step(self._kernel, bufs[0], grad, bufs[1:], **hyper)  # type: ignore[arg-type]  # noqa: E501 - called only with a _kernel


def _zeros_state(weight: RawArray, dtype: DTypeLike = None) -> Any:
    """A zero array like ``weight`` (an ``mx.np.ndarray`` when ``weight`` is one)."""
    raw = weight._data if isinstance(weight, ndarray) else weight
    return _wrap_like(weight, _foreach._zeros_like(raw, dtype))


def _copy_state(weight: RawArray) -> Any:
    """A copy of ``weight`` (DCASGD's previous weight), of the same kind."""
    raw = weight._data if isinstance(weight, ndarray) else weight
    with _device_scope(raw):
        return _wrap_like(weight, raw.copy())


class Updater:
    """Applies an optimizer to ``(index, grad, weight)`` calls, keeping one state per index
    (MXNet's ``mx.optimizer.Updater``, used by kvstores).

    >>> import gluonlite as mx
    >>> updater = mx.optimizer.get_updater(mx.optimizer.SGD(learning_rate=0.5))
    >>> w = mx.np.ones(2)
    >>> updater(0, mx.np.ones(2), w)
    >>> w
    array([0.5, 0.5])
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Updater: expected an mx.optimizer.Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.states: dict[Any, Any] = {}
        self.states_synced: dict[Any, Any] = {}

    def __call__(self, index: Any, grad: RawArray, weight: RawArray) -> None:
        indices, grads, weights = (
            (index, grad, weight)
            if isinstance(index, (list, tuple))
            else ([index], [grad], [weight])
        )
        if not len(indices) == len(grads) == len(weights):
            raise ValueError(
                f"Updater: got {len(indices)} indices, {len(grads)} grads and "
                f"{len(weights)} weights"
            )
        new = {}
        for i, w in zip(indices, weights):
            if i not in self.states:
                _raw_array("Updater", f"weight of index {i!r}", w)
                new[i] = self.optimizer.create_state_multi_precision(i, w)
        self.optimizer.update_multi_precision(
            list(indices),
            list(weights),
            list(grads),
            [new[i] if i in new else self.states[i] for i in indices],
        )
        # Kept only after a successful update: a call that raised leaves no new state.
        for i, state in new.items():
            self.states[i] = state
            self.states_synced[i] = True

    def sync_state_context(self, state: Any, device: Device) -> Any:
        """``state`` with its arrays on ``device``."""
        if isinstance(state, ndarray):
            return state.to_device(device)
        if isinstance(state, (tuple, list)):
            return type(state)(self.sync_state_context(s, device) for s in state)
        return state

    def set_states(self, states: bytes) -> None:
        """Restore what :meth:`get_states` returned."""
        loaded = pickle.loads(states)
        if isinstance(loaded, tuple) and len(loaded) == 2:
            self.states, self.optimizer = loaded
        else:
            self.states = loaded
        self.states_synced = dict.fromkeys(self.states, False)

    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """The states (and with ``dump_optimizer`` the optimizer) as pickled bytes."""
        return pickle.dumps((self.states, self.optimizer) if dump_optimizer else self.states)


def get_updater(optimizer: Optimizer) -> Updater:
    """An :class:`Updater` for ``optimizer``."""
    return Updater(optimizer)
