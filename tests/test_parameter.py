"""mx.gluon.Parameter and Constant: every behaviour and error of the parameter store."""

from __future__ import annotations

import re
import warnings

import numpy
import pytest

import gluonlite as mx
from gluonlite import _backend
from gluonlite.gluon import parameter as parameter_module
from tests.helpers import assert_matches

Parameter = mx.gluon.Parameter


def _state(p):
    """Everything a failed operation must leave untouched: objects, values, attributes."""
    data = p._data
    return (
        p.shape,
        p.dtype,
        p.grad_req,
        p._pending,
        None
        if data is None
        else [(d, id(r), r.asnumpy().tobytes(), id(r._grad)) for d, r in data.items()],
        None if p._grad is None else [(d, id(g)) for d, g in p._grad.items()],
    )


def _failing_on_second_call(real, calls: list):
    """``real``, but the second call (since ``calls`` was last cleared) runs out of memory."""

    def wrapper(*args):
        calls.append(args)
        if len(calls) == 2:
            raise MemoryError("out of memory (simulated)")
        return real(*args)

    return wrapper


# --------------------------------------------------------------------- the seed example
def test_seed_example(device):
    x_host = numpy.random.default_rng(0).normal(size=(16, 100)).astype(numpy.float32)
    x = mx.np.array(x_host, device=device)
    w = Parameter("fc_weight", shape=(64, 100), init=mx.init.Xavier())
    b = Parameter("fc_bias", shape=(64,), init=mx.init.Zero())
    w.initialize(device=device)
    b.initialize(device=device)
    out = mx.npx.fully_connected(x, w.data(device), b.data(device), num_hidden=64)
    assert_matches(out, x_host @ w.data(device).asnumpy().T, rtol=1e-4, atol=1e-5, device=device)
    assert_matches(b.data(device), numpy.zeros(64, dtype=numpy.float32), device=device)
    bound = numpy.sqrt(3 / 82)
    assert 0 < abs(w.data(device).asnumpy()).max() <= bound


def test_repr_and_attributes():
    p = Parameter("fc_weight", shape=(64, 100))
    assert repr(p) == "Parameter fc_weight (shape=(64, 100), dtype=float32)"
    q = Parameter(
        "emb",
        grad_req="add",
        shape=7,
        dtype="float64",
        lr_mult=2.0,
        wd_mult=0.0,
        init="ones",
        allow_deferred_init=True,
        differentiable=True,
        stype="row_sparse",
        grad_stype="row_sparse",
    )
    assert (q.name, q.grad_req, q.shape, q.dtype, q.lr_mult, q.wd_mult) == (
        "emb",
        "add",
        (7,),
        numpy.dtype("float64"),
        2.0,
        0.0,
    )
    assert isinstance(q.init, mx.init.One)
    assert (q.allow_deferred_init, q.differentiable, q.stype, q.grad_stype) == (
        True,
        True,
        "row_sparse",
        "row_sparse",
    )
    default = Parameter()
    assert (default.name, default.grad_req, default.shape, default.dtype, default.init) == (
        "weight",
        "write",
        None,
        numpy.dtype("float32"),
        None,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grad_req": "sometimes"}, r"Parameter 'w': grad_req must be one of"),
        ({"stype": "dense"}, r"Parameter 'w': stype must be one of"),
        ({"grad_stype": "coo"}, r"Parameter 'w': grad_stype must be one of"),
        ({"shape": (2, -3)}, r"Parameter 'w': shape \(2, -3\) has a negative dimension"),
        ({"init": "glorot"}, r"Unknown initializer 'glorot'"),
    ],
)
def test_constructor_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Parameter("w", **kwargs)


# --------------------------------------------------------------------- replicas
def test_replicas_follow_the_given_order_and_are_bit_identical(devices):
    p = Parameter("w", shape=(3, 5))
    order = list(reversed(devices))
    p.initialize(device=order)
    assert p.list_device() == order
    assert [r.device for r in p.list_data()] == order
    assert [g.device for g in p.list_grad()] == order
    first = p.list_data()[0].asnumpy()
    for replica in p.list_data():
        assert replica.asnumpy().tobytes() == first.tobytes()
    for dev in devices:
        assert p.data(dev).device == dev and p.grad(dev).device == dev


def test_same_seed_same_values_whatever_the_devices(devices):
    mx.random.seed(3)
    p = Parameter("w", shape=(4, 4), init="xavier")
    p.initialize(device=mx.cpu(0))
    reference = p.data().asnumpy()
    mx.random.seed(3)
    q = Parameter("w", shape=(4, 4), init="xavier")
    q.initialize(device=devices)
    for replica in q.list_data():
        assert replica.asnumpy().tobytes() == reference.tobytes()


