"""Sparse storage: ``RowSparseNDArray`` (a few full rows) and ``CSRNDArray`` (2-D CSR).

Both live on one device, NumPy-backed on ``cpu(i)`` and CuPy-backed on ``gpu(i)``, like
``mx.np.ndarray``. A row-sparse array stores ``data [k, ...]`` for the rows listed in
``indices`` (sorted, unique, int64); every other row of ``shape`` is zero. It is the storage
of sparse gradients (``grad_stype='row_sparse'``) and of ``Parameter.row_sparse_data``.

>>> import gluonlite as mx
>>> rsp = mx.sparse.row_sparse_array(([[1.0, 2.0], [3.0, 4.0]], [3, 0]), shape=(5, 2))
>>> rsp.indices
array([0, 3], dtype=int64)
>>> rsp.retain(mx.np.array([3, 3, 1])).asnumpy()
array([[0., 0.],
       [0., 0.],
       [0., 0.],
       [1., 2.],
       [0., 0.]], dtype=float32)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal, TypeVar, overload

import numpy

from . import _backend, _kernels
from ._typing import DTypeLike, RawArray
from .autograd import SparseRows, _scatter_add
from .device import Device, as_device
from .ndarray import ArrayLike, ndarray, register_sparse as _register_sparse

__all__ = ["RowSparseNDArray", "CSRNDArray", "row_sparse_array", "csr_matrix", "from_dense"]

_STYPES = ("default", "row_sparse", "csr")
_CPU0 = Device("cpu", 0)
_SparseT = TypeVar("_SparseT", bound="_SparseNDArray")


def _to_raw(
    obj: ArrayLike, device: Device, dtype: DTypeLike = None, what: str = "array"
) -> RawArray:
    """``obj`` (ndarray, NumPy/CuPy array or nested lists) as a raw array on ``device``.

    An ``ndarray`` on another device is an error: gluonlite never copies silently.
    """
    if isinstance(obj, ndarray):
        if obj.device != device:
            raise ValueError(
                f"{what} is on {obj.device}, expected {device}; move it with "
                f".to_device({device}) first"
            )
        raw = obj._data
    elif _backend.is_gpu_array(obj):
        gpu_raw: RawArray = obj  # a CuPy array
        raw = _backend.transfer(gpu_raw, Device("gpu", gpu_raw.device.id), device)
    else:
        raw = _backend.transfer(numpy.asarray(obj), _CPU0, device)
    if dtype is not None:
        with _backend.on(device):
            raw = raw.astype(dtype, copy=False)
    return raw


def _row_ids(row_ids: ArrayLike, device: Device, shape: tuple[int, ...]) -> RawArray:
    """Row ids as a flat raw int64 array on ``device``, checked against ``shape[0]``.

    Integral floats are accepted because ``mx.np.array([1, 3])`` is float32 by default.
    """
    raw = _to_raw(row_ids, device, what="row_ids")
    xp = _backend.xp(device)
    with _backend.on(device):
        raw = raw.reshape(-1)
        if raw.dtype.kind == "f":
            if raw.size and not bool(xp.all(raw == xp.floor(raw))):
                raise ValueError(
                    f"row_ids must hold whole numbers, got {raw.dtype} values "
                    f"with a fractional part"
                )
        elif raw.dtype.kind not in "iu":
            raise TypeError(f"row_ids must be integers, got dtype {raw.dtype}")
        raw = raw.astype(numpy.int64)
        if raw.size:
            low, high = int(raw.min()), int(raw.max())
            bad = low if low < 0 else high
            if low < 0 or high >= shape[0]:
                raise IndexError(
                    f"row id {bad} is out of range for an array of shape "
                    f"{shape} (valid ids are 0..{shape[0] - 1})"
                )
    return raw


def _retain_raw(
    device: Device, data: RawArray, indices: RawArray, row_ids: RawArray, n_rows: int
) -> tuple[RawArray, RawArray]:
    """``(data, indices)`` of the stored rows whose ids occur in ``row_ids`` (valid ids of
    an array with ``n_rows`` rows)."""
    if device.device_type == "gpu":
        with _backend.on(device):
            return _kernels.retain(data, indices, row_ids)
    # The GPU kernels' plan: flag each stored row that some id hits, then compact the flags,
    # which come out sorted and unique whatever the request's order and repetitions, so the
    # request is never sorted (numpy.unique of it cost 4x all the rest).
    k = indices.shape[0]
    if k == 0 or row_ids.size == 0:
        return data[:0].copy(), indices[:0].copy()
    if n_rows <= 8 * (k + row_ids.size):
        # One flag per row of the whole array, no search: two linear passes, worth their
        # memory while the array is not much larger than what is stored and requested.
        wanted = numpy.zeros(n_rows, dtype=bool)
        wanted[row_ids] = True
        found = wanted[indices]
    else:  # a huge, very sparse array: binary-search each id among the stored ones
        pos: RawArray = numpy.searchsorted(indices, row_ids)  # an array: row_ids is one
        numpy.minimum(pos, k - 1, out=pos)
        found = numpy.zeros(k, dtype=bool)
        found[pos[indices[pos] == row_ids]] = True
    rows = numpy.flatnonzero(found)
    return data.take(rows, axis=0), indices[rows]


def _sum_rows(
    xp: ModuleType, indices: RawArray, values: RawArray, shape: tuple[int, ...], dtype: DTypeLike
) -> tuple[RawArray, RawArray]:
    """Sorted unique row ids and their rows, duplicates summed (the canonical form)."""
    uniq, inverse = xp.unique(indices.astype(numpy.int64), return_inverse=True)
    out = xp.zeros((uniq.shape[0],) + tuple(shape[1:]), dtype=dtype)
    _scatter_add(xp, out, inverse.reshape(-1), values.astype(dtype, copy=False))
    return out, uniq


def _nonzero_rows(xp: ModuleType, dense: RawArray) -> RawArray:
    """Ids of the rows of ``dense`` holding any nonzero value."""
    width = int(numpy.prod(dense.shape[1:], dtype=numpy.int64))
    flat = dense.reshape(dense.shape[0], width)
    return xp.flatnonzero(xp.any(flat != 0, axis=1)).astype(numpy.int64)


class _SparseNDArray:
    """What both sparse layouts share: a device, a full shape, stored values and indices."""

    __slots__ = ()
    # The subclasses' slots.
    _values: RawArray
    _indices: RawArray
    _shape: tuple[int, ...]
    _device: Device

    @property
    @abstractmethod
    def stype(self) -> str:
        """The storage type: ``'row_sparse'`` or ``'csr'``."""

    @abstractmethod
    def _dense_raw(self) -> RawArray:
        """The dense values as a raw array on this array's device."""

    @abstractmethod
    def copyto(self: _SparseT, device: Device) -> _SparseT:
        """A copy on ``device``."""

    @property
    def _xp(self) -> ModuleType:
        return _backend.xp(self._device)

    @property
    def data(self) -> ndarray:
        """The stored values (a live view)."""
        return ndarray(self._values, self._device)

    @property
    def indices(self) -> ndarray:
        """Row ids (row-sparse) or column ids (CSR) of the stored values (a live view)."""
        return ndarray(self._indices, self._device)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def dtype(self) -> numpy.dtype[Any]:
        return self._values.dtype  # type: ignore[no-any-return]

    @property
    def device(self) -> Device:
        return self._device

    def asnumpy(self) -> numpy.ndarray[Any, Any]:
        """The dense values as a NumPy array."""
        host: numpy.ndarray[Any, Any] = _backend.transfer(self._dense_raw(), self._device, _CPU0)
        return host

    def tostype(self, stype: str) -> ndarray | _SparseNDArray:
        """This array as ``'default'`` (dense ndarray), ``'row_sparse'`` or ``'csr'``."""
        if stype == self.stype:
            return self
        return from_dense(ndarray(self._dense_raw(), self._device), stype)

    def to_device(self: _SparseT, device: Device) -> _SparseT:
        """This array on ``device``: itself when already there, else a copy."""
        device = as_device(device)
        if device == self._device:
            return self
        return self.copyto(device)


