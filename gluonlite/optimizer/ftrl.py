"""Ftrl (MXNet's ``ftrl``): follow the regularized leader, with L1 and L2 terms."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["Ftrl"]


def _ftrl_math(
    grad: RawArray,
    weight: RawArray,
    z: RawArray,
    n: RawArray,
    *,
    lr: float,
    wd: float,
    lamda1: float,
    beta: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad); z += g - (sqrt(n + g^2) - sqrt(n)) / lr * w;
    n += g^2; w = -sign(z) * max(|z| - lamda1, 0) / ((beta + sqrt(n)) / lr + wd)``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=0.0)
    sigma = -xp.sqrt(n)
    n += g * g
    denom = xp.sqrt(n)
    sigma += denom
    sigma /= lr
    z += g - sigma * weight
    denom += beta
    denom /= lr
    denom += wd
    d = xp.sign(z) * xp.maximum(xp.abs(z) - lamda1, 0)
    weight[...] = -d / denom


@register
class Ftrl(_MathOptimizer):
    """Ftrl (MXNet 2's ``Ftrl``). The state is ``(z, n)``; row-sparse gradients update
    only their rows.

    Args:
        learning_rate: default 0.1, > 0.
        lamda1: L1 regularization coefficient, >= 0.
        beta: per-coordinate learning rate correlation, >= 0.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.1
    _math = _ftrl_math
    _kernel = "ftrl"
    _lazy_rows = True
    lamda1: _Checked[float] = _Checked("lamda1", low=0.0)
    beta: _Checked[float] = _Checked("beta", low=0.0)

    def __init__(
        self,
        learning_rate: float | None = None,
        lamda1: float = 0.01,
        beta: float = 1.0,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.lamda1, self.beta = lamda1, beta

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return (_zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), lamda1=self.lamda1, beta=self.beta)
