"""``mx.np.random``: MXNet 2's samplers, one row per distribution.

Every draw comes from the one host generator that ``mx.random.seed`` (or
``mx.np.random.seed``) seeds, and is then placed on ``device``, so a seed gives the same
values on every device kind. Samples are float32 unless ``dtype`` says otherwise (integers
for ``randint``, ``multinomial`` and ``choice`` of a range). Distribution parameters may be
arrays; they must be on the device the samples go to. Samples of ``normal``, ``uniform``,
``logistic``, ``gumbel``, ``laplace``, ``lognormal``, ``exponential`` and ``rayleigh`` are
differentiable in their array parameters (reparameterised: the noise is held fixed).

>>> import gluonlite as mx
>>> mx.random.seed(3)
>>> a = mx.np.random.normal(0, 1, size=(2,))
>>> mx.np.random.seed(3)
>>> bool((mx.np.random.normal(0, 1, size=(2,), device=mx.cpu(1)).asnumpy() == a.asnumpy()).all())
True
"""

from __future__ import annotations

import numpy

from .. import _backend, random as _random
from .._compat import resolve_ctx
from .._typing import DTypeLike
from ..ndarray import ArrayLike
from ..device import Device, as_device
from ..autograd import Node, _recording, requires_grad
from ..ndarray import ndarray, _device_mismatch, _unbroadcast
from ._dispatch import renamed_error

__all__ = [
    "randint",
    "uniform",
    "normal",
    "choice",
    "rand",
    "multinomial",
    "multivariate_normal",
    "logistic",
    "gumbel",
    "f",
    "laplace",
    "shuffle",
    "randn",
    "gamma",
    "beta",
    "chisquare",
    "exponential",
    "lognormal",
    "weibull",
    "pareto",
    "power",
    "rayleigh",
    "seed",
]

_F32 = numpy.dtype(numpy.float32)
_I64 = numpy.dtype(numpy.int64)
_HOST = Device("cpu", 0)

# name: (numpy.random.Generator method, parameters with defaults (required: no default)),
# default dtype
_REQUIRED = object()
DISTRIBUTIONS = {
    "uniform": ("uniform", (("low", 0.0), ("high", 1.0)), _F32),
    "normal": ("normal", (("loc", 0.0), ("scale", 1.0)), _F32),
    "logistic": ("logistic", (("loc", 0.0), ("scale", 1.0)), _F32),
    "gumbel": ("gumbel", (("loc", 0.0), ("scale", 1.0)), _F32),
    "laplace": ("laplace", (("loc", 0.0), ("scale", 1.0)), _F32),
    "f": ("f", (("dfnum", _REQUIRED), ("dfden", _REQUIRED)), _F32),
    "gamma": ("gamma", (("shape", _REQUIRED), ("scale", 1.0)), _F32),
    "beta": ("beta", (("a", _REQUIRED), ("b", _REQUIRED)), _F32),
    "chisquare": ("chisquare", (("df", _REQUIRED),), _F32),
    "exponential": ("exponential", (("scale", 1.0),), _F32),
    "lognormal": ("lognormal", (("mean", 0.0), ("sigma", 1.0)), _F32),
    "weibull": ("weibull", (("a", _REQUIRED),), _F32),
    "pareto": ("pareto", (("a", _REQUIRED),), _F32),
    "power": ("power", (("a", _REQUIRED),), _F32),
    "rayleigh": ("rayleigh", (("scale", 1.0),), _F32),
    "randint": ("integers", (("low", _REQUIRED), ("high", None)), _I64),
}


def seed(seed: int | None, device: Device | str = "all", ctx: Device | str | None = None) -> None:
    """Seed every draw (one stream serves all devices, so ``device`` only needs to be
    ``'all'`` or a device)."""
    _random.seed(seed)


def _host_param(name, value, device):
    """A distribution parameter as a host value; arrays must be on ``device``."""
    if isinstance(value, ndarray):
        if value.device != device:
            raise _device_mismatch(name, device, value.device)
        return value.asnumpy()
    return value


def _target(params, device, ctx):
    device = resolve_ctx(device, ctx, stacklevel=5)
    if device is None:
        arrays = [p for p in params if isinstance(p, ndarray)]
        return arrays[0].device if arrays else as_device(None)
    return as_device(device)


def _place(name, host, dtype, device, out):
    dt = dtype if isinstance(dtype, numpy.dtype) else _backend.dtype_of(dtype)
    host = numpy.asarray(host).astype(dt, copy=False)
    res = ndarray(_backend.transfer(host, _HOST, device), device)
    if out is not None:
        if not isinstance(out, ndarray) or out.shape != res.shape:
            raise ValueError(f"{name}: out must be an ndarray of shape {res.shape}")
        if out.device != device:
            raise _device_mismatch(name, device, out.device)
        with _backend.on(device):
            out._data[...] = res._data
        return out
    return res


def _sampler(name, method, params, default_dtype):
    names = [p for p, _ in params] + ["size"]

    def sample(*args, size=None, dtype=None, device=None, ctx=None, out=None, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} positional arguments")
        values = dict(params)
        values["size"] = size
        values.update(zip(names, args))
        for k, v in kwargs.items():
            if k not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            values[k] = v
        missing = [p for p, v in values.items() if v is _REQUIRED]
        if missing:
            raise TypeError(f"{name}() missing required argument {missing[0]!r}")
        given = [values[p] for p, _ in params]
        target = _target(given, device, ctx)
        host = [_host_param(name, v, target) for v in given]
        size = values["size"]
        try:
            drawn = getattr(_random.generator(), method)(*host, size=size)
        except (ValueError, TypeError) as e:
            raise renamed_error(name, e) from None
        dt = default_dtype if dtype is None else _backend.dtype_of(dtype)
        res = _place(name, drawn, dt, target, out)
        if (
            name in REPARAMETERISED
            and _recording.get()
            and any(isinstance(v, ndarray) and requires_grad(v) for v in given)
        ):
            _attach_reparam(name, res, given, host, drawn)
        return res

    sample.__name__ = sample.__qualname__ = name
    sample.__doc__ = (
        f"Samples of MXNet's ``np.random.{name}`` (NumPy's ``{method}``), "
        f"{default_dtype} unless ``dtype`` is given, on ``device``."
    )
    return sample


