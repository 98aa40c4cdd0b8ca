"""Dropout's keep-mask, computed on the device that holds the data.

Element ``i`` of the mask (row-major over its shape: the data's shape with the shared
``axes`` set to 1) is kept when word ``i`` of the Philox4x32-10 stream of the call's 64-bit
key (``gluonlite/_philox.py``) is at least ``threshold(p) = round(p * 2**32)``; kept elements
hold ``scale(p, dtype)``, the storage type's nearest value to ``1 / (1 - p)``, dropped ones
+0. A word depends only on (key, i), so cpu devices (NumPy, ``numpy_mask``) and gpu devices
(``kernels/dropout.cu`` through ``_kernels.dropout_mask``) give bit-identical masks for one
key. The key is one 64-bit draw from ``gluonlite.random``'s generator per call, so
``mx.random.seed(s)`` fixes every mask on every device, and a GPU receives only the key: no
host-side random pass, no host-to-device copy of an activation-sized array.

>>> import numpy
>>> from gluonlite import _dropout
>>> t, s = _dropout.threshold(0.5), _dropout.scale(0.5, numpy.float32)
>>> _dropout.numpy_mask((2, 4), numpy.float32, key=7, threshold=t, scale=s)
array([[2., 2., 0., 0.],
       [0., 2., 0., 2.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy
import numpy.typing as npt

from . import _philox, random
from ._typing import RawArray
from .device import Device

__all__ = ["threshold", "scale", "numpy_mask", "mask"]

_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


def threshold(p: float) -> int:
    """The 32-bit threshold under which a word drops its element: ``round(p * 2**32)``.

    A word is uniform on [0, 2**32), so the drop probability is ``threshold / 2**32``, within
    2**-33 of ``p``. Clamped to 2**32 - 1 so that it stays a 32-bit value when ``p`` rounds
    up to 2**32 (``p`` within 2**-33 of 1): then one word in 2**32 still keeps its element.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    # p * 2**32 is exact for a float64 p (a power-of-two scaling), so the rounding here is
    # the only one, the same for every device.
    return min(round(float(p) * 2**32), 2**32 - 1)


def scale(p: float, dtype: npt.DTypeLike) -> numpy.generic:
    """``1 / (1 - p)`` in ``dtype``, rounded once from float64."""
    # [()] of a 0-d array is a NumPy scalar (NumPy's stubs say an array).
    return numpy.asarray(1.0 / (1.0 - float(p))).astype(dtype)[()]  # type: ignore[return-value]


def numpy_mask(
    shape: Sequence[int], dtype: npt.DTypeLike, key: int, threshold: int, scale: numpy.generic
) -> numpy.ndarray[Any, Any]:
    """The mask on the host, bit for bit what ``kernels/dropout.cu`` writes.

    Built from raw bits as the kernel is (``scale``'s bits where kept, all-zero bits, +0,
    elsewhere), so any 2-, 4- or 8-byte type gives the kernel's exact result, bfloat16 passed
    as uint16 bits included.
    """
    dtype = numpy.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    bits = numpy.dtype(f"u{dtype.itemsize}")
    words = _philox.stream(key, int(numpy.prod(shape, dtype=numpy.int64)))
    scale_bits = numpy.asarray(scale, dtype=dtype).view(bits)
    kept = words >= numpy.uint32(threshold)
    return numpy.where(kept, scale_bits, bits.type(0)).view(dtype).reshape(shape)


def mask(shape: Sequence[int], dtype: npt.DTypeLike, device: Device, p: float) -> RawArray:
    """A fresh mask for one dropout call on ``device`` (a NumPy or CuPy array; call it inside
    ``_backend.on(device)``), drawing the call's key from gluonlite's generator."""
    dtype = numpy.dtype(dtype)
    if dtype.name not in _FLOAT_NAMES:
        raise TypeError(
            f"dropout: expected a floating-point array ({', '.join(_FLOAT_NAMES)}), got {dtype}"
        )
    # Drawn before anything device-specific, so the generator advances by exactly one draw
    # per call on every device and later draws stay in step across replicas.
    key = random.next_key()
    t, s = threshold(p), scale(p, dtype)
    if device.device_type == "cpu":
        return numpy_mask(shape, dtype, key, t, s)
    from . import _kernels

    return _kernels.dropout_mask(shape, dtype, key, t, s)