def test_same_seed_same_values_on_each_device(device):
    mx.random.seed(11)
    p = Parameter("w", shape=(3, 3))
    p.initialize(device=device)
    mx.random.seed(11)
    expected = mx.init.Uniform()("w", (3, 3), "float32")
    assert p.data().asnumpy().tobytes() == expected.tobytes()


def test_data_returns_the_live_replica(devices):
    p = Parameter("w", shape=(2, 2), init="zeros")
    p.initialize(device=devices)
    p.data(devices[1])[:] = 5
    assert p.data(devices[1]).asnumpy().tolist() == [[5, 5], [5, 5]]
    assert p.data(devices[0]).asnumpy().tolist() == [[0, 0], [0, 0]]
    assert p.data(devices[0]) is p.list_data()[0]
    assert p.grad(devices[1]) is p.list_grad()[1]
    assert p.data(devices[0]).grad is p.grad(devices[0])


def test_data_without_device_uses_the_only_or_the_current_device(devices):
    p = Parameter("w", shape=(2,))
    p.initialize(device=devices[1])
    assert p.data().device == devices[1]
    q = Parameter("w", shape=(2,))
    q.initialize(device=devices)
    with devices[1]:
        assert q.data().device == devices[1] and q.grad().device == devices[1]
    with devices[0]:
        assert q.data().device == devices[0]


def test_default_device_is_the_current_device():
    p = Parameter("w", shape=(2,))
    with mx.cpu(1):
        p.initialize()
    assert p.list_device() == [mx.cpu(1)]


def test_data_on_a_device_it_is_not_on(devices):
    p = Parameter("fc_weight", shape=(2,))
    p.initialize(device=devices[0])
    expected = (
        f"Parameter 'fc_weight' is not on {devices[1]}; it is on [{devices[0]}]. "
        f"Use reset_device() or data({devices[0]})."
    )
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        p.data(devices[1])
    with pytest.raises(RuntimeError, match=r"not on .*Use reset_device\(\) or grad\("):
        p.grad(devices[1])


def test_data_with_several_replicas_and_another_current_device():
    p = Parameter("w", shape=(2,))
    p.initialize(device=[mx.cpu(0), mx.cpu(1)])
    with mx.cpu(2):
        with pytest.raises(
            RuntimeError,
            match=r"not on cpu\(2\); it is on \[cpu\(0\), "
            r"cpu\(1\)\]",
        ):
            p.data()


# --------------------------------------------------------------------- uninitialized
@pytest.mark.parametrize("call", ["data", "grad", "list_data", "list_grad", "list_device"])
def test_access_before_initialize(call):
    p = Parameter("fc_weight", shape=(2,))
    with pytest.raises(
        RuntimeError,
        match=r"Parameter 'fc_weight' has not been "
        r"initialized; call fc_weight.initialize",
    ):
        getattr(p, call)()
    assert not isinstance(_raised(getattr(p, call)), mx.gluon.DeferredInitializationError)


def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the test inspects the type
        return e
    return None


def test_initialize_with_unknown_shape_without_deferred_init():
    p = Parameter("fc_weight", shape=(64, 0))
    assert p.shape == (64, -1)
    with pytest.raises(
        ValueError,
        match=r"Cannot initialize Parameter 'fc_weight': its "
        r"shape \(64, -1\) is not fully known",
    ):
        p.initialize()
    with pytest.raises(ValueError, match="not fully known"):
        Parameter("b").initialize()


# --------------------------------------------------------------------- deferred init
def test_deferred_init_completes_on_data_once_the_shape_is_known(devices):
    mx.random.seed(5)
    p = Parameter("fc_weight", shape=(4, -1), allow_deferred_init=True, init="xavier")
    p.initialize(device=devices)
    assert p.list_device() == devices
    with pytest.raises(
        mx.gluon.DeferredInitializationError,
        match=r"Parameter 'fc_weight' has not been initialized yet because "
        r"its initialization was deferred",
    ):
        p.data(devices[0])
    assert isinstance(_raised(p.list_grad), RuntimeError)
    p.shape = (0, 3)  # 0 is unknown too: merges into (4, 3)
    assert p.shape == (4, 3)
    replica = p.data(devices[1])
    assert replica.shape == (4, 3) and p.list_device() == devices
    mx.random.seed(5)
    expected = mx.init.Xavier()("fc_weight", (4, 3), "float32")
    for r in p.list_data():
        assert r.asnumpy().tobytes() == expected.tobytes()
    assert p.grad(devices[0]).shape == (4, 3)


