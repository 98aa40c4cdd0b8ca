"""Test helpers shared by the suite."""

from __future__ import annotations

import numpy

import gluonlite as mx


def assert_matches(actual, expected, *, rtol=1e-5, atol=1e-6, device=None):
    """Check a gluonlite array against NumPy: type, device, dtype, shape and values."""
    assert isinstance(actual, mx.np.ndarray), f"expected mx.np.ndarray, got {type(actual)}"
    if device is not None:
        assert actual.device == device, f"on {actual.device}, expected {device}"
    expected = numpy.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    numpy.testing.assert_allclose(actual.asnumpy(), expected, rtol=rtol, atol=atol)


def with_bfloat16(dtype_names: list) -> list:
    """``dtype_names`` plus ``'bfloat16'`` where NumPy can hold it (through ml_dtypes)."""
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return list(dtype_names)
    return list(dtype_names) + ["bfloat16"]


def numeric_grad(f, inputs, k, eps=1e-6):
    """d f(inputs) / d inputs[k] by central differences (``f`` returns a scalar; the
    float64 ``inputs[k]`` is perturbed in place and restored)."""
    x = inputs[k]
    grad = numpy.zeros_like(x)
    for i in numpy.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + eps
        up = f(*inputs)
        x[i] = orig - eps
        down = f(*inputs)
        x[i] = orig
        grad[i] = (up - down) / (2 * eps)
    return grad
