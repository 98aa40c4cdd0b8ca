"""What the checkpoint readers and writers share: the error types, ``HostArray`` (one saved
array in host memory) and dtype names. It sits below ``checkpoint.py`` and
``_mxnet_format.py``; ``gluonlite.checkpoint`` re-exports the public names.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import numpy

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._typing import StrPath

__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "CheckpointMismatchError",
    "HostArray",
    "numpy_dtype",
    "check_dense_size",
]


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded; nothing was changed."""

    __module__ = "gluonlite.checkpoint"  # where users import it from


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, damaged, or not a checkpoint at all."""

    __module__ = "gluonlite.checkpoint"  # where users import it from


class CheckpointMismatchError(CheckpointError):
    """The file is intact but does not fit the parameters (names, shapes, dtypes, devices)."""

    __module__ = "gluonlite.checkpoint"  # where users import it from


@dataclasses.dataclass
class HostArray:
    """One saved array in host memory.

    ``values`` holds the dense values, or for sparse arrays only the stored ones: the rows
    listed in ``indices`` for ``row_sparse``, the CSR ``values`` / ``indices`` / ``indptr``
    for ``csr`` (MXNet files only).
    """

    stype: str
    shape: tuple[int, ...]
    values: numpy.ndarray[Any, Any]
    indices: numpy.ndarray[Any, Any] | None = None
    indptr: numpy.ndarray[Any, Any] | None = None

    @property
    def dtype(self) -> numpy.dtype[Any]:
        return self.values.dtype  # type: ignore[no-any-return]

    def dense(self) -> numpy.ndarray[Any, Any]:
        """The full array (a new one for sparse storage, ``values`` itself when dense)."""
        if self.stype == "default":
            return self.values
        out = numpy.zeros(self.shape, dtype=self.values.dtype)
        if self.stype == "row_sparse":
            out[self.indices] = self.values
        else:
            indptr: Any = self.indptr  # a csr array always has one
            rows = numpy.repeat(numpy.arange(self.shape[0]), numpy.diff(indptr))
            out[rows, self.indices] = self.values
        return out


def numpy_dtype(name: str, path: StrPath, what: str) -> numpy.dtype[Any]:
    """The NumPy dtype called ``name``; bfloat16 comes from ml_dtypes when it is installed."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise CheckpointError(
                f"{what} in '{path}' is bfloat16, which NumPy can only hold with the "
                f"ml_dtypes package; install it (pip install ml_dtypes)"
            ) from None
        bfloat16: numpy.dtype[Any] = numpy.dtype(ml_dtypes.bfloat16)
        return bfloat16
    return numpy.dtype(name)


def check_dense_size(
    shape: tuple[int, ...], dtype: npt.DTypeLike, path: StrPath, what: str
) -> None:
    """Refuse a (sparse) array whose dense form could never fit in this machine's memory.

    A Parameter holds every storage type densely, so such an array could never be
    loaded; a damaged header (a flipped bit in a row or column count) is the likely
    cause, and refusing it here beats a MemoryError for terabytes later.
    """
    count = 1
    for d in shape:
        count *= d
    need = count * numpy.dtype(dtype).itemsize
    have = _physical_memory()
    if need > have:
        raise CorruptCheckpointError(
            f"'{path}' is not a valid checkpoint: {what} declares the shape {tuple(shape)}, "
            f"{need / 2**30:.4g} GiB when dense, more than this machine's "
            f"{have / 2**30:.4g} GiB of memory (damaged header?)"
        )


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): a loose bound
        return 2**48
