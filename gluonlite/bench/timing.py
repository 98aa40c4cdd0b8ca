"""How every number of ``gluonlite-bench`` is taken: warm-up, device clocks, median of repeats.

This module uses the standard library only (CuPy and torch are imported inside the GPU
clocks, when one is built), because the MXNet peer runner
(``benchmarks/mxnet_workloads.py``) runs in a separate environment without gluonlite and
loads this file by path: both sides of a gluonlite/MXNet ratio are then timed the same way.

Method:
    1. ``warmup`` + 1 single calls, timed but not reported: they absorb first-call costs
       (allocation, kernel compilation, caches, waking thread pools), and the fastest of
       them estimates the cost of a call (the fastest, so that one hiccup does not count).
    2. ``number`` calls per repeat are chosen so that a repeat lasts at least ``min_time``
       (a single fast call is below the clock's resolution and dominated by the timer's
       own overhead).
    3. ``repeats`` repeats, each timing ``number`` calls; the per-call time of a repeat is
       its elapsed time divided by ``number``. The reported figure is the median over
       repeats, which a single preempted repeat cannot move. Implementations compared in
       one table take their repeats in turn (:func:`interleave`).
    4. Calls cycle through several input sets (``inputs``), so that consecutive calls do
       not find their operands hot in the cache from the previous call.
    5. Clocks synchronize the device: a :class:`HostClock` runs a ``sync`` function before
       reading the time; GPU clocks record events on the stream and wait for the end event.

>>> t = measure(lambda a: sum(a), [([1, 2],), ([3, 4],)], repeats=3, warmup=1,
...             min_time=1e-4)
>>> len(t.times), t.number >= 1, t.median > 0
(3, True, True)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Protocol, Sequence

__all__ = [
    "Settings",
    "QUICK",
    "FULL",
    "Timing",
    "HostClock",
    "CupyEventClock",
    "TorchEventClock",
    "Timer",
    "measure",
    "interleave",
    "rotations",
    "Clock",
    "Repeating",
]


class Clock(Protocol):
    """What :class:`Timer` reads: ``stop(start())`` is the seconds in between."""

    def start(self) -> Any: ...
    def stop(self, started: Any) -> float: ...


class Repeating(Protocol):
    """What :func:`interleave` takes turns with: a :class:`Timer`, or one that times in
    another process (``workload.Remote``)."""

    number: int

    def repeat(self) -> float: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """Timing parameters; see the module docstring for what each one protects against."""

    repeats: int
    warmup: int
    min_time: float
    # Upper bound on calls per repeat, so that a very cheap call cannot make a repeat loop
    # run for millions of iterations when the first estimate was noisy.
    max_number: int = 100_000

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`measure`: ``measure(fn, **settings.kwargs())``."""
        return dataclasses.asdict(self)


QUICK = Settings(repeats=3, warmup=1, min_time=0.01)
FULL = Settings(repeats=7, warmup=2, min_time=0.05)


@dataclasses.dataclass
class Timing:
    """Per-call seconds of each repeat, and how many calls each repeat averaged over."""

    times: list[float]
    number: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def to_json(self) -> dict[str, Any]:
        return {"median_s": self.median, "times_s": list(self.times), "number": self.number}


class HostClock:
    """Wall-clock time (``perf_counter``), with ``sync()`` run before each reading.

    ``sync`` waits for queued device work (e.g. ``mxnet.nd.waitall`` or synchronizing the
    CUDA streams of every GPU involved); without it a clock would time only the enqueueing.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync

    def start(self) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter()

    def stop(self, started: float) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter() - started


class CupyEventClock:
    """CUDA events on CuPy's current stream of GPU ``device_id``: device time, not host time.

    gluonlite's GPU ops and ``cupy`` peers run on that stream, so the events bracket exactly
    their kernels. Waiting for the end event is the synchronization.
    """

    def __init__(self, device_id: int) -> None:
        import cupy

        self._cupy = cupy
        self._device_id = device_id

    def start(self) -> Any:
        with self._cupy.cuda.Device(self._device_id):
            # Work queued before the start (e.g. by ``prepare``) must not be counted.
            self._cupy.cuda.get_current_stream().synchronize()
            event = self._cupy.cuda.Event()
            event.record()
        return event

    def stop(self, started: Any) -> float:
        with self._cupy.cuda.Device(self._device_id):
            end = self._cupy.cuda.Event()
            end.record()
            end.synchronize()
        elapsed_ms: float = self._cupy.cuda.get_elapsed_time(started, end)
        return elapsed_ms / 1e3


class TorchEventClock:
    """CUDA events on torch's current stream of GPU ``device_id`` (torch may use its own)."""

    def __init__(self, device_id: int) -> None:
        import torch

        self._torch = torch
        self._device = torch.device("cuda", device_id)

    def start(self) -> Any:
        self._torch.cuda.synchronize(self._device)
        event = self._torch.cuda.Event(enable_timing=True)
        event.record(self._torch.cuda.current_stream(self._device))
        return event

    def stop(self, started: Any) -> float:
        end = self._torch.cuda.Event(enable_timing=True)
        end.record(self._torch.cuda.current_stream(self._device))
        end.synchronize()
        elapsed_ms: float = started.elapsed_time(end)
        return elapsed_ms / 1e3


