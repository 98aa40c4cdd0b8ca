"""Blocks, layers, losses and split_and_load against NumPy, on every device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd
from gluonlite.gluon import loss as gloss, nn, utils
from tests.helpers import assert_matches


class TwoLayer(mx.gluon.Block):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Dense(4, in_units=3)
        self.head = nn.Sequential()
        self.head.add(nn.Dense(2, in_units=4, use_bias=False), nn.Activation("tanh"))
        self.scale = mx.gluon.Parameter("scale", shape=(2,), init="ones")

    def forward(self, x):
        return self.head(self.encoder(x)) * self.scale.data(x.device)


# --------------------------------------------------------------------- Block
def test_collect_params_structured_names_and_select():
    net = TwoLayer()
    assert list(net.collect_params()) == [
        "scale",
        "encoder.weight",
        "encoder.bias",
        "head.0.weight",
    ]
    assert list(net.collect_params(".*weight")) == ["encoder.weight", "head.0.weight"]
    assert list(net.collect_params("head")) == ["head.0.weight"]
    assert list(net.params) == ["scale"]


def test_reassigning_an_attribute_to_another_kind_is_refused():
    # MXNet 2's rule: a Block or Parameter attribute keeps its type; del drops it.
    net = TwoLayer()
    with pytest.raises(TypeError, match="encoder"):
        net.encoder = None
    assert "encoder.weight" in net.collect_params()
    del net.encoder
    assert "encoder.weight" not in net.collect_params()
    with pytest.raises(TypeError, match="scale"):
        net.scale = nn.Dense(1, in_units=1)  # a Parameter replaced by a Block
    assert list(net.collect_params()) == ["scale", "head.0.weight"]


def test_initialize_respects_parameter_initializers(devices):
    net = nn.Dense(3, in_units=2, bias_initializer="ones")
    net.initialize(mx.init.Zero(), device=devices)
    for d in devices:
        np.testing.assert_array_equal(net.weight.data(d).asnumpy(), np.zeros((3, 2)))
        np.testing.assert_array_equal(net.bias.data(d).asnumpy(), np.ones(3))
    assert net.weight.list_device() == devices


def test_forward_matches_numpy(device):
    net = TwoLayer()
    net.initialize(mx.init.Normal(1.0), device=device)
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    p = {k: v.data(device).asnumpy() for k, v in net.collect_params().items()}
    expected = np.tanh((x @ p["encoder.weight"].T + p["encoder.bias"]) @ p["head.0.weight"].T)
    assert_matches(
        net(mx.np.array(x, device=device)), expected * p["scale"], device=device, rtol=1e-5
    )


def test_zero_grad_and_cast(device):
    net = TwoLayer()
    net.initialize(device=device)
    with autograd.record():
        y = net(mx.np.ones((2, 3), device=device)).sum()
    y.backward()
    assert np.abs(net.encoder.weight.grad(device).asnumpy()).sum() > 0
    net.zero_grad()
    for p in net.collect_params().values():
        assert not p.grad(device).asnumpy().any()
    net.cast("float64")
    assert {p.dtype for p in net.collect_params().values()} == {np.dtype("float64")}
    assert net(mx.np.ones((2, 3), dtype="float64", device=device)).dtype == np.float64


def test_share_parameters():
    a, b = TwoLayer(), TwoLayer()
    b.share_parameters(a.collect_params("encoder"))
    assert b.encoder.weight is a.encoder.weight
    assert b.head[0].weight is not a.head[0].weight
    with pytest.warns(UserWarning, match="'nope' is not in this TwoLayer"):
        b.share_parameters({"nope": a.scale})


def test_shared_parameter_initialized_once():
    shared = nn.Dense(2, in_units=2)
    net = nn.Sequential()
    net.add(shared, shared)
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second initialize of the same object would warn
        net.initialize()


def test_hybridize_is_a_no_op(device):
    net = nn.Dense(2, in_units=3)
    net.initialize(device=device)
    x = mx.np.ones((1, 3), device=device)
    before = net(x).asnumpy()
    net.hybridize()
    assert (net(x).asnumpy() == before).all()
    assert issubclass(mx.gluon.HybridBlock, mx.gluon.Block)


def test_block_without_infer_shape_explains_deferred_shapes():
    class Lazy(mx.gluon.Block):
        def __init__(self):
            super().__init__()
            self.w = mx.gluon.Parameter("w", shape=(0,), allow_deferred_init=True)

        def forward(self, x):
            return x * self.w.data(x.device)

    net = Lazy()
    net.initialize()
    with pytest.raises(RuntimeError, match=r"unknown shapes \['w'\].*infer_shape"):
        net(mx.np.ones((2,)))


# --------------------------------------------------------------------- layers
def test_dense_deferred_in_units(devices):
    net = nn.Sequential()
    net.add(nn.Dense(4, activation="relu"), nn.Dense(2))
    net.initialize(device=devices)
    assert net[0].weight.shape[1] in (0, -1)
    x = mx.np.ones((3, 2, 5), device=devices[1])
    assert net(x).shape == (3, 2)
    assert net[0].weight.shape == (4, 10) and net[1].weight.shape == (2, 4)
    assert net[0].weight.list_device() == devices
    assert repr(net) == (
        "Sequential(\n  (0): Dense(10 -> 4, Activation(relu))\n  (1): Dense(4 -> 2, linear)\n)"
    )


def test_dense_without_flatten_and_bias(device):
    net = nn.Dense(3, flatten=False, use_bias=False, weight_initializer="ones")
    net.initialize(device=device)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert_matches(
        net(mx.np.array(x, device=device)),
        np.repeat(x.sum(-1, keepdims=True), 3, axis=-1),
        device=device,
    )
    assert net.bias is None and list(net.collect_params()) == ["weight"]


def test_dense_rejects_bad_units():
    with pytest.raises(ValueError, match="units must be an int >= 0"):
        nn.Dense(-1)
    nn.Dense(0)  # accepted, as in MXNet


def test_embedding(device):
    emb = nn.Embedding(5, 3)
    emb.initialize(mx.init.Normal(1.0), device=device)
    ids = np.array([[0, 4], [2, 2]])
    out = emb(mx.np.array(ids, dtype="int64", device=device))
    assert_matches(out, emb.weight.data(device).asnumpy()[ids], device=device)


def test_embedding_sparse_grad(device):
    emb = nn.Embedding(6, 2, sparse_grad=True)
    emb.initialize(device=device)
    with autograd.record():
        y = emb(mx.np.array([3, 1, 3], dtype="int64", device=device)).sum()
    y.backward()
    grad = emb.weight.grad(device)
    assert grad.stype == "row_sparse"
    assert grad.indices.asnumpy().tolist() == [1, 3]
    np.testing.assert_array_equal(grad.data.asnumpy(), [[1, 1], [2, 2]])


def test_dropout_layer(device):
    layer = nn.Dropout(0.5)
    x = mx.np.ones((100, 100), device=device)
    assert (layer(x).asnumpy() == 1).all()  # predict mode
    with autograd.record():
        y = layer(x).asnumpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        nn.Dropout(1.0)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "softrelu", "softsign"])
def test_activation_layer(device, act):
    x = mx.np.array([-1.0, 0.5], device=device)
    assert_matches(
        nn.Activation(act)(x), mx.npx.activation(x, act_type=act).asnumpy(), device=device
    )


def test_sequential_indexing():
    net = nn.Sequential()
    layers = [nn.Dense(2), nn.Dense(3), nn.Dense(4)]
    net.add(*layers)
    assert len(net) == 3 and net[1] is layers[1]
    tail = net[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2 and tail[0] is layers[1]


# --------------------------------------------------------------------- losses
def _np_log_softmax(a, axis=-1):
    z = a - a.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def test_softmax_cross_entropy_sparse_label(device):
    rng = np.random.default_rng(3)
    pred, label = rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 5, 4)
    expected = -_np_log_softmax(pred)[np.arange(4), label]
    out = gloss.SoftmaxCrossEntropyLoss()(
        mx.np.array(pred, device=device), mx.np.array(label, device=device)
    )
    assert_matches(out, expected.astype(np.float32), device=device, rtol=1e-5)


def test_softmax_cross_entropy_dense_label_from_logits_and_weights(device):
    rng = np.random.default_rng(4)
    pred = _np_log_softmax(rng.standard_normal((3, 4))).astype(np.float32)
    label = rng.dirichlet(np.ones(4), 3).astype(np.float32)
    sample_weight = np.array([[1.0], [0.0], [2.0]], dtype=np.float32)
    loss = gloss.SoftmaxCrossEntropyLoss(sparse_label=False, from_logits=True, weight=0.5)
    out = loss(
        mx.np.array(pred, device=device),
        mx.np.array(label, device=device),
        mx.np.array(sample_weight, device=device),
    )
    expected = -(pred * label).sum(-1) * sample_weight[:, 0] * 0.5
    assert_matches(out, expected, device=device, rtol=1e-5)


def test_softmax_cross_entropy_axis_and_batch_axis(device):
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((2, 5, 3)).astype(np.float32)  # classes on axis 1
    label = rng.integers(0, 5, (2, 3))
    out = gloss.SoftmaxCrossEntropyLoss(axis=1)(
        mx.np.array(pred, device=device), mx.np.array(label, device=device)
    )
    logp = _np_log_softmax(pred, axis=1)
    per_pos = -np.take_along_axis(logp, label[:, None, :], axis=1)[:, 0, :]
    assert_matches(out, per_pos.mean(axis=1), device=device, rtol=1e-5)


def test_l2_loss(device):
    pred = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    label = np.array([0, 2, 1])  # int labels, shape (3,) against (3, 1)
    out = gloss.L2Loss()(mx.np.array(pred, device=device), mx.np.array(label, device=device))
    assert_matches(out, np.array([0.5, 0.0, 4.5], dtype=np.float32), device=device)


def test_loss_gradient(device):
    pred = mx.np.array([[0.0, 0.0]], device=device)
    pred.attach_grad()
    with autograd.record():
        loss = gloss.SoftmaxCrossEntropyLoss()(pred, mx.np.array([1], device=device))
    loss.backward()
    np.testing.assert_allclose(pred.grad.asnumpy(), [[0.5, -0.5]], rtol=1e-6)


# --------------------------------------------------------------------- split_and_load
def test_split_and_load_even_and_uneven(devices):
    data = np.arange(20, dtype=np.float32).reshape(5, 4)
    with pytest.raises(ValueError, match="cannot be split evenly into 2 slices"):
        utils.split_and_load(data, devices)
    parts = utils.split_and_load(data, devices, even_split=False)
    assert [p.device for p in parts] == devices
    np.testing.assert_array_equal(parts[0].asnumpy(), data[:3])
    np.testing.assert_array_equal(parts[1].asnumpy(), data[3:])
    assert parts[0].dtype == np.float32


def test_split_and_load_ndarray_on_batch_axis_1(devices):
    data = mx.np.arange(12, device=devices[0]).reshape(2, 6)
    parts = utils.split_and_load(data, devices, batch_axis=1)
    np.testing.assert_array_equal(parts[1].asnumpy(), [[3, 4, 5], [9, 10, 11]])
    assert parts[1].device == devices[1]


def test_split_and_load_single_device_and_python_data():
    (only,) = utils.split_and_load([[1, 2], [3, 4]], mx.cpu(1))
    assert only.device == mx.cpu(1) and only.dtype == np.float32 and only.shape == (2, 2)


def test_split_and_load_errors_and_deprecated_ctx_list():
    with pytest.raises(ValueError, match="only 1 rows"):
        utils.split_data(np.ones((1, 2)), 2)
    with pytest.warns(DeprecationWarning):
        parts = utils.split_and_load(np.ones((2, 1)), ctx_list=[mx.cpu(0), mx.cpu(1)])
    assert len(parts) == 2
    with pytest.raises(TypeError, match="both"):
        utils.split_and_load(np.ones((2, 1)), [mx.cpu(0)], ctx_list=[mx.cpu(0)])


# --------------------------------------------------------------------- save / load
def test_save_and_load_parameters(tmp_path, devices):
    net = TwoLayer()
    net.initialize(mx.init.Normal(1.0), device=devices)
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    fresh = TwoLayer()
    fresh.load_parameters(path, device=devices)
    for name, p in net.collect_params().items():
        q = fresh.collect_params()[name]
        assert q.list_device() == devices
        assert np.array_equal(q.data(devices[1]).asnumpy(), p.data(devices[0]).asnumpy())
    other = TwoLayer()
    other.initialize(device=mx.cpu(1))
    other.load_parameters(path)
    assert other.scale.list_device() == [mx.cpu(1)]
    assert np.array_equal(other.scale.data().asnumpy(), net.scale.data(devices[0]).asnumpy())


def test_load_parameters_deferred_dense_and_errors(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4))
    net.initialize()
    path = str(tmp_path / "p")
    net.save_parameters(path)
    deferred = nn.Sequential()
    deferred.add(nn.Dense(3))
    deferred.load_parameters(path)  # never initialized, in_units unknown: the file decides
    assert deferred[0].weight.shape == (3, 4)
    bigger = nn.Sequential()
    bigger.add(nn.Dense(3), nn.Dense(2))
    with pytest.raises(
        mx.gluon.CheckpointMismatchError, match=r"\['1.weight', '1.bias'\] are missing"
    ):
        bigger.load_parameters(path)
    bigger.load_parameters(path, allow_missing=True)
    with pytest.raises(mx.gluon.CheckpointMismatchError, match=r"holds \['0.bias', '0.weight'\]"):
        nn.Sequential().load_parameters(path)
    half = nn.Sequential()
    half.add(nn.Dense(3, in_units=4, dtype="float16"))
    with pytest.raises(mx.gluon.CheckpointMismatchError, match="cast_dtype=True"):
        half.load_parameters(path)
    half.load_parameters(path, cast_dtype=True)
    assert half[0].weight.data().dtype == np.float16


def test_deduplicated_save(tmp_path):
    shared = nn.Dense(2, in_units=2)
    net = nn.Sequential()
    net.add(shared, shared)
    net.initialize()
    path = tmp_path / "p"
    net.save_parameters(str(path), deduplicate=True)
    saved = mx.checkpoint.read_checkpoint(path).arrays
    assert sorted(saved) == ["0.bias", "0.weight"]


def test_initialize_accepts_deprecated_ctx():
    net = nn.Dense(2, in_units=2)
    with pytest.warns(DeprecationWarning):
        net.initialize(ctx=mx.cpu(1))
    assert net.weight.list_device() == [mx.cpu(1)]


# --------------------------------------------------------------------- clip_global_norm
def test_clip_global_norm(devices):
    arrays = [mx.np.array([3.0, 0.0], device=devices[0]), mx.np.array([[4.0]], device=devices[1])]
    assert utils.clip_global_norm(arrays, 10.0) == 5.0
    assert arrays[0].asnumpy().tolist() == [3.0, 0.0]  # under the bound: untouched
    assert utils.clip_global_norm(arrays, 2.5) == 5.0
    np.testing.assert_allclose(arrays[0].asnumpy(), [1.5, 0.0])
    np.testing.assert_allclose(arrays[1].asnumpy(), [[2.0]])
    bad = [mx.np.array([np.nan, 1.0], device=devices[0])]
    with pytest.warns(UserWarning, match="the norm is nan"):
        assert np.isnan(utils.clip_global_norm(bad, 1.0))
    assert bad[0].asnumpy()[1] == 1.0
    with pytest.raises(ValueError, match="no arrays"):
        utils.clip_global_norm([], 1.0)


def test_clip_between_allreduce_and_update(devices):
    net = nn.Dense(1, in_units=2, use_bias=False, weight_initializer="zeros")
    net.initialize(device=devices)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    x = np.array([[3.0, 0.0], [0.0, 4.0]], dtype=np.float32)
    with autograd.record():
        outs = [net(part).sum() for part in utils.split_and_load(x, devices)]
    for out in outs:
        out.backward()
    trainer.allreduce_grads()
    for d in devices:  # per device, as MXNet scripts clip: the summed gradient is [3, 4]
        assert utils.clip_global_norm([net.weight.grad(d)], 1.0) == pytest.approx(5.0)
    trainer.update(1)
    for d in devices:
        np.testing.assert_allclose(net.weight.data(d).asnumpy(), [[-0.6, -0.8]], rtol=1e-6)
