"""Higher-order gradients: ``autograd.grad(create_graph=True)`` records the backward pass,
so gradients can be differentiated again (second derivatives, gradient penalties).

Second derivatives are checked against finite differences of first derivatives in float64
(``tests/npx/gradcheck.check_second_order``) on every device; ops whose backward is not
recorded must refuse a second derivative by name instead of giving a wrong one.
"""

from __future__ import annotations

import re

import numpy
import pytest

import gluonlite as mx
from gluonlite.np import _ops
from gluonlite.np import linalg as mx_linalg
from gluonlite.npx._rnn import param_size
from tests.helpers import assert_matches
from tests.np.cases import SIGN_FREE, SYMMETRIC
from tests.np.test_table import _cases_of
from tests.npx.gradcheck import check_second_order

_rng = numpy.random.default_rng(7)


def _leaf(values, device):
    x = mx.np.array(numpy.asarray(values, dtype="float64"), dtype="float64", device=device)
    x.attach_grad()
    return x


# ------------------------------------------------------------------ closed forms
_CLOSED = {
    "cube": (lambda x: x**3, lambda v: 6 * v),
    "x*x*x": (lambda x: x * x * x, lambda v: 6 * v),
    "sin": (mx.np.sin, lambda v: -numpy.sin(v)),
    "exp": (mx.np.exp, numpy.exp),
    "tanh": (mx.np.tanh, lambda v: -2 * numpy.tanh(v) * (1 - numpy.tanh(v) ** 2)),
    "log": (mx.np.log, lambda v: -1 / v**2),
    "sigmoid": (mx.npx.sigmoid, lambda v: (s := 1 / (1 + numpy.exp(-v))) * (1 - s) * (1 - 2 * s)),
    "sqrt": (mx.np.sqrt, lambda v: -0.25 * v**-1.5),
}


@pytest.mark.parametrize("name", sorted(_CLOSED))
def test_second_derivative_closed_forms(device, name):
    fn, d2 = _CLOSED[name]
    values = numpy.array([0.5, 1.0, 2.0])
    x = _leaf(values, device)
    with mx.autograd.record():
        y = fn(x).sum()
        dy = mx.autograd.grad(y, x, create_graph=True)
        z = dy.sum()
    assert dy._node is not None  # recorded
    z.backward()
    assert_matches(x.grad, d2(values), rtol=1e-10, atol=1e-12, device=device)


def test_third_derivative(device):
    values = numpy.array([0.5, -1.5, 2.0])
    x = _leaf(values, device)
    with mx.autograd.record():
        y = (x**4).sum()
        d1 = mx.autograd.grad(y, x, create_graph=True)
        d2 = mx.autograd.grad(d1.sum(), x, create_graph=True)
        d2.sum().backward()
    assert_matches(d1, 4 * values**3, rtol=1e-12)
    assert_matches(d2, 12 * values**2, rtol=1e-12)
    assert_matches(x.grad, 24 * values, rtol=1e-12, device=device)


def test_mixed_partials_of_products_and_matmul(device):
    a = _rng.standard_normal((3, 4))
    b = _rng.standard_normal((4, 2))
    check_second_order(lambda x, w: mx.np.sin(x @ w) * (x @ w), [a, b], device)
    check_second_order(lambda x, w: mx.np.dot(x, w).sum(axis=0) ** 2, [a, b], device)
    check_second_order(lambda x, y: (x * y + x / (y * y + 1)).sum(), [a, a.T.copy().T], device)


# ------------------------------------------------------------------ every table row
def _graph_rows():
    """(module, name, case index, recorded?) for every differentiable row of mx.np's and
    mx.np.linalg's tables."""
    params = []
    for module, funcs in (("np", _ops), ("linalg", mx_linalg)):
        for name in sorted(n for n, fn in vars(funcs).items() if hasattr(fn, "row")):
            row = getattr(funcs, name).row
            if row.grad is None or name == "fill_diagonal":
                continue
            for i, _ in enumerate(_cases_of(module, name)):
                params.append(pytest.param(module, name, i, row.graph, id=f"{module}.{name}-{i}"))
    return params


