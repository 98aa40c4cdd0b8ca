"""Type aliases shared by gluonlite's annotations (no runtime role beyond documentation).

``RawArray`` is a NumPy or a CuPy array; CuPy ships no type information, so it is ``Any``.
``ArrayLike`` is what an ``mx.np`` function accepts as an array: a gluonlite ``ndarray``
or anything NumPy turns into an array (scalars, nested sequences, NumPy arrays).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy.typing as npt

from .device import Device

if TYPE_CHECKING:
    from typing import TypeAlias

    from .initializer import Initializer
    from .ndarray import ndarray

__all__ = ["ArrayLike", "DTypeLike", "DeviceLike", "DevicesLike", "InitLike", "RawArray",
           "ShapeLike", "AxisLike", "StrPath"]

RawArray: TypeAlias = Any
ArrayLike: TypeAlias = Union["ndarray", npt.ArrayLike]
DTypeLike: TypeAlias = Union[npt.DTypeLike, None]
DeviceLike: TypeAlias = Union[Device, None]
DevicesLike: TypeAlias = Union[Device, Sequence[Device], None]
InitLike: TypeAlias = Union["Initializer", str, None]
ShapeLike: TypeAlias = Union[int, Sequence[int]]
AxisLike: TypeAlias = Union[int, Sequence[int], None]
StrPath: TypeAlias = Union[str, "os.PathLike[str]"]
