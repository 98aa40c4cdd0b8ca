"""Models that ``test_export`` writes with ``export`` and loads back (gluonlite, MXNet)."""

from __future__ import annotations

import numpy as np

import gluonlite as mx
from gluonlite.gluon import nn


class TwoInputs(nn.HybridBlock):
    """A custom forward: arithmetic between layers, npx and np functions, two inputs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Dense(5)
        self.b = nn.Dense(5, flatten=False)

    def forward(self, x, y):
        h = mx.npx.relu(self.a(x) + self.b(y)) * 0.5 - 1.0
        h = 2.0 / (mx.np.tanh(h) + 3.0) - h
        return mx.npx.softmax(mx.np.concatenate([h, -h], axis=1), axis=-1)


class Tied(nn.HybridBlock):
    """Two Dense layers sharing one weight: one variable in the graph and the file."""

    def __init__(self):
        super().__init__()
        self.a = nn.Dense(3, in_units=3, use_bias=False)
        self.b = nn.Dense(3, in_units=3)
        self.b.share_parameters({"weight": self.a.weight})

    def forward(self, x):
        return self.b(mx.np.maximum(self.a(x), 0.1) ** 2)


def _seq(*layers):
    net = nn.HybridSequential()
    net.add(*layers)
    return net


def _rand(*shape, dtype="float32"):
    return np.random.default_rng(sum(shape)).uniform(-1, 1, shape).astype(dtype)


def models():
    """name -> (block builder, list of NumPy inputs, MXNet 1.9.1 loads it)."""
    return {
        "mlp": (
            lambda: _seq(
                nn.Dense(6, activation="relu"),
                nn.HybridLambda("tanh"),
                nn.Dense(3),
                nn.HybridLambda(lambda x: mx.npx.relu(x) - 0.5),
            ),
            [_rand(4, 7)],
            True,
        ),
        "convnet": (
            lambda: _seq(
                nn.Conv2D(4, 3, padding=1),
                nn.BatchNorm(),
                nn.Activation("relu"),
                nn.MaxPool2D(2),
                nn.Conv2D(4, 3, padding=1, activation="tanh"),
                nn.AvgPool2D(2, ceil_mode=True),
                nn.LeakyReLU(0.1),
                nn.PReLU(),
                nn.ELU(),
                nn.SELU(),
                nn.GELU(),
                nn.Swish(),
                nn.Dropout(0.5),
                nn.Flatten(),
                nn.Dense(8, activation="sigmoid"),
                nn.LayerNorm(),
                nn.Dense(3),
            ),
            [_rand(2, 3, 8, 8)],
            True,
        ),
        "conv1d": (
            lambda: _seq(
                nn.Conv1D(3, 2, strides=2, use_bias=False),
                nn.AvgPool1D(2, count_include_pad=False, padding=1),
                nn.GlobalMaxPool1D(),
                nn.Flatten(),
            ),
            [_rand(2, 2, 9)],
            True,
        ),
        "conv3d": (
            lambda: _seq(
                nn.Conv3D(2, 2, dilation=2, groups=2), nn.MaxPool3D(2), nn.GlobalAvgPool3D()
            ),
            [_rand(1, 4, 7, 7, 7)],
            True,
        ),
        "transpose-instancenorm": (
            lambda: _seq(
                nn.Conv2DTranspose(3, 3, strides=2, output_padding=1, padding=1),
                nn.InstanceNorm(),
                nn.InstanceNorm(scale=True, center=True),
                nn.GlobalAvgPool2D(),
            ),
            [_rand(2, 2, 4, 5)],
            True,
        ),
        "pad-shuffle-concat": (
            lambda: _seq(
                nn.ReflectionPad2D(1),
                nn.PixelShuffle2D(2),
                _concat(nn.Conv2D(2, 1), nn.Identity(), nn.Conv2D(1, 3, padding=1)),
            ),
            [_rand(2, 8, 3, 4)],
            True,
        ),
        "embedding": (
            lambda: _seq(nn.Embedding(10, 4), nn.Flatten(), nn.Dense(2)),
            [np.array([[1, 2, 9], [0, 0, 3]], dtype="int32")],
            True,
        ),
        "two-inputs": (TwoInputs, [_rand(3, 4), _rand(3, 6)], True),
        "tied": (Tied, [_rand(2, 3)], True),
        "groupnorm": (lambda: _seq(nn.Conv2D(4, 1), nn.GroupNorm(2)), [_rand(2, 3, 4, 4)], False),
    }


def _concat(*blocks):
    net = nn.HybridConcatenate(axis=1)
    net.add(*blocks)
    return net
