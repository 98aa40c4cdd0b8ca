"""Reader threads against a stepping Trainer: every read or copy of a replica sees one
whole version, and a checkpoint saved meanwhile holds one step (issue 15, item 3)."""

from __future__ import annotations

import threading
import time

import numpy

import gluonlite as mx
from gluonlite import checkpoint, gluon

_N = 1 << 20  # large enough that NumPy lets other threads run mid-copy
_SECONDS = 1.5  # at least this long and _STEPS steps (slower on a loaded machine) ...
_STEPS = 8
_CAP_SECONDS = 10  # ... but never longer than this


def _model(devices):
    # Every element of a parameter holds the same value at every step (the gradient is all
    # ones and the start constant), and 'v' moves twice as fast as 'w': a read that mixes
    # two versions shows unequal elements, a checkpoint that mixes two steps v != 2 w.
    params = {
        "w": gluon.Parameter("w", shape=(_N,), init="zeros"),
        "v": gluon.Parameter("v", shape=(_N // 4,), init="zeros"),
    }
    for p in params.values():
        p.initialize(device=devices)
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 1.0})
    return params, trainer


def _step(params, trainer, devices):
    with mx.autograd.record():
        losses = [params["w"].data(d).sum() + 2 * params["v"].data(d).sum() for d in devices]
    for loss in losses:
        loss.backward()
    trainer.step(len(devices))


def _whole(values) -> bool:
    return values.min() == values.max()


def test_readers_never_see_a_torn_replica_or_a_mixed_checkpoint(tmp_path):
    devices = [mx.cpu(0), mx.cpu(1)]
    params, trainer = _model(devices)
    stop = threading.Event()
    torn, reads = [], [0]
    w = params["w"]

    def reader(read):
        while not stop.is_set():
            values = read()
            reads[0] += 1
            if not _whole(values):
                torn.append((read.__name__, values.min(), values.max()))

    def by_asnumpy():
        return w.data(devices[1]).asnumpy()

    def by_copyto():
        return w.data(devices[0]).copyto(mx.cpu(0)).asnumpy()

    def by_copy():
        return numpy.asarray(w.data(devices[1]).copy())

    def saver():
        k = 0
        while not stop.is_set():
            path = tmp_path / f"ckpt{k % 2}.safetensors"
            gluon.save_parameters(path, params)
            arrays = checkpoint.read_checkpoint(path).arrays
            wv, vv = arrays["w"].values, arrays["v"].values
            reads[0] += 1
            if not (_whole(wv) and _whole(vv) and vv[0] == 2 * wv[0]):
                torn.append(("checkpoint", float(wv[0]), float(vv[0])))
            k += 1

    threads = [
        threading.Thread(target=reader, args=(f,)) for f in (by_asnumpy, by_copyto, by_copy)
    ] + [threading.Thread(target=saver)]
    for t in threads:
        t.start()
    start = time.monotonic()
    try:
        steps = 0
        while (
            not torn
            and time.monotonic() - start < _CAP_SECONDS
            and (steps < _STEPS or time.monotonic() - start < _SECONDS)
        ):
            _step(params, trainer, devices)
            steps += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not torn, f"{len(torn)} of {reads[0]} reads mixed two versions, e.g. {torn[:3]}"
    assert steps >= _STEPS and reads[0] > 3, (steps, reads[0])
    assert not any(t.is_alive() for t in threads)