class RowSparseNDArray(_SparseNDArray):
    """A row-sparse array: ``data [k, ...]`` for the rows ``indices [k]`` of ``shape``.

    ``indices`` are sorted, unique int64; rows not listed are zero. ``data`` and ``indices``
    return live views of the storage, as ``mx.np.ndarray``.

    Example:
        >>> import gluonlite as mx
        >>> g = mx.sparse.RowSparseNDArray.empty((4, 2), 'float32', mx.cpu(1))
        >>> g.indices.shape, g.shape, g.device, g.stype
        ((0,), (4, 2), cpu(1), 'row_sparse')
    """

    __slots__ = ("_values", "_indices", "_shape", "_device")

    def __init__(
        self, data: RawArray, indices: RawArray, shape: Sequence[int], device: Device
    ) -> None:
        # Callers hand in canonical raw arrays; the public constructor is row_sparse_array.
        self._values, self._indices = data, indices
        self._shape, self._device = tuple(int(n) for n in shape), device

    @classmethod
    def empty(
        cls, shape: Sequence[int], dtype: DTypeLike, device: Device | None
    ) -> "RowSparseNDArray":
        """An all-zero row-sparse array (no stored rows)."""
        device = as_device(device)
        full = tuple(int(n) for n in shape)
        xp = _backend.xp(device)
        with _backend.on(device):
            return cls(
                xp.zeros((0,) + full[1:], dtype=_backend.dtype_of(dtype)),
                xp.zeros((0,), dtype=numpy.int64),
                full,
                device,
            )

    @property
    def stype(self) -> str:
        return "row_sparse"

    # ----------------------------------------------------------------- conversion
    def _dense_raw(self) -> RawArray:
        xp = self._xp
        with _backend.on(self._device):
            out = xp.zeros(self._shape, dtype=self.dtype)
            out[self._indices] = self._values
        return out

    def copyto(self, other: Device | RowSparseNDArray) -> RowSparseNDArray:
        """A copy on a ``Device``, or copy the values into another ``RowSparseNDArray``."""
        if isinstance(other, Device):
            return RowSparseNDArray(
                _backend.transfer(self._values, self._device, other),
                _backend.transfer(self._indices, self._device, other),
                self._shape,
                other,
            )
        if isinstance(other, RowSparseNDArray):
            if other.shape != self.shape:
                raise ValueError(
                    f"copyto: shape mismatch, source {self.shape}, target {other.shape}"
                )
            moved = self.copyto(other.device)
            with _backend.on(other.device):
                other._values = moved._values.astype(other.dtype, copy=False)
            other._indices = moved._indices
            return other
        raise TypeError(
            f"copyto expects a Device or a RowSparseNDArray, got {type(other).__name__}"
        )

    def astype(self, dtype: DTypeLike) -> "RowSparseNDArray":
        with _backend.on(self._device):
            values = self._values.astype(_backend.dtype_of(dtype))
        return RowSparseNDArray(values, self._indices.copy(), self._shape, self._device)

    def retain(self, row_ids: ArrayLike) -> "RowSparseNDArray":
        """A copy keeping exactly the stored rows whose ids occur in ``row_ids``.

        ``row_ids`` may be unsorted and hold duplicates; an id outside ``shape[0]`` is an
        ``IndexError``. An ``ndarray`` of ids must be on this array's device.
        """
        ids = _row_ids(row_ids, self._device, self._shape)
        values, indices = _retain_raw(
            self._device, self._values, self._indices, ids, self._shape[0]
        )
        return RowSparseNDArray(values, indices, self._shape, self._device)

    # ----------------------------------------------------------------- gradient buffer
    def _store_gradient(self, g: RawArray | SparseRows, add: bool) -> None:
        """Store a gradient (raw dense array or ``SparseRows``): overwrite, or add to it."""
        xp = self._xp
        with _backend.on(self._device):
            if isinstance(g, SparseRows):
                indices, values = g.indices, g.values
            else:
                indices = _nonzero_rows(xp, g)
                values = g[indices]
            if add and self._indices.shape[0]:
                indices = xp.concatenate([self._indices, indices.astype(numpy.int64)])
                values = xp.concatenate([self._values, values.astype(self.dtype)])
            self._values, self._indices = _sum_rows(xp, indices, values, self._shape, self.dtype)

    def _zero(self) -> None:
        # Fresh empty arrays rather than [:0] views, which would keep the old rows alive.
        empty = RowSparseNDArray.empty(self._shape, self.dtype, self._device)
        self._values, self._indices = empty._values, empty._indices

    def __repr__(self) -> str:
        return (
            f"<RowSparseNDArray {'x'.join(map(str, self._shape))} "
            f"({self._indices.shape[0]} rows stored, {self.dtype}) @{self._device}>"
        )