def test_shape_setter_merges_and_refuses_conflicts():
    p = Parameter("w", shape=(-1, 3, 0), allow_deferred_init=True)
    p.shape = (2, -1, 0)
    assert p.shape == (2, 3, -1)
    with pytest.raises(
        ValueError,
        match=r"Parameter 'w': shape \(5, 3, 1\) conflicts with "
        r"the known shape \(2, 3, -1\)",
    ):
        p.shape = (5, 3, 1)
    with pytest.raises(ValueError, match=r"does not match the 3-d shape"):
        p.shape = (2, 3)
    assert p.shape == (2, 3, -1)
    q = Parameter("q")
    q.shape = 4
    assert q.shape == (4,)


def test_shape_of_an_initialized_parameter_cannot_change():
    p = Parameter("w", shape=(2, 3))
    p.initialize()
    p.shape = (2, 3)
    with pytest.raises(ValueError, match="conflicts"):
        p.shape = (3, 3)


def test_set_data_on_a_deferred_parameter_becomes_the_initial_value(devices):
    p = Parameter("w", shape=(2, -1), allow_deferred_init=True)
    p.initialize(device=devices)
    p.set_data(numpy.array([[1, 2, 3], [4, 5, 6]]))
    assert p.shape == (2, 3)
    for r in p.list_data():
        assert_matches(r, numpy.array([[1, 2, 3], [4, 5, 6]], dtype=numpy.float32))
    with pytest.raises(ValueError, match=r"set_data got shape \(3, 3\) conflicts"):
        p.set_data(numpy.zeros((3, 3)))


def test_reset_device_of_a_deferred_parameter():
    p = Parameter("w", shape=(-1,), allow_deferred_init=True)
    p.initialize(device=mx.cpu(0))
    p.reset_device([mx.cpu(1), mx.cpu(2)])
    p.shape = (3,)
    assert [r.device for r in p.list_data()] == [mx.cpu(1), mx.cpu(2)]


def test_failed_deferred_completion_keeps_it_pending():
    p = Parameter("fc_bias", shape=(-1,), allow_deferred_init=True, init="xavier")
    p.initialize()
    p.shape = (4,)
    with pytest.raises(ValueError, match="'fc_bias' of shape"):
        p.data()
    p.init = mx.init.Zero()
    with pytest.raises(ValueError, match="'fc_bias' of shape"):
        p.data()  # the pending initializer was chosen at initialize() time
    p.initialize(init="zeros")
    assert p.data().asnumpy().tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------- initializers
def test_initializer_priority():
    p = Parameter("w", shape=(2,), init="ones")
    p.initialize(default_init="zeros")
    assert p.data().asnumpy().tolist() == [1, 1]
    p.initialize(init=mx.init.Constant(3), default_init="zeros", force_reinit=True)
    assert p.data().asnumpy().tolist() == [3, 3]
    q = Parameter("w", shape=(2,))
    q.initialize(default_init="ones")
    assert q.data().asnumpy().tolist() == [1, 1]


def test_default_initializer_is_uniform_007():
    p = Parameter("fc_bias", shape=(1000,))
    p.initialize()
    values = p.data().asnumpy()
    assert 0.06 < abs(values).max() <= 0.07 and len(numpy.unique(values)) > 900


def test_chosen_initializer_applies_to_the_whole_parameter_whatever_its_name():
    # MXNet Gluon passes the chosen initializer for the whole array: a 'bias' named
    # parameter initialized with Xavier is an error, not silently zero.
    p = Parameter("fc_bias", shape=(4,))
    with pytest.raises(ValueError, match=r"parameter 'fc_bias' of shape \(4,\)"):
        p.initialize(init="xavier")
    q = Parameter("fc_bias", shape=(2, 2), init="xavier")
    q.initialize()
    assert abs(q.data().asnumpy()).min() > 0


def test_initialize_twice_warns_and_keeps_the_data(device):
    p = Parameter("fc_weight", shape=(2, 2))
    p.initialize(device=device)
    before = p.data()
    values = before.asnumpy()
    with pytest.warns(
        UserWarning,
        match=r"Parameter 'fc_weight' is already initialized.*"
        r"force_reinit=True",
    ):
        p.initialize(device=device, init="ones")
    assert p.data() is before
    numpy.testing.assert_array_equal(p.data().asnumpy(), values)
    p.initialize(device=device, init="ones", force_reinit=True)
    assert p.data().asnumpy().tolist() == [[1, 1], [1, 1]]


