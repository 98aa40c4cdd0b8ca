"""LARS (MXNet's ``lars``): SGD with a layer-wise learning rate scale."""

from __future__ import annotations

import numpy

from ._foreach import _array_module, _fresh_copy, _norm, _ratio_or_none
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from .sgd import _sgd_math
from typing import Any
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["LARS"]

_NO_LARS_SUFFIXES = ("gamma", "beta", "bias")


def _lars_math(
    grad: RawArray,
    weight: RawArray,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    momentum: float,
    eta: float,
    epsilon: float,
    layer_wise: bool,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """With ``layer_wise``, ``lr *= eta * ||w|| / (||g|| + wd * ||w|| + epsilon)`` (1 where
    ``||w|| / ||g||`` is NaN or 0; norms in float32, ``g = rescale_grad * grad``); then
    SGD: ``g = clip(rescale_grad * grad) + wd * w; mom = momentum * mom - lr * g;
    w += mom`` (or ``w -= lr * g``)."""
    if layer_wise:
        w_norm = _norm(weight.astype(numpy.float32))
        g_norm = _norm(_fresh_copy(grad.astype(numpy.float32), rescale_grad))
        with numpy.errstate(divide="ignore", invalid="ignore"):
            lars = eta * w_norm / (g_norm + wd * w_norm + epsilon)
        lars = _array_module(weight).where(_ratio_or_none(w_norm, g_norm)[1], lars, 1.0)
        lr = (lr * lars).astype(weight.dtype)
    _sgd_math(
        grad,
        weight,
        mom,
        lr=lr,
        wd=wd,
        momentum=momentum,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
    )


@register
class LARS(_MathOptimizer):
    """LARS, layer-wise adaptive rate scaling (MXNet 2's ``LARS``).

    Parameters whose name (from ``param_idx2name`` or the Trainer's Parameters) ends in
    ``gamma``, ``beta`` or ``bias`` are not scaled, as in MXNet.

    Args:
        learning_rate: default 0.1.
        momentum: in [0, 1), default 0.
        eta: LARS coefficient, >= 0.
        epsilon: >= 0.
        lazy_update: accepted for MXNet compatibility; row-sparse gradients are expanded.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.1
    _math = _lars_math
    _bucketable = False  # norms are per tensor
    _kernel = "lars"  # norms, then the scaled step: two launches per tensor on a GPU
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)
    eta: _Checked[float] = _Checked("eta", low=0.0)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0)

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        eta: float = 0.001,
        epsilon: float = 1e-8,
        lazy_update: bool = False,
        use_fused_step: bool = True,
        aggregate_num: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            use_fused_step=use_fused_step,
            aggregate_num=aggregate_num,
            **kwargs,
        )
        self.momentum, self.eta, self.epsilon = momentum, eta, epsilon
        self.lazy_update = bool(lazy_update)

    def create_state(self, index: Any, weight: ndarray) -> Any:
        return None if self.momentum == 0.0 else _zeros_state(weight)

    def _state_count(self) -> int:
        return 0 if self.momentum == 0.0 else 1

    def _layer_wise(self, index: Any) -> bool:
        if index in self.idx2name:
            name = self.idx2name[index]
        elif index in self.param_dict:
            name = getattr(self.param_dict[index], "name", str(index))
        else:
            name = str(index)
        return not name.endswith(_NO_LARS_SUFFIXES)

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(
            super()._hyper(index, lr, wd),
            momentum=self.momentum,
            eta=self.eta,
            epsilon=self.epsilon,
            layer_wise=self._layer_wise(index),
        )
