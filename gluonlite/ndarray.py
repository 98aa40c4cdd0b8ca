"""``mx.np.ndarray``: a NumPy or CuPy array that knows its ``Device``.

The wrapper is thin: ``_data`` is the raw array, ``_device`` where it lives. Arithmetic
between arrays on different devices is an error rather than a silent copy. Differentiable
ops record themselves on the autograd tape with their backward written next to them.

>>> import gluonlite as mx
>>> a = mx.np.array([[1, 2], [3, 4]], device=mx.cpu(1))
>>> (a @ a.T).sum().item()
52.0
>>> a.device, a.dtype
(cpu(1), dtype('float32'))
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy
import numpy.typing as npt

from . import _backend, autograd
from ._compat import resolve_ctx as _resolve_ctx, warn_renamed
from .autograd import record_op
from .device import Device, as_device
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from ._typing import DTypeLike, RawArray, ShapeLike

if TYPE_CHECKING:
    from typing import TypeAlias

# What an mx.np function accepts as an array: a gluonlite ndarray or anything NumPy turns
# into an array (scalars, nested sequences, NumPy arrays).
ArrayLike: TypeAlias = Union["ndarray", npt.ArrayLike]

__all__ = [
    "ndarray",
    "array",
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "zeros_like",
    "ones_like",
    "full_like",
    "from_dlpack",
    "wrap",
]

_DEFAULT_DTYPE = numpy.dtype(numpy.float32)
_GRAD_REQS = ("write", "add", "null")


class _SparseHooks(NamedTuple):
    """What ``tostype`` and ``attach_grad(stype='row_sparse')`` need of ``sparse.py``."""

    from_dense: Callable[[Any, str], Any]
    row_sparse_empty: Callable[[tuple[int, ...], Any, Device], Any]


# The sparse storage types live in sparse.py, above this module (they build on ndarray);
# sparse.py registers its converters here when imported (``import gluonlite`` imports it),
# so this module reaches them without importing upward.
_sparse_hooks: _SparseHooks | None = None


def register_sparse(
    from_dense: Callable[[Any, str], Any],
    row_sparse_empty: Callable[[tuple[int, ...], Any, Device], Any],
) -> None:
    """Called once by ``sparse.py``: ``from_dense(array, stype)`` converts a dense array,
    ``row_sparse_empty(shape, dtype, device)`` makes an all-zero row-sparse array."""
    global _sparse_hooks
    _sparse_hooks = _SparseHooks(from_dense, row_sparse_empty)


def _sparse() -> _SparseHooks:
    if _sparse_hooks is None:
        raise RuntimeError(
            "gluonlite.ndarray: the sparse storage types are not registered; import "
            "gluonlite (gluonlite.sparse registers them) before converting storage types"
        )
    return _sparse_hooks


# The optional C extension (gluonlite/_cndarray.c, built where a compiler is present): a
# base class holding _data/_device that runs the hottest paths (indexing, .T, reshape, the
# binary operators on cpu outside recording) in C, handing every other case to the Python
# methods below, which stay the definition of the behaviour. GLUONLITE_NO_CEXT=1 (read at
# import) runs the pure-Python class; tests/test_cext.py runs the same cases both ways.
_C: Any = None
if os.environ.get("GLUONLITE_NO_CEXT", "") in ("", "0"):
    try:
        from . import _cndarray as _C
    except ImportError:  # an install without a compiler: the pure-Python class
        _C = None
if TYPE_CHECKING:
    _Base = object
else:
    _Base = object if _C is None else _C.NDArrayBase

# The hot paths (views, indexing, the np table's fast paths) read the recording flag through
# the bound method and make their result with object.__new__ (the C base's __new__ when
# the extension is in) plus two attribute stores: ndarray(raw, device) would add a call of
# __init__ from C (a third of a view's wrapper).
_recording_get = autograd._recording.get
_new = object.__new__ if _C is None else _C.new
_NP_NDARRAY = numpy.ndarray


class ndarray(_Base):
    """An n-dimensional array on one device (NumPy-backed on cpu, CuPy-backed on gpu)."""

    # NumPy defers to our reflected operators instead of broadcasting over us.
    __array_priority__ = 1000

    # Autograd state, read from these class defaults until set: every op creates an array,
    # and setting two attributes instead of seven keeps the per-op cost down (no __slots__
    # for that reason).
    _node: autograd.Node | None = None  # autograd.Node when produced by a recorded op
    _grad: Any = None  # gradient buffer (ndarray or RowSparseNDArray) of a leaf
    _grad_req: str = "null"
    _fresh_grad: bool = False  # set when backward writes the buffer; Trainer clears it
    _version: int = 0  # bumped by in-place changes of an array in a graph

    def __init__(self, data: RawArray, device: Device) -> None:
        self._data = data
        self._device = device

    # ----------------------------------------------------------------- properties
    @property
    def _xp(self) -> ModuleType:
        return numpy if self._device.device_type == "cpu" else _backend.cupy()

    @property
    def device(self) -> Device:
        return self._device

    @property
    def ctx(self) -> Device:
        """Deprecated alias of ``device``."""
        warn_renamed("ndarray.ctx", "ndarray.device")
        return self._device

    context = ctx

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> numpy.dtype[Any]:
        return self._data.dtype  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        return int(self._data.size)

    @property
    def ndim(self) -> int:
        return self._data.ndim  # type: ignore[no-any-return]

    @property
    def stype(self) -> str:
        return "default"

    @property
    def T(self) -> "ndarray":
        if _recording_get() and (self._node is not None or self._grad_req != "null"):
            return self.transpose()
        out = _new(ndarray)  # a view outside the graph: wrapped without __init__'s call
        out._data, out._device = self._data.T, self._device
        return out

    @property
    def grad(self) -> Any:
        """The gradient buffer attached by ``attach_grad`` (None when there is none)."""
        return self._grad

    # ----------------------------------------------------------------- conversion
    def asnumpy(self) -> numpy.ndarray:
        """A NumPy copy of the values (a host transfer for GPU arrays)."""
        if self._device.device_type == "cpu":
            return numpy.array(self._data, copy=True)
        with _backend.on(self._device):
            return _backend.cupy().asnumpy(self._data)  # type: ignore[no-any-return]

    def __array__(
        self, dtype: DTypeLike = None, copy: bool | None = None
    ) -> numpy.ndarray[Any, Any]:
        out = self.asnumpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(
                f"item: can only convert an array of size 1 to a Python scalar, "
                f"got shape {self.shape}"
            )
        return self.asnumpy().item()

    def tolist(self) -> Any:
        return self.asnumpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                "The truth value of an array with more than one element is "
                "ambiguous. Use a.any() or a.all()"
            )
        return bool(self.item())

    def __index__(self) -> int:
        if self.size != 1 or self.dtype.kind not in "iub":
            raise TypeError(
                f"only integer scalar arrays can be converted to a scalar index, "
                f"got shape {self.shape} and dtype {self.dtype}"
            )
        return int(self.item())

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object (a 0-d array)")
        return self.shape[0]

    def __iter__(self) -> Iterator[ndarray]:
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        for i in range(len(self)):
            yield self[i]

    def __format__(self, fmt: str) -> str:
        """Format spec applies to 0-d arrays (``f'{x:.3f}'``), as in MXNet."""
        if self.ndim == 0:
            return format(self.item(), fmt)
        if not fmt:
            return str(self)
        raise TypeError(
            f"unsupported format string {fmt!r} for an array of shape "
            f"{self.shape}; only 0-d arrays take a format spec"
        )

    def as_np_ndarray(self) -> "ndarray":
        """This array (already an ``mx.np.ndarray``)."""
        return self

    def as_nd_ndarray(self) -> "ndarray":
        """MXNet's legacy ``mx.nd.NDArray`` view. gluonlite has no legacy array type, so this
        is the same array (its NumPy semantics unchanged)."""
        return self

    @property
    def itemsize(self) -> int:
        return self._data.dtype.itemsize  # type: ignore[no-any-return]

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    def to_device(self, device: Device) -> "ndarray":
        """This array on ``device``: itself when already there, else a copy.

        The copy is differentiable: the gradient flows back to this array's device.
        """
        device = as_device(device)
        if device == self._device:
            return self
        src = self._device
        out = ndarray(_backend.transfer(self._data, src, device), device)
        return record_op(
            out,
            (self,),
            lambda g: (_backend.transfer(g, device, src),),
            lambda out, g: (g.to_device(src),),
        )

    def as_in_context(self, context: Device) -> "ndarray":
        """Deprecated alias of ``to_device``."""
        warn_renamed("as_in_context", "to_device")
        return self.to_device(context)

    as_in_ctx = as_in_context

    def copyto(self, other: Any) -> ndarray:
        """Copy into ``other`` (an ndarray of the same shape) or to a new array on a Device."""
        if isinstance(other, Device):
            return ndarray(_backend.transfer(self._data, self._device, other), other)
        if isinstance(other, ndarray):
            if other.shape != self.shape:
                raise ValueError(
                    f"copyto: shape mismatch, source {self.shape}, target {other.shape}"
                )
            moved = _backend.transfer(self._data, self._device, other._device)
            with _backend.on(other._device):
                other._data[...] = moved
            return other
        raise TypeError(f"copyto expects a Device or an ndarray, got {type(other).__name__}")

    def copy(self) -> "ndarray":
        with _backend.on(self._device):
            out = ndarray(self._data.copy(), self._device)
        return record_op(out, (self,), lambda g: (g,), _identity_graph)

    def astype(self, dtype: DTypeLike, copy: bool = True) -> "ndarray":
        dtype = _backend.dtype_of(dtype)
        if not copy and dtype == self.dtype:
            return self
        src_dtype = self.dtype
        with _backend.on(self._device):
            out = ndarray(self._data.astype(dtype), self._device)
        return record_op(
            out, (self,), lambda g: (g.astype(src_dtype),), lambda out, g: (g.astype(src_dtype),)
        )

    def tostype(self, stype: str) -> Any:
        """This array in storage type ``'default'``, ``'row_sparse'`` or ``'csr'``."""
        if stype == "default":
            return self
        return _sparse().from_dense(self, stype)

    def detach(self) -> "ndarray":
        """The same values, cut from the autograd graph."""
        return ndarray(self._data, self._device)

    def wait_to_read(self) -> None:
        _backend.synchronize(self._device)

    # ----------------------------------------------------------------- DLPack
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._data.__dlpack_device__()  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- autograd
    def attach_grad(self, grad_req: str = "write", stype: str | None = None) -> None:
        """Make this array a leaf whose gradient ``backward()`` stores in ``self.grad``."""
        if stype not in (None, "default", "row_sparse"):
            raise ValueError(f"attach_grad: stype must be 'default' or 'row_sparse', got {stype!r}")
        if stype == "row_sparse":
            grad: Any = _sparse().row_sparse_empty(self.shape, self.dtype, self._device)
        else:
            grad = zeros_like(self)
        self._attach_grad_buffer(grad, grad_req)

    def _attach_grad_buffer(self, grad: Any, grad_req: str) -> None:
        if grad_req not in _GRAD_REQS:
            raise ValueError(f"grad_req must be one of {_GRAD_REQS}, got {grad_req!r}")
        self._grad = None if grad_req == "null" else grad
        self._grad_req = grad_req
        self._node = None

    def backward(self, out_grad: ndarray | None = None, retain_graph: bool = False) -> None:
        """Gradients of this array w.r.t. the recorded leaves (``out_grad`` defaults to ones)."""
        autograd.backward(self, out_grad, retain_graph)

    def _deposit_grad(self, g: RawArray) -> None:
        """Store gradient ``g`` (raw array or ``SparseRows``) per this leaf's grad_req."""
        req, grad = self._grad_req, self._grad
        if req == "null" or grad is None:
            return
        if (
            req == "write"
            and type(g) is _NP_NDARRAY
            and type(grad) is ndarray
            and grad._device.device_type == "cpu"
        ):
            grad._data[...] = g  # the common case: one copy into the buffer
        else:
            grad._store_gradient(g, add=req == "add")
        self._fresh_grad = True

    def _store_gradient(self, g: RawArray, add: bool) -> None:
        xp = self._xp
        with _backend.on(self._device):
            if isinstance(g, autograd.SparseRows):
                if not add:
                    self._data[...] = 0
                autograd._scatter_add(xp, self._data, g.indices, g.values.astype(self.dtype))
            elif add:
                self._data += g.astype(self.dtype, copy=False)
            else:
                self._data[...] = g

    # ----------------------------------------------------------------- indexing
    def __getitem__(self, key: Any) -> ndarray:
        tk = type(key)
        device = self._device
        if tk is int or tk is slice:
            raw_key = key
        elif tk is ndarray and key._device is device and key._data.dtype.kind != "f":
            raw_key = key._data  # an index array on this very device object: as is
        else:
            raw_key = _raw_index(key, device)
        if device.device_type == "cpu" and not _recording_get():
            # Outside recording on cpu (x[3], x[1:9], x[idx]): NumPy's indexing, wrapped.
            try:
                raw = self._data[raw_key]
            except IndexError as e:
                raise IndexError(f"index: {e} (array of shape {self.shape})") from None
            if type(raw) is not _NP_NDARRAY:
                raw = numpy.asarray(raw)  # x[i] of a 1-d array: a 0-d array, not a scalar
            out = _new(ndarray)
            out._data, out._device = raw, device
            return out
        return self._index_recorded(raw_key)

    def _index_recorded(self, raw_key: Any) -> "ndarray":
        """``__getitem__`` on a GPU or while recording. (A separate method: the closure
        below would make ``__getitem__`` create its cells on every call, the fast path's
        included.)"""
        try:
            if self._device.device_type == "cpu":
                raw = self._data[raw_key]
                out = ndarray(raw if type(raw) is _NP_NDARRAY else numpy.asarray(raw), self._device)
            else:
                with _backend.on(self._device):
                    out = ndarray(self._data[raw_key], self._device)
        except IndexError as e:
            raise IndexError(f"index: {e} (array of shape {self.shape})") from None
        if not autograd._recording.get() or (self._node is None and self._grad_req == "null"):
            return out
        shape, dtype, xp = self.shape, self.dtype, self._xp

        def backward(g: RawArray) -> Any:
            full = xp.zeros(shape, dtype=dtype)
            autograd._scatter_add(xp, full, raw_key, g)
            return (full,)

        return record_op(out, (self,), backward, lambda out, g: (scatter_add(g, shape, raw_key),))

    def __setitem__(self, key: Any, value: Any) -> None:
        """``x[key] = value``. While recording, with ``x`` or ``value`` in the graph, ``x``
        becomes a new node of the graph (its earlier values stay with the ops that read
        them), so gradients stay right; an array with ``attach_grad()`` cannot be assigned
        to while recording (its own gradient would be lost)."""
        raw_key = _raw_index(key, self._device)
        raw_value = _operand(value, self, "setitem")
        tracked = autograd._recording.get() and (
            autograd.requires_grad(self)
            or (isinstance(value, ndarray) and autograd.requires_grad(value))
        )
        if not tracked:
            with _backend.on(self._device):
                self._data[raw_key] = raw_value
            if self._node is not None or self._grad_req != "null":
                self._version += 1
            return
        self._check_inplace("setitem")
        old = self._snapshot()
        with _backend.on(self._device):
            new = self._data.copy()
            new[raw_key] = raw_value
        xp = self._xp
        inputs = (old, value) if isinstance(value, ndarray) else (old,)
        value_shape = numpy.shape(raw_value)

        def backward(g: RawArray) -> Any:
            g_old = g.copy()
            g_old[raw_key] = 0
            if len(inputs) == 1:
                return (g_old,)
            return g_old, _unbroadcast(xp.asarray(g[raw_key]), value_shape)

        def graph(out: ndarray, g: ndarray) -> tuple[ndarray, ...]:
            # g with the assigned elements zeroed: g times a constant mask
            with _backend.on(out._device):
                mask = xp.ones(g.shape, dtype=g.dtype)
                mask[raw_key] = 0
            g_old = g * ndarray(mask, out._device)
            if len(inputs) == 1:
                return (g_old,)
            return g_old, _unbroadcast(g[raw_key], value_shape)

        self._data = new
        self._node = autograd.Node(inputs, backward, graph)
        self._version += 1

    def _check_inplace(self, what: str) -> None:
        if self._node is None and self._grad_req != "null":
            raise RuntimeError(
                f"{what}: in-place change of an array with attach_grad() while recording "
                "would make its gradient wrong; compute a new array instead (y = x + 1, "
                "y = np.where(mask, v, x))"
            )

    def _snapshot(self) -> "ndarray":
        """This array's current value and graph position, as a separate array object."""
        old = ndarray(self._data, self._device)
        old._node = self._node
        return old

    # ----------------------------------------------------------------- shape ops
    def reshape(self, *shape: Any, **kwargs: Any) -> "ndarray":
        """``x.reshape((2, -1))`` or MXNet's ``x.reshape(2, -1)``; differentiable."""
        device = self._device
        if device.device_type == "cpu" and shape and not kwargs and not _recording_get():
            # Outside recording on cpu: NumPy's reshape (it takes both spellings), wrapped.
            try:
                raw = self._data.reshape(*shape)
            except (ValueError, TypeError) as e:
                raise type(e)(f"reshape: {e}") from None
            out = _new(ndarray)
            out._data, out._device = raw, device
            return out
        if device.device_type != "cpu":
            # A reshape that must copy (a non-contiguous view) allocates on the current
            # device: make it the array's own.
            with _backend.on(self._device):
                return self._reshape(shape, kwargs)
        return self._reshape(shape, kwargs)

    def _reshape(self, shape: tuple[Any, ...], kwargs: dict[str, Any]) -> "ndarray":
        if shape and not kwargs and not autograd._recording.get():
            # Outside recording: NumPy's reshape, wrapped (it takes both spellings).
            try:
                return ndarray(self._data.reshape(*shape), self._device)
            except (ValueError, TypeError) as e:
                raise type(e)(f"reshape: {e}") from None
        if len(shape) == 1 and type(shape[0]) in (tuple, list):
            shape = shape[0]
        order = "C"
        if kwargs:
            shape = kwargs.pop("newshape", kwargs.pop("shape", shape))
            order = kwargs.pop("order", "C")
            if kwargs:
                raise TypeError(f"reshape got unexpected arguments {sorted(kwargs)}")
        try:
            raw = (
                self._data.reshape(shape)
                if order == "C"
                else self._data.reshape(shape, order=order)
            )
        except (ValueError, TypeError) as e:
            raise type(e)(f"reshape: {e}") from None
        out = ndarray(raw, self._device)
        if not autograd._recording.get() or (self._node is None and self._grad_req == "null"):
            return out
        old = self._data.shape
        return record_op(
            out,
            (self,),
            lambda g: (g.reshape(old, order=order),),
            lambda out, g: (g.reshape(old, order=order),),
        )

    def transpose(self, *axes: Any) -> "ndarray":
        if not axes and not _recording_get():
            out = _new(ndarray)  # x.transpose() outside recording: NumPy's view, wrapped
            out._data, out._device = self._data.T, self._device
            return out
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = tuple(axes[0]) if axes[0] is not None else ()
        axes = axes or tuple(reversed(range(self.ndim)))
        try:
            raw = self._data.transpose(axes)
        except (ValueError, TypeError) as e:
            raise type(e)(f"transpose: {e}") from None
        out = ndarray(raw, self._device)
        if not autograd._recording.get() or (self._node is None and self._grad_req == "null"):
            return out
        inverse = tuple(numpy.argsort(axes))
        return record_op(
            out, (self,), lambda g: (g.transpose(inverse),), lambda out, g: (g.transpose(inverse),)
        )

    def flatten(self, order: str = "C") -> "ndarray":
        return self.reshape(-1, order=order)

    # ----------------------------------------------------------------- in-place
    def _inplace(self, other: Any, name: str) -> ndarray:
        """``x op= y``: mutates the buffer (Parameter replicas stay live) when nothing is
        recorded; while recording, rebinds ``x`` to the recorded result so gradients stay
        right (see ``__setitem__``)."""
        if autograd._recording.get() and (
            autograd.requires_grad(self)
            or (isinstance(other, ndarray) and autograd.requires_grad(other))
        ):
            self._check_inplace(f"in-place {name}")
            old = self._snapshot()
            res = _OPS[name](old, old if other is self else other)
            raw = res._data if res.dtype == self.dtype else res._data.astype(self.dtype)
            if tuple(raw.shape) != self.shape:
                raise ValueError(
                    f"in-place {name}: the result has shape {res.shape}, the "
                    f"array has shape {self.shape}"
                )
            self._data, self._node = raw, res._node
            self._version += 1
            return self
        operand = _operand(other, self, name)
        try:
            with _backend.on(self._device):
                getattr(self._xp, name)(self._data, operand, out=self._data, casting="unsafe")
        except (ValueError, TypeError) as e:
            raise type(e)(f"in-place {name}: {e}") from None
        if self._node is not None or self._grad_req != "null":
            self._version += 1
        return self

    def __pos__(self) -> ndarray:
        return self

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as NumPy's

    if TYPE_CHECKING:
        # Installed by install_ops (below) from mx.np's functions; declared here for type
        # checkers (tests/test_ndarray.py checks that each installed name is declared).
        def __add__(self, other: ArrayLike) -> ndarray: ...
        def __radd__(self, other: ArrayLike) -> ndarray: ...
        def __sub__(self, other: ArrayLike) -> ndarray: ...
        def __rsub__(self, other: ArrayLike) -> ndarray: ...
        def __mul__(self, other: ArrayLike) -> ndarray: ...
        def __rmul__(self, other: ArrayLike) -> ndarray: ...
        def __truediv__(self, other: ArrayLike) -> ndarray: ...
        def __rtruediv__(self, other: ArrayLike) -> ndarray: ...
        def __pow__(self, other: ArrayLike) -> ndarray: ...
        def __rpow__(self, other: ArrayLike) -> ndarray: ...
        def __mod__(self, other: ArrayLike) -> ndarray: ...
        def __rmod__(self, other: ArrayLike) -> ndarray: ...
        def __floordiv__(self, other: ArrayLike) -> ndarray: ...
        def __rfloordiv__(self, other: ArrayLike) -> ndarray: ...
        def __and__(self, other: ArrayLike) -> ndarray: ...
        def __rand__(self, other: ArrayLike) -> ndarray: ...
        def __or__(self, other: ArrayLike) -> ndarray: ...
        def __ror__(self, other: ArrayLike) -> ndarray: ...
        def __xor__(self, other: ArrayLike) -> ndarray: ...
        def __rxor__(self, other: ArrayLike) -> ndarray: ...
        def __lshift__(self, other: ArrayLike) -> ndarray: ...
        def __rlshift__(self, other: ArrayLike) -> ndarray: ...
        def __rshift__(self, other: ArrayLike) -> ndarray: ...
        def __rrshift__(self, other: ArrayLike) -> ndarray: ...
        def __matmul__(self, other: ArrayLike) -> ndarray: ...
        def __rmatmul__(self, other: ArrayLike) -> ndarray: ...
        def __iadd__(self, other: ArrayLike) -> ndarray: ...
        def __isub__(self, other: ArrayLike) -> ndarray: ...
        def __imul__(self, other: ArrayLike) -> ndarray: ...
        def __itruediv__(self, other: ArrayLike) -> ndarray: ...
        def __ipow__(self, other: ArrayLike) -> ndarray: ...
        def __imod__(self, other: ArrayLike) -> ndarray: ...
        def __ifloordiv__(self, other: ArrayLike) -> ndarray: ...
        def __eq__(self, other: object) -> Any: ...
        def __ne__(self, other: object) -> Any: ...
        def __lt__(self, other: ArrayLike) -> ndarray: ...
        def __le__(self, other: ArrayLike) -> ndarray: ...
        def __gt__(self, other: ArrayLike) -> ndarray: ...
        def __ge__(self, other: ArrayLike) -> ndarray: ...
        def __neg__(self) -> ndarray: ...
        def __abs__(self) -> ndarray: ...
        def __invert__(self) -> ndarray: ...
        def all(
            self,
            axis: Any = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            *,
            where: Any = ...,
        ) -> ndarray: ...
        def any(
            self,
            axis: Any = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            *,
            where: Any = ...,
        ) -> ndarray: ...
        def argmax(
            self, axis: Any = ..., out: ndarray | None = ..., *, keepdims: Any = ...
        ) -> ndarray: ...
        def argmin(
            self, axis: Any = ..., out: ndarray | None = ..., *, keepdims: Any = ...
        ) -> ndarray: ...
        def argsort(
            self, axis: Any = ..., kind: Any = ..., order: Any = ..., *, stable: Any = ...
        ) -> ndarray: ...
        def clip(
            self,
            a_min: Any = ...,
            a_max: Any = ...,
            out: ndarray | None = ...,
            *,
            min: Any = ...,
            max: Any = ...,
            **kwargs: Any,
        ) -> ndarray: ...
        def cumsum(
            self, axis: Any = ..., dtype: DTypeLike = ..., out: ndarray | None = ...
        ) -> ndarray: ...
        def diagonal(self, offset: Any = ..., axis1: Any = ..., axis2: Any = ...) -> ndarray: ...
        def dot(self, b: Any, out: ndarray | None = ...) -> ndarray: ...
        def max(
            self,
            axis: Any = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            initial: Any = ...,
            where: Any = ...,
        ) -> ndarray: ...
        def mean(
            self,
            axis: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            *,
            where: Any = ...,
        ) -> ndarray: ...
        def min(
            self,
            axis: Any = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            initial: Any = ...,
            where: Any = ...,
        ) -> ndarray: ...
        def nonzero(self) -> tuple[ndarray, ...]: ...
        def prod(
            self,
            axis: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            initial: Any = ...,
            where: Any = ...,
        ) -> ndarray: ...
        def ravel(self, order: Any = ...) -> ndarray: ...
        def repeat(self, repeats: Any, axis: Any = ...) -> ndarray: ...
        def round(self, decimals: Any = ..., out: ndarray | None = ...) -> ndarray: ...
        def sort(
            self, axis: Any = ..., kind: Any = ..., order: Any = ..., *, stable: Any = ...
        ) -> ndarray: ...
        def squeeze(self, axis: Any = ...) -> ndarray: ...
        def std(
            self,
            axis: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
            ddof: Any = ...,
            keepdims: Any = ...,
            *,
            where: Any = ...,
            mean: Any = ...,
            correction: Any = ...,
        ) -> ndarray: ...
        def sum(
            self,
            axis: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
            keepdims: Any = ...,
            initial: Any = ...,
            where: Any = ...,
        ) -> ndarray: ...
        def swapaxes(self, axis1: Any, axis2: Any) -> ndarray: ...
        def take(
            self, indices: Any, axis: Any = ..., out: ndarray | None = ..., mode: Any = ...
        ) -> ndarray: ...
        def tile(self, reps: Any) -> ndarray: ...
        def trace(
            self,
            offset: Any = ...,
            axis1: Any = ...,
            axis2: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
        ) -> ndarray: ...
        def var(
            self,
            axis: Any = ...,
            dtype: DTypeLike = ...,
            out: ndarray | None = ...,
            ddof: Any = ...,
            keepdims: Any = ...,
            *,
            where: Any = ...,
            mean: Any = ...,
            correction: Any = ...,
        ) -> ndarray: ...
        def broadcast_to(self, shape: Any, subok: Any = ...) -> ndarray: ...
        def flip(self, axis: Any = ...) -> ndarray: ...
        def expand_dims(self, axis: Any) -> ndarray: ...
        def moveaxis(self, source: Any, destination: Any) -> ndarray: ...
        def split(self, indices_or_sections: Any, axis: Any = ...) -> list[ndarray]: ...
        def cross(
            self, b: Any, axisa: Any = ..., axisb: Any = ..., axisc: Any = ..., axis: Any = ...
        ) -> ndarray: ...

    # ----------------------------------------------------------------- printing
    def __repr__(self) -> str:
        """``array([1., 2.])`` on cpu(0); other devices add ``, device=...`` (MXNet 2)."""
        text = repr(self.asnumpy())
        dtype = self.dtype
        if "dtype=" in text:
            if dtype == _DEFAULT_DTYPE:
                text = text[: text.rindex(",")] + ")"
        elif dtype not in (_DEFAULT_DTYPE, numpy.dtype(bool)):
            text = text[:-1] + f", dtype={dtype})"
        if self._device != _CPU0:
            text = text[:-1] + f", device={self._device})"
        return text

    def __str__(self) -> str:
        text = str(self.asnumpy())
        if self._device == _CPU0 or self.ndim == 0:
            return text
        return f"{text} @{self._device}"


