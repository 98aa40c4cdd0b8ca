"""``mx.np.ndarray``: MXNet 2's methods, indexing, in-place updates under autograd, printing."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from tests.helpers import assert_matches

_X = numpy.arange(6, dtype=numpy.float32).reshape(2, 3) - 2.5


def test_shape_methods(device):
    x = mx.np.array(_X, device=device)
    assert_matches(x.reshape(3, -1), _X.reshape(3, -1), device=device)
    assert_matches(x.reshape((-1,)), _X.reshape(-1))
    assert_matches(x.flatten(), _X.flatten())
    assert_matches(x.broadcast_to((2, 2, 3)), numpy.broadcast_to(_X, (2, 2, 3)))
    assert_matches(x.reshape(1, 2, 3).squeeze(), _X)
    assert_matches(x.argsort(), _X.argsort())
    assert_matches(x.dot(x.T), _X @ _X.T)
    assert_matches(x.T, _X.T)
    assert_matches(x.transpose(1, 0), _X.T)
    assert x.tolist() == _X.tolist()
    assert x[1, 2].item() == 2.5


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("sum", {}),
        ("sum", {"axis": 1}),
        ("mean", {"axis": 0}),
        ("max", {}),
        ("min", {"axis": 1}),
        ("argmax", {"axis": 1}),
        ("argmin", {}),
        ("prod", {}),
        ("std", {}),
        ("var", {"axis": 0}),
        ("cumsum", {"axis": 1}),
        ("round", {}),
        ("clip", {"a_min": -1, "a_max": 1}),
        ("all", {}),
        ("any", {"axis": 0}),
        ("ravel", {}),
        ("repeat", {"repeats": 2}),
        ("swapaxes", {"axis1": 0, "axis2": 1}),
        ("take", {"indices": [0, 2], "axis": 1}),
        ("trace", {}),
        ("diagonal", {}),
        ("nonzero", {}),
        ("sort", {"axis": 0}),
        ("tile", {"reps": 2}),
    ],
)
def test_numpy_methods(device, method, kwargs):
    x = mx.np.array(_X, device=device)
    got, want = getattr(x, method)(**kwargs), getattr(numpy, method)(_X, **kwargs)
    for g, w in zip(
        got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]
    ):
        assert_matches(g, numpy.asarray(w), device=device)


def test_astype_and_conversions(device):
    x = mx.np.array(_X, device=device)
    assert x.astype("int32").dtype == numpy.int32
    assert x.as_np_ndarray() is x and x.as_nd_ndarray() is x
    s = mx.np.array(2, dtype="int64", device=device)
    assert [10, 20, 30][s] == 30 and int(s) == 2 and float(s) == 2.0
    assert bool(mx.np.array(1.0)) and not bool(mx.np.array(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(x)
    with pytest.raises(TypeError, match="integer scalar"):
        [1, 2][mx.np.array(1.0)]
    assert len(x) == 2 and [r.shape for r in x] == [(3,), (3,)]
    assert f"{x.max():.3f}" == "2.500" and f"{x}" == str(x)
    with pytest.raises(TypeError):
        f"{x:.3f}"


def test_repr_and_str_follow_mxnet2():
    assert repr(mx.np.array([1, 2])) == "array([1., 2.])"
    assert repr(mx.np.array([1, 2], device=mx.cpu(1))) == "array([1., 2.], device=cpu(1))"
    assert repr(mx.np.array([1, 2], dtype="int32")) == "array([1, 2], dtype=int32)"
    assert repr(mx.np.array([True, False])) == "array([ True, False])"
    assert repr(mx.np.array([1.5], dtype="float64")) == "array([1.5], dtype=float64)"
    assert repr(mx.np.array(3.0)) == "array(3.)"
    assert str(mx.np.array([1, 2])) == "[1. 2.]"
    assert str(mx.np.array([1, 2], device=mx.cpu(1))) == "[1. 2.] @cpu(1)"
    assert str(mx.np.array(3.0, device=mx.cpu(1))) == "3.0"


def test_device_moves_and_deprecated_context():
    x = mx.np.array(_X)
    y = x.to_device(mx.cpu(1))
    assert y.device == mx.cpu(1) and x.copyto(mx.cpu(1)).device == mx.cpu(1)
    target = mx.np.zeros((2, 3), device=mx.cpu(1))
    assert x.copyto(target) is target and (target.asnumpy() == _X).all()
    with pytest.warns(DeprecationWarning):
        assert x.ctx == mx.cpu(0)
    with pytest.warns(DeprecationWarning):
        assert x.context == mx.cpu(0)
    x.wait_to_read()


def test_float_index_arrays_and_masks(device):
    x = mx.np.array(_X, device=device)
    idx = mx.np.array([0, 2], device=device)  # float32, as MXNet accepts
    assert idx.dtype == numpy.float32
    assert_matches(x[:, idx], _X[:, [0, 2]])
    assert_matches(x[idx[:1]], _X[[0]])
    mask = x > 0
    assert_matches(x[mask], _X[_X > 0])
    x.attach_grad()
    with mx.autograd.record():
        y = (x[mask] * 2).sum() + x[1:, idx].sum()
    y.backward()
    want = numpy.where(_X > 0, 2.0, 0.0)
    want[1, [0, 2]] += 1
    assert_matches(x.grad, want.astype(numpy.float32))


def test_setitem_and_inplace_keep_gradients_right(device):
    x = mx.np.array(_X, device=device)
    x.attach_grad()
    with mx.autograd.record():
        y = x * 1.0
        y[0] = 0.0  # tracked: y = where(row 0, 0, x)
        y *= x  # tracked: y = y_old * x
        y += y  # both operands are the old y
        acc = mx.np.zeros((2, 3), device=device)
        acc += y  # accumulating into a plain buffer
        acc += x
        loss = acc.sum()
    loss.backward()
    want = numpy.where(numpy.arange(2)[:, None] == 0, 0.0, 4 * _X) + 1
    assert_matches(x.grad, want.astype(numpy.float32))


def test_inplace_on_an_array_already_read_raises_at_backward(device):
    x = mx.np.array(_X, device=device)
    x.attach_grad()
    with mx.autograd.record():
        y = x * 1.0
        z = y * y  # reads y ...
        y += 1  # ... which then changes
        loss = (z + y).sum()
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()


def test_setitem_with_a_recorded_value(device):
    v = mx.np.array([1.0, 2.0, 3.0], device=device)
    v.attach_grad()
    buf = mx.np.zeros((2, 3), device=device)
    with mx.autograd.record():
        buf[1] = v * 3
        loss = (buf * buf).sum()
    loss.backward()
    assert_matches(v.grad, 18 * numpy.array([1.0, 2.0, 3.0], numpy.float32))


def test_inplace_on_a_leaf_while_recording_raises():
    x = mx.np.array(_X)
    x.attach_grad()
    before = x.asnumpy()
    with mx.autograd.record():
        with pytest.raises(RuntimeError, match="attach_grad"):
            x += 1
        with pytest.raises(RuntimeError, match="attach_grad"):
            x[0] = 1
    assert (x.asnumpy() == before).all()
    x += 1  # outside record() it updates the buffer in place, as MXNet
    assert (x.asnumpy() == before + 1).all()


def test_inplace_outside_record_mutates_the_buffer():
    x = mx.np.array(_X)
    raw = x._data
    x *= 2
    x[0, 0] = 7
    assert x._data is raw and raw[0, 0] == 7 and raw[1, 2] == 5


def test_fill_diagonal_and_out(device):
    x = mx.np.zeros((3, 3), device=device)
    mx.np.fill_diagonal(x, 2.0)
    assert_matches(x, 2 * numpy.eye(3, dtype=numpy.float32))
    out = mx.np.zeros((3, 3), device=device)
    res = mx.np.add(x, 1, out=out)
    assert res is out and (out.asnumpy() == 2 * numpy.eye(3) + 1).all()
    split = mx.np.split(mx.np.arange(4, device=device), 2)
    assert isinstance(split, list) and len(split) == 2


def test_non_differentiable_results_stop_the_tape():
    x = mx.np.array(_X)
    x.attach_grad()
    with mx.autograd.record():
        outs = [mx.np.argmax(x), x > 0, mx.np.unique(x), mx.np.isnan(x), mx.np.argsort(x)]
    assert all(o._node is None for o in outs)
