"""Run under ``mpiexec -n 2`` by tests/gluon/nn/test_norm_layers.py: SyncBatchNorm over
2 ranks x 2 devices (4 shards) against one BatchNorm over the concatenated batch.

Argument: the devices of each rank, e.g. ``cpu0,cpu1``. Each rank prints ``rank R ok on N
devices`` when every check passed (with both devices, then with the first alone), and then
the error every rank raised for ranks with different channels.
"""

import sys
import threading

import numpy

import gluonlite as mx
from gluonlite import autograd
from gluonlite.gluon import nn

CHANNELS, STEPS = 3, 2


def _device(spec):
    return mx.Device(spec.rstrip("0123456789"), int(spec.lstrip("cpugpu")))


def _say(text):
    sys.stdout.write(text + "\n")  # one write per line: ranks interleave
    sys.stdout.flush()


def _data(step, shards):
    rng = numpy.random.default_rng(100 + step)
    x = rng.standard_normal((4 * shards, CHANNELS, 2, 3)) * 3 + 1.5
    head = rng.standard_normal(x.shape)
    return x, head


def _gather(kv, array):
    """Every rank's float64 ``array``, in rank order."""
    return [
        numpy.frombuffer(b).reshape(array.shape)
        for b in kv.allgather_bytes(numpy.ascontiguousarray(array, numpy.float64).tobytes())
    ]


def _init(layer, devices, gamma, beta):
    layer.initialize(device=devices)
    layer.gamma.set_data(mx.np.array(gamma, dtype="float64"))
    layer.beta.set_data(mx.np.array(beta, dtype="float64"))


def _step(layer, xs, heads, devices):
    """Forward and backward of each shard on its device, one thread per device."""
    results = [None] * len(devices)
    errors = []

    def run(i):
        try:
            x = mx.np.array(xs[i], dtype="float64", device=devices[i])
            x.attach_grad()
            with autograd.record():
                y = layer(x)
                loss = (y * mx.np.array(heads[i], dtype="float64", device=devices[i])).sum()
            loss.backward()
            results[i] = (y.asnumpy(), x.grad.asnumpy())
        except Exception as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(devices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def check(devices):
    rng = numpy.random.default_rng(5)
    gamma, beta = rng.uniform(0.5, 1.5, CHANNELS), rng.standard_normal(CHANNELS)
    synced = nn.SyncBatchNorm(
        in_channels=CHANNELS, num_devices=len(devices), momentum=0.8, dtype="float64"
    )
    _init(synced, devices, gamma, beta)
    # The Trainer makes this process's distributed store; SyncBatchNorm finds it.
    trainer = mx.gluon.Trainer(
        synced.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync"
    )
    kv = mx.kv.process_store()
    rank, size = kv.rank, kv.num_workers
    assert size == 2, size
    reference = nn.BatchNorm(in_channels=CHANNELS, momentum=0.8, dtype="float64")
    _init(reference, [mx.cpu(0)], gamma, beta)
    shards = size * len(devices)
    mine = range(rank * len(devices), (rank + 1) * len(devices))
    tight = dict(rtol=1e-11, atol=1e-12)
    for step in range(STEPS):
        x, head = _data(step, shards)
        xs, heads = numpy.split(x, shards), numpy.split(head, shards)
        got = _step(synced, [xs[i] for i in mine], [heads[i] for i in mine], devices)
        ((want_y, want_dx),) = _step(reference, [x], [head], [mx.cpu(0)])
        for (y, dx), i in zip(got, mine):
            numpy.testing.assert_allclose(
                y,
                numpy.split(want_y, shards)[i],
                **tight,
                err_msg=f"output of shard {i}, step {step}",
            )
            numpy.testing.assert_allclose(
                dx,
                numpy.split(want_dx, shards)[i],
                **tight,
                err_msg=f"input gradient of shard {i}, step {step}",
            )
        for name in ("gamma", "beta"):
            local = sum(getattr(synced, name).grad(d).asnumpy() for d in devices)
            numpy.testing.assert_allclose(
                sum(_gather(kv, local)),
                getattr(reference, name).grad(mx.cpu(0)).asnumpy(),
                **tight,
                err_msg=f"{name} gradient summed over the shards, step {step}",
            )
    for name in ("running_mean", "running_var"):
        replicas = [getattr(synced, name).data(d).asnumpy() for d in devices]
        for r in replicas[1:]:
            numpy.testing.assert_array_equal(r, replicas[0], err_msg=f"{name} replicas")
        every = _gather(kv, replicas[0])
        numpy.testing.assert_array_equal(every[1], every[0], err_msg=f"{name} across ranks")
        numpy.testing.assert_allclose(
            replicas[0], getattr(reference, name).data(mx.cpu(0)).asnumpy(), **tight, err_msg=name
        )
    # Inference normalises with the (shared) running statistics.
    x, _ = _data(STEPS, shards)
    numpy.testing.assert_allclose(
        synced(
            mx.np.array(numpy.split(x, shards)[mine[0]], dtype="float64", device=devices[0])
        ).asnumpy(),
        numpy.split(reference(mx.np.array(x, dtype="float64")).asnumpy(), shards)[mine[0]],
        **tight,
    )
    del trainer
    _say(f"rank {rank} ok on {len(devices)} devices")


def refuse_different_layers(devices):
    """Ranks whose layers differ get the same clear error each, instead of wrong sums."""
    rank = mx.kv.process_store().rank
    odd = nn.SyncBatchNorm(in_channels=CHANNELS + rank, num_devices=1, dtype="float64")
    odd.initialize(device=devices[0])
    try:
        with autograd.record():
            odd(mx.np.ones((2, CHANNELS + rank), dtype="float64", device=devices[0]))
    except ValueError as e:
        _say(f"rank {rank} refused: {e}")


if __name__ == "__main__":
    devices = [_device(s) for s in sys.argv[1].split(",")]
    check(devices)
    check(devices[:1])  # one device per rank: the reduction over the ranks alone
    refuse_different_layers(devices)
