"""A model written the MXNet 1.x way, run unchanged on gluonlite.

Everything here is the Gluon 1.x style most published scripts use (MXNet 1.9 with
``npx.set_np()``): ``Block(prefix=...)`` with ``name_scope()``, ``self.params.get(...)``
for a custom parameter, a custom ``Initializer`` that writes into the array it is given,
``collect_params().setattr(...)``, forward hooks, ``Block.name``, and saving and loading
the parameters. Those spellings warn with ``DeprecationWarning`` (silenced below, as the
scripts that use them do) and then work.

The task is a small synthetic classification (two noisy spirals), trained on cpu(0) and
cpu(1) at once; nothing is downloaded.

    python examples/mxnet1x_style.py            # a few seconds
    python examples/mxnet1x_style.py --quick    # for CI

It exits non-zero when the accuracy misses its target or the reloaded model disagrees.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import numpy

import gluonlite as mx
from gluonlite import autograd, gluon, init, np, npx
from gluonlite.gluon import nn

npx.set_np()
warnings.simplefilter("ignore", DeprecationWarning)


class MyInit(init.Initializer):
    """The d2l book's custom initializer: uniform in [-r, r], small magnitudes zeroed."""

    def __init__(self, r=0.5):
        super().__init__(r=r)
        self.r = r

    def _init_weight(self, name, data):
        data[:] = np.random.uniform(-self.r, self.r, data.shape)
        data *= np.abs(data) >= self.r / 10


class ScaledMLP(gluon.HybridBlock):
    """Two Dense layers and a learnt per-class scale, 1.x style."""

    def __init__(self, hidden, classes, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="body_")
            with self.body.name_scope():
                self.body.add(
                    nn.Dense(hidden, activation="tanh"), nn.Dense(hidden, activation="tanh")
                )
            self.out = nn.Dense(classes)
            self.scale = self.params.get("scale", shape=(classes,), init=init.One())

    def forward(self, x):
        return self.out(self.body(x)) * self.scale.data(x.device)


def spirals(n, rng):
    """Two interleaved noisy spirals: (n, 2) points and their class."""
    t = rng.uniform(0.5, 2 * numpy.pi, n)
    label = rng.integers(0, 2, n)
    r = t / (2 * numpy.pi)
    angle = t + numpy.pi * label
    x = numpy.stack([r * numpy.cos(angle), r * numpy.sin(angle)], 1)
    x += rng.normal(0, 0.02, x.shape)
    return x.astype("float32"), label.astype("int64")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI)")
    args = parser.parse_args(argv)
    mx.random.seed(0)
    rng = numpy.random.default_rng(0)
    devices = [mx.cpu(0), mx.cpu(1)]
    x_train, y_train = spirals(1024, rng)
    x_test, y_test = spirals(512, rng)

    net = ScaledMLP(64, 2, prefix="spiral_")
    print(f"model {net.name}: parameters {list(net.collect_params())}")
    net.initialize(MyInit(), ctx=devices)
    # The scale is fixed during the first epochs, then trained (1.x: setattr on the dict).
    net.collect_params(".*scale").setattr("grad_req", "null")
    net.collect_params(".*bias").setattr("lr_mult", 2.0)

    # A forward hook records the hidden activations' mean magnitude.
    magnitudes = []
    hook = net.body.register_forward_hook(
        lambda block, inputs, output: magnitudes.append(float(abs(output).mean()))
    )

    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.02})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    batch, epochs = 64, (12 if args.quick else 40)
    for epoch in range(epochs):
        if epoch == epochs // 2:
            net.collect_params(".*scale").setattr("grad_req", "write")
            trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
        order = rng.permutation(len(x_train))
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            xs = gluon.utils.split_and_load(x_train[idx], devices)
            ys = gluon.utils.split_and_load(y_train[idx], devices)
            with autograd.record():
                losses = [loss_fn(net(xb), yb) for xb, yb in zip(xs, ys)]
            for loss in losses:
                loss.backward()
            trainer.step(len(idx))
            total += sum(float(loss.sum()) for loss in losses)
        if epoch % 10 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:3d}  loss {total / len(x_train):.4f}")
    hook.detach()

    def accuracy(model):
        pred = model(np.array(x_test, ctx=mx.cpu(0))).argmax(axis=1).asnumpy()
        return float((pred == y_test).mean())

    acc = accuracy(net)
    print(
        f"test accuracy {acc:.3f}; hidden activation magnitude "
        f"{magnitudes[0]:.3f} -> {magnitudes[-1]:.3f} over {len(magnitudes)} forwards"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "spiral.params")
        net.save_parameters(path)
        again = ScaledMLP(64, 2, prefix="spiral_")
        again.load_parameters(path, ctx=mx.cpu(0))
        same = accuracy(again) == acc
    print(f"reloaded model agrees: {same}")
    target = 0.85 if args.quick else 0.95
    if acc < target or not same:
        print(f"FAILED: accuracy {acc:.3f} (target {target}) or reload mismatch")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
