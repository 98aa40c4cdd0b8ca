"""Checkpoints: parameters in safetensors files, written atomically, loaded all-or-nothing.

Format. A checkpoint is a plain safetensors file (the ``safetensors`` package) with the
parameter names as tensor keys. A row-sparse entry is two tensors, its stored rows under the
name and their int64 row ids under ``name + '.__indices__'``. The header's metadata holds
``format`` (``'gluonlite'``), ``format_version``, ``kind`` (``'parameters'``), ``entries``
(JSON giving for every name its ``stype``, full ``shape``, ``dtype`` -- ``'bfloat16'``
included, which NumPy holds through ml_dtypes -- and the CRC-32 of its bytes) and
``entries_crc32``, so that damage anywhere in the file is detected. Safetensors files written
by other tools load too, as dense arrays (without checksums). Apache MXNet ``.params`` /
``.nd`` files are recognised by their magic number and read by ``load_mxnet_params`` (see
``gluonlite._mxnet_format``).

Note:
    Safety. Writing goes to a temporary file in the destination folder, which is flushed and
    fsynced, renamed over the destination with ``os.replace`` and the folder fsynced: a
    crash at any moment leaves either the previous checkpoint or the new one, never a mix (a
    killed writer may leave a stray ``.<name>.*.tmp`` behind). Reading never executes code
    (no pickle): the file is parsed as data, and every entry's shape, dtype and checksum is
    checked against the file and against the parameters before any parameter is touched, so
    a failed load leaves all of them as they were. (Past the checks, only running out of
    device memory while the values are copied in can still stop a load midway.)

Errors. Problems with the file or its fit raise ``CheckpointError`` (a ``ValueError``):
``CorruptCheckpointError`` for a truncated, damaged or unrecognised file,
``CheckpointMismatchError`` for missing or extra names and for shapes, dtypes or devices that
do not fit the parameters. A file that cannot be opened raises the usual ``OSError``; a path
that is not a regular file (a device such as ``/dev/zero``, a FIFO, a folder) is refused before
anything is read, and a sparse array whose dense form could not fit in memory is taken for a
damaged header.

>>> import os, tempfile
>>> import gluonlite as mx
>>> w = mx.gluon.Parameter('w', shape=(2,), init='ones')
>>> w.initialize(device=mx.cpu(0))
>>> path = os.path.join(tempfile.mkdtemp(), 'model.safetensors')
>>> mx.gluon.save_parameters(path, {'w': w})
>>> w2 = mx.gluon.Parameter('w', shape=(0,), allow_deferred_init=True)
>>> mx.gluon.load_parameters(path, {'w': w2}, device=mx.cpu(1))
>>> w2.shape, w2.data()
((2,), array([1., 1.], device=cpu(1)))
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import stat
import struct
import zlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy
import safetensors
import safetensors.numpy

from . import _backend, _mxnet_format
from ._fileformat import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    HostArray,
    check_dense_size,
    numpy_dtype,
)
from ._typing import DevicesLike, StrPath
from .device import Device, as_device, as_devices, current_device
from .ndarray import ndarray

if TYPE_CHECKING:
    from typing import TypeAlias

    from .sparse import CSRNDArray, RowSparseNDArray

# What write_checkpoint's ``arrays`` function returns: the arrays by name and extra metadata.
_Content: TypeAlias = tuple[Mapping[str, HostArray], Union[Mapping[str, str], None]]
# A loaded array: dense, or the sparse kinds an MXNet file may hold.
_Loaded: TypeAlias = Union[ndarray, "RowSparseNDArray", "CSRNDArray"]


class _ParameterLike(Protocol):
    """What saving and loading use of a ``gluon.Parameter`` (which sits above this module,
    so it is described here rather than imported)."""

    name: str
    # Whether it has replicas (_data) or waits for its shape (_pending): see _plan_one.
    _data: Any
    _pending: Any

    @property
    def stype(self) -> str: ...
    @property
    def dtype(self) -> numpy.dtype[Any]: ...
    @property
    def shape(self) -> tuple[int, ...] | None: ...
    @shape.setter
    def shape(self, new_shape: Any) -> None: ...
    def list_device(self) -> list[Device]: ...
    def cast(self, dtype: Any) -> None: ...
    def set_data(self, data: Any) -> None: ...
    def _replicas(self) -> dict[Device, Any]: ...
    def _initialize_with(self, values: Any, devices: Any) -> None: ...


__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "CheckpointMismatchError",
    "save_parameters",
    "load_parameters",
    "load_mxnet_params",
]

FORMAT_NAME = "gluonlite"
FORMAT_VERSION = 1
INDICES_SUFFIX = ".__indices__"
_CPU0 = Device("cpu", 0)
# safetensors' dtype codes and the NumPy dtype names they stand for.
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_STORABLE_DTYPES = frozenset(_SAFETENSORS_DTYPES.values())


# --------------------------------------------------------------------------- writing
def _temporary_path(path: str) -> str:
    """A fresh name next to ``path``: same folder, so ``os.replace`` is a rename."""
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")


def atomic_write(path: StrPath, write: Callable[[str], None]) -> None:
    """Have ``write(tmp)`` fill a temporary file, make it durable, then rename it to ``path``.

    See the module note on safety. On any failure the temporary file is removed and
    ``path`` is untouched.
    """
    path = os.fspath(path)
    tmp = _temporary_path(path)
    # Created here (O_EXCL: never someone else's file); the mode the umask gives it, or the
    # existing checkpoint's, is restored after write(), since writers may recreate the file.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = os.stat(tmp).st_mode & 0o7777
        write(tmp)
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(os.path.dirname(path) or ".")


def _fsync_folder(folder: str) -> None:
    # The rename itself is durable only once the folder's entry is on disk. Windows cannot
    # open a folder; there os.replace is the best available.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _crc(arr: numpy.ndarray[Any, Any]) -> str:
    """CRC-32 of a contiguous array's bytes (read in place, no copy)."""
    data: Any = arr.reshape(-1).view(numpy.uint8)  # a buffer, which NumPy's stubs do not say
    return format(zlib.crc32(data), "08x")