autograd.register_ndarray(ndarray)  # the tape sits below this module: it learns the class

if _C is not None:
    # The C base takes over __init__, __getitem__, .T and reshape; the Python versions above
    # become its fallbacks (every case its fast path does not take) and leave the class,
    # whose own definitions would otherwise hide the C slots.
    _C.register(
        ndarray,
        autograd._recording,
        numpy.ndarray,
        numpy.asarray,
        _DEFAULT_DTYPE,
        numpy.dtype(numpy.float64),
        ndarray.__init__,
        ndarray.__getitem__,
        vars(ndarray)["T"].fget,
        ndarray.reshape,
    )
    for _name in ("__init__", "__getitem__", "T", "reshape"):
        delattr(ndarray, _name)


# --------------------------------------------------------------------- methods from mx.np
# Filled by ``install_ops`` (``gluonlite.np`` calls it once its table is built): the
# operators and the NumPy methods of MXNet's ndarray, the same functions as ``mx.np``'s.
_OPS: dict[str, Callable[..., Any]] = {}
_CPU0 = Device("cpu", 0)
_BINARY_DUNDERS = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "divide",
    "pow": "power",
    "mod": "mod",
    "floordiv": "floor_divide",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
    "lshift": "left_shift",
    "rshift": "right_shift",
    "matmul": "matmul",
}
_COMPARE_DUNDERS = {
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
}
_UNARY_DUNDERS = {"neg": "negative", "abs": "abs", "invert": "invert"}
# method name: mx.np function taking the array first
_METHODS = (
    "all",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "clip",
    "cumsum",
    "diagonal",
    "dot",
    "max",
    "mean",
    "min",
    "nonzero",
    "prod",
    "ravel",
    "repeat",
    "round",
    "sort",
    "squeeze",
    "std",
    "sum",
    "swapaxes",
    "take",
    "tile",
    "trace",
    "var",
    "broadcast_to",
    "flip",
    "expand_dims",
    "moveaxis",
    "split",
    "cross",
)


