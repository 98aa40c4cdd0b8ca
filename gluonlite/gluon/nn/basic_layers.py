"""``mx.gluon.nn`` basic layers: ``Sequential``, ``Dense``, ``Embedding``, ``Dropout``.

>>> import gluonlite as mx
>>> net = mx.gluon.nn.Sequential()
>>> net.add(mx.gluon.nn.Dense(4, activation='relu'), mx.gluon.nn.Dense(2))
>>> net.initialize(mx.init.Xavier())
>>> net(mx.np.ones((3, 5))).shape
(3, 2)
>>> {name: p.shape for name, p in net.collect_params().items()}
{'0.weight': (4, 5), '0.bias': (4,), '1.weight': (2, 4), '1.bias': (2,)}
"""

from __future__ import annotations

import warnings

import numpy

from ... import np, npx
from ..block import Block, HybridBlock
from .activations import Activation
from ..parameter import Parameter
from collections.abc import Callable, Sequence
from typing import Any
from ..._typing import DTypeLike
from ...initializer import InitLike
from ...ndarray import ndarray

__all__ = [
    "Sequential",
    "HybridSequential",
    "Dense",
    "Embedding",
    "Dropout",
    "Lambda",
    "HybridLambda",
    "Identity",
    "Flatten",
    "Concatenate",
    "HybridConcatenate",
]


class Sequential(Block):
    """Children run one after the other; they are named ``0``, ``1``, ... by position.

    ``len(net)``, ``net[i]`` and ``net[a:b]`` (a new container sharing the same blocks)
    work as on a list.
    """

    _summary_container = True  # summary() gives the children rows, not the container

    def __init__(self, prefix: str | None = None, params: Any = None) -> None:
        super().__init__(prefix, params)

    def add(self, *blocks: Block) -> None:
        """Append ``blocks`` in order.

        Raises:
            TypeError: one of them is not a Block (nothing is added then).
        """
        for i, block in enumerate(blocks):
            if not isinstance(block, Block):
                raise TypeError(
                    f"{type(self).__name__}.add: argument {i} is a "
                    f"{type(block).__name__}, not a Block"
                )
        for block in blocks:
            self.register_child(block)

    def forward(self, x: ndarray, *args: Any) -> Any:
        for block in self._children.values():
            x = block(x, *args)
            args = ()
            # As in MXNet, a layer returning a tuple feeds all of it to the next layer.
            if isinstance(x, (tuple, list)):
                x, args = x[0], tuple(x[1:])
        return x

    def __getitem__(self, key: str) -> Any:
        layers = list(self._children.values())
        if isinstance(key, slice):
            net = type(self)()
            net.add(*layers[key])
            return net
        if not isinstance(key, (int, numpy.integer)):
            raise TypeError(
                f"{type(self).__name__} indices must be ints or slices, got {type(key).__name__}"
            )
        return layers[key]

    def __len__(self) -> int:
        return len(self._children)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """As ``Block.hybridize``; warns, as MXNet does, when every child is a HybridBlock
        (a ``HybridSequential`` is the container for those)."""
        if (
            type(self) is Sequential
            and self._children
            and all(isinstance(c, HybridBlock) for c in self._children.values())
        ):
            warnings.warn(
                f"All children of this Sequential layer '{self!r}' are "
                f"HybridBlocks. Consider using HybridSequential for the best "
                f"performance.",
                UserWarning,
                stacklevel=2,
            )
        super().hybridize(active, **kwargs)


class HybridSequential(Sequential, HybridBlock):
    """``Sequential`` for HybridBlocks (MXNet compiles it; gluonlite runs it eagerly)."""

    def __init__(self, prefix: str | None = None, params: Any = None) -> None:
        HybridBlock.__init__(self, prefix, params)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        HybridBlock.hybridize(self, active, **kwargs)