def _text_crc(text: str) -> str:
    """CRC-32 of a metadata string: shapes live there, outside the tensors' checksums."""
    return format(zlib.crc32(text.encode("utf-8")), "08x")


def _serialize(
    tensors: dict[str, numpy.ndarray[Any, Any]], path: str, metadata: dict[str, str]
) -> None:
    """Write ``tensors`` (NumPy arrays) and ``metadata`` as a safetensors file at ``path``."""
    # Recent safetensors (0.8) reads each array's memory where it is, so the replica's host
    # copy is the only one; older releases (>= 0.4 works) copy each array to bytes first.
    safetensors.numpy.save_file(tensors, path, metadata=metadata)


def write_checkpoint(
    path: StrPath,
    arrays: Mapping[str, HostArray] | Callable[[], _Content],
    kind: str,
    extra: Mapping[str, str] | None = None,
    *,
    lock: AbstractContextManager[Any] | None = None,
) -> None:
    """Atomically write ``arrays`` (dense or row-sparse host arrays) to ``path``.

    ``kind`` is ``'parameters'`` or ``'trainer_states'``; ``extra`` adds string entries to
    the header metadata (read back as ``Checkpoint.metadata``). ``arrays`` may instead be a
    function returning ``(arrays, extra)``, called with ``lock`` held: the lock is kept until
    the arrays are in the temporary file and released before the file is made durable
    (fsync, the slow part), so a Trainer waiting for it waits only for the copy.
    """
    content: Callable[[], _Content] = arrays if callable(arrays) else lambda: (arrays, extra)

    def encode_and_serialize(tmp: str) -> None:
        tensors, metadata = _encoded(path, *content(), kind)
        _serialize(tensors, tmp, metadata)

    def write(tmp: str) -> None:
        if lock is None:
            encode_and_serialize(tmp)
            return
        with lock:
            encode_and_serialize(tmp)

    atomic_write(path, write)


