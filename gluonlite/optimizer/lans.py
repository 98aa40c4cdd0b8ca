"""LANS (MXNet's ``lans``): LAMB with normalized gradients and a Nesterov-style split."""

from __future__ import annotations

from ._foreach import _adam_moments, _array_module, _fresh_copy, _norm, _trust_ratio
from .lamb import _clamped_norm, _LayerWise
from .optimizer import register
from .._typing import RawArray

__all__ = ["LANS"]


def _lans_math(
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
    """``g = clip(rescale_grad * grad / ||rescale_grad * grad||)``; moments as Adam;
    ``s = sqrt(var / coef2) + epsilon``; ``u = mean / coef1 / s + wd * w``,
    ``w -= lr * beta1 * trust(||w||, ||u||) * u``; then with the updated ``w``:
    ``v = g / s + wd * w``, ``w -= lr * (1 - beta1) * trust(||w||, ||v||) * v``
    (``||w||`` from before the step, clamped)."""
    xp = _array_module(weight)
    g = _fresh_copy(grad, rescale_grad)
    g /= _norm(g).astype(g.dtype)
    if clip_gradient is not None:
        xp.clip(g, -clip_gradient, clip_gradient, out=g)
    _adam_moments(mean, var, g, beta1, beta2)
    r1 = _clamped_norm(weight, lower_bound, upper_bound)
    scale = xp.sqrt(var / coef2) + epsilon
    update = (mean / coef1) / scale
    if wd != 0:
        update += wd * weight
    ratio = _trust_ratio(r1, _norm(update))
    weight -= (lr * beta1 * ratio).astype(weight.dtype) * update.astype(weight.dtype, copy=False)
    update = g / scale
    if wd != 0:
        update += wd * weight
    ratio = _trust_ratio(r1, _norm(update))
    weight -= (lr * (1.0 - beta1) * ratio).astype(weight.dtype) * update.astype(
        weight.dtype, copy=False
    )


@register
class LANS(_LayerWise):
    """LANS (MXNet 2's ``LANS``).

    Args:
        learning_rate: default 0.001.
        beta1, beta2: in [0, 1).
        epsilon: > 0, default 1e-6.
        lower_bound, upper_bound: clamp the weight norm of the trust ratio; None: no bound.
        **kwargs: see :class:`Optimizer`.
    """

    _math = _lans_math
    _kernel = "lans"  # four launches per tensor on a GPU (norms, moments, two steps)
