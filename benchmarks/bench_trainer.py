"""Trainer.step throughput (steps/s = pytest-benchmark's OPS) against a bare NumPy update
loop and PyTorch's ``torch.optim`` foreach/fused paths where torch is importable.

    python -m pytest benchmarks/bench_trainer.py --benchmark-enable

The parameter set is an MLP's (784-256-128-10, about 235k weights). Gradients are filled
once and re-marked fresh before each step, so the step alone is timed (no forward or
backward). Under ``--benchmark-disable`` (the test suite's default) every case runs once.
"""
from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import gluon

SHAPES = [(256, 784), (256,), (128, 256), (128,), (10, 128), (10,)]
HYPER = {"sgd": {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4},
         "adam": {"learning_rate": 0.001, "wd": 1e-4}}


def _device_sets():
    sets = [pytest.param([mx.cpu(0)], id="cpu0"),
            pytest.param([mx.cpu(0), mx.cpu(1)], id="cpu0-cpu1")]
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
    trainer = gluon.Trainer(params, optimizer,
                            dict(HYPER[optimizer], use_fused_step=fused))
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


@pytest.mark.parametrize("optimizer", sorted(HYPER))
def test_numpy_loop(benchmark, optimizer):
    """The floor: MXNet's update written as a plain NumPy loop over the same arrays."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    hp = HYPER[optimizer]
    lr, wd, scale = hp["learning_rate"], hp["wd"], 1 / 64

    def sgd_step():
        for w, g, mom in zip(weights, grads, m):
            mom *= 0.9
            mom -= lr * (g * scale + wd * w)
            w += mom

    t = [0]

    def adam_step():
        t[0] += 1
        lr_t = lr * np.sqrt(1 - 0.999 ** t[0]) / (1 - 0.9 ** t[0])
        for w, g, mean, var in zip(weights, grads, m, v):
            g = g * scale + wd * w
            mean *= 0.9
            mean += 0.1 * g
            var *= 0.999
            var += 0.001 * g * g
            w -= lr_t * mean / (np.sqrt(var) + 1e-8)

    benchmark(sgd_step if optimizer == "sgd" else adam_step)
    assert all(np.isfinite(w).all() for w in weights)


@pytest.mark.parametrize("impl", ["foreach", "fused"])
@pytest.mark.parametrize("optimizer", sorted(HYPER))
def test_torch_optim(benchmark, optimizer, impl):
    torch = pytest.importorskip("torch")
    weights = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    for w in weights:
        w.grad = torch.randn(w.shape)
    hp = HYPER[optimizer]
    kwargs = {impl: True}
    try:
        if optimizer == "sgd":
            opt = torch.optim.SGD(weights, lr=hp["learning_rate"], momentum=0.9,
                                  weight_decay=hp["wd"], **kwargs)
        else:
            opt = torch.optim.Adam(weights, lr=hp["learning_rate"], weight_decay=hp["wd"],
                                   **kwargs)
        opt.step()
    except (RuntimeError, TypeError) as e:  # fused needs a recent torch (and CPU support)
        pytest.skip(f"torch.optim {optimizer} {impl}=True unavailable here: {e}")
    benchmark(opt.step)
    assert all(torch.isfinite(w).all() for w in weights)