# --------------------------------------------------------------------- grads and autograd
def test_backward_deposits_into_the_grad_replicas(device):
    x_host = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    x = mx.np.array(x_host, device=device)
    w = Parameter("w", shape=(4, 3), init="ones")
    w.initialize(device=device)
    replica = w.data()
    assert replica._fresh_grad is False
    with mx.autograd.record():
        out = mx.npx.fully_connected(x, replica, no_bias=True, num_hidden=4).sum()
    out.backward()
    expected = numpy.tile(x_host.sum(axis=0), (4, 1))
    assert_matches(w.grad(), expected, device=device)
    assert replica._fresh_grad is True
    with mx.autograd.record():
        out = mx.npx.fully_connected(x, replica, no_bias=True, num_hidden=4).sum()
    out.backward()
    assert_matches(w.grad(), expected, device=device)  # 'write' overwrites


def test_grad_req_add_accumulates_and_zero_grad_clears(device):
    w = Parameter("w", shape=(3,), grad_req="add", init="ones")
    w.initialize(device=device)
    for _ in range(2):
        with mx.autograd.record():
            (w.data() * 2).sum().backward()
    assert w.grad().asnumpy().tolist() == [4, 4, 4]
    w.zero_grad()
    assert w.grad().asnumpy().tolist() == [0, 0, 0]


def test_grad_req_setter_allocates_and_frees_buffers(devices):
    w = Parameter("fc_weight", shape=(2,), grad_req="null")
    w.initialize(device=devices)
    with pytest.raises(
        RuntimeError,
        match=r"Cannot get the gradient of Parameter "
        r"'fc_weight' because grad_req='null'",
    ):
        w.grad()
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        w.list_grad()
    w.zero_grad()  # no buffers: nothing to do
    w.grad_req = "write"
    grads = w.list_grad()
    assert [g.device for g in grads] == devices
    assert all(g.asnumpy().tolist() == [0, 0] for g in grads)
    assert w.data(devices[1]).grad is grads[1]
    with mx.autograd.record():
        (w.data(devices[0]) * 3).sum().backward()
    assert w.grad(devices[0]).asnumpy().tolist() == [3, 3]
    w.grad_req = "add"
    assert w.grad(devices[0]) is grads[0]  # switching write/add keeps the buffers
    w.grad_req = "null"
    assert w.data(devices[0]).grad is None
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        w.grad()
    with pytest.raises(ValueError, match="grad_req must be one of"):
        w.grad_req = "overwrite"
    assert w.grad_req == "null"


def test_grad_req_before_initialize_decides_the_buffers():
    w = Parameter("w", shape=(2,))
    w.grad_req = "null"
    w.initialize()
    assert w.data().grad is None
    w.zero_grad()


def test_non_differentiable_parameter_has_no_gradient():
    p = Parameter("running_mean", shape=(2,), differentiable=False)
    assert p.grad_req == "null"
    p.grad_req = "write"
    assert p.grad_req == "null"
    p.initialize()
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad()


def test_zero_grad_before_initialize_is_a_no_op():
    p = Parameter("w", shape=(2,))
    p.zero_grad()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.grad()


# --------------------------------------------------------------------- set_data
def test_set_data_copies_into_every_replica_in_place(devices):
    p = Parameter("w", shape=(2, 2))
    p.initialize(device=devices)
    replicas = p.list_data()
    p.set_data(mx.np.array([[1, 2], [3, 4]], device=devices[1]))
    assert all(a is b for a, b in zip(p.list_data(), replicas))
    for dev, replica in zip(devices, replicas):
        assert_matches(replica, numpy.array([[1, 2], [3, 4]], dtype=numpy.float32), device=dev)
    p.set_data([[5, 6], [7, 8]])
    assert p.data(devices[0]).asnumpy().tolist() == [[5, 6], [7, 8]]


def test_set_data_keeps_the_parameter_dtype(device):
    p = Parameter("w", shape=(2,), dtype="float64")
    p.initialize(device=device)
    p.set_data(mx.np.array([0.5, 1.5], device=device))
    assert p.data().dtype == numpy.float64
    assert p.data().asnumpy().tolist() == [0.5, 1.5]


def test_set_data_of_the_wrong_shape(device):
    p = Parameter("fc_weight", shape=(2, 2))
    p.initialize(device=device)
    before = _state(p)
    with pytest.raises(
        ValueError,
        match=r"Parameter 'fc_weight': set_data got shape "
        r"\(3, 2\) conflicts with the known shape "
        r"\(2, 2\)",
    ):
        p.set_data(numpy.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"set_data got shape \(4,\) does not match"):
        p.set_data(numpy.zeros(4))
    assert _state(p) == before


