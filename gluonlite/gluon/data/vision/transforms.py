"""Image transforms (MXNet's ``vision.transforms``), applied per sample by datasets'
``transform_first``; each is a ``Block`` so it composes and pickles into DataLoader workers.

Images are ``(H, W, C)`` (or ``(N, H, W, C)``) until ``ToTensor`` turns them into float32
``(C, H, W)`` in [0, 1]. The transforms compute on the array's device and return ``mx.np``
arrays; they are not recorded by autograd.

>>> import numpy
>>> import gluonlite as mx
>>> from gluonlite.gluon.data.vision import transforms
>>> t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
>>> t(mx.np.array(numpy.full((2, 2, 3), 255, dtype=numpy.uint8))).shape
(3, 2, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numbers
import random

import numpy

from .... import _backend
from ....device import cpu, Device
from ....ndarray import ndarray
from ...block import Block
from types import ModuleType
from ...._typing import RawArray, DTypeLike
from collections.abc import Sequence

__all__ = [
    "Compose",
    "Cast",
    "ToTensor",
    "Normalize",
    "Resize",
    "CenterCrop",
    "RandomFlipLeftRight",
    "RandomFlipTopBottom",
]


def _unwrap(owner: str, x: ndarray) -> tuple[ModuleType, RawArray, Device]:
    """``(xp, raw, device)`` of an ndarray or a NumPy array."""
    if isinstance(x, ndarray):
        return x._xp, x._data, x.device
    if isinstance(x, numpy.ndarray):
        return numpy, x, cpu(0)
    raise TypeError(f"{owner}: expects an mx.np.ndarray or a NumPy array, got {type(x).__name__}")


def _check_image(owner: str, raw: RawArray, ndims: tuple[int, ...] = (3, 4)) -> None:
    if raw.ndim not in ndims:
        raise ValueError(
            f"{owner}: expects an image of {' or '.join(map(str, ndims))} axes, "
            f"got shape {tuple(raw.shape)}"
        )


class _Transform(Block):
    """A transform: ``forward`` maps one raw array to another on its device."""

    if TYPE_CHECKING:  # each subclass transforms the raw array

        def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray: ...

    def forward(self, x: ndarray, *args: Any) -> Any:
        xp, raw, device = _unwrap(type(self).__name__, x)
        with _backend.on(device):
            out = ndarray(self._apply(xp, raw), device)
        return (out,) + args if args else out


class Compose(Block):
    """Apply ``transforms`` in order (Blocks or plain functions)."""

    def __init__(self, transforms: Sequence[Block]) -> None:
        super().__init__()
        self._transforms = list(transforms)
        for i, t in enumerate(self._transforms):
            if not callable(t):
                raise TypeError(f"Compose: transform {i} is not callable ({type(t).__name__})")
            if isinstance(t, Block):
                self.register_child(t, str(i))

    def forward(self, x: ndarray, *args: Any) -> Any:
        for t in self._transforms:
            x = t(x)
        return (x,) + args if args else x


class Cast(_Transform):
    """Cast to ``dtype``."""

    def __init__(self, dtype: DTypeLike = "float32") -> None:
        super().__init__()
        self._dtype = numpy.dtype(dtype)

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        return raw.astype(self._dtype)


class ToTensor(_Transform):
    """``(H, W, C)`` uint8 in [0, 255] -> ``(C, H, W)`` float32 in [0, 1] (batched too)."""

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        _check_image("ToTensor", raw, (2, 3, 4))
        if raw.ndim == 2:
            raw = raw[:, :, None]
        out = xp.moveaxis(raw, -1, -3).astype(xp.float32)
        return xp.ascontiguousarray(out / xp.float32(255.0))


class Normalize(_Transform):
    """``(x - mean[c]) / std[c]`` on ``(C, H, W)`` (or ``(N, C, H, W)``) float tensors."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self._mean, self._std = mean, std

    def _per_channel(self, xp: ModuleType, value: Any, channels: int, what: str) -> RawArray:
        v = xp.asarray(value, dtype=xp.float32).reshape(-1)
        if v.size not in (1, channels):
            raise ValueError(f"Normalize: {what} has {v.size} values for {channels} channels")
        return v.reshape(-1, 1, 1)

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        _check_image("Normalize", raw)
        c = raw.shape[-3]
        mean = self._per_channel(xp, self._mean, c, "mean")
        std = self._per_channel(xp, self._std, c, "std")
        return ((raw - mean) / std).astype(raw.dtype if raw.dtype.kind == "f" else xp.float32)


