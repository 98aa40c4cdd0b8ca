"""Nadam (MXNet's ``nadam``): Adam with Nesterov momentum and a warming momentum schedule."""
from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register

__all__ = ["Nadam"]


def _nadam_math(grad, weight, mean, var, *, lr, wd, beta1, beta2, epsilon, coef2,
                momentum_t, momentum_t_1, m_schedule, m_schedule_next, rescale_grad,
                clip_gradient):
    """``g = clip(rescale_grad * grad) + wd * w``; moments as Adam; then
    ``mean_bar = momentum_t_1 * mean / (1 - m_schedule_next)
    + (1 - momentum_t) * g / (1 - m_schedule)`` and
    ``w -= lr * mean_bar / (sqrt(var / coef2) + epsilon)``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient,
                       wd=wd)
    mean *= beta1
    mean += (1.0 - beta1) * g
    var *= beta2
    var += (1.0 - beta2) * g * g
    mean_bar = (momentum_t_1 / (1.0 - m_schedule_next)) * mean
    mean_bar += ((1.0 - momentum_t) / (1.0 - m_schedule)) * g
    weight -= lr * mean_bar / (xp.sqrt(var / coef2) + epsilon)


@register
class Nadam(_MathOptimizer):
    """Nesterov Adam (MXNet 2's ``Nadam``).

    As in MXNet, the momentum schedule product ``m_schedule`` is one number for the whole
    optimizer, advanced once per parameter update (in index order within a call).

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0.
        schedule_decay: decay of the momentum schedule, >= 0.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.001
    _math = _nadam_math
    _kernel = "nadam"
    beta1 = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2 = _Checked("beta2", low=0.0, high=1.0, high_open=True)
    epsilon = _Checked("epsilon", low=0.0, low_open=True)
    schedule_decay = _Checked("schedule_decay", low=0.0)

    def __init__(self, learning_rate: float | None = None, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8, schedule_decay: float = 0.004,
                 use_fused_step: bool = False, **kwargs):
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step,
                         **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def create_state(self, index, weight):
        return (_zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index, lr, wd) -> dict:
        t = self._index_update_count[index]
        momentum_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        momentum_t_1 = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        self.m_schedule *= momentum_t
        return dict(super()._hyper(index, lr, wd), beta1=self.beta1, beta2=self.beta2,
                    epsilon=self.epsilon, coef2=1.0 - self.beta2 ** t, momentum_t=momentum_t,
                    momentum_t_1=momentum_t_1, m_schedule=self.m_schedule,
                    m_schedule_next=self.m_schedule * momentum_t_1)
