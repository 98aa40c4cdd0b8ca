"""HybridBlock's MXNet 2 methods: infer_shape, infer_type, optimize_for."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite.gluon import nn


def _convnet():
    net = nn.HybridSequential()
    net.add(
        nn.Conv2D(4, 3, padding=1),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(8, activation="tanh"),
        nn.Dense(3),
    )
    return net


class Residual(nn.HybridBlock):
    """A custom block with an own deferred Parameter and no infer_shape of its own."""

    def __init__(self):
        super().__init__()
        self.body = nn.Dense(5)
        self.scale = mx.gluon.Parameter("scale", shape=(0,), allow_deferred_init=True)

    def forward(self, x):
        return self.body(x) * self.scale.data(x.device)


def test_infer_shape_sets_every_deferred_shape_without_initializing(device):
    net = _convnet()
    net.initialize(mx.init.Xavier(), device=device)
    x = mx.np.ones((2, 3, 6, 6), device=device)
    deferred = [p for p in net.collect_params().values() if p._data is None]
    assert len(deferred) == 7
    net.infer_shape(x)
    shapes = {name: p.shape for name, p in net.collect_params().items()}
    assert shapes["0.weight"] == (4, 3, 3, 3)
    assert shapes["1.gamma"] == (4,) and shapes["1.running_var"] == (4,)
    assert shapes["5.weight"] == (8, 36) and shapes["6.weight"] == (3, 8)
    # Nothing was initialized: the deferred parameters still wait for their first data().
    assert all(p._data is None for p in deferred)
    out = net(x)
    assert out.shape == (2, 3) and out.device == device
    assert net[0].weight.data(device).shape == (4, 3, 3, 3)


def test_infer_shape_before_initialize_and_then_initialize():
    net = nn.HybridSequential()
    net.add(nn.Dense(4), nn.Dense(2))
    net.infer_shape(mx.np.ones((3, 7)))
    assert [p.shape for p in net.collect_params().values()] == [(4, 7), (4,), (2, 4), (2,)]
    net.initialize()
    assert net(mx.np.ones((3, 7))).shape == (3, 2)


def test_infer_shape_of_a_block_without_a_rule_names_the_missing_shapes():
    block = Residual()
    with pytest.raises(
        RuntimeError,
        match=r"Residual has parameters with unknown shapes "
        r"\['scale'\]",
    ):
        block.infer_shape(mx.np.ones((2, 3)))
    # The failed call restored the shape the Dense child had inferred on the way.
    assert block.body.weight.shape == (5, -1)


def test_infer_type_accepts_matching_dtypes_and_names_the_layer_that_does_not(device):
    net = _convnet()
    net.initialize(device=device)
    x = mx.np.ones((2, 3, 6, 6), device=device)
    net.infer_type(x)
    with pytest.raises(
        TypeError,
        match=r"infer_type: Conv2D \(0\) has Parameter 'weight' "
        r"of float32 but its input is float64",
    ):
        net.infer_type(x.astype("float64"))
    # infer_type leaves deferred shapes (and everything else) as they were.
    assert net[0].weight.shape == (4, -1, 3, 3)
    net.cast("float16")
    net[1].cast("float32")  # BatchNorm keeps float32 statistics for float16 input
    net.infer_type(x.astype("float16"))


def test_infer_type_skips_integer_inputs():
    emb = nn.Embedding(10, 4)
    emb.initialize()
    emb.infer_type(mx.np.array([1, 2], dtype="int32"))


def test_optimize_for_hybridizes_and_runs_once(device):
    net = _convnet()
    net.initialize(device=device)
    x = mx.np.ones((2, 3, 6, 6), device=device)
    with mx.autograd.record():
        net.optimize_for(x, static_alloc=True)
    assert net._active and net._flags["static_alloc"] is True
    assert net[0]._active
    # The forward ran: deferred parameters are initialized.
    assert net[0].weight.data(device).shape == (4, 3, 3, 3)
    ref = net(x)
    assert np.isfinite(ref.asnumpy()).all()


def test_optimize_for_refuses_a_backend_and_changes_nothing():
    net = nn.Dense(2)
    net.initialize()
    with pytest.raises(ValueError, match="unknown backend 'MKLDNN'.*backend=None"):
        net.optimize_for(mx.np.ones((1, 3)), backend="MKLDNN")
    assert not net._active and net.weight.shape == (2, -1)
    with pytest.raises(TypeError, match="backend_opts must be a dict"):
        net.optimize_for(mx.np.ones((1, 3)), backend_opts=["x"])