def _table_fn(module, name, args, kwargs):
    """``fn(*float arrays)`` calling row ``name`` with its case's other arguments, and
    ``sin`` of the float outputs (so that the outputs' gradients depend on the inputs and a
    linear op's recorded backward is exercised too)."""
    op = getattr(_ops if module == "np" else mx_linalg, name)
    sign_free = SIGN_FREE.get(name, ()) if module == "linalg" else ()

    def fn(*xs):
        it = iter(xs)
        flat_args = []

        def put(v, device):
            if isinstance(v, numpy.ndarray):
                if v.dtype.kind == "f":
                    a = next(it)
                    if module == "linalg" and name in SYMMETRIC:
                        a = (a + a.T) / 2
                    return a
                return mx.np.array(v, dtype=v.dtype, device=device)
            if isinstance(v, list) and v and isinstance(v[0], numpy.ndarray):
                return [put(e, device) for e in v]
            return v

        device = xs[0].device
        flat_args = [put(a, device) for a in args]
        kw = {k: put(v, device) for k, v in kwargs.items()}
        out = op(*flat_args, **kw)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [
            mx.np.sin(o * o if k in sign_free else o)
            for k, o in enumerate(outs)
            if o.dtype.kind == "f"
        ]

    return fn


def _float_inputs(args, kwargs):
    found = []

    def walk(v):
        if isinstance(v, numpy.ndarray) and v.dtype.kind == "f":
            found.append(v.astype(numpy.float64))
        elif isinstance(v, list) and v and isinstance(v[0], numpy.ndarray):
            for e in v:
                walk(e)

    for a in list(args) + list(kwargs.values()):
        walk(a)
    return found