def rotations(bytes_per_set: int, budget: int = 96 << 20, most: int = 4) -> int:
    """How many input sets to rotate through (step 4): at most ``most``, within ``budget``.

    Even two sets stop consecutive calls from reusing operands the previous call left in
    the cache; large inputs do not fit in the cache anyway, so they get one set.
    """
    return max(1, min(most, budget // max(bytes_per_set, 1)))


class Timer:
    """One workload, warmed up and calibrated (steps 1 and 2); each :meth:`repeat` is step 3.

    Args:
        fn: the workload; its return value is ignored.
        inputs: argument tuples; consecutive calls take consecutive tuples (step 4).
        warmup, min_time, max_number: as in :class:`Settings`.
        clock: a :class:`HostClock` (the default, without sync) or a GPU event clock.
        prepare: untimed set-up run before every timed call (e.g. a backward pass that makes
            gradients fresh for ``Trainer.step``); implies one call per repeat.
    """

    def __init__(
        self,
        fn: Callable[..., object],
        inputs: Sequence[tuple[Any, ...]] = ((),),
        *,
        warmup: int,
        min_time: float,
        clock: Clock | None = None,
        prepare: Callable[[], None] | None = None,
        max_number: int = 100_000,
    ) -> None:
        if not inputs:
            raise ValueError("Timer: inputs must hold at least one argument tuple")
        self._fn, self._inputs, self._prepare = fn, inputs, prepare
        self._clock: Clock = HostClock() if clock is None else clock
        self._calls = 0
        estimate = min(self._run(1) for _ in range(warmup + 1))
        if prepare is not None or estimate >= min_time:
            self.number = 1
        else:
            self.number = min(max_number, math.ceil(min_time / max(estimate, 1e-9)))

    def _run(self, number: int) -> float:
        if self._prepare is not None:
            self._prepare()
        started = self._clock.start()
        for _ in range(number):
            self._fn(*self._inputs[self._calls % len(self._inputs)])
            self._calls += 1
        return self._clock.stop(started)

    def repeat(self) -> float:
        """Seconds per call over one repeat of ``number`` calls."""
        return self._run(self.number) / self.number


def measure(
    fn: Callable[..., object],
    inputs: Sequence[tuple[Any, ...]] = ((),),
    *,
    repeats: int,
    warmup: int,
    min_time: float,
    clock: Clock | None = None,
    prepare: Callable[[], None] | None = None,
    max_number: int = 100_000,
) -> Timing:
    """Time ``fn(*inputs[k])``, cycling ``k`` through the input sets; see the module doc
    and :class:`Timer` for the arguments."""
    return interleave(
        [
            Timer(
                fn,
                inputs,
                warmup=warmup,
                min_time=min_time,
                clock=clock,
                prepare=prepare,
                max_number=max_number,
            )
        ],
        repeats,
    )[0]


def interleave(timers: Sequence[Repeating], repeats: int) -> list[Timing]:
    """A :class:`Timing` per timer, taking their repeats in turn (a, b, a, b, ...).

    Alternating spreads slow phases of a shared machine (other processes, frequency
    changes) over every implementation instead of penalising whichever ran at the time,
    so ratios between them stay fair.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(repeats):
        for timer, out in zip(timers, times):
            out.append(timer.repeat())
    return [Timing(t, timer.number) for timer, t in zip(timers, times)]
