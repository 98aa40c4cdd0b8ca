"""Adamax (MXNet's ``adamax``): Adam with the infinity norm."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["Adamax"]


def _adamax_math(
    grad: RawArray,
    weight: RawArray,
    mean: RawArray,
    u: RawArray,
    *,
    lr: float,
    wd: float,
    beta1: float,
    beta2: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; mean = beta1 * mean + (1 - beta1) * g;
    u = max(beta2 * u, |g|); w -= lr * mean / u`` with ``lr`` divided by ``1 - beta1**t``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    mean *= beta1
    mean += (1.0 - beta1) * g
    u *= beta2
    xp.maximum(u, xp.abs(g), out=u)
    weight -= lr * mean / u


@register
class Adamax(_MathOptimizer):
    """AdaMax (MXNet 2's ``Adamax``).

    Args:
        learning_rate: default 0.002.
        beta1, beta2: in [0, 1).
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.002
    _math = _adamax_math
    _kernel = "adamax"
    beta1: _Checked[float] = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2: _Checked[float] = _Checked("beta2", low=0.0, high=1.0, high_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        use_fused_step: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.beta1, self.beta2 = beta1, beta2

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return (_zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        lr /= 1.0 - self.beta1 ** self._index_update_count[index]
        return dict(super()._hyper(index, lr, wd), beta1=self.beta1, beta2=self.beta2)
