"""Every differentiable op's forward against NumPy and its gradient against central finite
differences of the NumPy function, on every device; grad_req semantics on leaves and
Parameters."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd, npx
from tests.helpers import assert_matches, numeric_grad as _numeric_grad

RNG = np.random.default_rng(0)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def _away_from_zero(*shape):
    """Values with |x| >= 0.2, so kinks (relu, abs, clip) are out of finite-difference reach."""
    x = RNG.uniform(0.2, 1.5, shape)
    return x * RNG.choice([-1.0, 1.0], shape)


def check_op(device, mx_fn, np_fn, *inputs, rtol=1e-6, atol=1e-8):
    """Forward of ``mx_fn`` equals ``np_fn`` (float64); backward with a random head gradient
    equals the finite-difference gradient of ``sum(np_fn(...) * head)``."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    xs = [mx.np.array(a, device=device) for a in inputs]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        out = mx_fn(*xs)
    expected = np.asarray(np_fn(*inputs), dtype=np.float64)
    assert_matches(out, expected, rtol=rtol, atol=atol, device=device)
    head = RNG.standard_normal(expected.shape)
    out.backward(mx.np.array(head, device=device))
    for k, x in enumerate(xs):
        numeric = _numeric_grad(lambda *a: float((np.asarray(np_fn(*a)) * head).sum()), inputs, k)
        assert x.grad is not None, f"input {k} got no gradient"
        np.testing.assert_allclose(
            x.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-6, err_msg=f"gradient of input {k}"
        )


# --------------------------------------------------------------------- arithmetic
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "subtract": (lambda a, b: a - b, np.subtract),
    "multiply": (lambda a, b: a * b, np.multiply),
    "divide": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1))], ids=["same", "row", "both"]
)
def test_binary_broadcasting(device, name, shapes):
    mx_fn, np_fn = BINARY[name]
    a, b = _randn(*shapes[0]), _positive(*shapes[1])
    check_op(device, mx_fn, np_fn, a, b)


def test_power(device):
    check_op(device, lambda a, b: a**b, np.power, _positive(3, 4), _randn(3, 4))


@pytest.mark.parametrize("case", ["rsub", "rdiv", "rmul", "radd", "pow_scalar", "rpow", "neg"])
def test_scalar_operands(device, case):
    fns = {
        "rsub": (lambda a: 2.0 - a, lambda a: 2.0 - a),
        "rdiv": (lambda a: 3.0 / a, lambda a: 3.0 / a),
        "rmul": (lambda a: 2.5 * a, lambda a: 2.5 * a),
        "radd": (lambda a: 1.0 + a, lambda a: 1.0 + a),
        "pow_scalar": (lambda a: a**3, lambda a: a**3),
        "rpow": (lambda a: 2.0**a, lambda a: 2.0**a),
        "neg": (lambda a: -a, lambda a: -a),
    }
    mx_fn, np_fn = fns[case]
    check_op(device, mx_fn, np_fn, _positive(2, 3))


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 2)),
        ((2, 3, 4), (4,)),
        ((4,), (2, 4, 5)),
        ((1, 3, 4), (2, 4, 5)),
    ],
    ids=["mm", "vm", "mv", "vv", "batched-mm", "bmm", "batched-mv", "batched-vm", "broadcast-bmm"],
)
def test_matmul(device, shapes):
    check_op(device, lambda a, b: a @ b, np.matmul, _randn(*shapes[0]), _randn(*shapes[1]))


def test_dot(device):
    check_op(device, mx.np.dot, np.dot, _randn(3, 4), _randn(4, 2))


# --------------------------------------------------------------------- reductions, shapes
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reductions(device, op, axis, keepdims):
    check_op(
        device,
        lambda a: getattr(a, op)(axis=axis, keepdims=keepdims),
        lambda a: getattr(np, op)(a, axis=axis, keepdims=keepdims),
        _randn(2, 3, 4),
    )


@pytest.mark.parametrize(
    "case",
    [
        "reshape",
        "transpose",
        "T",
        "flatten",
        "expand_dims",
        "slice",
        "int_index",
        "repeated_ids",
        "copy",
        "swap",
    ],
)
def test_shape_ops(device, case):
    fns = {
        "reshape": (lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6)),
        "transpose": (lambda a: a.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2)),
        "T": (lambda a: a.T, lambda a: a.T),
        "flatten": (lambda a: a.flatten(), lambda a: a.flatten()),
        "expand_dims": (lambda a: mx.np.expand_dims(a, 1), lambda a: np.expand_dims(a, 1)),
        "slice": (lambda a: a[1:, ::2], lambda a: a[1:, ::2]),
        "int_index": (lambda a: a[1], lambda a: a[1]),
        # Repeated ids: the gradient of a gathered row adds up.
        "repeated_ids": (
            lambda a: a[mx.np.array([0, 0, 1], dtype="int64", device=a.device)],
            lambda a: a[[0, 0, 1]],
        ),
        "copy": (lambda a: a.copy() * 1.0, lambda a: a.copy()),
        "swap": (lambda a: mx.np.transpose(a), lambda a: np.transpose(a)),
    }
    mx_fn, np_fn = fns[case]
    check_op(device, mx_fn, np_fn, _randn(2, 3, 4))


