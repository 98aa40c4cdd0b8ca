"""``mx.npx`` utilities: devices, synchronisation, DLPack and NumPy interop, MXNet files.

``save``/``savez``/``load`` use Apache MXNet's own NDArray-list format
(``gluonlite/_mxnet_format.py``), so files move both ways between gluonlite and MXNet.

>>> import os, tempfile
>>> import gluonlite as mx
>>> path = os.path.join(tempfile.mkdtemp(), "a.nd")
>>> mx.npx.save(path, {"w": mx.np.ones((2,))})
>>> {k: v.tolist() for k, v in mx.npx.load(path).items()}
{'w': [1.0, 1.0]}
"""

from __future__ import annotations

import ctypes
import os

import numpy

from .. import _backend, _mxnet_format, checkpoint
from ..device import Device, cpu, current_device, gpu, gpu_memory_info, num_gpus
from ..ndarray import ndarray, from_dlpack as _from_dlpack_object
from typing import Any
from .._typing import StrPath

__all__ = [
    "set_np",
    "reset_np",
    "is_np_array",
    "is_np_shape",
    "cpu",
    "gpu",
    "num_gpus",
    "gpu_memory_info",
    "current_device",
    "waitall",
    "from_numpy",
    "from_dlpack",
    "to_dlpack_for_read",
    "to_dlpack_for_write",
    "save",
    "savez",
    "load",
]


def set_np(shape: bool = True, array: bool = True, dtype: bool = False) -> None:
    """MXNet 2 scripts start with ``npx.set_np()``; gluonlite always has NumPy semantics
    (``mx.np`` arrays, -1 for unknown dims), so this accepts that call and refuses to turn
    them off, since the legacy ``mx.nd`` front end is not provided."""
    if not (shape and array):
        raise ValueError(
            "gluonlite only provides NumPy semantics (mx.np); set_np(shape="
            "False) or set_np(array=False) would need the legacy mx.nd API"
        )
    if dtype:
        raise ValueError(
            "set_np(dtype=True) (float64 defaults) is not supported; gluonlite "
            "creates float32 unless a dtype is given, as MXNet does by default"
        )


def reset_np() -> None:
    """Accepted for MXNet compatibility: NumPy semantics cannot be turned off here."""


def is_np_array() -> bool:
    return True


def is_np_shape() -> bool:
    return True


def waitall() -> None:
    """Wait until all queued work on every visible GPU is done (CPU work is synchronous)."""
    for i in range(num_gpus()):
        _backend.synchronize(Device("gpu", i))


# ------------------------------------------------------------------------- interop
def from_numpy(ndarray_: numpy.ndarray[Any, Any], zero_copy: bool = True) -> ndarray:
    """A ``cpu(0)`` array from a NumPy array, sharing its memory when ``zero_copy``.

    Zero copy needs a C-contiguous array (as in MXNet); ``zero_copy=False`` always copies.
    The dtype is kept (a float64 array stays float64).
    """
    if not isinstance(ndarray_, numpy.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray_).__name__}")
    if not zero_copy:
        return ndarray(numpy.array(ndarray_, copy=True, order="C"), cpu(0))
    if not ndarray_.flags.c_contiguous:
        raise ValueError(
            "from_numpy: zero_copy=True needs a C-contiguous array; pass "
            "zero_copy=False or numpy.ascontiguousarray(...) first"
        )
    return ndarray(ndarray_, cpu(0))


class _Capsule:
    """A bare DLPack capsule with the ``__dlpack__`` protocol around it (NumPy and CuPy
    import protocol objects only). The device is read from the DLTensor the capsule holds:
    ``DLManagedTensor`` starts with ``DLTensor {void *data; int32 device_type, device_id}``."""

    def __init__(self, capsule: Any) -> None:
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        try:
            ptr = get(capsule, b"dltensor")
        except ValueError:
            raise ValueError(
                "from_dlpack: the capsule was already consumed (a DLPack "
                "capsule can be imported once)"
            ) from None
        kind, device_id = (ctypes.c_int32 * 2).from_address(ptr + ctypes.sizeof(ctypes.c_void_p))
        self._capsule, self._device = capsule, (kind, device_id)

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> Any:
        return self._device


