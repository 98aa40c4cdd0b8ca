"""``mx.gluon.utils``: splitting a batch over devices for data-parallel training.

>>> import gluonlite as mx
>>> parts = mx.gluon.utils.split_and_load(mx.np.arange(6).reshape(3, 2),
...                                       [mx.cpu(0), mx.cpu(1)], even_split=False)
>>> [(p.shape, p.device) for p in parts]
[((2, 2), cpu(0)), ((1, 2), cpu(1))]
"""

from __future__ import annotations

import math
import warnings

import numpy

from .. import _backend
from .._compat import resolve_ctx
from ..device import as_devices
from ..ndarray import array, ndarray
from collections.abc import Callable
from typing import Any

__all__ = ["split_data", "split_and_load", "clip_global_norm", "HookHandle"]


def _bounds(
    size: int, num_slice: int, batch_axis: int, shape: Any, even_split: bool
) -> list[tuple[int, int]]:
    """Start/stop of each slice: the first ``size % num_slice`` slices get one extra row."""
    if num_slice < 1:
        raise ValueError(f"split_data: num_slice must be >= 1, got {num_slice}")
    if size < num_slice:
        raise ValueError(
            f"split_data: cannot split data of shape {tuple(shape)} into "
            f"{num_slice} slices along axis {batch_axis}: only {size} rows"
        )
    if even_split and size % num_slice:
        raise ValueError(
            f"split_data: data of shape {tuple(shape)} cannot be split evenly into "
            f"{num_slice} slices along axis {batch_axis}; use a batch size that is a "
            f"multiple of {num_slice} or even_split=False"
        )
    each, extra = divmod(size, num_slice)
    sizes = [each + 1] * extra + [each] * (num_slice - extra)
    stops = numpy.cumsum(sizes).tolist()
    return list(zip([0] + stops[:-1], stops))


def split_data(
    data: Any, num_slice: int, batch_axis: int = 0, even_split: bool = True
) -> list[Any]:
    """Split ``data`` (an ndarray or NumPy array) into ``num_slice`` parts along
    ``batch_axis``; with ``even_split=False`` the first parts get one extra row where the
    size does not divide evenly. Slices of an ndarray are differentiable views."""
    batch_axis = batch_axis % data.ndim
    size = data.shape[batch_axis]
    lead = (slice(None),) * batch_axis
    return [
        data[lead + (slice(start, stop),)]
        for start, stop in _bounds(size, num_slice, batch_axis, data.shape, even_split)
    ]


def split_and_load(
    data: Any,
    devices: Any = None,
    batch_axis: int = 0,
    even_split: bool = True,
    ctx_list: Any = None,
) -> list[Any]:
    """Split ``data`` along ``batch_axis`` and put part ``i`` on ``devices[i]``.

    Args:
        data: an ndarray, a NumPy array or anything ``mx.np.array`` accepts. A NumPy array
            is split on the host, so each part is copied once, straight to its device.
        devices: a Device or a list of them (``ctx_list=`` is the deprecated name).
        batch_axis, even_split: see ``split_data``.

    Returns:
        A list of ndarrays, one per device, in the order of ``devices``.
    """
    devices = resolve_ctx(devices, ctx_list)
    if devices is None:
        raise TypeError(
            "split_and_load: missing the devices to load onto, e.g. [mx.cpu(0), mx.cpu(1)]"
        )
    devices = as_devices(devices)
    if not isinstance(data, (ndarray, numpy.ndarray)):
        # Python data follows mx.np.array's rules (float32 for numbers).
        data = array(data, device=devices[0])
    parts = [data] if len(devices) == 1 else split_data(data, len(devices), batch_axis, even_split)
    return [
        p.to_device(d) if isinstance(p, ndarray) else array(p, device=d)
        for p, d in zip(parts, devices)
    ]


def clip_global_norm(arrays: list[ndarray], max_norm: float, check_isfinite: bool = True) -> float:
    """Scale ``arrays`` in place so that their joint L2 norm is at most ``max_norm``.

    Typically one device's gradients, between ``trainer.allreduce_grads()`` and
    ``trainer.update()``, called once per device as MXNet scripts do (the Trainer updates
    from the first device's gradients, so clipping those is enough). The arrays may live
    on different devices; the norm is then over all of them.

    Returns:
        The norm before clipping, as a float (NaN or inf when some value is; then nothing is
        scaled, and with ``check_isfinite`` a warning says so).

    >>> import gluonlite as mx
    >>> g = [mx.np.array([3.0, 0.0]), mx.np.array([4.0], device=mx.cpu(1))]
    >>> mx.gluon.utils.clip_global_norm(g, 1.0)
    5.0
    >>> g[1]
    array([0.8], device=cpu(1))
    """
    if not arrays:
        raise ValueError("clip_global_norm: got no arrays")
    total = 0.0
    for a in arrays:
        with _backend.on(a.device):
            # Squares summed in float64 on the array's device; one number crosses over.
            total += float((a._data.astype(numpy.float64) ** 2).sum())
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        if check_isfinite:
            warnings.warn(
                f"clip_global_norm: the norm is {norm}; the arrays were left as they are",
                UserWarning,
                stacklevel=2,
            )
        return norm
    if norm > max_norm:
        scale = max_norm / norm
        for a in arrays:
            with _backend.on(a.device):
                a._data *= a._data.dtype.type(scale)
    return norm


class HookHandle:
    """What ``register_forward_hook`` and friends return: ``detach()`` removes the hook.

    Also a context manager that detaches on exit, so a hook can live for one ``with`` block.

    >>> import gluonlite as mx
    >>> net = mx.gluon.nn.Dense(2, in_units=3)
    >>> net.initialize()
    >>> seen = []
    >>> with net.register_forward_hook(lambda blk, args, out: seen.append(out.shape)):
    ...     _ = net(mx.np.ones((4, 3)))
    >>> _ = net(mx.np.ones((4, 3)))
    >>> seen
    [(4, 2)]
    """

    _next_id = 0

    def __init__(self, hooks: dict[int, Callable[..., Any]], hook: Callable[..., Any]) -> None:
        # The owner's dict of hooks is held by reference: the handle removes its entry.
        self._hooks: dict[int, Callable[..., Any]] | None = hooks
        self.id = HookHandle._next_id
        HookHandle._next_id += 1
        hooks[self.id] = hook

    def detach(self) -> None:
        """Remove the hook; detaching twice does nothing."""
        if self._hooks is not None:
            self._hooks.pop(self.id, None)
            self._hooks = None

    def __enter__(self) -> "HookHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()