def test_concatenate_and_stack(device):
    check_op(
        device,
        lambda a, b: mx.np.concatenate([a, b, a], axis=1),
        lambda a, b: np.concatenate([a, b, a], axis=1),
        _randn(2, 3),
        _randn(2, 2),
    )
    check_op(
        device,
        lambda a, b: mx.np.stack([a, b], axis=1),
        lambda a, b: np.stack([a, b], axis=1),
        _randn(2, 3),
        _randn(2, 3),
    )


# --------------------------------------------------------------------- elementwise
UNARY = {
    "exp": (mx.np.exp, np.exp, _randn),
    "log": (mx.np.log, np.log, _positive),
    "tanh": (mx.np.tanh, np.tanh, _randn),
    "sqrt": (mx.np.sqrt, np.sqrt, _positive),
    "square": (mx.np.square, np.square, _randn),
    "abs": (mx.np.abs, np.abs, _away_from_zero),
    "sign": (mx.np.sign, np.sign, _away_from_zero),
    "clip": (
        lambda a: mx.np.clip(a, -0.5, 0.5),
        lambda a: np.clip(a, -0.5, 0.5),
        lambda *s: _away_from_zero(*s) + 0.1,
    ),
    "relu": (npx.relu, lambda a: np.maximum(a, 0), _away_from_zero),
    "sigmoid": (npx.sigmoid, lambda a: 1 / (1 + np.exp(-a)), lambda *s: 8 * _randn(*s)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(device, name):
    mx_fn, np_fn, make = UNARY[name]
    check_op(device, mx_fn, np_fn, make(3, 5))


ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0),
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "tanh": np.tanh,
    "softrelu": lambda a: np.log1p(np.exp(a)),
    "softsign": lambda a: a / (1 + np.abs(a)),
}


@pytest.mark.parametrize("act_type", sorted(ACTIVATIONS))
def test_activation(device, act_type):
    check_op(
        device,
        lambda a: npx.activation(a, act_type=act_type),
        ACTIVATIONS[act_type],
        _away_from_zero(4, 3),
    )


def test_maximum_minimum_where(device):
    a, b = _randn(3, 4), _randn(3, 4)
    check_op(device, mx.np.maximum, np.maximum, a, b)
    check_op(device, mx.np.minimum, np.minimum, a, b)
    cond = RNG.random((3, 4)) > 0.5
    check_op(
        device,
        lambda x, y: mx.np.where(mx.np.array(cond, device=device), x, y),
        lambda x, y: np.where(cond, x, y),
        a,
        b,
    )


# --------------------------------------------------------------------- npx
def _np_softmax(a, axis=-1, t=1.0):
    z = a / t
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("temperature", [None, 2.0])
def test_softmax_and_log_softmax(device, axis, temperature):
    t = 1.0 if temperature is None else temperature
    check_op(
        device,
        lambda a: npx.softmax(a, axis=axis, temperature=temperature),
        lambda a: _np_softmax(a, axis, t),
        _randn(3, 4),
    )
    check_op(
        device,
        lambda a: npx.log_softmax(a, axis=axis, temperature=temperature),
        lambda a: np.log(_np_softmax(a, axis, t)),
        _randn(3, 4),
    )


@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("no_bias", [False, True])
def test_fully_connected(device, flatten, no_bias):
    x = _randn(2, 3, 4)
    in_units = 12 if flatten else 4
    w, b = _randn(5, in_units), _randn(5)

    def np_fc(x, w, b=None):
        x2 = x.reshape(2, -1) if flatten else x
        y = x2 @ w.T
        return y if b is None else y + b

    if no_bias:
        check_op(
            device,
            lambda x, w: npx.fully_connected(
                x, w, None, num_hidden=5, no_bias=True, flatten=flatten
            ),
            np_fc,
            x,
            w,
        )
    else:
        check_op(
            device,
            lambda x, w, b: npx.fully_connected(x, w, b, num_hidden=5, flatten=flatten),
            np_fc,
            x,
            w,
            b,
        )


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("keepdims", [False, True])
def test_pick(device, axis, keepdims):
    data = _randn(3, 4)
    n_other = data.shape[1 - (axis % 2)]
    idx = RNG.integers(0, data.shape[axis], n_other)
    index = mx.np.array(idx, dtype="int64", device=device)
    expected = lambda a: (  # noqa: E731
        np.take_along_axis(a, np.expand_dims(idx, axis), axis=axis)
        if keepdims
        else np.squeeze(np.take_along_axis(a, np.expand_dims(idx, axis), axis=axis), axis)
    )
    check_op(device, lambda a: npx.pick(a, index, axis=axis, keepdims=keepdims), expected, data)


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_embedding_into_dense_buffer(device, sparse_grad):
    ids = np.array([[0, 3], [3, 1]])
    data = mx.np.array(ids, dtype="int64", device=device)
    check_op(
        device,
        lambda w: npx.embedding(data, w, input_dim=5, output_dim=2, sparse_grad=sparse_grad),
        lambda w: w[ids],
        _randn(5, 2),
    )


