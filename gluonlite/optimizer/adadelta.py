"""AdaDelta (MXNet's ``adadelta``): a learning rate from running averages of steps."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["AdaDelta"]


def _adadelta_math(
    grad: RawArray,
    weight: RawArray,
    acc_g: RawArray,
    acc_delta: RawArray,
    *,
    lr: float,
    wd: float,
    rho: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; acc_g = rho * acc_g + (1 - rho) * g^2;
    delta = sqrt(acc_delta + eps) / sqrt(acc_g + eps) * g;
    acc_delta = rho * acc_delta + (1 - rho) * delta^2; w -= lr * delta``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    acc_g *= rho
    acc_g += (1.0 - rho) * g * g
    delta = xp.sqrt(acc_delta + epsilon)
    delta /= xp.sqrt(acc_g + epsilon)
    delta *= g
    acc_delta *= rho
    acc_delta += (1.0 - rho) * delta * delta
    weight -= lr * delta


@register
class AdaDelta(_MathOptimizer):
    """AdaDelta (MXNet 2's ``AdaDelta``).

    Args:
        learning_rate: default 1.0.
        rho: decay of both running averages, in [0, 1).
        epsilon: > 0, default 1e-6.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 1.0
    _math = _adadelta_math
    _kernel = "adadelta"
    rho: _Checked[float] = _Checked("rho", low=0.0, high=1.0, high_open=True)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        rho: float = 0.9,
        epsilon: float = 1e-6,
        use_fused_step: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return (_zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), rho=self.rho, epsilon=self.epsilon)
