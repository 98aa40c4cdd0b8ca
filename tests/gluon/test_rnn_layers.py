"""gluon.rnn's fused layers (RNN, LSTM with and without projection, GRU): values against the
NumPy transcription of MXNet's fused RNN, layouts, states, deferred input size, gradients
through the layer, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd
from gluonlite.gluon import rnn
from tests.npx.gradcheck import check_gradients
from tests.npx.test_nn import np_rnn

RNG = np.random.default_rng(11)


@pytest.mark.parametrize(
    "make, mode, P",
    [
        (lambda: rnn.RNN(3, num_layers=2, activation="tanh"), "rnn_tanh", None),
        (lambda: rnn.GRU(3, bidirectional=True), "gru", None),
        (lambda: rnn.LSTM(3, num_layers=2, bidirectional=True), "lstm", None),
        (lambda: rnn.LSTM(3, num_layers=2, bidirectional=True, projection_size=2), "lstm", 2),
    ],
)
def test_layer_matches_the_numpy_transcription(device, make, mode, P):
    layer = make()
    layer.initialize(mx.init.Normal(0.5), device=device)
    T, N, I = 4, 2, 5
    x = RNG.standard_normal((T, N, I))
    states = layer.begin_state(N, device=device, dtype="float64")
    states = [mx.np.array(RNG.standard_normal(s.shape), device=device) for s in states]
    layer.cast("float64")
    out, new = layer(mx.np.array(x, device=device), states)
    assert layer.rnn_param.shape[0] > 0 and out.device == device
    c0 = states[1].asnumpy() if mode == "lstm" else None
    ref, hn, cn = np_rnn(
        x,
        layer.rnn_param.data(device).asnumpy(),
        states[0].asnumpy(),
        c0,
        mode,
        3,
        layer._num_layers,
        layer._dir == 2,
        P=P,
    )
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new[0].asnumpy(), hn, rtol=1e-10, atol=1e-12)
    if mode == "lstm":
        np.testing.assert_allclose(new[1].asnumpy(), cn, rtol=1e-10, atol=1e-12)
    assert len(new) == (2 if mode == "lstm" else 1)


def test_lstmp_layer_gradients_against_finite_differences(device):
    layer = rnn.LSTM(
        3,
        projection_size=2,
        layout="NTC",
        state_clip_min=-0.5,
        state_clip_max=0.5,
        dtype="float64",
        input_size=4,
    )
    layer.initialize(mx.init.Normal(0.5), device=device)
    p0 = layer.rnn_param.data(device).asnumpy()
    x = RNG.standard_normal((2, 3, 4))
    h0, c0 = RNG.standard_normal((1, 2, 2)), RNG.standard_normal((1, 2, 3))

    def fn(x, h, c):
        out, (hn, cn) = layer(x, [h, c])
        return mx.np.concatenate([out.reshape(-1), hn.reshape(-1), cn.reshape(-1)])

    # Inputs and begin states: the generic check.
    check_gradients(fn, [x, h0, c0], device, rtol=1e-5, atol=1e-7)
    # The packed parameter (the projection included): its gradient buffer against central
    # differences along random directions.
    args = [mx.np.array(a, device=device) for a in (x, h0, c0)]
    r = RNG.standard_normal(fn(*args).shape)
    head = mx.np.array(r, device=device)
    with autograd.record():
        total = (fn(*args) * head).sum()
    total.backward()
    grad = layer.rnn_param.grad(device).asnumpy()

    def loss(p):
        layer.rnn_param.set_data(mx.np.array(p, device=device))
        return float((fn(*args).asnumpy() * r).sum())

    for _ in range(3):
        v = RNG.standard_normal(p0.shape)
        numeric = (loss(p0 + 1e-6 * v) - loss(p0 - 1e-6 * v)) / 2e-6
        assert abs(float((grad * v).sum()) - numeric) <= 1e-6 * max(abs(numeric), 1.0)


def test_layer_output_only_without_states_and_trains(device):
    layer = rnn.LSTM(4, projection_size=2, layout="NTC")
    layer.initialize(device=device)
    x = mx.np.ones((3, 5, 6), device=device)  # (batch, time, features)
    with autograd.record():
        out = layer(x)
        loss = (out * out).sum()
    loss.backward()
    assert out.shape == (3, 5, 2)
    assert layer.rnn_param.shape == (4 * 4 * (6 + 2 + 2) + 2 * 4,)
    assert float(np.abs(layer.rnn_param.grad(device).asnumpy()).sum()) > 0
    assert repr(layer) == "LSTM(6 -> 4, NTC, projection_size=2)"


def test_sequence_length_and_state_info():
    layer = rnn.GRU(2, use_sequence_length=True, bidirectional=True)
    layer.initialize()
    x = mx.np.array(RNG.standard_normal((3, 2, 4)).astype("float32"))
    lengths = mx.np.array([2, 3], dtype="int32")
    out, (h,) = layer(x, layer.begin_state(2), lengths)
    assert out.shape == (3, 2, 4) and h.shape == (2, 2, 2)
    assert float(np.abs(out.asnumpy()[2, 0]).sum()) == 0  # past sequence 0's length
    assert layer.state_info(5)[0]["shape"] == (2, 5, 2)


def test_bad_arguments_and_states_raise():
    with pytest.raises(ValueError, match="invalid layout 'CTN'"):
        rnn.LSTM(3, layout="CTN")
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        rnn.GRU(0)
    with pytest.raises(ValueError, match="activation must be 'relu' or 'tanh'"):
        rnn.RNN(3, activation="sigmoid")
    with pytest.raises(ValueError, match="projection_size must be a positive int"):
        rnn.LSTM(3, projection_size=-1)
    layer = rnn.LSTM(3, projection_size=2)
    layer.initialize()
    x = mx.np.ones((2, 4, 5))
    with pytest.raises(ValueError, match=r"Expecting \(1, 4, 2\), got \(1, 4, 3\)"):
        layer(x, [mx.np.zeros((1, 4, 3)), mx.np.zeros((1, 4, 3))])
    with pytest.raises(ValueError, match="expected 2 begin states, got 1"):
        layer(x, mx.np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="sequence_length needs use_sequence_length"):
        layer(x, None, mx.np.array([1, 2, 2, 2]))
    with pytest.raises(ValueError, match=r"input must be a 3-D array \(TNC\), got \(2, 5\)"):
        layer(mx.np.ones((2, 5)))
    assert layer.rnn_param.shape == (-1,)  # the failed calls inferred nothing
