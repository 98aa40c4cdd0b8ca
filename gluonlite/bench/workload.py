"""The suite contract: cases as plain dicts, workloads per implementation, one row per case.

A suite module defines ``NAME``, ``TITLE``, ``METRIC`` (a :class:`report.Metric`),
``SIZE_LABEL`` and three functions:

- ``specs(target, quick) -> list[dict]``: the cases, JSON-ready (the MXNet runner receives
  the very same dicts); raises :class:`Skip` when the suite cannot run on ``target``.
- ``describe(spec) -> (label, series, size)``: table label, plot series and x coordinate.
- ``implementations(spec, target) -> {name: builder}``: ``builder()`` returns a
  :class:`Workload` to time here, or a :class:`Remote` one timed in another process (the
  MXNet peer). ``"gluonlite"`` comes first; peers that are not importable are left out.

All implementations of a case are built and calibrated first, then their repeats are
interleaved (see :func:`timing.interleave`); a failure in one implementation spoils only
its cell.
"""

from __future__ import annotations

import dataclasses
import traceback
from types import ModuleType
from typing import Any, Callable, Sequence, Union

from .. import _backend
from ..device import Device
from . import report
from .targets import Target
from .timing import Clock, Repeating, Settings, Timer, interleave

__all__ = ["Skip", "Workload", "Remote", "run_case", "optional_torch", "Spec", "Builder"]


class Skip(Exception):
    """A suite that cannot run here (the message is the reason shown), or, raised by a
    builder, an implementation that does not exist here (it is left out of the row)."""


@dataclasses.dataclass
class Workload:
    """``fn(*inputs[k])`` does ``work`` units per call; see :func:`timing.measure`."""

    fn: Callable[..., object]
    inputs: Sequence[tuple[Any, ...]]
    work: float
    clock: Clock | None = None
    prepare: Callable[[], None] | None = None


@dataclasses.dataclass
class Remote:
    """A workload timed in another process: ``timer`` has ``number`` and ``repeat()`` like a
    :class:`timing.Timer`, so its repeats interleave with the local ones."""

    timer: Repeating
    work: float
    info: dict[str, Any] | None = None


# A case: JSON-ready values by name (the MXNet runner receives the same dict).
Spec = dict[str, Any]
# An implementation of a case: builds the workload to time (see the module docstring).
Builder = Callable[[], Union[Workload, Remote]]


def optional_torch(device: Device | None = None) -> ModuleType | None:
    """``torch`` where it is importable (and, for a GPU device, has CUDA), else None."""
    try:
        import torch
    except ImportError:
        return None
    if device is not None and device.device_type == "gpu" and not torch.cuda.is_available():
        return None
    module: ModuleType = torch
    return module


def _error(impl: str, e: Exception) -> report.Result:
    last = traceback.extract_tb(e.__traceback__)[-1]
    where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
    return report.Result(impl, 0.0, error=f"{type(e).__name__}: {e} ({where})")


def run_case(
    suite: ModuleType, spec: dict[str, Any], target: Target, settings: Settings
) -> report.Row:
    """Measure every implementation of one case, their repeats interleaved; one row."""
    label, series, size = suite.describe(spec)
    results: dict[str, report.Result | None] = {}
    timers: dict[str, tuple[Repeating, float, dict[str, Any] | None]] = {}
    # The target's device is current while building and timing, so that peers' raw CuPy
    # arrays and kernels land on it as gluonlite's do.
    with _backend.on(target.primary):
        for impl, build in suite.implementations(spec, target).items():
            try:
                made = build()
                if isinstance(made, Remote):
                    timers[impl] = (made.timer, made.work, made.info)
                else:
                    timers[impl] = (
                        Timer(
                            made.fn,
                            made.inputs,
                            clock=made.clock,
                            prepare=made.prepare,
                            warmup=settings.warmup,
                            min_time=settings.min_time,
                            max_number=settings.max_number,
                        ),
                        made.work,
                        None,
                    )
                results[impl] = None  # keeps the implementations' order
            except Skip:
                continue  # e.g. a torch variant this device lacks: no column, no error
            except Exception as e:  # noqa: BLE001 - a failing implementation spoils one cell
                results[impl] = _error(impl, e)
        try:
            timings = interleave([t[0] for t in timers.values()], settings.repeats)
            for (impl, (_, work, info)), timing in zip(timers.items(), timings):
                results[impl] = report.Result(impl, work, timing, info=info)
        except Exception as e:  # noqa: BLE001 - calibration passed, so report, don't stop
            for impl in timers:
                results[impl] = _error(impl, e)
    done = [r for r in results.values() if r is not None]  # every None was replaced
    return report.Row(label, str(target.primary), series, size, spec, done)
