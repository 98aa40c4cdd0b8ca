"""``Parameter``: one weight, replicated on every device it is initialized on.

Note:
    Replica consistency. ``initialize`` computes the values once on the host and copies them
    to each device, so replicas start bit-identical. Afterwards they are independent arrays
    (as in MXNet): whoever updates them (normally a Trainer) keeps them in sync.
    ``data()``, ``grad()`` and ``list_*`` return the live replicas, so ``p.data()[:] = v``
    writes into the parameter. Each data replica is an autograd leaf whose gradient buffer
    is the matching ``grad()`` replica; ``backward()`` stores into it per ``grad_req`` and
    sets the replica's ``_fresh_grad`` flag, which a Trainer clears.

Note:
    Atomicity. ``initialize``, ``reset_device``, ``set_data`` and ``cast`` build the new
    replicas (and gradient buffers) aside and swap them in only when all succeeded, so a
    failure (bad input, a missing device, out of memory) leaves the parameter as it was.

Note:
    Concurrent reads. Other threads may read replicas while a Trainer trains: a copy of a
    data or dense gradient replica taken with ``asnumpy()``, ``copyto()``, ``copy()``,
    ``astype()`` or ``to_device()`` (and ``item``/``tolist``/``numpy.asarray``) sees one
    whole version, never a mix of the values before and after a ``Trainer.step`` /
    ``allreduce_grads`` / ``update`` or a ``set_data``; ``save_parameters`` and
    ``Trainer.save_states`` save one consistent step of every parameter. (The writers and
    these reads share one lock, ``gluonlite._replica.replica_lock``; ``data()`` and
    operators do not take it, so an operator such as ``p.data() * 2`` run on another thread
    mid-step, or a view sliced from a replica, may still see a mix: copy first.)

>>> import gluonlite as mx
>>> w = mx.gluon.Parameter('fc_weight', shape=(64, 100), init=mx.init.Xavier())
>>> w.initialize(device=[mx.cpu(0), mx.cpu(1)])
>>> w
Parameter fc_weight (shape=(64, 100), dtype=float32)
>>> bool((w.data(mx.cpu(0)).asnumpy() == w.data(mx.cpu(1)).asnumpy()).all())
True
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import warnings

import numpy

from .. import _backend, _compat, initializer, sparse, symbol
from .._replica import Replica, replica_lock
from ..device import Device, as_devices, current_device, _current as _current_device

# The current-device variable itself: its C get() spares data()/grad() a Python call.
from ..ndarray import ndarray, zeros_like
from collections.abc import Iterator
from typing import Any
from .._typing import DTypeLike, DevicesLike, RawArray
from ..initializer import InitLike

__all__ = ["Parameter", "Constant", "DeferredInitializationError", "ParameterDict"]

_GRAD_REQS = ("write", "add", "null")
_STYPES = ("default", "row_sparse", "csr")
_CPU0 = Device("cpu", 0)
# While set (a dict), data() of a Parameter without replicas returns zeros of its shape and
# dtype instead of raising: HybridBlock.infer_shape/infer_type run a forward on these
# stand-ins, which changes no Parameter (see ``stand_ins``).
_stand_ins: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "gluonlite_stand_ins", default=None
)


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """Inside, ``data()`` of a Parameter that has no replicas yet (not initialized, or
    deferred) returns a zero array of its shape and dtype on the requested device, the same
    one for each (parameter, device); a still unknown shape raises
    ``DeferredInitializationError`` as usual, so layers infer it from their input."""
    token = _stand_ins.set({})
    try:
        yield
    finally:
        _stand_ins.reset(token)


class DeferredInitializationError(RuntimeError):
    """A parameter's values were asked for while its initialization waits for its shape."""


@dataclasses.dataclass
class _PendingInit:
    """What ``initialize`` was asked for while the shape was still unknown."""

    init: initializer.Initializer
    devices: list[Device]
    # Host values given by set_data() meanwhile; they replace the initializer.
    data: numpy.ndarray | None = None


