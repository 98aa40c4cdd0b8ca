"""Gradient checks against central finite differences along random directions (float64).

For ``loss = sum(fn(*inputs) * r)`` with a fixed random ``r``, the backward gradient ``g``
of each input must satisfy ``g . v == (loss(x + eps v) - loss(x - eps v)) / (2 eps)`` for
random directions ``v``: two forward calls per direction instead of two per element, so
every option combination of an operator fits in the test budget.
"""

from __future__ import annotations

import numpy

import gluonlite as mx
from gluonlite import autograd


def check_gradients(
    fn, arrays, device, *, directions=2, eps=1e-6, rtol=1e-6, atol=1e-9, seed=0, train=True
):
    """``fn(*ndarrays) -> ndarray``; ``arrays`` float64 NumPy inputs (all differentiated)."""
    rng = numpy.random.default_rng(seed)
    xs = [mx.np.array(a, dtype="float64", device=device) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record(train_mode=train):
        y = fn(*xs)
        r = rng.standard_normal(y.shape)
        total = (y * mx.np.array(r, dtype="float64", device=device)).sum()
    total.backward()
    grads = [x.grad.asnumpy() for x in xs]

    def loss(values):
        args = [mx.np.array(v, dtype="float64", device=device) for v in values]
        with autograd.pause(train_mode=train):
            return float((fn(*args).asnumpy() * r).sum())

    for i, a in enumerate(arrays):
        for _ in range(directions):
            v = rng.standard_normal(a.shape)
            plus = [b + eps * v if j == i else b for j, b in enumerate(arrays)]
            minus = [b - eps * v if j == i else b for j, b in enumerate(arrays)]
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float((grads[i] * v).sum())
            assert abs(analytic - numeric) <= atol + rtol * max(abs(numeric), 1.0) * 10, (
                f"input {i}: analytic {analytic} vs numeric {numeric}"
            )
    return grads


def check_second_order(
    fn, arrays, device, *, directions=2, eps=1e-5, rtol=1e-5, atol=1e-8, seed=0, train=True
):
    """Second derivatives through ``autograd.grad(create_graph=True)`` against central
    finite differences of first derivatives (float64).

    With ``s = sum(fn(*x) * r)`` and its gradient ``G(x)`` (recorded), ``t = sum(G . v)``
    is differentiated once more: its gradient is ``H v``. For random directions ``u``,
    ``u . (H v)`` must equal ``v . (G(x + eps u) - G(x - eps u)) / (2 eps)``, the first
    derivatives coming from plain ``autograd.grad`` (no graph). Returns ``H v`` per input.
    """
    rng = numpy.random.default_rng(seed)
    xs = [mx.np.array(a, dtype="float64", device=device) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record(train_mode=train):
        y = fn(*xs)
    outs = y if isinstance(y, (list, tuple)) else [y]
    weights = [
        mx.np.array(rng.standard_normal(o.shape), dtype="float64", device=device) for o in outs
    ]
    vs = [rng.standard_normal(a.shape) for a in arrays]

    def first(xs_, create_graph):
        with autograd.record(train_mode=train):
            out = fn(*xs_)
            out = out if isinstance(out, (list, tuple)) else [out]
            s = None
            for o, w in zip(out, weights):
                term = (o * w).sum()
                s = term if s is None else s + term
            return autograd.grad(s, list(xs_), create_graph=create_graph)

    with autograd.record(train_mode=train):
        grads = first(xs, True)
        t = None
        for gr, v in zip(grads, vs):
            term = (gr * mx.np.array(v, dtype="float64", device=device)).sum()
            t = term if t is None else t + term
    t.backward()
    hv = [x.grad.asnumpy() for x in xs]

    def g_at(values):
        moved = [mx.np.array(a, dtype="float64", device=device) for a in values]
        for m in moved:
            m.attach_grad()
        return [gr.asnumpy() for gr in first(moved, False)]

    for _ in range(directions):
        us = [rng.standard_normal(a.shape) for a in arrays]
        plus = g_at([a + eps * u for a, u in zip(arrays, us)])
        minus = g_at([a - eps * u for a, u in zip(arrays, us)])
        numeric = sum(float(((p - m) / (2 * eps) * v).sum()) for p, m, v in zip(plus, minus, vs))
        analytic = sum(float((h * u).sum()) for h, u in zip(hv, us))
        assert abs(analytic - numeric) <= atol + rtol * max(abs(numeric), 1.0) * 10, (
            f"analytic {analytic} vs numeric {numeric}"
        )
    return hv
