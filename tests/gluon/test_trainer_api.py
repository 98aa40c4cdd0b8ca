"""Trainer's public API items beyond the step itself: construction arguments, kvstore
choices, gradient compression, optimizer subclasses that override step(), states of the
new optimizers, and sparse Parameters owned by one Trainer."""

import re

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd, gluon


def _param(devices, name="w", shape=(4,), value=1.0, **kwargs):
    p = gluon.Parameter(name, shape=shape, init=mx.init.Constant(value), **kwargs)
    p.initialize(device=devices)
    return p


def _backward(params, devices, grads):
    """Write ``grads[k]`` (NumPy) as every parameter's gradient on ``devices[k]``."""
    with autograd.record():
        losses = [
            sum((p.data(d) * mx.np.array(g, device=d)).sum() for p in params)
            for d, g in zip(devices, grads)
        ]
    for loss in losses:
        loss.backward()


@pytest.mark.parametrize("kvstore", ["device", "local", "kvstore_object"])
def test_kvstore_choices_sum_over_devices(devices, kvstore):
    if kvstore == "kvstore_object":
        kvstore = mx.kv.create("device")
    p = _param(devices)
    trainer = gluon.Trainer({"w": p}, "sgd", {"learning_rate": 0.5}, kvstore=kvstore)
    _backward([p], devices, [np.ones(4)] * len(devices))
    trainer.step(1)
    for d in devices:
        np.testing.assert_allclose(p.data(d).asnumpy(), 1.0 - 0.5 * len(devices))


# ----------------------------------------------------------------------- kvstore=None
def _own(devices, name, params, grads_per_step):
    """What a one-device trainer of its own makes of each device's gradients: MXNet's
    kvstore=None result for that device's replica."""
    out = []
    for k in range(len(devices)):
        p = _param([mx.cpu(0)], shape=(3, 2), value=0.3)
        trainer = gluon.Trainer([p], name, dict(params))
        for grads in grads_per_step:
            _backward([p], [mx.cpu(0)], [grads[k]])
            trainer.step(2)
        out.append(p.data().asnumpy())
    return out


@pytest.mark.parametrize(
    "name, params",
    [
        ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
        ("adam", {"learning_rate": 0.1}),
        ("rmsprop", {"learning_rate": 0.1, "centered": True}),
    ],
)
def test_kvstore_none_updates_each_replica_with_its_own_gradient(devices, name, params):
    rng = np.random.default_rng(3)
    steps = [[rng.standard_normal((3, 2)).astype(np.float32) for _ in devices] for _ in range(3)]
    p = _param(devices, shape=(3, 2), value=0.3)
    trainer = gluon.Trainer(
        [p], name, dict(params), kvstore=None, compression_params={"type": "2bit"}
    )  # unused, as in MXNet
    for grads in steps:
        _backward([p], devices, grads)
        trainer.allreduce_grads()  # nothing to reduce: each keeps its own gradient
        for d, g in zip(devices, grads):
            np.testing.assert_array_equal(p.grad(d).asnumpy(), g)
        trainer.update(2)  # no error: there was nothing to reduce
    got = [p.data(d).asnumpy() for d in devices]
    for k, expected in enumerate(_own(devices, name, params, steps)):
        np.testing.assert_allclose(got[k], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # the replicas went their own ways
    # One table of update counts per device; num_update is their maximum.
    opt = trainer.optimizer
    assert opt._all_index_update_counts == {0: {0: 3}, 1: {0: 3}} and opt.num_update == 3


def test_kvstore_none_with_identical_gradients_keeps_replicas_equal(devices):
    p = _param(devices, shape=(3, 2), value=0.3)
    trainer = gluon.Trainer([p], "adam", {"learning_rate": 0.1}, kvstore=None)
    for k in range(3):
        _backward([p], devices, [np.full((3, 2), 0.1 * (k + 1))] * len(devices))
        trainer.step(1)
    first = p.data(devices[0]).asnumpy()
    np.testing.assert_allclose(p.data(devices[1]).asnumpy(), first, rtol=1e-6)
    # Each device's own gradient, not the sum: the same step as on one device.
    one = _param([mx.cpu(0)], shape=(3, 2), value=0.3)
    single = gluon.Trainer([one], "adam", {"learning_rate": 0.1})
    for k in range(3):
        _backward([one], [mx.cpu(0)], [np.full((3, 2), 0.1 * (k + 1))])
        single.step(1)
    np.testing.assert_allclose(first, one.data().asnumpy(), rtol=1e-6)


def test_kvstore_none_nadam_schedule_advances_on_every_device_update(devices):
    # MXNet's Nadam keeps one momentum schedule per optimizer; with one updater per device
    # it advances once per device and step, with the device's own count t.
    p = _param(devices, shape=(3, 2), value=0.3)
    trainer = gluon.Trainer([p], "nadam", {"schedule_decay": 0.1}, kvstore=None)
    for _ in range(2):
        _backward([p], devices, [np.ones((3, 2))] * len(devices))
        trainer.step(1)
    expected = 1.0
    for t in (1, 2):
        expected *= (0.9 * (1.0 - 0.5 * 0.96 ** (t * 0.1))) ** len(devices)
    assert trainer.optimizer.m_schedule == pytest.approx(expected, rel=1e-12)


def test_kvstore_none_skips_a_stale_replica_on_its_device_only(devices):
    p = _param(devices, value=1.0)
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 0.5}, kvstore=None)
    with autograd.record():
        loss = (p.data(devices[1]) * 2.0).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=re.escape(f"on {devices[0]}")):
        trainer.step(1)
    trainer.step(1, ignore_stale_grad=True)
    np.testing.assert_array_equal(p.data(devices[0]).asnumpy(), 1.0)
    np.testing.assert_array_equal(p.data(devices[1]).asnumpy(), 0.0)
    assert trainer.optimizer._all_index_update_counts == {0: {}, 1: {0: 1}}


