"""RMSProp (MXNet's ``rmsprop``): Tieleman & Hinton's, or Graves's centered version."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["RMSProp"]


def _rmsprop_math(
    grad: RawArray,
    weight: RawArray,
    var: RawArray,
    mean: RawArray = None,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    rho: float,
    momentum: float,
    epsilon: float,
    clip_weights: float | None,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; var = rho * var + (1 - rho) * g^2``, then
    ``w -= lr * g / (sqrt(var) + epsilon)``; centered (``mean`` and ``mom`` given):
    ``mean = rho * mean + (1 - rho) * g;
    mom = momentum * mom - lr * g / sqrt(var - mean^2 + epsilon); w += mom``. Finally
    ``w`` is clipped to ``[-clip_weights, clip_weights]`` when set."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    var *= rho
    var += (1.0 - rho) * g * g
    if mean is None:
        weight -= lr * g / (xp.sqrt(var) + epsilon)
    else:
        mean *= rho
        mean += (1.0 - rho) * g
        mom *= momentum
        mom -= lr * g / xp.sqrt(var - mean * mean + epsilon)
        weight += mom
    if clip_weights is not None:
        xp.clip(weight, -clip_weights, clip_weights, out=weight)


@register
class RMSProp(_MathOptimizer):
    """RMSProp (MXNet 2's ``RMSProp``). The state is ``var``, or ``(mean, var, mom)`` when
    ``centered``.

    Args:
        learning_rate: default 0.001.
        rho: decay of the running averages, in [0, 1).
        momentum: heavy-ball momentum of the centered version, in [0, 1).
        epsilon: > 0.
        centered: Graves's version (True) or Tieleman & Hinton's.
        clip_weights: clip weights to ``[-clip_weights, clip_weights]``; None: no clipping.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.001
    _math = _rmsprop_math
    _kernel = "rmsprop"
    rho: _Checked[float] = _Checked("rho", low=0.0, high=1.0, high_open=True)
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)
    clip_weights: _Checked[float | None] = _Checked(
        "clip_weights", low=0.0, low_open=True, optional=True
    )

    def __init__(
        self,
        learning_rate: float | None = None,
        rho: float = 0.9,
        momentum: float = 0.9,
        epsilon: float = 1e-8,
        centered: bool = False,
        clip_weights: float | None = None,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon
        self.centered = bool(centered)
        self.clip_weights = clip_weights

    def create_state(self, index: Any, weight: ndarray) -> Any:
        if self.centered:
            return (_zeros_state(weight), _zeros_state(weight), _zeros_state(weight))
        return _zeros_state(weight)

    def _state_count(self) -> int:
        return 3 if self.centered else 1

    def _buffers(self, weight: RawArray, state: Any) -> tuple[RawArray, ...]:
        if self.centered:
            mean, var, mom = state
            return (weight, var, mean, mom)
        return (weight, state)

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(
            super()._hyper(index, lr, wd),
            rho=self.rho,
            momentum=self.momentum,
            epsilon=self.epsilon,
            clip_weights=self.clip_weights,
        )
