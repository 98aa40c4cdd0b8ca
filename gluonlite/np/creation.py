"""Array creation with MXNet's defaults: float32 unless ``dtype`` says otherwise, on
``device`` (the current device by default; ``ctx=`` is the deprecated spelling).

>>> import gluonlite as mx
>>> mx.np.linspace(0, 1, 3, device=mx.cpu(1))
array([0. , 0.5, 1. ], device=cpu(1))
"""

from __future__ import annotations

import numpy

from .. import _backend
from .._compat import resolve_ctx
from ..device import as_device, Device
from ..ndarray import (
    ndarray,
    arange,
    array,
    empty,
    full,
    full_like,
    ones,
    ones_like,
    zeros,
    zeros_like,
    from_dlpack,
)
from collections.abc import Sequence
from typing import Any
from .._typing import DTypeLike, ShapeLike

__all__ = [
    "array",
    "asarray",
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "from_dlpack",
    "eye",
    "identity",
    "tri",
    "linspace",
    "logspace",
    "indices",
    "hanning",
    "hamming",
    "blackman",
    "tril_indices",
    "triu_indices",
]

_F32 = numpy.dtype(numpy.float32)


def _make(
    fn_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dtype: DTypeLike,
    device: Device | None,
    ctx: Device | None,
    default: numpy.dtype[Any] | None = _F32,
) -> Any:
    """``xp.fn_name(*args, dtype=..., **kwargs)`` on the device meant by device/ctx."""
    device = as_device(resolve_ctx(device, ctx, stacklevel=5))
    xp = _backend.xp(device)
    dt = default if dtype is None else _backend.dtype_of(dtype)
    with _backend.on(device):
        try:
            if dt is None:
                raw = getattr(xp, fn_name)(*args, **kwargs)
            else:
                raw = getattr(xp, fn_name)(*args, dtype=dt, **kwargs)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{fn_name}: {e}") from None
    if isinstance(raw, tuple):
        return tuple(ndarray(r, device) for r in raw)
    return ndarray(raw, device)


def _window(
    fn_name: str, m: int, dtype: DTypeLike, device: Device | None, ctx: Device | None
) -> ndarray:
    device = as_device(resolve_ctx(device, ctx, stacklevel=5))
    dt = _F32 if dtype is None else _backend.dtype_of(dtype)
    xp = _backend.xp(device)
    with _backend.on(device):
        return ndarray(getattr(xp, fn_name)(m).astype(dt), device)


def asarray(
    obj: Any, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    """``obj`` as an array: itself when already an ndarray on ``device`` with ``dtype``."""
    device = resolve_ctx(device, ctx)
    if (
        isinstance(obj, ndarray)
        and (device is None or as_device(device) == obj.device)
        and (dtype is None or _backend.dtype_of(dtype) == obj.dtype)
    ):
        return obj
    return array(obj, dtype=dtype, device=device)


def empty_like(
    prototype: ndarray,
    dtype: DTypeLike = None,
    order: str = "C",
    subok: bool = False,
    shape: ShapeLike | None = None,
    device: Device | None = None,
) -> ndarray:
    return empty(
        prototype.shape if shape is None else shape,
        dtype=prototype.dtype if dtype is None else dtype,
        device=prototype.device if device is None else device,
    )


def eye(
    N: int,
    M: int | None = None,
    k: int = 0,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _make("eye", (N, M, k), {}, dtype, device, ctx)  # type: ignore[no-any-return]


def identity(
    n: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    return _make("identity", (n,), {}, dtype, device, ctx)  # type: ignore[no-any-return]


def tri(
    N: int,
    M: int | None = None,
    k: int = 0,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _make("tri", (N, M, k), {}, dtype, device, ctx)  # type: ignore[no-any-return]


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: DTypeLike = None,
    axis: int = 0,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray | tuple[ndarray, float]:
    out = _make(
        "linspace", (start, stop, num, endpoint, retstep), {"axis": axis}, dtype, device, ctx
    )
    if retstep:  # the step is a Python float, as NumPy returns it
        return out[0], float(out[1].item())
    return out  # type: ignore[no-any-return]


def logspace(
    start: float,
    stop: float,
    num: int = 50,
    endpoint: bool = True,
    base: float = 10.0,
    dtype: DTypeLike = None,
    axis: int = 0,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    return _make(  # type: ignore[no-any-return]
        "logspace",
        (start, stop, num, endpoint, base),
        {"axis": axis},
        dtype,
        device,
        ctx,
    )


def indices(
    dimensions: Sequence[int],
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    """Grid indices (int64 unless ``dtype`` says otherwise)."""
    return _make(  # type: ignore[no-any-return]
        "indices",
        (tuple(dimensions),),
        {},
        dtype,
        device,
        ctx,
        default=numpy.dtype(numpy.int64),
    )


def hanning(
    M: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    return _window("hanning", M, dtype, device, ctx)


def hamming(
    M: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    return _window("hamming", M, dtype, device, ctx)


def blackman(
    M: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    return _window("blackman", M, dtype, device, ctx)


def tril_indices(
    n: int,
    k: int = 0,
    m: int | None = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> tuple[ndarray, ndarray]:
    """Indices of the lower triangle of an (n, m) array: a tuple of two int64 arrays."""
    return _make(  # type: ignore[no-any-return]
        "tril_indices",
        (n, k, m),
        {},
        None,
        device,
        ctx,
        default=None,
    )


def triu_indices(
    n: int,
    k: int = 0,
    m: int | None = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> tuple[ndarray, ndarray]:
    """Indices of the upper triangle of an (n, m) array: a tuple of two int64 arrays."""
    return _make(  # type: ignore[no-any-return]
        "triu_indices",
        (n, k, m),
        {},
        None,
        device,
        ctx,
        default=None,
    )
