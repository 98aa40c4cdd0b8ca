"""Signum and signSGD (MXNet's ``signum``): steps of the sign of momentum or gradient."""

from __future__ import annotations

from ._foreach import _array_module, _fresh_copy, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["Signum"]


def _signum_math(
    grad: RawArray,
    weight: RawArray,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    momentum: float,
    wd_lh: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """With momentum: ``g = clip(rescale_grad * grad) + wd * w;
    mom = momentum * mom - (1 - momentum) * g; w = (1 - lr * wd_lh) * w + lr * sign(mom)``.
    Without: ``w = (1 - lr * (wd + wd_lh)) * w - lr * sign(grad)``."""
    xp = _array_module(weight)
    if mom is None:
        g = _fresh_copy(grad, rescale_grad)  # clipping keeps the sign
        weight *= 1.0 - lr * (wd + wd_lh)
        weight -= lr * xp.sign(g)
        return
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    mom *= momentum
    mom -= (1.0 - momentum) * g
    if wd_lh != 0:
        weight *= 1.0 - lr * wd_lh
    weight += lr * xp.sign(mom)


@register
class Signum(_MathOptimizer):
    """The Signum optimizer (MXNet 2's ``Signum``; signSGD when ``momentum`` is 0).

    Args:
        learning_rate: default 0.01.
        momentum: in [0, 1), default 0.9.
        wd_lh: decoupled weight decay, >= 0.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.01
    _math = _signum_math
    _kernel = "signum"
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)
    wd_lh: _Checked[float] = _Checked("wd_lh", low=0.0)

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.9,
        wd_lh: float = 0.0,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return None if self.momentum == 0.0 else _zeros_state(weight)

    def _state_count(self) -> int:
        return 0 if self.momentum == 0.0 else 1

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(super()._hyper(index, lr, wd), momentum=self.momentum, wd_lh=self.wd_lh)