class CSRNDArray(_SparseNDArray):
    """A 2-D array in compressed sparse row form: ``data``, ``indices`` (columns), ``indptr``.

    Row ``r`` holds ``data[indptr[r]:indptr[r+1]]`` at columns ``indices[indptr[r]:...]``.

    Example:
        >>> import gluonlite as mx
        >>> m = mx.sparse.csr_matrix(([5.0, 6.0], [1, 0], [0, 1, 1, 2]), shape=(3, 2))
        >>> m.asnumpy()
        array([[0., 5.],
               [0., 0.],
               [6., 0.]], dtype=float32)
    """

    __slots__ = ("_values", "_indices", "_indptr", "_shape", "_device")

    def __init__(
        self,
        data: RawArray,
        indices: RawArray,
        indptr: RawArray,
        shape: Sequence[int],
        device: Device,
    ) -> None:
        # Callers hand in validated raw arrays; the public constructor is csr_matrix.
        self._values, self._indices, self._indptr = data, indices, indptr
        self._shape, self._device = tuple(int(n) for n in shape), device

    @classmethod
    def empty(cls, shape: Sequence[int], dtype: DTypeLike, device: Device | None) -> "CSRNDArray":
        """An all-zero CSR array (no stored values)."""
        device = as_device(device)
        full = _csr_shape(shape)
        xp = _backend.xp(device)
        with _backend.on(device):
            return cls(
                xp.zeros((0,), dtype=_backend.dtype_of(dtype)),
                xp.zeros((0,), dtype=numpy.int64),
                xp.zeros((full[0] + 1,), dtype=numpy.int64),
                full,
                device,
            )

    @property
    def indptr(self) -> ndarray:
        return ndarray(self._indptr, self._device)

    @property
    def stype(self) -> str:
        return "csr"

    def _dense_raw(self) -> RawArray:
        xp = self._xp
        with _backend.on(self._device):
            out = xp.zeros(self._shape, dtype=self.dtype)
            nnz = self._values.shape[0]
            # The row of the i-th stored value: the last row whose start is <= i.
            rows = xp.searchsorted(self._indptr, xp.arange(nnz), side="right") - 1
            out[rows, self._indices] = self._values
        return out

    def copyto(self, device: Device) -> "CSRNDArray":
        """A copy on ``device``."""
        device = as_device(device)
        src = self._device
        return CSRNDArray(
            _backend.transfer(self._values, src, device),
            _backend.transfer(self._indices, src, device),
            _backend.transfer(self._indptr, src, device),
            self._shape,
            device,
        )

    def astype(self, dtype: DTypeLike) -> "CSRNDArray":
        with _backend.on(self._device):
            values = self._values.astype(_backend.dtype_of(dtype))
        return CSRNDArray(
            values, self._indices.copy(), self._indptr.copy(), self._shape, self._device
        )

    def _store_gradient(self, g: RawArray | SparseRows, add: bool) -> None:
        """Store a gradient (raw dense array or ``SparseRows``): overwrite, or add to it."""
        xp = self._xp
        with _backend.on(self._device):
            dense = g.to_dense(xp) if isinstance(g, SparseRows) else g
            dense = dense.astype(self.dtype)
            if add:
                dense += self._dense_raw()
            self._values, self._indices, self._indptr = _csr_raw(xp, dense)

    def _zero(self) -> None:
        empty = CSRNDArray.empty(self._shape, self.dtype, self._device)
        self._values, self._indices, self._indptr = empty._values, empty._indices, empty._indptr

    def __repr__(self) -> str:
        return (
            f"<CSRNDArray {self._shape[0]}x{self._shape[1]} "
            f"({self._values.shape[0]} values stored, {self.dtype}) @{self._device}>"
        )


