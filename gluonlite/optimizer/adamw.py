"""AdamW (MXNet's ``adamw``): Adam with decoupled weight decay."""

from __future__ import annotations

from ._foreach import _adam_moments, _array_module, _prepared_grad
from .adam import _AdamFamily
from .optimizer import register
from typing import Any
from .._typing import RawArray

__all__ = ["AdamW"]


def _adamw_math(
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
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad)``; moments as Adam;
    ``w -= lr * (mean / (sqrt(var) + epsilon) + wd * w)`` with ``lr`` bias-corrected
    (MXNet's fused ``adamw_update``: the decay uses the weight before the step)."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=0.0)
    _adam_moments(mean, var, g, beta1, beta2)
    d = mean / (xp.sqrt(var) + epsilon)
    if wd != 0:
        d += wd * weight
    weight -= lr * d


@register
class AdamW(_AdamFamily):
    """AdamW, decoupled weight decay regularization (MXNet 2's ``AdamW``).

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0, default 1e-6.
        correct_bias: fold Adam's bias correction into the learning rate.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _adamw_math
    _kernel = "adamw"

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        correct_bias: bool = True,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            correct_bias=correct_bias,
            use_fused_step=use_fused_step,
            **kwargs,
        )
