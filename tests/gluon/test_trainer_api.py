"""Trainer's public API items beyond the step itself: construction arguments, kvstore
choices, gradient compression, optimizer subclasses that override step(), states of the
new optimizers, and sparse Parameters owned by one Trainer."""
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
        losses = [sum((p.data(d) * mx.np.array(g, device=d)).sum() for p in params)
                  for d, g in zip(devices, grads)]
    for loss in losses:
        loss.backward()


@pytest.mark.parametrize("kvstore", ["device", "local", None, "kvstore_object"])
def test_kvstore_choices_sum_over_devices(devices, kvstore):
    if kvstore == "kvstore_object":
        kvstore = mx.kv.create("device")
    p = _param(devices)
    trainer = gluon.Trainer({"w": p}, "sgd", {"learning_rate": 0.5}, kvstore=kvstore)
    _backward([p], devices, [np.ones(4)] * len(devices))
    trainer.step(1)
    for d in devices:
        np.testing.assert_allclose(p.data(d).asnumpy(), 1.0 - 0.5 * len(devices))


def test_optimizer_instance_or_name_and_bad_arguments(devices):
    p = _param(devices)
    sgd = mx.optimizer.NAG(learning_rate=0.1)
    assert gluon.Trainer([p], sgd).optimizer is sgd
    assert isinstance(gluon.Trainer([p], "rmsprop", {"centered": True}).optimizer,
                      mx.optimizer.RMSProp)
    for kwargs, error, message in [
        (dict(optimizer=3), TypeError, "optimizer must be"),
        (dict(optimizer="sgdd"), ValueError, "unknown optimizer 'sgdd'"),
        (dict(optimizer="sgd", optimizer_params=[("learning_rate", 1)]), TypeError,
         "optimizer_params"),
        (dict(optimizer="sgd", optimizer_params={"learning_rat": 1}), TypeError,
         "learning_rat"),
        (dict(optimizer="sgd", kvstore="nccll"), ValueError, "kvstore"),
        (dict(optimizer="sgd", update_on_kvstore="yes"), TypeError, "update_on_kvstore"),
        (dict(optimizer="sgd", compression_params={"type": "3bit"}), ValueError, "type"),
        (dict(optimizer="sgd", compression_params="2bit"), TypeError, "compression_params"),
        (dict(optimizer="sgd", compression_params={"type": "2bit", "threshold": 0}),
         ValueError, "threshold"),
    ]:
        with pytest.raises(error, match=message):
            gluon.Trainer([p], **kwargs)


@pytest.mark.parametrize("kind, threshold", [("2bit", 0.5), ("1bit", 0.0)])
def test_gradient_compression_quantizes_with_error_feedback(devices, kind, threshold):
    p = _param(devices, value=0.0)
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 1.0},
                            compression_params={"type": kind, "threshold": threshold})
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
                q = np.where(residuals[k] >= threshold, threshold,
                             np.where(residuals[k] <= -threshold, -threshold, 0.0))
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


@pytest.mark.parametrize("name, params", [
    ("rmsprop", {"centered": True}), ("dcasgd", {"momentum": 0.9}), ("ftml", {}),
    ("adamax", {}), ("lamb", {}),
])
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
    scheduled = gluon.Trainer([p], "adamw",
                              {"lr_scheduler": mx.lr_scheduler.FactorScheduler(1, 0.5, 1e-8,
                                                                               0.4)})
    assert scheduled.learning_rate == 0.4
    with pytest.warns(UserWarning, match="lr_scheduler"):
        scheduled.set_learning_rate(1.0)
    assert scheduled.learning_rate == 0.4
