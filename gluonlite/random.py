"""Random numbers: ``mx.random.seed`` (which also seeds ``mx.np.random``) and
``mx.random.uniform/normal/randint``.

Values are drawn on the host from one NumPy generator and then placed on the device, so the
same seed gives the same values whatever the device (initializers rely on this: replicas
on cpu(0) and gpu(1) start bit-identical). Dropout draws only a 64-bit key here per call
(``next_key``) and computes its mask from it on the device (``gluonlite/_dropout.py``).

>>> import gluonlite as mx
>>> mx.random.seed(7)
>>> a = mx.np.random.uniform(size=(2,))
>>> mx.random.seed(7)
>>> bool((a.asnumpy() == mx.np.random.uniform(size=(2,), device=mx.cpu(1)).asnumpy()).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy
import numpy.typing as npt

from . import _backend
from ._typing import DTypeLike
from .device import Device, as_device
from .ndarray import ndarray

if TYPE_CHECKING:
    from typing import TypeAlias

# The bounds and moments the draws take: a number, or an array of them (broadcast with size).
_Floats: TypeAlias = Union[float, Sequence[float], npt.NDArray[Any], ndarray]
_Ints: TypeAlias = Union[int, Sequence[int], npt.NDArray[Any], ndarray]
_Size: TypeAlias = Union[int, tuple[int, ...], None]

__all__ = ["seed", "uniform", "normal", "randint", "generator"]

_generator = numpy.random.default_rng()


def seed(seed_state: int, device: Device | str = "all", ctx: Device | str | None = None) -> None:
    """Seed every random draw gluonlite makes (initializers, ``np.random``, dropout).

    One host stream serves every device (values are drawn on the host, then placed), so
    MXNet's ``device``/``ctx`` argument is accepted for compatibility and seeds them all.
    """
    global _generator
    _generator = numpy.random.default_rng(seed_state)


def generator() -> numpy.random.Generator:
    """The host generator behind all of gluonlite's randomness."""
    return _generator


def next_key() -> int:
    """One 64-bit key for a counter-based generator (dropout's mask), from the host
    generator, so that ``seed`` fixes it too."""
    return int(_generator.integers(0, 2**64, dtype=numpy.uint64))


def _place(host: npt.ArrayLike, dtype: DTypeLike, device: Device | None) -> ndarray:
    device = as_device(device)
    dtype = numpy.dtype(numpy.float32) if dtype is None else _backend.dtype_of(dtype)
    host = numpy.asarray(host).astype(dtype, copy=False)
    return ndarray(_backend.transfer(host, device.__class__("cpu", 0), device), device)


def uniform(
    low: _Floats = 0.0,
    high: _Floats = 1.0,
    size: _Size = None,
    dtype: DTypeLike = None,
    device: Device | None = None,
) -> ndarray:
    """Samples from U[low, high) (float32 by default)."""
    return _place(_generator.uniform(low, high, size), dtype, device)


def normal(
    loc: _Floats = 0.0,
    scale: _Floats = 1.0,
    size: _Size = None,
    dtype: DTypeLike = None,
    device: Device | None = None,
) -> ndarray:
    """Samples from N(loc, scale**2) (float32 by default)."""
    return _place(_generator.normal(loc, scale, size), dtype, device)


def randint(
    low: _Ints,
    high: _Ints | None = None,
    size: _Size = None,
    dtype: DTypeLike = "int64",
    device: Device | None = None,
) -> ndarray:
    """Integers in [low, high) (int64 by default)."""
    return _place(_generator.integers(low, high, size), dtype, device)
