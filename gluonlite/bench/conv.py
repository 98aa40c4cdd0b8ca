"""Suite ``conv``: ResNet-18's convolutions, forward + backward, and a whole ResNet-18
training step, float32.

Cases (identical work on every side, from the same case dicts):

- ``layer``: one convolution of ResNet-18 (ImageNet shapes: the 7x7 stem, the 3x3 layers
  of each stage, the strided 3x3 and 1x1 projections) at batch 32, and 128 where it fits:
  forward, then backward to the data and the weight. Throughput in GFLOP/s of the three
  products (3 x 2 x N x Cout x Hout x Wout x Cin x k x k).
- ``resnet18``: forward, softmax cross-entropy, backward and an SGD-momentum
  ``Trainer.step`` of ResNet-18 (MXNet's ``resnet18_v1``: conv-BN-ReLU, max pooling, eight
  basic blocks, global average pooling, 1000 classes); images per second.

Peers: Apache MXNet 1.9.1 on CPU (oneDNN; through ``benchmarks/mxnet_workloads.py`` in
``.venv-mxnet``, as the ``mxnet`` suite) and torch (cuDNN) on GPU where importable. On the
CPU the batch-128 cases are limited to the 14x14 and 7x7 stages and the ResNet-18 step to
112x112 images: a 2-core machine needs tens of seconds per call otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy

from .. import autograd, gluon, npx
from ..device import Device
from ..gluon import nn
from ..ndarray import ndarray
from . import mxnet as _mxnet_suite
from .report import Metric
from .targets import Target, clock_for
from .timing import TorchEventClock
from .workload import Builder, Remote, Skip, Spec, Workload, optional_torch

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "LAYERS",
    "specs",
    "describe",
    "implementations",
    "resnet18",
    "flops",
]

NAME = "conv"
TITLE = "ResNet-18 convolutions fwd+bwd and a training step, float32 (throughput)"
METRIC = Metric("GFLOP/s | img/s", 1e9)
SIZE_LABEL = "GFLOP per call"

# (input size, in channels, out channels, kernel, stride, pad): ResNet-18's distinct convs.
LAYERS = [
    (224, 3, 64, 7, 2, 3),
    (56, 64, 64, 3, 1, 1),
    (56, 64, 128, 3, 2, 1),
    (56, 64, 128, 1, 2, 0),
    (28, 128, 128, 3, 1, 1),
    (28, 128, 256, 3, 2, 1),
    (14, 256, 256, 3, 1, 1),
    (14, 256, 512, 3, 2, 1),
    (7, 512, 512, 3, 1, 1),
]
_PEER = _mxnet_suite.PEER


def specs(target: Target, quick: bool) -> list[Spec]:
    cpu = target.kind == "cpu"
    if quick:
        return [
            {
                "kind": "layer",
                "batch": 4,
                "size": 14,
                "cin": 32,
                "cout": 32,
                "kernel": 3,
                "stride": 1,
                "pad": 1,
                "quick": True,
            },
            {"kind": "resnet18", "batch": 2, "size": 16, "quick": True},
        ]
    cases: list[Spec] = []
    for batch in (32, 128):
        for size, cin, cout, k, s, p in LAYERS:
            if cpu and batch == 128 and size > 14:
                continue
            cases.append(
                {
                    "kind": "layer",
                    "batch": batch,
                    "size": size,
                    "cin": cin,
                    "cout": cout,
                    "kernel": k,
                    "stride": s,
                    "pad": p,
                    "quick": False,
                }
            )
    cases.append(
        {"kind": "resnet18", "batch": 8 if cpu else 32, "size": 112 if cpu else 224, "quick": False}
    )
    if not cpu:
        cases.append({"kind": "resnet18", "batch": 128, "size": 224, "quick": False})
    return cases


def flops(spec: Spec) -> float:
    """Multiply-adds x 2 of the forward and both backward products of a ``layer`` case."""
    out: int = (spec["size"] + 2 * spec["pad"] - spec["kernel"]) // spec["stride"] + 1
    multiply_adds: int = (
        spec["batch"] * spec["cout"] * out * out * spec["cin"] * spec["kernel"] ** 2
    )
    return 3 * 2.0 * multiply_adds


def describe(spec: Spec) -> tuple[str, str, float]:
    if spec["kind"] == "resnet18":
        return (
            f"resnet18 step  N={spec['batch']:<3} {spec['size']}x{spec['size']} (img/s)",
            "resnet18",
            float(spec["batch"]),
        )
    label = (
        f"conv N={spec['batch']:<3} {spec['size']:>3}x{spec['size']:<3} "
        f"{spec['cin']:>3}->{spec['cout']:<3} k{spec['kernel']} s{spec['stride']}"
    )
    return label, f"conv N={spec['batch']}", flops(spec) / 1e9


def _work(spec: Spec) -> float:
    # The metric divides by 1e9: images count as 1e9 units so that img/s reads directly.
    return flops(spec) if spec["kind"] == "layer" else int(spec["batch"]) * 1e9


class _BasicBlock(nn.Block):
    """MXNet's BasicBlockV1: conv3x3-BN-ReLU-conv3x3-BN plus the (projected) input."""

    def __init__(self, channels: int, stride: int, downsample: bool) -> None:
        super().__init__()
        self.body = nn.Sequential()
        self.body.add(
            nn.Conv2D(channels, 3, stride, 1, use_bias=False),
            nn.BatchNorm(),
            nn.Activation("relu"),
            nn.Conv2D(channels, 3, 1, 1, use_bias=False),
            nn.BatchNorm(),
        )
        self.downsample: nn.Sequential | None = None
        if downsample:
            self.downsample = nn.Sequential()
            self.downsample.add(nn.Conv2D(channels, 1, stride, use_bias=False), nn.BatchNorm())

    def forward(self, x: ndarray) -> ndarray:
        skip = x if self.downsample is None else self.downsample(x)
        return npx.relu(self.body(x) + skip)


