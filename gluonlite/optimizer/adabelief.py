"""AdaBelief (MXNet's ``adabelief``): Adam whose second moment tracks (g - mean)^2."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .adam import _AdamFamily
from .optimizer import register
from typing import Any
from .._typing import RawArray

__all__ = ["AdaBelief"]


def _adabelief_math(
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
    """``g = clip(rescale_grad * grad + wd * w); mean = beta1 * mean + (1 - beta1) * g;
    var = beta2 * var + (1 - beta2) * (g - mean)^2 + epsilon;
    w -= lr * mean / (sqrt(var) + epsilon)`` with ``lr`` bias-corrected."""
    xp = _array_module(weight)
    g = _prepared_grad(
        grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd, wd_first=True
    )
    mean *= beta1
    mean += (1.0 - beta1) * g
    g -= mean
    var *= beta2
    var += (1.0 - beta2) * g * g
    var += epsilon
    weight -= lr * mean / (xp.sqrt(var) + epsilon)


@register
class AdaBelief(_AdamFamily):
    """AdaBelief (MXNet 2's ``AdaBelief``).

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0, default 1e-6.
        correct_bias: fold the bias correction into the learning rate.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _adabelief_math
    _kernel = "adabelief"

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
