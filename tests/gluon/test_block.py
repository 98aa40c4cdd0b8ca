"""Block: the MXNet 2 methods, attribute rules, hooks, files and the summary table."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import gluonlite as mx
from gluonlite.gluon import nn
from tests.helpers import assert_matches


class Tied(mx.gluon.Block):
    """Two Dense layers sharing one weight (tied weights)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Dense(3, in_units=3, use_bias=False)
        self.b = nn.Dense(3, in_units=3, use_bias=False)
        self.b.share_parameters({"weight": self.a.weight})

    def forward(self, x):
        return self.b(self.a(x))


def _mlp():
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3, activation="relu"), nn.Dense(2, in_units=4))
    return net


# --------------------------------------------------------------------- tree and names
def test_params_collect_params_select_and_register_child():
    net = _mlp()
    assert list(net[0].params) == ["weight", "bias"]
    assert list(net.collect_params(".*weight")) == ["0.weight", "1.weight"]
    assert list(net.collect_params(".*weight|.*bias")) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    assert list(net.collect_params("1\\.")) == ["1.weight", "1.bias"]
    with pytest.raises(TypeError, match="select"):
        net.collect_params(3)
    holder = mx.gluon.Block()
    holder.register_child(net, "body")
    assert list(holder.collect_params())[0] == "body.0.weight"
    with pytest.raises(TypeError, match="register_child expects a Block"):
        holder.register_child("net")


def test_collect_params_select_matches_at_the_start_as_mxnet2():
    # MXNet 2 filters with re.compile(select).match: anchored at the start, not a full match.
    net = _mlp()
    assert list(net.collect_params("weight")) == []
    assert list(net.collect_params("0.w")) == ["0.weight"]
    assert list(net.collect_params("0")) == ["0.weight", "0.bias"]
    assert list(net.collect_params(".*bias$")) == ["0.bias", "1.bias"]
    assert list(net.collect_params("0.w$")) == []


def test_attribute_rules():
    b = mx.gluon.Block()
    b.c = mx.gluon.Block()
    c2 = mx.gluon.Block()
    b.c = c2  # same kind: replaces the child in place
    assert b._children["c"] is c2
    b.p = mx.gluon.Parameter("p", shape=(1,))
    with pytest.raises(TypeError, match="'p' from Parameter to tuple"):
        b.p = (2,)
    with pytest.raises(TypeError, match="'c' from Block to int"):
        b.c = 1
    assert isinstance(b.p, mx.gluon.Parameter) and b._children["c"] is c2
    b.layers = [nn.Dense(1, in_units=1)]
    with pytest.warns(UserWarning, match='"layers" of Block is an unregistered container'):
        b.collect_params()


def test_sequential_add_len_index_slice_and_errors():
    net = nn.HybridSequential()
    d = [nn.Dense(2, in_units=2) for _ in range(3)]
    net.add(*d)
    assert len(net) == 3 and net[1] is d[1] and net[-1] is d[2]
    part = net[1:]
    assert isinstance(part, nn.HybridSequential) and len(part) == 2 and part[0] is d[1]
    with pytest.raises(TypeError, match="argument 1 is a str"):
        net.add(nn.Dense(1), "relu")
    assert len(net) == 3  # nothing added
    with pytest.raises(TypeError, match="indices must be ints or slices"):
        net["0"]


def test_hybridize_accepted_and_warns_on_plain_sequential():
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=2), nn.Dense(1, in_units=2))
    with pytest.warns(UserWarning, match="Consider using HybridSequential"):
        net.hybridize(static_alloc=True)
    hnet = nn.HybridSequential()
    hnet.add(nn.Dense(2, in_units=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hnet.hybridize(active=True, static_shape=True)
    assert hnet._active and hnet[0]._active and hnet._flags == {"static_shape": True}


def test_repr_tree_like_mxnet():
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3, activation="relu"), nn.Dense(2))
    assert repr(net) == (
        "Sequential(\n  (0): Dense(3 -> 4, Activation(relu))\n  (1): Dense(None -> 2, linear)\n)"
    )


# --------------------------------------------------------------------- traversal, hooks
def test_apply_setattr_zero_grad_cast_reset(devices):
    net = _mlp()
    seen = []
    assert net.apply(lambda blk: seen.append(type(blk).__name__)) is net
    assert seen == ["Activation", "Dense", "Dense", "Sequential"]
    net.initialize(device=devices)
    net.setattr("grad_req", "add")
    assert all(p.grad_req == "add" for p in net.collect_params().values())
    with pytest.raises(TypeError, match="has no attribute 'nonsense'"):
        net.setattr("nonsense", 1)
    x = mx.np.ones((2, 3), device=devices[0])
    for _ in range(2):
        with mx.autograd.record():
            net(x).sum().backward()
    assert (net[1].bias.grad(devices[0]).asnumpy() == 4).all()  # 2 rows, twice
    net.zero_grad()
    assert not net[1].bias.grad(devices[0]).asnumpy().any()
    net.cast("float64")
    assert net(x.astype("float64")).dtype == np.float64
    net.reset_device(devices[1])
    assert net[0].weight.list_device() == [devices[1]]
    with pytest.warns(DeprecationWarning, match="reset_ctx"):
        net.reset_ctx(devices[0])
    assert net[0].weight.list_device() == [devices[0]]


