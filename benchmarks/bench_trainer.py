"""Trainer.step throughput (steps/s = pytest-benchmark's OPS) against a bare NumPy update
loop and PyTorch's ``torch.optim`` foreach/fused paths where torch is importable (the peers
are those of ``gluonlite-bench step``).

    python -m pytest benchmarks/bench_trainer.py --benchmark-enable

The parameter set is the ``step`` suite's (100 parameters, 3.3M elements). Gradients are filled
once and re-marked fresh before each step, so the step alone is timed (no forward or
backward). Under ``--benchmark-disable`` (the test suite's default) every case runs once.
"""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _backend, gluon
from gluonlite.bench import step as step_suite, targets
from gluonlite.bench.workload import Skip

# The model of ``gluonlite-bench step`` (50 layers of [256, 256] weights and [256] biases), so
# the Trainer and its peers below update the same arrays.
SHAPES = step_suite.layer_shapes(step_suite.specs(None, quick=False)[0])
# SGD and Adam, as before the step suite covered every optimizer (gluonlite-bench step times
# the others).
HYPER = {name: step_suite.HYPER[name] for name in ("sgd", "adam")}


def _device_sets():
    sets = [
        pytest.param([mx.cpu(0)], id="cpu0"),
        pytest.param([mx.cpu(0), mx.cpu(1)], id="cpu0-cpu1"),
    ]
    n = mx.num_gpus()
    if n >= 1:
        sets.append(pytest.param([mx.gpu(0)], id="gpu0"))
    if n >= 2:
        sets.append(pytest.param([mx.gpu(0), mx.gpu(1)], id="gpu0-gpu1"))
    return sets


def _params(devices):
    rng = np.random.default_rng(0)
    params = []
    for k, shape in enumerate(SHAPES):
        p = gluon.Parameter(f"p{k}", shape=shape, init="xavier" if len(shape) == 2 else "zeros")
        p.initialize(device=devices)
        grad = rng.standard_normal(shape).astype(np.float32)
        for g in p.list_grad():
            g[:] = mx.np.array(grad, device=g.device)
        params.append(p)
    return params


@pytest.mark.parametrize("devices", _device_sets())
@pytest.mark.parametrize("fused", [True, False], ids=["multi-tensor", "per-tensor"])
@pytest.mark.parametrize("optimizer", sorted(HYPER))
def test_trainer_step(benchmark, devices, optimizer, fused):
    params = _params(devices)
    trainer = gluon.Trainer(params, optimizer, dict(HYPER[optimizer], use_fused_step=fused))
    replicas = [r for p in params for r in p.list_data()]
    # allreduce_grads sums in place, so each step starts from the same gradients again.
    grads = [(g, g.copy()) for p in params for g in p.list_grad()]

    def step():
        # Stand in for a backward pass: write the gradients and mark them fresh.
        for g, value in grads:
            g[:] = value
        for r in replicas:
            r._fresh_grad = True
        trainer.step(batch_size=64)
        for d in devices:
            mx.np.ones(1, device=d).wait_to_read()

    benchmark(step)
    first = params[0].list_data()
    assert all((first[0].asnumpy() == r.asnumpy()).all() for r in first[1:])


def _peer_params():
    """The CLI's ``step`` peers (a per-tensor NumPy/CuPy loop, torch.optim foreach/fused),
    built by ``gluonlite.bench.step`` so both harnesses time the very same code."""
    cases = []
    for target in targets.resolve("all"):
        for spec in step_suite.specs(target, quick=False):
            if spec["optimizer"] not in HYPER:
                continue
            for impl in step_suite.implementations(spec, target):
                # MXNet is timed in its own process (gluonlite-bench step), not here.
                if impl != "gluonlite" and not impl.startswith("mxnet"):
                    cases.append(
                        pytest.param(
                            target, spec, impl, id=f"{target.name}-{spec['optimizer']}-{impl}"
                        )
                    )
    return cases


@pytest.mark.parametrize("target, spec, impl", _peer_params())
def test_peer_step(benchmark, target, spec, impl):
    try:
        workload = step_suite.implementations(spec, target)[impl]()
    except Skip as e:  # e.g. torch without fused kernels for this device
        pytest.skip(str(e))
    with _backend.on(target.primary):
        benchmark(workload.fn)
    assert workload.work == sum(int(np.prod(s)) for s in step_suite.layer_shapes(spec))
