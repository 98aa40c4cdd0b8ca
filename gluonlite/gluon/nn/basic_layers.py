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

import numpy

from ... import npx
from ..block import Block
from .activations import Activation
from ..parameter import Parameter

__all__ = ["Sequential", "HybridSequential", "Dense", "Embedding", "Dropout"]


class Sequential(Block):
    """Children run one after the other; they are named ``0``, ``1``, ... by position."""

    def add(self, *blocks: Block) -> None:
        """Append ``blocks`` in order."""
        for block in blocks:
            self.register_child(block)

    def forward(self, x, *args):
        for block in self._children.values():
            x = block(x, *args)
            args = ()
            # As in MXNet, a layer returning a tuple feeds all of it to the next layer.
            if isinstance(x, (tuple, list)):
                x, args = x[0], tuple(x[1:])
        return x

    def __getitem__(self, key):
        layers = list(self._children.values())
        if isinstance(key, slice):
            net = type(self)()
            net.add(*layers[key])
            return net
        return layers[key]

    def __len__(self) -> int:
        return len(self._children)


HybridSequential = Sequential


class Dense(Block):
    """A fully connected layer: ``activation(x @ weight.T + bias)``.

    Args:
        units: output size.
        activation: name of an activation applied to the output (see ``Activation``).
        use_bias: whether to add a bias.
        flatten: collapse all input axes but the first into the ``in_units`` axis; when
            False, the layer applies to the last axis.
        dtype: of the parameters.
        weight_initializer, bias_initializer: per-parameter initializers (they take
            precedence over the one given to ``initialize``).
        in_units: input size; 0 means "infer it from the first input" (deferred
            initialization).

    The weight has shape ``(units, in_units)``, the bias ``(units,)``.
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 flatten: bool = True, dtype="float32", weight_initializer=None,
                 bias_initializer="zeros", in_units: int = 0):
        super().__init__()
        if int(units) <= 0:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self._units, self._in_units, self._flatten = int(units), int(in_units), flatten
        self.weight = Parameter("weight", shape=(self._units, self._in_units), dtype=dtype,
                                init=weight_initializer, allow_deferred_init=True)
        self.bias = Parameter("bias", shape=(self._units,), dtype=dtype,
                              init=bias_initializer, allow_deferred_init=True) \
            if use_bias else None
        self.act = Activation(activation) if activation is not None else None

    def infer_shape(self, x, *args) -> None:
        in_units = int(numpy.prod(x.shape[1:])) if self._flatten else x.shape[-1]
        self.weight.shape = (self._units, in_units)

    def forward(self, x):
        device = x.device
        out = npx.fully_connected(x, self.weight.data(device),
                                  None if self.bias is None else self.bias.data(device),
                                  num_hidden=self._units, no_bias=self.bias is None,
                                  flatten=self._flatten)
        return out if self.act is None else self.act(out)

    def __repr__(self) -> str:
        shape = self.weight.shape
        in_units = shape[1] if shape[1] > 0 else None
        act = f", {self.act!r}" if self.act is not None else ""
        return f"Dense({in_units} -> {self._units}{act})"


class Embedding(Block):
    """Maps integer ids to rows of a ``(input_dim, output_dim)`` weight.

    With ``sparse_grad=True`` the weight's gradient is row-sparse (only the rows looked up
    in the batch), and an optimizer updates only those rows (lazy update).
    """

    def __init__(self, input_dim: int, output_dim: int, dtype="float32",
                 weight_initializer=None, sparse_grad: bool = False):
        super().__init__()
        self._input_dim, self._output_dim = int(input_dim), int(output_dim)
        self._dtype, self._sparse_grad = dtype, sparse_grad
        self.weight = Parameter("weight", shape=(self._input_dim, self._output_dim),
                                dtype=dtype, init=weight_initializer,
                                grad_stype="row_sparse" if sparse_grad else "default")

    def forward(self, x):
        return npx.embedding(x, self.weight.data(x.device), input_dim=self._input_dim,
                             output_dim=self._output_dim, sparse_grad=self._sparse_grad)

    def _extra_repr(self) -> str:
        return f"{self._input_dim} -> {self._output_dim}, {numpy.dtype(self._dtype).name}"


class Dropout(Block):
    """Zeroes each input element with probability ``rate`` in train mode (inside
    ``autograd.record()``) and scales the rest by ``1 / (1 - rate)``; identity otherwise.

    ``axes`` shares one mask along those axes (e.g. ``axes=(1,)`` for variational dropout).
    """

    def __init__(self, rate: float, axes=()):
        super().__init__()
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self._rate, self._axes = rate, tuple(axes)

    def forward(self, x):
        return npx.dropout(x, p=self._rate, axes=self._axes)

    def _extra_repr(self) -> str:
        return f"p = {self._rate}, axes={self._axes}"