def _encoded(
    path: StrPath, arrays: Mapping[str, HostArray], extra: Mapping[str, str] | None, kind: str
) -> tuple[dict[str, numpy.ndarray[Any, Any]], dict[str, str]]:
    """``(tensors, metadata)`` for ``_serialize``: the arrays by name (row ids apart) and the
    header with the entry table and checksums."""
    tensors: dict[str, numpy.ndarray[Any, Any]] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, arr in arrays.items():
        if (
            not isinstance(name, str)
            or not name
            or name == "__metadata__"
            or name.endswith(INDICES_SUFFIX)
        ):
            raise CheckpointError(
                f"Cannot save {name!r} to '{path}': names must be non-empty "
                f"strings, not '__metadata__' and not ending in "
                f"{INDICES_SUFFIX!r} (that suffix marks row ids)"
            )
        dtype_name = _dtype_name(arr.dtype)
        if dtype_name not in _STORABLE_DTYPES:
            raise CheckpointError(
                f"Cannot save {name!r} to '{path}': dtype {arr.dtype} is not "
                f"one of {sorted(_STORABLE_DTYPES)}"
            )
        values = numpy.ascontiguousarray(arr.values)
        tensors[name] = values
        entry: dict[str, Any] = {
            "stype": arr.stype,
            "shape": list(arr.shape),
            "dtype": dtype_name,
            "crc32": _crc(values),
        }
        if arr.stype == "row_sparse":
            indices = numpy.ascontiguousarray(arr.indices, dtype=numpy.int64)
            tensors[name + INDICES_SUFFIX] = indices
            entry["indices_crc32"] = _crc(indices)
        elif arr.stype != "default":
            raise CheckpointError(
                f"Cannot save {name!r} to '{path}': storage {arr.stype!r} "
                f"is stored dense or row-sparse only"
            )
        entries[name] = entry
    metadata = dict(extra or {})
    table = json.dumps(entries, sort_keys=True)
    metadata.update(
        {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "kind": kind,
            "entries": table,
            "entries_crc32": _text_crc(table),
        }
    )
    return tensors, metadata


def _dtype_name(dtype: numpy.dtype[Any]) -> str:
    # ml_dtypes' bfloat16 is named 'bfloat16'; every other storable dtype is a NumPy builtin.
    return str(numpy.dtype(dtype).name)


