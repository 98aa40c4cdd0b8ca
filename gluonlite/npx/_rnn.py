"""``npx.rnn``: MXNet's fused RNN operator (rnn_relu, rnn_tanh, lstm, gru), built from
recorded operators, so autograd differentiates it and one body serves CPU and GPU.

The parameter vector is packed as MXNet packs it (``gluon.rnn``'s ``_forward_kernel``):
first every weight, then every bias, each group ordered by layer, then direction (left to
right, then right to left), then ``i2h`` before ``h2h``. A weight is ``[gates * state_size,
inputs]`` row-major; gates are ordered i, f, g, o for LSTM and r, z, n for GRU, whose
candidate is ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`` and update
``h' = (1 - z) * n + z * h`` (cuDNN's form, which MXNet uses on CPU and GPU).

An LSTM with ``projection_size`` P (LSTMP, cuDNN's recurrent projection) projects each step's
``o * tanh(c)`` by ``h2r_weight`` ``[P, state_size]`` (no bias): the projection is the
output and the recurrent state, so ``h2h_weight`` is ``[4 * state_size, P]``, the next
layer's input has ``directions * P`` features and ``state`` is ``(layers * directions,
batch, P)`` while ``state_cell`` keeps ``state_size``. Each ``h2r_weight`` follows its
direction's ``h2h_weight`` in the weight group (MXNet's ``gluon.rnn`` packs it so).

>>> import gluonlite as mx
>>> x = mx.np.ones((2, 1, 3))                 # (time, batch, features)
>>> params = mx.np.zeros((param_size("rnn_tanh", 1, 3, 4),))
>>> out = mx.npx.rnn(x, params, mx.np.zeros((1, 1, 4)), mode="rnn_tanh", state_size=4,
...                  num_layers=1)
>>> out.shape
(2, 1, 4)
"""

from __future__ import annotations

import numpy

from .. import _backend
from ..ndarray import ndarray
from ..np import clip, concatenate, stack
from .nn import _check_array, _check_same_device, activation, dropout, fully_connected
from typing import Any

__all__ = ["rnn", "param_size"]

_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def param_size(
    mode: str,
    num_layers: int,
    input_size: int,
    state_size: int,
    bidirectional: bool = False,
    projection_size: int | None = None,
) -> int:
    """Length of the packed parameter vector for these settings (MXNet's layout)."""
    gates, dirs = _GATES[mode], 2 if bidirectional else 1
    out = state_size if projection_size is None else projection_size
    size = 0
    for layer in range(num_layers):
        inputs = input_size if layer == 0 else dirs * out
        size += dirs * gates * state_size * (inputs + out + 2)
        if projection_size is not None:
            size += dirs * projection_size * state_size
    return size


def _unpack(
    parameters: ndarray,
    mode: str,
    num_layers: int,
    input_size: int,
    h: Any,
    dirs: int,
    proj: int | None,
) -> Any:
    """``{(layer, direction): (w_i2h, w_h2h, b_i2h, b_h2h, w_h2r)}`` as recorded slices
    (``w_h2r`` None without a projection)."""
    g = _GATES[mode] * h
    out = h if proj is None else proj
    shapes = {}
    for layer in range(num_layers):
        inputs = input_size if layer == 0 else dirs * out
        for d in range(dirs):
            shapes[layer, d] = [(g, inputs), (g, out)] + ([] if proj is None else [(proj, h)])
    offset, weights, biases = 0, {}, {}
    for key, parts in shapes.items():
        found = []
        for shape in parts:
            n = shape[0] * shape[1]
            found.append(parameters[offset : offset + n].reshape(shape))
            offset += n
        weights[key] = found
    for key in shapes:
        biases[key] = (parameters[offset : offset + g], parameters[offset + g : offset + 2 * g])
        offset += 2 * g
    return {
        key: (weights[key][0], weights[key][1])
        + biases[key]
        + (weights[key][2] if proj is not None else None,)
        for key in shapes
    }