def test_set_data_before_initialize():
    p = Parameter("w", shape=(2,))
    with pytest.raises(RuntimeError, match=r"'w' has not been initialized.*before set_data"):
        p.set_data([1, 2])


def test_set_data_accepts_sparse_values():
    p = Parameter("w", shape=(3, 2))
    p.initialize()
    p.set_data(mx.sparse.row_sparse_array(([[1.0, 2.0]], [1]), shape=(3, 2)))
    assert p.data().asnumpy().tolist() == [[0, 0], [1, 2], [0, 0]]


# --------------------------------------------------------------------- cast
@pytest.mark.parametrize("dtype", ["float16", "float64", "float32"])
def test_cast_converts_data_and_grads(devices, dtype):
    p = Parameter("w", shape=(2, 3), init="ones")
    p.initialize(device=devices)
    p.cast(dtype)
    assert p.dtype == numpy.dtype(dtype)
    for r, g in zip(p.list_data(), p.list_grad()):
        assert r.dtype == numpy.dtype(dtype) and g.dtype == numpy.dtype(dtype)
        assert r.grad is g
        numpy.testing.assert_array_equal(r.asnumpy(), numpy.ones((2, 3)))
    with mx.autograd.record():
        (p.data(devices[0]) * 2).sum().backward()
    assert p.grad(devices[0]).dtype == numpy.dtype(dtype)
    assert p.grad(devices[0]).asnumpy().tolist() == [[2, 2, 2], [2, 2, 2]]


def test_dtype_setter_casts_and_uninitialized_cast_sets_the_dtype():
    p = Parameter("w", shape=(2,))
    p.dtype = "float64"
    assert p.dtype == numpy.float64
    p.initialize()
    assert p.data().dtype == numpy.float64
    p.dtype = numpy.float16
    assert p.data().dtype == numpy.float16 and p.grad().dtype == numpy.float16


def test_cast_to_bfloat16_where_available():
    try:
        import ml_dtypes
    except ImportError:
        p = Parameter("w", shape=(2,))
        p.initialize()
        before = _state(p)
        with pytest.raises(TypeError, match="bfloat16 needs the ml_dtypes package"):
            p.cast("bfloat16")
        assert _state(p) == before
        return
    p = Parameter("w", shape=(2,), init="ones")
    p.initialize()
    p.cast("bfloat16")
    assert p.data().dtype == numpy.dtype(ml_dtypes.bfloat16)


def test_failed_cast_leaves_the_parameter_as_it_was(monkeypatch):
    p = Parameter("w", shape=(2, 2))
    p.initialize(device=[mx.cpu(0), mx.cpu(1)])
    before = _state(p)
    calls = []
    monkeypatch.setattr(
        parameter_module, "_cast", _failing_on_second_call(parameter_module._cast, calls)
    )
    with pytest.raises(MemoryError):
        p.cast("float64")
    assert len(calls) == 2
    assert _state(p) == before and p.dtype == numpy.float32


# --------------------------------------------------------------------- reset_device
def test_reset_device_keeps_the_values(devices):
    p = Parameter("w", shape=(3, 2))
    p.initialize(device=devices[0])
    p.data()[:] = 7
    kept = p.data()
    p.reset_device(devices)
    assert p.list_device() == devices
    assert p.data(devices[0]) is kept
    for r in p.list_data():
        assert r.asnumpy().tolist() == [[7, 7]] * 3
    for r, g in zip(p.list_data(), p.list_grad()):
        assert r.grad is g and g.device == r.device
    p.reset_device(devices[1])
    assert p.list_device() == [devices[1]]
    assert p.data().asnumpy().tolist() == [[7, 7]] * 3


def test_reset_device_uses_backend_transfer(monkeypatch):
    p = Parameter("w", shape=(2,), init="ones")
    p.initialize(device=mx.cpu(0))
    moves = []
    real = _backend.transfer

    def recording(raw, src, dst):
        moves.append((src, dst))
        return real(raw, src, dst)

    monkeypatch.setattr(_backend, "transfer", recording)
    p.reset_device([mx.cpu(0), mx.cpu(1)])
    assert moves == [(mx.cpu(0), mx.cpu(1))]


def test_reset_device_before_initialize():
    p = Parameter("w", shape=(2,))
    with pytest.raises(
        ValueError,
        match=r"Cannot reset the devices of Parameter 'w' "
        r"because it has not been initialized",
    ):
        p.reset_device(mx.cpu(1))