def _csr_shape(shape: Sequence[int]) -> tuple[int, ...]:
    full = tuple(int(n) for n in shape)
    if len(full) != 2:
        raise ValueError(f"csr storage needs a 2-D shape, got {full}")
    return full


def _csr_raw(xp: ModuleType, dense: RawArray) -> tuple[RawArray, RawArray, RawArray]:
    """``(data, indices, indptr)`` of a raw 2-D dense array."""
    rows, cols = xp.nonzero(dense)
    counts = xp.bincount(rows, minlength=dense.shape[0])
    indptr = xp.concatenate(
        [xp.zeros((1,), dtype=numpy.int64), xp.cumsum(counts).astype(numpy.int64)]
    )
    return dense[rows, cols], cols.astype(numpy.int64), indptr


@overload
def from_dense(array: ndarray, stype: Literal["default"]) -> ndarray: ...


@overload
def from_dense(array: ndarray, stype: Literal["row_sparse"]) -> RowSparseNDArray: ...


@overload
def from_dense(array: ndarray, stype: Literal["csr"]) -> CSRNDArray: ...


@overload
def from_dense(array: ndarray, stype: str) -> ndarray | RowSparseNDArray | CSRNDArray: ...


def from_dense(array: ndarray, stype: str) -> ndarray | RowSparseNDArray | CSRNDArray:
    """``array`` (a dense ``ndarray``) in storage type ``stype``.

    Example:
        >>> import gluonlite as mx
        >>> x = mx.np.array([[0, 0], [1, 2], [0, 0]])
        >>> mx.sparse.from_dense(x, 'row_sparse').indices
        array([1], dtype=int64)
    """
    if stype not in _STYPES:
        raise ValueError(f"stype must be one of {_STYPES}, got {stype!r}")
    if stype == "default":
        return array
    xp, device = array._xp, array.device
    with _backend.on(device):
        if stype == "row_sparse":
            if array.ndim == 0:
                raise ValueError("row_sparse storage needs at least 1 dimension, got a 0-d array")
            rows = _nonzero_rows(xp, array._data)
            return RowSparseNDArray(array._data[rows], rows, array.shape, device)
        _csr_shape(array.shape)
        return CSRNDArray(*_csr_raw(xp, array._data), array.shape, device)


