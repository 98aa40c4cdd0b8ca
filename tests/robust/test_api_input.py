"""Bad API input: TypeError/ValueError naming the parameter, before anything changes
(issue 15, item 2)."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite import gluon

NAME = "fc_weight"


def _param(**kwargs):
    kwargs.setdefault("shape", (4, 3))
    return gluon.Parameter(NAME, **kwargs)


def _initialized(**kwargs):
    p = _param(**kwargs)
    p.initialize(device=mx.cpu(0))
    return p


def _row_sparse():
    return _initialized(stype="row_sparse")


# (call, error type, text besides the parameter's name)
_CASES = {
    "float dim": (lambda: _param(shape=(2.5, 3)), TypeError, r"shape"),
    "string dim": (lambda: _param(shape=("2", 3)), TypeError, r"shape"),
    "bool dim": (lambda: _param(shape=(True, 3)), TypeError, r"shape"),
    "set float shape": (
        lambda: setattr(_param(shape=(-1, 3)), "shape", (2.0, 3)),
        TypeError,
        r"shape",
    ),
    "dtype object": (lambda: _param(dtype=object), TypeError, r"dtype"),
    "dtype str": (lambda: _param(dtype=str), TypeError, r"dtype"),
    "dtype U5": (lambda: _param(dtype="U5"), TypeError, r"dtype"),
    "unknown dtype": (lambda: _param(dtype="float33"), TypeError, r"float33"),
    "cast to object": (lambda: _initialized().cast(object), TypeError, r"dtype"),
    "cast to unknown": (lambda: _initialized().cast("float33"), TypeError, r"float33"),
    "complex set_data": (
        lambda: _initialized().set_data(numpy.ones((4, 3)) * 1j),
        TypeError,
        r"complex",
    ),
    "string set_data": (
        lambda: _initialized().set_data(numpy.full((4, 3), "a")),
        TypeError,
        r"set_data",
    ),
    "device 'cpu'": (
        lambda: _param().initialize(device="cpu"),
        TypeError,
        r"got 'cpu'.*mx\.cpu\(\)",
    ),
    "device 0": (lambda: _param().initialize(device=0), TypeError, r"got 0.*mx\.gpu\(0\)"),
    "missing gpu": (lambda: _param().initialize(device=mx.gpu(7)), RuntimeError, r"gpu\(7\)"),
    "no devices": (lambda: _param().initialize(device=[]), ValueError, r"device"),
    "device twice": (
        lambda: _param().initialize(device=[mx.cpu(0), mx.cpu(0)]),
        ValueError,
        r"twice",
    ),
    "data('cpu')": (lambda: _initialized().data("cpu"), TypeError, r"got 'cpu'"),
    "grad('cpu')": (lambda: _initialized().grad("cpu"), TypeError, r"got 'cpu'"),
    "reset_device('cpu')": (lambda: _initialized().reset_device("cpu"), TypeError, r"got 'cpu'"),
    "reset to missing gpu": (
        lambda: _initialized().reset_device(mx.gpu(7)),
        RuntimeError,
        r"gpu\(7\)",
    ),
    "row id too large": (
        lambda: _row_sparse().row_sparse_data(mx.np.array([7], dtype="int64")),
        IndexError,
        r"row id 7",
    ),
    "row id negative": (
        lambda: _row_sparse().list_row_sparse_data(mx.np.array([-1], dtype="int64")),
        IndexError,
        r"row id -1",
    ),
    "row ids fractional": (
        lambda: _row_sparse().row_sparse_data(mx.np.array([1.5])),
        ValueError,
        r"whole numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_bad_input_is_refused_naming_the_parameter(case):
    call, error, text = _CASES[case]
    with pytest.raises(error, match=text) as info:
        call()
    assert repr(NAME) in str(info.value), str(info.value)


def test_refused_set_data_and_cast_change_nothing():
    p = _initialized(init="ones")
    for bad in (lambda: p.set_data(numpy.full((4, 3), 2 + 1j)), lambda: p.cast(object)):
        with pytest.raises(TypeError):
            bad()
        assert p.dtype == numpy.float32
        numpy.testing.assert_array_equal(p.data().asnumpy(), numpy.ones((4, 3)))


def test_good_input_still_works():
    p = _param(shape=(numpy.int64(4), 3), dtype="float16")
    p.initialize(device=[mx.cpu(0), mx.cpu(1)])
    p.set_data(numpy.arange(12).reshape(4, 3))  # integers convert to the parameter's dtype
    assert p.data(mx.cpu(1)).dtype == numpy.float16
    assert _param(dtype="bool").dtype == numpy.bool_


# ----------------------------------------------------------------------- Trainer arguments
def _setup(devices):
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.One(), device=devices)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    x = numpy.arange(12, dtype=numpy.float32).reshape(4, 3)
    parts = gluon.utils.split_and_load(x, devices)
    with mx.autograd.record():
        losses = [net(part).sum() for part in parts]
    for loss in losses:
        loss.backward()
    return net, trainer


def _weights(net, device):
    return {k: p.data(device).asnumpy() for k, p in net.collect_params().items()}


@pytest.mark.parametrize(
    "bad",
    [0, -4, "4", None, True, float("nan")],
    ids=["zero", "negative", "string", "None", "bool", "nan"],
)
def test_refused_step_changes_nothing_and_a_retry_equals_a_plain_step(devices, bad):
    plain, trainer = _setup(devices)
    trainer.step(4)
    net, trainer = _setup(devices)
    with pytest.raises((TypeError, ValueError), match=r"batch_size"):
        trainer.step(bad)
    trainer.step(4)
    for device in devices:
        for name, value in _weights(net, device).items():
            numpy.testing.assert_array_equal(value, _weights(plain, device)[name])


def test_refused_update_changes_nothing(devices):
    plain, trainer = _setup(devices)
    trainer.step(4)
    net, trainer = _setup(devices)
    trainer.allreduce_grads()
    with pytest.raises(ValueError, match=r"batch_size"):
        trainer.update(0)
    trainer.update(4)
    for name, value in _weights(net, devices[0]).items():
        numpy.testing.assert_array_equal(value, _weights(plain, devices[0])[name])


def test_stale_gradient_error_comes_before_the_reduction(devices):
    plain, trainer = _setup(devices)
    plain.weight.grad_req = "null"  # the same run with the stale parameter left out
    gluon.Trainer(plain.collect_params(), "sgd", {"learning_rate": 0.1}).step(4)
    net, trainer = _setup(devices)
    for d in net.weight.list_data():
        d._fresh_grad = False  # as if the weight missed the backward pass
    with pytest.raises(RuntimeError, match=r"weight"):
        trainer.step(4)
    trainer.step(4, ignore_stale_grad=True)
    numpy.testing.assert_array_equal(
        net.bias.data(devices[-1]).asnumpy(), plain.bias.data(devices[-1]).asnumpy()
    )