def _cell(
    mode: str,
    xt: Any,
    h: Any,
    c: Any,
    w_h2h: Any,
    b_h2h: Any,
    hidden: int,
    clip_range: Any,
    w_h2r: Any = None,
) -> Any:
    """One time step: (h', c') from the input projection ``xt`` and the state (``h`` is
    the projected state when ``w_h2r`` is given)."""
    hw = fully_connected(h, w_h2h, b_h2h, num_hidden=w_h2h.shape[0])
    if mode in ("rnn_relu", "rnn_tanh"):
        return activation(xt + hw, "relu" if mode == "rnn_relu" else "tanh"), None
    H = hidden
    if mode == "lstm":
        gates = xt + hw
        i = activation(gates[:, :H], "sigmoid")
        f = activation(gates[:, H : 2 * H], "sigmoid")
        cand = activation(gates[:, 2 * H : 3 * H], "tanh")
        o = activation(gates[:, 3 * H :], "sigmoid")
        c = f * c + i * cand
        if clip_range is not None:
            c = clip(c, *clip_range)
        out = o * activation(c, "tanh")
        if w_h2r is not None:
            out = fully_connected(out, w_h2r, None, num_hidden=w_h2r.shape[0], no_bias=True)
        return out, c
    r = activation(xt[:, :H] + hw[:, :H], "sigmoid")
    z = activation(xt[:, H : 2 * H] + hw[:, H : 2 * H], "sigmoid")
    n = activation(xt[:, 2 * H :] + r * hw[:, 2 * H :], "tanh")
    return (1 - z) * n + z * h, None


def _check(
    data: Any,
    parameters: Any,
    state: Any,
    state_cell: Any,
    mode: str,
    state_size: int,
    num_layers: int,
    projection_size: int | None,
) -> None:
    for name, value in (("data", data), ("parameters", parameters), ("state", state)):
        _check_array("rnn", name, value)
    if mode not in _GATES:
        raise ValueError(f"rnn: mode must be one of {', '.join(_GATES)}, got {mode!r}")
    for name, value in (("state_size", state_size), ("num_layers", num_layers)):
        if not isinstance(value, (int, numpy.integer)) or value < 1:
            raise ValueError(f"rnn: {name} must be a positive int, got {value!r}")
    if projection_size is not None:
        if mode != "lstm":
            raise ValueError(
                f"rnn: projection_size is only supported for mode='lstm' (LSTMP), got mode={mode!r}"
            )
        if (
            isinstance(projection_size, bool)
            or not isinstance(projection_size, (int, numpy.integer))
            or projection_size < 1
        ):
            raise ValueError(
                f"rnn: projection_size must be a positive int or None, got {projection_size!r}"
            )
    if mode == "lstm":
        _check_array("rnn", "state_cell", state_cell)
    if data.ndim != 3:
        raise ValueError(f"rnn: data must be (seq_len, batch, input_size), got shape {data.shape}")
    if data.dtype.kind != "f" and data.dtype.name != "bfloat16":
        raise TypeError(f"rnn: data must be floating point, got {data.dtype}")