_INPLACE_DUNDERS = {
    "iadd": "add",
    "isub": "subtract",
    "imul": "multiply",
    "itruediv": "divide",
    "ipow": "power",
    "imod": "mod",
    "ifloordiv": "floor_divide",
}


def _inplace_method(name: str) -> Callable[[ndarray, Any], ndarray]:
    def method(self: ndarray, other: Any) -> ndarray:
        return self._inplace(other, name)

    return method


for _dunder, _name in _INPLACE_DUNDERS.items():
    setattr(ndarray, f"__{_dunder}__", _inplace_method(_name))


def _reflected(fn: Callable[..., Any]) -> Callable[[ndarray, Any], Any]:
    def method(self: ndarray, other: Any) -> Any:
        return fn(other, self)

    return method


def _compare(fn: Callable[..., Any], on_none: bool) -> Callable[[ndarray, Any], Any]:
    def method(self: ndarray, other: Any) -> Any:
        if other is None or isinstance(other, str):
            return on_none
        return fn(self, other)

    return method


def install_ops(ops: dict[str, Callable[..., Any]]) -> None:
    """Give ``ndarray`` its operators and NumPy methods from ``mx.np``'s functions."""
    _OPS.update(ops)
    for dunder, name in _BINARY_DUNDERS.items():
        fn = ops[name]  # elementwise rows carry lean operator forms (np/_dispatch.py)
        if _C is not None:
            # The C base's number slot computes op(left, right) for a + b and for 2.0 + a
            # alike: NumPy's function on its fast path (the same one the Python fast path
            # calls; a Python scalar operand only for the elementwise rows), else this.
            _C.set_binary(
                dunder, getattr(fn, "np_fn", None), hasattr(fn, "dunder"), getattr(fn, "dunder", fn)
            )
            continue
        setattr(ndarray, f"__{dunder}__", getattr(fn, "dunder", fn))
        setattr(ndarray, f"__r{dunder}__", getattr(fn, "rdunder", None) or _reflected(fn))
    for dunder, name in _COMPARE_DUNDERS.items():
        setattr(ndarray, f"__{dunder}__", _compare(ops[name], dunder == "ne"))
    for dunder, name in _UNARY_DUNDERS.items():
        setattr(ndarray, f"__{dunder}__", ops[name])
    for name in _METHODS:
        setattr(ndarray, name, ops[name])


