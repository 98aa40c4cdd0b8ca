"""Nadam (MXNet's ``nadam``): Adam with Nesterov momentum and a warming momentum schedule."""

from __future__ import annotations

from ._foreach import _adam_moments, _array_module, _prepared_grad
from .adam import _AdamFamily
from .optimizer import _Checked, register
from typing import Any
from .._typing import RawArray

__all__ = ["Nadam"]


def _nadam_math(
    grad: RawArray,
    weight: RawArray,
    mean: RawArray,
    var: RawArray,
    *,
    lr: float,
    wd: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    coef2: float,
    momentum_t: float,
    momentum_t_1: float,
    m_schedule: float,
    m_schedule_next: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w``; moments as Adam; then
    ``mean_bar = momentum_t_1 * mean / (1 - m_schedule_next)
    + (1 - momentum_t) * g / (1 - m_schedule)`` and
    ``w -= lr * mean_bar / (sqrt(var / coef2) + epsilon)``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    _adam_moments(mean, var, g, beta1, beta2)
    mean_bar = (momentum_t_1 / (1.0 - m_schedule_next)) * mean
    mean_bar += ((1.0 - momentum_t) / (1.0 - m_schedule)) * g
    weight -= lr * mean_bar / (xp.sqrt(var / coef2) + epsilon)


@register
class Nadam(_AdamFamily):
    """Nesterov Adam (MXNet 2's ``Nadam``).

    As in MXNet, the momentum schedule product ``m_schedule`` is one number for the whole
    optimizer, advanced once per parameter update (in index order within a call); it is
    part of ``Trainer.save_states`` (and of a pickled optimizer), so training resumed from
    a checkpoint continues the schedule exactly.

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0.
        schedule_decay: decay of the momentum schedule, >= 0.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _nadam_math
    _kernel = "nadam"
    _scalar_state = ("m_schedule",)
    schedule_decay: _Checked[float] = _Checked("schedule_decay", low=0.0)

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        schedule_decay: float = 0.004,
        use_fused_step: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            correct_bias=False,
            use_fused_step=use_fused_step,
            **kwargs,
        )
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        t = self._index_update_count[index]
        momentum_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        momentum_t_1 = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        self.m_schedule *= momentum_t
        return dict(
            super()._hyper(index, lr, wd),
            coef2=1.0 - self.beta2**t,
            momentum_t=momentum_t,
            momentum_t_1=momentum_t_1,
            m_schedule=self.m_schedule,
            m_schedule_next=self.m_schedule * momentum_t_1,
        )
