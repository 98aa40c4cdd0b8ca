"""Learning-rate schedules (``mx.lr_scheduler``): the rate as a function of the update count.

An optimizer given ``lr_scheduler=`` asks it for the rate of every update
(``scheduler(optimizer.num_update)``); ``Trainer.step`` advances ``num_update``. An optimizer
built without a ``learning_rate`` takes the scheduler's ``base_lr``; one built with a
``learning_rate`` sets the scheduler's ``base_lr`` to it (MXNet).

Each schedule is a pure function of ``num_update`` (MXNet's are stateful but give the same
rates for the non-decreasing counts an optimizer passes), so changing ``base_lr`` at any time
takes effect, and a schedule can be shared or queried out of order.

>>> import gluonlite as mx
>>> s = mx.lr_scheduler.FactorScheduler(step=10, factor=0.5, base_lr=1.0)
>>> [s(n) for n in (1, 10, 11, 21)]
[1.0, 1.0, 0.5, 0.25]
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

__all__ = [
    "LRScheduler",
    "FactorScheduler",
    "MultiFactorScheduler",
    "PolyScheduler",
    "CosineScheduler",
]

_WARMUP_MODES = ("linear", "constant")


def _int(owner: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{owner}: {name} must be >= {low}, got {value}")
    return int(value)


def _real(
    owner: str, name: str, value: object, low: float | None = None, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if (
        math.isnan(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{owner}: {name} must be in {bounds}, got {value}")
    return value


class LRScheduler:
    """Base class: ``base_lr`` and a warmup over the first ``warmup_steps`` updates.

    Subclasses implement :meth:`_after_warmup`; calling the scheduler with ``num_update``
    returns the rate of that update.

    Args:
        base_lr: the rate after warmup (before any decay), >= 0.
        warmup_steps: updates ``0 .. warmup_steps - 1`` take the warmup rate, >= 0.
        warmup_begin_lr: the warmup's first rate, in [0, base_lr].
        warmup_mode: ``'linear'`` (from ``warmup_begin_lr`` up to ``base_lr``) or
            ``'constant'`` (``warmup_begin_lr`` throughout).
    """

    def __init__(
        self,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0.0,
        warmup_mode: str = "linear",
    ) -> None:
        self.base_lr = base_lr
        self.warmup_steps = _int(self._name, "warmup_steps", warmup_steps, 0)
        self.warmup_begin_lr = _real(self._name, "warmup_begin_lr", warmup_begin_lr, 0.0)
        if self.warmup_begin_lr > self.base_lr:
            raise ValueError(
                f"{self._name}: warmup_begin_lr ({self.warmup_begin_lr}) must "
                f"not exceed base_lr ({self.base_lr})"
            )
        if warmup_mode not in _WARMUP_MODES:
            raise ValueError(
                f"{self._name}: warmup_mode must be one of {_WARMUP_MODES}, got {warmup_mode!r}"
            )
        self.warmup_mode = warmup_mode

    @property
    def _name(self) -> str:
        return type(self).__name__

    @property
    def base_lr(self) -> float:
        return self._base_lr

    @base_lr.setter
    def base_lr(self, value: float) -> None:
        self._base_lr = _real(self._name, "base_lr", value, 0.0)

    @property
    def warmup_final_lr(self) -> float:
        """The rate the linear warmup climbs to (``base_lr``)."""
        return self._base_lr

    def get_warmup_lr(self, num_update: int) -> float:
        """The warmup rate of update ``num_update`` (< ``warmup_steps``)."""
        if self.warmup_mode == "constant":
            return self.warmup_begin_lr
        return (
            self.warmup_begin_lr
            + (self.base_lr - self.warmup_begin_lr) * num_update / self.warmup_steps
        )

    def __call__(self, num_update: int) -> float:
        num_update = _int(self._name, "num_update", num_update, 0)
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        return self._after_warmup(num_update)

    def _after_warmup(self, num_update: int) -> float:
        return self.base_lr


class FactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` every ``step`` updates, down to ``stop_factor_lr``:
    update ``n`` takes ``max(base_lr * factor ** ((n - 1) // step), stop_factor_lr)``.

    Args:
        step: updates between decays, >= 1.
        factor: in [0, 1].
        stop_factor_lr: the rate never decays below this.
        base_lr, warmup_steps, warmup_begin_lr, warmup_mode: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        step: int,
        factor: float = 1.0,
        stop_factor_lr: float = 1e-8,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0.0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.step = _int(self._name, "step", step, 1)
        self.factor = _real(self._name, "factor", factor, 0.0, 1.0)
        self.stop_factor_lr = _real(self._name, "stop_factor_lr", stop_factor_lr, 0.0)

    def _after_warmup(self, num_update: int) -> float:
        decays = max(num_update - 1, 0) // self.step
        if decays == 0:
            return self.base_lr
        return max(self.base_lr * self.factor**decays, self.stop_factor_lr)


class MultiFactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` after each update count in ``step``: update ``n``
    takes ``base_lr * factor ** (number of s in step with n > s)``.

    Args:
        step: increasing list of update counts, each >= 1.
        factor: in [0, 1].
        base_lr, warmup_steps, warmup_begin_lr, warmup_mode: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        step: list[int],
        factor: float = 1.0,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0.0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, (list, tuple)) or not step:
            raise TypeError(
                f"{self._name}: step must be a non-empty list of update counts, got {step!r}"
            )
        steps = [_int(self._name, f"step[{k}]", s, 1) for k, s in enumerate(step)]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"{self._name}: step must be increasing, got {steps}")
        self.step = steps
        self.factor = _real(self._name, "factor", factor, 0.0, 1.0)

    def _after_warmup(self, num_update: int) -> float:
        decays = sum(num_update > s for s in self.step)
        return self.base_lr * self.factor**decays


class _ToFinal(LRScheduler):
    """Poly and cosine: from ``base_lr`` at the end of warmup to ``final_lr`` at
    ``max_update``, then ``final_lr``."""

    def __init__(
        self,
        max_update: int,
        base_lr: float,
        final_lr: float,
        warmup_steps: int,
        warmup_begin_lr: float,
        warmup_mode: str,
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.max_update = _int(self._name, "max_update", max_update, 1)
        if self.max_update <= self.warmup_steps:
            raise ValueError(
                f"{self._name}: max_update ({self.max_update}) must exceed "
                f"warmup_steps ({self.warmup_steps})"
            )
        self.final_lr = _real(self._name, "final_lr", final_lr, 0.0)
        self.max_steps = self.max_update - self.warmup_steps

    def _after_warmup(self, num_update: int) -> float:
        if num_update > self.max_update:
            return self.final_lr
        done = (num_update - self.warmup_steps) / self.max_steps
        return self.final_lr + (self.base_lr - self.final_lr) * self._shape(done)

    if TYPE_CHECKING:  # each subclass defines the decay's shape over done in [0, 1]

        def _shape(self, done: float) -> float: ...


class PolyScheduler(_ToFinal):
    """Polynomial decay: ``final_lr + (base_lr - final_lr) * (1 - done) ** pwr`` with
    ``done = (n - warmup_steps) / (max_update - warmup_steps)``.

    Args:
        max_update: the update at which ``final_lr`` is reached, > warmup_steps.
        pwr: the power, >= 0.
        final_lr: >= 0.
        base_lr, warmup_steps, warmup_begin_lr, warmup_mode: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        pwr: float = 2,
        final_lr: float = 0.0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0.0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.power = _real(self._name, "pwr", pwr, 0.0)

    def _shape(self, done: float) -> float:
        shape: float = (1.0 - done) ** self.power
        return shape


class CosineScheduler(_ToFinal):
    """Cosine decay: ``final_lr + (base_lr - final_lr) * (1 + cos(pi * done)) / 2`` with
    ``done`` as in :class:`PolyScheduler`.

    Args:
        max_update: the update at which ``final_lr`` is reached, > warmup_steps.
        final_lr: >= 0.
        base_lr, warmup_steps, warmup_begin_lr, warmup_mode: see :class:`LRScheduler`.
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        final_lr: float = 0.0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0.0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)

    def _shape(self, done: float) -> float:
        return (1.0 + math.cos(math.pi * done)) / 2.0