def test_kvstore_none_row_sparse_and_float16_replicas(devices):
    # Row-sparse gradients: each device's lazy update touches only its own rows.
    emb = mx.gluon.nn.Embedding(10, 4, sparse_grad=True)
    emb.initialize(mx.init.One(), device=devices)
    trainer = gluon.Trainer(
        emb.collect_params(),
        "sgd",
        {"learning_rate": 0.5, "momentum": 0.9, "lazy_update": True},
        kvstore=None,
    )
    ids = [np.array([1, 7]), np.array([7, 3])]
    with autograd.record():
        outs = [emb(mx.np.array(i, dtype="int64", device=d)).sum() for i, d in zip(ids, devices)]
    for out in outs:
        out.backward()
    trainer.step(1)
    for rows, d in zip(ids, devices):
        w = emb.weight.data(d).asnumpy()
        expected = np.ones((10, 4), np.float32)
        expected[rows] = 0.5
        np.testing.assert_array_equal(w, expected)
    # float16 weights with float32 master copies, one per device.
    p = _param(devices, shape=(3,), value=1.0, dtype="float16")
    trainer = gluon.Trainer(
        [p], "sgd", {"learning_rate": 1e-4, "multi_precision": True}, kvstore=None
    )
    for _ in range(10):
        _backward([p], devices, [np.full(3, k + 1.0) for k in range(len(devices))])
        trainer.step(1)
    for k, d in enumerate(devices):
        master = trainer._states[0][1] if k == 0 else trainer._replica_states[k - 1][0][1]
        assert master[0].dtype == np.float32 and master[0].device == d
        np.testing.assert_allclose(master[0].asnumpy(), 1.0 - 10 * 1e-4 * (k + 1), rtol=1e-6)
        np.testing.assert_array_equal(p.data(d).asnumpy(), master[0].asnumpy().astype(np.float16))


def _diverged(devices, kvstore, optimizer, steps, states=None, start=None):
    """Train a parameter with other gradients on each device; optionally start from the
    per-device ``start`` values and the states file ``states``."""
    p = _param(devices, shape=(3, 2), value=0.3)
    trainer = gluon.Trainer([p], optimizer, {"learning_rate": 0.1}, kvstore=kvstore)
    if start is not None:
        for d, value in zip(devices, start):
            p.data(d)[...] = mx.np.array(value, device=d)
    if states is not None:
        trainer.load_states(str(states))
    for k in steps:
        _backward([p], devices, [np.full((3, 2), 0.1 * k + j) for j in range(len(devices))])
        trainer.step(1)
    return p, trainer