# --------------------------------------------------------------------- helpers
def wrap(raw: RawArray, device: Device) -> ndarray:
    """Wrap a raw NumPy/CuPy array that already lives on ``device``."""
    return ndarray(raw, device)


def _device_mismatch(op: str, a: Device, b: Device) -> ValueError:
    return ValueError(
        f"{op}: operands are on different devices, {a} and {b}; move one "
        f"with .to_device({a}) first (gluonlite never copies silently)"
    )


def _operand(value: Any, like: ndarray, op: str) -> Any:
    """The raw array or scalar for ``value`` in an op with ``like``; no silent copies."""
    if isinstance(value, ndarray):
        if value._device != like._device:
            raise _device_mismatch(op, like._device, value._device)
        return value._data
    if isinstance(value, (int, float, bool, complex, numpy.generic)):
        return value
    if like._device.device_type == "cpu":
        return numpy.asarray(value)
    if _backend.is_gpu_array(value):
        return value
    if isinstance(value, (list, tuple)):
        return like._xp.asarray(value)
    raise TypeError(
        f"{op}: cannot combine a {type(value).__name__} with an array on "
        f"{like._device}; convert it with mx.np.array(..., device={like._device})"
    )


def _raw_index(key: Any, device: Device) -> Any:
    """The raw index for ``key``; index arrays given as floats become integers (MXNet
    accepts ``x[np.array([0, 2])]`` where the index array is float32)."""
    if type(key) is tuple:
        raw = []  # a loop, not a comprehension: that would make device a cell on every call
        for k in key:
            raw.append(_raw_index(k, device))
        return tuple(raw)
    if isinstance(key, ndarray):
        if key._device != device:
            raise _device_mismatch("index", device, key._device)
        raw = key._data
        if raw.dtype.kind != "f":
            return raw
        with _backend.on(device):  # the integer copy stays on the index's own GPU
            return raw.astype(numpy.int64)
    return key


