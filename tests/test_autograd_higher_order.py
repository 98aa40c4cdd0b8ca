"""Higher-order gradients: ``autograd.grad(create_graph=True)`` records the backward pass,
so gradients can be differentiated again (second derivatives, gradient penalties).

Second derivatives are checked against finite differences of first derivatives in float64
(``tests/npx/gradcheck.check_second_order``) on every device; ops whose backward is not
recorded must refuse a second derivative by name instead of giving a wrong one.
"""
from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite.np import _ops
from gluonlite.np import linalg as mx_linalg
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
    "cube": (lambda x: x ** 3, lambda v: 6 * v),
    "x*x*x": (lambda x: x * x * x, lambda v: 6 * v),
    "sin": (mx.np.sin, lambda v: -numpy.sin(v)),
    "exp": (mx.np.exp, numpy.exp),
    "tanh": (mx.np.tanh, lambda v: -2 * numpy.tanh(v) * (1 - numpy.tanh(v) ** 2)),
    "log": (mx.np.log, lambda v: -1 / v ** 2),
    "sigmoid": (mx.npx.sigmoid,
                lambda v: (s := 1 / (1 + numpy.exp(-v))) * (1 - s) * (1 - 2 * s)),
    "sqrt": (mx.np.sqrt, lambda v: -0.25 * v ** -1.5),
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
        y = (x ** 4).sum()
        d1 = mx.autograd.grad(y, x, create_graph=True)
        d2 = mx.autograd.grad(d1.sum(), x, create_graph=True)
        d2.sum().backward()
    assert_matches(d1, 4 * values ** 3, rtol=1e-12)
    assert_matches(d2, 12 * values ** 2, rtol=1e-12)
    assert_matches(x.grad, 24 * values, rtol=1e-12, device=device)


def test_mixed_partials_of_products_and_matmul(device):
    a = _rng.standard_normal((3, 4))
    b = _rng.standard_normal((4, 2))
    check_second_order(lambda x, w: mx.np.sin(x @ w) * (x @ w), [a, b], device)
    check_second_order(lambda x, w: mx.np.dot(x, w).sum(axis=0) ** 2, [a, b], device)
    check_second_order(lambda x, y: (x * y + x / (y * y + 1)).sum(), [a, a.T.copy().T],
                       device)


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
                params.append(pytest.param(module, name, i, row.graph,
                                           id=f"{module}.{name}-{i}"))
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
        return [mx.np.sin(o * o if k in sign_free else o) for k, o in enumerate(outs)
                if o.dtype.kind == "f"]
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
