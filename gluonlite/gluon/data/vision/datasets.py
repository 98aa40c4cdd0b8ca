"""MNIST, Fashion-MNIST, CIFAR-10/100 and image folders, read from files under ``root``.

Nothing is downloaded (gluonlite runs on machines without network): put the standard files
in ``root`` (MXNet's default locations under ``~/.mxnet/datasets``); a missing file raises
``FileNotFoundError`` naming every file expected and where.

Samples are ``(image, label)``: the image an ``mx.np`` uint8 array shaped ``(H, W, C)``, the
label a NumPy int32 scalar, as in MXNet. ``transform(image, label)`` applies per sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gzip
import os
import struct

import numpy

from ....device import cpu
from ....ndarray import ndarray
from ..dataset import Dataset
from collections.abc import Callable, Sequence

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "ImageFolderDataset"]


def _expected(cls_name: str, root: str, names: Sequence[str], note: str = "") -> FileNotFoundError:
    listed = "\n".join(f"  {os.path.join(root, n)}" for n in names)
    return FileNotFoundError(
        f"{cls_name}: dataset files not found under {root}. Expected:\n{listed}\n"
        f"gluonlite does not download datasets; copy the standard files there{note}, or pass "
        f"root= pointing at them."
    )


class _ImageArrays(Dataset):
    """Images (N, H, W, C) uint8 and labels (N,) held in memory."""

    if TYPE_CHECKING:  # each subclass reads its files

        def _load(self) -> tuple[Any, Any]: ...

    def __init__(self, root: str, transform: Callable[..., Any] | None) -> None:
        self._root = os.path.expanduser(os.fspath(root))
        self._transform = transform
        self._data, self._label = self._load()

    def __len__(self) -> int:
        return len(self._label)

    def __getitem__(self, idx: int) -> Any:
        image = ndarray(self._data[idx], cpu(0))
        label = self._label[idx]
        if self._transform is not None:
            return self._transform(image, label)
        return image, label


def _idx_read(path: str) -> numpy.ndarray[Any, Any]:
    """An IDX file (MNIST's format), gzip-compressed or not."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = numpy.frombuffer(raw, dtype=numpy.uint8, offset=4 + 4 * ndim)
    if data.size != int(numpy.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


class MNIST(_ImageArrays):
    """The MNIST handwritten digits: 28x28x1 uint8 images, labels 0-9.

    Reads ``train-images-idx3-ubyte.gz`` / ``train-labels-idx1-ubyte.gz`` (``train=True``)
    or ``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz`` from ``root`` (the
    uncompressed files, without ``.gz``, work too).
    """

    _default_root = "~/.mxnet/datasets/mnist"

    def __init__(
        self,
        root: str | None = None,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        self._train = train
        super().__init__(root if root is not None else self._default_root, transform)

    def _files(self) -> Any:
        prefix = "train" if self._train else "t10k"
        return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"

    def _find(self, name: str) -> str | None:
        for candidate in (name, name[:-3]):
            path = os.path.join(self._root, candidate)
            if os.path.isfile(path):
                return path
        return None

    def _load(self) -> tuple[Any, Any]:
        names = self._files()
        paths: list[Any] = [self._find(n) for n in names]
        if None in paths:
            raise _expected(type(self).__name__, self._root, names, " (gzip-compressed or not)")
        images, labels = (_idx_read(p) for p in paths)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{type(self).__name__}: {paths[0]} holds {images.shape} and "
                f"{paths[1]} {labels.shape}; expected (N, H, W) and (N,)"
            )
        return images[..., None], labels.astype(numpy.int32)


class FashionMNIST(MNIST):
    """Fashion-MNIST: the MNIST file names and format, clothing images."""

    _default_root = "~/.mxnet/datasets/fashion-mnist"


class CIFAR10(_ImageArrays):
    """CIFAR-10: 32x32x3 uint8 images, labels 0-9, from the binary version.

    Reads ``data_batch_1.bin`` ... ``data_batch_5.bin`` (``train=True``) or ``test_batch.bin``
    from ``root`` or ``root/cifar-10-batches-bin`` (where the archive unpacks). Each record is
    one label byte and 3072 image bytes (channel-major).
    """

    _default_root = "~/.mxnet/datasets/cifar10"
    _subdir = "cifar-10-batches-bin"
    _label_bytes = 1

    def __init__(
        self,
        root: str | None = None,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        self._train = train
        super().__init__(root if root is not None else self._default_root, transform)

    def _names(self) -> Any:
        if self._train:
            return [f"data_batch_{i}.bin" for i in range(1, 6)]
        return ["test_batch.bin"]

    def _pick_label(self, labels: Any) -> Any:
        return labels[:, 0]

    def _load(self) -> tuple[Any, Any]:
        names = self._names()
        for folder in (self._root, os.path.join(self._root, self._subdir)):
            paths = [os.path.join(folder, n) for n in names]
            if all(os.path.isfile(p) for p in paths):
                break
        else:
            raise _expected(
                type(self).__name__,
                os.path.join(self._root, self._subdir),
                names,
                " (the binary version of the dataset)",
            )
        record = self._label_bytes + 3072
        images, labels = [], []
        for path in paths:
            raw = numpy.fromfile(path, dtype=numpy.uint8)
            if raw.size % record:
                raise ValueError(
                    f"{type(self).__name__}: {path} holds {raw.size} bytes, not "
                    f"a multiple of the {record}-byte record"
                )
            raw = raw.reshape(-1, record)
            labels.append(self._pick_label(raw[:, : self._label_bytes]))
            images.append(raw[:, self._label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        return numpy.ascontiguousarray(numpy.concatenate(images)), numpy.concatenate(labels).astype(
            numpy.int32
        )


class CIFAR100(CIFAR10):
    """CIFAR-100 (binary version): ``train.bin`` or ``test.bin`` under ``root`` or
    ``root/cifar-100-binary``; records carry a coarse and a fine label byte, and
    ``fine_label`` picks which one is the label."""

    _default_root = "~/.mxnet/datasets/cifar100"
    _subdir = "cifar-100-binary"
    _label_bytes = 2

    def __init__(
        self,
        root: str | None = None,
        fine_label: bool = False,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        self._fine_label = fine_label
        super().__init__(root, train, transform)

    def _names(self) -> Any:
        return ["train.bin" if self._train else "test.bin"]

    def _pick_label(self, labels: Any) -> Any:
        return labels[:, 1 if self._fine_label else 0]


class ImageFolderDataset(Dataset):
    """Images in one sub-folder per class: ``root/<class>/<image>``.

    Classes are the sorted sub-folder names (``synsets``); ``items`` lists
    ``(path, label)``. Images are decoded with Pillow (``pip install gluonlite[vision]``);
    ``flag=1`` gives RGB (H, W, 3), ``flag=0`` grayscale (H, W, 1), as uint8 ``mx.np`` arrays.
    """

    _exts = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff")

    def __init__(
        self, root: str, flag: int = 1, transform: Callable[..., Any] | None = None
    ) -> None:
        self._root = os.path.expanduser(os.fspath(root))
        if flag not in (0, 1):
            raise ValueError(
                f"ImageFolderDataset: flag must be 0 (grayscale) or 1 (color), got {flag!r}"
            )
        self._flag, self._transform = flag, transform
        if not os.path.isdir(self._root):
            raise FileNotFoundError(
                f"ImageFolderDataset: {self._root} is not a directory; "
                f"expected one sub-folder of images per class"
            )
        self.synsets: list[str] = []
        self.items: list[tuple[str, int]] = []
        for folder in sorted(os.listdir(self._root)):
            path = os.path.join(self._root, folder)
            if not os.path.isdir(path):
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for name in sorted(os.listdir(path)):
                if os.path.splitext(name)[1].lower() in self._exts:
                    self.items.append((os.path.join(path, name), label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> Any:
        try:
            from PIL import Image
        except ImportError as e:
            raise ImportError(
                "ImageFolderDataset decodes images with Pillow: pip install "
                "pillow (or gluonlite[vision])"
            ) from e
        path, label = self.items[idx]
        with Image.open(path) as img:
            pixels = numpy.asarray(img.convert("RGB" if self._flag else "L"), dtype=numpy.uint8)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        image = ndarray(pixels, cpu(0))
        if self._transform is not None:
            return self._transform(image, label)
        return image, label
