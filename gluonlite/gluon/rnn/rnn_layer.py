"""Fused recurrent layers: ``RNN``, ``LSTM`` (with projection: LSTMP) and ``GRU``.

As in MXNet 2, each layer holds one flat Parameter ``rnn_param`` in ``npx.rnn``'s packing
(initialized by ``init.RNNFused``; its length is known once the input size is, from
``input_size`` or the first input) and runs ``npx.rnn`` over the whole sequence, so the
same code serves CPU and GPU and autograd differentiates it.

>>> import gluonlite as mx
>>> layer = mx.gluon.rnn.LSTM(4, num_layers=2, projection_size=3)
>>> layer.initialize()
>>> out, (h, c) = layer(mx.np.ones((5, 2, 6)), layer.begin_state(2))
>>> out.shape, h.shape, c.shape
((5, 2, 3), (2, 2, 3), (2, 2, 4))
"""

from __future__ import annotations

import numpy

from ... import initializer, np, npx
from ...ndarray import ndarray
from ...npx._rnn import param_size
from ..block import HybridBlock
from ..parameter import Parameter
from collections.abc import Callable
from typing import Any
from ..._typing import DTypeLike
from ...initializer import InitLike

__all__ = ["RNN", "LSTM", "GRU"]

_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def _positive(layer: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


class _RNNLayer(HybridBlock):
    """The fused recurrent layer behind ``RNN``, ``LSTM`` and ``GRU``."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        layout: str,
        dropout: float,
        bidirectional: bool,
        input_size: int,
        i2h_weight_initializer: InitLike,
        h2h_weight_initializer: InitLike,
        i2h_bias_initializer: InitLike,
        h2h_bias_initializer: InitLike,
        mode: str,
        projection_size: int | None,
        h2r_weight_initializer: InitLike,
        lstm_state_clip_min: float | None,
        lstm_state_clip_max: float | None,
        lstm_state_clip_nan: bool,
        dtype: DTypeLike,
        use_sequence_length: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if layout not in ("TNC", "NTC"):
            raise ValueError(f"{name}: invalid layout {layout!r}; must be 'TNC' or 'NTC'")
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        if (
            isinstance(input_size, bool)
            or not isinstance(input_size, (int, numpy.integer))
            or input_size < 0
        ):
            raise ValueError(
                f"{name}: input_size must be an int >= 0 (0: from the first "
                f"input), got {input_size!r}"
            )
        self._hidden_size = _positive(name, "hidden_size", hidden_size)
        self._num_layers = _positive(name, "num_layers", num_layers)
        self._projection_size = (
            None if not projection_size else _positive(name, "projection_size", projection_size)
        )
        self._mode, self._layout, self._dropout = mode, layout, float(dropout)
        self._dir = 2 if bidirectional else 1
        self._input_size = int(input_size)
        self._clip = (lstm_state_clip_min, lstm_state_clip_max, lstm_state_clip_nan)
        self._dtype = dtype
        self._use_sequence_length = bool(use_sequence_length)
        self.skip_states: bool | None = None
        init = initializer.RNNFused(
            mode,
            self._num_layers,
            self._hidden_size,
            bool(bidirectional),
            self._projection_size,
            i2h_weight_initializer=i2h_weight_initializer,
            h2h_weight_initializer=h2h_weight_initializer,
            i2h_bias_initializer=i2h_bias_initializer,
            h2h_bias_initializer=h2h_bias_initializer,
            h2r_weight_initializer=h2r_weight_initializer,
        )
        size = self._param_size(self._input_size) if self._input_size else -1
        self.rnn_param = Parameter(
            "rnn_param", shape=(size,), init=init, dtype=dtype, allow_deferred_init=True
        )

    def _param_size(self, input_size: int) -> int:
        return param_size(
            self._mode,
            self._num_layers,
            input_size,
            self._hidden_size,
            self._dir == 2,
            self._projection_size,
        )

    def __repr__(self) -> str:
        text = (
            f"{type(self).__name__}({self._input_size or None} -> {self._hidden_size}, "
            f"{self._layout}"
        )
        if self._num_layers != 1:
            text += f", num_layers={self._num_layers}"
        if self._dropout:
            text += f", dropout={self._dropout}"
        if self._dir == 2:
            text += ", bidirectional"
        if self._projection_size:
            text += f", projection_size={self._projection_size}"
        return text + ")"

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        """Shape, layout and dtype of each begin state (h, and c for LSTM)."""
        rows = self._num_layers * self._dir
        out = self._projection_size or self._hidden_size
        info = [{"shape": (rows, batch_size, out), "__layout__": "LNC", "dtype": self._dtype}]
        if self._mode == "lstm":
            info.append(
                {
                    "shape": (rows, batch_size, self._hidden_size),
                    "__layout__": "LNC",
                    "dtype": self._dtype,
                }
            )
        return info

    def begin_state(
        self, batch_size: int = 0, func: Callable[..., Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        """Initial states, ``func(shape=..., device=..., dtype=...)`` each (zeros by
        default); ``kwargs`` (e.g. ``device``, ``dtype``) override the defaults."""
        func = np.zeros if func is None else func
        states = []
        for info in self.state_info(batch_size):
            info = {k: v for k, v in info.items() if not k.startswith("__")}
            info.update(kwargs)
            states.append(func(shape=info.pop("shape"), **info))
        return states

    def cast(self, dtype: DTypeLike) -> None:
        super().cast(dtype)
        self._dtype = numpy.dtype(dtype).name

    def infer_shape(self, inputs: ndarray, *args: Any) -> None:
        if inputs.ndim != 3:
            raise ValueError(
                f"{type(self).__name__}: input must be 3-D ({self._layout}), got "
                f"shape {inputs.shape}"
            )
        self._input_size = int(inputs.shape[2])
        self.rnn_param.shape = (self._param_size(self._input_size),)

    def __call__(
        self, inputs: Any, states: Any = None, sequence_length: Any = None, **kwargs: Any
    ) -> Any:
        self.skip_states = states is None
        if states is None:
            batch = inputs.shape[self._layout.find("N")]
            states = self.begin_state(batch, device=inputs.device, dtype=inputs.dtype)
        if isinstance(states, ndarray):
            states = [states]
        if self._use_sequence_length:
            return super().__call__(inputs, states, sequence_length, **kwargs)
        if sequence_length is not None:
            raise ValueError(
                f"{type(self).__name__}: sequence_length needs use_sequence_length=True"
            )
        return super().__call__(inputs, states, **kwargs)

    def forward(self, inputs: Any, states: Any, sequence_length: Any = None) -> Any:
        name = type(self).__name__
        if not isinstance(inputs, ndarray) or inputs.ndim != 3:
            raise ValueError(
                f"{name}: input must be a 3-D array ({self._layout}), got "
                f"{getattr(inputs, 'shape', type(inputs).__name__)}"
            )
        batch = inputs.shape[self._layout.find("N")]
        infos = self.state_info(batch)
        if len(states) != len(infos):
            raise ValueError(f"{name}: expected {len(infos)} begin states, got {len(states)}")
        for state, info in zip(states, infos):
            if state.shape != info["shape"]:
                raise ValueError(
                    f"{name}: invalid recurrent state shape. Expecting "
                    f"{info['shape']}, got {state.shape}."
                )
        device = inputs.device
        if self._layout == "NTC":
            inputs = np.swapaxes(inputs, 0, 1)
        states = [s.to_device(device) for s in states]
        if self._use_sequence_length:
            if not isinstance(sequence_length, ndarray):
                raise ValueError(
                    f"{name}: use_sequence_length=True needs sequence_length, "
                    f"an array of the batch's lengths"
                )
            sequence_length = sequence_length.to_device(device)
        clip_min, clip_max, clip_nan = self._clip
        out = npx.rnn(
            inputs,
            self.rnn_param.data(device),
            states[0],
            states[1] if self._mode == "lstm" else None,
            sequence_length=sequence_length,
            use_sequence_length=self._use_sequence_length,
            state_size=self._hidden_size,
            projection_size=self._projection_size,
            num_layers=self._num_layers,
            bidirectional=self._dir == 2,
            p=self._dropout,
            state_outputs=True,
            mode=self._mode,
            lstm_state_clip_min=clip_min,
            lstm_state_clip_max=clip_max,
            lstm_state_clip_nan=clip_nan,
        )
        outputs, new_states = out[0], list(out[1:])
        if self._layout == "NTC":
            outputs = np.swapaxes(outputs, 0, 1)
        return outputs if self.skip_states else (outputs, new_states)


class RNN(_RNNLayer):
    """A multi-layer Elman RNN, ``h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)`` with
    ``activation`` ``'relu'`` or ``'tanh'``.

    Args:
        hidden_size: features of the hidden state.
        num_layers: stacked layers; ``dropout`` applies between them in training.
        layout: ``'TNC'`` (time, batch, features) or ``'NTC'``.
        bidirectional: add a right-to-left pass (outputs concatenated).
        input_size: features of the input; 0 takes them from the first input.

    Called as ``layer(x)`` it returns the output; as ``layer(x, states)`` (a list from
    ``begin_state``) the output and the final states.
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "relu",
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        i2h_weight_initializer: InitLike = None,
        h2h_weight_initializer: InitLike = None,
        i2h_bias_initializer: InitLike = "zeros",
        h2h_bias_initializer: InitLike = "zeros",
        input_size: int = 0,
        dtype: DTypeLike = "float32",
        use_sequence_length: bool = False,
    ) -> None:
        if activation not in ("relu", "tanh"):
            raise ValueError(f"RNN: activation must be 'relu' or 'tanh', got {activation!r}")
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "rnn_" + activation,
            None,
            None,
            None,
            None,
            False,
            dtype,
            use_sequence_length,
        )


