"""Optimizer step speed: gluonlite's multi-tensor path against its per-tensor NumPy path and
``torch.optim`` (foreach and fused implementations, where torch is importable).

Run timed with ``python3 -m pytest benchmarks/bench_optimizer.py --benchmark-enable``; the
default run (``--benchmark-disable``) executes each case once as a smoke test.

Two parameter sets: ``mlp`` (a few large tensors, where the extra copies of the multi-tensor
path cost the most) and ``many_small`` (hundreds of tiny tensors, where per-operation
overhead dominates and grouping pays). torch's SGD keeps ``v = momentum * v + g`` instead of
MXNet's ``mom = momentum * mom - lr * g``: different arithmetic, the same amount of work.
"""

import numpy as np
import pytest

from gluonlite.optimizer import SGD, Adam

MODELS = {
    "mlp": [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)],
    "many_small": [(16, 8), (16,)] * 200,
}
OPTIMIZERS = {
    "sgd_momentum": dict(learning_rate=0.01, momentum=0.9, wd=1e-4),
    "adam": dict(learning_rate=1e-3, wd=1e-4),
}


def _arrays(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _gluonlite_step(name, shapes, fused):
    klass = SGD if name == "sgd_momentum" else Adam
    opt = klass(use_fused_step=fused, **OPTIMIZERS[name])
    weights = _arrays(shapes, 0)
    grads = _arrays(shapes, 1)
    indices = list(range(len(weights)))
    states = [opt.create_state(i, w) for i, w in zip(indices, weights)]

    def step():
        opt.update(indices, weights, grads, states)

    return step, weights


def _torch_step(name, shapes, impl):
    torch = pytest.importorskip("torch", reason="torch is not installed; no torch.optim peer")
    params = [torch.nn.Parameter(torch.from_numpy(w)) for w in _arrays(shapes, 0)]
    for p, g in zip(params, _arrays(shapes, 1)):
        p.grad = torch.from_numpy(g)
    hyper = OPTIMIZERS[name]
    flag = {impl: True}
    try:
        if name == "sgd_momentum":
            opt = torch.optim.SGD(
                params,
                lr=hyper["learning_rate"],
                momentum=hyper["momentum"],
                weight_decay=hyper["wd"],
                **flag,
            )
        else:
            opt = torch.optim.Adam(
                params, lr=hyper["learning_rate"], weight_decay=hyper["wd"], **flag
            )
        opt.step()  # fused CPU kernels are missing from older torch; find out before timing
    except (RuntimeError, TypeError) as e:
        pytest.skip(f"torch.optim {impl}=True is not available here: {e}")

    def step():
        opt.step()

    return step, [p.detach().numpy() for p in params]


IMPLS = ["gluonlite_multi", "gluonlite_single", "torch_foreach", "torch_fused"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_step(benchmark, name, model, impl):
    shapes = MODELS[model]
    if impl.startswith("gluonlite"):
        step, weights = _gluonlite_step(name, shapes, fused=impl == "gluonlite_multi")
    else:
        step, weights = _torch_step(name, shapes, impl.split("_")[1])
    before = [w.copy() for w in weights]
    benchmark.group = f"{name}-{model}"
    benchmark.extra_info["elements"] = int(sum(np.prod(s) for s in shapes))
    benchmark.extra_info["tensors"] = len(shapes)
    benchmark(step)
    # A step that silently did nothing (or diverged) would make its timing meaningless.
    assert all(np.isfinite(w).all() for w in weights)
    assert all(not np.array_equal(w, b) for w, b in zip(weights, before))
