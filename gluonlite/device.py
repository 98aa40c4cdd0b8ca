"""Devices: ``cpu(i)`` backed by NumPy, ``gpu(i)`` backed by CuPy device ``i``.

Several ``cpu(i)`` are distinct devices (each holds its own copies), so every multi-device
code path runs on a machine without a GPU.

>>> import gluonlite as mx
>>> mx.cpu(1)
cpu(1)
>>> with mx.cpu(1):
...     mx.device.current_device()
cpu(1)
>>> mx.device.current_device()
cpu(0)
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import _cupy

__all__ = [
    "Device",
    "cpu",
    "gpu",
    "current_device",
    "num_gpus",
    "as_device",
    "as_devices",
    "check_available",
    "gpu_memory_info",
]

_DEVICE_TYPES = ("cpu", "gpu")


@dataclasses.dataclass(frozen=True, eq=False)
class Device:
    """A device: ``Device('cpu', 0)`` or ``Device('gpu', 1)``; equal and hashed by value.

    Used as a context manager it becomes the current device for the block (per thread and
    per asyncio task, since it lives in a ``contextvars`` variable); nesting restores.
    """

    device_type: str
    device_id: int = 0

    if TYPE_CHECKING:  # set in __post_init__, not a dataclass field
        _key: tuple[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.device_type not in _DEVICE_TYPES:
            raise ValueError(
                f"Device type must be one of {_DEVICE_TYPES}, got {self.device_type!r}"
            )
        if (
            not isinstance(self.device_id, int)
            or isinstance(self.device_id, bool)
            or self.device_id < 0
        ):
            raise ValueError(f"Device id must be a non-negative int, got {self.device_id!r}")
        # Devices key the replica, gradient and state tables that every op consults; the
        # dataclass-generated __eq__/__hash__ build two tuples per comparison, this one once.
        object.__setattr__(self, "_key", (self.device_type, self.device_id))

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not Device:
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"{self.device_type}({self.device_id})"

    __str__ = __repr__

    def __enter__(self) -> "Device":
        token = _current.set(self)
        _tokens.set(_tokens.get() + (token,))
        return self

    def __exit__(self, *exc: object) -> None:
        tokens = _tokens.get()
        _tokens.set(tokens[:-1])
        _current.reset(tokens[-1])

    def empty_cache(self) -> None:
        """Release this device's cached, unused memory back to the driver (no-op on CPU)."""
        if self.device_type == "gpu":
            check_available(self)
            cupy = _cupy.module()
            # CuPy's pool frees the *current* device's blocks: make this device current.
            with cupy.cuda.Device(self.device_id):
                cupy.get_default_memory_pool().free_all_blocks()


def cpu(device_id: int = 0) -> Device:
    """The CPU device ``device_id`` (NumPy-backed)."""
    return Device("cpu", device_id)


def gpu(device_id: int = 0) -> Device:
    """The GPU device ``device_id`` (CuPy-backed). Checked when first used, not here."""
    return Device("gpu", device_id)


_current: contextvars.ContextVar[Device] = contextvars.ContextVar(
    "gluonlite_device", default=Device("cpu", 0)
)
# Tokens of the enclosing ``with device:`` blocks, so that __exit__ restores in order
# although Device itself is immutable.
_tokens: contextvars.ContextVar[tuple[contextvars.Token[Device], ...]] = contextvars.ContextVar(
    "gluonlite_device_tokens", default=()
)


def current_device() -> Device:
    """The device set by the innermost ``with device:`` block; ``cpu(0)`` by default."""
    return _current.get()


@functools.lru_cache(maxsize=None)
def num_gpus() -> int:
    """Number of visible GPUs: 0 when CuPy is missing, no driver is found or no GPU is there
    (emulated ones under ``GLUONLITE_EMULATE_GPUS``, see ``_cupy``). Never raises."""
    return _cupy.device_count()


def check_available(device: Device) -> None:
    """Raise ``RuntimeError`` unless ``device`` can be used here."""
    if device.device_type == "gpu":
        n = num_gpus()
        if device.device_id >= n:
            _cupy.module()  # a missing CuPy is the more useful message
            plural = "GPU is" if n == 1 else "GPUs are"
            raise RuntimeError(f"{device} requested, but {n} {plural} visible")


def as_device(device: Device | None = None) -> Device:
    """Normalise a device argument: ``None`` means the current device."""
    if device is None:
        return current_device()
    if isinstance(device, Device):
        return device
    raise TypeError(f"Expected a Device such as mx.cpu(0) or mx.gpu(0), got {device!r}")


def as_devices(devices: Device | Iterable[Device] | None = None) -> list[Device]:
    """Normalise a device-or-list argument to a non-empty list without duplicates."""
    if devices is None or isinstance(devices, Device):
        return [as_device(devices)]
    result = [as_device(d) for d in devices]
    if not result:
        raise ValueError("Expected at least one device, got an empty list")
    seen: set[Device] = set()
    for d in result:
        if d in seen:
            raise ValueError(f"Device {d} is listed twice in {result}")
        seen.add(d)
    return result


def gpu_memory_info(device_id: int = 0) -> tuple[int, int]:
    """``(free, total)`` bytes of GPU ``device_id``'s memory, as the driver reports them.

    Raises ``RuntimeError`` when that GPU is not visible (no GPU, no CuPy, id too large).
    """
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 0:
        raise ValueError(
            f"gpu_memory_info: device_id must be a non-negative int, got {device_id!r}"
        )
    check_available(Device("gpu", device_id))
    cupy = _cupy.module()
    with cupy.cuda.Device(device_id):
        free, total = cupy.cuda.runtime.memGetInfo()
    return int(free), int(total)
