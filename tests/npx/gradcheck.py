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


def check_gradients(fn, arrays, device, *, directions=2, eps=1e-6, rtol=1e-6, atol=1e-9,
                    seed=0, train=True):
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
            assert abs(analytic - numeric) <= atol + rtol * max(abs(numeric), 1.0) * 10, \
                f"input {i}: analytic {analytic} vs numeric {numeric}"
    return grads
