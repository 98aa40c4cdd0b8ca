"""npx.batch_norm, layer_norm, group_norm, instance_norm and leaky_relu: values against
NumPy formulas, gradients against finite differences, running statistics, bad input."""

from __future__ import annotations

import math

import numpy
import pytest

import gluonlite as mx
from gluonlite import autograd
from tests.helpers import with_bfloat16
from tests.npx.gradcheck import check_gradients


def _normalized(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / numpy.sqrt(var + eps)


def _arrays(device, *values):
    return [mx.np.array(v, dtype="float64", device=device) for v in values]


# (shape, axis, fix_gamma, use_global_stats)
BN_CASES = [
    ((4, 3, 2, 2), 1, False, False),
    ((4, 3, 2, 2), 1, True, False),
    ((4, 3, 2, 2), 1, False, True),
    ((5, 2, 3), -1, False, False),
    ((6, 3), 1, False, False),
    ((2, 3, 2, 2, 2), 1, True, True),
]


@pytest.mark.parametrize("shape, axis, fix_gamma, use_global", BN_CASES)
def test_batch_norm_values_and_running_statistics(shape, axis, fix_gamma, use_global, device):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[axis]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rmean, rvar = rng.standard_normal(c), rng.random(c) + 0.5
    args = _arrays(device, x, gamma, beta, rmean, rvar)
    axes = tuple(a for a in range(len(shape)) if a != axis % len(shape))
    view = [1] * len(shape)
    view[axis] = c
    g = numpy.ones(c) if fix_gamma else gamma
    with autograd.record():
        y = mx.npx.batch_norm(
            *args,
            eps=1e-3,
            momentum=0.8,
            fix_gamma=fix_gamma,
            use_global_stats=use_global,
            axis=axis,
        )
    if use_global:
        xhat = (x - rmean.reshape(view)) / numpy.sqrt(rvar.reshape(view) + 1e-3)
        new_mean, new_var = rmean, rvar
    else:
        xhat = _normalized(x, axes, 1e-3)
        new_mean = rmean * 0.8 + x.mean(axis=axes) * 0.2
        new_var = rvar * 0.8 + x.var(axis=axes) * 0.2
    numpy.testing.assert_allclose(
        y.asnumpy(), xhat * g.reshape(view) + beta.reshape(view), rtol=1e-10, atol=1e-10
    )
    numpy.testing.assert_allclose(args[3].asnumpy(), new_mean, rtol=1e-12)
    numpy.testing.assert_allclose(args[4].asnumpy(), new_var, rtol=1e-12)
    # Predict mode normalises with the running statistics and leaves them alone.
    before = args[3].asnumpy()
    y = mx.npx.batch_norm(*args, eps=1e-3, fix_gamma=fix_gamma, axis=axis)
    xhat = (x - before.reshape(view)) / numpy.sqrt(args[4].asnumpy().reshape(view) + 1e-3)
    numpy.testing.assert_allclose(
        y.asnumpy(), xhat * g.reshape(view) + beta.reshape(view), rtol=1e-10, atol=1e-10
    )
    numpy.testing.assert_array_equal(args[3].asnumpy(), before)


@pytest.mark.parametrize("shape, axis, fix_gamma, use_global", BN_CASES)
def test_batch_norm_gradients(shape, axis, fix_gamma, use_global, device):
    rng = numpy.random.default_rng(1)
    c = shape[axis]
    running = _arrays(device, rng.standard_normal(c), rng.random(c) + 0.5)
    grads = check_gradients(
        lambda x, g, b: mx.npx.batch_norm(
            x, g, b, *running, fix_gamma=fix_gamma, use_global_stats=use_global, axis=axis
        ),
        [rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)],
        device,
    )
    if fix_gamma:
        assert not grads[1].any()


def test_batch_norm_output_mean_var_and_bad_shapes(device):
    x = mx.np.array(numpy.arange(12.0).reshape(4, 3), device=device)
    ones, zeros = mx.np.ones((3,), device=device), mx.np.zeros((3,), device=device)
    with autograd.train_mode():
        y, mean, var = mx.npx.batch_norm(
            x, ones, zeros, zeros.copy(), ones.copy(), output_mean_var=True
        )
    numpy.testing.assert_allclose(mean.asnumpy(), [4.5, 5.5, 6.5])
    numpy.testing.assert_allclose(var.asnumpy(), [11.25] * 3)
    with pytest.raises(
        ValueError,
        match=r"batch_norm: gamma has shape \(2,\), expected "
        r"\(3,\) for data of shape \(4, 3\)",
    ):
        mx.npx.batch_norm(x, mx.np.ones((2,), device=device), zeros, zeros, ones)
    with pytest.raises(numpy.exceptions.AxisError):
        mx.npx.batch_norm(x, ones, zeros, zeros, ones, axis=2)


@pytest.mark.parametrize("dtype", with_bfloat16(["float16"]))
def test_batch_norm_half_precision_accumulates_in_float32(dtype, device):
    x = numpy.random.default_rng(2).standard_normal((64, 4, 3, 3)) * 3 + 50
    xh = mx.np.array(x, device=device).astype(dtype)
    c = mx.np.ones((4,), device=device).astype(dtype)
    with autograd.train_mode():
        y = mx.npx.batch_norm(xh, c, c * 0, c * 0, c.copy(), fix_gamma=False)
    assert y.dtype == xh.dtype
    ref = _normalized(xh.asnumpy().astype(numpy.float64), (0, 2, 3), 1e-3)
    numpy.testing.assert_allclose(y.asnumpy().astype(numpy.float64), ref, atol=5e-2)