def test_forward_hooks_and_handles(device):
    net = nn.Dense(2, in_units=3)
    net.initialize(device=device)
    calls = []
    pre = net.register_forward_pre_hook(lambda blk, args: calls.append(("pre", args[0].shape)))
    with net.register_forward_hook(lambda blk, args, out: calls.append(("post", out.shape))):
        net(mx.np.ones((5, 3), device=device))
    net(mx.np.ones((1, 3), device=device))
    pre.detach()
    pre.detach()  # twice is harmless
    net(mx.np.ones((1, 3), device=device))
    assert calls == [("pre", (5, 3)), ("post", (5, 2)), ("pre", (1, 3))]
    with pytest.raises(TypeError, match="callable"):
        net.register_forward_hook(3)


def test_register_op_hook_sees_every_block_output():
    net = _mlp()
    net.initialize()
    seen = []
    net.register_op_hook(lambda name, op, arr: seen.append((name, op, arr.shape)), monitor_all=True)
    net(mx.np.ones((2, 3)))
    assert ("0.act_output", "Activation", (2, 4)) in seen
    assert ("1_input0", "Dense", (2, 4)) in seen and ("1_output", "Dense", (2, 2)) in seen
    assert seen[-1] == ("sequential_output", "Sequential", (2, 2))


def test_summary_prints_mxnet_table(capsys):
    net = _mlp()
    net.initialize()
    net[1].bias.grad_req = "null"
    net.summary(mx.np.ones((2, 3)))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert lines[3].split() == ["Input", "(2,", "3)", "0"]
    assert lines[4].split() == ["Activation-1", "(2,", "4)", "0"]
    assert lines[5].split() == ["Dense-2", "(2,", "4)", "16"]
    assert lines[6].split() == ["Dense-3", "(2,", "2)", "10"]
    assert "   Total params: 26" in lines and "   Trainable params: 24" in lines
    assert "   Non-trainable params: 2" in lines and "Unique parameters in model: 26" in lines
    assert not net[0]._forward_hooks  # the summary's hooks are gone


# --------------------------------------------------------------------- files
def test_save_load_parameters_all_or_nothing(tmp_path, devices):
    net = _mlp()
    net.initialize(device=devices)
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    other = _mlp()
    other.initialize(mx.init.Zero(), device=devices)
    other.load_parameters(path, device=devices)
    for (_, p), (_, q) in zip(net.collect_params().items(), other.collect_params().items()):
        for d in devices:
            assert (p.data(d).asnumpy() == q.data(d).asnumpy()).all()
    wrong = nn.Sequential()
    wrong.add(nn.Dense(4, in_units=3, activation="relu"), nn.Dense(3, in_units=4))
    wrong.initialize(mx.init.Zero(), device=devices)
    with pytest.raises(mx.gluon.CheckpointMismatchError, match="1.weight"):
        wrong.load_parameters(path)
    assert not wrong[0].weight.data(devices[0]).asnumpy().any()  # nothing changed


def test_load_dict(device):
    net = _mlp()
    net.initialize(device=device)
    values = {
        "arg:0.weight": np.ones((4, 3)),
        "0.bias": mx.np.zeros(4),
        "1.weight": np.full((2, 4), 2.0),
        "1.bias": np.ones(2, dtype="float32"),
    }
    net.load_dict(values, cast_dtype=True)
    assert_matches(net[1].weight.data(device), np.full((2, 4), 2.0, dtype="float32"))
    with pytest.raises(mx.gluon.CheckpointMismatchError):
        net.load_dict({"0.weight": np.zeros((4, 3))})  # the rest is missing
    assert (net[0].weight.data(device).asnumpy() == 1).all()
    net.load_dict({"0.weight": np.zeros((4, 3))}, allow_missing=True, cast_dtype=True)
    assert not net[0].weight.data(device).asnumpy().any()
    with pytest.raises(TypeError, match="load_dict expects a dict"):
        net.load_dict([1, 2])


def test_save_and_load_with_prefix(tmp_path):
    net = _mlp()
    net.initialize()
    prefix = str(tmp_path / "mlp")
    net.save(prefix)
    tree = json.loads((tmp_path / "mlp-model.json").read_text())
    assert tree["type"] == "Sequential" and list(tree["children"]) == ["0", "1"]
    assert tree["children"]["1"]["params"]["weight"]["shape"] == [2, 4]
    again = _mlp()
    again.load(prefix)
    assert (again[1].weight.data().asnumpy() == net[1].weight.data().asnumpy()).all()
    other = nn.Sequential()
    other.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4), nn.Dense(1, in_units=2))
    with pytest.raises(ValueError, match="children"):
        other.load(prefix)


