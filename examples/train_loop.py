"""A complete Gluon training loop: DataLoader workers, a learning-rate schedule, metrics, and
data-parallel training over two devices, as MXNet 2 scripts write it.

The data are four Gaussian clusters in 8 dimensions (generated, nothing downloaded). Each
batch comes from a ``DataLoader`` whose worker processes read and batch the samples; it is
split over the devices (every GPU, else cpu(0) and cpu(1)); the Trainer sums the gradients
and steps SGD, whose rate follows ``mx.lr_scheduler.FactorScheduler`` (halved every epoch)
when gluonlite provides schedulers; ``gluon.metric`` tracks accuracy and the loss.

    python examples/train_loop.py               # 4 epochs
    python examples/train_loop.py --epochs 2 --workers 0

Exits non-zero when the validation accuracy misses 90%.
"""

from __future__ import annotations

import argparse
import sys

import numpy

import gluonlite as mx
from gluonlite import autograd, gluon
from gluonlite.gluon import nn


def make_data(n: int, seed: int):
    """``n`` points in four clusters (one per class) in 8 dimensions."""
    rng = numpy.random.default_rng(seed)
    centers = rng.normal(scale=1.5, size=(4, 8))
    labels = rng.integers(0, 4, n)
    points = centers[labels] + rng.normal(size=(n, 8))
    return points.astype(numpy.float32), labels.astype(numpy.int64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = mx.num_gpus()
    devices = [mx.gpu(i) for i in range(n)] if n else [mx.cpu(0), mx.cpu(1)]
    mx.random.seed(args.seed)
    numpy.random.seed(args.seed)  # the RandomSampler's shuffling

    x, y = make_data(1200, args.seed)
    train = gluon.data.ArrayDataset(x[:1000], y[:1000])
    valid = gluon.data.ArrayDataset(x[1000:], y[1000:])
    train_loader = gluon.data.DataLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        last_batch="rollover",
        num_workers=args.workers,
    )
    valid_loader = gluon.data.DataLoader(valid, batch_size=100)

    net = nn.Sequential()
    net.add(nn.Dense(32, activation="relu"), nn.Dense(4))
    net.initialize(mx.init.Xavier(), device=devices)
    optimizer_params = {"learning_rate": args.lr, "momentum": 0.9}
    schedules = getattr(mx, "lr_scheduler", None)
    if schedules is not None:
        # FactorScheduler counts optimizer updates: halve the rate after each epoch.
        optimizer_params["lr_scheduler"] = schedules.FactorScheduler(
            step=len(train_loader), factor=0.5, base_lr=args.lr
        )
    trainer = gluon.Trainer(net.collect_params(), "sgd", optimizer_params)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    train_acc, train_loss = gluon.metric.create("acc"), gluon.metric.Loss()
    valid_acc = gluon.metric.Accuracy()

    for epoch in range(1, args.epochs + 1):
        train_acc.reset()
        train_loss.reset()
        for data, label in train_loader:
            if len(data) < len(devices):
                continue
            xs = gluon.utils.split_and_load(data, devices, even_split=False)
            ys = gluon.utils.split_and_load(label, devices, even_split=False)
            with autograd.record():
                outputs = [net(xi) for xi in xs]
                losses = [loss_fn(o, yi) for o, yi in zip(outputs, ys)]
            for loss in losses:
                loss.backward()
            trainer.step(len(data))
            # Per-device arrays: each metric reduces them where they are.
            train_acc.update(ys, outputs)
            train_loss.update(None, losses)
        valid_acc.reset()
        for data, label in valid_loader:
            xs = gluon.utils.split_and_load(data, devices, even_split=False)
            ys = gluon.utils.split_and_load(label, devices, even_split=False)
            valid_acc.update(ys, [net(xi) for xi in xs])
        print(
            f"epoch {epoch}: lr {trainer.learning_rate:.4f}, train accuracy "
            f"{train_acc.get()[1]:.3f}, train loss {train_loss.get()[1]:.4f}, validation "
            f"accuracy {valid_acc.get()[1]:.3f}"
        )
    accuracy = valid_acc.get()[1]
    print(
        f"validation accuracy {accuracy:.2%} (target 90%) on "
        f"{', '.join(map(str, devices))}; schedule: "
        f"{'FactorScheduler' if schedules is not None else 'constant (no mx.lr_scheduler)'}"
    )
    return 0 if accuracy >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