def from_dlpack(dlpack: Any) -> ndarray:
    """An array sharing memory with a DLPack capsule or any object with ``__dlpack__``
    (``to_dlpack_for_read/write`` output, NumPy, CuPy, torch, ...)."""
    if type(dlpack).__name__ == "PyCapsule":
        dlpack = _Capsule(dlpack)
    elif not hasattr(dlpack, "__dlpack__"):
        raise TypeError(
            f"from_dlpack: expected a DLPack capsule or an object with "
            f"__dlpack__, got {type(dlpack).__name__}"
        )
    return _from_dlpack_object(dlpack)


def _check_array(fn: str, data: ndarray) -> None:
    if not isinstance(data, ndarray):
        raise TypeError(f"{fn}: expected an mx.np.ndarray, got {type(data).__name__}")


def to_dlpack_for_read(data: ndarray) -> Any:
    """A DLPack capsule of ``data`` once its pending writes are done (for readers)."""
    _check_array("to_dlpack_for_read", data)
    data.wait_to_read()
    return data._data.__dlpack__()


def to_dlpack_for_write(data: ndarray) -> Any:
    """A DLPack capsule of ``data`` that a consumer may write into (the memory is shared)."""
    _check_array("to_dlpack_for_write", data)
    data.wait_to_read()
    return data._data.__dlpack__()


# ------------------------------------------------------------------------- files
def _host_arrays(fn: str, arrays: Any) -> list[numpy.ndarray[Any, Any]]:
    host = []
    for i, a in enumerate(arrays):
        if not isinstance(a, ndarray):
            raise TypeError(f"{fn}: item {i} is a {type(a).__name__}, expected an mx.np.ndarray")
        host.append(a.asnumpy())
    return host


def _write(fn: str, file: StrPath, arrays: Any, names: Any) -> None:
    # Encode fully first: a bad dtype raises before the file is created, and the file is
    # written under a temporary name and renamed, so a failure leaves no partial file.
    data = _mxnet_format.encode_mxnet_list(_host_arrays(fn, arrays), names)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    checkpoint.atomic_write(os.fspath(file), write)


def save(file: StrPath, arr: Any) -> None:
    """Save an array, a list of arrays or a dict ``str -> array`` in MXNet's format.

    MXNet 2 (and MXNet 1.9 under ``npx.set_np()``) loads the file with ``npx.load``; arrays
    are written from host memory with the context ``cpu(0)``.
    """
    if isinstance(arr, ndarray):
        arr = [arr]
    if isinstance(arr, dict):
        names = list(arr)
        if any(not isinstance(k, str) for k in names):
            raise TypeError("save: only accepts a dict str -> ndarray or a list of ndarrays")
        _write("save", file, list(arr.values()), names)
    elif isinstance(arr, (list, tuple)):
        _write("save", file, list(arr), None)
    else:
        raise TypeError(
            f"save: arr must be an ndarray, a list of ndarrays or a dict "
            f"str -> ndarray, got {type(arr).__name__}"
        )


def savez(file: StrPath, *args: Any, **kwds: Any) -> None:
    """Save arrays by name, as NumPy's ``savez``: positional ones as ``arr_0``, ``arr_1``..."""
    named = {f"arr_{i}": a for i, a in enumerate(args)}
    for key, value in kwds.items():
        if key in named:
            raise ValueError(f"savez: cannot use un-named variables and keyword {key}")
        named[key] = value
    _write("savez", file, list(named.values()), list(named))


def load(file: StrPath) -> Any:
    """Arrays from an MXNet NDArray-list file: a dict when it holds names, else a list.

    Arrays land on ``cpu(0)``; sparse arrays stored by MXNet 1.x come back dense.
    """
    if not isinstance(file, (str, os.PathLike)):
        raise TypeError(f"load: file must be a path, got {type(file).__name__}")
    with open(file, "rb") as f:
        buf = f.read()
    arrays, names = _mxnet_format.read_mxnet_arrays(buf, file)
    labels = names or [str(i) for i in range(len(arrays))]
    out = []
    for label, host in zip(labels, arrays):
        if host is None:
            raise checkpoint.CheckpointError(
                f"'{label}' in '{file}' is an MXNet NDArray "
                f"without a shape; there are no values to load"
            )
        out.append(ndarray(host.dense(), cpu(0)))
    return out if names is None else dict(zip(names, out))