# --------------------------------------------------------------------- tied weights
def test_tied_weights_saved_once_updated_once_grads_summed(tmp_path):
    net = Tied()
    assert net.a.weight is net.b.weight
    net.initialize(mx.init.One())
    params = net.collect_params()
    assert list(params) == ["a.weight", "b.weight"]
    x = mx.np.array([[1.0, 2.0, 3.0]])
    with mx.autograd.record():
        y = net(x).sum()
    y.backward()
    # y = 1^T W W x with W = ones: dy/dW = 1 (W x)^T + (W^T 1) x^T.
    w = np.ones((3, 3))
    expected = np.outer(np.ones(3), w @ x.asnumpy()[0]) + np.outer(w.T @ np.ones(3), x.asnumpy()[0])
    assert_matches(net.a.weight.grad(), expected.astype("float32"))
    trainer = mx.gluon.Trainer(params, "sgd", {"learning_rate": 0.1})
    trainer.step(1)
    assert_matches(net.a.weight.data(), (w - 0.1 * expected).astype("float32"))
    path = tmp_path / "tied.params"
    net.save_parameters(str(path), deduplicate=True)
    from gluonlite import checkpoint

    assert list(checkpoint.read_checkpoint(str(path)).arrays) == ["a.weight"]
    fresh = Tied()
    fresh.load_parameters(str(path))
    assert_matches(fresh.b.weight.data(), net.a.weight.data().asnumpy())


# --------------------------------------------------------------------- layers
def test_lambda_identity_flatten_concatenate(device):
    x = mx.np.array(np.arange(12, dtype="float32").reshape(2, 2, 3), device=device)
    assert_matches(nn.Lambda("tanh")(x), np.tanh(x.asnumpy()), device=device)
    assert_matches(nn.Lambda(lambda a: a * 2)(x), 2 * x.asnumpy())
    assert_matches(nn.HybridLambda(lambda F, a: F.tanh(a))(x), np.tanh(x.asnumpy()))
    assert nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 6)
    cat = nn.HybridConcatenate(axis=1)
    cat.add(nn.Identity(), nn.Lambda(lambda a: a + 1))
    assert_matches(cat(x), np.concatenate([x.asnumpy(), x.asnumpy() + 1], axis=1))
    assert nn.Concatenate()[0:0].__class__ is nn.Concatenate
    with pytest.raises(ValueError, match="no function 'nonsense'"):
        nn.Lambda("nonsense")
    with pytest.raises(TypeError, match="expected a function"):
        nn.HybridLambda(3)


def test_dense_every_argument(device):
    net = nn.Dense(
        3,
        activation="tanh",
        use_bias=True,
        flatten=False,
        dtype="float64",
        weight_initializer=mx.init.One(),
        bias_initializer="ones",
        in_units=2,
    )
    net.initialize(device=device)
    x = np.ones((4, 5, 2))
    assert_matches(
        net(mx.np.array(x, dtype="float64", device=device)), np.tanh(np.full((4, 5, 3), 3.0))
    )
    empty = nn.Dense(0)
    empty.initialize(device=device)
    assert empty(mx.np.ones((4, 2), device=device)).shape == (4, 0)
    with pytest.raises(ValueError, match="Dense: in_units"):
        nn.Dense(2, in_units=-3)
    with pytest.raises(TypeError, match="activation"):
        nn.Dense(2, activation=3)
    with pytest.raises(TypeError):
        nn.Dense(2, nonsense=1)


def test_data_and_grad_fast_paths_keep_their_answers():
    # One replica, not on the current device, finished by data() after a deferred init.
    p = mx.gluon.Parameter("p", shape=(0, 2), allow_deferred_init=True)
    p.initialize(device=mx.cpu(1))
    p.shape = (3, 2)
    assert p.data().device == mx.cpu(1) and p.grad().device == mx.cpu(1)
    q = mx.gluon.Parameter("q", shape=(2,))
    q.initialize(device=[mx.cpu(0), mx.cpu(1)])
    with mx.cpu(1):
        assert q.data() is q.data(mx.cpu(1)) and q.grad() is q.grad(mx.cpu(1))
    with pytest.raises(RuntimeError, match="not on cpu\\(2\\)"):
        q.data(mx.cpu(2))
    with pytest.raises(TypeError):
        q.grad("cpu(0)")


def test_bad_input_names_the_parameter_and_changes_nothing():
    net = _mlp()
    with pytest.raises(ValueError, match="'0.weight'.*grad_req"):
        net.setattr("grad_req", "sometimes")
    assert all(p.grad_req == "write" for p in net.collect_params().values())
    with pytest.raises(TypeError, match="register_child expects a Block"):
        net.register_child(3, "x")
    with pytest.raises(TypeError):
        net.initialize(nonsense=True)
    with pytest.raises(TypeError, match="share_parameters: '0.weight' is a int"):
        net.share_parameters({"0.weight": 3})
