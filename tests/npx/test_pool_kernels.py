"""The GPU kernel behind npx.pooling's backward (kernels/pool.cu) against the array-op path
it replaces: the same input gradient, value for value (the kernel repeats the array ops'
float32 sums in their order), for float32, float16 and bfloat16, both layouts.

On a GPU (real or emulated) the default path must launch the kernel; ``conv._use_pool_kernels``
off gives the array-op path. On the CPU both are the NumPy path.
"""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite import _kernels, autograd
from gluonlite.npx import conv
from tests.helpers import with_bfloat16

DTYPES = with_bfloat16(["float32", "float16"])

# (shape, pooling arguments)
CASES = [
    ((2, 3, 7, 6), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")),
    (
        (2, 3, 7, 6),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
    ),
    (
        (1, 2, 5, 7),
        dict(kernel=(3, 2), stride=(1, 2), pad=(1, 0), pool_type="sum", pooling_convention="full"),
    ),
    ((2, 6, 4, 3), dict(kernel=(2, 2), stride=(2, 1), pool_type="max", layout="NHWC")),
    ((2, 3, 9), dict(kernel=(3,), stride=(2,), pad=(1,), pool_type="avg")),
    ((1, 2, 4, 5, 3), dict(kernel=(2, 3, 2), stride=(1, 2, 2), pool_type="max")),
    ((2, 3, 4, 5), dict(global_pool=True, pool_type="max")),
    ((2, 3, 4, 5), dict(global_pool=True, pool_type="avg")),
]


def _run(device, dtype, shape, kwargs, kernels, monkeypatch):
    rng = numpy.random.default_rng(4)
    x = mx.np.array(rng.standard_normal(shape), device=device).astype(dtype)
    x.attach_grad()
    monkeypatch.setattr(conv, "_use_pool_kernels", kernels)
    with autograd.record():
        y = mx.npx.pooling(x, **kwargs)
    dy = mx.np.array(rng.standard_normal(y.shape), device=device).astype(dtype)
    y.backward(dy)
    return x.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kwargs", CASES, ids=lambda v: str(v).replace(" ", ""))
def test_pool_backward_kernel_matches_the_array_op_path(device, dtype, shape, kwargs, monkeypatch):
    calls = []
    real = _kernels.pool_backward
    monkeypatch.setattr(_kernels, "pool_backward", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = _run(device, dtype, shape, kwargs, True, monkeypatch)
    launched = 1 if device.device_type == "gpu" else 0
    assert len(calls) == launched, "the kernel serves GPUs (only)"
    want = _run(device, dtype, shape, kwargs, False, monkeypatch)
    assert len(calls) == launched, "the switch turns the kernel off"
    assert got.dtype == want.dtype and got.shape == want.shape and got.device == want.device
    numpy.testing.assert_array_equal(
        got.asnumpy().astype(numpy.float32), want.asnumpy().astype(numpy.float32)
    )


def test_float64_pooling_keeps_the_array_ops(device, monkeypatch):
    calls = []
    monkeypatch.setattr(_kernels, "pool_backward", lambda *a, **k: calls.append(1))
    got = _run(
        device, "float64", (1, 2, 4, 4), dict(kernel=(2, 2), pool_type="max"), True, monkeypatch
    )
    assert calls == [] and got.dtype == numpy.float64