def test_reset_device_on_a_missing_gpu_leaves_the_parameter_as_it_was():
    p = Parameter("w", shape=(2, 2))
    p.initialize(device=mx.cpu(0))
    before = _state(p)
    with pytest.raises(RuntimeError, match=r"gpu\(7\) requested|CuPy is not installed"):
        p.reset_device([mx.cpu(1), mx.gpu(7)])
    assert _state(p) == before


def test_failed_transfer_midway_leaves_reset_device_and_initialize_undone(monkeypatch):
    p = Parameter("w", shape=(2, 2))
    p.initialize(device=mx.cpu(0))
    before = _state(p)
    p2 = Parameter("w2", shape=(2,))
    p2.initialize(device=[mx.cpu(0), mx.cpu(1)])
    before2 = _state(p2)
    calls = []
    monkeypatch.setattr(_backend, "transfer", _failing_on_second_call(_backend.transfer, calls))
    with pytest.raises(MemoryError):
        p.reset_device([mx.cpu(0), mx.cpu(1), mx.cpu(2)])
    assert _state(p) == before
    calls.clear()
    with pytest.raises(MemoryError):
        p.initialize(device=[mx.cpu(1), mx.cpu(2)], init="ones", force_reinit=True)
    assert _state(p) == before
    calls.clear()
    with pytest.raises(MemoryError):
        p2.set_data(numpy.array([9.0, 9.0]))
    assert _state(p2) == before2


def test_failed_initialize_on_a_missing_gpu_leaves_the_parameter_as_it_was():
    p = Parameter("w", shape=(2, 2))
    p.initialize(device=mx.cpu(0))
    before = _state(p)
    with pytest.raises(RuntimeError, match=r"gpu\(7\) requested|CuPy is not installed"):
        p.initialize(device=[mx.cpu(1), mx.gpu(7)], force_reinit=True)
    assert _state(p) == before
    q = Parameter("q", shape=(2,))
    with pytest.raises(RuntimeError):
        q.initialize(device=mx.gpu(7))
    assert _state(q) == (q.shape, q.dtype, q.grad_req, None, None, None)
    with pytest.raises(RuntimeError, match="has not been initialized"):
        q.data()


def test_failed_initializer_leaves_the_parameter_as_it_was():
    p = Parameter("fc_bias", shape=(3,), init="ones")
    p.initialize()
    before = _state(p)
    with pytest.raises(ValueError, match="fc_bias"):
        p.initialize(init="xavier", force_reinit=True)
    assert _state(p) == before


@pytest.mark.skipif(mx.num_gpus() > 0, reason="a GPU is present on this machine")
def test_gpu_without_a_visible_gpu_gives_a_clear_error():
    try:
        import cupy  # noqa: F401 - only whether it imports matters

        expected = r"gpu\(0\) requested, but 0 GPUs are visible"
    except ImportError:
        expected = r"GPU device was requested, but CuPy is not installed"
    p = Parameter("w", shape=(2,))
    with pytest.raises(RuntimeError, match=expected):
        p.initialize(device=mx.gpu(0))
    with pytest.raises(RuntimeError, match=expected):
        mx.np.zeros((2,), device=mx.gpu(0))


def test_duplicate_and_invalid_devices():
    p = Parameter("w", shape=(2,))
    with pytest.raises(ValueError, match="listed twice"):
        p.initialize(device=[mx.cpu(0), mx.cpu(0)])
    with pytest.raises(TypeError, match="Expected a Device"):
        p.initialize(device="cpu")
    with pytest.raises(ValueError, match="at least one device"):
        p.initialize(device=[])


# --------------------------------------------------------------------- deprecations
def test_ctx_keywords_and_old_names_warn(devices):
    p = Parameter("w", shape=(2,))
    with pytest.warns(DeprecationWarning, match="ctx= is deprecated"):
        p.initialize(ctx=devices)
    with pytest.warns(DeprecationWarning, match="ctx= is deprecated"):
        assert p.data(ctx=devices[1]).device == devices[1]
    with pytest.warns(DeprecationWarning, match="ctx= is deprecated"):
        assert p.grad(ctx=devices[0]).device == devices[0]
    with pytest.warns(
        DeprecationWarning,
        match=r"list_ctx\(\) is deprecated, use "
        r"list_device\(\)",
    ):
        assert p.list_ctx() == devices
    with pytest.warns(DeprecationWarning, match=r"reset_ctx\(\) is deprecated"):
        p.reset_ctx(devices[1])
    assert p.list_device() == [devices[1]]


