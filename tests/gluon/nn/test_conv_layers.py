"""gluon.nn convolution, pooling, padding, pixel-shuffle and activation layers: shapes,
deferred in_channels, repr, agreement with the npx operators, bad input."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite import autograd
from gluonlite.gluon import nn
from tests.npx.gradcheck import check_gradients

# (layer, input shape, output shape, weight shape)
CONV_LAYERS = [
    (lambda: nn.Conv1D(4, 3), (2, 3, 9), (2, 4, 7), (4, 3, 3)),
    (lambda: nn.Conv2D(4, 3, strides=2, padding=1), (2, 3, 8, 8), (2, 4, 4, 4), (4, 3, 3, 3)),
    (lambda: nn.Conv2D(6, (3, 1), groups=3, dilation=2), (1, 3, 7, 5), (1, 6, 3, 5), (6, 1, 3, 1)),
    (lambda: nn.Conv2D(4, 3, padding=1, layout="NHWC"), (2, 5, 5, 3), (2, 5, 5, 4), (4, 3, 3, 3)),
    (lambda: nn.Conv3D(2, 2, strides=(1, 2, 2)), (1, 3, 4, 5, 5), (1, 2, 3, 2, 2), (2, 3, 2, 2, 2)),
    (lambda: nn.Conv1DTranspose(4, 3, strides=2), (2, 3, 5), (2, 4, 11), (3, 4, 3)),
    (
        lambda: nn.Conv2DTranspose(4, 4, strides=2, padding=1, output_padding=1),
        (2, 3, 4, 4),
        (2, 4, 9, 9),
        (3, 4, 4, 4),
    ),
    (
        lambda: nn.Conv3DTranspose(2, 2, strides=2, groups=1),
        (1, 2, 2, 2, 2),
        (1, 2, 4, 4, 4),
        (2, 2, 2, 2, 2),
    ),
]


@pytest.mark.parametrize("make, in_shape, out_shape, w_shape", CONV_LAYERS)
def test_conv_layers_defer_in_channels_and_match_shapes(make, in_shape, out_shape, w_shape, device):
    layer = make()
    assert "None ->" in repr(layer)
    layer.initialize(device=device)
    x = mx.np.array(numpy.random.default_rng(0).standard_normal(in_shape), device=device)
    with autograd.record():
        y = layer(x)
    assert y.shape == out_shape and y.device == device
    assert layer.weight.shape == w_shape and layer.bias.shape == (
        out_shape[-1 if "NHWC" in repr(layer._layout) else 1],
    )
    assert "None ->" not in repr(layer)
    y.backward()
    assert layer.weight.grad(device).shape == w_shape


def test_conv2d_layer_equals_the_operator_and_repr():
    layer = nn.Conv2D(8, 3, padding=1, in_channels=4, activation="relu", use_bias=False)
    assert repr(layer) == (
        "Conv2D(4 -> 8, kernel_size=(3, 3), stride=(1, 1), "
        "padding=(1, 1), bias=False, Activation(relu))"
    )
    layer.initialize(mx.init.Xavier())
    x = mx.np.array(numpy.random.default_rng(1).standard_normal((2, 4, 5, 5)))
    want = mx.npx.relu(
        mx.npx.convolution(
            x, layer.weight.data(), kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True
        )
    )
    numpy.testing.assert_array_equal(layer(x).asnumpy(), want.asnumpy())
    assert {k: p.shape for k, p in layer.collect_params().items()} == {"weight": (8, 4, 3, 3)}


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: nn.Conv2D(4, 5),
            r"Conv2D: convolution: kernel \(5, 5\) with dilate \(1, 1\) "
            r"is larger than the padded input \(4, 4\)",
        ),
        (
            lambda: nn.Conv2D(4, 3, groups=2),
            r"Conv2D: input of shape \(1, 3, 4, 4\) has 3 "
            r"channels, not divisible by groups=2",
        ),
        (lambda: nn.Conv1D(4, 3), r"Conv1D: expected 3-D input \(NCW\), got shape"),
        (lambda: nn.MaxPool2D(5), r"MaxPool2D: pooling: kernel \(5, 5\) is larger"),
    ],
)
def test_layers_name_themselves_in_errors(make, message):
    layer = make()
    layer.initialize()
    with pytest.raises(ValueError, match=message):
        layer(mx.np.ones((1, 3, 4, 4)))


def test_conv_layer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Conv2D: layout 'NCW' does not fit 2 spatial"):
        nn.Conv2D(4, 3, layout="NCW")
    with pytest.raises(ValueError, match="divisible by groups=3"):
        nn.Conv2D(4, 3, groups=3)


def test_conv_layer_on_mismatched_devices_raises():
    layer = nn.Conv2D(2, 3, in_channels=3)
    layer.initialize(device=mx.cpu(0))
    with pytest.raises(RuntimeError, match="cpu"):
        layer(mx.np.ones((1, 3, 4, 4), device=mx.cpu(1)))


# (layer, input shape, pooling arguments of the equivalent operator call)
POOL_LAYERS = [
    (lambda: nn.MaxPool1D(3, 2), (2, 3, 9), dict(kernel=(3,), stride=(2,), pool_type="max")),
    (lambda: nn.MaxPool2D(), (2, 3, 8, 8), dict(kernel=(2, 2), stride=(2, 2))),
    (
        lambda: nn.MaxPool2D(3, 2, 1, ceil_mode=True),
        (2, 3, 8, 8),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full"),
    ),
    (
        lambda: nn.AvgPool2D(3, 2, 1, count_include_pad=False),
        (2, 3, 7, 7),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
    ),
    (
        lambda: nn.AvgPool3D(2),
        (1, 2, 4, 4, 4),
        dict(kernel=(2, 2, 2), stride=(2, 2, 2), pool_type="avg"),
    ),
    (lambda: nn.MaxPool3D(2, 1), (1, 2, 3, 3, 3), dict(kernel=(2, 2, 2), stride=(1, 1, 1))),
    (
        lambda: nn.AvgPool1D(2, layout="NWC"),
        (2, 6, 3),
        dict(kernel=(2,), stride=(2,), pool_type="avg", layout="NWC"),
    ),
    (lambda: nn.GlobalAvgPool1D(), (2, 3, 5), dict(global_pool=True, pool_type="avg")),
    (lambda: nn.GlobalMaxPool2D(), (2, 3, 4, 4), dict(global_pool=True)),
    (
        lambda: nn.GlobalAvgPool2D(layout="NHWC"),
        (2, 4, 4, 3),
        dict(global_pool=True, pool_type="avg", layout="NHWC"),
    ),
    (lambda: nn.GlobalMaxPool3D(), (1, 2, 2, 3, 2), dict(global_pool=True)),
    (lambda: nn.GlobalAvgPool3D(), (1, 2, 2, 3, 2), dict(global_pool=True, pool_type="avg")),
]


@pytest.mark.parametrize("make, in_shape, kwargs", POOL_LAYERS)
def test_pool_layers_equal_the_operator(make, in_shape, kwargs):
    layer = make()
    x = mx.np.array(numpy.random.default_rng(2).standard_normal(in_shape))
    numpy.testing.assert_array_equal(layer(x).asnumpy(), mx.npx.pooling(x, **kwargs).asnumpy())
    assert type(layer).__name__ in repr(layer)


def test_reflection_pad2d_values_and_gradients(device):
    x = numpy.random.default_rng(3).standard_normal((1, 2, 4, 3))
    layer = nn.ReflectionPad2D((0, 0, 0, 0, 2, 1, 1, 2))
    y = layer(mx.np.array(x, dtype="float64", device=device))
    numpy.testing.assert_array_equal(
        y.asnumpy(), numpy.pad(x, [(0, 0), (0, 0), (2, 1), (1, 2)], mode="reflect")
    )
    check_gradients(lambda x: layer(x), [x], device)
    assert nn.ReflectionPad2D(1)(mx.np.ones((1, 1, 3, 3))).shape == (1, 1, 5, 5)
    with pytest.raises(ValueError, match="ReflectionPad2D: padding"):
        nn.ReflectionPad2D(3)(mx.np.ones((1, 1, 3, 3)))


@pytest.mark.parametrize(
    "make, shape, factors",
    [
        (lambda: nn.PixelShuffle1D(2), (2, 6, 4), (2,)),
        (lambda: nn.PixelShuffle2D((2, 3)), (1, 12, 2, 3), (2, 3)),
        (lambda: nn.PixelShuffle3D(2), (1, 16, 2, 1, 2), (2, 2, 2)),
    ],
)
def test_pixel_shuffle_rearranges_channels_into_space(make, shape, factors, device):
    x = numpy.random.default_rng(4).standard_normal(shape)
    y = make()(mx.np.array(x, dtype="float64", device=device))
    n, c = shape[0], shape[1] // int(numpy.prod(factors))
    # Direct transcription: out[n, c, i*f + a, ...] = x[n, c*F + a..., i, ...].
    want = numpy.empty((n, c) + tuple(s * f for s, f in zip(shape[2:], factors)))
    for index in numpy.ndindex(*want.shape):
        spatial = index[2:]
        offsets = [i % f for i, f in zip(spatial, factors)]
        channel = index[1] * int(numpy.prod(factors)) + int(
            numpy.ravel_multi_index(offsets, factors)
        )
        want[index] = x[(index[0], channel) + tuple(i // f for i, f in zip(spatial, factors))]
    numpy.testing.assert_array_equal(y.asnumpy(), want)
    check_gradients(lambda x: make()(x), [x], device)


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)
ACTIVATIONS = [
    (lambda: nn.LeakyReLU(0.1), lambda x: numpy.where(x > 0, x, 0.1 * x)),
    (lambda: nn.ELU(0.5), lambda x: numpy.where(x > 0, x, 0.5 * numpy.expm1(x))),
    (lambda: nn.SELU(), lambda x: _SELU[1] * numpy.where(x > 0, x, _SELU[0] * numpy.expm1(x))),
    (
        lambda: nn.GELU("tanh"),
        lambda x: 0.5 * x * (1 + numpy.tanh(numpy.sqrt(2 / numpy.pi) * (x + 0.044715 * x**3))),
    ),
    (lambda: nn.Swish(2.0), lambda x: x / (1 + numpy.exp(-2 * x))),
    (lambda: nn.SiLU(), lambda x: x / (1 + numpy.exp(-x))),
]


@pytest.mark.parametrize("make, formula", ACTIVATIONS)
def test_activation_layers(make, formula, device):
    x = numpy.random.default_rng(5).standard_normal((3, 4))
    y = make()(mx.np.array(x, dtype="float64", device=device))
    numpy.testing.assert_allclose(y.asnumpy(), formula(x), rtol=1e-7)
    check_gradients(lambda x: make()(x), [x], device, rtol=1e-5)


def test_gelu_erf_layer_and_prelu_parameter(device):
    x = mx.np.array([-1.0, 0.5, 2.0], device=device)
    numpy.testing.assert_allclose(
        nn.GELU()(x).asnumpy(), [-0.158655, 0.345731, 1.954500], rtol=1e-5
    )
    prelu = nn.PReLU(in_channels=3)
    prelu.initialize(device=device)
    assert list(prelu.collect_params()) == ["alpha"]
    numpy.testing.assert_allclose(prelu.alpha.data(device).asnumpy(), [0.25] * 3)
    x = mx.np.array(-numpy.ones((2, 3, 2)), device=device)
    with autograd.record():
        y = prelu(x)
    y.backward()
    numpy.testing.assert_allclose(y.asnumpy(), -0.25 * numpy.ones((2, 3, 2)))
    numpy.testing.assert_allclose(prelu.alpha.grad(device).asnumpy(), [-4.0] * 3)
    with pytest.raises(ValueError, match="GELU: approximation"):
        nn.GELU("fast")