@pytest.mark.parametrize("shape, axis", [((3, 5), -1), ((2, 4, 3), 1), ((2, 3, 4), 0)])
def test_layer_norm_values_and_gradients(shape, axis, device):
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal(shape)
    n = shape[axis]
    g, b = rng.standard_normal(n), rng.standard_normal(n)
    view = [1] * len(shape)
    view[axis] = n
    y = mx.npx.layer_norm(*_arrays(device, x, g, b), axis=axis, eps=1e-5)
    want = _normalized(x, axis, 1e-5) * g.reshape(view) + b.reshape(view)
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-10, atol=1e-10)
    check_gradients(lambda x, g, b: mx.npx.layer_norm(x, g, b, axis=axis), [x, g, b], device)


@pytest.mark.parametrize("shape, groups", [((2, 4, 3), 2), ((2, 6, 2, 2), 3), ((3, 2, 5), 1)])
def test_group_norm_values_and_gradients(shape, groups, device):
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal(shape)
    c = shape[1]
    g, b = rng.standard_normal(c), rng.standard_normal(c)
    y = mx.npx.group_norm(*_arrays(device, x, g, b), num_groups=groups, eps=1e-5)
    grouped = x.reshape((shape[0], groups, -1))
    want = _normalized(grouped, 2, 1e-5).reshape(shape)
    view = (1, c) + (1,) * (len(shape) - 2)
    numpy.testing.assert_allclose(
        y.asnumpy(), want * g.reshape(view) + b.reshape(view), rtol=1e-10, atol=1e-10
    )
    check_gradients(
        lambda x, g, b: mx.npx.group_norm(x, g, b, num_groups=groups), [x, g, b], device
    )
    with pytest.raises(ValueError, match="not divisible by num_groups=5"):
        mx.npx.group_norm(*_arrays(device, x, g, b), num_groups=5)


def test_instance_norm_values_and_gradients(device):
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 2))
    g, b = rng.standard_normal(3), rng.standard_normal(3)
    y = mx.npx.instance_norm(*_arrays(device, x, g, b), eps=1e-3)
    want = _normalized(x, (2, 3), 1e-3) * g.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1)
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-10, atol=1e-10)
    check_gradients(lambda x, g, b: mx.npx.instance_norm(x, g, b), [x, g, b], device)


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)
_ERF = numpy.vectorize(math.erf)
# act_type -> NumPy formula with slope s
LEAKY = {
    "leaky": lambda x, s: numpy.where(x > 0, x, s * x),
    "elu": lambda x, s: numpy.where(x > 0, x, s * numpy.expm1(x)),
    "selu": lambda x, s: _SELU[1] * numpy.where(x > 0, x, _SELU[0] * numpy.expm1(x)),
    "gelu": lambda x, s: 0.5 * x * (1 + _ERF(x / math.sqrt(2))),
    "gelu_tanh": lambda x, s: (
        0.5 * x * (1 + numpy.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    ),
}


@pytest.mark.parametrize("act_type", sorted(LEAKY))
def test_leaky_relu_values_and_gradients(act_type, device):
    x = numpy.random.default_rng(6).standard_normal((3, 4)) * 2
    y = mx.npx.leaky_relu(
        mx.np.array(x, dtype="float64", device=device), act_type=act_type, slope=0.3
    )
    numpy.testing.assert_allclose(y.asnumpy(), LEAKY[act_type](x, 0.3), rtol=1e-6, atol=1e-7)
    check_gradients(
        lambda x: mx.npx.leaky_relu(x, act_type=act_type, slope=0.3), [x], device, rtol=1e-5
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_prelu_learns_its_slope(channels, device):
    rng = numpy.random.default_rng(7)
    x, gamma = rng.standard_normal((2, 3, 4)), rng.random(channels)
    y = mx.npx.leaky_relu(*_arrays(device, x, gamma), act_type="prelu")
    slope = gamma.reshape(1, -1, 1) if channels > 1 else gamma
    numpy.testing.assert_allclose(y.asnumpy(), numpy.where(x > 0, x, slope * x))
    check_gradients(lambda x, g: mx.npx.leaky_relu(x, g, act_type="prelu"), [x, gamma], device)
    with pytest.raises(ValueError, match="prelu gamma of shape"):
        mx.npx.leaky_relu(*_arrays(device, x, numpy.ones(2)), act_type="prelu")


def test_rrelu_random_slope_in_training_mean_slope_otherwise(device):
    x = -numpy.ones((200,))
    y = mx.npx.leaky_relu(
        mx.np.array(x, device=device), act_type="rrelu", lower_bound=0.1, upper_bound=0.3
    )
    numpy.testing.assert_allclose(y.asnumpy(), -0.2 * numpy.ones(200), rtol=1e-6)
    with autograd.train_mode():
        y = -mx.npx.leaky_relu(
            mx.np.array(x, device=device), act_type="rrelu", lower_bound=0.1, upper_bound=0.3
        ).asnumpy()
    assert y.min() >= 0.1 and y.max() < 0.3 and y.std() > 0.03
    with pytest.raises(ValueError, match="act_type must be one of"):
        mx.npx.leaky_relu(mx.np.array(x, device=device), act_type="swish")
