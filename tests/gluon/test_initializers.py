"""mx.init through Parameters and Blocks: custom initializers on mx.np arrays, the full class
list, register/dumps/==, force_reinit and verbose."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite.npx._rnn import param_size
from gluonlite.gluon import nn


class MyInit(mx.init.Initializer):
    """The d2l book's custom initializer, as written there."""

    def _init_weight(self, name, data):
        assert isinstance(data, mx.np.ndarray)
        data[:] = mx.np.random.uniform(-10, 10, data.shape)
        data *= mx.np.abs(data) >= 5


def test_custom_initializer_gets_an_ndarray_and_lands_bit_identical(devices):
    net = nn.Dense(8, in_units=16)
    net.initialize(MyInit(), device=devices)
    w = [net.weight.data(d).asnumpy() for d in devices]
    assert (w[0] == w[1]).all()
    assert ((np.abs(w[0]) >= 5) | (w[0] == 0)).all() and np.abs(w[0]).max() > 5
    assert not net.bias.data(devices[0]).asnumpy().any()  # Dense's own 'zeros'


def test_mxnet_call_form_dispatches_by_name():
    arr = mx.np.zeros((2, 2))
    init = mx.init.Constant(3.0)
    init(mx.init.InitDesc("fc_weight"), arr)
    assert (arr.asnumpy() == 3).all()
    init(mx.init.InitDesc("fc_bias"), arr)
    assert not arr.asnumpy().any()
    init(mx.init.InitDesc("bn_gamma"), arr)
    assert (arr.asnumpy() == 1).all()
    init(mx.init.InitDesc("x", {"__init__": "zeros"}), arr)
    assert not arr.asnumpy().any()
    with pytest.raises(ValueError, match="Unknown initialization pattern for 'x'"):
        init(mx.init.InitDesc("x"), arr)