class Dense(HybridBlock):
    """A fully connected layer: ``activation(x @ weight.T + bias)``.

    Args:
        units: output size; 0 is accepted, as in MXNet (the layer then outputs nothing).
        activation: name of an activation applied to the output (see ``Activation``).
        use_bias: whether to add a bias.
        flatten: collapse all input axes but the first into the ``in_units`` axis; when
            False, the layer applies to the last axis.
        dtype: of the parameters.
        weight_initializer, bias_initializer: per-parameter initializers (they take
            precedence over the one given to ``initialize``).
        in_units: input size; 0 means "infer it from the first input" (deferred
            initialization).
        prefix, params: MXNet 1.x (deprecated), see ``Block``.

    The weight has shape ``(units, in_units)``, the bias ``(units,)``.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        flatten: bool = True,
        dtype: DTypeLike = "float32",
        weight_initializer: InitLike = None,
        bias_initializer: InitLike = "zeros",
        in_units: int = 0,
        prefix: str | None = None,
        params: Any = None,
    ) -> None:
        for arg, value in (("units", units), ("in_units", in_units)):
            if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 0:
                raise ValueError(f"Dense: {arg} must be an int >= 0, got {value!r}")
        if activation is not None and not isinstance(activation, str):
            raise TypeError(
                f"Dense: activation must be the name of an activation or None, "
                f"got {type(activation).__name__}"
            )
        super().__init__(prefix, params)
        self._units, self._in_units, self._flatten = int(units), int(in_units), flatten
        # Dense(0) has an empty output; its weight has no element to defer on.
        shape = (self._units, self._in_units)
        self.weight = Parameter(
            "weight", shape=shape, dtype=dtype, init=weight_initializer, allow_deferred_init=True
        )
        self.bias = (
            Parameter(
                "bias",
                shape=(self._units,),
                dtype=dtype,
                init=bias_initializer,
                allow_deferred_init=True,
            )
            if use_bias
            else None
        )
        self.act = Activation(activation) if activation is not None else None

    def infer_shape(self, x: ndarray, *args: Any) -> None:
        in_units = int(numpy.prod(x.shape[1:])) if self._flatten else x.shape[-1]
        self.weight.shape = (self._units, in_units)

    def forward(self, x: ndarray) -> Any:
        if self._units == 0:
            lead = (x.shape[0],) if self._flatten else x.shape[:-1]
            return np.zeros(lead + (0,), dtype=self.weight.dtype, device=x.device)
        device = x.device
        out = npx.fully_connected(
            x,
            self.weight.data(device),
            None if self.bias is None else self.bias.data(device),
            num_hidden=self._units,
            no_bias=self.bias is None,
            flatten=self._flatten,
        )
        return out if self.act is None else self.act(out)

    def __repr__(self) -> str:
        shape = self.weight.shape
        in_units = shape[1] if shape[1] > 0 else None  # type: ignore[index]
        act = repr(self.act) if self.act is not None else "linear"
        return f"Dense({in_units} -> {self._units}, {act})"


class Embedding(HybridBlock):
    """Maps integer ids to rows of a ``(input_dim, output_dim)`` weight.

    With ``sparse_grad=True`` the weight's gradient is row-sparse (only the rows looked up
    in the batch), and an optimizer updates only those rows (lazy update).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dtype: DTypeLike = "float32",
        weight_initializer: InitLike = None,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__()
        self._input_dim, self._output_dim = int(input_dim), int(output_dim)
        self._dtype, self._sparse_grad = dtype, sparse_grad
        self.weight = Parameter(
            "weight",
            shape=(self._input_dim, self._output_dim),
            dtype=dtype,
            init=weight_initializer,
            grad_stype="row_sparse" if sparse_grad else "default",
        )

    def forward(self, x: ndarray) -> Any:
        return npx.embedding(
            x,
            self.weight.data(x.device),
            input_dim=self._input_dim,
            output_dim=self._output_dim,
            sparse_grad=self._sparse_grad,
        )

    def _extra_repr(self) -> str:
        return f"{self._input_dim} -> {self._output_dim}, {numpy.dtype(self._dtype).name}"


class Dropout(HybridBlock):
    """Zeroes each input element with probability ``rate`` in train mode (inside
    ``autograd.record()``) and scales the rest by ``1 / (1 - rate)``; identity otherwise.

    ``axes`` shares one mask along those axes (e.g. ``axes=(1,)`` for variational dropout).
    """

    def __init__(self, rate: float, axes: Sequence[int] = ()) -> None:
        super().__init__()
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self._rate, self._axes = rate, tuple(axes)

    def forward(self, x: ndarray) -> Any:
        return npx.dropout(x, p=self._rate, axes=self._axes)

    def _extra_repr(self) -> str:
        return f"p = {self._rate}, axes={self._axes}"


class Lambda(Block):
    """Wraps a function as a Block: ``Lambda(fn)`` or ``Lambda('tanh')`` (an ``mx.np``
    function by name)."""

    def __init__(self, function: Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(prefix)
        self._func = _resolve_function(type(self).__name__, function)

    def forward(self, *args: Any) -> Any:
        return self._func(*args)

    def _extra_repr(self) -> str:
        return getattr(self._func, "__name__", repr(self._func))


class HybridLambda(HybridBlock):
    """``Lambda`` for hybrid models. MXNet 1.x passed ``F`` first: a function taking one
    more argument than it is called with gets ``mx.np`` as ``F``."""

    def __init__(self, function: Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(prefix)
        self._func = _resolve_function(type(self).__name__, function)

    def forward(self, *args: Any) -> Any:
        try:
            return self._func(*args)
        except TypeError:
            import inspect

            try:
                wants_f = len(inspect.signature(self._func).parameters) == len(args) + 1
            except (TypeError, ValueError):
                wants_f = False
            if not wants_f:
                raise
        return self._func(np, *args)

    def _extra_repr(self) -> str:
        return getattr(self._func, "__name__", repr(self._func))


def _resolve_function(layer: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if isinstance(function, str):
        found = getattr(np, function, None) or getattr(npx, function, None)
        if found is None or not callable(found):
            raise ValueError(f"{layer}: no function {function!r} in mx.np or mx.npx")
        return found
    if not callable(function):
        raise TypeError(f"{layer}: expected a function or its name, got {type(function).__name__}")
    return function


class Identity(HybridBlock):
    """Returns its input unchanged (a placeholder in containers)."""

    def forward(self, x: ndarray) -> Any:
        return x


class Flatten(HybridBlock):
    """Reshapes ``(N, d1, d2, ...)`` to ``(N, d1 * d2 * ...)``."""

    def forward(self, x: ndarray) -> Any:
        return x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)


class Concatenate(Sequential):
    """Runs every child on the same input and concatenates their outputs along ``axis``."""

    def __init__(self, axis: int = -1, prefix: str | None = None, params: Any = None) -> None:
        super().__init__(prefix, params)
        if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def forward(self, x: ndarray) -> Any:
        return np.concatenate([block(x) for block in self._children.values()], axis=self.axis)


class HybridConcatenate(Concatenate, HybridBlock):
    """``Concatenate`` for HybridBlocks."""

    def __init__(self, axis: int = -1, prefix: str | None = None, params: Any = None) -> None:
        HybridBlock.__init__(self, prefix, params)
        if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        HybridBlock.hybridize(self, active, **kwargs)
