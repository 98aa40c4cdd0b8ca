"""SGLD (MXNet's ``sgld``): stochastic gradient Langevin dynamics."""

from __future__ import annotations

import math

import numpy

from .. import random as _random
from ._foreach import _array_module, _device_scope, _prepared_grad
from .optimizer import _MathOptimizer, register
from collections.abc import Sequence
from typing import Any
from .._typing import RawArray

__all__ = ["SGLD"]


def _noise(weight: RawArray, lr: float) -> RawArray:
    """``N(0, sqrt(lr))`` shaped like ``weight``, from gluonlite's host generator
    (``mx.random.seed`` fixes it), drawn in float64, cast to the weight's dtype and moved to
    its device."""
    noise = _random.generator().normal(0.0, math.sqrt(lr), weight.shape)
    with _device_scope(weight):
        return _array_module(weight).asarray(numpy.asarray(noise, dtype=weight.dtype))


def _sgld_math(
    grad: RawArray,
    weight: RawArray,
    *,
    lr: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """``g = clip(rescale_grad * grad) + wd * w; w += -lr / 2 * g + N(0, sqrt(lr))`` (the
    noise from :func:`_noise`)."""
    g = _prepared_grad(grad, weight, rescale_grad=rescale_grad, clip_gradient=clip_gradient, wd=wd)
    noise = _noise(weight, lr)
    weight -= (lr / 2) * g
    weight += noise


@register
class SGLD(_MathOptimizer):
    """Stochastic gradient Riemannian Langevin dynamics (MXNet 2's ``SGLD``).

    Args:
        learning_rate: default 0.1.
        **kwargs: see :class:`Optimizer`.
    """

    _default_lr = 0.1
    _math = _sgld_math
    _bucketable = False  # one noise draw per tensor, in the order of the reference loop
    _kernel = "sgld"

    def _fused_one(self, grad: RawArray, bufs: Sequence[RawArray], hyper: dict[str, Any]) -> None:
        # One launch of glo_sgld with the noise drawn on the host (the same stream as the
        # NumPy path) and passed as its state array. MXNet's SGLD has use_fused_step=False
        # by default; the kernel runs with use_fused_step=True.
        from .. import _kernels

        _kernels.optimizer_step("sgld", bufs[0], grad, [_noise(bufs[0], hyper["lr"])], **hyper)

    def __init__(
        self, learning_rate: float | None = None, use_fused_step: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, use_fused_step=use_fused_step, **kwargs)