# --------------------------------------------------------------------------- reading
def _read_bytes(path: StrPath) -> bytes:
    """The whole of the regular file ``path``, read up to the length it has when opened.

    Anything else is refused before a byte is read: ``/dev/zero`` would be read until
    memory runs out, and a FIFO without a writer would block forever (it is opened
    non-blocking, so even that open returns at once).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptCheckpointError(
                f"'{path}' is not a regular file (a device, FIFO, "
                f"socket or folder); checkpoints are read from "
                f"files only"
            )
        with open(fd, "rb", closefd=False) as f:
            buf = f.read(info.st_size)
    finally:
        os.close(fd)
    if len(buf) != info.st_size:
        raise _corrupt(path, f"it shrank from {info.st_size} to {len(buf)} bytes while being read")
    return buf


@dataclasses.dataclass
class Checkpoint:
    """What a file holds: its arrays by name, its kind and its header metadata.

    The kind is ``'parameters'`` or ``'trainer_states'`` for gluonlite files, ``'mxnet'`` for
    Apache MXNet NDArray files and ``'safetensors'`` for other safetensors files.
    """

    arrays: dict[str, HostArray]
    kind: str
    metadata: dict[str, str]


def read_checkpoint(path: StrPath) -> Checkpoint:
    """Read and check ``path`` completely (structure, shapes, checksums); see the module."""
    buf = _read_bytes(path)
    if _mxnet_format.is_mxnet_list(buf):
        return Checkpoint(dict(_mxnet_format.read_mxnet_list(buf, path)), "mxnet", {})
    return _read_safetensors(buf, path)


def _corrupt(path: StrPath, what: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"'{path}' is not a valid checkpoint: {what} (truncated or corrupted?)"
    )


def _read_safetensors(buf: bytes, path: StrPath) -> Checkpoint:
    try:
        tensors = safetensors.deserialize(buf)  # type: ignore[no-untyped-call]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a Rust panic arrives as a BaseException
        raise _corrupt(path, f"safetensors cannot parse it ({e})") from e
    # deserialize() has validated the header; its metadata is what it does not return.
    try:
        header = json.loads(bytes(buf[8 : 8 + struct.unpack_from("<Q", buf)[0]]))
        metadata = header.get("__metadata__") or {}
    except (ValueError, AttributeError) as e:
        raise _corrupt(path, "its header is not a JSON object") from e
    # The safetensors versions we know check this already; the rest of the code relies on it.
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(path, "its metadata is not a map of strings")
    raw: dict[str, numpy.ndarray[Any, Any]] = {}
    for name, spec in tensors:
        code = spec["dtype"]
        if code not in _SAFETENSORS_DTYPES:
            raise CheckpointError(
                f"'{name}' in '{path}' has the safetensors dtype {code}, "
                f"which gluonlite does not load"
            )
        dtype = numpy_dtype(_SAFETENSORS_DTYPES[code], path, f"'{name}'")
        raw[name] = numpy.frombuffer(spec["data"], dtype=dtype).reshape(spec["shape"])
    if metadata.get("format") != FORMAT_NAME:
        return Checkpoint(
            {name: HostArray("default", tuple(v.shape), v) for name, v in raw.items()},
            "safetensors",
            metadata,
        )
    return Checkpoint(_gluonlite_entries(raw, metadata, path), metadata["kind"], metadata)


def _gluonlite_entries(
    raw: dict[str, numpy.ndarray[Any, Any]], metadata: dict[str, str], path: StrPath
) -> dict[str, HostArray]:
    version = metadata.get("format_version", "")
    if not (version.isascii() and version.isdigit()):
        raise _corrupt(path, f"format_version {version!r} is not a number")
    # Compared as text first: int() refuses strings of more than 4300 digits.
    if len(version.lstrip("0")) > len(str(FORMAT_VERSION)) or int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' was written in checkpoint format version {version} "
            f"by a newer gluonlite; this one reads up to {FORMAT_VERSION}"
        )
    kind = metadata.get("kind")
    if kind not in ("parameters", "trainer_states"):
        raise _corrupt(path, f"unknown kind {kind!r}")
    table = metadata.get("entries", "")
    if metadata.get("entries_crc32") != _text_crc(table):
        raise _corrupt(path, "its entry table does not match its checksum")
    try:
        entries = json.loads(table)
    except ValueError as e:
        raise _corrupt(path, "its entry table is not JSON") from e
    if not isinstance(entries, dict):
        raise _corrupt(path, "its entry table is not a JSON object")
    expected: set[str] = set()
    out: dict[str, HostArray] = {}
    for name, entry in entries.items():
        arr = _checked_entry(name, entry, raw, path)
        expected.add(name)
        if arr.stype == "row_sparse":
            expected.add(name + INDICES_SUFFIX)
        out[name] = arr
    if expected != set(raw):
        raise _corrupt(
            path, f"the tensors {sorted(set(raw) ^ expected)} do not match its entry table"
        )
    return out


def _checked_entry(
    name: str, entry: object, raw: dict[str, numpy.ndarray[Any, Any]], path: StrPath
) -> HostArray:
    """The array ``entry`` describes, after checking it against the tensors and checksums."""
    if not isinstance(entry, dict) or entry.get("stype") not in ("default", "row_sparse"):
        raise _corrupt(path, f"the entry of '{name}' is malformed")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _corrupt(path, f"the entry of '{name}' has the shape {shape!r}")
    shape = tuple(shape)
    values = raw.get(name)
    if values is None:
        raise _corrupt(path, f"the tensor '{name}' is missing")
    if entry.get("dtype") != _dtype_name(values.dtype) or entry.get("crc32") != _crc(values):
        raise _corrupt(
            path,
            f"the tensor '{name}' does not match its recorded dtype "
            f"{entry.get('dtype')!r} and checksum",
        )
    if entry["stype"] == "default":
        if values.shape != shape:
            raise _corrupt(
                path, f"the tensor '{name}' has shape {values.shape}, its entry says {shape}"
            )
        return HostArray("default", shape, values)
    indices = raw.get(name + INDICES_SUFFIX)
    if (
        indices is None
        or indices.dtype != numpy.int64
        or indices.ndim != 1
        or entry.get("indices_crc32") != _crc(indices)
    ):
        raise _corrupt(path, f"the row ids of '{name}' are missing or damaged")
    check_dense_size(shape, values.dtype, path, f"the row-sparse '{name}'")
    if (
        not shape
        or values.shape != (indices.shape[0],) + shape[1:]
        or (
            indices.size
            and (indices[0] < 0 or indices[-1] >= shape[0] or numpy.any(numpy.diff(indices) <= 0))
        )
    ):
        raise _corrupt(
            path,
            f"the row-sparse '{name}' of shape {shape} has inconsistent rows {values.shape} / ids",
        )
    return HostArray("row_sparse", shape, values, indices)


# --------------------------------------------------------------------------- arrays
def _to_host(array: ndarray) -> numpy.ndarray[Any, Any]:
    """``array``'s values in host memory: the array itself when it is a contiguous CPU one,
    else one copy (a single device-to-host transfer for a GPU array)."""
    if array.device.device_type == "cpu":
        return numpy.ascontiguousarray(array._data)
    return array.asnumpy()


def _to_gluonlite(arr: HostArray, device: Device) -> _Loaded:
    """``arr`` as a gluonlite array on ``device``: ndarray, RowSparseNDArray or CSRNDArray."""
    from . import sparse

    def moved(a: numpy.ndarray[Any, Any] | None) -> Any:
        return _backend.transfer(a, _CPU0, device)

    if arr.stype == "default":
        return ndarray(moved(arr.values), device)
    if arr.stype == "row_sparse":
        return sparse.RowSparseNDArray(moved(arr.values), moved(arr.indices), arr.shape, device)
    return sparse.CSRNDArray(
        moved(arr.values), moved(arr.indices), moved(arr.indptr), arr.shape, device
    )


def load_mxnet_params(path: StrPath, device: Device | None = None) -> dict[str, _Loaded]:
    """The arrays of an Apache MXNet ``.params`` / ``.nd`` file, by name, on ``device``.

    Reads the NDArray-list format of MXNet 1.x and 2.x (``mx.nd.save``,
    ``Block.save_parameters``, ``Module.save_params``, ``mx.npx.save``): dense arrays become
    ``mx.np.ndarray``, row-sparse ones ``RowSparseNDArray``, CSR ones ``CSRNDArray``. The
    ``arg:`` / ``aux:`` prefixes of Module-era files are dropped (as MXNet's own
    ``load_parameters`` does); a file saved from a list gets the names ``'0'``, ``'1'``, ...

    Args:
        path: The file.
        device: Where the arrays go; the current device by default.

    Raises:
        CorruptCheckpointError: Not an MXNet NDArray file, or a truncated or damaged one.
        CheckpointError: The file holds something gluonlite cannot represent (an
            unallocated array; bfloat16 without ml_dtypes).

    Example:
        >>> import gluonlite as mx
        >>> arrays = mx.gluon.load_mxnet_params('tests/data/mxnet_module.params')
        >>> sorted(arrays)[:2], arrays['fc1_weight'].shape
        (['bn1_beta', 'bn1_gamma'], (3, 4))
    """
    device = as_device(device)
    buf = _read_bytes(path)
    if not _mxnet_format.is_mxnet_list(buf):
        raise CorruptCheckpointError(
            f"'{path}' is not an MXNet NDArray file: it does not start with the list magic 0x112"
        )
    arrays = _strip_module_prefixes(dict(_mxnet_format.read_mxnet_list(buf, path)), path)
    return {name: _to_gluonlite(arr, device) for name, arr in arrays.items()}


def _strip_module_prefixes(arrays: dict[str, HostArray], path: StrPath) -> dict[str, HostArray]:
    out: dict[str, HostArray] = {}
    for name, arr in arrays.items():
        key = name[4:] if name.startswith(("arg:", "aux:")) else name
        if key in out:
            raise CheckpointError(
                f"'{path}' holds both '{key}' and a prefixed copy of it "
                f"({name!r}); load it with the prefixes intact instead"
            )
        out[key] = arr
    return out


# --------------------------------------------------------------------------- parameters
def save_parameters(
    path: StrPath, params: Mapping[str, _ParameterLike], deduplicate: bool = False
) -> None:
    """Save the parameters in ``params`` (name -> ``Parameter``) to ``path``, atomically.

    One replica per parameter is saved (a CPU one when there is one, else the first), moved
    to the host once: replicas are identical between Trainer steps (see the replica
    consistency note in ``gluonlite.gluon.parameter``). A ``row_sparse`` parameter is stored
    as its nonzero rows and their ids.

    Args:
        path: Destination file; replaced atomically (see the module note on safety).
        params: Name -> ``Parameter``; every one must be initialized.
        deduplicate: Save a parameter that appears under several names only once, under its
            first name (MXNet's ``deduplicate``).

    Raises:
        CheckpointError: A parameter is not initialized (nothing is written), or a name or
            dtype cannot be stored.
    """
    from ._replica import replica_lock

    def content() -> _Content:
        arrays: dict[str, HostArray] = {}
        seen: set[int] = set()
        for name, param in params.items():
            if deduplicate and id(param) in seen:
                continue
            seen.add(id(param))
            arrays[name] = _saved_replica(param, path)
        return arrays, None

    # The replica lock is held from the first read until the values are in the file (not
    # while it is fsynced): a Trainer stepping on another thread waits, so the file holds
    # one step of every parameter, and CPU replicas are written from their own memory.
    write_checkpoint(path, content, "parameters", lock=replica_lock)


def _saved_replica(param: _ParameterLike, path: StrPath) -> HostArray:
    # _replicas() is the dense store of every stype (row_sparse and csr parameters hold the
    # full weight per device); it completes a deferred init whose shape is known by now.
    try:
        replicas = param._replicas()
    except RuntimeError as e:
        raise CheckpointError(f"Cannot save Parameter {param.name!r} to '{path}': {e}") from e
    replica = next(
        (r for dev, r in replicas.items() if dev.device_type == "cpu"),
        next(iter(replicas.values())),
    )
    values = _to_host(replica)
    if param.stype != "row_sparse":
        return HostArray("default", values.shape, values)
    width = int(numpy.prod(values.shape[1:], dtype=numpy.int64))
    rows = numpy.flatnonzero(numpy.any(values.reshape(values.shape[0], width) != 0, axis=1))
    return HostArray("row_sparse", values.shape, values[rows], rows.astype(numpy.int64))


@dataclasses.dataclass
class _Step:
    """How one parameter will change; built for all of them before any is touched."""

    param: _ParameterLike
    values: numpy.ndarray[Any, Any]  # dense host values, in the dtype the parameter will have
    shape: tuple[int, ...]
    cast_to: numpy.dtype[Any] | None  # the parameter takes the saved dtype first
    devices: list[Device] | None  # None: set in place on the devices it has


def load_parameters(
    path: StrPath,
    params: Mapping[str, _ParameterLike],
    device: DevicesLike = None,
    allow_missing: bool = False,
    ignore_extra: bool = False,
    cast_dtype: bool = False,
    dtype_source: str = "current",
) -> None:
    """Load ``path`` (a gluonlite checkpoint or an MXNet ``.params`` file) into ``params``.

    Everything is checked first: names, shapes (unknown dims of a deferred parameter are
    filled from the file, as in MXNet), dtypes, devices and the file's integrity. Only then
    are parameters changed; a failure changes none of them (module note on safety).
    Initialized parameters get the values in place on the devices they have; uninitialized
    ones are initialized with them on ``device`` (a deferred init: on the devices it was
    given; otherwise the current device).

    Args:
        path: The checkpoint; the format is recognised from its first bytes.
        params: Name -> ``Parameter``. A parameter listed under several names is loaded from
            whichever of them the file has.
        device: Device or list of devices for uninitialized parameters; for initialized or
            deferred ones it must name the devices they already have.
        allow_missing: Leave parameters that the file lacks as they are.
        ignore_extra: Skip names in the file that ``params`` lacks.
        cast_dtype: Accept a dtype that differs from the parameter's and convert.
        dtype_source: With ``cast_dtype``: ``'current'`` converts the values to the
            parameter's dtype, ``'saved'`` gives the parameter the file's dtype.

    Raises:
        CheckpointMismatchError: Missing or extra names, a shape, dtype or device that does
            not fit (the message names the parameter, the file and what was expected).
        CorruptCheckpointError: The file is truncated, damaged or not a checkpoint.
        CheckpointError: Any other reason the file cannot be loaded.
        ValueError: ``dtype_source`` is neither ``'current'`` nor ``'saved'``.
    """
    if dtype_source not in ("current", "saved"):
        raise ValueError(f"dtype_source must be 'current' or 'saved', got {dtype_source!r}")
    devices = None if device is None else as_devices(device)
    loaded = read_checkpoint(path)
    saved = loaded.arrays
    if loaded.kind == "trainer_states":
        raise CheckpointError(
            f"'{path}' holds trainer states, not parameters; load it with Trainer.load_states"
        )
    if loaded.kind == "mxnet":
        saved = _strip_module_prefixes(saved, path)
    steps = _plan(
        path, params, saved, devices, allow_missing, ignore_extra, cast_dtype, dtype_source
    )
    for step in steps:
        _apply(step)


def _plan(
    path: StrPath,
    params: Mapping[str, _ParameterLike],
    saved: dict[str, HostArray],
    devices: list[Device] | None,
    allow_missing: bool,
    ignore_extra: bool,
    cast_dtype: bool,
    dtype_source: str,
) -> list[_Step]:
    names_of: dict[int, tuple[_ParameterLike, list[str]]] = {}
    for name, param in params.items():
        names_of.setdefault(id(param), (param, []))[1].append(name)
    missing = [names[0] for param, names in names_of.values() if not any(n in saved for n in names)]
    if missing and not allow_missing:
        raise CheckpointMismatchError(
            f"Parameters {missing} are missing in '{path}', which holds {sorted(saved)}. "
            f"Set allow_missing=True to leave them as they are."
        )
    extra = sorted(name for name in saved if name not in params)
    if extra and not ignore_extra:
        raise CheckpointMismatchError(
            f"'{path}' holds {extra}, which are not among the parameters {sorted(params)}. "
            f"Set ignore_extra=True to skip them."
        )
    steps = []
    for param, names in names_of.values():
        found = next((n for n in names if n in saved), None)
        if found is not None:
            steps.append(
                _plan_one(path, found, param, saved[found], devices, cast_dtype, dtype_source)
            )
    return steps


def _plan_one(
    path: StrPath,
    name: str,
    param: _ParameterLike,
    arr: HostArray,
    devices: list[Device] | None,
    cast_dtype: bool,
    dtype_source: str,
) -> _Step:
    where = f"Parameter {name!r} from '{path}'"
    # Whether the parameter has replicas (_data) or waits for its shape (_pending) decides
    # how it is loaded, as in MXNet's Parameter._load_init; there is no public query.
    initialized = param._data is not None
    current = param.shape
    fits = current is None or (
        len(current) == len(arr.shape)
        and all(c == s or (c == -1 and not initialized) for c, s in zip(current, arr.shape))
    )
    if not fits:
        raise CheckpointMismatchError(
            f"Cannot load {where}: the file has shape {arr.shape}, the parameter expects {current}"
        )
    if 0 in arr.shape:
        raise CheckpointMismatchError(
            f"Cannot load {where}: its shape {arr.shape} has a "
            f"zero-size dimension, which a Parameter cannot hold"
        )
    cast_to = None
    values = arr.dense()
    if arr.dtype != param.dtype:
        if not cast_dtype:
            raise CheckpointMismatchError(
                f"Cannot load {where}: the file has dtype {_dtype_name(arr.dtype)}, the "
                f"parameter expects {_dtype_name(param.dtype)}. Set cast_dtype=True to "
                f"convert."
            )
        if dtype_source == "current":
            values = values.astype(param.dtype)
        else:
            cast_to = arr.dtype
    if initialized or param._pending is not None:
        have = param.list_device()
        if devices is not None and set(devices) != set(have):
            raise CheckpointMismatchError(
                f"Cannot load {where} onto {devices}: it was initialized on {have}. Use "
                f"reset_device() first, or leave device=None."
            )
    for dev in devices or ():
        _backend.check_available(dev)
    target = (
        None
        if initialized
        else devices or (param.list_device() if param._pending is not None else [current_device()])
    )
    return _Step(param, values, arr.shape, cast_to, target)


def _apply(step: _Step) -> None:
    param = step.param
    if step.cast_to is not None:
        param.cast(step.cast_to)
    if step.devices is None:
        param.set_data(step.values)
        return
    param.shape = step.shape
    # The saved values are the initial values: no initializer runs, no random draws.
    param._initialize_with(step.values, step.devices)
