"""Adam (MXNet's ``adam``), with the bias correction folded into the learning rate.

Layers as in ``sgd.py``: :class:`Adam`, the pure function :func:`adam`,
``_single_tensor_adam`` and ``_multi_tensor_adam`` (fused kernel on float32 CuPy arrays).
"""

from __future__ import annotations

import math
from typing import Sequence, Any

from .. import _kernels
from ._foreach import _array_module, _check_tensors, _foreach_multi, _foreach_single, _scratch
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["Adam", "adam"]


def _adam_math(
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
    """MXNet's ``adam_update`` on whole arrays, in place on weight, mean and var.

    ``lr`` is already bias-corrected. Weight decay is added before clipping here (MXNet's
    Adam kernels), unlike SGD. Every operation writes into ``out=`` scratch arrays (no
    temporaries), in the order and with the roundings of the fused kernel
    ``multi_tensor_adam``.
    """
    xp = _array_module(weight)
    g, tmp = _scratch(weight, 2)
    if wd != 0:
        scaled = grad if rescale_grad == 1.0 else xp.multiply(grad, rescale_grad, out=tmp)
        xp.multiply(weight, wd, out=g)
        g += scaled  # wd * w + g: the same sum as the kernel's g + wd * w
    elif rescale_grad != 1.0:
        xp.multiply(grad, rescale_grad, out=g)
    else:
        g[...] = grad
    if clip_gradient is not None:
        xp.clip(g, -clip_gradient, clip_gradient, out=g)
    mean *= beta1
    mean += xp.multiply(g, 1.0 - beta1, out=tmp)
    var *= beta2
    tmp = xp.multiply(g, 1.0 - beta2, out=tmp)
    tmp *= g
    var += tmp
    xp.sqrt(var, out=tmp)
    tmp += epsilon
    xp.multiply(mean, lr, out=g)
    g /= tmp
    weight -= g


def _bias_corrected_lr(lr: float, step: int, beta1: float, beta2: float) -> float:
    # MXNet 2 folds both bias corrections into the learning rate instead of rescaling the
    # moments, which changes where epsilon acts; kept so results match MXNet's.
    return lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def _adam_plan(
    weights: Any,
    means: Sequence[RawArray],
    variances: Sequence[RawArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    steps: Sequence[int],
    beta1: float,
    beta2: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> tuple[list[Any], list[dict[str, Any]]]:
    buffers = list(zip(weights, means, variances))
    hypers = [
        dict(
            lr=_bias_corrected_lr(lr, t, beta1, beta2),
            wd=wd,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            rescale_grad=rescale_grad,
            clip_gradient=clip_gradient,
        )
        for lr, wd, t in zip(lrs, wds, steps)
    ]
    return buffers, hypers


def _single_tensor_adam(
    weights: Any,
    grads: Any,
    means: Sequence[RawArray],
    variances: Sequence[RawArray],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    steps: Sequence[int],
    beta1: float,
    beta2: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
) -> None:
    buffers, hypers = _adam_plan(
        weights,
        means,
        variances,
        lrs,
        wds,
        steps,
        beta1,
        beta2,
        epsilon,
        rescale_grad,
        clip_gradient,
    )
    _foreach_single(_adam_math, grads, buffers, hypers, lazy_update)


def _fused_adam(
    grads: Any, buffers: Any, lrs: Sequence[float], wds: Sequence[float], **shared: Any
) -> None:
    weights, means, variances = ([b[k] for b in buffers] for k in range(3))
    _kernels.multi_tensor_adam(weights, grads, means, variances, lrs, wds, **shared)


def _multi_tensor_adam(
    weights: Any,
    grads: Any,
    means: Sequence[RawArray],
    variances: Sequence[RawArray],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    steps: Sequence[int],
    beta1: float,
    beta2: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
) -> None:
    buffers, hypers = _adam_plan(
        weights,
        means,
        variances,
        lrs,
        wds,
        steps,
        beta1,
        beta2,
        epsilon,
        rescale_grad,
        clip_gradient,
    )
    _foreach_multi(_adam_math, grads, buffers, hypers, lazy_update, _fused_adam)


def adam(
    weights: Sequence[Any],
    grads: Sequence[Any],
    means: Sequence[Any],
    variances: Sequence[Any],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    steps: Sequence[int],
    beta1: float,
    beta2: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
    foreach: bool = True,
) -> None:
    """MXNet's Adam on lists of raw arrays, updating weights, means and variances in place.

    Per tensor at its step ``t`` (1 for the first update), with
    ``g = clip(rescale_grad * grad + wd * weight, clip_gradient)``::

        mean = beta1 * mean + (1 - beta1) * g
        var = beta2 * var + (1 - beta2) * g * g
        weight -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * mean / (sqrt(var) + epsilon)

    Args:
        weights, grads: as in :func:`sgd`.
        means, variances: first and second moment arrays shaped like the weights.
        lrs, wds: learning rate and weight decay per tensor (multipliers already applied).
        steps: the update count ``t`` per tensor, for the bias correction.
        beta1, beta2, epsilon, rescale_grad, clip_gradient: as in :class:`Adam`.
        lazy_update: update only the rows present in row-sparse gradients.
        foreach: use the multi-tensor path instead of the loop.
    """
    _check_tensors("adam", weights, grads, [means, variances, lrs, wds, steps])
    fn = _multi_tensor_adam if foreach else _single_tensor_adam
    fn(
        weights,
        grads,
        means,
        variances,
        lrs=lrs,
        wds=wds,
        steps=steps,
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
        lazy_update=lazy_update,
    )


class _AdamFamily(_MathOptimizer):
    """What Adam and its relatives share: ``(mean, var)`` states, ``beta1``, ``beta2``,
    ``epsilon``, and (``correct_bias``) the bias correction folded into the learning rate."""

    _default_lr = 0.001
    beta1: _Checked[float] = _Checked("beta1", low=0.0, high=1.0, high_open=True)
    beta2: _Checked[float] = _Checked("beta2", low=0.0, high=1.0, high_open=True)
    epsilon: _Checked[float] = _Checked("epsilon", low=0.0, low_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        correct_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.correct_bias = bool(correct_bias)

    def create_state(self, index: Any, weight: ndarray) -> Any:
        """``(mean, var)``: two zero arrays like ``weight``."""
        return (_zeros_state(weight), _zeros_state(weight))

    def _state_count(self) -> int:
        return 2

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        if self.correct_bias:
            lr = _bias_corrected_lr(lr, self._index_update_count[index], self.beta1, self.beta2)
        return dict(
            super()._hyper(index, lr, wd), beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon
        )


@register
class Adam(_AdamFamily):
    """Adam (MXNet's ``adam``), with the bias correction folded into the learning rate.

    Args:
        learning_rate: default 0.001.
        beta1, beta2: decay rates of the moment estimates, in [0, 1).
        epsilon: added to ``sqrt(var)``, > 0.
        lazy_update: for row-sparse gradients, update only the rows present.
        **kwargs: see :class:`Optimizer`.
    """

    _lazy_rows = True

    def __init__(
        self,
        learning_rate: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        lazy_update: bool = False,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            use_fused_step=use_fused_step,
            **kwargs,
        )
        self.lazy_update = bool(lazy_update)

    def _hyper(self, index: Any, lr: float, wd: float) -> dict[str, Any]:
        return dict(lr=lr, wd=wd, t=self._index_update_count[index])

    def _apply(
        self, grads: Any, buffers: Any, hypers: Sequence[dict[str, Any]], foreach: bool
    ) -> None:
        adam(
            [b[0] for b in buffers],
            grads,
            [b[1] for b in buffers],
            [b[2] for b in buffers],
            lrs=[h["lr"] for h in hypers],
            wds=[h["wd"] for h in hypers],
            steps=[h["t"] for h in hypers],
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            rescale_grad=self.rescale_grad,
            clip_gradient=self.clip_gradient,
            lazy_update=self.lazy_update,
            foreach=foreach,
        )
