"""LAMB (MXNet's ``lamb``): Adam steps scaled per layer by a trust ratio."""

from __future__ import annotations

import numpy

from ._foreach import _adam_moments, _array_module, _norm, _prepared_grad, _trust_ratio
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["LAMB"]


def _clamped_norm(
    weight: RawArray, lower_bound: float | None, upper_bound: float | None
) -> RawArray:
    """``||w||`` clamped to ``[lower_bound, upper_bound]`` (None: unbounded)."""
    xp = _array_module(weight)
    r1 = _norm(weight)
    if lower_bound is not None:
        r1 = xp.maximum(r1, lower_bound)
    if upper_bound is not None:
        r1 = xp.minimum(r1, upper_bound)
    return r1


def _lamb_math(
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
    coef1: float,
    coef2: float,
    lower_bound: float | None,
    upper_bound: float | None,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad)``; moments as Adam;
    ``u = (mean / coef1) / (sqrt(var / coef2) + epsilon) + wd * w``;
    ``w -= lr * trust(||w||, ||u||) * u`` (``coef`` 1 without bias correction)."""
    xp = _array_module(weight)
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=0.0)
    _adam_moments(mean, var, g, beta1, beta2)
    r1 = _clamped_norm(weight, lower_bound, upper_bound)
    update = (mean / coef1) / (xp.sqrt(var / coef2) + epsilon)
    if wd != 0:
        update += wd * weight
    ratio = _trust_ratio(r1, _norm(update))
    weight -= (lr * ratio).astype(weight.dtype) * update.astype(weight.dtype, copy=False)


class _LayerWise(_MathOptimizer):
    """What LAMB and LANS share: Adam moments in float32 and a clamped weight norm."""

    _default_lr = 0.001
    _bucketable = False  # norms are per tensor
    beta1: _Checked[float] = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2: _Checked[float] = _Checked("beta2", low=0.0, high=1.0, high_open=True)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)
    lower_bound: _Checked[float | None] = _Checked("lower_bound", low=0.0, optional=True)
    upper_bound: _Checked[float | None] = _Checked("upper_bound", low=0.0, optional=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        aggregate_num: int = 4,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            aggregate_num=aggregate_num,
            use_fused_step=use_fused_step,
            **kwargs,
        )
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def create_state(self, index: Any, weight: ndarray) -> Any:
        """``(mean, var)``, float32 whatever the weight's dtype (as MXNet)."""
        return (_zeros_state(weight, numpy.float32), _zeros_state(weight, numpy.float32))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        t = self._index_update_count[index]
        return dict(
            super()._hyper(index, lr, wd),
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            coef1=1.0 - self.beta1**t,
            coef2=1.0 - self.beta2**t,
            lower_bound=self.lower_bound,
            upper_bound=self.upper_bound,
        )


@register
class LAMB(_LayerWise):
    """LAMB, layer-wise adaptive moments for large batches (MXNet 2's ``LAMB``).

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0, default 1e-6.
        lower_bound, upper_bound: clamp the weight norm of the trust ratio; None: no bound.
        bias_correction: apply Adam's bias correction to the moments.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _lamb_math
    _kernel = "lamb"  # norms, then the scaled step: two launches per tensor on a GPU

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        bias_correction: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            lower_bound=lower_bound,
            upper_bound=upper_bound,
            **kwargs,
        )
        self.bias_correction = bool(bias_correction)

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        hyper = super()._hyper(index, lr, wd)
        if not self.bias_correction:
            hyper.update(coef1=1.0, coef2=1.0)
        return hyper