@pytest.mark.parametrize("optimizer", ["adam", "nadam"])
def test_kvstore_none_states_round_trip_every_device(devices, optimizer, tmp_path):
    path = tmp_path / "none.states"
    straight, _ = _diverged(devices, None, optimizer, [1, 2, 3, 4])
    half, trainer = _diverged(devices, None, optimizer, [1, 2])
    trainer.save_states(str(path))
    start = [half.data(d).asnumpy() for d in devices]
    resumed, trainer2 = _diverged(devices, None, optimizer, [3, 4], states=path, start=start)
    for d in devices:
        np.testing.assert_array_equal(resumed.data(d).asnumpy(), straight.data(d).asnumpy())
    assert trainer2.optimizer._all_index_update_counts == {0: {0: 4}, 1: {0: 4}}
    # With only the first device's states (what MXNet saves), the second replica would
    # resume from the wrong moments: the per-device states are what made it exact.
    from gluonlite.gluon.trainer import _map_state

    one = _map_state(trainer._states[0][1], lambda a: a.asnumpy())
    two = _map_state(trainer._replica_states[0][0][1], lambda a: a.asnumpy())
    assert not np.array_equal(one[0], two[0])


def test_states_between_kvstore_none_and_a_summing_trainer(devices, tmp_path):
    from gluonlite.gluon.trainer import _map_state

    def host(state):
        return _map_state(state, lambda a: a.asnumpy())

    summed = tmp_path / "summed.states"
    _, trainer = _diverged(devices, "device", "adam", [1, 2])
    trainer.save_states(str(summed))
    # A file with one device's states: every device starts from them (as in MXNet).
    p, none = _diverged(devices, None, "adam", [], states=summed)
    _backward([p], devices, [np.zeros((3, 2))] * len(devices))
    none.step(1)  # zero gradients: the moments only decay, the same on every device
    first, second = host(none._states[0][1]), host(none._replica_states[0][0][1])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(first[0], host(trainer._states[0][1])[0] * 0.9, rtol=1e-6)
    assert none.optimizer._all_index_update_counts == {0: {0: 3}, 1: {0: 3}}
    # A per-device file in a summing trainer: the first device's states.
    per_device = tmp_path / "per_device.states"
    _, none2 = _diverged(devices, None, "adam", [1, 2])
    none2.save_states(str(per_device))
    _, summing = _diverged(devices, "device", "adam", [], states=per_device)
    for a, b in zip(host(summing._states[0][1]), host(none2._states[0][1])):
        np.testing.assert_array_equal(a, b)
    assert summing._replica_states == []
    assert summing.optimizer._all_index_update_counts == {0: {0: 2}}


def test_optimizer_instance_or_name_and_bad_arguments(devices):
    p = _param(devices)
    sgd = mx.optimizer.NAG(learning_rate=0.1)
    assert gluon.Trainer([p], sgd).optimizer is sgd
    assert isinstance(
        gluon.Trainer([p], "rmsprop", {"centered": True}).optimizer, mx.optimizer.RMSProp
    )
    for kwargs, error, message in [
        (dict(optimizer=3), TypeError, "optimizer must be"),
        (dict(optimizer="sgdd"), ValueError, "unknown optimizer 'sgdd'"),
        (
            dict(optimizer="sgd", optimizer_params=[("learning_rate", 1)]),
            TypeError,
            "optimizer_params",
        ),
        (dict(optimizer="sgd", optimizer_params={"learning_rat": 1}), TypeError, "learning_rat"),
        (dict(optimizer="sgd", kvstore="nccll"), ValueError, "kvstore"),
        (dict(optimizer="sgd", update_on_kvstore="yes"), TypeError, "update_on_kvstore"),
        (dict(optimizer="sgd", compression_params={"type": "3bit"}), ValueError, "type"),
        (dict(optimizer="sgd", compression_params="2bit"), TypeError, "compression_params"),
        (
            dict(optimizer="sgd", compression_params={"type": "2bit", "threshold": 0}),
            ValueError,
            "threshold",
        ),
    ]:
        with pytest.raises(error, match=message):
            gluon.Trainer([p], **kwargs)


@pytest.mark.parametrize("kind, threshold", [("2bit", 0.5), ("1bit", 0.0)])
def test_gradient_compression_quantizes_with_error_feedback(devices, kind, threshold):
    p = _param(devices, value=0.0)
    trainer = gluon.Trainer(
        [p],
        "sgd",
        {"learning_rate": 1.0},
        compression_params={"type": kind, "threshold": threshold},
    )
    rng = np.random.default_rng(0)
    residuals = [np.zeros(4) for _ in devices]
    expected = np.zeros(4)
    for _ in range(3):
        grads = [rng.uniform(-1, 1, 4).astype(np.float32) for _ in devices]
        _backward([p], devices, grads)
        total = np.zeros(4)
        for k, g in enumerate(grads):
            residuals[k] = residuals[k] + g
            if kind == "2bit":
                q = np.where(
                    residuals[k] >= threshold,
                    threshold,
                    np.where(residuals[k] <= -threshold, -threshold, 0.0),
                )
            else:
                q = np.where(residuals[k] > threshold, 1.0, -1.0)
            residuals[k] = residuals[k] - q
            total += q
        expected -= total
        trainer.step(1)
        for d in devices:
            np.testing.assert_allclose(p.data(d).asnumpy(), expected, rtol=1e-6, atol=1e-6)