@pytest.mark.parametrize("module, name, i, recorded", _graph_rows())
def test_table_second_derivatives(device, module, name, i, recorded):
    args, kwargs = _cases_of(module, name)[i]
    arrays = _float_inputs(args, kwargs)
    if name == "tan":  # the shared cases draw in an order-dependent way: keep off the poles
        arrays = [numpy.clip(a, -1.2, 1.2) for a in arrays]
    fn = _table_fn(module, name, args, kwargs)
    if recorded:
        check_second_order(fn, arrays, device, directions=1)
        return
    xs = [mx.np.array(a, dtype="float64", device=device) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        s = sum((o * o).sum() for o in fn(*xs))
        grads = mx.autograd.grad(s, xs, create_graph=True)  # first order: values only
        t = sum(g.sum() for g in grads)
    with pytest.raises(NotImplementedError, match=f"higher-order gradient through {name}"):
        t.backward()


# ------------------------------------------------------------------ npx operators
def _distinct(*shape):
    """Values spaced 0.1 apart in random order: no near ties for max pooling."""
    n = int(numpy.prod(shape))
    return (_rng.permutation(n).reshape(shape) - n / 2) * 0.1


_NPX = {
    "fully_connected": (
        lambda x, w, b: mx.np.sin(mx.npx.fully_connected(x, w, b, num_hidden=3)),
        [(4, 5), (3, 5), (3,)],
    ),
    "fully_connected flatten": (
        lambda x, w: mx.np.tanh(mx.npx.fully_connected(x, w, None, no_bias=True)),
        [(2, 3, 2), (4, 6)],
    ),
    "fully_connected no flatten": (
        lambda x, w, b: mx.np.sin(mx.npx.fully_connected(x, w, b, flatten=False)),
        [(2, 3, 5), (4, 5), (4,)],
    ),
    "softmax": (lambda x: mx.npx.softmax(x) * x, [(3, 5)]),
    "softmax axis temperature": (
        lambda x: mx.npx.softmax(x, axis=0, temperature=2.0) ** 2,
        [(3, 5)],
    ),
    "log_softmax": (lambda x: mx.npx.log_softmax(x) * x, [(3, 5)]),
    "masked_softmax": (
        lambda x: (
            mx.npx.masked_softmax(x, mx.np.array([[1, 1, 0, 1]], dtype=bool, device=x.device)) * x
        ),
        [(3, 4)],
    ),
    "masked_log_softmax": (
        lambda x: (
            mx.np.where(
                mx.np.array([[1, 0, 1, 1]], dtype=bool, device=x.device),
                mx.npx.masked_log_softmax(
                    x, mx.np.array([[1, 0, 1, 1]], dtype=bool, device=x.device)
                ),
                0,
            )
            * x
        ),
        [(3, 4)],
    ),
    "pick": (
        lambda x: (
            mx.np.sin(mx.npx.pick(x, mx.np.array([0, 2, 1], device=x.device))) * x.sum(axis=1)
        ),
        [(3, 4)],
    ),
    "embedding": (
        lambda w: (
            mx.np.sin(
                mx.npx.embedding(
                    mx.np.array([[0, 2], [2, 1]], device=w.device), w, input_dim=3, output_dim=4
                )
            )
            * w[0]
        ),
        [(3, 4)],
    ),
    "dropout": (lambda x: _seeded_dropout(x) ** 3, [(4, 5)]),
    "batch_dot": (
        lambda a, b: mx.np.sin(mx.npx.batch_dot(a, b, transpose_b=True)),
        [(2, 3, 4), (2, 5, 4)],
    ),
    "batch_dot transpose_a": (
        lambda a, b: mx.np.sin(mx.npx.batch_dot(a, b, transpose_a=True)),
        [(2, 4, 3), (2, 4, 5)],
    ),
    "broadcast_like": (lambda a, b: mx.np.sin(mx.npx.broadcast_like(a, b)) * b, [(1, 4), (3, 4)]),
    "convolution 2-D": (
        lambda x, w, b: mx.np.sin(
            mx.npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, pad=(1, 1))
        ),
        [(2, 3, 5, 5), (4, 3, 3, 3), (4,)],
    ),
    "convolution strided dilated grouped": (
        lambda x, w: mx.np.sin(
            mx.npx.convolution(
                x,
                w,
                kernel=(3, 3),
                num_filter=4,
                stride=(2, 2),
                pad=(1, 0),
                dilate=(1, 2),
                num_group=2,
                no_bias=True,
            )
        ),
        [(2, 4, 7, 8), (4, 2, 3, 3)],
    ),
    "convolution 1-D NWC": (
        lambda x, w, b: mx.np.sin(
            mx.npx.convolution(x, w, b, kernel=(2,), num_filter=3, stride=(2,), layout="NWC")
        ),
        [(2, 7, 2), (3, 2, 2), (3,)],
    ),
    "convolution 3-D": (
        lambda x, w: mx.np.sin(
            mx.npx.convolution(x, w, kernel=(2, 2, 2), num_filter=2, no_bias=True)
        ),
        [(1, 2, 3, 3, 3), (2, 2, 2, 2, 2)],
    ),
    "deconvolution": (
        lambda x, w, b: mx.np.sin(
            mx.npx.deconvolution(
                x,
                w,
                b,
                kernel=(3, 3),
                num_filter=2,
                stride=(2, 2),
                pad=(1, 1),
                adj=(1, 0),
                no_bias=False,
            )
        ),
        [(2, 3, 3, 4), (3, 2, 3, 3), (2,)],
    ),
    "pooling max": (
        lambda x: mx.np.sin(mx.npx.pooling(x, kernel=(3, 3), stride=(2, 1), pad=(1, 1))) ** 2,
        "distinct (2, 3, 5, 6)",
    ),
    "pooling avg full": (
        lambda x: (
            mx.np.sin(
                mx.npx.pooling(
                    x, kernel=(3, 3), stride=(2, 2), pool_type="avg", pooling_convention="full"
                )
            )
            * 3
        ),
        [(2, 3, 5, 6)],
    ),
    "pooling sum": (
        lambda x: mx.np.sin(mx.npx.pooling(x, kernel=(2,), pool_type="sum")),
        [(2, 3, 5)],
    ),
    "pooling global max": (
        lambda x: mx.np.sin(mx.npx.pooling(x, kernel=(1, 1), global_pool=True)) ** 2,
        "distinct (2, 3, 4, 4)",
    ),
    "pooling global avg": (
        lambda x: mx.np.sin(mx.npx.pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg")),
        [(2, 3, 4, 4)],
    ),
    "layer_norm": (lambda x, g, b: mx.np.sin(mx.npx.layer_norm(x, g, b)), [(3, 4, 5), (5,), (5,)]),
    "group_norm": (
        lambda x, g, b: mx.np.sin(mx.npx.group_norm(x, g, b, num_groups=2)),
        [(3, 4, 5), (4,), (4,)],
    ),
    "instance_norm": (
        lambda x, g, b: mx.np.sin(mx.npx.instance_norm(x, g, b)),
        [(3, 4, 5), (4,), (4,)],
    ),
    "batch_norm": (lambda x, g, b: mx.np.sin(_batch_norm(x, g, b, False)), [(3, 4, 5), (4,), (4,)]),
    "batch_norm global stats": (
        lambda x, g, b: mx.np.sin(_batch_norm(x, g, b, True)),
        [(3, 4, 5), (4,), (4,)],
    ),
    "leaky_relu prelu": (
        lambda x, g: mx.np.sin(mx.npx.leaky_relu(x, g, act_type="prelu")) * x,
        [(3, 4, 2), (4,)],
    ),
    "ReflectionPad2D": (
        lambda x: mx.np.sin(mx.gluon.nn.ReflectionPad2D(1)(x)) ** 2,
        [(1, 2, 3, 3)],
    ),
}
for _act in ("relu", "sigmoid", "log_sigmoid", "mish", "tanh", "softrelu", "softsign"):
    _NPX[f"activation {_act}"] = (
        lambda x, a=_act: mx.npx.activation(x, act_type=a) * mx.np.sin(x),
        [(3, 4)],
    )
for _act in ("leaky", "elu", "selu"):
    _NPX[f"leaky_relu {_act}"] = (
        lambda x, a=_act: mx.npx.leaky_relu(x, act_type=a) * mx.np.sin(x),
        [(3, 4)],
    )
_NPX["relu"] = (lambda x: mx.npx.relu(x) ** 2 * x, [(3, 4)])
_NPX["sigmoid"] = (lambda x: mx.npx.sigmoid(x) * x, [(3, 4)])


def _seeded_dropout(x):
    mx.random.seed(11)  # the same mask on every call of the check
    return mx.npx.dropout(x, p=0.3, mode="always")


def _batch_norm(x, g, b, global_stats):
    c = x.shape[1]
    mean = mx.np.array(numpy.linspace(-0.5, 0.5, c), dtype="float64", device=x.device)
    var = mx.np.array(numpy.linspace(0.5, 2.0, c), dtype="float64", device=x.device)
    return mx.npx.batch_norm(x, g, b, mean, var, fix_gamma=False, use_global_stats=global_stats)


@pytest.mark.parametrize("name", sorted(_NPX))
def test_npx_second_derivatives(device, name):
    fn, shapes = _NPX[name]
    if isinstance(shapes, str):  # "distinct (shape)"
        arrays = [_distinct(*eval(shapes.split(" ", 1)[1]))]
    else:
        arrays = [_rng.standard_normal(s) for s in shapes]
    check_second_order(fn, arrays, device)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_rnn_second_derivatives(device, mode):
    """npx.rnn is composed of recorded ops: its second derivatives come for free."""
    size = param_size(mode, 1, 2, 3, False)
    arrays = [
        _rng.standard_normal((4, 2, 2)),
        0.5 * _rng.standard_normal(size),
        _rng.standard_normal((1, 2, 3)),
    ]
    if mode == "lstm":
        arrays.append(_rng.standard_normal((1, 2, 3)))

    def fn(x, p, h, *c):
        return mx.np.sin(mx.npx.rnn(x, p, h, *c, mode=mode, state_size=3, num_layers=1))

    check_second_order(fn, arrays, device)


@pytest.mark.parametrize(
    "name, call",
    [
        ("topk", lambda x: mx.npx.topk(x, k=2, ret_typ="value")),
        ("leaky_relu(act_type='gelu')", lambda x: mx.npx.leaky_relu(x, act_type="gelu")),
        ("the autograd.Function _Cube", lambda x: _Cube()(x)),
    ],
)
def test_ops_without_recorded_backward_refuse_by_name(device, name, call):
    x = _leaf(_rng.standard_normal((2, 3)), device)
    with mx.autograd.record():
        y = (call(x) ** 2).sum()
        (gx,) = mx.autograd.grad(y, [x], create_graph=True)
        z = (gx * gx).sum()
    with pytest.raises(
        NotImplementedError, match=f"higher-order gradient through {re.escape(name)}"
    ):
        z.backward()
    # the first-order values are right all the same
    with mx.autograd.record():
        y2 = (call(x) ** 2).sum()
    y2.backward()
    assert_matches(gx, x.grad.asnumpy(), rtol=1e-12)


class _Cube(mx.autograd.Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x * x

    def backward(self, dy):
        (x,) = self.saved_tensors
        return 3 * x * x * dy


# ------------------------------------------------------------------ ndarray methods
_METHODS = {
    "getitem int": lambda x: mx.np.sin(x[1]) * x[2],
    "getitem slice": lambda x: mx.np.sin(x[1:3, ::2]) ** 2,
    "getitem int array": lambda x: (
        mx.np.sin(x[mx.np.array([0, 2, 0], dtype="int64", device=x.device)]) ** 2
    ),
    "getitem bool mask": lambda x: mx.np.sin(x[x.detach() > 0]) ** 2,
    "reshape": lambda x: mx.np.sin(x.reshape(2, -1)) * x.reshape(-1)[::-1].reshape(2, 6),
    "transpose": lambda x: mx.np.sin(x.T) @ x,
    "flatten copy astype": lambda x: mx.np.sin(x.flatten().copy().astype("float64")) ** 2,
    "setitem": lambda x: _assigned(x),
    "in-place add": lambda x: _added(x),
}


def _assigned(x):
    y = x * 1.0
    y[1] = mx.np.sin(x[0]) * 2
    return mx.np.sin(y) * x


def _added(x):
    y = x * 1.0
    y += mx.np.sin(x) * x
    return y**2


@pytest.mark.parametrize("name", sorted(_METHODS))
def test_ndarray_method_second_derivatives(device, name):
    check_second_order(_METHODS[name], [_rng.standard_normal((3, 4))], device)


def test_to_device_second_derivative(devices):
    src, dst = devices

    def fn(x):
        return mx.np.sin(x.to_device(dst)).to_device(src) * x

    check_second_order(fn, [_rng.standard_normal((3, 2))], src)


# ------------------------------------------------------------------ semantics
def test_graph_is_kept_and_gradients_are_recorded(device):
    x = _leaf([0.5, 2.0], device)
    with mx.autograd.record():
        y = (mx.np.sin(x) * x).sum()
        g1 = mx.autograd.grad(y, x, create_graph=True)
        # retain_graph defaults to create_graph, and the graph stays even when told
        # otherwise: the recorded gradient reads it
        g2 = mx.autograd.grad(y, x, create_graph=True, retain_graph=False)
        z = (g1 * g2).sum()
    z.backward(retain_graph=True)
    v = numpy.array([0.5, 2.0])
    d1 = numpy.sin(v) + v * numpy.cos(v)
    d2 = 2 * numpy.cos(v) - v * numpy.sin(v)
    assert_matches(g1, d1, rtol=1e-12, device=device)
    assert_matches(x.grad, 2 * d1 * d2, rtol=1e-12)
    assert y._node is not None  # still differentiable
    assert_matches(mx.autograd.grad(y, x), d1, rtol=1e-12)


def test_head_gradient_and_intermediate_variables_are_differentiated(device):
    xv, vv = numpy.array([0.3, -0.5, 0.8]), numpy.array([0.5, 1.5, -1.0])
    x, v = _leaf(xv, device), _leaf(vv, device)
    with mx.autograd.record():
        h = x * x  # an intermediate variable
        y = mx.np.exp(h) * 2
        gh, gx = mx.autograd.grad(y, [h, x], head_grads=v * 3, create_graph=True)
        loss = (gh * gx).sum()
    loss.backward()
    e = numpy.exp(2 * xv * xv)  # loss = sum(72 v^2 x e^(2 x^2))
    assert_matches(gh, 6 * vv * numpy.exp(xv * xv), rtol=1e-12, device=device)
    assert_matches(x.grad, 72 * vv**2 * e * (1 + 4 * xv**2), rtol=1e-12)
    assert_matches(v.grad, 144 * vv * xv * e, rtol=1e-12)


def test_heads_listed_twice_and_unreached_variables(device):
    x, w = _leaf([1.0, 2.0], device), _leaf([3.0, 4.0], device)
    with mx.autograd.record():
        y = (x**3).sum()
        gx, gw = mx.autograd.grad([y, y], [x, w], create_graph=True)
        (gx.sum() + gw.sum()).backward()
    assert_matches(gx, 2 * 3 * numpy.array([1.0, 4.0]), rtol=1e-12)
    assert_matches(gw, numpy.zeros(2))
    assert_matches(x.grad, 2 * 6 * numpy.array([1.0, 2.0]), rtol=1e-12, device=device)


def test_bad_input_with_create_graph_changes_nothing(device):
    x = _leaf([1.0, 2.0], device)
    with mx.autograd.record():
        y = (x**3).sum()
        with pytest.raises(ValueError, match="head gradient has shape"):
            mx.autograd.grad(
                y, x, head_grads=mx.np.ones(3, dtype="float64", device=device), create_graph=True
            )
        with pytest.raises(ValueError, match="variables\\[0\\]"):
            mx.autograd.grad(y, [mx.np.ones(2, device=device)], create_graph=True)
    assert y._node is not None
    y.backward()
    assert_matches(x.grad, numpy.array([3.0, 12.0]), rtol=1e-12)


# ------------------------------------------------------------------ gradient penalty
def _critic(kind, device):
    nn = mx.gluon.nn
    net = nn.HybridSequential()
    if kind == "dense":
        net.add(nn.Dense(6, activation="tanh"), nn.Dense(5, activation="sigmoid"), nn.Dense(1))
    else:
        net.add(
            nn.Conv2D(3, 3, padding=1, activation="tanh"),
            nn.AvgPool2D(2),
            nn.Conv2D(2, 2),
            nn.LeakyReLU(0.2),
            nn.Dense(1),
        )
    net.initialize(mx.init.Xavier(magnitude=2.0), device=device)
    net.cast("float64")
    return net


def _penalty(net, x):
    """WGAN-GP's term: (||d critic / d x|| - 1)^2 averaged over the batch."""
    with mx.autograd.record():
        out = net(x)
        (g,) = mx.autograd.grad(out, [x], create_graph=True)
        norm = mx.np.sqrt((g.reshape(g.shape[0], -1) ** 2).sum(axis=1) + 1e-12)
        loss = ((norm - 1) ** 2).mean()
    return loss


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_gradient_penalty_reaches_parameters(device, kind):
    net = _critic(kind, device)
    shape = (4, 7) if kind == "dense" else (3, 1, 6, 6)
    host = _rng.standard_normal(shape)
    x = mx.np.array(host, dtype="float64", device=device)
    x.attach_grad()
    loss = _penalty(net, x)
    loss.backward()
    params = list(net.collect_params().values())
    grads = [p.grad(device).asnumpy() for p in params]
    # every weight gets a gradient (the last bias cannot: d critic / dx does not depend on
    # it)
    assert all(numpy.abs(g).sum() > 0 for p, g in zip(params, grads) if p.name != "bias")
    # against central differences of the penalty along a random direction of all weights
    values = [p.data(device).asnumpy() for p in params]
    dirs = [_rng.standard_normal(v.shape) for v in values]
    eps = 1e-6

    def at(step):
        for p, v, d in zip(params, values, dirs):
            p.set_data(mx.np.array(v + step * d, dtype="float64", device=device))
        x2 = mx.np.array(host, dtype="float64", device=device)
        x2.attach_grad()
        return _penalty(net, x2).item()

    numeric = (at(eps) - at(-eps)) / (2 * eps)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
    assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (analytic, numeric)