# Samples as differentiable functions of their parameters, y = f(params, noise) with the
# noise held fixed (the reparameterisation MXNet uses): d y / d param for each family.
def _loc_scale(y, loc, scale):
    z = (y - loc) / scale
    return numpy.ones_like(y), z


def _low_high(y, low, high):
    u = (y - low) / (high - low)
    return 1 - u, u


def _lognormal(y, mean, sigma):
    return y, y * (numpy.log(y) - mean) / sigma


REPARAMETERISED = {
    "normal": _loc_scale,
    "logistic": _loc_scale,
    "gumbel": _loc_scale,
    "laplace": _loc_scale,
    "uniform": _low_high,
    "lognormal": _lognormal,
    "exponential": lambda y, scale: (y / scale,),
    "rayleigh": lambda y, scale: (y / scale,),
}


def _attach_reparam(name, res, given, host, drawn) -> None:
    y = numpy.asarray(drawn, dtype=numpy.float64)
    partials = REPARAMETERISED[name](y, *[numpy.asarray(h, dtype=numpy.float64) for h in host])
    inputs = tuple(v for v in given if isinstance(v, ndarray))
    wanted = [(d, v) for d, v in zip(partials, given) if isinstance(v, ndarray)]
    device = res.device

    def backward(g):
        grads = []
        for d, v in wanted:
            dd = _backend.transfer(d.astype(g.dtype), _HOST, device)
            grads.append(_unbroadcast(g * dd, v.shape))
        return tuple(grads)

    res._node = Node(inputs, backward, f"random.{name}")


globals().update({name: _sampler(name, *row) for name, row in DISTRIBUTIONS.items()})


def rand(
    *size: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    """Uniform samples in [0, 1) of shape ``size``."""
    return uniform(  # noqa: F821
        0.0,
        1.0,
        size=size or None,
        dtype=dtype,
        device=device,
        ctx=ctx,
    )


def randn(
    *size: int, dtype: DTypeLike = None, device: Device | None = None, ctx: Device | None = None
) -> ndarray:
    """Standard normal samples of shape ``size``."""
    return normal(  # noqa: F821
        0.0,
        1.0,
        size=size or None,
        dtype=dtype,
        device=device,
        ctx=ctx,
    )


def choice(
    a: int | ArrayLike,
    size: int | tuple[int, ...] | None = None,
    replace: bool = True,
    p: ArrayLike | None = None,
    device: Device | None = None,
    ctx: Device | None = None,
    out: ndarray | None = None,
) -> ndarray:
    """Samples from ``a`` (an int: ``arange(a)``, int64; else the array's elements)."""
    target = _target([a, p], device, ctx)
    host_a = _host_param("choice", a, target)
    host_p = _host_param("choice", p, target)
    try:
        drawn = _random.generator().choice(host_a, size=size, replace=replace, p=host_p)
    except (ValueError, TypeError) as e:
        raise renamed_error("choice", e) from None
    dtype = _I64 if isinstance(a, int) else numpy.asarray(host_a).dtype
    return _place("choice", drawn, dtype, target, out)


def multinomial(
    n: int,
    pvals: ArrayLike,
    size: int | tuple[int, ...] | None = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    """Counts of ``n`` draws over categories with probabilities ``pvals`` (int64)."""
    target = _target([pvals], device, ctx)
    try:
        drawn = _random.generator().multinomial(
            n, _host_param("multinomial", pvals, target), size=size
        )
    except (ValueError, TypeError) as e:
        raise renamed_error("multinomial", e) from None
    return _place("multinomial", drawn, _I64, target, None)


def multivariate_normal(
    mean: ArrayLike,
    cov: ArrayLike,
    size: int | tuple[int, ...] | None = None,
    check_valid: str = "warn",
    tol: float = 1e-8,
    dtype: DTypeLike = None,
    device: Device | None = None,
    ctx: Device | None = None,
) -> ndarray:
    """Samples of N(mean, cov): shape ``size + mean.shape`` (float32 by default)."""
    target = _target([mean, cov], device, ctx)
    try:
        drawn = _random.generator().multivariate_normal(
            _host_param("multivariate_normal", mean, target),
            _host_param("multivariate_normal", cov, target),
            size=size,
            check_valid=check_valid,
            tol=tol,
        )
    except (ValueError, TypeError) as e:
        raise renamed_error("multivariate_normal", e) from None
    return _place(
        "multivariate_normal",
        drawn,
        _F32 if dtype is None else _backend.dtype_of(dtype),
        target,
        None,
    )


def shuffle(x: ndarray) -> None:
    """Shuffle ``x`` in place along its first axis."""
    if not isinstance(x, ndarray):
        raise TypeError(f"shuffle: expected an mx.np.ndarray, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError("shuffle: cannot shuffle a 0-d array")
    perm = _random.generator().permutation(x.shape[0])
    perm = _backend.transfer(perm, _HOST, x.device)
    with _backend.on(x.device):
        x._data[...] = x._data[perm]
