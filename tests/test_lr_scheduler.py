"""mx.lr_scheduler: each schedule's rates against MXNet's formulas written out, warmup,
validation, and the rate following num_update through an optimizer and Trainer.step."""

import math

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import gluon, lr_scheduler


def test_factor_scheduler_decays_every_step_updates_down_to_the_floor():
    s = lr_scheduler.FactorScheduler(step=3, factor=0.5, stop_factor_lr=0.1, base_lr=1.0)
    # MXNet: decay while num_update > count + step.
    assert [s(n) for n in range(0, 14)] == [
        1,
        1,
        1,
        1,
        0.5,
        0.5,
        0.5,
        0.25,
        0.25,
        0.25,
        0.125,
        0.125,
        0.125,
        0.1,
    ]


def test_multi_factor_scheduler_decays_after_each_listed_update():
    s = lr_scheduler.MultiFactorScheduler(step=[2, 5], factor=0.1, base_lr=1.0)
    assert [s(n) for n in range(7)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("mode", ["linear", "constant"])
def test_poly_and_cosine_with_warmup(mode):
    poly = lr_scheduler.PolyScheduler(
        max_update=12,
        base_lr=1.0,
        pwr=2,
        final_lr=0.1,
        warmup_steps=4,
        warmup_begin_lr=0.2,
        warmup_mode=mode,
    )
    cos = lr_scheduler.CosineScheduler(
        max_update=12,
        base_lr=1.0,
        final_lr=0.1,
        warmup_steps=4,
        warmup_begin_lr=0.2,
        warmup_mode=mode,
    )
    for n in range(4):
        warm = 0.2 + 0.8 * n / 4 if mode == "linear" else 0.2
        assert poly(n) == pytest.approx(warm) and cos(n) == pytest.approx(warm)
    for n in range(4, 16):
        done = min((n - 4) / 8, 1.0)
        assert poly(n) == pytest.approx(0.1 + 0.9 * (1 - done) ** 2)
        assert cos(n) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * done)) / 2)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: lr_scheduler.FactorScheduler(step=0), ValueError, "step"),
        (lambda: lr_scheduler.FactorScheduler(step=2, factor=1.5), ValueError, "factor"),
        (lambda: lr_scheduler.MultiFactorScheduler(step=[3, 2]), ValueError, "increasing"),
        (lambda: lr_scheduler.MultiFactorScheduler(step=5), TypeError, "list"),
        (lambda: lr_scheduler.PolyScheduler(max_update=0), ValueError, "max_update"),
        (
            lambda: lr_scheduler.CosineScheduler(max_update=5, warmup_steps=5),
            ValueError,
            "max_update",
        ),
        (lambda: lr_scheduler.LRScheduler(warmup_mode="cubic"), ValueError, "warmup_mode"),
        (
            lambda: lr_scheduler.LRScheduler(base_lr=0.1, warmup_begin_lr=0.5),
            ValueError,
            "warmup_begin_lr",
        ),
        (lambda: lr_scheduler.LRScheduler(warmup_steps=1.5), TypeError, "warmup_steps"),
        (lambda: lr_scheduler.LRScheduler()(-1), ValueError, "num_update"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_optimizer_takes_base_lr_unless_given_a_learning_rate():
    s = lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.4)
    assert mx.optimizer.SGD(lr_scheduler=s).learning_rate == 0.4
    mx.optimizer.Adam(learning_rate=0.2, lr_scheduler=s)
    assert s.base_lr == 0.2


def test_rate_follows_num_update_through_trainer_step(devices):
    p = gluon.Parameter("w", shape=(2,), init=mx.init.Zero())
    p.initialize(device=devices)
    s = lr_scheduler.MultiFactorScheduler(step=[1, 2], factor=0.5, base_lr=1.0)
    trainer = gluon.Trainer([p], "sgd", {"lr_scheduler": s})
    rates = []
    for _ in range(3):
        with mx.autograd.record():
            losses = [p.data(d).sum() for d in devices]
        for loss in losses:
            loss.backward()
        trainer.step(1)
        rates.append(trainer.learning_rate)  # schedule(num_update): the rate just used
    # Update n takes schedule(n): 1, 0.5, 0.25; each replica's gradient is 1, summed.
    assert trainer.optimizer.num_update == 3 and rates == [1.0, 0.5, 0.25]
    for d in devices:
        np.testing.assert_allclose(p.data(d).asnumpy(), [-len(devices) * 1.75] * 2)
