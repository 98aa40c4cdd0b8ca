"""Where benchmarks run: the ``--device`` argument, resolved to targets, and their clocks.

A :class:`Target` is one kind of device to benchmark: a ``primary`` device for the
single-device suites (fc, retain, param, step) and the ``devices`` that the multi-device
suites (replicate, and param's ``data(device)``) spread replicas over. Several ``cpu(i)``
are distinct devices backed by NumPy, so the CPU target always has several.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

from .. import _backend
from ..device import Device, cpu, gpu, num_gpus
from .timing import CupyEventClock, HostClock

__all__ = [
    "Target",
    "DeviceError",
    "resolve",
    "parse_device",
    "sync_all",
    "clock_for",
    "CPU_REPLICAS",
]

# Virtual CPU devices: enough for replicate's N = 1, 2, 4 with disjoint source and target
# sets (reset_device moves cpu(0..N-1) <-> cpu(N..2N-1)).
CPU_REPLICAS = 8


class DeviceError(ValueError):
    """A ``--device`` that names no usable device; the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
    primary: Device
    devices: tuple[Device, ...]

    @property
    def kind(self) -> str:
        return self.primary.device_type

    @property
    def name(self) -> str:
        return str(self.primary)


def _cpu_target() -> Target:
    return Target(cpu(0), tuple(cpu(i) for i in range(CPU_REPLICAS)))


def _why_no_gpu() -> str:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'gluonlite[cuda12]' or '[cuda13]')"
    return "CuPy is installed but no CUDA device is visible (gluonlite.num_gpus() is 0)"


def resolve(spec: str) -> list[Target]:
    """Targets for a ``--device`` value: ``cpu``, ``gpu``, ``all``, ``gpu(N)`` or ``cpu(N)``.

    ``gpu`` means every visible GPU (gpu(0) for single-device suites); ``all`` the CPU plus,
    where present, the GPUs. Raises :class:`DeviceError` for a GPU that is not there.
    """
    spec = spec.strip().lower()
    n = num_gpus()
    gpus = tuple(gpu(i) for i in range(n))
    if spec == "cpu":
        return [_cpu_target()]
    if spec == "all":
        return [_cpu_target()] + ([Target(gpus[0], gpus)] if n else [])
    if spec == "gpu":
        if not n:
            raise DeviceError(
                f"--device gpu: no GPU to benchmark: {_why_no_gpu()}. Use --device cpu."
            )
        return [Target(gpus[0], gpus)]
    try:
        device = parse_device(spec)
    except ValueError:
        raise DeviceError(
            f"--device {spec!r}: expected cpu, gpu, all, 'gpu(N)' or 'cpu(N)'"
        ) from None
    index = device.device_id
    if device.device_type == "cpu":
        return [
            Target(device, (device,) + tuple(cpu(i) for i in range(CPU_REPLICAS) if i != index))
        ]
    if index >= n:
        reason = _why_no_gpu() if not n else f"only {n} GPU(s) are visible"
        raise DeviceError(f"--device {spec}: gpu({index}) is not available: {reason}")
    return [Target(device, (device,))]


def parse_device(text: str) -> Device:
    """``'gpu(1)'`` -> ``gpu(1)``: the inverse of ``str(Device)``, for JSON case specs."""
    match = re.fullmatch(r"\s*(cpu|gpu)\((\d+)\)\s*", text)
    if match is None:
        raise ValueError(f"not a device: {text!r} (expected e.g. 'cpu(0)' or 'gpu(1)')")
    return Device(match.group(1), int(match.group(2)))


def sync_all(devices: Iterable[Device]) -> Callable[[], None] | None:
    """A function waiting for all queued work on ``devices`` (None when all are CPUs)."""
    gpus = [d for d in devices if d.device_type == "gpu"]
    if not gpus:
        return None

    def sync() -> None:
        for d in gpus:
            _backend.synchronize(d)

    return sync


def clock_for(devices: Iterable[Device]) -> CupyEventClock | HostClock:
    """The clock for work on ``devices``: CUDA events for one GPU, else host time + sync."""
    listed = list(devices)
    if len(listed) == 1 and listed[0].device_type == "gpu":
        return CupyEventClock(listed[0].device_id)
    return HostClock(sync_all(listed))
