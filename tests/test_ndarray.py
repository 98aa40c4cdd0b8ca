import re

import numpy
import pytest

import gluonlite as mx
from tests.helpers import assert_matches, with_bfloat16


def _host(shape, seed=0, dtype=numpy.float32):
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    "fn, args, expected",
    [
        (mx.np.zeros, ((2, 3),), numpy.zeros((2, 3), numpy.float32)),
        (mx.np.ones, ((4,),), numpy.ones(4, numpy.float32)),
        (mx.np.full, ((2,), 7), numpy.full(2, 7, numpy.float32)),
        (mx.np.arange, (5,), numpy.arange(5, dtype=numpy.float32)),
        (mx.np.array, ([[1, 2], [3, 4]],), numpy.array([[1, 2], [3, 4]], numpy.float32)),
    ],
)
def test_creation_defaults_to_float32_on_the_device(device, fn, args, expected):
    assert_matches(fn(*args, device=device), expected, device=device)


def test_creation_dtype_and_like(device):
    a = mx.np.zeros((2, 2), dtype="float64", device=device)
    assert a.dtype == numpy.float64
    assert_matches(mx.np.ones_like(a), numpy.ones((2, 2)), device=device)
    assert_matches(mx.np.zeros_like(a, dtype="int32"), numpy.zeros((2, 2), numpy.int32))
    assert_matches(mx.np.full_like(a, 3.0), numpy.full((2, 2), 3.0))
    assert mx.np.empty((3,), device=device).shape == (3,)
    assert mx.np.array(numpy.arange(3), device=device).dtype == numpy.arange(3).dtype


def test_attributes(device):
    a = mx.np.array(_host((2, 3, 4)), device=device)
    assert (a.shape, a.size, a.ndim, a.stype, a.device) == ((2, 3, 4), 24, 3, "default", device)
    assert len(a) == 2 and a.T.shape == (4, 3, 2)


def test_arithmetic_matches_numpy(device):
    x, y = _host((3, 4), 1), _host((4,), 2)
    a, b = mx.np.array(x, device=device), mx.np.array(y, device=device)
    assert_matches(a + b, x + y)
    assert_matches(a - 2, x - 2)
    assert_matches(2 - a, 2 - x)
    assert_matches(a * b, x * y)
    assert_matches(a / (b * b + 1), x / (y * y + 1))
    assert_matches(1 / (a * a + 1), 1 / (x * x + 1))
    assert_matches(abs(a) ** 2, numpy.abs(x) ** 2, rtol=1e-5)
    assert_matches(-a, -x)
    assert_matches(a @ a.T, x @ x.T, rtol=1e-5)
    assert_matches(a > 0, x > 0)
    assert_matches(a == a, numpy.ones((3, 4), bool))
    assert_matches(a != b, x != y)
    assert_matches(a <= 0.1, x <= 0.1)


def test_reductions_match_numpy(device):
    x = _host((3, 4, 5), 3)
    a = mx.np.array(x, device=device)
    assert_matches(a.sum(), numpy.asarray(x.sum()), rtol=1e-5, atol=1e-5)
    assert_matches(a.mean(axis=1), x.mean(axis=1), rtol=1e-5)
    assert_matches(a.max(axis=(0, 2), keepdims=True), x.max(axis=(0, 2), keepdims=True))
    assert_matches(a.min(axis=-1), x.min(axis=-1))
    assert_matches(a.reshape(12, 5), x.reshape(12, 5))
    assert_matches(a.reshape((-1,)), x.reshape(-1))
    assert_matches(a.transpose(1, 0, 2), x.transpose(1, 0, 2))
    assert a.argmax(axis=1).asnumpy().tolist() == x.argmax(axis=1).tolist()
    assert mx.np.array([2.5], device=device).item() == 2.5
    with pytest.raises(ValueError, match="size 1"):
        a.item()


def test_indexing_and_slice_assignment_write_through(device):
    x = _host((4, 3), 4)
    a = mx.np.array(x, device=device)
    assert_matches(a[1], x[1])
    assert_matches(a[1:3, ::2], x[1:3, ::2])
    idx = mx.np.array([3, 0, 3], dtype="int64", device=device)
    assert_matches(a[idx], x[[3, 0, 3]])
    a[0] = 5.0
    a[1:3] = mx.np.zeros((2, 3), device=device)
    x[0], x[1:3] = 5.0, 0
    assert_matches(a, x)
    a[:] = numpy.ones((4, 3), numpy.float32) if device.device_type == "cpu" else 1.0
    assert_matches(a, numpy.ones((4, 3), numpy.float32))


