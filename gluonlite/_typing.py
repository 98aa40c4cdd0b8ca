"""Type aliases shared by gluonlite's annotations (no runtime role beyond documentation).

``RawArray`` is a NumPy or a CuPy array; CuPy ships no type information, so it is ``Any``.
This module imports nothing of gluonlite above ``device.py`` (the aliases that name higher
classes live next to them: ``ndarray.ArrayLike``, ``initializer.InitLike``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy.typing as npt

from .device import Device

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = ["DTypeLike", "DeviceLike", "DevicesLike", "RawArray", "ShapeLike", "AxisLike", "StrPath"]

RawArray: TypeAlias = Any
DTypeLike: TypeAlias = Union[npt.DTypeLike, None]
DeviceLike: TypeAlias = Union[Device, None]
DevicesLike: TypeAlias = Union[Device, Sequence[Device], None]
ShapeLike: TypeAlias = Union[int, Sequence[int]]
AxisLike: TypeAlias = Union[int, Sequence[int], None]
StrPath: TypeAlias = Union[str, "os.PathLike[str]"]