def resnet18(classes: int = 1000) -> nn.Sequential:
    """ResNet-18 v1 (He et al., 2015) as MXNet's model zoo builds it."""
    net = nn.Sequential()
    net.add(
        nn.Conv2D(64, 7, 2, 3, use_bias=False),
        nn.BatchNorm(),
        nn.Activation("relu"),
        nn.MaxPool2D(3, 2, 1),
    )
    for stage, channels in enumerate((64, 128, 256, 512)):
        net.add(
            _BasicBlock(channels, 1 if stage == 0 else 2, stage != 0),
            _BasicBlock(channels, 1, False),
        )
    net.add(nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


def _inputs(spec: Spec) -> tuple[numpy.ndarray[Any, Any], numpy.ndarray[Any, Any]]:
    rng = numpy.random.default_rng(0)
    if spec["kind"] == "layer":
        x = rng.standard_normal((spec["batch"], spec["cin"], spec["size"], spec["size"]))
        w = rng.standard_normal((spec["cout"], spec["cin"], spec["kernel"], spec["kernel"]))
        return x.astype(numpy.float32), (w * 0.05).astype(numpy.float32)
    x = rng.standard_normal((spec["batch"], 3, spec["size"], spec["size"]))
    return x.astype(numpy.float32), rng.integers(0, 1000, int(spec["batch"]))


def _gluonlite(spec: Spec, device: Device) -> Workload:
    from .. import np as mnp

    a, b = _inputs(spec)
    if spec["kind"] == "layer":
        x, w = mnp.array(a, device=device), mnp.array(b, device=device)
        x.attach_grad()
        w.attach_grad()
        k, s, p = spec["kernel"], spec["stride"], spec["pad"]

        def layer() -> None:
            with autograd.record():
                y = npx.convolution(
                    x,
                    w,
                    kernel=(k, k),
                    stride=(s, s),
                    pad=(p, p),
                    num_filter=spec["cout"],
                    no_bias=True,
                )
            y.backward()

        return Workload(layer, ((),), _work(spec), clock_for([device]))
    net = resnet18()
    net.initialize(device=device)
    x, labels = mnp.array(a, device=device), mnp.array(b, device=device)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9})

    def step() -> None:
        with autograd.record():
            loss = loss_fn(net(x), labels)
        loss.backward()
        trainer.step(spec["batch"])

    return Workload(step, ((),), _work(spec), clock_for([device]))


def _torch(spec: Spec, target: Target, torch: ModuleType) -> Workload:
    device = torch.device("cuda", target.primary.device_id)
    a, b = _inputs(spec)
    if spec["kind"] == "layer":
        x = torch.tensor(a, device=device, requires_grad=True)
        w = torch.tensor(b, device=device, requires_grad=True)

        fn: Callable[[], None]

        def layer() -> None:
            y = torch.nn.functional.conv2d(x, w, stride=spec["stride"], padding=spec["pad"])
            y.backward(torch.ones_like(y))

        fn = layer
    else:
        try:
            import torchvision
        except ImportError as e:
            raise Skip("torchvision is not installed") from e
        net = torchvision.models.resnet18().to(device)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x, labels = torch.tensor(a, device=device), torch.tensor(b, device=device)

        def step() -> None:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), labels).backward()
            opt.step()

        fn = step
    return Workload(fn, ((),), _work(spec), TorchEventClock(target.primary.device_id))


def _mxnet(spec: Spec) -> Remote:
    made = _mxnet_suite._mxnet(dict(spec, suite=NAME))
    made.work = _work(spec)
    return made


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    impls: dict[str, Builder] = {"gluonlite": lambda: _gluonlite(spec, target.primary)}
    if target.kind == "cpu":
        try:
            _mxnet_suite.locate()
            impls[_PEER] = lambda: _mxnet(spec)
        except Skip:
            pass  # no MXNet environment: the row shows gluonlite alone
    else:
        torch = optional_torch(target.primary)
        if torch is not None:
            impls["torch"] = lambda: _torch(spec, target, torch)
    return impls
