"""mx.autograd's public API: grad, set_recording/set_training, Function, backward with
head_grads and retain_graph, mark_variables with grad_reqs."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from tests.helpers import assert_matches


def _leaf(values, device):
    x = mx.np.array(np.asarray(values, dtype="float64"), dtype="float64", device=device)
    x.attach_grad()
    return x


def test_grad_returns_gradients_and_writes_no_buffer(device):
    x, w = _leaf([1.0, 2.0], device), _leaf([3.0, -1.0], device)
    with mx.autograd.record():
        y = (x * x * w).sum()
    gx, gw = mx.autograd.grad(y, [x, w], retain_graph=True)
    assert_matches(gx, np.array([6.0, -4.0]), device=device)
    assert_matches(gw, np.array([1.0, 4.0]))
    assert not x.grad.asnumpy().any() and not w.grad.asnumpy().any()
    # retained: a second pass with a head gradient, then a plain backward still works
    single = mx.autograd.grad(y, x, head_grads=mx.np.array(2.0, dtype="float64", device=device))
    assert_matches(single, np.array([12.0, -8.0]))
    with mx.autograd.record():
        z = (x * 3).sum()
    y2 = mx.autograd.grad(z, [x, w])
    assert_matches(y2[1], np.zeros(2))  # w does not reach z


def test_grad_errors(device):
    x = _leaf([1.0], device)
    plain = mx.np.ones(1, device=device)
    with mx.autograd.record():
        y = (x * 2).sum()
    with pytest.raises(ValueError, match="variables\\[0\\].*attach_grad"):
        mx.autograd.grad(y, [plain])
    with pytest.raises(ValueError, match="1 heads but 2 head_grads"):
        mx.autograd.grad([y], [x], head_grads=[None, None])
    with pytest.raises(TypeError, match="not an mx.np.ndarray"):
        mx.autograd.grad(y, [np.ones(1)])


def test_set_recording_and_set_training():
    assert mx.autograd.set_recording(True) is False
    try:
        assert mx.autograd.is_recording()
        assert mx.autograd.set_training(True) is False
        assert mx.autograd.is_training()
    finally:
        assert mx.autograd.set_recording(False) is True
        assert mx.autograd.set_training(False) is True
    assert not mx.autograd.is_recording() and not mx.autograd.is_training()


class Sigmoid(mx.autograd.Function):
    def forward(self, x):
        y = 1 / (1 + mx.np.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        (y,) = self.saved_tensors
        return dy * y * (1 - y)


class SplitScale(mx.autograd.Function):
    """Two outputs, two inputs: (a * b, a + b)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b, a + b

    def backward(self, d_prod, d_sum):
        a, b = self.saved_tensors
        return d_prod * b + d_sum, d_prod * a + d_sum


def test_function_custom_backward(device):
    values = np.array([-1.0, 0.5, 2.0])
    x = _leaf(values, device)
    with mx.autograd.record():
        y = Sigmoid()(x)
    y.backward(mx.np.array([1.0, 2.0, 3.0], dtype="float64", device=device))
    s = 1 / (1 + np.exp(-values))
    assert_matches(y, s, device=device)
    assert_matches(x.grad, np.array([1.0, 2.0, 3.0]) * s * (1 - s))
    a, b = _leaf([2.0], device), _leaf([5.0], device)
    with mx.autograd.record():
        prod, total = SplitScale()(a, b)
        loss = (prod * 3 + total).sum()
    loss.backward()
    assert_matches(a.grad, np.array([3 * 5.0 + 1]))
    assert_matches(b.grad, np.array([3 * 2.0 + 1]))


def test_function_errors(device):
    class Wrong(mx.autograd.Function):
        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return dy, dy

    f = Wrong()
    x = _leaf([1.0], device)
    with mx.autograd.record():
        y = f(x)
    with pytest.raises(ValueError, match="returned 2 gradients for 1 inputs"):
        y.backward()
    with pytest.raises(RuntimeError, match="called once"):
        f(x)
    with pytest.raises(TypeError, match="inputs\\[0\\]"):
        Sigmoid()(np.ones(1))


def test_backward_head_grads_and_retain_graph(device):
    x = _leaf([1.0, 2.0], device)
    with mx.autograd.record():
        a, b = x * 2, x * x
    mx.autograd.backward(
        [a, b], [mx.np.ones(2, dtype="float64", device=device), None], retain_graph=True
    )
    assert_matches(x.grad, np.array([2.0 + 2.0, 2.0 + 4.0]))
    mx.autograd.backward([a])  # the graph was retained
    assert_matches(x.grad, np.array([2.0, 2.0]))
    with pytest.raises(RuntimeError, match="not part of a recorded graph"):
        mx.autograd.backward([a])  # freed now


def test_mark_variables_with_grad_reqs(device):
    x = mx.np.array([1.0, 2.0], device=device)
    y = mx.np.array([3.0], device=device)
    gx, gy = mx.np.zeros(2, device=device), mx.np.zeros(1, device=device)
    mx.autograd.mark_variables([x, y], [gx, gy], grad_reqs=["add", "write"])
    for _ in range(2):
        with mx.autograd.record():
            out = (x * 2).sum() + (y * y).sum()
        out.backward()
    assert_matches(gx, np.array([4.0, 4.0], dtype="float32"))
    assert_matches(gy, np.array([6.0], dtype="float32"))
    with pytest.raises(ValueError, match="2 variables, 1 gradients"):
        mx.autograd.mark_variables([x, y], [gx])
    with pytest.raises(ValueError, match="grad_reqs\\[0\\]"):
        mx.autograd.mark_variables([x], [gx], grad_reqs="sum")
    with pytest.raises(ValueError, match="shape"):
        mx.autograd.mark_variables([x], [gy])
    assert x.grad is gx and x._grad_req == "add"  # the failed calls changed nothing
