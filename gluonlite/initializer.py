"""Initializers (``mx.init``): how a parameter's first values are drawn.

An initializer is called as ``init(name, shape, dtype)`` and returns a NumPy array computed
on the host with ``mx.random``'s generator. ``Parameter`` calls it once and copies the result
to every device, so replicas are bit-identical and one seed gives the same values whatever
the devices. The MXNet formulas are kept (Xavier, MSRAPrelu, Orthogonal); an initializer
applies to the whole parameter, whatever its name. Strings name registered initializers:
``create('xavier')``.

>>> import gluonlite as mx
>>> mx.random.seed(0)
>>> w = mx.init.Xavier()('fc_weight', (64, 100), 'float32')
>>> w.shape, w.dtype, bool(abs(w).max() <= (3 / 82) ** 0.5)
((64, 100), dtype('float32'), True)
>>> mx.init.create('ones')('b', (2,), 'float32')
array([1., 1.], dtype=float32)
"""
from __future__ import annotations

import abc
import json

import numpy

from . import _backend, random

__all__ = ["Initializer", "Uniform", "Normal", "Zero", "One", "Constant", "Xavier",
           "MSRAPrelu", "Orthogonal", "register", "alias", "create"]

_REGISTRY: dict[str, type] = {}


def register(klass: type) -> type:
    """Class decorator: make ``klass`` creatable by its lower-case name (``create('xavier')``)."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*names: str):
    """Class decorator: further names under which ``create`` finds the class."""
    def decorate(klass: type) -> type:
        for name in names:
            _REGISTRY[name.lower()] = klass
        return klass
    return decorate


class Initializer(abc.ABC):
    """Base class: subclasses fill a host array in ``_init_weight(name, arr)``.

    Example:
        >>> import gluonlite as mx
        >>> class Halves(mx.init.Initializer):
        ...     def _init_weight(self, name, arr):
        ...         arr[:] = 0.5
        >>> Halves()('w', (2,), 'float64')
        array([0.5, 0.5])
    """

    def __init__(self, **kwargs):
        # The constructor arguments, for dumps() and repr().
        self._kwargs = kwargs

    def __call__(self, name: str, shape, dtype="float32") -> numpy.ndarray:
        """Fresh values for parameter ``name`` as a NumPy array of ``shape`` and ``dtype``."""
        arr = numpy.zeros(tuple(int(n) for n in shape), dtype=_backend.dtype_of(dtype))
        self._init_weight(name, arr)
        return arr

    @abc.abstractmethod
    def _init_weight(self, name: str, arr: numpy.ndarray) -> None:
        """Write the initial values of parameter ``name`` into the host array ``arr``."""

    def dumps(self) -> str:
        """The initializer as JSON ``[name, kwargs]``, accepted back by ``create``."""
        return json.dumps([type(self).__name__.lower(), self._kwargs])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({args})"


def create(init) -> Initializer:
    """The initializer meant by ``init``: an ``Initializer``, a registered name or ``dumps()``.

    Example:
        >>> import gluonlite as mx
        >>> mx.init.create('zeros'), mx.init.create('["normal", {"sigma": 0.5}]')
        (Zero(), Normal(sigma=0.5))
    """
    if isinstance(init, Initializer):
        return init
    if isinstance(init, str):
        if init.startswith("["):
            name, kwargs = json.loads(init)
        else:
            name, kwargs = init, {}
        klass = _REGISTRY.get(name.lower())
        if klass is None:
            raise ValueError(f"Unknown initializer {name!r}; known names are "
                             f"{sorted(_REGISTRY)}")
        return klass(**kwargs)
    raise TypeError(f"Expected an mx.init.Initializer or its name, got "
                    f"{type(init).__name__} {init!r}")


@register
@alias("zeros")
class Zero(Initializer):
    """All zeros."""

    def _init_weight(self, name, arr):
        arr[...] = 0


@register
@alias("ones")
class One(Initializer):
    """All ones."""

    def _init_weight(self, name, arr):
        arr[...] = 1


@register
class Constant(Initializer):
    """A given value: a scalar, or an array that broadcasts to the parameter's shape."""

    def __init__(self, value):
        super().__init__(value=value)
        self.value = value.asnumpy() if hasattr(value, "asnumpy") else numpy.asarray(value)

    def _init_weight(self, name, arr):
        try:
            arr[...] = numpy.broadcast_to(self.value, arr.shape)
        except ValueError as e:
            raise ValueError(f"Constant initializer for {name!r}: a value of shape "
                             f"{self.value.shape} does not fit shape {arr.shape}") from e