def _as_shape(shape: Any, name: str) -> tuple[int, ...] | None:
    """``shape`` as a tuple with -1 for every unknown dimension (given as 0 or -1)."""
    if shape is None:
        return None
    if isinstance(shape, (int, numpy.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    # int() would turn 2.5 into 2 and '2' into 2: only integers are dimensions.
    if dims is None or not all(
        isinstance(n, (int, numpy.integer)) and not isinstance(n, (bool, numpy.bool_)) for n in dims
    ):
        raise TypeError(
            f"Parameter {name!r}: shape must be an int or a tuple of ints, got {shape!r}"
        )
    dims = tuple(int(n) for n in dims)
    if any(n < -1 for n in dims):
        raise ValueError(
            f"Parameter {name!r}: shape {dims} has a negative dimension; use "
            f"0 or -1 for an unknown one"
        )
    return tuple(-1 if n == 0 else n for n in dims)


def _known(shape: Any) -> bool:
    return shape is not None and all(n > 0 for n in shape)


def _as_dtype(dtype: DTypeLike, name: str) -> numpy.dtype:
    """``dtype`` normalised, or a TypeError naming the parameter: a Parameter holds
    numbers (bool, integers, floats, bfloat16), never objects, strings or complex values."""
    try:
        out = _backend.dtype_of(dtype)
    except TypeError as e:
        raise TypeError(f"Parameter {name!r}: unknown dtype {dtype!r} ({e})") from None
    if out.kind not in "biuf" and out.name != "bfloat16":
        raise TypeError(
            f"Parameter {name!r}: dtype must be a boolean, integer or floating "
            f"point type (e.g. 'float32'), got {out}"
        )
    return out


def _as_device_list(device: DevicesLike, name: str, method: str) -> list[Device]:
    """``device`` (a Device or a list of them) as a checked list of available devices; an
    error names the parameter, the method and what was expected."""
    if isinstance(device, (str, bytes, int, float)):
        hint = (
            "mx.gpu(0) for GPU 0, mx.cpu() for the host"
            if isinstance(device, int)
            else "mx.cpu() for the host, mx.gpu(0) for GPU 0"
        )
        raise TypeError(
            f"Parameter {name!r}: {method}(device=...): Expected a Device or a "
            f"list of Devices, got {device!r} ({type(device).__name__}); use "
            f"{hint}"
        )
    try:
        devices = as_devices(device)
    except (TypeError, ValueError) as e:
        raise type(e)(f"Parameter {name!r}: {method}(device=...): {e}") from None
    for dev in devices:
        try:
            _backend.check_available(dev)
        except RuntimeError as e:
            raise RuntimeError(f"Parameter {name!r}: {method}() on {dev}: {e}") from e
    return devices


def _key(device: Device) -> tuple[str, int]:
    """``device`` as a plain tuple, the key of the accessors' lookup tables.

    Device is a dataclass, so hashing or comparing one runs its generated Python
    ``__hash__``/``__eq__`` (about 0.15 us each, as much as the rest of ``data()``); a tuple
    of a str and an int hashes and compares in C.
    """
    return (device.device_type, device.device_id)


def _cast(raw: RawArray, device: Device, dtype: DTypeLike) -> RawArray:
    """``raw`` converted to ``dtype`` on its device (a new array)."""
    with _backend.on(device):
        return raw.astype(dtype)


class Parameter:
    """A container holding one parameter (weight) and its gradient on each device.

    Args:
        name: Name of the parameter; initializers that need it (errors) report it.
        grad_req: ``'write'`` (backward overwrites the gradient), ``'add'`` (accumulates;
            clear with ``zero_grad()``) or ``'null'`` (no gradient buffers).
        shape: An int or a tuple; 0 or -1 marks a dimension not known yet.
        dtype: Data type of data and gradient, float32 by default.
        lr_mult: Learning-rate multiplier, read by optimizers.
        wd_mult: Weight-decay multiplier, read by optimizers.
        init: Initializer (or its name) for this parameter; ``initialize(init=)`` overrides
            it, and it overrides ``initialize(default_init=)``.
        allow_deferred_init: Let ``initialize`` wait until the shape is fully known.
        differentiable: When False, ``grad_req`` is always ``'null'``.
        stype: Storage of the data: ``'default'``, ``'row_sparse'`` (read rows through
            ``row_sparse_data``) or ``'csr'``.
        grad_stype: Storage of the gradient buffers, same choices.

    See the module notes on replica consistency and atomicity.

    Example:
        >>> import gluonlite as mx
        >>> b = mx.gluon.Parameter('fc_bias', shape=(3,), init='zeros')
        >>> b.initialize(device=mx.cpu(0))
        >>> b.data()
        array([0., 0., 0.])
        >>> b.data()[:] = 1.5
        >>> b.list_data()
        [array([1.5, 1.5, 1.5])]
    """

    def __init__(
        self,
        name: str = "weight",
        grad_req: str = "write",
        shape: Any = None,
        dtype: DTypeLike = numpy.float32,
        lr_mult: float = 1.0,
        wd_mult: float = 1.0,
        init: InitLike = None,
        allow_deferred_init: bool = False,
        differentiable: bool = True,
        stype: str = "default",
        grad_stype: str = "default",
    ) -> None:
        for arg, value in (("stype", stype), ("grad_stype", grad_stype)):
            if value not in _STYPES:
                raise ValueError(
                    f"Parameter {name!r}: {arg} must be one of {_STYPES}, got {value!r}"
                )
        self.name = name
        self._shape = _as_shape(shape, name)
        self._dtype = _as_dtype(dtype, name)
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        # Resolved now so that a misspelt initializer name fails here, not at initialize().
        self.init = None if init is None else initializer.create(init)
        self._allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._stype, self._grad_stype = stype, grad_stype
        self._data: dict[Device, ndarray] | None = None
        self._grad: dict[Device, Any] | None = None
        # _data and _grad again, keyed by _key(device) (see there), for the fast paths of
        # data() and grad(); set by _swap_in only.
        self._data_at: dict[tuple[str, int], ndarray] = {}
        self._grad_at: dict[tuple[str, int], object] = {}
        # Bumped whenever the replicas, the gradient buffers or grad_req change, so that a
        # Trainer can keep what it derived from them until then.
        self._version = 0
        self._pending: _PendingInit | None = None
        self._var: symbol.Symbol | None = None
        self._grad_req: str = None  # type: ignore[assignment]  # set just below
        self.grad_req = grad_req

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.name} (shape={self.shape}, dtype={self._dtype})"

    # ----------------------------------------------------------------- attributes
    @property
    def stype(self) -> str:
        return self._stype

    @property
    def grad_stype(self) -> str:
        return self._grad_stype

    @property
    def allow_deferred_init(self) -> bool:
        return self._allow_deferred_init

    @property
    def differentiable(self) -> bool:
        return self._differentiable

    @property
    def grad_req(self) -> str:
        """``'write'``, ``'add'`` or ``'null'``; setting it allocates or frees the buffers."""
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req not in _GRAD_REQS:
            raise ValueError(
                f"Parameter {self.name!r}: grad_req must be one of {_GRAD_REQS}, got {req!r}"
            )
        if not self._differentiable:
            req = "null"
        if req == self._grad_req:
            return
        if self._data is None:
            self._grad_req = req
            self._version += 1
            return
        grads = None
        if req != "null":
            grads = self._grad if self._grad is not None else self._new_grads(self._data)
        self._attach(self._data, grads, req)
        self._grad_req = req
        self._swap_in(self._data, grads)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape, -1 marking unknown dimensions. Setting it merges the known dimensions."""
        return self._shape

    @shape.setter
    def shape(self, new_shape: Any) -> None:
        self._shape = self._merged_shape(new_shape, "shape")

    @property
    def dtype(self) -> numpy.dtype:
        """The data type; setting it casts data and gradients (see ``cast``)."""
        return self._dtype

    @dtype.setter
    def dtype(self, dtype: DTypeLike) -> None:
        self.cast(dtype)

    def _merged_shape(self, new_shape: Any, what: str) -> Any:
        new = _as_shape(new_shape, self.name)
        if self._shape is None:
            return new
        if new is None or len(new) != len(self._shape):
            raise ValueError(
                f"Parameter {self.name!r}: {what} {new} does not match the "
                f"{len(self._shape)}-d shape {self._shape}"
            )
        merged = []
        for old_dim, new_dim in zip(self._shape, new):
            if old_dim != -1 and new_dim != -1 and old_dim != new_dim:
                raise ValueError(
                    f"Parameter {self.name!r}: {what} {new} conflicts with the "
                    f"known shape {self._shape}"
                )
            merged.append(new_dim if old_dim == -1 else old_dim)
        return tuple(merged)

    # ----------------------------------------------------------------- initialization
    def _initialize_with(self, values: Any, devices: Any) -> None:
        """Initialize on ``devices`` with ``values`` (a checkpoint's arrays): they are the
        initial values, so no initializer draws (``checkpoint.load_parameters`` uses it)."""
        self.initialize(init=initializer.Constant(values), device=devices, force_reinit=True)

    def initialize(
        self,
        init: InitLike = None,
        device: DevicesLike = None,
        default_init: InitLike = initializer.Uniform(),
        force_reinit: bool = False,
        ctx: DevicesLike = None,
    ) -> None:
        """Create the data (and gradient) replicas on ``device`` (one Device or a list).

        The initializer is ``init``, else the parameter's own ``init``, else
        ``default_init``; it runs once on the host and the values are copied to every
        device. With an unknown shape and ``allow_deferred_init`` the work waits until the
        shape is known (the next ``data()`` completes it). A second call warns and keeps the
        data unless ``force_reinit``.

        Raises:
            ValueError: The shape is not fully known and deferred init is not allowed.
            RuntimeError: A device is not available (e.g. ``gpu(3)`` with one GPU).

        Example:
            >>> import gluonlite as mx
            >>> w = mx.gluon.Parameter('w', shape=(2, 2), init='ones')
            >>> w.initialize(device=[mx.cpu(0), mx.cpu(1)])
            >>> w.list_device()
            [cpu(0), cpu(1)]
        """
        device = _compat.resolve_ctx(device, ctx)
        if self._data is not None and not force_reinit:
            warnings.warn(
                f"Parameter {self.name!r} is already initialized on "
                f"{list(self._data)}; ignoring. Pass force_reinit=True to "
                f"re-initialize.",
                UserWarning,
                stacklevel=2,
            )
            return
        devices = _as_device_list(device, self.name, "initialize")
        chosen = init if init is not None else self.init if self.init is not None else default_init
        pending = _PendingInit(initializer.create(chosen), devices)
        self._check_sparse_shape()
        if _known(self._shape):
            self._complete(pending)
            return
        if not self._allow_deferred_init:
            raise ValueError(
                f"Cannot initialize Parameter {self.name!r}: its shape "
                f"{self._shape} is not fully known (0 or -1 marks an unknown "
                f"dimension). Give the full shape, or create the parameter "
                f"with allow_deferred_init=True."
            )
        self._swap_in(None, None)
        self._pending = pending

    def _check_sparse_shape(self) -> None:
        if (
            "csr" in (self._stype, self._grad_stype)
            and self._shape is not None
            and len(self._shape) != 2
        ):
            raise ValueError(
                f"Parameter {self.name!r}: csr storage needs a 2-D shape, got {self._shape}"
            )

    def _complete(self, pending: _PendingInit) -> None:
        """Materialize ``pending`` on its devices, then swap it in."""
        if pending.data is not None:
            values = numpy.asarray(pending.data).astype(self._dtype, copy=False)
        else:
            values = pending.init(
                self.name,
                self._shape,  # type: ignore[arg-type]
                self._dtype,
            )
        data = {dev: Replica(_backend.transfer(values, _CPU0, dev), dev) for dev in pending.devices}
        grads = None if self._grad_req == "null" else self._new_grads(data)
        self._attach(data, grads, self._grad_req)
        self._swap_in(data, grads)
        self._pending = None

    def _new_grad(self, replica: ndarray) -> Any:
        """A zero gradient buffer for ``replica`` in this parameter's ``grad_stype``."""
        if self._grad_stype == "row_sparse":
            return sparse.RowSparseNDArray.empty(replica.shape, replica.dtype, replica.device)
        if self._grad_stype == "csr":
            return sparse.CSRNDArray.empty(replica.shape, replica.dtype, replica.device)
        return Replica(zeros_like(replica)._data, replica.device)

    def _new_grads(self, data: dict[Device, Any]) -> dict[Device, Any]:
        return {dev: self._new_grad(replica) for dev, replica in data.items()}

    @staticmethod
    def _attach(data: dict[Device, Any], grads: dict[Device, Any] | None, grad_req: str) -> None:
        # Makes each replica an autograd leaf depositing into its buffer (module note).
        for dev, replica in data.items():
            replica._attach_grad_buffer(None if grads is None else grads[dev], grad_req)

    def _swap_in(self, data: dict[Device, Any] | None, grads: dict[Device, Any] | None) -> None:
        """Make ``data`` and ``grads`` the replicas (the swap of the atomicity note)."""
        self._data, self._grad = data, grads
        self._data_at = {} if data is None else {_key(d): r for d, r in data.items()}
        self._grad_at = {} if grads is None else {_key(d): g for d, g in grads.items()}
        self._version += 1

    def _replicas(self) -> dict[Device, Any]:
        """The data replicas; completes a pending initialization once the shape is known."""
        if self._data is None:
            if self._pending is None:
                raise RuntimeError(
                    f"Parameter {self.name!r} has not been initialized; call "
                    f"{self.name}.initialize(device=...) first"
                )
            if not _known(self._shape):
                raise DeferredInitializationError(
                    f"Parameter {self.name!r} has not been initialized yet because its "
                    f"initialization was deferred: its shape {self._shape} is not fully "
                    f"known. Set the shape (e.g. run one forward pass) before reading it."
                )
            self._complete(self._pending)
        return self._data  # type: ignore[return-value]  # set by _complete

    def _pick(self, store: dict[Device, Any], device: Device | None, hint: str) -> Any:
        if device is None:
            if len(store) == 1:
                return next(iter(store.values()))
            device = current_device()
        if not isinstance(device, Device):
            kind = "grad" if "grad" in hint else "data"
            raise TypeError(
                f"Parameter {self.name!r}: {kind}(device=...): Expected a Device "
                f"such as mx.cpu(0) or mx.gpu(0), got {device!r} "
                f"({type(device).__name__})"
            )
        if device not in store:
            where = list(store)
            raise RuntimeError(
                f"Parameter {self.name!r} is not on {device}; it is on "
                f"{where}. Use reset_device() or {hint.format(where[0])}."
            )
        return store[device]

    # ----------------------------------------------------------------- access
    def data(self, device: Device | None = None, ctx: Device | None = None) -> ndarray:
        """The live replica on ``device`` (the only one, else the current device's).

        A ``'csr'`` parameter returns a ``CSRNDArray`` snapshot of the replica (CSR cannot
        be written in place); a ``'row_sparse'`` one is read with ``row_sparse_data``.
        """
        if ctx is None and self._stype == "default":
            # The fast path, inlined (a call costs as much as the lookup): the only
            # replica, or the one keyed by the (current) device's ``_key`` tuple. Anything
            # else (not initialized, deferred, not on that device, not a Device) falls
            # through to ``_pick``, which checks and explains.
            at = self._data_at
            replica: ndarray | None
            if device is None:
                if len(at) == 1:
                    for replica in at.values():
                        return replica
                replica = at.get(_current_device.get()._key)
            elif type(device) is Device:
                replica = at.get(device._key)
            else:
                replica = None
            if replica is not None:
                return replica
        if ctx is not None:
            device = _compat.resolve_ctx(device, ctx)
        if self._data is None and _stand_ins.get() is not None:
            return self._stand_in(device)
        if self._stype == "row_sparse":
            raise RuntimeError(
                f"Cannot return Parameter {self.name!r} via data() because "
                f"its storage type is 'row_sparse'; use "
                f"row_sparse_data(row_id) instead"
            )
        replica = self._pick(self._replicas(), device, "data({})")
        if self._stype == "csr":
            # A CSRNDArray (in MXNet a subclass of NDArray, here a class of its own): the
            # annotation is the dense one that nearly every Parameter has.
            return sparse.from_dense(replica, "csr")  # type: ignore[return-value]
        return replica

    def _stand_in(self, device: Any) -> ndarray:
        """Zeros standing in for the data inside ``stand_ins()`` (see there)."""
        if not _known(self._shape):
            raise DeferredInitializationError(
                f"Parameter {self.name!r} has unknown shape {self._shape}; its layer infers "
                f"it from the input"
            )
        if device is None:
            device = current_device()
        if not isinstance(device, Device):
            raise TypeError(
                f"Parameter {self.name!r}: data(device=...): Expected a Device "
                f"such as mx.cpu(0) or mx.gpu(0), got {device!r} "
                f"({type(device).__name__})"
            )
        made = _stand_ins.get()
        key = (id(self), device, self._shape, self._dtype)
        if key not in made:
            xp = _backend.xp(device)
            with _backend.on(device):
                made[key] = (self, ndarray(xp.zeros(self._shape, self._dtype), device))
        stand_in: ndarray = made[key][1]
        return stand_in

    def list_data(self) -> list[ndarray]:
        """The live replicas on all devices, in the order given to ``initialize``."""
        if self._stype == "row_sparse":
            raise RuntimeError(
                f"Cannot return Parameter {self.name!r} via list_data() "
                f"because its storage type is 'row_sparse'; use "
                f"list_row_sparse_data(row_id) instead"
            )
        data = self._data if self._data is not None else self._replicas()
        replicas = list(data.values())
        if self._stype == "csr":  # CSRNDArrays: see data()
            return [sparse.from_dense(r, "csr") for r in replicas]  # type: ignore[misc]
        return replicas

    def _grads(self) -> dict[Device, Any]:
        self._replicas()
        if self._grad is None:
            raise RuntimeError(
                f"Cannot get the gradient of Parameter {self.name!r} because "
                f"grad_req='null'; set {self.name}.grad_req = 'write' (or "
                f"'add') to allocate gradient buffers"
            )
        return self._grad

    def grad(self, device: Device | None = None, ctx: Device | None = None) -> Any:
        """The live gradient buffer on ``device`` (the only one, else the current device's)."""
        if ctx is None:
            # The fast path of data(), for the gradient buffers.
            at = self._grad_at
            if device is None:
                if len(at) == 1:
                    for grad in at.values():
                        return grad
                grad = at.get(_current_device.get()._key)
            elif type(device) is Device:
                grad = at.get(device._key)
            else:
                grad = None
            if grad is not None:
                return grad
        else:
            device = _compat.resolve_ctx(device, ctx)
        return self._pick(self._grads(), device, "grad({})")

    def list_grad(self) -> list[Any]:
        """The gradient buffers on all devices, in the order of ``list_data``."""
        grads = self._grad if self._grad is not None else self._grads()
        return list(grads.values())

    def list_device(self) -> list[Device]:
        """The devices of the replicas (those asked for, while initialization is deferred)."""
        if self._data is not None:
            return list(self._data)
        if self._pending is not None:
            return list(self._pending.devices)
        raise RuntimeError(
            f"Parameter {self.name!r} has not been initialized; call "
            f"{self.name}.initialize(device=...) first"
        )

    def list_ctx(self) -> list[Device]:
        """Deprecated alias of ``list_device``."""
        _compat.warn_renamed("list_ctx()", "list_device()")
        return self.list_device()

    def row_sparse_data(self, row_id: ndarray) -> sparse.RowSparseNDArray:
        """The rows named in ``row_id`` of the replica on ``row_id``'s device, as a copy.

        ``row_id`` may be unsorted and hold duplicates; rows are returned sorted, once.

        Example:
            >>> import gluonlite as mx
            >>> emb = mx.gluon.Parameter('emb', shape=(10, 2), stype='row_sparse',
            ...                          init='ones')
            >>> emb.initialize()
            >>> emb.row_sparse_data(mx.np.array([7, 2, 7])).indices
            array([2, 7], dtype=int64)
        """
        self._check_row_sparse("row_sparse_data", "data", row_id)
        replica = self._pick(self._replicas(), row_id.device, "row ids on {}")
        return self._retain(replica, row_id, "row_sparse_data")

    def list_row_sparse_data(self, row_id: ndarray) -> list[Any]:
        """``row_sparse_data`` for the replica on each device (``row_id`` copied there)."""
        self._check_row_sparse("list_row_sparse_data", "list_data", row_id)
        out: list[Any] = []
        for dev, replica in self._replicas().items():
            ids = ndarray(_backend.transfer(row_id._data, row_id.device, dev), dev)
            out.append(self._retain(replica, ids, "list_row_sparse_data"))
        return out

    def _check_row_sparse(self, method: str, dense_method: str, row_id: Any) -> None:
        if self._stype != "row_sparse":
            raise RuntimeError(
                f"Cannot return Parameter {self.name!r} via {method}() "
                f"because its storage type is {self._stype!r}; use "
                f"{dense_method}() instead"
            )
        if not isinstance(row_id, ndarray):
            raise TypeError(
                f"Parameter {self.name!r}: row_id must be an mx.np.ndarray "
                f"(its device picks the replica), got {type(row_id).__name__}"
            )

    def _retain(self, replica: ndarray, row_id: ndarray, method: str) -> sparse.RowSparseNDArray:
        xp = replica._xp
        with _backend.on(replica.device):
            every_row = xp.arange(replica.shape[0], dtype=numpy.int64)
        # The store holds the full weight: a row-sparse view listing every row.
        full = sparse.RowSparseNDArray(replica._data, every_row, replica.shape, replica.device)
        try:
            return full.retain(row_id)
        except (IndexError, ValueError, TypeError) as e:
            raise type(e)(f"Parameter {self.name!r}: {method}(row_id): {e}") from None

    # ----------------------------------------------------------------- mutation
    def zero_grad(self) -> None:
        """Set every gradient buffer to zero; nothing to do when there are none."""
        if self._grad is None:
            return
        for dev, grad in self._grad.items():
            if not isinstance(grad, ndarray):
                grad._zero()
            elif dev.device_type == "cpu":
                # Host memory needs no device scope, and entering even a null context
                # costs about as much as zeroing a small gradient; fill() is NumPy's
                # cheapest way to zero.
                grad._data.fill(0)
            else:
                with _backend.on(dev):
                    grad._data.fill(0)

    def set_data(self, data: Any) -> None:
        """Copy ``data`` into every replica in place (the initial value, if deferred).

        Raises:
            ValueError: ``data`` does not have the parameter's shape.

        Example:
            >>> import gluonlite as mx
            >>> w = mx.gluon.Parameter('w', shape=(2,))
            >>> w.initialize(device=[mx.cpu(0), mx.cpu(1)])
            >>> w.set_data(mx.np.array([1, 2]))
            >>> w.data(mx.cpu(1))
            array([1., 2.], device=cpu(1))
        """
        if isinstance(data, (sparse.RowSparseNDArray, sparse.CSRNDArray)):
            data = data.tostype("default")
        if isinstance(data, ndarray):
            raw, src = data._data, data.device
        elif _backend.is_gpu_array(data):
            raw, src = data, Device("gpu", data.device.id)
        else:
            raw, src = numpy.asarray(data), _CPU0
        if numpy.dtype(raw.dtype).kind not in "biuf" and raw.dtype.name != "bfloat16":
            # NumPy would drop an imaginary part with only a warning, or fail on strings
            # without naming the parameter.
            kind = "complex" if raw.dtype.kind == "c" else "non-numeric"
            raise TypeError(
                f"Parameter {self.name!r}: set_data got {kind} values of dtype "
                f"{raw.dtype}; the parameter holds {self._dtype}"
            )
        shape = self._merged_shape(tuple(raw.shape), "set_data got shape")
        if self._data is None:
            if self._pending is None:
                raise RuntimeError(
                    f"Parameter {self.name!r} has not been initialized; call "
                    f"{self.name}.initialize(device=...) before set_data()"
                )
            host = _backend.transfer(raw, src, _CPU0).astype(self._dtype, copy=False)
            self._shape = shape
            self._pending = dataclasses.replace(self._pending, data=host)
            return
        moved = {dev: _backend.transfer(raw, src, dev) for dev in self._data}
        with replica_lock:  # readers see the old values or the new ones (module note)
            for dev, replica in self._data.items():
                with _backend.on(dev):
                    replica._data[...] = moved[dev]

    def cast(self, dtype: DTypeLike) -> None:
        """Convert data and gradients on every device to ``dtype`` (new replica arrays).

        Example:
            >>> import gluonlite as mx
            >>> w = mx.gluon.Parameter('w', shape=(2,))
            >>> w.initialize()
            >>> w.cast('float16')
            >>> w.data().dtype, w.grad().dtype
            (dtype('float16'), dtype('float16'))
        """
        dtype = _as_dtype(dtype, self.name)
        if self._data is None:
            self._dtype = dtype
            return
        data = {dev: Replica(_cast(r._data, dev, dtype), dev) for dev, r in self._data.items()}
        grads = None
        if self._grad is not None:
            grads = {
                dev: Replica(_cast(g._data, dev, dtype), dev)
                if isinstance(g, ndarray)
                else g.astype(dtype)
                for dev, g in self._grad.items()
            }
        self._attach(data, grads, self._grad_req)
        self._swap_in(data, grads)
        self._dtype = dtype

    def reset_device(self, device: DevicesLike = None) -> None:
        """Move the parameter to ``device`` (one Device or a list), keeping its values.

        Replicas on devices that stay are kept as they are; each new device gets a copy of
        an existing replica (GPU to GPU by a peer-to-peer copy where the pair allows it).

        Raises:
            ValueError: The parameter has not been initialized.

        Example:
            >>> import gluonlite as mx
            >>> w = mx.gluon.Parameter('w', shape=(2,), init='ones')
            >>> w.initialize(device=mx.cpu(0))
            >>> w.reset_device([mx.cpu(1), mx.cpu(0)])
            >>> w.list_device(), w.data(mx.cpu(1))
            ([cpu(1), cpu(0)], array([1., 1.], device=cpu(1)))
        """
        devices = _as_device_list(device, self.name, "reset_device")
        if self._data is None:
            if self._pending is None:
                raise ValueError(
                    f"Cannot reset the devices of Parameter {self.name!r} "
                    f"because it has not been initialized"
                )
            self._pending = dataclasses.replace(self._pending, devices=devices)
            return
        fresh = {}
        for dev in devices:
            if dev not in self._data:
                src = self._source_for(dev)
                fresh[dev] = Replica(_backend.transfer(self._data[src]._data, src, dev), dev)
        fresh_grads = None if self._grad is None else self._new_grads(fresh)
        self._attach(fresh, fresh_grads, self._grad_req)
        data = {dev: fresh[dev] if dev in fresh else self._data[dev] for dev in devices}
        grads = (
            None
            if self._grad is None
            else {
                dev: fresh_grads[dev] if dev in fresh else self._grad[dev]  # type: ignore[index]
                for dev in devices
            }
        )
        self._swap_in(data, grads)

    def _source_for(self, dst: Device) -> Device:
        # Same-type sources make GPU targets use peer copies and keep CPU copies off the GPU.
        for dev in self._data:  # type: ignore[union-attr]  # initialized
            if dev.device_type == dst.device_type:
                return dev
        return next(iter(self._data))  # type: ignore[arg-type]

    def reset_ctx(self, ctx: DevicesLike) -> None:
        """Deprecated alias of ``reset_device``."""
        _compat.warn_renamed("reset_ctx()", "reset_device()")
        self.reset_device(ctx)

    def var(self) -> symbol.Symbol:
        """A symbol (``mx.sym.var``) describing this parameter; the same on every call."""
        if self._var is None:
            self._var = symbol.var(
                self.name,
                shape=self._shape,
                dtype=self._dtype,
                lr_mult=self.lr_mult,
                wd_mult=self.wd_mult,
                init=self.init,
                stype=self._stype,
            )
        return self._var


class Constant(Parameter):
    """A parameter holding a fixed value: ``grad_req`` is always ``'null'``.

    A Trainer never updates it (it has no gradient); ``set_data`` still replaces it.

    Example:
        >>> import gluonlite as mx
        >>> c = mx.gluon.Constant([[1, 2], [3, 4]])
        >>> c.initialize()
        >>> c, c.grad_req
        (Constant const (shape=(2, 2), dtype=float32), 'null')
    """

    def __init__(self, value: Any, name: str = "const") -> None:
        if isinstance(value, str):
            raise TypeError(
                f"Constant takes the value first: Constant(value, name=...), got "
                f"the string {value!r} as value"
            )
        if hasattr(value, "asnumpy"):
            host = value.asnumpy()
        else:
            host = numpy.array(value)
            if not isinstance(value, numpy.ndarray) and host.dtype.kind in "fiu":
                # As mx.np.array: Python numbers become float32.
                host = host.astype(numpy.float32)
        self.value = ndarray(host, _CPU0)
        super().__init__(
            name,
            grad_req="null",
            shape=host.shape,
            dtype=host.dtype,
            init=initializer.Constant(host),
        )

    @property
    def grad_req(self) -> str:
        return "null"

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req != "null":
            warnings.warn(
                f"Constant {self.name!r} has no gradient; grad_req={req!r} is ignored",
                UserWarning,
                stacklevel=2,
            )
        self._grad_req = "null"


class ParameterDict(dict):  # type: ignore[type-arg]  # dict[str, Parameter]
    """MXNet 1.x's ``ParameterDict``: a dict name -> Parameter with a name ``prefix``.

    ``collect_params()`` returns one, and it is still the plain dict MXNet 2 returns
    (structural names as keys, ``d.get(name)`` is None for a missing name). The 1.x methods
    work on top: ``get(name, shape=...)`` creates or returns ``prefix + name`` (on a dict
    made by ``gluon.ParameterDict(prefix)``, and on a block's ``params`` when arguments are
    given),
    ``get_constant``, ``initialize``, ``zero_grad``, ``reset_ctx``, ``setattr``, ``save``,
    ``load``. Constructing one directly is deprecated, as in MXNet 2.

    Example:
        >>> import gluonlite as mx, warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter('ignore')
        ...     pd = mx.gluon.ParameterDict('net_')
        >>> w = pd.get('weight', shape=(2, 3))
        >>> w.name, pd.get('weight') is w, list(pd)
        ('net_weight', True, ['net_weight'])
    """

    def __init__(self, prefix: str = "", shared: Any = None) -> None:
        super().__init__()
        _compat.warn_renamed("gluon.ParameterDict", "a dict of Parameters (structural names)")
        self._setup(prefix, shared, owner=None, creates=True)

    @classmethod
    def _internal(
        cls,
        items: Any = (),
        prefix: str = "",
        shared: Any = None,
        owner: Any = None,
        creates: bool | str = False,
    ) -> "ParameterDict":
        """A ParameterDict made by gluonlite itself (no deprecation warning)."""
        out = dict.__new__(cls)
        dict.__init__(out, items)
        out._setup(prefix, shared, owner, creates)
        return out

    def _setup(self, prefix: str | None, shared: Any, owner: Any, creates: bool | str) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"ParameterDict: prefix must be a str, got {type(prefix).__name__}")
        if shared is not None and not isinstance(shared, dict):
            raise TypeError(
                f"ParameterDict: shared must be a ParameterDict or dict, got "
                f"{type(shared).__name__}"
            )
        self._prefix, self._shared = prefix, shared
        # owner: the Block whose ``params`` this is (get() registers new Parameters there).
        self._owner, self._creates = owner, creates

    @property
    def prefix(self) -> str:
        return self._prefix

    def __missing__(self, key: str) -> Parameter:
        # MXNet 1.x scripts index by full Parameter name ('dense0_weight'): found when it
        # names exactly one Parameter here.
        matches: list[Parameter] = [p for p in self.values() if p.name == key]
        if len(matches) == 1 and isinstance(key, str):
            return matches[0]
        raise KeyError(key)

    def _find(self, name: str) -> tuple[str | None, Any]:
        for key in (name, self._prefix + name):
            if key in self:
                return key, dict.__getitem__(self, key)
            if self._shared is not None and key in self._shared:
                return key, self._shared[key]
        return None, None

    def get(self, name: str, default: Any = None, **kwargs: Any) -> Any:
        """The Parameter ``name`` (or ``prefix + name``); created with ``kwargs`` when missing.

        Dicts returned by ``collect_params()`` create nothing: a missing name gives
        ``default``, as ``dict.get`` does. For an existing Parameter, ``kwargs`` must agree
        with it (an unknown shape dimension is filled in), as in MXNet 1.x.

        Raises:
            TypeError: an unknown keyword argument for ``Parameter``.
            ValueError: ``kwargs`` conflict with the existing Parameter.
        """
        key, param = self._find(name)
        if param is None:
            if not (self._creates is True or (self._creates == "kwargs" and kwargs)):
                return default
            if self._owner is not None:
                _compat.warn_renamed(
                    "Block.params.get(name, ...)",
                    "a Parameter attribute (self.weight = Parameter(...))",
                )
            param = Parameter(self._prefix + name, **kwargs)
            self._store(name, param)
            return param
        if key not in self:
            self._store(name, param)  # found in ``shared``: used here from now on
        self._check_agrees(param, kwargs)
        return param

    def _store(self, name: str, param: Parameter) -> None:
        if self._owner is not None:
            self._owner._register_param(name, param)
            self._owner._getter_names.add(name)
            dict.__setitem__(self, name, param)
        else:
            dict.__setitem__(self, self._prefix + name, param)

    @staticmethod
    def _check_agrees(param: Parameter, kwargs: dict[str, Any]) -> None:
        for arg, value in kwargs.items():
            if arg == "shape":
                param.shape = value  # merges unknown dimensions, raises on a conflict
                continue
            if arg == "init":
                if value is not None and param.init is None:
                    param.init = initializer.create(value)
                continue
            if not hasattr(param, arg):
                raise TypeError(
                    f"ParameterDict.get: Parameter {param.name!r} has no argument {arg!r}"
                )
            current = getattr(param, arg)
            if arg == "dtype":
                value = _backend.dtype_of(value)
            if value is not None and current != value:
                raise ValueError(
                    f"ParameterDict.get: Parameter {param.name!r} exists with "
                    f"{arg}={current!r}, which conflicts with the requested "
                    f"{arg}={value!r}"
                )

    def get_constant(self, name: str, value: Any = None) -> "Constant":
        """The Constant ``name`` (or ``prefix + name``), created from ``value`` if missing.

        Raises:
            ValueError: it is missing and no ``value`` is given.
        """
        key, param = self._find(name)
        if param is None:
            if value is None:
                raise ValueError(
                    f"ParameterDict.get_constant: no constant "
                    f"{self._prefix + name!r} yet; give its value"
                )
            param = Constant(value, name=self._prefix + name)
            self._store(name, param)
        elif key not in self:
            self._store(name, param)
        if not isinstance(param, Constant):
            raise TypeError(
                f"ParameterDict.get_constant: {param.name!r} is a "
                f"{type(param).__name__}, not a Constant"
            )
        return param

    def _unique(self) -> list[Parameter]:
        seen, out = set(), []
        for p in self.values():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def initialize(
        self,
        init: InitLike = None,
        device: DevicesLike = None,
        verbose: bool = False,
        force_reinit: bool = False,
        ctx: DevicesLike = None,
    ) -> None:
        """Initialize every Parameter (``init`` is the default of those without their own)."""
        device = _compat.resolve_ctx(device, ctx)
        default = initializer.create(init) if init is not None else initializer.Uniform()
        if verbose:
            default.set_verbosity(True)
        for p in self._unique():
            p.initialize(None, device=device, default_init=default, force_reinit=force_reinit)

    def zero_grad(self) -> None:
        for p in self._unique():
            p.zero_grad()

    def reset_device(self, device: DevicesLike) -> None:
        for p in self._unique():
            p.reset_device(device)

    def reset_ctx(self, ctx: DevicesLike) -> None:
        """Deprecated alias of ``reset_device``."""
        _compat.warn_renamed("reset_ctx()", "reset_device()")
        self.reset_device(ctx)

    def list_device(self) -> list[Device]:
        """Every device some Parameter here lives on, in first-seen order."""
        out: list[Device] = []
        for p in self._unique():
            out.extend(d for d in p.list_device() if d not in out)
        return out

    def setattr(self, name: str, value: Any) -> None:
        """Set attribute ``name`` (e.g. ``'grad_req'``, ``'lr_mult'``) of every Parameter.

        Raises:
            TypeError: a Parameter has no attribute ``name``.
        """
        named, seen = [], set()
        for key, p in self.items():
            if id(p) not in seen:
                seen.add(id(p))
                named.append((key, p))
        for key, p in named:
            if not hasattr(p, name):
                raise TypeError(f"setattr: Parameter {key!r} has no attribute {name!r}")
        done: list[tuple[Any, Any]] = []
        for key, p in named:
            try:
                previous = getattr(p, name)
                setattr(p, name, value)
            except (TypeError, ValueError) as e:
                for q, old in reversed(done):  # a call that raised changes nothing
                    setattr(q, name, old)
                raise type(e)(
                    f"setattr({name!r}, {value!r}) failed for Parameter {key!r}: {e}"
                ) from e
            done.append((p, previous))

    def update(self, other: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        """``dict.update``; a user-made (1.x) ParameterDict refuses to replace a Parameter
        by a different one under the same name, as MXNet 1.x did."""
        items = dict(other, **kwargs)
        if self._creates and self._owner is None:
            for k, v in items.items():
                if k in self and dict.__getitem__(self, k) is not v:
                    raise ValueError(
                        f"ParameterDict.update: cannot replace Parameter {k!r} "
                        f"with a different Parameter of the same name"
                    )
        dict.update(self, items)

    def save(self, filename: str, strip_prefix: str = "") -> None:
        """Save the Parameters, with ``strip_prefix`` removed from every name.

        Raises:
            ValueError: a name does not start with ``strip_prefix``.
        """
        from .. import checkpoint

        named = {}
        for key, p in self.items():
            if not key.startswith(strip_prefix):
                raise ValueError(
                    f"ParameterDict.save: prefix {strip_prefix!r} is to be "
                    f"stripped, but Parameter {key!r} does not start with it"
                )
            named[key[len(strip_prefix) :]] = p
        checkpoint.save_parameters(filename, named)

    def load(
        self,
        filename: str,
        device: DevicesLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        cast_dtype: bool = False,
        dtype_source: str = "current",
        ctx: DevicesLike = None,
    ) -> None:
        """Load ``filename`` (names saved without ``restore_prefix``); all or nothing."""
        from .. import checkpoint

        device = _compat.resolve_ctx(device, ctx)
        named = {}
        for key, p in self.items():
            if restore_prefix and not key.startswith(restore_prefix):
                raise ValueError(
                    f"ParameterDict.load: restore_prefix {restore_prefix!r} "
                    f"is not a prefix of Parameter {key!r}"
                )
            named[key[len(restore_prefix) :]] = p
        checkpoint.load_parameters(
            filename,
            named,
            device=device,
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            cast_dtype=cast_dtype,
            dtype_source=dtype_source,
        )
