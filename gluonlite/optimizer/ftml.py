"""FTML (MXNet's ``ftml``): follow the moving leader."""

from __future__ import annotations

from ._foreach import _array_module, _prepared_grad
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["FTML"]


def _ftml_math(
    grad: RawArray,
    weight: RawArray,
    d: RawArray,
    v: RawArray,
    z: RawArray,
    *,
    lr: float,
    wd: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    coef1: float,
    coef2: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; v = beta2 * v + (1 - beta2) * g^2;
    d_new = (sqrt(v / coef2) + epsilon) * coef1 / lr;
    z = beta1 * z + (1 - beta1) * g - (d_new - beta1 * d) * w; w = -z / d_new``,
    ``coef = 1 - beta**t``."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    v *= beta2
    v += (1.0 - beta2) * g * g
    sigma = -beta1 * d
    d[...] = xp.sqrt(v / coef2) + epsilon
    d *= coef1 / lr
    sigma += d
    z *= beta1
    z += (1.0 - beta1) * g
    z -= sigma * weight
    weight[...] = -z / d


@register
class FTML(_MathOptimizer):
    """FTML (MXNet 2's ``FTML``). The state is ``(d, v, z)``.

    Args:
        learning_rate: default 0.0025, > 0.
        beta1, beta2: in [0, 1).
        epsilon: > 0.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.0025
    _math = _ftml_math
    _kernel = "ftml"
    beta1: _Checked[float] = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2: _Checked[float] = _Checked("beta2", low=0.0, high=1.0, high_open=True)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.6,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return (_zeros_state(weight), _zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 3

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        t = self._index_update_count[index]
        return dict(
            super()._hyper(index, lr, wd),
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            coef1=1.0 - self.beta1**t,
            coef2=1.0 - self.beta2**t,
        )
