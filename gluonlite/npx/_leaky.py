"""``mx.npx.leaky_relu``: MXNet's ``LeakyReLU`` family, one table row per ``act_type``.

Each row gives the forward ``f(xp, x, slope)`` and the derivative ``df(xp, x, y, slope)``
with respect to ``x``; ``prelu`` (a learned slope) and ``rrelu`` (a random slope in
training) are the two rows that need more than a formula.

>>> import gluonlite as mx
>>> mx.npx.leaky_relu(mx.np.array([-2., 3.]), act_type='leaky', slope=0.5).tolist()
[-1.0, 3.0]
"""

from __future__ import annotations

import math

import numpy

from .. import _backend, _cupy, autograd
from ..autograd import record_op, requires_grad
from .. import np as _np
from ..ndarray import ndarray
from ..np._dispatch import Recorded
from .nn import _check_same_device
from types import ModuleType
from typing import Any
from .._typing import RawArray
from collections.abc import Callable

__all__ = ["leaky_relu"]

# SELU's constants (Klambauer et al. 2017), as MXNet uses them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_LAMBDA = 1.0507009873554804934193349852946
# erfc's Chebyshev fit (fractional error below 1.2e-7, Numerical Recipes 6.2); used on the
# CPU where NumPy has no erf. CuPy has one.
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


def _erf(xp: ModuleType, x: RawArray) -> RawArray:
    if xp is not numpy:
        return _cupy.special().erf(x)
    z = numpy.abs(x)
    t = 1 / (1 + 0.5 * z)
    poly = numpy.zeros_like(t)
    for c in reversed(_ERFC[1:]):
        poly = t * (c + poly)
    erfc = t * numpy.exp(-z * z + _ERFC[0] + poly)
    return numpy.where(x >= 0, 1 - erfc, erfc - 1)


def _gelu(xp: ModuleType, x: RawArray) -> RawArray:
    return 0.5 * x * (1 + _erf(xp, x / math.sqrt(2)))


def _gelu_grad(xp: ModuleType, x: RawArray) -> RawArray:
    cdf = 0.5 * (1 + _erf(xp, x / math.sqrt(2)))
    return cdf + x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _gelu_tanh(xp: ModuleType, x: RawArray) -> RawArray:
    return 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_tanh_grad(xp: ModuleType, x: RawArray) -> RawArray:
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    t = xp.tanh(inner)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (
        1 + 3 * 0.044715 * x * x
    )


# act_type -> (forward(xp, x, slope), derivative(xp, x, y, slope)); slope is a scalar or,
# for prelu, gamma broadcast against x.
_ACTS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "leaky": (
        lambda xp, x, s: xp.where(x > 0, x, x * s),
        lambda xp, x, y, s: xp.where(x > 0, 1, s),
    ),
    "prelu": (
        lambda xp, x, s: xp.where(x > 0, x, x * s),
        lambda xp, x, y, s: xp.where(x > 0, 1, s),
    ),
    "rrelu": (
        lambda xp, x, s: xp.where(x > 0, x, x * s),
        lambda xp, x, y, s: xp.where(x > 0, 1, s),
    ),
    "elu": (
        lambda xp, x, s: xp.where(x > 0, x, s * xp.expm1(xp.minimum(x, 0))),
        lambda xp, x, y, s: xp.where(x > 0, 1, y + s),
    ),
    "selu": (
        lambda xp, x, s: (
            _SELU_LAMBDA * xp.where(x > 0, x, _SELU_ALPHA * xp.expm1(xp.minimum(x, 0)))
        ),
        lambda xp, x, y, s: xp.where(x > 0, _SELU_LAMBDA, y + _SELU_LAMBDA * _SELU_ALPHA),
    ),
    "gelu": (lambda xp, x, s: _gelu(xp, x), lambda xp, x, y, s: _gelu_grad(xp, x)),
    "gelu_erf": (lambda xp, x, s: _gelu(xp, x), lambda xp, x, y, s: _gelu_grad(xp, x)),
    "gelu_tanh": (lambda xp, x, s: _gelu_tanh(xp, x), lambda xp, x, y, s: _gelu_tanh_grad(xp, x)),
}


