"""Data-parallel training of a small ResNet on scikit-learn's 8x8 digits, MXNet Gluon style.

Residual blocks of Conv2D + BatchNorm, a strided block halving the 8x8 images to 4x4,
global average pooling and a Dense classifier. The batch is split over every visible GPU,
or over cpu(0) and cpu(1) when there is none; the Trainer sums the gradients over the
devices before one optimizer step, so the trained weights stay bit-identical on every
device, while each device's BatchNorm running statistics follow the slices it saw (as in
MXNet).

    python examples/train_cnn.py              # full run (6 epochs, >= 97% test accuracy)
    python examples/train_cnn.py --quick      # a short run for CI
    python examples/train_cnn.py --devices cpu0,cpu1,cpu2 --epochs 5

The script exits non-zero when the test accuracy misses its target (97%; 90% with
--quick) or the replicas of the trained weights differ.
"""

from __future__ import annotations

import os

# The layers here are small (8x8 images, 16-32 channels): BLAS threads cost more in
# hand-offs than they gain, so one thread unless the caller says otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import gluonlite as mx  # noqa: E402
from gluonlite import autograd, gluon  # noqa: E402
from gluonlite.gluon import nn  # noqa: E402

from train_digits import parse_devices  # noqa: E402


class ResidualBlock(nn.Block):
    """conv-BN-relu-conv-BN plus the input (projected by a strided 1x1 conv when the shape
    changes), then relu."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add(
            nn.Conv2D(channels, 3, strides=stride, padding=1, use_bias=False),
            nn.BatchNorm(),
            nn.Activation("relu"),
            nn.Conv2D(channels, 3, padding=1, use_bias=False),
            nn.BatchNorm(),
        )
        self.shortcut = None
        if stride != 1:
            self.shortcut = nn.Sequential()
            self.shortcut.add(
                nn.Conv2D(channels, 1, strides=stride, use_bias=False), nn.BatchNorm()
            )

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        return mx.npx.relu(self.body(x) + skip)


def build_net(width: int) -> nn.Sequential:
    net = nn.Sequential()
    net.add(
        nn.Conv2D(width, 3, padding=1, use_bias=False),
        nn.BatchNorm(),
        nn.Activation("relu"),
        ResidualBlock(width),
        ResidualBlock(2 * width, stride=2),
        nn.GlobalAvgPool2D(),
        nn.Dense(10),
    )
    return net


def evaluate(net, images, labels, device) -> float:
    """Accuracy on one device in predict mode (BatchNorm uses that device's statistics)."""
    logits = net(mx.np.array(images, device=device))
    return float((logits.argmax(axis=1).asnumpy() == labels).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the training set (default 6, 3 with --quick)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.005, help="Adam's learning rate")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument(
        "--devices",
        default=None,
        help="comma-separated, e.g. cpu0,cpu1 or gpu0 (default: every GPU, else cpu0,cpu1)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 6)
    target = 0.90 if args.quick else 0.97
    devices = parse_devices(args.devices)

    digits = load_digits()
    images = (digits.images / 16.0).astype(numpy.float32)[:, None]  # (n, 1, 8, 8)
    labels = digits.target.astype(numpy.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=args.seed, stratify=labels
    )

    mx.random.seed(args.seed)
    net = build_net(args.width)
    net.initialize(mx.init.Xavier(magnitude=2.0), device=devices)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": args.lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = numpy.random.default_rng(args.seed)
    print(
        f"devices: {', '.join(map(str, devices))}; {len(x_train)} training and "
        f"{len(x_test)} test images; batch {args.batch_size}, {epochs} epochs"
    )
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        progress = (epoch - 1) / max(1, epochs - 1)
        trainer.set_learning_rate(args.lr * (0.05 + 0.475 * (1 + math.cos(math.pi * progress))))
        order = rng.permutation(len(x_train))
        total = 0.0
        for first in range(0, len(order), args.batch_size):
            idx = order[first : first + args.batch_size]
            if len(idx) < 2 * len(devices):
                continue  # BatchNorm needs more than one sample per device
            xs = gluon.utils.split_and_load(x_train[idx], devices, even_split=False)
            ys = gluon.utils.split_and_load(y_train[idx], devices, even_split=False)
            with autograd.record():
                losses = [loss_fn(net(x), y) for x, y in zip(xs, ys)]
            for loss in losses:
                loss.backward()
            trainer.step(len(idx))
            total += sum(float(loss.sum().item()) for loss in losses)
        accuracy = evaluate(net, x_test, y_test, devices[0])
        print(
            f"epoch {epoch:2d}: loss {total / len(order):.4f}, test accuracy "
            f"{accuracy:.2%} ({time.perf_counter() - start:.1f} s)"
        )

    trained = [p for p in net.collect_params().values() if p.grad_req != "null"]
    identical = all(
        (p.list_data()[0].asnumpy() == r.asnumpy()).all()
        for p in trained
        for r in p.list_data()[1:]
    )
    stats = [p for name, p in net.collect_params().items() if name.endswith("running_mean")]
    per_device = len(devices) > 1 and any(
        (p.list_data()[0].asnumpy() != p.list_data()[1].asnumpy()).any() for p in stats
    )
    print(
        f"test accuracy {accuracy:.2%} (target {target:.0%}) in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"trained weights bit-identical on every device: {identical}; BatchNorm running "
        f"statistics per device (differ between devices): {per_device}"
    )
    if accuracy < target or not identical:
        print("FAILED: accuracy below target or replicas differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
