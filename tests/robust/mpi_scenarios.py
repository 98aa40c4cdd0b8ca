"""Run under mpiexec (or gluonlite.distributed.run) by tests/robust/test_dist.py: one
scenario per command-line argument."""

import os
import sys


import gluonlite as mx


def _net(width, extra=False, in_units=3, dtype="float32"):
    net = mx.gluon.nn.Sequential()
    net.add(mx.gluon.nn.Dense(width, in_units=in_units, dtype=dtype))
    if extra:
        net.add(mx.gluon.nn.Dense(2, in_units=width))
    net.initialize(mx.init.One(), device=mx.cpu(0))
    return net


def _say(text):
    # One write per line: ranks interleave.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def train(rank, steps=40, die_at=None):
    net = _net(4)
    trainer = mx.gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync"
    )
    x = mx.np.ones((2, 3))
    for step in range(steps):
        if step == die_at:
            os._exit(0)  # ends without an error: a bare mpiexec may call the job a success
        with mx.autograd.record():
            loss = net(x).sum()
        loss.backward()
        trainer.step(4)
    _say(f"rank {rank} finished {steps} steps")


def mismatches(rank):
    # Each case: what rank 1 builds differently. Every rank must raise the same error.
    cases = {
        "width": dict(width=5 if rank else 4),
        "extra layer": dict(width=4, extra=bool(rank)),
        "dtype": dict(width=4, dtype="float64" if rank else "float32"),
    }
    for case, kwargs in cases.items():
        try:
            mx.gluon.Trainer(_net(**kwargs).collect_params(), "sgd", kvstore="dist_sync")
        except ValueError as e:
            _say(f"rank {rank} {case}: {e}")
        else:
            _say(f"rank {rank} {case}: no error")
    # Deferred shapes are compared once known, at the first step.
    net = mx.gluon.nn.Dense(2)
    net.initialize(device=mx.cpu(0))
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", kvstore="dist_sync")
    with mx.autograd.record():
        loss = net(mx.np.ones((1, 3 + rank))).sum()
    loss.backward()
    try:
        trainer.step(1)
    except ValueError as e:
        _say(f"rank {rank} deferred: {e}")
    else:
        _say(f"rank {rank} deferred: no error")


if __name__ == "__main__":
    kv_rank = int(os.environ.get("PMI_RANK", "0"))
    scenario = sys.argv[1]
    if scenario == "early-exit":
        train(kv_rank, die_at=10 if kv_rank == 1 else None)
    elif scenario == "complete":
        train(kv_rank, steps=3)
    elif scenario == "raise":
        if kv_rank == 1:
            raise RuntimeError("simulated failure on rank 1")
        train(kv_rank)
    elif scenario == "mismatches":
        mismatches(kv_rank)
