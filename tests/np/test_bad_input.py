"""Bad input to ``mx.np`` raises NumPy's exception types, naming the function (and the
devices), and changes nothing."""

from __future__ import annotations

import re

import numpy
import pytest
from numpy.exceptions import AxisError

import gluonlite as mx


def _x(shape=(2, 3), device=None, dtype="float32"):
    return mx.np.ones(shape, dtype=dtype, device=device)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: mx.np.bitwise_and(_x(), _x()), TypeError, "bitwise_and"),
        (lambda: mx.np.invert(_x()), TypeError, "invert"),
        (lambda: mx.np.add(_x(), _x((4,))), ValueError, "add.*broadcast"),
        (lambda: _x() * _x((4,)), ValueError, "multiply"),
        (lambda: mx.np.matmul(_x(), _x()), ValueError, "matmul"),
        (lambda: mx.np.concatenate([_x(), _x((2, 2))]), ValueError, "concatenate"),
        (lambda: mx.np.sum(_x(), axis=4), AxisError, "sum"),
        (lambda: _x().mean(axis=-3), AxisError, "mean"),
        (lambda: mx.np.stack([_x(), _x()], axis=5), AxisError, "stack"),
        (lambda: mx.np.linalg.norm(_x(), axis=7), AxisError, "norm"),
        (lambda: mx.np.linalg.inv(_x()), numpy.linalg.LinAlgError, "inv"),
        (lambda: _x().reshape(4, 2), ValueError, "reshape"),
        (lambda: mx.np.transpose(_x(), (0, 0)), ValueError, "transpose"),
        (lambda: mx.np.eye(2, dtype="nonsense"), TypeError, "nonsense"),
        (lambda: mx.np.random.uniform(size=-1), ValueError, "uniform"),
    ],
)
def test_numpy_exception_types_with_the_function_name(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda a, b: mx.np.add(a, b), "add"),
        (lambda a, b: a + b, "add"),
        (lambda a, b: a @ b.T, "matmul"),
        (lambda a, b: mx.np.concatenate([a, b]), "concatenate"),
        (lambda a, b: mx.np.where(a > 0, a, b), "where"),
        (lambda a, b: mx.np.exp(a, out=b), "exp"),
        (lambda a, b: mx.np.einsum("ij,ij->i", a, b), "einsum"),
        (lambda a, b: mx.np.linalg.solve(mx.np.eye(2, device=a.device), b[:, :1]), "solve"),
        (lambda a, b: a[b > 0], "index"),
    ],
)
def test_arrays_on_different_devices_are_refused(devices, call, name):
    a, b = _x(device=devices[0]), _x(device=devices[1])
    d0, d1 = re.escape(str(devices[0])), re.escape(str(devices[1]))
    with pytest.raises(ValueError, match=f"{name}.*({d0}.*{d1}|{d1}.*{d0})"):
        call(a, b)


def test_a_call_that_raised_changes_nothing():
    x = mx.np.arange(6).reshape(2, 3)
    out = mx.np.zeros((2, 3))
    with pytest.raises(ValueError, match="add"):
        mx.np.add(x, mx.np.ones((4,)), out=out)
    with pytest.raises(ValueError, match="out has shape"):
        mx.np.add(x, 1, out=mx.np.zeros((3,)))
    assert (out.asnumpy() == 0).all()
    before = x.asnumpy()
    with pytest.raises(ValueError, match="in-place add"):
        x += mx.np.ones((4,))
    assert (x.asnumpy() == before).all()
    with pytest.raises(TypeError, match="out must be"):
        mx.np.exp(x, out=numpy.zeros((2, 3)))


def test_unsupported_gradient_paths_raise_clearly():
    x = mx.np.ones((2, 2))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.np.einsum("ii->", x)
    with pytest.raises(ValueError, match="einsum"):
        y.backward()
    with mx.autograd.record():
        z = mx.np.linalg.norm(x, ord=2)
    with pytest.raises(ValueError, match="norm"):
        z.backward()
