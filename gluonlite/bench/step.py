"""Suite ``step``: ``Trainer.step`` for every optimizer, 100 parameters.

The model is 50 layers' weights ``[h, h]`` and biases ``[h]`` on one device. Before each
timed step an untimed backward pass writes fresh gradients (``Trainer.step`` refuses stale
ones, as MXNet's does), so only the step is timed: all-reduce (a no-op on one device),
rescaling, and the optimizer update. Throughput is parameter elements updated per second.

Peers, in one run: on CPU, Apache MXNet 1.9.1's ``Trainer.step`` with the same optimizer
and arguments (timed in its own environment, see :mod:`gluonlite.bench.mxnet`; a column
where ``.venv-mxnet`` exists and MXNet 1.9.1 has the optimizer); on every device,
``torch.optim``'s counterpart with ``foreach`` and ``fused`` implementations where torch is
importable and has them (SGD, NAG, Adam, AdamW, Adamax, Nadam, AdaGrad, AdaDelta, RMSProp);
for SGD and Adam also the update written as a loop of in-place NumPy (CPU) or CuPy (GPU)
operations.
"""

from __future__ import annotations

import math

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy

from .. import autograd, gluon
from ..device import Device
from . import _mxnet_runner as mxnet
from .report import Metric
from .targets import Target, clock_for
from .timing import Clock, HostClock, TorchEventClock
from .workload import Builder, Remote, Skip, Spec, Workload, optional_torch

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "specs",
    "describe",
    "implementations",
    "layer_shapes",
    "gluonlite_workload",
]

NAME = "step"
TITLE = (
    "Trainer.step over a 100-parameter model, every optimizer (parameter elements "
    "updated per second)"
)
METRIC = Metric("Melem/s", 1e6)
SIZE_LABEL = "parameter elements"