@register
class Uniform(Initializer):
    """Uniform on ``[-scale, scale]`` (the default initializer, scale 0.07)."""

    def __init__(self, scale: float = 0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, name, arr):
        arr[...] = random.generator().uniform(-self.scale, self.scale, arr.shape)


@register
class Normal(Initializer):
    """Normal with mean 0 and standard deviation ``sigma``."""

    def __init__(self, sigma: float = 0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, name, arr):
        arr[...] = random.generator().normal(0.0, self.sigma, arr.shape)


@register
class Xavier(Initializer):
    """Glorot/Xavier: scale ``sqrt(magnitude / factor)``, uniform in ``[-s, s]`` or normal.

    With ``fan_in = shape[1] * prod(shape[2:])`` and ``fan_out = shape[0] * prod(shape[2:])``,
    ``factor`` is their mean (``'avg'``), ``fan_in`` (``'in'``) or ``fan_out`` (``'out'``).
    Needs at least 2 dimensions.
    """

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg",
                 magnitude: float = 3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"Xavier rnd_type must be 'uniform' or 'gaussian', got "
                             f"{rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise ValueError(f"Xavier factor_type must be 'avg', 'in' or 'out', got "
                             f"{factor_type!r}")
        self.rnd_type, self.factor_type = rnd_type, factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name, arr):
        shape = arr.shape
        if len(shape) < 2:
            raise ValueError(f"{type(self).__name__} initializer cannot be applied to "
                             f"parameter {name!r} of shape {shape}: it needs at least 2 "
                             f"dimensions (use init='zeros' or Uniform for vectors)")
        receptive = float(numpy.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in,
                  "out": fan_out}[self.factor_type]
        scale = numpy.sqrt(self.magnitude / factor)
        gen = random.generator()
        if self.rnd_type == "uniform":
            arr[...] = gen.uniform(-scale, scale, shape)
        else:
            arr[...] = gen.normal(0.0, scale, shape)


@register
class MSRAPrelu(Xavier):
    """He/MSRA for PReLU: Xavier with normal draws and ``magnitude = 2 / (1 + slope**2)``."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Orthogonal(Initializer):
    """``scale`` times an orthogonal matrix from the SVD of a random ``[n_out, n_in]`` draw.

    ``n_out = shape[0]`` and ``n_in = prod(shape[1:])``; the factor of the draw's own shape
    is kept, so rows (or columns, whichever are fewer) are orthonormal before scaling.
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform"):
        super().__init__(scale=scale, rand_type=rand_type)
        if rand_type not in ("uniform", "normal"):
            raise ValueError(f"Orthogonal rand_type must be 'uniform' or 'normal', got "
                             f"{rand_type!r}")
        self.scale, self.rand_type = scale, rand_type

    def _init_weight(self, name, arr):
        if arr.ndim == 0:
            raise ValueError(f"Orthogonal initializer cannot be applied to the scalar "
                             f"parameter {name!r}")
        n_out = arr.shape[0]
        n_in = int(numpy.prod(arr.shape[1:]))
        gen = random.generator()
        draw = gen.uniform(-1.0, 1.0, (n_out, n_in)) if self.rand_type == "uniform" \
            else gen.normal(0.0, 1.0, (n_out, n_in))
        u, _, vt = numpy.linalg.svd(draw, full_matrices=False)
        basis = u if u.shape == draw.shape else vt
        arr[...] = self.scale * basis.reshape(arr.shape)