def test_ctx_and_device_together_is_a_type_error():
    p = Parameter("w", shape=(2,))
    with pytest.raises(TypeError, match="both device= and ctx="):
        p.initialize(device=mx.cpu(0), ctx=mx.cpu(0))
    p.initialize()
    with pytest.raises(TypeError, match="both device= and ctx="):
        p.data(device=mx.cpu(0), ctx=mx.cpu(0))


def test_deprecation_warnings_point_at_the_caller():
    p = Parameter("w", shape=(2,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p.initialize(ctx=mx.cpu(0))
        p.list_ctx()
    assert [w.filename for w in caught] == [__file__, __file__]


# --------------------------------------------------------------------- sparse storage
def test_row_sparse_parameter_serves_rows(device):
    p = Parameter("emb", shape=(10, 3), stype="row_sparse", grad_stype="row_sparse")
    p.initialize(device=device)
    full = p._data[device].asnumpy()
    row_id = mx.np.array([8, 2, 8, 5], device=device)
    rows = p.row_sparse_data(row_id)
    assert isinstance(rows, mx.RowSparseNDArray) and rows.device == device
    assert rows.shape == (10, 3) and rows.indices.asnumpy().tolist() == [2, 5, 8]
    numpy.testing.assert_array_equal(rows.data.asnumpy(), full[[2, 5, 8]])
    rows.data[:] = 0  # a copy: the store keeps its values
    numpy.testing.assert_array_equal(p.row_sparse_data(row_id).data.asnumpy(), full[[2, 5, 8]])
    with pytest.raises(IndexError, match="row id 10 is out of range"):
        p.row_sparse_data(mx.np.array([10], device=device))
    with pytest.raises(TypeError, match="row_id must be an mx.np.ndarray"):
        p.row_sparse_data([1, 2])


def test_row_sparse_parameter_refuses_dense_access():
    p = Parameter("emb", shape=(4, 2), stype="row_sparse")
    p.initialize()
    with pytest.raises(
        RuntimeError,
        match=r"Cannot return Parameter 'emb' via data\(\) "
        r"because its storage type is 'row_sparse'; "
        r"use row_sparse_data",
    ):
        p.data()
    with pytest.raises(RuntimeError, match=r"use list_row_sparse_data"):
        p.list_data()


def test_dense_parameter_refuses_row_sparse_access():
    p = Parameter("w", shape=(4, 2))
    p.initialize()
    with pytest.raises(
        RuntimeError,
        match=r"Cannot return Parameter 'w' via "
        r"row_sparse_data\(\) because its storage type "
        r"is 'default'; use data\(\)",
    ):
        p.row_sparse_data(mx.np.array([1]))
    with pytest.raises(RuntimeError, match=r"list_row_sparse_data\(\).*use list_data\(\)"):
        p.list_row_sparse_data(mx.np.array([1]))


def test_row_sparse_data_follows_row_id_device(devices):
    p = Parameter("emb", shape=(6, 2), stype="row_sparse", init="ones")
    p.initialize(device=devices)
    for dev in devices:
        rows = p.row_sparse_data(mx.np.array([3, 1], device=dev))
        assert rows.device == dev and rows.indices.asnumpy().tolist() == [1, 3]
    listed = p.list_row_sparse_data(mx.np.array([4, 4], device=devices[0]))
    assert [r.device for r in listed] == devices
    assert all(r.indices.asnumpy().tolist() == [4] for r in listed)
    q = Parameter("emb", shape=(6, 2), stype="row_sparse")
    q.initialize(device=devices[0])
    with pytest.raises(
        RuntimeError, match=re.escape(f"not on {devices[1]}; it is on [{devices[0]}]")
    ):
        q.row_sparse_data(mx.np.array([1], device=devices[1]))


def test_row_sparse_gradients_from_embedding(device):
    p = Parameter("emb", shape=(8, 2), stype="row_sparse", grad_stype="row_sparse", init="ones")
    p.initialize(device=device)
    grad = p.grad()
    assert isinstance(grad, mx.RowSparseNDArray) and grad.indices.shape == (0,)
    ids = mx.np.array([6, 1, 6], device=device)
    with mx.autograd.record():
        mx.npx.embedding(ids, p._data[device], sparse_grad=True).sum().backward()
    assert p.grad() is grad
    assert grad.indices.asnumpy().tolist() == [1, 6]
    assert grad.data.asnumpy().tolist() == [[1, 1], [2, 2]]
    p.zero_grad()
    assert grad.indices.shape == (0,)
    numpy.testing.assert_array_equal(grad.asnumpy(), numpy.zeros((8, 2)))


def test_row_sparse_grad_buffers_survive_cast():
    p = Parameter("emb", shape=(4, 2), grad_stype="row_sparse")
    p.initialize()
    p.cast("float64")
    assert isinstance(p.grad(), mx.RowSparseNDArray) and p.grad().dtype == numpy.float64
    assert p.data().grad is p.grad()


def test_csr_parameter_and_gradient(device):
    p = Parameter("w", shape=(3, 4), stype="csr", grad_stype="csr", init="ones")
    p.initialize(device=device)
    data = p.data()
    assert isinstance(data, mx.CSRNDArray) and data.device == device
    numpy.testing.assert_array_equal(data.asnumpy(), numpy.ones((3, 4)))
    assert isinstance(p.list_data()[0], mx.CSRNDArray)
    assert isinstance(p.grad(), mx.CSRNDArray)
    replica = p._data[device]
    with mx.autograd.record():
        (replica * 2).sum().backward()
    numpy.testing.assert_array_equal(p.grad().asnumpy(), numpy.full((3, 4), 2.0))
    p.zero_grad()
    assert p.grad().data.shape == (0,)
    with pytest.raises(ValueError, match=r"Parameter 'v': csr storage needs a 2-D shape"):
        Parameter("v", shape=(2, 2, 2), grad_stype="csr").initialize()


# --------------------------------------------------------------------- var, Constant
def test_var_carries_the_attributes_and_is_cached():
    p = Parameter(
        "fc_weight",
        shape=(64, 100),
        dtype="float16",
        lr_mult=2.0,
        wd_mult=0.5,
        init="xavier",
        stype="row_sparse",
    )
    sym = p.var()
    assert isinstance(sym, mx.sym.Symbol) and repr(sym) == "<Symbol fc_weight>"
    assert (sym.name, sym.shape, sym.dtype, sym.lr_mult, sym.wd_mult, sym.stype) == (
        "fc_weight",
        (64, 100),
        numpy.dtype("float16"),
        2.0,
        0.5,
        "row_sparse",
    )
    assert isinstance(sym.init, mx.init.Xavier)
    assert sym.attr("__lr_mult__") == "2.0"
    assert p.var() is sym


def test_constant_holds_a_fixed_value(devices):
    c = mx.gluon.Constant([[1, 2], [3, 4]])
    assert (c.name, c.shape, c.dtype, c.grad_req) == (
        "const",
        (2, 2),
        numpy.dtype("float32"),
        "null",
    )
    assert repr(c) == "Constant const (shape=(2, 2), dtype=float32)"
    c.initialize(device=devices)
    for r in c.list_data():
        assert r.asnumpy().tolist() == [[1, 2], [3, 4]]
        assert r.grad is None
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        c.grad()
    with pytest.warns(UserWarning, match="Constant 'const' has no gradient"):
        c.grad_req = "write"
    assert c.grad_req == "null"
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        c.list_grad()
    c.set_data([[0, 0], [0, 1]])
    assert c.data(devices[1]).asnumpy().tolist() == [[0, 0], [0, 1]]


def test_constant_keeps_array_dtypes_and_names():
    c = mx.gluon.Constant(numpy.arange(3, dtype=numpy.int32), name="ids")
    c.initialize()
    assert c.data().dtype == numpy.int32 and c.name == "ids"
    assert c.data().asnumpy().tolist() == [0, 1, 2]
    d = mx.gluon.Constant(mx.np.array([1.5], device=mx.cpu(1)))
    d.initialize()
    assert d.data().asnumpy().tolist() == [1.5]


def test_constant_refuses_a_name_in_place_of_the_value():
    with pytest.raises(TypeError, match=r"Constant\(value, name=...\)"):
        mx.gluon.Constant("const", [[1, 2]])


def test_sym_var_attributes_and_errors():
    sym = mx.sym.var("emb", shape=5, dtype="float64", init=mx.init.Normal(0.5), stype="csr")
    assert sym.shape == (5,) and sym.dtype == numpy.float64
    assert sym.list_attr() == {
        "__shape__": "(5,)",
        "__dtype__": "float64",
        "__init__": '["normal", {"sigma": 0.5}]',
        "__stype__": "2",
    }
    assert mx.sym.var("plain").list_attr() == {} and mx.sym.var("plain").shape is None
    with pytest.raises(ValueError, match="stype must be"):
        mx.sym.var("x", stype="dense")
    with pytest.raises(TypeError, match="name must be a str"):
        mx.sym.var(3)
