"""Reading and writing Apache MXNet's NDArray-list files (``.params`` / ``.nd``), without MXNet.

The layout, as MXNet 1.x writes it with ``mx.nd.save`` (all integers little-endian):

* list header: ``uint64 0x112``, ``uint64 0`` (reserved), then ``uint64 count`` arrays, then
  ``uint64 count`` names, each ``uint64 length`` + UTF-8 bytes (no names for a saved list);
* each array starts with a ``uint32`` magic. ``0xF993FAC9`` (V2) and ``0xF993FACA`` (V3,
  NumPy shape semantics) are followed by ``int32 stype`` (0 dense, 1 row_sparse, 2 csr), for
  sparse arrays the storage shape, then the shape; a shape is ``int32 ndim`` + ``ndim``
  ``int64`` dims. Then the context (``int32 dev_type``, ``int32 dev_id``), ``int32`` type
  flag, for sparse arrays one ``int32`` type + shape per aux array, the values (of the
  storage shape) and the aux arrays (row_sparse: the row ids; csr: indptr, then indices).
  ``0xF993FAC8`` (V1) has no stype; older files have no magic at all: the first word is
  ``ndim`` and the dims are ``uint32``.
* an "empty" array (``ndim`` 0 before V3, -1 in V3) has no context and no data.

Writing (``write_mxnet_list``) produces what MXNet 2 (and 1.9 under ``npx.set_np()``) writes
for dense arrays: the V3 header (or V2 on request, as legacy ``mx.nd.save`` writes it, which
cannot hold 0-d arrays), the context ``cpu(0)`` whatever device held the array (so that any
MXNet build loads it), and the names only when a dict was saved.

Nothing here executes code from the file: every length is checked against the bytes left
before it is used, and any inconsistency raises ``CorruptCheckpointError``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy

from ._fileformat import (
    CheckpointError,
    CorruptCheckpointError,
    HostArray,
    check_dense_size,
    numpy_dtype,
)

if TYPE_CHECKING:
    from ._typing import StrPath

__all__ = [
    "LIST_MAGIC",
    "is_mxnet_list",
    "read_mxnet_list",
    "read_mxnet_arrays",
    "encode_mxnet_list",
]

LIST_MAGIC = 0x112
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# mshadow's type flags; 12 is bfloat16, which NumPy only knows through ml_dtypes.
_TYPE_FLAGS = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    8: "int16",
    9: "uint16",
    10: "uint32",
    11: "uint64",
    12: "bfloat16",
}
_FLAG_OF = {name: flag for flag, name in _TYPE_FLAGS.items()}
_STYPES = {0: ("default", 0), 1: ("row_sparse", 1), 2: ("csr", 2)}
# A shape longer than this is not a real tensor but a damaged header; MXNet itself caps
# ndim far lower, and the cap keeps a bogus ndim from allocating gigabytes.
_MAX_NDIM = 64


def is_mxnet_list(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts an MXNet NDArray list.

    A safetensors file starts with its header length, which could be 0x112 too; its next
    bytes are JSON (``{"``), never MXNet's zero reserved word.
    """
    return len(head) >= 16 and struct.unpack_from("<QQ", head) == (LIST_MAGIC, 0)


class _Reader:
    """Little-endian reads from a buffer that fail cleanly at its end."""

    def __init__(self, buf: bytes, path: StrPath) -> None:
        self.buf, self.pos, self.path = memoryview(buf), 0, path

    def fail(self, what: str) -> NoReturn:
        raise CorruptCheckpointError(
            f"'{self.path}' is not a valid MXNet NDArray file: {what} at byte {self.pos} "
            f"(truncated or corrupted?)"
        )

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > len(self.buf) - self.pos:
            self.fail(f"{what} needs {n} bytes but {len(self.buf) - self.pos} are left")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]
        return value

    def shape(
        self, what: str, dim_format: str = "<q", ndim: int | None = None
    ) -> tuple[int, ...] | None:
        """A shape; None for MXNet's "unknown" ndim of -1."""
        if ndim is None:
            ndim = self.unpack("<i", f"{what} ndim")
        if ndim == -1:
            return None
        if not 0 <= ndim <= _MAX_NDIM:
            self.fail(f"{what} has ndim {ndim}")
        size = struct.calcsize(dim_format)
        raw = self.take(ndim * size, f"{what} dims")
        dims: tuple[int, ...] = tuple(
            struct.unpack_from(dim_format, raw, i * size)[0] for i in range(ndim)
        )
        if any(d < 0 for d in dims):
            self.fail(f"{what} has a negative dim in {dims}")
        # Zero-size dims make the size 0, but NumPy still refuses shapes whose other dims
        # overflow an int64 byte count; no real array comes near 2**56 elements.
        size = 1
        for d in dims:
            size *= max(d, 1)
        if size >= 2**56:
            self.fail(f"{what} {dims} is impossibly large")
        return dims

    def array(self, type_flag: int, shape: tuple[int, ...], what: str) -> numpy.ndarray[Any, Any]:
        if type_flag not in _TYPE_FLAGS:
            self.fail(f"{what} has the unknown type flag {type_flag}")
        dtype = numpy_dtype(_TYPE_FLAGS[type_flag], self.path, what)
        count = 1
        for d in shape:
            count *= d
        raw = self.take(count * dtype.itemsize, f"{what} values")
        # A copy, so that the arrays own their memory and the file buffer can go.
        values: numpy.ndarray[Any, Any] = (
            numpy.frombuffer(raw, dtype=dtype, count=count).reshape(shape).copy()
        )
        return values