def row_sparse_array(
    arg1: tuple[ArrayLike, ArrayLike] | RowSparseNDArray,
    shape: Sequence[int] | None = None,
    device: Device | None = None,
    dtype: DTypeLike = None,
) -> RowSparseNDArray:
    """A ``RowSparseNDArray`` from ``(data, indices)`` (any order, no duplicates) and ``shape``.

    ``arg1`` may also be a ``RowSparseNDArray`` (copied to ``device``). ``dtype`` defaults to
    that of an array ``data``, float32 for Python lists.
    """
    if isinstance(arg1, RowSparseNDArray):
        out = arg1.copyto(as_device(device) if device is not None else arg1.device)
        return out if dtype is None else out.astype(dtype)
    if not isinstance(arg1, tuple) or len(arg1) != 2:
        raise TypeError("row_sparse_array expects (data, indices) or a RowSparseNDArray")
    if shape is None:
        raise ValueError("row_sparse_array needs the full shape, e.g. shape=(1000, 64)")
    device = as_device(device)
    data, indices = arg1
    if dtype is None and not hasattr(data, "dtype"):
        dtype = numpy.float32
    values = _to_raw(data, device, None if dtype is None else _backend.dtype_of(dtype), what="data")
    shape = tuple(int(n) for n in shape)
    ids = _row_ids(indices, device, shape)
    xp = _backend.xp(device)
    with _backend.on(device):
        if tuple(values.shape) != (ids.shape[0],) + shape[1:]:
            raise ValueError(
                f"row_sparse_array: data has shape {tuple(values.shape)}, "
                f"expected {(ids.shape[0],) + shape[1:]} for {ids.shape[0]} "
                f"indices and shape {shape}"
            )
        order = xp.argsort(ids)
        ids, values = ids[order], values[order]
        if ids.shape[0] > 1 and bool(xp.any(ids[1:] == ids[:-1])):
            raise ValueError(
                "row_sparse_array: indices hold duplicates; each row may be given once"
            )
    return RowSparseNDArray(values, ids, shape, device)


