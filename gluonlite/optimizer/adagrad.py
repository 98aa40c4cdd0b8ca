"""AdaGrad (MXNet's ``adagrad``): steps scaled by the root of the summed squared gradients."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["AdaGrad"]


def _adagrad_math(
    grad: RawArray,
    weight: RawArray,
    history: RawArray,
    *,
    lr: float,
    wd: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; history += g * g;
    w -= lr * g / (sqrt(history) + epsilon)``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    history += g * g
    weight -= lr * g / (xp.sqrt(history) + epsilon)


@register
class AdaGrad(_MathOptimizer):
    """AdaGrad (MXNet 2's ``AdaGrad``). Row-sparse gradients update only their rows.

    Args:
        learning_rate: default 0.01.
        epsilon: > 0, default 1e-6.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _adagrad_math
    _kernel = "adagrad"
    _lazy_rows = True
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        epsilon: float = 1e-6,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.epsilon = epsilon

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return _zeros_state(weight)

    def _state_count(self) -> int:
        return 1

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), epsilon=self.epsilon)