def test_inplace_operators_keep_the_buffer(device):
    a = mx.np.ones((2,), device=device)
    raw = a._data
    a += 2
    a *= mx.np.full((2,), 3.0, device=device)
    a -= 1
    a /= 2
    assert a._data is raw
    assert_matches(a, numpy.full(2, 4.0, numpy.float32))


def test_conversions(device):
    x = _host((2, 3), 5)
    a = mx.np.array(x, device=device)
    assert isinstance(a.asnumpy(), numpy.ndarray)
    numpy.testing.assert_array_equal(numpy.asarray(a), x)
    assert_matches(a.astype("float64"), x.astype(numpy.float64))
    assert a.astype("float32", copy=False) is a
    b = a.copy()
    b[:] = 0
    assert_matches(a, x)
    assert float(mx.np.array([3.0], device=device)) == 3.0
    assert a.tolist() == x.tolist()


def test_to_device_and_copyto(devices):
    src, dst = devices
    x = _host((3, 2), 6)
    a = mx.np.array(x, device=src)
    b = a.to_device(dst)
    assert_matches(b, x, device=dst)
    assert a.to_device(src) is a
    c = a.copyto(dst)
    assert_matches(c, x, device=dst)
    target = mx.np.zeros((3, 2), device=dst)
    assert a.copyto(target) is target
    assert_matches(target, x, device=dst)
    with pytest.raises(ValueError, match=r"shape mismatch, source \(3, 2\), target \(2,\)"):
        a.copyto(mx.np.zeros((2,), device=dst))
    with pytest.raises(TypeError, match="Device or an ndarray"):
        a.copyto("cpu")


def test_no_silent_copies_between_devices(devices):
    a = mx.np.ones((2,), device=devices[0])
    b = mx.np.ones((2,), device=devices[1])
    message = f"different devices, {devices[0]} and {devices[1]}"
    with pytest.raises(ValueError, match=re.escape(message)):
        a + b
    with pytest.raises(ValueError, match="different devices"):
        a @ b
    with pytest.raises(ValueError, match="different devices"):
        mx.np.concatenate([a, b])


def test_deprecated_context_names_warn_and_refuse_ambiguity():
    a = mx.np.ones((2,))
    with pytest.warns(DeprecationWarning, match="as_in_context"):
        b = a.as_in_context(mx.cpu(1))
    assert b.device == mx.cpu(1)
    with pytest.warns(DeprecationWarning, match="ctx"):
        assert a.ctx == mx.cpu(0)
    with pytest.warns(DeprecationWarning, match="ctx="):
        assert mx.np.zeros((1,), ctx=mx.cpu(2)).device == mx.cpu(2)
    with pytest.raises(TypeError, match="both device= and ctx="):
        mx.np.zeros((1,), device=mx.cpu(0), ctx=mx.cpu(1))


def test_dlpack_is_zero_copy(device):
    a = mx.np.arange(4, device=device)
    b = mx.np.from_dlpack(a)
    assert b.device == device
    b[0] = 42
    assert a[0].item() == 42
    assert a.__dlpack_device__()[0] == (1 if device.device_type == "cpu" else 2)


def test_repr_shows_values_and_device():
    assert repr(mx.np.array([1, 2], device=mx.cpu(1))) == "array([1., 2.], device=cpu(1))"
    assert "dtype=int64" in repr(mx.np.arange(2, dtype="int64"))


def test_random_is_seeded_and_device_independent(devices):
    mx.random.seed(3)
    a = mx.np.random.uniform(-1, 1, size=(5,), device=devices[0])
    b = mx.np.random.normal(size=(2, 2), device=devices[0])
    mx.random.seed(3)
    c = mx.np.random.uniform(-1, 1, size=(5,), device=devices[1])
    d = mx.np.random.normal(size=(2, 2), device=devices[1])
    numpy.testing.assert_array_equal(a.asnumpy(), c.asnumpy())
    numpy.testing.assert_array_equal(b.asnumpy(), d.asnumpy())
    assert a.dtype == numpy.float32 and (a.asnumpy() >= -1).all() and (a.asnumpy() < 1).all()
    assert mx.np.random.randint(0, 3, size=(4,)).dtype == numpy.int64