def _size_wh(owner: Any, size: int) -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, numbers.Integral) for s in size)
    ):
        return int(size[0]), int(size[1])
    raise TypeError(f"{owner}: size must be an int or a (width, height) pair, got {size!r}")


def _resize(xp: ModuleType, raw: RawArray, width: int, height: int, interpolation: int) -> RawArray:
    """Resize the (H, W) axes of ``(..., H, W, C)``: nearest (0) or bilinear (else), with
    pixel centres aligned as OpenCV does."""
    in_h, in_w = raw.shape[-3], raw.shape[-2]

    def coords(n_out: int, n_in: int) -> Any:
        src = (xp.arange(n_out, dtype=xp.float64) + 0.5) * (n_in / n_out) - 0.5
        return xp.clip(src, 0, n_in - 1)

    ys, xs = coords(height, in_h), coords(width, in_w)
    if interpolation == 0:
        yi = xp.clip(xp.floor(ys + 0.5).astype(xp.int64), 0, in_h - 1)
        xi = xp.clip(xp.floor(xs + 0.5).astype(xp.int64), 0, in_w - 1)
        return raw[..., yi, :, :][..., :, xi, :]
    y0, x0 = xp.floor(ys).astype(xp.int64), xp.floor(xs).astype(xp.int64)
    y1, x1 = xp.minimum(y0 + 1, in_h - 1), xp.minimum(x0 + 1, in_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = raw.astype(xp.float64)
    top = f[..., y0, :, :][..., :, x0, :] * (1 - wx) + f[..., y0, :, :][..., :, x1, :] * wx
    bottom = f[..., y1, :, :][..., :, x0, :] * (1 - wx) + f[..., y1, :, :][..., :, x1, :] * wx
    out = top * (1 - wy) + bottom * wy
    if raw.dtype.kind in "ui":
        info = numpy.iinfo(raw.dtype)
        out = xp.clip(xp.rint(out), info.min, info.max)
    return out.astype(raw.dtype)


class Resize(_Transform):
    """Resize ``(H, W, C)`` images to ``size`` = (width, height) or a square.

    With ``keep_ratio`` and an int ``size``, the shorter side becomes ``size``.
    ``interpolation``: 0 nearest, otherwise bilinear.
    """

    def __init__(self, size: int, keep_ratio: bool = False, interpolation: int = 1) -> None:
        super().__init__()
        self._size = _size_wh("Resize", size)
        self._keep_ratio = keep_ratio and isinstance(size, numbers.Integral)
        self._interpolation = interpolation

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        _check_image("Resize", raw)
        width, height = self._size
        if self._keep_ratio:
            h, w = raw.shape[-3], raw.shape[-2]
            short = self._size[0]
            if h < w:
                height, width = short, max(1, round(w * short / h))
            else:
                width, height = short, max(1, round(h * short / w))
        return _resize(xp, raw, width, height, self._interpolation)


class CenterCrop(_Transform):
    """Crop the central ``size`` = (width, height) region of ``(H, W, C)`` images."""

    def __init__(self, size: int, interpolation: int = 1) -> None:
        super().__init__()
        self._size = _size_wh("CenterCrop", size)

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        _check_image("CenterCrop", raw)
        width, height = self._size
        h, w = raw.shape[-3], raw.shape[-2]
        if height > h or width > w:
            raise ValueError(
                f"CenterCrop: crop {width}x{height} (width x height) is larger "
                f"than the image {w}x{h}"
            )
        top, left = (h - height) // 2, (w - width) // 2
        return raw[..., top : top + height, left : left + width, :]


class RandomFlipLeftRight(_Transform):
    """Mirror ``(H, W, C)`` images horizontally with probability ``p`` (Python's random)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p = p

    def _apply(self, xp: ModuleType, raw: RawArray) -> RawArray:
        _check_image(type(self).__name__, raw)
        return xp.flip(raw, axis=self._axis).copy() if random.random() < self._p else raw

    _axis = -2


class RandomFlipTopBottom(RandomFlipLeftRight):
    """Flip ``(H, W, C)`` images vertically with probability ``p``."""

    _axis = -3