def leaky_relu(
    data: Any = None,
    gamma: Any = None,
    act_type: str = "leaky",
    slope: float = 0.25,
    lower_bound: float = 0.125,
    upper_bound: float = 0.334,
) -> ndarray:
    """MXNet's ``LeakyReLU``.

    Args:
        act_type: ``leaky`` (``x`` or ``slope * x``), ``prelu`` (slope ``gamma``, one per
            channel on axis 1, or a single one), ``rrelu`` (slope uniform in
            [``lower_bound``, ``upper_bound``) per element in training, their mean
            otherwise), ``elu`` (``slope * (exp(x) - 1)`` below 0), ``selu``, ``gelu``
            (erf form; ``gelu_tanh`` the tanh approximation).
    """
    op = "leaky_relu"
    if act_type not in _ACTS:
        raise ValueError(f"{op}: act_type must be one of {sorted(_ACTS)}, got {act_type!r}")
    forward, derivative = _ACTS[act_type]
    xp, dtype, device = data._xp, data.dtype, data.device
    compute = numpy.dtype(numpy.float32) if dtype.name in ("float16", "bfloat16") else dtype
    inputs: tuple[Any, ...] = (data,)
    with _backend.on(device):
        x = data._data.astype(compute, copy=False)
        s = slope
        if act_type == "prelu":
            if gamma is None:
                raise ValueError(f"{op}: act_type='prelu' needs gamma")
            _check_same_device(op, data, gamma)
            if gamma.ndim != 1 or (
                gamma.shape[0] != 1 and (data.ndim < 2 or gamma.shape[0] != data.shape[1])
            ):
                raise ValueError(
                    f"{op}: prelu gamma of shape {gamma.shape} does not fit data "
                    f"of shape {data.shape}; expected (1,) or (channels,)"
                )
            s = gamma._data.astype(compute, copy=False)
            if s.shape[0] != 1:
                s = s.reshape((1, -1) + (1,) * (data.ndim - 2))
            inputs = (data, gamma)
        elif act_type == "rrelu":
            if autograd.is_training():
                from .. import random

                draw = random.uniform(lower_bound, upper_bound, size=data.shape, device=device)
                s = draw._data.astype(compute, copy=False)
            else:
                s = (lower_bound + upper_bound) / 2
        y = forward(xp, x, s)
        out = ndarray(y.astype(dtype, copy=False), device)

    def backward(g: RawArray) -> Any:
        with _backend.on(device):
            g = g.astype(compute, copy=False)
            dx = (g * derivative(xp, x, y, s)).astype(dtype, copy=False)
            if len(inputs) == 1:
                return (dx,)
            dgamma = None
            if requires_grad(gamma):
                part = g * xp.where(x > 0, 0, x)
                dgamma = (
                    part.sum()
                    if gamma.shape[0] == 1
                    else part.sum(axis=tuple(a for a in range(x.ndim) if a != 1))
                )
                dgamma = dgamma.reshape(gamma.shape).astype(gamma.dtype, copy=False)
            return dx, dgamma

    if act_type.startswith("gelu"):  # erf has no recorded form here
        return record_op(out, inputs, backward, f"{op}(act_type={act_type!r})")
    rrelu_slope = ndarray(s, device) if act_type == "rrelu" and autograd.is_training() else None

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        # The same derivative on recorded arrays (create_graph).
        if len(inputs) == 2:
            slope_ = (
                gamma if gamma.shape[0] == 1 else gamma.reshape((1, -1) + (1,) * (data.ndim - 2))
            )
        else:
            slope_ = s if rrelu_slope is None else rrelu_slope
        dx = g * derivative(Recorded(device), data, out, slope_)
        if len(inputs) == 1:
            return (dx,)
        dgamma = None
        if requires_grad(gamma):
            part = g * _np.where(data > 0, 0, data)
            dgamma = (
                part.sum()
                if gamma.shape[0] == 1
                else part.sum(axis=tuple(a for a in range(data.ndim) if a != 1))
            )
            dgamma = dgamma.reshape(gamma.shape)
        return dx, dgamma

    return record_op(out, inputs, backward, graph)