def csr_matrix(
    arg1: tuple[ArrayLike, ArrayLike, ArrayLike],
    shape: Sequence[int] | None = None,
    device: Device | None = None,
    dtype: DTypeLike = None,
) -> CSRNDArray:
    """A ``CSRNDArray`` from ``(data, indices, indptr)`` and a 2-D ``shape``."""
    if not isinstance(arg1, tuple) or len(arg1) != 3:
        raise TypeError("csr_matrix expects (data, indices, indptr)")
    if shape is None:
        raise ValueError("csr_matrix needs the shape, e.g. shape=(3, 4)")
    device = as_device(device)
    shape = _csr_shape(shape)
    data, indices, indptr = arg1
    if dtype is None and not hasattr(data, "dtype"):
        dtype = numpy.float32
    values = _to_raw(
        data, device, None if dtype is None else _backend.dtype_of(dtype), what="data"
    ).reshape(-1)
    cols = _to_raw(indices, device, numpy.int64, what="indices").reshape(-1)
    ptr = _to_raw(indptr, device, numpy.int64, what="indptr").reshape(-1)
    host_ptr = _backend.transfer(ptr, device, _CPU0)
    if (
        host_ptr.shape[0] != shape[0] + 1
        or host_ptr[0] != 0
        or bool(numpy.any(numpy.diff(host_ptr) < 0))
        or host_ptr[-1] != values.shape[0]
    ):
        raise ValueError(
            f"csr_matrix: indptr must rise from 0 to len(data)="
            f"{values.shape[0]} in {shape[0] + 1} steps, got {host_ptr.tolist()}"
        )
    if cols.shape[0] != values.shape[0]:
        raise ValueError(f"csr_matrix: {cols.shape[0]} indices for {values.shape[0]} values")
    with _backend.on(device):
        bad = bool(cols.shape[0]) and (int(cols.min()) < 0 or int(cols.max()) >= shape[1])
    if bad:
        raise IndexError(f"csr_matrix: column indices must lie in 0..{shape[1] - 1}")
    return CSRNDArray(values, cols, ptr, shape, device)


# ndarray.tostype and attach_grad(stype='row_sparse') reach this module through these
# (ndarray.py sits below it and does not import it).
_register_sparse(from_dense, RowSparseNDArray.empty)
