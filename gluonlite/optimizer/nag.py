"""NAG (MXNet's ``nag``): SGD with Nesterov momentum."""

from __future__ import annotations

from ._foreach import _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["NAG"]


def _nag_math(
    grad: RawArray,
    weight: RawArray,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; mom = momentum * mom - lr * g;
    w += momentum * mom - lr * g`` (without momentum ``w -= lr * g``)."""
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    g *= lr
    if mom is None:
        weight -= g
        return
    mom *= momentum
    mom -= g
    weight += momentum * mom - g


@register
class NAG(_MathOptimizer):
    """Nesterov accelerated gradient (MXNet 2's ``NAG``).

    Args:
        learning_rate: default 0.1.
        momentum: in [0, 1), default 0.9; 0 keeps no state.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.1
    _math = _nag_math
    _kernel = "nag"
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.9,
        multi_precision: bool = False,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            multi_precision=multi_precision,
            use_fused_step=use_fused_step,
            **kwargs,
        )
        self.momentum = momentum

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return None if self.momentum == 0.0 else _zeros_state(weight)

    def _state_count(self) -> int:
        return 0 if self.momentum == 0.0 else 1

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), momentum=self.momentum)