def _read_array(r: _Reader, index: int) -> HostArray | None:
    what = f"array #{index}"
    magic = r.unpack("<I", f"{what} magic")
    stype, nad, storage_shape = "default", 0, None
    if magic in (_V2, _V3):
        code = r.unpack("<i", f"{what} storage type")
        if code not in _STYPES:
            r.fail(f"{what} has the unknown storage type {code}")
        stype, nad = _STYPES[code]
        if nad:
            storage_shape = r.shape(f"{what} storage shape")
            if storage_shape is None:
                r.fail(f"{what} has an unknown storage shape")
        shape = r.shape(f"{what} shape")
        # Before V3 an ndim of 0 meant "no array"; NumPy semantics made it a 0-d array.
        if shape is None or (magic == _V2 and not shape):
            return None
    elif magic == _V1:
        shape = r.shape(f"{what} shape")
        if not shape:
            return None
    else:  # the oldest files: the magic word is already ndim, dims are uint32
        if magic > _MAX_NDIM:
            r.fail(f"{what} starts with the unknown magic {magic:#x}")
        shape = r.shape(f"{what} shape", "<I", ndim=magic)
        if not shape:
            return None
    r.unpack("<i", f"{what} device type")  # the saving device does not matter here
    r.unpack("<i", f"{what} device id")
    type_flag = r.unpack("<i", f"{what} type flag")
    aux: list[tuple[int, tuple[int, ...]]] = []
    for i in range(nad):
        aux_flag = r.unpack("<i", f"{what} aux type")
        aux_shape = r.shape(f"{what} aux shape")
        if aux_shape is None or len(aux_shape) != 1:
            r.fail(f"{what} aux array {i} has shape {aux_shape}, expected one dimension")
        aux.append((aux_flag, aux_shape))
    # storage_shape is set (and checked) exactly when there are aux arrays (nad).
    values = r.array(type_flag, shape if storage_shape is None else storage_shape, what)
    aux_arrays = [
        r.array(flag, ashape, f"{what} aux array {i}") for i, (flag, ashape) in enumerate(aux)
    ]
    if stype == "default":
        return HostArray(stype, shape, values)
    try:
        check_dense_size(shape, values.dtype, r.path, what)
    except CorruptCheckpointError as e:
        r.fail(f"{what} ({stype}) cannot be held: {e}")
    for arr in aux_arrays:
        if arr.dtype.kind not in "iu":
            r.fail(f"{what} has {arr.dtype} indices")
    if stype == "row_sparse":
        return _checked_row_sparse(r, what, shape, values, aux_arrays[0].astype(numpy.int64))
    return _checked_csr(
        r, what, shape, values, aux_arrays[1].astype(numpy.int64), aux_arrays[0].astype(numpy.int64)
    )


def _checked_row_sparse(
    r: _Reader,
    what: str,
    shape: tuple[int, ...],
    values: numpy.ndarray[Any, Any],
    indices: numpy.ndarray[Any, Any],
) -> HostArray:
    if not shape or values.shape != (indices.shape[0],) + tuple(shape[1:]):
        r.fail(
            f"{what} stores values of shape {values.shape} for {indices.shape[0]} rows "
            f"of shape {shape}"
        )
    if indices.size and (
        indices.min() < 0 or indices.max() >= shape[0] or numpy.any(numpy.diff(indices) <= 0)
    ):
        r.fail(f"{what} has row ids that are not sorted, unique and below {shape[0]}")
    return HostArray("row_sparse", shape, values, indices)