def rnn(
    data: Any = None,
    parameters: Any = None,
    state: Any = None,
    state_cell: Any = None,
    sequence_length: ndarray | None = None,
    mode: Any = None,
    state_size: Any = None,
    num_layers: Any = None,
    bidirectional: bool = False,
    state_outputs: bool = False,
    p: float = 0.0,
    use_sequence_length: bool = False,
    projection_size: int | None = None,
    lstm_state_clip_min: float | None = None,
    lstm_state_clip_max: float | None = None,
    lstm_state_clip_nan: bool = False,
    **kwargs: Any,
) -> Any:
    """MXNet's fused RNN over ``data`` of shape (seq_len, batch, input_size).

    ``state`` (and ``state_cell`` for LSTM) is (num_layers * directions, batch,
    state_size). Returns the output (seq_len, batch, directions * state_size), or with
    ``state_outputs`` a list ``[out, h_n]`` (``[out, h_n, c_n]`` for LSTM). ``p`` is dropout
    between layers in train mode. With ``use_sequence_length``, ``sequence_length`` (batch,)
    gives each sequence's length: later steps output 0 and leave the state unchanged, and
    the right-to-left direction starts at each sequence's last step.

    With ``projection_size`` P (LSTM only) the output is (seq_len, batch, directions * P)
    and ``state`` (and ``h_n``) is (num_layers * directions, batch, P); see the module
    notes for the parameter layout. ``lstm_state_clip_min``/``max`` clip the cell state
    after each step (its gradient is zero where clipped).
    """
    _check(data, parameters, state, state_cell, mode, state_size, num_layers, projection_size)
    arrays = [data, parameters, state] + ([state_cell] if mode == "lstm" else [])
    device = _check_same_device("rnn", *arrays)
    seq_len, batch, input_size = data.shape
    dirs, H = (2 if bidirectional else 1), int(state_size)
    P = None if projection_size is None else int(projection_size)
    expected = param_size(mode, num_layers, input_size, H, bidirectional, P)
    if parameters.shape != (expected,):
        raise ValueError(
            f"rnn: parameters has shape {parameters.shape}, expected "
            f"({expected},) for mode={mode}, num_layers={num_layers}, "
            f"input_size={input_size}, state_size={H}, "
            f"bidirectional={bidirectional}, projection_size={P}"
        )
    for name, value, width in (
        ("state", state, H if P is None else P),
        ("state_cell", state_cell, H),
    ):
        state_shape = (num_layers * dirs, batch, width)
        if (
            value is not None
            and mode in (("lstm",) if name == "state_cell" else _GATES)
            and value.shape != state_shape
        ):
            raise ValueError(f"rnn: {name} has shape {value.shape}, expected {state_shape}")
    clip_range = None
    if mode == "lstm" and (lstm_state_clip_min is not None or lstm_state_clip_max is not None):
        clip_range = (lstm_state_clip_min, lstm_state_clip_max)
    masks = rev = None
    if use_sequence_length:
        if sequence_length is None:
            raise ValueError("rnn: use_sequence_length=True needs sequence_length")
        _check_same_device("rnn", data, sequence_length)
        if sequence_length.shape != (batch,):
            raise ValueError(
                f"rnn: sequence_length has shape {sequence_length.shape}, expected ({batch},)"
            )
        xp = data._xp
        with _backend.on(device):
            lengths = sequence_length._data.astype(xp.int64)
            if bool((lengths < 1).any()) or bool((lengths > seq_len).any()):
                raise ValueError(f"rnn: sequence lengths must be in [1, {seq_len}]")
            steps = xp.arange(seq_len)[:, None]
            valid = steps < lengths[None, :]
            masks = [ndarray(valid[t][:, None].astype(data.dtype), device) for t in range(seq_len)]
            # Within each sequence's length the steps reverse; padding stays in place.
            rev = (
                ndarray(xp.where(valid, lengths[None, :] - 1 - steps, steps), device),
                ndarray(xp.broadcast_to(xp.arange(batch), (seq_len, batch)).copy(), device),
            )
    weights = _unpack(parameters, mode, num_layers, input_size, H, dirs, P)
    h_out: list[Any] = []
    c_out: list[Any] = []
    x = data
    for layer in range(num_layers):
        if layer and p:
            x = dropout(x, p=p)
        outputs = []
        for d in range(dirs):
            w_i2h, w_h2h, b_i2h, b_h2h, w_h2r = weights[layer, d]
            k = layer * dirs + d
            h = state[k]
            c = state_cell[k] if mode == "lstm" else None
            src = x[rev] if d and rev is not None else x
            xw = fully_connected(src, w_i2h, b_i2h, num_hidden=w_i2h.shape[0], flatten=False)
            order = range(seq_len - 1, -1, -1) if d and rev is None else range(seq_len)
            steps = [None] * seq_len
            for t in order:
                h_new, c_new = _cell(mode, xw[t], h, c, w_h2h, b_h2h, H, clip_range, w_h2r)
                if masks is None:
                    h, c, steps[t] = h_new, c_new, h_new
                else:
                    m = masks[t]
                    h = h + m * (h_new - h)
                    c = c + m * (c_new - c) if c is not None else None
                    steps[t] = h_new * m
            out = stack(steps, axis=0)
            outputs.append(out[rev] if d and rev is not None else out)
            h_out.append(h)
            c_out.append(c)
        x = outputs[0] if dirs == 1 else concatenate(outputs, axis=2)
    if not state_outputs:
        return x
    result = [x, stack(h_out, axis=0)]
    if mode == "lstm":
        result.append(stack(c_out, axis=0))
    return result
