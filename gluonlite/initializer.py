"""Initializers (``mx.init``): how a parameter's first values are drawn.

An initializer is called as ``init(name, shape, dtype)`` and returns a NumPy array computed
on the host with ``mx.random``'s generator. ``Parameter`` calls it once and copies the result
to every device, so replicas are bit-identical and one seed gives the same values whatever
the devices. The MXNet formulas are kept (Xavier, MSRAPrelu, Orthogonal, Bilinear, ...); a
Parameter's initializer applies to the whole parameter, whatever its name, as in Gluon.
MXNet's own call form ``init(InitDesc(name), arr)`` fills ``arr`` in place and picks
``_init_weight``/``_init_bias``/``_init_gamma``/``_init_beta``/``_init_default`` by the
name's suffix. Strings name registered initializers: ``create('xavier')``.

A custom initializer overrides ``_init_weight(name, arr)``: ``arr`` is an ``mx.np.ndarray``
(on ``cpu(0)``, over the host array being filled), so ``arr[:] = ...``, in-place operators
and ``mx.np`` functions work on it, as in MXNet.

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
import re
from typing import TYPE_CHECKING, TypeVar, Union, overload, Any

import numpy

from . import _backend, random
from .device import Device
from .ndarray import ndarray
from collections.abc import Callable, Sequence
from ._typing import DTypeLike

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = [
    "InitDesc",
    "Initializer",
    "Uniform",
    "Normal",
    "Zero",
    "One",
    "Constant",
    "Xavier",
    "MSRAPrelu",
    "Orthogonal",
    "Bilinear",
    "LSTMBias",
    "RNNFused",
    "Load",
    "Mixed",
    "register",
    "alias",
    "create",
]

_REGISTRY: dict[str, type[Initializer]] = {}
_T = TypeVar("_T", bound=type)
_Array = Union[ndarray, "numpy.ndarray[Any, Any]"]
# An initializer argument: an Initializer, a registered name ('zeros'), or None (the default).
InitLike: TypeAlias = Union["Initializer", str, None]
_CPU0 = Device("cpu", 0)


def register(klass: _T) -> _T:
    """Class decorator: make ``klass`` creatable by its lower-case name (``create('xavier')``)."""
    if not (isinstance(klass, type) and issubclass(klass, Initializer)):
        raise TypeError(f"register expects an Initializer subclass, got {klass!r}")
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*names: str) -> Callable[[_T], _T]:
    """Class decorator: further names under which ``create`` finds the class."""

    def decorate(klass: _T) -> _T:
        for name in names:
            _REGISTRY[name.lower()] = klass
        return klass

    return decorate


class InitDesc(str):
    """A parameter's name with the attributes MXNet passes to initializers.

    Args:
        name: the parameter's name.
        attrs: e.g. ``{'__init__': 'zeros'}``: the initializer meant for this parameter.
        global_init: the initializer called first (which then dispatches).
    """

    attrs: dict[str, Any]
    global_init: Initializer | None

    def __new__(
        cls, name: str, attrs: dict[str, Any] | None = None, global_init: Initializer | None = None
    ) -> InitDesc:
        out = super().__new__(cls, name)
        out.attrs = dict(attrs or {})
        out.global_init = global_init
        return out


def _host(arr: _Array) -> numpy.ndarray[Any, Any]:
    """The host NumPy array under ``arr`` (an ``mx.np.ndarray`` on the cpu, or NumPy)."""
    if isinstance(arr, ndarray):
        if arr.device.device_type != "cpu":
            raise ValueError(f"initializers fill host arrays; got one on {arr.device}")
        return arr._data  # type: ignore[no-any-return]
    return arr


class Initializer(abc.ABC):
    """Base class: subclasses fill an array in ``_init_weight(name, arr)``.

    Two initializers are equal when they have the same type and constructor arguments.

    Example:
        >>> import gluonlite as mx
        >>> class Halves(mx.init.Initializer):
        ...     def _init_weight(self, name, arr):
        ...         arr[:] = 0.5
        >>> Halves()('w', (2,), 'float64')
        array([0.5, 0.5])
    """

    def __init__(self, **kwargs: Any) -> None:
        # The constructor arguments, for dumps(), repr() and ==.
        self._kwargs = kwargs
        self._verbose = False
        self._print_func: Callable[[Any], str] | None = None

    def set_verbosity(
        self, verbose: bool = False, print_func: Callable[[Any], str] | None = None
    ) -> "Initializer":
        """Print each initialized array's name and statistics (``print_func(arr)`` gives
        the text; by default the norm divided by the square root of the size)."""
        self._verbose, self._print_func = bool(verbose), print_func
        return self

    def _verbose_print(self, name: str, init: Any, arr: _Array) -> None:
        if not self._verbose:
            return
        host = _host(arr)
        text = (
            self._print_func(arr)
            if self._print_func is not None
            else f"{float(numpy.linalg.norm(host) / numpy.sqrt(max(host.size, 1))):.6g}"
        )
        print(f"Initialized {name} as {init}: {text}")

    @overload
    def __call__(self, name: str, shape: _Array, dtype: DTypeLike = ...) -> None: ...

    @overload
    def __call__(
        self, name: str, shape: Sequence[int], dtype: DTypeLike = ...
    ) -> numpy.ndarray[Any, Any]: ...

    def __call__(
        self, name: str, shape: Sequence[int] | _Array, dtype: DTypeLike = "float32"
    ) -> numpy.ndarray[Any, Any] | None:
        """Fresh values for parameter ``name`` as a NumPy array of ``shape`` and ``dtype``.

        MXNet's form ``init(desc, arr)`` (``arr`` an ``mx.np.ndarray`` or NumPy array) fills
        ``arr`` in place instead and returns None.
        """
        if isinstance(shape, (ndarray, numpy.ndarray)):
            self._fill(name if isinstance(name, InitDesc) else InitDesc(name), shape)
            return None
        shape = tuple(int(n) for n in shape)
        dtype = _backend.dtype_of(dtype)
        values = self._values(InitDesc(name), shape, dtype)
        self._verbose_print(name, self, values)
        return values

    def _values(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        draw = _fast_draw(type(self))
        if draw is not None:
            # A built-in initializer draws straight in the target dtype (no zeros first,
            # no float64 intermediate where the formula allows).
            return draw(self, name, shape, dtype)
        host = numpy.zeros(shape, dtype=dtype)
        arr = ndarray(host, _CPU0)
        self._init_weight(name, arr)
        out: numpy.ndarray[Any, Any] = arr._data
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(
                f"{type(self).__name__}._init_weight for {str(name)!r} changed "
                f"the array to shape {out.shape} and dtype {out.dtype}; write "
                f"into it (arr[:] = ...) instead"
            )
        return out

    def _fill(self, desc: InitDesc, arr: _Array) -> None:
        """MXNet's dispatch: the parameter's own ``__init__``, else by the name's suffix."""
        if desc.global_init is None:
            desc.global_init = self
        own = desc.attrs.get("__init__")
        if own:
            init = create(own)
            init._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        for suffix, method in (
            ("weight", self._init_weight),
            ("bias", self._init_bias),
            ("gamma", self._init_gamma),
            ("beta", self._init_beta),
            ("min", self._init_zero),
            ("max", self._init_one),
            ("running_mean", self._init_zero),
            ("running_var", self._init_one),
            ("moving_mean", self._init_zero),
            ("moving_var", self._init_one),
        ):
            if desc.endswith(suffix):
                method(desc, arr)
                break
        else:
            self._init_default(desc, arr)
        self._verbose_print(desc, self, arr)

    @abc.abstractmethod
    def _init_weight(self, name: str, arr: _Array) -> None:
        """Write the initial values of parameter ``name`` into ``arr`` (an mx.np.ndarray)."""

    def _init_bias(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 0

    def _init_gamma(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 1

    def _init_beta(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 0

    def _init_zero(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 0

    def _init_one(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 1

    def _init_default(self, name: str, arr: _Array) -> None:
        raise ValueError(
            f"Unknown initialization pattern for {str(name)!r}: by name, "
            f"{type(self).__name__} initializes only names ending in 'weight', "
            f"'bias', 'gamma' and 'beta'; give the parameter its own init"
        )

    def dumps(self) -> str:
        """The initializer as JSON ``[name, kwargs]``, accepted back by ``create``."""
        return json.dumps([type(self).__name__.lower(), self._kwargs], default=_jsonable)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Initializer) or type(self) is not type(other):
            return False
        if self._kwargs.keys() != other._kwargs.keys():
            return False
        return all(_same(self._kwargs[k], other._kwargs[k]) for k in self._kwargs)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({args})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, ndarray):
        return value.asnumpy().tolist()
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, Initializer):
        return json.loads(value.dumps())
    raise TypeError(f"cannot write {type(value).__name__} into an initializer's dumps()")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (ndarray, numpy.ndarray)) or isinstance(b, (ndarray, numpy.ndarray)):
        a, b = numpy.asarray(a), numpy.asarray(b)
        return a.shape == b.shape and bool((a == b).all())
    return bool(a == b)


_FAST: dict[type, Callable[..., numpy.ndarray[Any, Any]] | None] = {}


def _fast_draw(klass: type) -> Callable[..., numpy.ndarray[Any, Any]] | None:
    """``klass._draw`` where the class that defines ``_init_weight`` also defines ``_draw``
    (so a subclass overriding ``_init_weight`` is always honoured), else None."""
    if klass not in _FAST:
        owner = next(c for c in klass.__mro__ if "_init_weight" in c.__dict__)
        _FAST[klass] = owner.__dict__.get("_draw")
    return _FAST[klass]


def _uniform(
    shape: tuple[int, ...], dtype: numpy.dtype[Any], low: float, high: float
) -> numpy.ndarray[Any, Any]:
    """U[low, high) drawn in ``dtype`` (float32/float64 natively, others via float32)."""
    native = dtype if dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float32)
    out = random.generator().random(shape, dtype=native)
    out *= native.type(high - low)
    out += native.type(low)
    return out if native == dtype else out.astype(dtype)