def test_embedding_sparse_grad_is_row_sparse(device):
    weight = mx.np.array(_randn(6, 2), device=device)
    weight.attach_grad(stype="row_sparse")
    ids = mx.np.array([4, 1, 4], dtype="int64", device=device)
    with autograd.record():
        out = npx.embedding(ids, weight, input_dim=6, output_dim=2, sparse_grad=True)
    head = _randn(3, 2)
    out.backward(mx.np.array(head, dtype=weight.dtype, device=device))
    grad = weight.grad
    assert grad.stype == "row_sparse"
    assert grad.indices.asnumpy().tolist() == [1, 4]
    np.testing.assert_allclose(grad.data.asnumpy(), [head[1], head[0] + head[2]], rtol=1e-6)


def test_dropout_gradient_is_the_mask(device):
    x = mx.np.array(_positive(50, 40), device=device)
    x.attach_grad()
    with autograd.record():
        y = npx.dropout(x, p=0.3)
    y.backward()
    mask = (y.asnumpy() != 0) / 0.7
    assert 0.6 < (y.asnumpy() != 0).mean() < 0.8
    np.testing.assert_allclose(y.asnumpy(), x.asnumpy() * mask, rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy(), mask, rtol=1e-6)


def test_dropout_is_identity_outside_training(device):
    x = mx.np.array(_randn(4, 5), device=device)
    assert npx.dropout(x, p=0.5) is x
    with autograd.record(train_mode=False):
        assert npx.dropout(x, p=0.5) is x


def test_astype_gradient_keeps_the_source_dtype(device):
    x = mx.np.array(_randn(3), dtype="float32", device=device)
    x.attach_grad()
    with autograd.record():
        y = (x.astype("float64") * 2.0).sum()
    y.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.asnumpy(), [2.0] * 3)


def test_gradient_flows_back_across_devices():
    x = mx.np.array(_randn(3), device=mx.cpu(0))
    x.attach_grad()
    with autograd.record():
        y = (x.to_device(mx.cpu(1)) * 3.0).sum()
    y.backward()
    assert x.grad.device == mx.cpu(0)
    np.testing.assert_allclose(x.grad.asnumpy(), [3.0] * 3)


def test_shared_input_gradients_add_up(device):
    check_op(device, lambda a: a * a + mx.np.exp(a) * a, lambda a: a * a + np.exp(a) * a, _randn(4))


# --------------------------------------------------------------------- grad_req
def _backward_twice(x, factor):
    for _ in range(2):
        with autograd.record():
            y = (x * factor).sum()
        y.backward()


def test_grad_req_write_overwrites(device):
    x = mx.np.ones((3,), device=device)
    x.attach_grad(grad_req="write")
    _backward_twice(x, 2.0)
    np.testing.assert_array_equal(x.grad.asnumpy(), [2.0] * 3)


def test_grad_req_add_accumulates(device):
    x = mx.np.ones((3,), device=device)
    x.attach_grad(grad_req="add")
    _backward_twice(x, 2.0)
    np.testing.assert_array_equal(x.grad.asnumpy(), [4.0] * 3)


def test_grad_req_null_gets_no_gradient(device):
    x = mx.np.ones((3,), device=device)
    w = mx.np.ones((3,), device=device)
    x.attach_grad(grad_req="null")
    w.attach_grad()
    with autograd.record():
        y = (x * w * 5.0).sum()
    y.backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.asnumpy(), [5.0] * 3)


@pytest.mark.parametrize("grad_req", ["write", "add"])
def test_parameter_grad_req_and_zero_grad(device, grad_req):
    p = mx.gluon.Parameter("w", shape=(2,), init="ones", grad_req=grad_req)
    p.initialize(device=device)
    for _ in range(2):
        with autograd.record():
            y = (p.data(device) * 3.0).sum()
        y.backward()
    expected = 3.0 if grad_req == "write" else 6.0
    np.testing.assert_array_equal(p.grad(device).asnumpy(), [expected] * 2)
    p.zero_grad()
    np.testing.assert_array_equal(p.grad(device).asnumpy(), [0.0] * 2)


def test_parameter_grad_req_null(device):
    p = mx.gluon.Parameter("w", shape=(2,), init="ones", grad_req="null")
    p.initialize(device=device)
    q = mx.gluon.Parameter("q", shape=(2,), init="ones")
    q.initialize(device=device)
    with autograd.record():
        y = (p.data(device) * q.data(device)).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad(device)
    np.testing.assert_array_equal(q.grad(device).asnumpy(), [1.0, 1.0])


def test_backward_on_one_device_leaves_other_replicas_alone(devices):
    p = mx.gluon.Parameter("w", shape=(3,), init="ones")
    p.initialize(device=devices)
    with autograd.record():
        y = (p.data(devices[0]) * 2.0).sum()
    y.backward()
    np.testing.assert_array_equal(p.grad(devices[0]).asnumpy(), [2.0] * 3)
    np.testing.assert_array_equal(p.grad(devices[1]).asnumpy(), [0.0] * 3)
    assert p.data(devices[0])._fresh_grad and not p.data(devices[1])._fresh_grad