def test_bilinear_lstmbias_mixed():
    w = mx.init.Bilinear()("up_weight", (1, 1, 4, 4), "float64")
    row = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(w[0, 0], np.outer(row, row))
    b = mx.init.LSTMBias(forget_bias=2.0)("lstm_bias", (8,))
    np.testing.assert_array_equal(b, [0, 0, 2, 2, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="multiple of 4"):
        mx.init.LSTMBias()("b", (6,))
    mixed = mx.init.Mixed([".*bias", ".*"], [mx.init.Zero(), mx.init.One()])
    assert (mixed("fc_bias", (2,)) == 0).all() and (mixed("fc_weight", (2,)) == 1).all()
    with pytest.raises(ValueError, match="matches none"):
        mx.init.Mixed(["a"], ["zeros"])("b", (1,))


def test_load_initializer(tmp_path):
    values = {"arg:w": np.full((2, 2), 7.0), "b": np.ones(2)}
    init = mx.init.Load(values, default_init=mx.init.Zero())
    assert (init("w", (2, 2)) == 7).all() and (init("c", (3,)) == 0).all()
    with pytest.raises(ValueError, match="shape"):
        init("w", (3,))
    with pytest.raises(ValueError, match="no default_init"):
        mx.init.Load(values)("c", (1,))
    net = nn.Dense(2, in_units=2)
    net.initialize()
    path = str(tmp_path / "d.params")
    net.save_parameters(path)
    again = nn.Dense(2, in_units=2)
    again.initialize(mx.init.Load(path))
    assert (again.weight.data().asnumpy() == net.weight.data().asnumpy()).all()


def test_rnn_fused_layout():
    # 1-layer LSTM, input 3, hidden 2: weights (8x3, 8x2) then biases (8, 8).
    init = mx.init.RNNFused(
        "lstm", 1, 2, i2h_weight_initializer="ones", h2h_weight_initializer=mx.init.Constant(2.0)
    )
    flat = init("rnn_parameters", (8 * 3 + 8 * 2 + 16,))
    assert (flat[:24] == 1).all() and (flat[24:40] == 2).all()
    np.testing.assert_array_equal(flat[40:48], 0)
    np.testing.assert_array_equal(flat[48:], [0, 0, 1, 1, 0, 0, 0, 0])  # forget gate
    with pytest.raises(ValueError, match="does not fit"):
        init("p", (7,))
    with pytest.raises(ValueError, match="mode"):
        mx.init.RNNFused("lstmp", 1, 2)


def test_rnn_fused_layout_with_projection_feeds_npx_rnn():
    # 2-layer LSTMP, input 3, hidden 2, projection 1: per layer (8x in, 8x1, 1x2) weights,
    # then the biases; layer 1's input is the projection.
    init = mx.init.RNNFused(
        "lstm",
        2,
        2,
        projection_size=1,
        i2h_weight_initializer="ones",
        h2h_weight_initializer=mx.init.Constant(2.0),
        h2r_weight_initializer=mx.init.Constant(3.0),
    )
    size = param_size("lstm", 2, 3, 2, False, 1)
    assert size == (8 * 3 + 8 + 2) + (8 * 1 + 8 + 2) + 2 * 16
    flat = init("rnn_parameters", (size,))
    np.testing.assert_array_equal(flat[:34], [1] * 24 + [2] * 8 + [3] * 2)
    np.testing.assert_array_equal(flat[34:52], [1] * 8 + [2] * 8 + [3] * 2)
    np.testing.assert_array_equal(flat[52:60], 0)
    np.testing.assert_array_equal(flat[60:68], [0, 0, 1, 1, 0, 0, 0, 0])
    out = mx.npx.rnn(
        mx.np.ones((4, 5, 3)),
        mx.np.array(flat),
        mx.np.zeros((2, 5, 1)),
        mx.np.zeros((2, 5, 2)),
        mode="lstm",
        state_size=2,
        num_layers=2,
        projection_size=1,
    )
    assert out.shape == (4, 5, 1)
    with pytest.raises(
        ValueError, match="does not fit a 2-layer lstm with state size 2 and projection size 1"
    ):
        init("p", (size + 1,))
    with pytest.raises(ValueError, match="only supported for mode='lstm'"):
        mx.init.RNNFused("gru", 1, 2, projection_size=1)
    with pytest.raises(ValueError, match="positive int"):
        mx.init.RNNFused("lstm", 1, 2, projection_size=0)


def test_register_dumps_eq():
    @mx.init.register
    class Fives(mx.init.Initializer):
        def __init__(self, bias=0.0):
            super().__init__(bias=bias)
            self.bias = bias

        def _init_weight(self, name, arr):
            arr[:] = 5 + self.bias

    assert (mx.init.create("fives")("w", (2,)) == 5).all()
    again = mx.init.create(Fives(bias=1.0).dumps())
    assert again == Fives(bias=1.0) and again != Fives() and again != mx.init.One()
    assert mx.init.Xavier(magnitude=2) == mx.init.Xavier(magnitude=2)
    assert mx.init.Constant(np.ones(2)) == mx.init.Constant(np.ones(2))
    assert mx.init.Constant(np.ones(2)) != mx.init.Constant(np.zeros(2))
    with pytest.raises(TypeError, match="Initializer subclass"):
        mx.init.register(3)


def test_force_reinit_and_verbose(capsys):
    net = nn.Dense(2, in_units=2)
    net.initialize(mx.init.One())
    with pytest.warns(UserWarning, match="already initialized"):
        net.initialize(mx.init.Zero())
    assert (net.weight.data().asnumpy() == 1).all()
    net.initialize(mx.init.Zero(), force_reinit=True, verbose=True)
    assert not net.weight.data().asnumpy().any()
    assert "Initialized weight as Zero()" in capsys.readouterr().out


@pytest.mark.parametrize(
    "init",
    [
        mx.init.Uniform(),
        mx.init.Normal(),
        mx.init.Xavier(),
        mx.init.MSRAPrelu(),
        mx.init.Orthogonal(),
        MyInit(),
    ],
)
def test_seeded_values_identical_on_every_device(init, devices):
    p = mx.gluon.Parameter("p_weight", shape=(4, 6), init=init)
    p.initialize(device=devices)
    first = p.data(devices[0]).asnumpy()
    assert first.dtype == np.float32 and first.any()
    for d in devices[1:]:
        assert (p.data(d).asnumpy() == first).all()