def test_a_subclass_overriding_step_works_with_the_trainer(devices):
    seen = []

    class HalfStep(mx.optimizer.Optimizer):
        def __init__(self, **kwargs):
            super().__init__(learning_rate=0.5, **kwargs)

        def create_state(self, index, weight):
            return mx.np.zeros(weight.shape, device=weight.device)

        def step(self, indices, weights, grads, states):
            for index, weight, grad, state in zip(indices, weights, grads, states):
                seen.append(type(weight))
                self._update_count(index)
                state[:] += grad
                weight[:] -= self._get_lr(index) * self.rescale_grad * state

    p = _param(devices)
    trainer = gluon.Trainer([p], HalfStep())
    for _ in range(2):
        _backward([p], devices, [np.ones(4)] * len(devices))
        trainer.step(2)
    # Gradient sum n = len(devices), rescaled by 1/2; state n, then 2n.
    n = len(devices)
    # (A Parameter's replicas are mx.np.ndarray subclasses that guard concurrent reads.)
    assert len(seen) == 2 and all(issubclass(t, mx.np.ndarray) for t in seen)
    assert trainer.optimizer.num_update == 2
    for d in devices:
        np.testing.assert_allclose(p.data(d).asnumpy(), 1.0 - 0.5 * (n + 2 * n) / 2)


@pytest.mark.parametrize(
    "name, params",
    [
        ("rmsprop", {"centered": True}),
        ("dcasgd", {"momentum": 0.9}),
        ("ftml", {}),
        ("adamax", {}),
        ("lamb", {}),
    ],
)
def test_save_and_load_states_of_other_optimizers(devices, name, params, tmp_path):
    def run(first, steps, load_from=None, save_to=None):
        p = _param(devices, shape=(3, 2), value=0.3)
        trainer = gluon.Trainer([p], name, dict(params))
        if load_from:
            p.set_data(mx.np.array(np.load(load_from)))
            trainer.load_states(str(load_from) + ".states")
        for k in range(first, first + steps):
            _backward([p], devices, [np.full((3, 2), 0.1 * k)] * len(devices))
            trainer.step(1)
        if save_to:
            np.save(save_to, p.data(devices[0]).asnumpy())
            trainer.save_states(str(save_to) + ".states")
        return p.data(devices[0]).asnumpy()

    straight = run(1, 4)
    run(1, 2, save_to=tmp_path / "half.npy")
    resumed = run(3, 2, load_from=tmp_path / "half.npy")
    np.testing.assert_array_equal(resumed, straight)
    assert not np.array_equal(run(3, 2), straight)  # the states mattered


def test_a_sparse_parameter_belongs_to_one_trainer(devices):
    dense = _param(devices)
    gluon.Trainer([dense], "sgd")
    gluon.Trainer([dense], "sgd")  # dense Parameters may be shared, as in MXNet
    sparse = gluon.Parameter("emb", shape=(4, 2), stype="row_sparse")
    first = gluon.Trainer([sparse], "sgd")
    with pytest.raises(RuntimeError, match="emb.*another Trainer"):
        gluon.Trainer([sparse], "sgd")
    del first
    import gc

    gc.collect()
    gluon.Trainer([sparse], "sgd")  # the first Trainer is gone


def test_learning_rate_and_set_learning_rate_follow_the_optimizer(devices):
    p = _param(devices)
    trainer = gluon.Trainer([p], "adamw", {"learning_rate": 0.01})
    assert trainer.learning_rate == 0.01
    trainer.set_learning_rate(0.02)
    assert trainer.optimizer.lr == 0.02
    scheduled = gluon.Trainer(
        [p], "adamw", {"lr_scheduler": mx.lr_scheduler.FactorScheduler(1, 0.5, 1e-8, 0.4)}
    )
    assert scheduled.learning_rate == 0.4
    with pytest.warns(UserWarning, match="lr_scheduler"):
        scheduled.set_learning_rate(1.0)
    assert scheduled.learning_rate == 0.4