@pytest.mark.parametrize("flatten", [True, False])
def test_fully_connected_matches_numpy(device, flatten):
    x = _host((4, 2, 3), 7)
    in_units = 6 if flatten else 3
    w, b = _host((5, in_units), 8), _host((5,), 9)
    out = mx.npx.fully_connected(
        mx.np.array(x, device=device),
        mx.np.array(w, device=device),
        mx.np.array(b, device=device),
        num_hidden=5,
        flatten=flatten,
    )
    expected = (x.reshape(4, 6) if flatten else x) @ w.T + b
    assert_matches(out, expected, rtol=1e-5, atol=1e-5, device=device)


def test_fully_connected_shape_errors_name_the_shapes(device):
    x = mx.np.zeros((2, 3), device=device)
    w = mx.np.zeros((4, 3), device=device)
    with pytest.raises(ValueError, match=r"num_hidden=5 but weight has shape \(4, 3\)"):
        mx.npx.fully_connected(x, w, None, num_hidden=5, no_bias=True)
    with pytest.raises(ValueError, match=r"input of shape \(2, 2\) gives 2 input units"):
        mx.npx.fully_connected(mx.np.zeros((2, 2), device=device), w, None, no_bias=True)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(4,\)"):
        mx.npx.fully_connected(x, w, mx.np.zeros((3,), device=device), num_hidden=4)
    with pytest.raises(ValueError, match="no_bias=False"):
        mx.npx.fully_connected(x, w, None, num_hidden=4)


@pytest.mark.parametrize("dtype", with_bfloat16(["float16"]))
def test_fully_connected_16bit_accumulates_in_float32(device, dtype):
    # 512 rows of positive values: a 16-bit running sum (NumPy's own for float16/bfloat16)
    # is off by percents in db and in long dot products; float32 accumulation is within
    # one 16-bit rounding of the float64 result.
    rng = numpy.random.default_rng(3)
    x_h, w_h, b_h, dy_h = (rng.uniform(0.5, 1.5, s) for s in [(512, 256), (8, 256), (8,), (512, 8)])
    arrays = [mx.np.array(a, dtype=dtype, device=device) for a in (x_h, w_h, b_h)]
    x64, w64, b64 = (a.asnumpy().astype(numpy.float64) for a in arrays)
    for a in arrays:
        a.attach_grad()
    dy = mx.np.array(dy_h, dtype=dtype, device=device)
    dy64 = dy.asnumpy().astype(numpy.float64)
    with mx.autograd.record():
        y = mx.npx.fully_connected(*arrays, num_hidden=8)
    y.backward(dy)
    eps = 2.0 ** (-10 if dtype == "float16" else -7)  # one rounding of the result
    for got, expected in [
        (y, x64 @ w64.T + b64),
        (arrays[0].grad, dy64 @ w64),
        (arrays[1].grad, dy64.T @ x64),
        (arrays[2].grad, dy64.sum(0)),
    ]:
        assert got.dtype == numpy.dtype(arrays[0].dtype)
        error = numpy.abs(got.asnumpy().astype(numpy.float64) - expected) / expected
        assert error.max() <= eps, (dtype, error.max())


def test_fully_connected_empty_batch(device):
    out = mx.npx.fully_connected(
        mx.np.zeros((0, 3), device=device),
        mx.np.ones((2, 3), device=device),
        mx.np.ones((2,), device=device),
        num_hidden=2,
    )
    assert out.shape == (0, 2)


def test_set_np_is_accepted_and_numpy_semantics_cannot_be_turned_off():
    mx.npx.set_np()
    mx.npx.reset_np()
    assert mx.npx.is_np_array() and mx.npx.is_np_shape()
    with pytest.raises(ValueError, match="legacy mx.nd"):
        mx.npx.set_np(array=False)
    with pytest.raises(ValueError, match="dtype=True"):
        mx.npx.set_np(dtype=True)


def test_an_element_of_a_1d_array_is_a_0d_array_and_differentiates(device):
    # x[i] of a 1-d array wraps a 0-d array (NumPy gives a scalar there): the binary ops'
    # backward recognises only arrays, so x[1] + x[0] used to get no gradient at all.
    x = mx.np.array([1.0, 2.0, 3.0], device=device)
    assert not isinstance(x[1]._data, numpy.generic) and x[1].shape == ()
    x.attach_grad()
    with mx.autograd.record():
        y = x[1] + x[0] * x[2]
    y.backward()
    assert x.grad.asnumpy().tolist() == [3.0, 1.0, 1.0]