def _identity_graph(out: ndarray, g: ndarray) -> tuple[ndarray]:
    return (g,)


def scatter_add(g: ndarray, shape: tuple[int, ...], key: Any) -> ndarray:
    """A zero array of ``shape`` with ``g`` added at the raw index ``key`` (repeated
    positions summed), recorded: the adjoint of ``x[key]``, whose own gradient is the
    gather ``h[key]`` (recorded too, so every order differentiates)."""
    xp, device = g._xp, g._device
    with _backend.on(device):
        full = xp.zeros(shape, dtype=g.dtype)
        autograd._scatter_add(xp, full, key, g._data)
    return record_op(ndarray(full, device), (g,), lambda h: (h[key],), lambda out, h: (h[key],))


def linear_op(
    g: ndarray, apply: Callable[[RawArray], RawArray], adjoint: Callable[[RawArray], RawArray]
) -> ndarray:
    """``apply(g)`` for a linear map ``apply`` on raw arrays, recorded with its transpose
    ``adjoint`` as backward; that backward is recorded the same way in turn, so every order
    differentiates. For an op's backward that is linear in the output gradient with
    coefficients fixed by the forward (pooling's window selection), as its ``Node.graph``.
    """
    device = g._device
    with _backend.on(device):
        out = ndarray(apply(g._data), device)
    return record_op(
        out, (g,), lambda h: (adjoint(h),), lambda out, h: (linear_op(h, adjoint, apply),)
    )


