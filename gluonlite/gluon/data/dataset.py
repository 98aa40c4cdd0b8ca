"""Datasets: indexable collections of samples, with lazy per-sample transforms.

>>> import gluonlite as mx
>>> ds = mx.gluon.data.ArrayDataset([1, 2, 3], ['a', 'b', 'c'])
>>> ds[1]
(2, 'b')
>>> ds.transform_first(lambda x: x * 10)[2]
(30, 'c')
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import Any
from ...ndarray import ndarray

__all__ = ["Dataset", "SimpleDataset", "ArrayDataset", "RecordFileDataset"]


class Dataset:
    """Abstract dataset: implement ``__getitem__(idx)`` and ``__len__()``."""

    def __getitem__(self, idx: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def filter(self, fn: Callable[..., Any]) -> "Dataset":
        """The samples for which ``fn(sample)`` is true (evaluated now, once per sample)."""
        from .sampler import FilterSampler

        return self.sample(FilterSampler(fn, self))

    def shard(self, num_shards: int, index: int) -> "Dataset":
        """Shard ``index`` of ``num_shards`` contiguous shards (the first ones one longer)."""
        if not isinstance(num_shards, int) or num_shards <= 0:
            raise ValueError(
                f"Dataset.shard: num_shards must be a positive int, got {num_shards!r}"
            )
        if not isinstance(index, int) or not 0 <= index < num_shards:
            raise ValueError(f"Dataset.shard: index must be in [0, {num_shards}), got {index!r}")
        length = len(self)
        size, extra = divmod(length, num_shards)
        start = index * size + min(index, extra)
        end = start + size + (index < extra)
        from .sampler import SequentialSampler

        return self.sample(SequentialSampler(end - start, start))

    def take(self, count: int) -> "Dataset":
        """The first ``count`` samples (all of them for None or a count past the end)."""
        if count is None or count > len(self):
            count = len(self)
        if count < 0:
            raise ValueError(f"Dataset.take: count must be >= 0, got {count}")
        from .sampler import SequentialSampler

        return self.sample(SequentialSampler(count))

    def sample(self, sampler: Any) -> "Dataset":
        """The samples at the indices ``sampler`` yields, in its order."""
        return _SampledDataset(self, list(sampler))

    def transform(self, fn: Callable[..., Any], lazy: bool = True) -> "Dataset":
        """Apply ``fn`` to each sample (``fn(*sample)`` when a sample is a tuple).

        Lazy (default): on access; otherwise now, into a ``SimpleDataset``.
        """
        trans = _LazyTransformDataset(self, fn)
        return trans if lazy else SimpleDataset([trans[i] for i in range(len(trans))])

    def transform_first(self, fn: Callable[..., Any], lazy: bool = True) -> "Dataset":
        """Apply ``fn`` to the first element of each sample (the data, not the label)."""
        return self.transform(_TransformFirst(fn), lazy)


class SimpleDataset(Dataset):
    """A dataset over any object with ``len`` and indexing (a list, a NumPy array...)."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        return self._data[idx]


class _SampledDataset(Dataset):
    def __init__(self, dataset: Any, indices: Any) -> None:
        self._dataset, self._indices = dataset, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, idx: int) -> Any:
        return self._dataset[self._indices[idx]]


class _LazyTransformDataset(Dataset):
    def __init__(self, data: Any, fn: Callable[..., Any]) -> None:
        self._data, self._fn = data, fn

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        item = self._data[idx]
        return self._fn(*item) if isinstance(item, tuple) else self._fn(item)


class _TransformFirst:
    """A picklable ``(x, *rest) -> (fn(x), *rest)`` (DataLoader workers may pickle it)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def __call__(self, x: ndarray, *args: Any) -> Any:
        return (self._fn(x),) + args if args else self._fn(x)


class ArrayDataset(Dataset):
    """Several equally long arrays zipped: sample ``i`` is ``(a[i], b[i], ...)``; with one
    array, just ``a[i]``."""

    def __init__(self, *args: Any) -> None:
        if not args:
            raise ValueError("ArrayDataset: needs at least one array")
        self._length = len(args[0])
        for i, data in enumerate(args):
            if len(data) != self._length:
                raise ValueError(
                    f"ArrayDataset: all arrays must have the same length; array "
                    f"0 has {self._length} but array {i} has {len(data)}"
                )
        self._data = args

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, idx: int) -> Any:
        if len(self._data) == 1:
            return self._data[0][idx]
        return tuple(data[idx] for data in self._data)


_RECORD_MAGIC = 0xCED7230A


class RecordFileDataset(Dataset):
    """The records of an MXNet RecordIO file (``.rec`` with its ``.idx`` index) as bytes.

    The index holds one ``key<TAB>offset`` line per record; each record is a 4-byte magic
    number, a 4-byte header (upper 3 bits: continuation flag, lower 29: length), the payload,
    and padding to a multiple of 4. A record split by the writer (its payload contained the
    magic number) is stitched back with the magic between the parts, as MXNet's reader does.

    Args:
        filename: path of the ``.rec`` file; the index is the same path with ``.idx``.
    """

    def __init__(self, filename: str) -> None:
        self.filename = os.fspath(filename)
        self.idx_file = os.path.splitext(self.filename)[0] + ".idx"
        for path in (self.filename, self.idx_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"RecordFileDataset: {path} not found (needs both "
                    f"{self.filename} and its index {self.idx_file})"
                )
        self._offsets = []
        with open(self.idx_file) as f:
            for line in f:
                parts = line.split("\t") if "\t" in line else line.split()
                if len(parts) >= 2:
                    self._offsets.append(int(parts[1]))
        self._file: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None  # each process opens its own handle
        return state

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, idx: int) -> Any:
        if self._file is None:
            self._file = open(self.filename, "rb")
        f = self._file
        f.seek(self._offsets[idx])
        parts = []
        while True:
            header = f.read(8)
            if len(header) < 8:
                raise ValueError(f"RecordFileDataset: truncated record {idx} in {self.filename}")
            magic, lrec = struct.unpack("<II", header)
            if magic != _RECORD_MAGIC:
                raise ValueError(
                    f"RecordFileDataset: bad magic number at record {idx} of "
                    f"{self.filename} (not a RecordIO file, or a wrong index)"
                )
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            parts.append(f.read(length))
            f.seek((4 - length % 4) % 4, io.SEEK_CUR)
            if cflag in (0, 3):
                break
        return struct.pack("<I", _RECORD_MAGIC).join(parts)

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