class LSTM(_RNNLayer):
    """A multi-layer long short-term memory RNN (gates i, f, g, o; MXNet's equations).

    Arguments as for ``RNN`` (without ``activation``), and:

    Args:
        projection_size: project each step's hidden state to this size (LSTMP, Sak et
            al. 2014) with a bias-free ``h2r_weight``; the projection is the output and the
            recurrent state, while the cell state keeps ``hidden_size``.
        state_clip_min, state_clip_max: clip the cell state after each step.
        state_clip_nan: accepted; a NaN in the cell state still propagates.

    The states are ``[h, c]``: ``h`` of shape (num_layers * directions, batch,
    projection_size or hidden_size), ``c`` of (num_layers * directions, batch,
    hidden_size).
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: InitLike = None,
        h2h_weight_initializer: InitLike = None,
        i2h_bias_initializer: InitLike = "zeros",
        h2h_bias_initializer: InitLike = "zeros",
        projection_size: int | None = None,
        h2r_weight_initializer: InitLike = None,
        state_clip_min: float | None = None,
        state_clip_max: float | None = None,
        state_clip_nan: bool = False,
        dtype: DTypeLike = "float32",
        use_sequence_length: bool = False,
    ) -> None:
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "lstm",
            projection_size,
            h2r_weight_initializer,
            state_clip_min,
            state_clip_max,
            state_clip_nan,
            dtype,
            use_sequence_length,
        )


class GRU(_RNNLayer):
    """A multi-layer gated recurrent unit RNN (gates r, z, n; cuDNN's form, as MXNet).

    Arguments as for ``RNN`` (without ``activation``).
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: InitLike = None,
        h2h_weight_initializer: InitLike = None,
        i2h_bias_initializer: InitLike = "zeros",
        h2h_bias_initializer: InitLike = "zeros",
        dtype: DTypeLike = "float32",
        use_sequence_length: bool = False,
    ) -> None:
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "gru",
            None,
            None,
            None,
            None,
            False,
            dtype,
            use_sequence_length,
        )