def _normal(
    shape: tuple[int, ...], dtype: numpy.dtype[Any], sigma: float
) -> numpy.ndarray[Any, Any]:
    native = dtype if dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float32)
    out = random.generator().standard_normal(shape, dtype=native)
    out *= native.type(sigma)
    return out if native == dtype else out.astype(dtype)


def create(init: InitLike) -> Initializer:
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
            raise ValueError(f"Unknown initializer {name!r}; known names are {sorted(_REGISTRY)}")
        return klass(**kwargs)
    raise TypeError(
        f"Expected an mx.init.Initializer or its name, got {type(init).__name__} {init!r}"
    )


@register
@alias("zeros")
class Zero(Initializer):
    """All zeros."""

    def _init_weight(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 0

    def _draw(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        return numpy.zeros(shape, dtype=dtype)


@register
@alias("ones")
class One(Initializer):
    """All ones."""

    def _init_weight(self, name: str, arr: _Array) -> None:
        _host(arr)[...] = 1

    def _draw(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        return numpy.ones(shape, dtype=dtype)


@register
class Constant(Initializer):
    """A given value: a scalar, or an array that broadcasts to the parameter's shape."""

    def __init__(self, value: Any) -> None:
        super().__init__(value=value)
        self.value = value.asnumpy() if hasattr(value, "asnumpy") else numpy.asarray(value)

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        try:
            host[...] = numpy.broadcast_to(self.value, host.shape)
        except ValueError as e:
            raise ValueError(
                f"Constant initializer for {str(name)!r}: a value of shape "
                f"{self.value.shape} does not fit shape {host.shape}"
            ) from e


@register
class Uniform(Initializer):
    """Uniform on ``[-scale, scale]`` (the default initializer, scale 0.07)."""

    def __init__(self, scale: float = 0.07) -> None:
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        host[...] = self._draw(name, host.shape, host.dtype)

    def _draw(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        return _uniform(shape, dtype, -self.scale, self.scale)


@register
class Normal(Initializer):
    """Normal with mean 0 and standard deviation ``sigma``."""

    def __init__(self, sigma: float = 0.01) -> None:
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        host[...] = self._draw(name, host.shape, host.dtype)

    def _draw(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        return _normal(shape, dtype, self.sigma)


@register
class Xavier(Initializer):
    """Glorot/Xavier: scale ``sqrt(magnitude / factor)``, uniform in ``[-s, s]`` or normal.

    With ``fan_in = shape[1] * prod(shape[2:])`` and ``fan_out = shape[0] * prod(shape[2:])``,
    ``factor`` is their mean (``'avg'``), ``fan_in`` (``'in'``) or ``fan_out`` (``'out'``).
    Needs at least 2 dimensions.
    """

    def __init__(
        self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3
    ) -> None:
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"Xavier rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise ValueError(
                f"Xavier factor_type must be 'avg', 'in' or 'out', got {factor_type!r}"
            )
        self.rnd_type, self.factor_type = rnd_type, factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        host[...] = self._draw(name, host.shape, host.dtype)

    def _draw(
        self, name: str, shape: tuple[int, ...], dtype: numpy.dtype[Any]
    ) -> numpy.ndarray[Any, Any]:
        if len(shape) < 2:
            raise ValueError(
                f"{type(self).__name__} initializer cannot be applied to "
                f"parameter {str(name)!r} of shape {shape}: it needs at least 2 "
                f"dimensions (use init='zeros' or Uniform for vectors)"
            )
        receptive = float(numpy.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        scale = float(numpy.sqrt(self.magnitude / factor))
        if self.rnd_type == "uniform":
            return _uniform(shape, dtype, -scale, scale)
        return _normal(shape, dtype, scale)


@register
class MSRAPrelu(Xavier):
    """He/MSRA for PReLU: Xavier with normal draws and ``magnitude = 2 / (1 + slope**2)``."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25) -> None:
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope**2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Orthogonal(Initializer):
    """``scale`` times an orthogonal matrix from the SVD of a random ``[n_out, n_in]`` draw.

    ``n_out = shape[0]`` and ``n_in = prod(shape[1:])``; the factor of the draw's own shape
    is kept, so rows (or columns, whichever are fewer) are orthonormal before scaling.
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform") -> None:
        super().__init__(scale=scale, rand_type=rand_type)
        if rand_type not in ("uniform", "normal"):
            raise ValueError(
                f"Orthogonal rand_type must be 'uniform' or 'normal', got {rand_type!r}"
            )
        self.scale, self.rand_type = scale, rand_type

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        if host.ndim == 0:
            raise ValueError(
                f"Orthogonal initializer cannot be applied to the scalar parameter {str(name)!r}"
            )
        n_out = host.shape[0]
        n_in = int(numpy.prod(host.shape[1:]))
        gen = random.generator()
        draw = (
            gen.uniform(-1.0, 1.0, (n_out, n_in))
            if self.rand_type == "uniform"
            else gen.normal(0.0, 1.0, (n_out, n_in))
        )
        u, _, vt = numpy.linalg.svd(draw, full_matrices=False)
        basis = u if u.shape == draw.shape else vt
        host[...] = self.scale * basis.reshape(host.shape)


@register
class Bilinear(Initializer):
    """Bilinear-interpolation kernels for upsampling with a transposed convolution
    (a 4-d weight; every ``(out, in)`` channel pair gets the same ``k x k`` kernel)."""

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        if host.ndim != 4:
            raise ValueError(
                f"Bilinear initializer needs a 4-d weight, got parameter "
                f"{str(name)!r} of shape {host.shape}"
            )
        height, width = host.shape[2], host.shape[3]
        f = numpy.ceil(width / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        x = numpy.arange(width)
        y = numpy.arange(height)
        kernel = numpy.outer(1 - numpy.abs(y / f - c), 1 - numpy.abs(x / f - c))
        host[...] = kernel


@register
class LSTMBias(Initializer):
    """Zeros, except the forget gate's quarter of an LSTM bias (the second of the four
    gate blocks i, f, c, o), which is ``forget_bias``."""

    def __init__(self, forget_bias: float = 1.0) -> None:
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        if host.ndim != 1 or host.shape[0] % 4:
            raise ValueError(
                f"LSTMBias needs a 1-d bias whose size is a multiple of 4 (the "
                f"four gates), got parameter {str(name)!r} of shape "
                f"{host.shape}"
            )
        hidden = host.shape[0] // 4
        host[...] = 0
        host[hidden : 2 * hidden] = self.forget_bias


_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


@register
class RNNFused(Initializer):
    """The flat parameter vector of a fused RNN layer (``npx.rnn``'s layout): for each
    layer and direction the input-to-hidden then hidden-to-hidden weights (and, with
    ``projection_size``, the LSTM's ``[projection_size, state_size]`` projection), then for
    each layer and direction the two biases; each part uses its own initializer (weights:
    ``Xavier()`` by default; biases: ``'zeros'``; an LSTM's forget gates get
    ``forget_bias``).
    """

    def __init__(
        self,
        mode: str,
        num_layers: int,
        state_size: int,
        bidirectional: bool = False,
        projection_size: int | None = None,
        i2h_weight_initializer: InitLike = None,
        h2h_weight_initializer: InitLike = None,
        i2h_bias_initializer: InitLike = "zeros",
        h2h_bias_initializer: InitLike = "zeros",
        h2r_weight_initializer: InitLike = None,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__(
            mode=mode,
            num_layers=num_layers,
            state_size=state_size,
            bidirectional=bidirectional,
            projection_size=projection_size,
            i2h_weight_initializer=i2h_weight_initializer,
            h2h_weight_initializer=h2h_weight_initializer,
            i2h_bias_initializer=i2h_bias_initializer,
            h2h_bias_initializer=h2h_bias_initializer,
            h2r_weight_initializer=h2r_weight_initializer,
            forget_bias=forget_bias,
        )
        if mode not in _GATES:
            raise ValueError(f"RNNFused mode must be one of {sorted(_GATES)}, got {mode!r}")
        if projection_size is not None:
            if mode != "lstm":
                raise ValueError(
                    f"RNNFused: projection_size is only supported for "
                    f"mode='lstm' (LSTMP), got mode={mode!r}"
                )
            if (
                isinstance(projection_size, bool)
                or not isinstance(projection_size, (int, numpy.integer))
                or projection_size < 1
            ):
                raise ValueError(
                    f"RNNFused: projection_size must be a positive int or None, "
                    f"got {projection_size!r}"
                )
        self.mode, self.num_layers, self.state_size = mode, int(num_layers), int(state_size)
        self.projection_size = None if projection_size is None else int(projection_size)
        self.directions = 2 if bidirectional else 1
        self.forget_bias = forget_bias
        self._inits = (
            [
                create(i) if i is not None else Xavier()
                for i in (i2h_weight_initializer, h2h_weight_initializer)
            ]
            + [create(i) for i in (i2h_bias_initializer, h2h_bias_initializer)]
            + [create(h2r_weight_initializer) if h2r_weight_initializer is not None else Xavier()]
        )

    def _layout(self, size: int) -> list[tuple[str, tuple[int, ...]]]:
        """``(kind, shape)`` of each part in order, the input size solved from ``size``."""
        gates, hidden, dirs = _GATES[self.mode], self.state_size, self.directions
        proj = self.projection_size
        out = hidden if proj is None else proj  # the recurrent state's (and output's) width
        own = 0 if proj is None else proj * hidden
        rows = gates * hidden
        # Every layer's parameters but layer 0's input weights are known; solve for those.
        rest = (self.num_layers - 1) * dirs * rows * (dirs * out) + self.num_layers * dirs * (
            rows * out + 2 * rows + own
        )
        if size <= rest or (size - rest) % (dirs * rows):
            raise ValueError(
                f"RNNFused: a vector of {size} values does not fit a "
                f"{self.num_layers}-layer {self.mode} with state size {hidden}"
                + ("" if proj is None else f" and projection size {proj}")
            )
        in_size = (size - rest) // (dirs * rows)
        parts: list[tuple[str, tuple[int, ...]]] = []
        for layer in range(self.num_layers):
            width = in_size if layer == 0 else dirs * out
            for _ in range(dirs):
                parts += [("i2h_weight", (rows, width)), ("h2h_weight", (rows, out))]
                if proj is not None:
                    parts.append(("h2r_weight", (proj, hidden)))
        for _ in range(self.num_layers * dirs):
            parts += [("i2h_bias", (rows,)), ("h2h_bias", (rows,))]
        return parts

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        kinds = ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias", "h2r_weight")
        start = 0
        for kind, shape in self._layout(host.size):
            n = int(numpy.prod(shape))
            init = self._inits[kinds.index(kind)]
            part = init(f"{name}_{kind}", shape, host.dtype)
            if self.mode == "lstm" and kind == "h2h_bias":
                part[self.state_size : 2 * self.state_size] = self.forget_bias
            host.reshape(-1)[start : start + n] = part.reshape(-1)
            start += n


@register
class Load(Initializer):
    """Values from a dict name -> array or a parameter file (``npx.save``/MXNet format);
    names missing there use ``default_init`` (else an error). MXNet's ``arg:``/``aux:``
    prefixes are ignored."""

    def __init__(self, param: Any, default_init: InitLike = None, verbose: bool = False) -> None:
        super().__init__()
        if isinstance(param, str):
            from .checkpoint import read_checkpoint  # reads MXNet files and gluonlite's

            param = {k: v.dense() for k, v in read_checkpoint(param).arrays.items()}
        if not isinstance(param, dict):
            raise TypeError(
                f"Load expects a dict name -> array or a file name, got {type(param).__name__}"
            )
        self.param = {}
        for key, value in param.items():
            name = key[4:] if key.startswith(("arg:", "aux:")) else key
            self.param[name] = (
                value.asnumpy() if hasattr(value, "asnumpy") else numpy.asarray(value)
            )
        self.default_init = None if default_init is None else create(default_init)
        self.verbose = verbose

    def _init_weight(self, name: str, arr: _Array) -> None:
        host = _host(arr)
        key = str(name)
        key = key[4:] if key.startswith(("arg:", "aux:")) else key
        if key in self.param:
            value = self.param[key]
            if value.shape != host.shape:
                raise ValueError(
                    f"Load: parameter {key!r} has shape {host.shape}, the "
                    f"loaded value has shape {value.shape}"
                )
            host[...] = value
            if self.verbose:
                print(f"Initialized {key} by loading")
            return
        if self.default_init is None:
            raise ValueError(f"Load: no value for parameter {key!r} and no default_init")
        host[...] = self.default_init(key, host.shape, host.dtype)
        if self.verbose:
            print(f"Initialized {key} by default")


@register
class Mixed(Initializer):
    """The first initializer whose pattern matches the parameter's name (``re.match``).

    Example:
        >>> import gluonlite as mx
        >>> init = mx.init.Mixed(['bias', '.*'], [mx.init.Zero(), mx.init.One()])
        >>> init('fc_weight', (2,)), init('bias', (2,))
        (array([1., 1.], dtype=float32), array([0., 0.], dtype=float32))
    """

    def __init__(self, patterns: Sequence[str], initializers: Sequence[InitLike]) -> None:
        super().__init__()
        if len(patterns) != len(initializers):
            raise ValueError(
                f"Mixed: {len(patterns)} patterns but {len(initializers)} initializers"
            )
        self.map = [(re.compile(p), create(i)) for p, i in zip(patterns, initializers)]

    def _init_weight(self, name: str, arr: _Array) -> None:
        for pattern, init in self.map:
            if pattern.match(str(name)):
                host = _host(arr)
                host[...] = init(str(name), host.shape, host.dtype)
                return
        raise ValueError(
            f"Mixed: parameter {str(name)!r} matches none of the patterns "
            f"{[p.pattern for p, _ in self.map]}; add '.*' as the last one"
        )
