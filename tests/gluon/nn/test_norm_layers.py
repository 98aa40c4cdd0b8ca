"""gluon.nn BatchNorm, SyncBatchNorm, InstanceNorm, LayerNorm, GroupNorm: parameters in the
store (running statistics grad_req='null', one replica per device), deferred shapes,
agreement with the operators, SyncBatchNorm's whole-batch statistics."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading

import numpy
import pytest

import gluonlite as mx
from gluonlite import autograd, gluon
from gluonlite.gluon import nn

from ...test_kvstore import _mpiexec  # skips cleanly without mpi4py or mpiexec

ROOT = pathlib.Path(__file__).parents[3]


def test_batch_norm_parameters_and_per_device_running_statistics(devices):
    bn = nn.BatchNorm(momentum=0.5)
    assert repr(bn) == (
        "BatchNorm(axis=1, eps=1e-05, momentum=0.5, fix_gamma=False, "
        "use_global_stats=False, in_channels=None)"
    )
    bn.initialize(device=devices)
    x = numpy.random.default_rng(0).standard_normal((6, 3, 2, 2)) + 2
    with autograd.record():
        y = bn(mx.np.array(x, device=devices[1]))
    y.backward()
    params = bn.collect_params()
    assert list(params) == ["gamma", "beta", "running_mean", "running_var"]
    assert [p.grad_req for p in params.values()] == ["write", "write", "null", "null"]
    assert all(p.shape == (3,) for p in params.values())
    assert "in_channels=3" in repr(bn)
    # Only the replica of the device that ran changed.
    numpy.testing.assert_allclose(
        bn.running_mean.data(devices[1]).asnumpy(), 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5
    )
    numpy.testing.assert_allclose(
        bn.running_var.data(devices[1]).asnumpy(), 0.5 + 0.5 * x.var(axis=(0, 2, 3)), rtol=1e-5
    )
    assert not bn.running_mean.data(devices[0]).asnumpy().any()
    # A Trainer steps gamma and beta and leaves the running statistics alone.
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.1})
    with autograd.record():
        losses = [bn(mx.np.array(x, device=d)).sum() for d in devices]
    for loss in losses:
        loss.backward()
    stats = bn.running_mean.data(devices[0]).asnumpy().copy()
    trainer.step(12)
    numpy.testing.assert_array_equal(bn.running_mean.data(devices[0]).asnumpy(), stats)
    numpy.testing.assert_array_equal(
        bn.gamma.data(devices[0]).asnumpy(), bn.gamma.data(devices[1]).asnumpy()
    )


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(scale=False, center=False), dict(use_global_stats=True), dict(axis=-1)]
)
def test_batch_norm_layer_equals_the_operator(kwargs):
    bn = nn.BatchNorm(**kwargs)
    bn.initialize()
    x = mx.np.array(numpy.random.default_rng(1).standard_normal((4, 3, 2, 3)))
    with autograd.record():
        y = bn(x)
    ones, zeros = (
        mx.np.ones((x.shape[kwargs.get("axis", 1)],)),
        mx.np.zeros((x.shape[kwargs.get("axis", 1)],)),
    )
    with autograd.train_mode():
        want = mx.npx.batch_norm(
            x,
            ones,
            zeros,
            zeros.copy(),
            ones.copy(),
            eps=1e-5,
            fix_gamma=not kwargs.get("scale", True),
            use_global_stats=kwargs.get("use_global_stats", False),
            axis=kwargs.get("axis", 1),
        )
    numpy.testing.assert_allclose(y.asnumpy(), want.asnumpy(), rtol=1e-6, atol=1e-6)
    if not kwargs.get("scale", True):
        assert bn.gamma.grad_req == "null" and bn.beta.grad_req == "null"


def _sync_run(layer_factory, x, devices, threaded):
    """Forward and backward of ``x`` split over ``devices``; returns outputs and grads."""
    layer = layer_factory()
    layer.initialize(device=devices)
    parts = numpy.array_split(x, len(devices))
    head = numpy.random.default_rng(9).standard_normal(x.shape)
    heads = numpy.array_split(head, len(devices))
    outputs = [None] * len(devices)

    def run(i):
        xi = mx.np.array(parts[i], device=devices[i])
        xi.attach_grad()
        with autograd.record():
            y = layer(xi)
            loss = (y * mx.np.array(heads[i], device=devices[i])).sum()
        loss.backward()
        outputs[i] = (y.asnumpy(), xi.grad.asnumpy())

    if threaded:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(devices))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(len(devices)):
            run(i)
    ys = numpy.concatenate([o[0] for o in outputs])
    dxs = numpy.concatenate([o[1] for o in outputs])
    gamma = sum(layer.gamma.grad(d).asnumpy() for d in devices)
    return ys, dxs, gamma, layer


def test_sync_batch_norm_uses_whole_batch_statistics(devices):
    x = numpy.random.default_rng(2).standard_normal((8, 3, 2, 2)) * 3 + 1
    single = _sync_run(lambda: nn.BatchNorm(), x, [devices[0]], threaded=False)
    synced = _sync_run(
        lambda: nn.SyncBatchNorm(num_devices=len(devices)), x, devices, threaded=True
    )
    for got, want in zip(synced[:3], single[:3]):
        numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # Every device updated its running statistics with the same whole-batch values.
    layer = synced[3]
    numpy.testing.assert_allclose(
        layer.running_mean.data(devices[0]).asnumpy(), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5
    )
    numpy.testing.assert_array_equal(
        layer.running_mean.data(devices[0]).asnumpy(), layer.running_mean.data(devices[1]).asnumpy()
    )
    # Plain BatchNorm on the same split normalises each half on its own: different.
    local = _sync_run(lambda: nn.BatchNorm(), x, devices, threaded=False)
    assert not numpy.allclose(local[0], single[0], atol=1e-3)


def test_sync_batch_norm_keeps_float32_precision_when_the_mean_is_large(devices):
    # Merging sums of squares would lose the variance here (its error is about 30 % for
    # mean 1000, spread 1); merging each device's moments keeps what one BatchNorm has.
    x = (numpy.random.default_rng(6).standard_normal((16, 4, 4, 4)) + 1000).astype("float32")
    single = _sync_run(lambda: nn.BatchNorm(), x, [devices[0]], threaded=False)
    synced = _sync_run(
        lambda: nn.SyncBatchNorm(num_devices=len(devices)), x, devices, threaded=True
    )
    for got, want in zip(synced[:3], single[:3]):
        numpy.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
    numpy.testing.assert_allclose(
        synced[3].running_var.data(devices[0]).asnumpy(),
        single[3].running_var.data(devices[0]).asnumpy(),
        rtol=1e-4,
    )


def test_sync_batch_norm_without_threads_times_out_with_a_hint():
    layer = nn.SyncBatchNorm(num_devices=2, timeout=0.2, in_channels=2)
    layer.initialize()
    with autograd.record(), pytest.raises(RuntimeError, match="its own thread"):
        layer(mx.np.ones((2, 2, 2)))


def _device_spec(devices):
    return ",".join(f"{d.device_type}{d.device_id}" for d in devices)


def test_sync_batch_norm_across_two_ranks_equals_one_batch_norm(devices):
    # 2 ranks x 2 devices: outputs, input gradients, summed gamma/beta gradients and
    # running statistics (bit-identical on every rank and replica) against one BatchNorm
    # over the concatenated batch, in float64.
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", MXNET_KVSTORE_TIMEOUT="30")
    result = subprocess.run(
        [
            _mpiexec(),
            "-n",
            "2",
            sys.executable,
            str(ROOT / "tests" / "mpi" / "sync_batch_norm.py"),
            _device_spec(devices),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for n in (2, 1):  # 2 ranks x 2 devices, then 2 ranks x 1 device
        assert f"rank 0 ok on {n} devices" in lines, result.stdout
        assert f"rank 1 ok on {n} devices" in lines, result.stdout
    # Ranks with different channel counts: each raises the same ValueError, naming both.
    refused = sorted(line for line in lines if " refused: " in line)
    assert len(refused) == 2, result.stdout
    assert refused[0].startswith(
        'rank 0 refused: SyncBatchNorm: the statistics of rank 1 are [["<f8", [1, 4]]'
    ), refused
    assert refused[1].startswith(
        'rank 1 refused: SyncBatchNorm: the statistics of rank 0 are [["<f8", [1, 3]]'
    ), refused


class _PeerWithOtherDtype(mx.kv.KVStore):
    """A store of two 'ranks' whose second contributes float64 statistics."""

    @property
    def num_workers(self) -> int:
        return 2

    def allgather_bytes(self, data, what="allgather"):
        return [data, data.replace(b'"<f4"', b'"<f8"')]


def test_sync_batch_norm_failing_across_ranks_raises_on_every_device_and_changes_nothing(devices):
    layer = nn.SyncBatchNorm(
        num_devices=2, kvstore=_PeerWithOtherDtype(), in_channels=3, timeout=30
    )
    layer.initialize(device=devices)
    errors = {}

    def run(device):
        try:
            with autograd.record():
                layer(mx.np.ones((2, 3), device=device))
        except Exception as e:  # noqa: BLE001 - inspected below
            errors[device] = e

    threads = [threading.Thread(target=run, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The first device ran the reduction over the ranks: its error, and the other's.
    assert isinstance(errors[devices[0]], ValueError)
    assert str(errors[devices[0]]).startswith(
        'SyncBatchNorm: the statistics of rank 1 are [["<f8", [1, 3]]'
    )
    assert isinstance(errors[devices[1]], RuntimeError)
    assert f"the reduction over the ranks, run by {devices[0]}, failed" in str(errors[devices[1]])
    for d in devices:
        assert layer.running_mean.data(d).asnumpy().tolist() == [0.0] * 3
        assert layer.running_var.data(d).asnumpy().tolist() == [1.0] * 3


def test_sync_batch_norm_kvstore_argument():
    layer = nn.SyncBatchNorm(num_devices=1, kvstore="device", in_channels=2)
    layer.initialize()
    x = numpy.random.default_rng(4).standard_normal((4, 2))
    with autograd.record():
        y = layer(mx.np.array(x))
    numpy.testing.assert_allclose(
        y.asnumpy(), (x - x.mean(0)) / numpy.sqrt(x.var(0) + 1e-5), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="Unknown kvstore 'dist_async'"):
        nn.SyncBatchNorm(kvstore="dist_async")
    with pytest.raises(ValueError, match="num_devices must be at least 1, got 0"):
        nn.SyncBatchNorm(num_devices=0)


@pytest.mark.parametrize(
    "make, op",
    [
        (
            lambda: nn.LayerNorm(),
            lambda x: mx.npx.layer_norm(x, mx.np.ones((4,)), mx.np.zeros((4,))),
        ),
        (
            lambda: nn.GroupNorm(num_groups=2),
            lambda x: mx.npx.group_norm(x, mx.np.ones((2,)), mx.np.zeros((2,)), num_groups=2),
        ),
        (
            lambda: nn.InstanceNorm(),
            lambda x: mx.npx.instance_norm(x, None, mx.np.zeros((2,)), eps=1e-5),
        ),
    ],
)
def test_other_norm_layers_defer_their_size_and_equal_the_operator(make, op):
    layer = make()
    layer.initialize()
    x = mx.np.array(numpy.random.default_rng(3).standard_normal((3, 2, 4)))
    numpy.testing.assert_allclose(layer(x).asnumpy(), op(x).asnumpy(), rtol=1e-6)
    assert "in_channels=" in repr(layer) and "None" not in repr(layer)
    with pytest.raises(ValueError, match=type(layer).__name__):
        layer(mx.np.ones((3, 6, 5)))