_LAYERS = 50
_HIDDEN = {False: 256, True: 32}
# MXNet's argument names; the runner hands them to MXNet's Trainer unchanged.
# Other optimizers take their defaults, with a learning rate and weight decay: argument
# names that MXNet 1.9.1 and 2 share.
HYPER = {
    "sgd": {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "wd": 1e-4},
    "nag": {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4},
}
OPTIMIZERS = (
    "sgd",
    "nag",
    "signum",
    "sgld",
    "dcasgd",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "adabelief",
    "adagrad",
    "adadelta",
    "rmsprop",
    "ftrl",
    "ftml",
    "lamb",
    "lans",
    "lars",
)
_DEFAULT_HYPER = {"learning_rate": 1e-3, "wd": 1e-4}
# torch.optim's counterpart: (class, keyword arguments from the MXNet-style hyper dict).
_TORCH: dict[str, tuple[str, Callable[[dict[str, float]], dict[str, Any]]]] = {
    "sgd": (
        "SGD",
        lambda hp: dict(lr=hp["learning_rate"], momentum=hp["momentum"], weight_decay=hp["wd"]),
    ),
    "nag": (
        "SGD",
        lambda hp: dict(
            lr=hp["learning_rate"], momentum=hp["momentum"], weight_decay=hp["wd"], nesterov=True
        ),
    ),
    "adam": (
        "Adam",
        lambda hp: dict(
            lr=hp["learning_rate"],
            betas=(hp["beta1"], hp["beta2"]),
            eps=hp["epsilon"],
            weight_decay=hp["wd"],
        ),
    ),
    "adamw": ("AdamW", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
    "adamax": ("Adamax", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
    "nadam": ("NAdam", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
    "adagrad": ("Adagrad", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
    "adadelta": ("Adadelta", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
    "rmsprop": ("RMSprop", lambda hp: dict(lr=hp["learning_rate"], weight_decay=hp["wd"])),
}


def specs(target: Target, quick: bool) -> list[Spec]:
    return [
        {
            "optimizer": name,
            "layers": _LAYERS,
            "hidden": _HIDDEN[quick],
            "hyper": HYPER.get(name, _DEFAULT_HYPER),
            "quick": quick,
        }
        for name in OPTIMIZERS
    ]


def layer_shapes(spec: Spec) -> list[tuple[int, ...]]:
    h: int = spec["hidden"]
    return [shape for _ in range(spec["layers"]) for shape in ((h, h), (h,))]


def _elements(spec: Spec) -> int:
    return sum(math.prod(s) for s in layer_shapes(spec))


def describe(spec: Spec) -> tuple[str, str, float]:
    label = f"{spec['optimizer']:<9} {2 * spec['layers']} params, {_elements(spec):,} elems"
    return label, spec["optimizer"], float(_elements(spec))


def gluonlite_workload(spec: Spec, device: Device) -> Workload:
    params = {f"p{i}": gluon.Parameter(f"p{i}", shape=s) for i, s in enumerate(layer_shapes(spec))}
    for p in params.values():
        p.initialize(device=device)
    trainer = gluon.Trainer(params, spec["optimizer"], dict(spec["hyper"]))

    def fresh_gradients() -> None:
        with autograd.record():
            loss = sum(p.data().sum() for p in params.values())
        loss.backward()  # type: ignore[union-attr]  # a sum of (never zero) ndarrays

    return Workload(
        lambda: trainer.step(1),
        ((),),
        _elements(spec),
        clock_for([device]),
        prepare=fresh_gradients,
    )


def _array_loop(spec: Spec, target: Target) -> Workload:
    """MXNet's SGD-momentum and Adam rules as in-place NumPy/CuPy operations, per tensor."""
    xp: Any
    if target.kind == "cpu":
        xp = numpy
    else:
        import cupy  # run_case makes the target's GPU current

        xp = cupy
    rng = numpy.random.default_rng(0)
    weights = [
        xp.asarray(rng.uniform(-0.07, 0.07, s).astype(numpy.float32)) for s in layer_shapes(spec)
    ]
    grads = [xp.ones_like(w) for w in weights]
    states = [
        [xp.zeros_like(w) for w in weights] for _ in range(1 if spec["optimizer"] == "sgd" else 2)
    ]
    hp = spec["hyper"]
    lr, wd = hp["learning_rate"], hp["wd"]
    count = [0]

    def sgd() -> None:
        for w, g, mom in zip(weights, grads, states[0]):
            # mom = momentum * mom - lr * (g + wd * w); w += mom
            step = g + wd * w
            mom *= hp["momentum"]
            mom -= lr * step
            w += mom

    def adam() -> None:
        count[0] += 1
        b1, b2, t = hp["beta1"], hp["beta2"], count[0]
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for w, g, m, v in zip(weights, grads, *states):
            g = g + wd * w
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            w -= lr_t * m / (xp.sqrt(v) + hp["epsilon"])

    fn = sgd if spec["optimizer"] == "sgd" else adam
    return Workload(fn, ((),), _elements(spec), clock_for([target.primary]))


def _torch_optim(spec: Spec, target: Target, torch: ModuleType, variant: str) -> Workload:
    clock: Clock
    if target.kind == "cpu":
        device, clock = torch.device("cpu"), HostClock()
    else:
        device = torch.device("cuda", target.primary.device_id)
        clock = TorchEventClock(target.primary.device_id)
    params = [
        torch.empty(s, device=device).uniform_(-0.07, 0.07).requires_grad_()
        for s in layer_shapes(spec)
    ]
    for p in params:
        p.grad = torch.ones_like(p)
    klass, arguments = _TORCH[spec["optimizer"]]
    kwargs = {variant: True}  # foreach=True or fused=True
    try:
        opt = getattr(torch.optim, klass)(params, **arguments(spec["hyper"]), **kwargs)
        opt.step()  # some versions check fused support at the first step, not in __init__
    except (RuntimeError, TypeError, ValueError) as e:
        # Older torch lacks fused SGD, or fused kernels on this device: not a failure.
        raise Skip(f"torch.optim {variant} is not available here: {e}") from e
    return Workload(opt.step, ((),), _elements(spec), clock)


def _mxnet_peer(spec: Spec) -> Remote:
    """MXNet 1.9.1's Trainer.step on the same case, timed by the MXNet runner; Skip where
    the environment is missing or MXNet 1.9.1 has no such optimizer."""
    if spec["optimizer"] not in mxnet.optimizers():
        raise Skip(f"MXNet 1.9.1 has no optimizer {spec['optimizer']!r}")
    remote = mxnet.measure_case(dict(spec, suite=NAME))
    remote.work = float(_elements(spec))  # the MXNet runner reports per step
    return remote


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    impls: dict[str, Builder] = {"gluonlite": lambda: gluonlite_workload(spec, target.primary)}
    if target.kind == "cpu":
        impls["mxnet-1.9.1"] = lambda: _mxnet_peer(spec)
    if spec["optimizer"] in ("sgd", "adam"):
        impls["numpy loop" if target.kind == "cpu" else "cupy loop"] = lambda: _array_loop(
            spec, target
        )
    torch = optional_torch(target.primary)
    if torch is not None and spec["optimizer"] in _TORCH:
        for variant in ("foreach", "fused"):

            def build(variant: str = variant, torch: ModuleType = torch) -> Workload:
                return _torch_optim(spec, target, torch, variant)

            impls[f"torch {variant}"] = build
    return impls