def _unbroadcast(g: RawArray, shape: Sequence[int]) -> RawArray:
    """Sum ``g`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if tuple(g.shape) == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    g_shape = g.shape  # read here: in the generator g would be a cell, made on every call
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g_shape)) if n == 1 and m != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


# --------------------------------------------------------------------- creation
def _creation_dtype(dtype: DTypeLike) -> numpy.dtype[Any]:
    return _DEFAULT_DTYPE if dtype is None else _backend.dtype_of(dtype)


def _create(
    fn_name: str, shape: ShapeLike, dtype: DTypeLike, device: Device | None, **kwargs: Any
) -> ndarray:
    device = as_device(device)
    xp = _backend.xp(device)
    with _backend.on(device):
        return ndarray(getattr(xp, fn_name)(shape, dtype=_creation_dtype(dtype), **kwargs), device)


def zeros(
    shape: ShapeLike,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    """An array of zeros (float32 unless ``dtype`` says otherwise)."""
    return _create("zeros", shape, dtype, _resolve_ctx(device, ctx))


def ones(
    shape: ShapeLike,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _create("ones", shape, dtype, _resolve_ctx(device, ctx))


def empty(
    shape: ShapeLike,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _create("empty", shape, dtype, _resolve_ctx(device, ctx))


def full(
    shape: ShapeLike,
    fill_value: Any,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _create("full", shape, dtype, _resolve_ctx(device, ctx), fill_value=fill_value)


def zeros_like(a: ndarray, dtype: DTypeLike = None, device: Device | None = None) -> ndarray:
    return zeros(
        a.shape,
        dtype=a.dtype if dtype is None else dtype,
        device=a.device if device is None else device,
    )


def ones_like(a: ndarray, dtype: DTypeLike = None, device: Device | None = None) -> ndarray:
    return ones(
        a.shape,
        dtype=a.dtype if dtype is None else dtype,
        device=a.device if device is None else device,
    )


def full_like(
    a: ndarray, fill_value: Any, dtype: DTypeLike = None, device: Device | None = None
) -> ndarray:
    return full(
        a.shape,
        fill_value,
        dtype=a.dtype if dtype is None else dtype,
        device=a.device if device is None else device,
    )


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    device = as_device(_resolve_ctx(device, ctx))
    if stop is None:
        start, stop = 0, start
    xp = _backend.xp(device)
    with _backend.on(device):
        return ndarray(xp.arange(start, stop, step, dtype=_creation_dtype(dtype)), device)


def array(
    obj: Any, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    """An array holding a copy of ``obj`` on ``device`` (float32 for Python numbers).

    ``obj`` may be a Python sequence or number, a NumPy or CuPy array, or an ndarray (which
    is copied, to another device if asked).
    """
    device = as_device(_resolve_ctx(device, ctx))
    if isinstance(obj, ndarray):
        out = _backend.transfer(obj._data, obj.device, device)
        return ndarray(out if dtype is None else out.astype(_backend.dtype_of(dtype)), device)
    if _backend.is_gpu_array(obj):
        src = Device("gpu", obj.device.id)
        raw = _backend.transfer(obj, src, device)
    else:
        host = numpy.array(obj, copy=True)
        if dtype is None and not isinstance(obj, numpy.ndarray):
            # MXNet's numpy front end makes float32 the default for Python data.
            if host.dtype.kind in "fiu":
                host = host.astype(_DEFAULT_DTYPE)
        raw = _backend.transfer(host, Device("cpu", 0), device)
    if dtype is not None:
        with _backend.on(device):
            raw = raw.astype(_backend.dtype_of(dtype), copy=False)
    return ndarray(raw, device)


def from_dlpack(x: Any) -> ndarray:
    """Zero-copy view of a DLPack-capable array (NumPy, CuPy, torch, ...)."""
    kind, device_id = x.__dlpack_device__()
    if int(kind) == 1:  # kDLCPU
        return ndarray(numpy.from_dlpack(x), Device("cpu", 0))
    if int(kind) == 2:  # kDLCUDA
        device = Device("gpu", int(device_id))
        with _backend.on(device):
            return ndarray(_backend.cupy().from_dlpack(x), device)
    raise ValueError(f"from_dlpack: unsupported DLPack device type {kind}")
