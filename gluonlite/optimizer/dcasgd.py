"""DCASGD (MXNet's ``dcasgd``): asynchronous SGD with delay compensation."""

from __future__ import annotations

from ._foreach import _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _copy_state, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["DCASGD"]


def _dcasgd_math(
    grad: RawArray,
    weight: RawArray,
    previous: RawArray,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    momentum: float,
    lamda: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; d = g + lamda * g * g * (w - previous);
    mom = momentum * mom - lr * d`` (or ``-lr * d``); ``previous = w; w += mom``."""
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    d = g * g
    d *= weight - previous
    d *= lamda
    d += g
    if mom is None:
        d *= -lr
        step = d
    else:
        mom *= momentum
        mom -= lr * d
        step = mom
    previous[...] = weight
    weight += step


@register
class DCASGD(_MathOptimizer):
    """Delay-compensated asynchronous SGD (MXNet 2's ``DCASGD``).

    The state is ``(momentum or None, previous weight)``.

    Args:
        learning_rate: default 0.1.
        momentum: in [0, 1), default 0.
        lamda: scale of the delay compensation, >= 0.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.1
    _math = _dcasgd_math
    _kernel = "dcasgd"
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)
    lamda: _Checked[float] = _Checked("lamda", low=0.0)

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        lamda: float = 0.04,
        use_fused_step: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.momentum = momentum
        self.lamda = lamda

    def create_state(self, index: Any, weight: ndarray) -> Any:
        mom = None if self.momentum == 0.0 else _zeros_state(weight)
        return (mom, _copy_state(weight))

    def _state_count(self) -> int:
        return 1 if self.momentum == 0.0 else 2

    def _buffers(self, weight: RawArray, state: Any) -> tuple[RawArray, ...]:
        mom, previous = state
        return (weight, previous) if mom is None else (weight, previous, mom)

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), momentum=self.momentum, lamda=self.lamda)
