"""Trainer: gradient sums over replicas, MXNet's update arithmetic, replica consistency,
multipliers, stale gradients, row-sparse lazy updates, saved states and the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd, gluon
from gluonlite.gluon import nn
from gluonlite.gluon.trainer import allreduce, allreduce_arrays, broadcast_arrays

ROOT = Path(__file__).resolve().parent.parent


def _mlp(devices, seed=7):
    mx.random.seed(seed)
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="tanh", in_units=5), nn.Dense(3, in_units=8))
    net.initialize(mx.init.Xavier(), device=devices)
    return net


def _batches(n=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((size, 5)).astype(np.float32), rng.integers(0, 3, size))
        for _ in range(n)
    ]


def _train(net, trainer, devices, batches):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for x, y in batches:
        xs = gluon.utils.split_and_load(x, devices)
        ys = gluon.utils.split_and_load(y, devices)
        with autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        for loss in losses:
            loss.backward()
        trainer.step(len(x))


def _values(net, device):
    return {name: p.data(device).asnumpy() for name, p in net.collect_params().items()}


def _backward(net, devices, x=None):
    x = np.ones((len(devices), 5), dtype=np.float32) if x is None else x
    with autograd.record():
        outs = [net(part).sum() for part in gluon.utils.split_and_load(x, devices)]
    for out in outs:
        out.backward()


# --------------------------------------------------------------------- arithmetic
def test_sgd_step_matches_mxnet_arithmetic(device):
    net = nn.Dense(2, in_units=3)
    net.initialize(mx.init.Normal(1.0), device=device)
    w0, b0 = net.weight.data(device).asnumpy(), net.bias.data(device).asnumpy()
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}
    )
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    mom_w, mom_b = np.zeros_like(w0), np.zeros_like(b0)
    w, b = w0.astype(np.float64), b0.astype(np.float64)
    for _ in range(3):
        _backward(net, [device], x)
        trainer.step(batch_size=4)
        # d(sum(x @ w.T + b)) / dw = column sums of x, per output row.
        gw = np.tile(x.sum(0), (2, 1)) / 4 + 0.01 * w
        gb = np.full(2, 4.0) / 4 + 0.01 * b
        mom_w, mom_b = 0.9 * mom_w - 0.1 * gw, 0.9 * mom_b - 0.1 * gb
        w, b = w + mom_w, b + mom_b
    np.testing.assert_allclose(net.weight.data(device).asnumpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.bias.data(device).asnumpy(), b, rtol=1e-5, atol=1e-6)


def test_allreduce_grads_sums_over_replicas(devices):
    net = nn.Dense(1, in_units=2, weight_initializer="ones")
    net.initialize(device=devices)
    x = np.array([[1.0, 2.0], [10.0, 20.0]], dtype=np.float32)
    _backward(net, devices, x)
    assert net.weight.grad(devices[0]).asnumpy().tolist() == [[1.0, 2.0]]
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    trainer.allreduce_grads()
    for d in devices:
        assert net.weight.grad(d).asnumpy().tolist() == [[11.0, 22.0]]
        assert net.bias.grad(d).asnumpy().tolist() == [2.0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_device_and_two_devices_train_alike(devices, optimizer):
    params = {"learning_rate": 0.05}
    if optimizer == "sgd":
        params.update(momentum=0.9, wd=1e-3)
    one = _mlp([devices[0]])
    _train(
        one, gluon.Trainer(one.collect_params(), optimizer, dict(params)), [devices[0]], _batches()
    )
    two = _mlp(devices)
    _train(two, gluon.Trainer(two.collect_params(), optimizer, dict(params)), devices, _batches())
    expected = _values(one, devices[0])
    start = _values(_mlp([devices[0]]), devices[0])
    for name, value in _values(two, devices[0]).items():
        assert not np.array_equal(value, start[name]), f"{name} did not train"
        np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_replicas_bit_identical_after_steps(devices, optimizer):
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": 0.1, "wd": 0.01})
    _train(net, trainer, devices, _batches(3))
    for name, p in net.collect_params().items():
        first, *others = [r.asnumpy() for r in p.list_data()]
        for other in others:
            assert np.array_equal(first, other), name
        grads = [g.asnumpy() for g in p.list_grad()]
        assert all(np.array_equal(grads[0], g) for g in grads[1:]), name


def test_shared_parameter_is_updated_once():
    shared = nn.Dense(2, in_units=2, weight_initializer="zeros", use_bias=False)
    net = nn.Sequential()
    net.add(shared, shared)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    assert len(trainer._params) == 1
    with autograd.record():
        y = shared(mx.np.ones((1, 2))).sum()
    y.backward()
    trainer.step(1)
    np.testing.assert_array_equal(shared.weight.data().asnumpy(), -np.ones((2, 2)))


# --------------------------------------------------------------------- what is not trained
def test_lr_mult_zero_freezes(devices):
    net = _mlp(devices)
    net[0].weight.lr_mult = 0.0
    before = _values(net, devices[0])
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9, "wd": 0.1}
    )
    _train(net, trainer, devices, _batches(2))
    after = _values(net, devices[1])
    assert np.array_equal(after["0.weight"], before["0.weight"])
    assert not np.array_equal(after["0.bias"], before["0.bias"])


def test_wd_mult_scales_weight_decay():
    p = gluon.Parameter("w", shape=(1,), init="ones", wd_mult=0.0)
    q = gluon.Parameter("q", shape=(1,), init="ones")
    for param in (p, q):
        param.initialize()
    trainer = gluon.Trainer([p, q], "sgd", {"learning_rate": 1.0, "wd": 0.5})
    with autograd.record():
        y = (p.data() * 0.0 + q.data() * 0.0).sum()
    y.backward()
    trainer.step(1)
    assert p.data().asnumpy().tolist() == [1.0]  # no decay
    assert q.data().asnumpy().tolist() == [0.5]  # 1 - 1.0 * 0.5 * 1


class _WithConstant(gluon.Block):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(2, in_units=2)
        self.offset = gluon.Constant(np.array([1.0, -1.0], dtype=np.float32), name="offset")
        self.frozen = gluon.Parameter("frozen", shape=(2,), init="ones", grad_req="null")

    def forward(self, x):
        d = x.device
        return self.dense(x) * self.frozen.data(d) + self.offset.data(d)


def test_constant_and_null_grad_req_untouched(devices):
    net = _WithConstant()
    net.initialize(device=devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0, "wd": 0.5})
    for _ in range(2):
        _backward(net, devices, np.ones((2, 2), dtype=np.float32))
        trainer.step(2)
    for d in devices:
        assert net.offset.data(d).asnumpy().tolist() == [1.0, -1.0]
        assert net.frozen.data(d).asnumpy().tolist() == [1.0, 1.0]
    assert not np.array_equal(net.dense.bias.data(devices[0]).asnumpy(), [0.0, 0.0])


# --------------------------------------------------------------------- stale gradients
def test_stale_gradient_is_an_error_naming_parameter_and_device(devices):
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    _backward(net, devices)
    trainer.step(2)
    message = f"Parameter '0.weight' on {devices[0]!r} has not been updated by a backward pass"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        trainer.step(2)


def test_stale_on_one_device_only(devices):
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    with autograd.record():
        y = net(mx.np.ones((1, 5), device=devices[0])).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=re.escape(f"'0.weight' on {devices[1]!r}")):
        trainer.step(1)


def test_ignore_stale_grad_skips_unused_parameters(devices):
    net = _mlp(devices)
    unused = gluon.Parameter("unused", shape=(3,), init="ones")
    unused.initialize(device=devices)
    params = dict(net.collect_params(), unused=unused)
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 1.0, "wd": 0.5})
    before = net[1].bias.data(devices[0]).asnumpy()
    _backward(net, devices)
    with pytest.raises(RuntimeError, match="'unused'"):
        trainer.step(2)
    _backward(net, devices)
    trainer.step(2, ignore_stale_grad=True)
    for d in devices:
        assert unused.data(d).asnumpy().tolist() == [1.0, 1.0, 1.0]
    assert not np.array_equal(net[1].bias.data(devices[1]).asnumpy(), before)


def test_update_without_allreduce_on_several_devices(devices):
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    _backward(net, devices)
    with pytest.raises(RuntimeError, match="allreduce_grads"):
        trainer.update(2)
    trainer.allreduce_grads()
    trainer.update(2)


# --------------------------------------------------------------------- devices
def test_parameters_on_different_devices_are_an_error():
    a = gluon.Parameter("a", shape=(1,))
    b = gluon.Parameter("b", shape=(1,))
    a.initialize(device=[mx.cpu(0), mx.cpu(1)])
    b.initialize(device=mx.cpu(0))
    trainer = gluon.Trainer({"a": a, "b": b}, "sgd")
    with pytest.raises(
        RuntimeError,
        match=r"Parameter 'b' is on \[cpu\(0\)\] while 'a' is on "
        r"\[cpu\(0\), cpu\(1\)\]",
    ):
        trainer.step(1)


def test_devices_in_another_order_are_aligned():
    a = gluon.Parameter("a", shape=(2,), init="ones")
    b = gluon.Parameter("b", shape=(2,), init="ones")
    a.initialize(device=[mx.cpu(0), mx.cpu(1)])
    b.initialize(device=[mx.cpu(1), mx.cpu(0)])
    trainer = gluon.Trainer([a, b], "sgd", {"learning_rate": 1.0})
    with autograd.record():
        ys = [
            (a.data(d) * b.data(d) * (k + 1.0)).sum() for k, d in enumerate([mx.cpu(0), mx.cpu(1)])
        ]
    for y in ys:
        y.backward()
    trainer.step(1)
    for p in (a, b):
        for d in (mx.cpu(0), mx.cpu(1)):
            assert p.data(d).asnumpy().tolist() == [-2.0, -2.0]  # 1 - (1 + 2)


def test_deferred_parameter_not_yet_shaped():
    net = nn.Dense(2)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    with pytest.raises(RuntimeError, match="Parameter 'weight' cannot be trained yet"):
        trainer.step(1)


def test_sparse_stored_parameter_is_refused_clearly():
    p = gluon.Parameter("table", shape=(4, 2), stype="row_sparse")
    p.initialize()
    with pytest.raises(RuntimeError, match="'table' has stype='row_sparse'.*grad_stype"):
        gluon.Trainer({"table": p}, "sgd").step(1)


def test_states_follow_reset_device():
    net = _mlp([mx.cpu(0)])
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"momentum": 0.9})
    _train(net, trainer, [mx.cpu(0)], _batches(1))
    net.reset_device([mx.cpu(1), mx.cpu(0)])
    _train(net, trainer, [mx.cpu(1), mx.cpu(0)], _batches(1, seed=1))
    assert {device for device, _ in trainer._states.values()} == {mx.cpu(1)}


# --------------------------------------------------------------------- row-sparse
def test_row_sparse_lazy_update_touches_present_rows_only(devices):
    mx.random.seed(3)
    emb = nn.Embedding(10, 4, sparse_grad=True)
    emb.initialize(mx.init.Normal(1.0), device=devices)
    before = emb.weight.data(devices[0]).asnumpy()
    trainer = gluon.Trainer(
        emb.collect_params(),
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.1, "lazy_update": True},
    )
    ids = [np.array([1, 7]), np.array([7, 3])]  # rows 1, 3, 7 occur, on different devices
    for _ in range(2):
        with autograd.record():
            outs = [
                emb(mx.np.array(i, dtype="int64", device=d)).sum() for i, d in zip(ids, devices)
            ]
        for out in outs:
            out.backward()
        trainer.allreduce_grads()
        for d in devices:
            grad = emb.weight.grad(d)
            assert grad.stype == "row_sparse"
            assert grad.indices.asnumpy().tolist() == [1, 3, 7]
            np.testing.assert_array_equal(grad.data.asnumpy(), [[1] * 4, [1] * 4, [2] * 4])
        trainer.update(4)
    after = [emb.weight.data(d).asnumpy() for d in devices]
    untouched = [r for r in range(10) if r not in (1, 3, 7)]
    assert np.array_equal(after[0][untouched], before[untouched])
    assert not np.array_equal(after[0][[1, 3, 7]], before[[1, 3, 7]])
    assert all(np.array_equal(after[0], a) for a in after[1:])
    # Two momentum steps of SGD on row 7 (gradient 2 / batch 4 = 0.5 each step).
    w = before[7].astype(np.float64)
    mom = np.zeros(4)
    for _ in range(2):
        mom = 0.9 * mom - 0.1 * (0.5 + 0.1 * w)
        w = w + mom
    np.testing.assert_allclose(after[0][7], w, rtol=1e-5)


# --------------------------------------------------------------------- settings and states
def test_learning_rate():
    net = _mlp([mx.cpu(0)])
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    assert trainer.learning_rate == 0.01
    trainer.set_learning_rate(0.5)
    assert trainer.learning_rate == 0.5 and trainer.optimizer.lr == 0.5


def test_constructor_errors():
    net = _mlp([mx.cpu(0)])
    with pytest.raises(ValueError, match="kvstore must be one of"):
        gluon.Trainer(net.collect_params(), "sgd", kvstore="dist_async")
    with pytest.raises(ValueError, match="optimizer_params must be empty"):
        gluon.Trainer(net.collect_params(), mx.optimizer.SGD(), {"learning_rate": 1.0})
    with pytest.raises(TypeError, match="'x' is a ndarray"):
        gluon.Trainer({"x": mx.np.ones(1)}, "sgd")
    with pytest.raises(TypeError, match="must be a dict or list"):
        gluon.Trainer(net, "sgd")
    with pytest.raises(RuntimeError, match="kvstore='nccl'"):
        trainer = gluon.Trainer(
            _mlp([mx.cpu(0), mx.cpu(1)]).collect_params(), "sgd", kvstore="nccl"
        )
        trainer.allreduce_grads()


@pytest.mark.parametrize("multi_precision", [False, True])
def test_float16_multi_precision(devices, multi_precision):
    p = gluon.Parameter("w", shape=(2,), init="ones", dtype="float16")
    p.initialize(device=devices)
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 1e-4, "multi_precision": multi_precision})
    for _ in range(20):
        with autograd.record():
            ys = [p.data(d).sum() for d in devices]
        for y in ys:
            y.backward()
        trainer.step(len(devices))  # gradient 1 per element after the 1/batch rescale
    # float16 spacing near 1 is ~1e-3: steps of 1e-4 only add up in a float32 master copy.
    expected = np.float16(1 - 20e-4) if multi_precision else np.float16(1.0)
    for d in devices:
        assert p.data(d).dtype == np.float16
        assert p.data(d).asnumpy().tolist() == [expected] * 2


@pytest.mark.parametrize("multiplier", [2.0, 2], ids=["float", "int"])
def test_optimizer_instance_reads_live_multipliers(multiplier):
    p = gluon.Parameter("w", shape=(1,), init="ones")
    p.initialize()
    trainer = gluon.Trainer([p], mx.optimizer.SGD(learning_rate=1.0))
    p.lr_mult = multiplier  # an int is accepted as well as a float
    with autograd.record():
        y = p.data().sum()
    y.backward()
    trainer.step(1)
    assert p.data().asnumpy().tolist() == [-1.0]


def test_changes_between_steps_are_seen(devices):
    # The trainer keeps what it derives from the parameters from one step to the next;
    # a changed grad_req or a new set of replicas must still reach the next step.
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    _backward(net, devices)
    trainer.step(2)
    weight = net[0].weight
    weight.grad_req = "null"
    before = weight.data(devices[0]).asnumpy()
    _backward(net, devices)
    trainer.step(2)
    assert np.array_equal(weight.data(devices[0]).asnumpy(), before)
    weight.grad_req = "write"
    _backward(net, devices)
    trainer.step(2)
    assert not np.array_equal(weight.data(devices[0]).asnumpy(), before)
    net.reset_device(devices[:1])
    _backward(net, devices[:1])
    trainer.step(2)
    for p in net.collect_params().values():
        assert p.list_device() == devices[:1]


@pytest.mark.parametrize(
    "value, error",
    [(-1.0, ValueError), (float("nan"), ValueError), ("2", TypeError), (True, TypeError)],
)
def test_invalid_live_multiplier_is_refused(value, error):
    p = gluon.Parameter("w", shape=(1,), init="ones")
    p.initialize()
    trainer = gluon.Trainer([p], "sgd")
    p.wd_mult = value
    with autograd.record():
        y = p.data().sum()
    y.backward()
    with pytest.raises(error, match="SGD: wd_mult of parameter 0 must be"):
        trainer.step(1)
    assert p.data().asnumpy().tolist() == [1.0]


# Nadam carries its momentum schedule (m_schedule) from update to update besides the counts.
@pytest.mark.parametrize("optimizer", ["adam", "nadam"])
def test_save_and_load_states_resume_exactly(tmp_path, devices, optimizer):
    batches = _batches(4)
    net = _mlp(devices)
    trainer = gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": 0.05})
    _train(net, trainer, devices, batches[:2])
    path = str(tmp_path / "trainer.states")  # no .npz suffix: the name is used as given
    trainer.save_states(path)
    assert os.path.exists(path)
    saved = _values(net, devices[0])
    _train(net, trainer, devices, batches[2:])
    expected = _values(net, devices[0])

    resumed = _mlp(devices, seed=99)
    for name, p in resumed.collect_params().items():
        p.set_data(mx.np.array(saved[name]))
    trainer2 = gluon.Trainer(resumed.collect_params(), optimizer, {"learning_rate": 0.05})
    trainer2.load_states(path)
    _train(resumed, trainer2, devices, batches[2:])
    for name, value in _values(resumed, devices[0]).items():
        assert np.array_equal(value, expected[name]), name
    if optimizer == "nadam":
        assert trainer2.optimizer.m_schedule == trainer.optimizer.m_schedule < 1.0


def test_nadam_states_without_the_momentum_schedule_are_refused(tmp_path):
    import json

    import safetensors.numpy
    from safetensors import safe_open

    from gluonlite import checkpoint

    net = _mlp([mx.cpu(0)])
    trainer = gluon.Trainer(net.collect_params(), "nadam")
    _train(net, trainer, [mx.cpu(0)], _batches(1))
    path = str(tmp_path / "s")
    trainer.save_states(path)
    with safe_open(path, "numpy") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    fresh = gluon.Trainer(net.collect_params(), "nadam")
    for scalars, error, message in [
        (None, checkpoint.CheckpointMismatchError, "keeps \\['m_schedule'\\]"),
        ({}, checkpoint.CorruptCheckpointError, "field 'scalars'"),
        ({"m_schedule": "0.5"}, checkpoint.CorruptCheckpointError, "finite number"),
        ({"m_schedule": float("nan")}, checkpoint.CorruptCheckpointError, "finite number"),
    ]:
        description = json.loads(meta["trainer"])
        if scalars is None:
            del description["scalars"]
        else:
            description["scalars"] = scalars
        changed = dict(meta, trainer=json.dumps(description))
        del changed["trainer_crc32"]
        safetensors.numpy.save_file(tensors, path, metadata=changed)
        with pytest.raises(error, match=message):
            fresh.load_states(path)
        assert fresh.optimizer.m_schedule == 1.0 and fresh.optimizer.num_update == 0


def test_pickled_nadam_keeps_its_momentum_schedule():
    import pickle

    opt = mx.optimizer.Nadam(learning_rate=0.1)
    updater = mx.optimizer.get_updater(opt)
    w = mx.np.ones(3)
    for _ in range(3):
        updater(0, mx.np.ones(3), w)
    restored = mx.optimizer.get_updater(mx.optimizer.Nadam(learning_rate=0.1))
    restored.set_states(updater.get_states(dump_optimizer=True))
    assert restored.optimizer.m_schedule == opt.m_schedule < 1.0
    assert pickle.loads(pickle.dumps(opt)).m_schedule == opt.m_schedule
    w2 = w.copy()
    updater(0, mx.np.ones(3), w)
    restored(0, mx.np.ones(3), w2)
    assert np.array_equal(w.asnumpy(), w2.asnumpy())


def test_load_states_checks_optimizer_and_names(tmp_path):
    net = _mlp([mx.cpu(0)])
    trainer = gluon.Trainer(net.collect_params(), "adam")
    _train(net, trainer, [mx.cpu(0)], _batches(1))
    path = tmp_path / "s"
    trainer.save_states(str(path))
    with pytest.raises(ValueError, match="holds Adam states, but this trainer uses SGD"):
        gluon.Trainer(net.collect_params(), "sgd").load_states(str(path))
    renamed = {f"x{k}": p for k, p in net.collect_params().items()}
    with pytest.raises(ValueError, match="named '0.weight'"):
        gluon.Trainer(renamed, "adam").load_states(str(path))


# --------------------------------------------------------------------- the reduction
def test_allreduce_function_on_raw_arrays(devices):
    from gluonlite import _backend

    host = [np.arange(6, dtype=np.float32).reshape(2, 3) * (k + 1) for k in range(2)]
    raws = [_backend.transfer(h, mx.cpu(0), d) for h, d in zip(host, devices)]
    allreduce(raws, devices)
    for raw, d in zip(raws, devices):
        back = _backend.transfer(raw, d, mx.cpu(0))
        np.testing.assert_array_equal(back, host[0] + host[1])


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "per-array"])
def test_allreduce_and_broadcast_arrays(devices, pack):
    from gluonlite import _backend

    shapes = [(2, 3), (4,), (0,), (1, 1, 2)]  # a zero-size array included
    rng = np.random.default_rng(2)
    host = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in devices]
    per_device = [
        [_backend.transfer(a, mx.cpu(0), d) for a in arrays] for arrays, d in zip(host, devices)
    ]
    for arrays, d in zip(per_device, devices):
        # A strided view (every other column of a wider buffer) must be written back too.
        wide = _backend.transfer(np.zeros((2, 6), dtype=np.float32), mx.cpu(0), d)
        with _backend.on(d):  # a raw write into d's memory runs with d current
            wide[:, ::2] = arrays[0]
        arrays[0] = wide[:, ::2]
        assert not arrays[0].flags.c_contiguous
    allreduce_arrays(per_device, devices, pack=pack)
    for arrays, d in zip(per_device, devices):
        for j, a in enumerate(arrays):
            np.testing.assert_array_equal(
                _backend.transfer(a, d, mx.cpu(0)), host[0][j] + host[1][j]
            )
    with _backend.on(devices[0]):
        for j, a in enumerate(per_device[0]):
            per_device[0][j][...] = j
    broadcast_arrays(per_device, devices, pack=pack)
    for arrays, d in zip(per_device[1:], devices[1:]):
        for j, a in enumerate(arrays):
            assert (_backend.transfer(a, d, mx.cpu(0)) == j).all()


def test_nccl_allreduce_single_gpu_smoke(gpu):
    from gluonlite import _backend
    from gluonlite.gluon import trainer as trainer_module

    if trainer_module._nccl_module() is None:
        pytest.skip("cupy.cuda.nccl is not available")
    raw = _backend.transfer(np.ones(5, dtype=np.float32), mx.cpu(0), gpu)
    trainer_module._nccl_allreduce([raw], [gpu])
    np.testing.assert_array_equal(_backend.transfer(raw, gpu, mx.cpu(0)), np.ones(5))


# --------------------------------------------------------------------- the demo
def test_demo_quick_mode_runs_in_bounded_time():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "train_digits.py"),
            "--quick",
            "--devices",
            "cpu0,cpu1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test accuracy" in result.stdout and "samples/s" in result.stdout
    assert "cpu(1): 6" in result.stdout  # parameter bytes per device
    assert "replicas bit-identical after training: True" in result.stdout
    assert elapsed < 60, f"the quick demo took {elapsed:.1f}s"


def test_mxnet_style_loop_runs_unchanged():
    """The data-parallel loop of MXNet 2's Gluon tutorials, old keywords included."""
    import warnings

    import gluonlite as mx  # noqa: F811 - spelled as MXNet code spells it
    from gluonlite import autograd as ag, gluon as g

    ctx = [mx.cpu(0), mx.cpu(1)]
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 10)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        net = g.nn.HybridSequential()
        net.add(g.nn.Dense(16, activation="relu"), g.nn.Dense(2))
        net.initialize(mx.init.Xavier(), ctx=ctx)
        net.hybridize()
        trainer = g.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
        loss_fn = g.loss.SoftmaxCrossEntropyLoss()
        first = last = None
        for epoch in range(15):
            for start in range(0, 64, 16):
                data = g.utils.split_and_load(X[start : start + 16], ctx_list=ctx, batch_axis=0)
                label = g.utils.split_and_load(y[start : start + 16], ctx_list=ctx, batch_axis=0)
                with ag.record():
                    losses = [loss_fn(net(xb), yb) for xb, yb in zip(data, label)]
                for loss in losses:
                    loss.backward()
                trainer.step(16)
                total = sum(loss.mean().item() for loss in losses) / len(losses)
                first = total if first is None else first
                last = total
    assert last < first / 4, (first, last)