def _checked_csr(
    r: _Reader,
    what: str,
    shape: tuple[int, ...],
    values: numpy.ndarray[Any, Any],
    indices: numpy.ndarray[Any, Any],
    indptr: numpy.ndarray[Any, Any],
) -> HostArray:
    if (
        len(shape) != 2
        or values.ndim != 1
        or indices.shape != values.shape
        or indptr.shape != (shape[0] + 1,)
        or indptr[0] != 0
        or indptr[-1] != values.shape[0]
        or numpy.any(numpy.diff(indptr) < 0)
    ):
        r.fail(f"{what} is an inconsistent CSR array of shape {shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        r.fail(f"{what} has column ids outside 0..{shape[1] - 1}")
    return HostArray("csr", shape, values, indices, indptr)


def read_mxnet_arrays(buf: bytes, path: StrPath) -> tuple[list[HostArray | None], list[str] | None]:
    """``(arrays, names)`` of an MXNet NDArray-list file held in ``buf``; ``names`` is None
    for a file saved from a list. Arrays without a shape are None here."""
    r = _Reader(buf, path)
    if r.unpack("<Q", "list magic") != LIST_MAGIC:
        r.fail("the list magic 0x112 is missing")
    r.unpack("<Q", "reserved word")
    count = r.unpack("<Q", "array count")
    # Each array takes at least 4 bytes, so a larger count is damage, not a big file.
    if count > (len(r.buf) - r.pos) // 4:
        r.fail(f"the array count {count} exceeds what the file can hold")
    arrays = [_read_array(r, i) for i in range(count)]
    n_names = r.unpack("<Q", "name count")
    if n_names not in (0, count):
        r.fail(f"{n_names} names for {count} arrays")
    names: list[str] = []
    for i in range(n_names):
        length = r.unpack("<Q", f"name #{i} length")
        raw = bytes(r.take(length, f"name #{i}"))
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            r.fail(f"name #{i} is not UTF-8")
    if r.pos != len(r.buf):
        r.fail(f"{len(r.buf) - r.pos} unexpected bytes follow the names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        r.fail(f"the names {dup} occur more than once")
    return arrays, (names if n_names else None)


def read_mxnet_list(buf: bytes, path: StrPath) -> list[tuple[str, HostArray]]:
    """The ``(name, array)`` pairs of an MXNet NDArray-list file held in ``buf``.

    A file saved from a list (no names) gets the names ``'0'``, ``'1'``, ... An "empty"
    MXNet array (no shape) cannot become a gluonlite array and raises ``CheckpointError``.
    """
    arrays, names = read_mxnet_arrays(buf, path)
    if names is None:
        names = [str(i) for i in range(len(arrays))]
    pairs = []
    for name, arr in zip(names, arrays):
        if arr is None:
            raise CheckpointError(
                f"'{name}' in '{path}' is an MXNet NDArray without a shape "
                f"(never allocated); there are no values to load"
            )
        pairs.append((name, arr))
    return pairs


def _dtype_flag(dtype: numpy.dtype[Any], what: str) -> int:
    name = "bfloat16" if dtype.name == "bfloat16" else dtype.name
    flag = _FLAG_OF.get(name)
    if flag is None or dtype.byteorder == ">":
        raise TypeError(
            f"{what} has dtype {dtype}, which MXNet's file format cannot hold; "
            f"expected one of {', '.join(_FLAG_OF)}"
        )
    return flag


def encode_mxnet_list(
    arrays: Sequence[numpy.ndarray[Any, Any]],
    names: Sequence[str] | None = None,
    version: int = 3,
) -> bytes:
    """The bytes of an MXNet NDArray-list file holding ``arrays`` (dense host NumPy arrays).

    ``names`` (one ``str`` per array) are written for a dict, omitted (None) for a list.
    ``version`` 3 writes the NumPy-semantics header of MXNet 2 / ``npx.save``; 2 the legacy
    one, where a 0-d array cannot be stored. Raises ``TypeError`` for a dtype MXNet lacks,
    ``ValueError`` for names that do not match, before anything is encoded.
    """
    if version not in (2, 3):
        raise ValueError(f"MXNet list format version must be 2 or 3, got {version}")
    if names is not None:
        if len(names) != len(arrays) or len(set(names)) != len(names):
            raise ValueError(
                f"need one distinct name per array, got {len(names)} names for {len(arrays)} arrays"
            )
        if any(not isinstance(n, str) for n in names):
            raise TypeError("array names must be str")
    flags = [_dtype_flag(a.dtype, f"array #{i}") for i, a in enumerate(arrays)]
    if version == 2 and any(a.ndim == 0 for a in arrays):
        raise ValueError(
            "the V2 header cannot hold a 0-d array (it means 'no array' there); write version 3"
        )
    magic = _V3 if version == 3 else _V2
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for a, flag in zip(arrays, flags):
        parts.append(struct.pack(f"<Iii{a.ndim}q", magic, 0, a.ndim, *a.shape))
        # Context cpu(0) (dev_type 1): MXNet copies to that device on load, and every build
        # has one.
        parts.append(struct.pack("<iii", 1, 0, flag))
        parts.append(
            numpy.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        )
    if names is None:
        parts.append(struct.pack("<Q", 0))
    else:
        parts.append(struct.pack("<Q", len(names)))
        for n in names:
            raw = n.encode("utf-8")
            parts.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(parts)
