"""A small autograd tape.

Under ``record()`` every op whose inputs need a gradient attaches a ``Node`` to its output:
the inputs and a function mapping the output's gradient to the inputs' gradients. Each
op's backward sits next to its forward (``ndarray.py``, ``numpy_extension.py``).
``backward()`` sorts the graph iteratively in a deterministic order, walks it once and
deposits gradients at the leaves only, where ``grad_req`` decides: 'write' overwrites, 'add'
accumulates, 'null' skips.

>>> import gluonlite as mx
>>> x = mx.np.array([1.0, 2.0, 3.0])
>>> x.attach_grad()
>>> with mx.autograd.record():
...     y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.], device=cpu(0))
"""
from __future__ import annotations

import contextvars
from typing import Callable

from . import _cupy

__all__ = ["record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
           "backward", "mark_variables", "Node"]

_recording = contextvars.ContextVar("gluonlite_recording", default=False)
_training = contextvars.ContextVar("gluonlite_training", default=False)


class _Scope:
    """Sets recording and/or training for a ``with`` block and restores them after."""

    def __init__(self, recording, training):
        self._recording, self._training = recording, training
        self._tokens = []

    def __enter__(self):
        tokens = []
        if self._recording is not None:
            tokens.append((_recording, _recording.set(self._recording)))
        if self._training is not None:
            tokens.append((_training, _training.set(self._training)))
        self._tokens.append(tokens)
        return self

    def __exit__(self, *exc):
        for var, token in reversed(self._tokens.pop()):
            var.reset(token)


def record(train_mode: bool = True) -> _Scope:
    """Record ops for ``backward()`` inside the block (and train mode unless told not to)."""
    return _Scope(True, train_mode)


def pause(train_mode: bool = False) -> _Scope:
    """Stop recording inside the block (predict mode unless told otherwise)."""
    return _Scope(False, train_mode)


def train_mode() -> _Scope:
    """Train-mode behaviour (e.g. dropout active) inside the block; recording unchanged."""
    return _Scope(None, True)


def predict_mode() -> _Scope:
    """Predict-mode behaviour inside the block; recording unchanged."""
    return _Scope(None, False)


def is_recording() -> bool:
    return _recording.get()


def is_training() -> bool:
    return _training.get()


class Node:
    """How an array was computed: its inputs and the vector-Jacobian product.

    ``backward(g)`` receives the output's gradient (a raw NumPy/CuPy array or a
    ``SparseRows``) and returns one gradient (or None) per input.
    """

    __slots__ = ("inputs", "backward")

    def __init__(self, inputs: tuple, backward: Callable):
        self.inputs = inputs
        self.backward = backward


class SparseRows:
    """A gradient that is nonzero in a few rows only (from ``embedding(sparse_grad=True)``).

    ``indices`` may hold duplicates; the rows are summed when they are deposited.
    """

    __slots__ = ("indices", "values", "shape")

    def __init__(self, indices, values, shape):
        self.indices, self.values, self.shape = indices, values, tuple(shape)

    def to_dense(self, xp):
        out = xp.zeros(self.shape, dtype=self.values.dtype)
        _scatter_add(xp, out, self.indices, self.values)
        return out


def _scatter_add(xp, target, index, values):
    """``target[index] += values`` with repeated indices summed (NumPy and CuPy)."""
    if xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:
        _cupy.cupyx().scatter_add(target, index, values)


def _accumulate(a, b, xp):
    """Sum two gradients, keeping the row-sparse form when both are sparse."""
    if a is None:
        return b
    if isinstance(a, SparseRows) and isinstance(b, SparseRows):
        return SparseRows(xp.concatenate([a.indices, b.indices]),
                          xp.concatenate([a.values, b.values]), a.shape)
    if isinstance(a, SparseRows):
        a, b = b, a
    if isinstance(b, SparseRows):
        out = a.copy()
        _scatter_add(xp, out, b.indices, b.values)
        return out
    return a + b


def requires_grad(x) -> bool:
    return x._node is not None or x._grad_req != "null"


def record_op(out, inputs: tuple, backward: Callable):
    """Attach a node to ``out`` when recording and some input needs a gradient."""
    if _recording.get() and any(requires_grad(i) for i in inputs):
        out._node = Node(inputs, backward)
    return out


def mark_variables(variables, gradients, grad_reqs="write"):
    """Make ``variables`` leaves whose gradients go into ``gradients`` (MXNet's API)."""
    if not isinstance(grad_reqs, (list, tuple)):
        grad_reqs = [grad_reqs] * len(variables)
    for var, grad, req in zip(variables, gradients, grad_reqs):
        var._attach_grad_buffer(grad, req)


def _topological_order(heads) -> list:
    """Arrays reachable from ``heads`` through recorded nodes, outputs before inputs.

    Iterative depth-first search (no recursion limit on deep graphs); inputs are visited in
    argument order, so the order, and therefore float summation order, is deterministic.
    """
    order, visited = [], set()
    stack = [(h, False) for h in reversed(heads)]
    while stack:
        x, expanded = stack.pop()
        if expanded:
            order.append(x)
            continue
        if id(x) in visited:
            continue
        visited.add(id(x))
        stack.append((x, True))
        if x._node is not None:
            for inp in reversed(x._node.inputs):
                if id(inp) not in visited and requires_grad(inp):
                    stack.append((inp, False))
    order.reverse()
    return order


def backward(heads, head_grads=None, retain_graph: bool = False) -> None:
    """Compute gradients of ``heads`` and deposit them in the leaves' gradient buffers.

    ``head_grads`` default to ones. Unless ``retain_graph``, the graph is freed afterwards,
    so a second ``backward`` through it is an error.
    """
    from .ndarray import ndarray
    if isinstance(heads, ndarray):
        heads = [heads]
        head_grads = [head_grads]
    elif head_grads is None:
        head_grads = [None] * len(heads)
    grads: dict[int, object] = {}
    for h, hg in zip(heads, head_grads):
        if not requires_grad(h):
            raise RuntimeError(
                "backward() was called on an array that is not part of a recorded graph: "
                "compute it inside autograd.record() from arrays with attach_grad() or "
                "from initialized Parameters")
        xp = h._xp
        g = xp.ones(h.shape, dtype=h.dtype) if hg is None else _raw_grad(hg, h)
        grads[id(h)] = _accumulate(grads.get(id(h)), g, xp)
    # The backward functions are not recorded themselves; one scope around the whole walk
    # (not one per node) keeps a long graph's bookkeeping off the critical path.
    with _Scope(False, None):
        for x in _topological_order(heads):
            g = grads.pop(id(x), None)
            if g is None:
                continue
            node = x._node
            if node is None:
                x._deposit_grad(g)
                continue
            input_grads = node.backward(g)
            for inp, ig in zip(node.inputs, input_grads):
                if ig is not None and requires_grad(inp):
                    grads[id(inp)] = _accumulate(grads.get(id(inp)), ig, inp._xp)
            if not retain_graph:
                x._node = None


def _raw_grad(hg, head):
    from .ndarray import ndarray
    if isinstance(hg, ndarray):
        if hg.device != head.device:
            raise ValueError(f"head gradient is on {hg.device}, but the head is on "
                             f"{head.device}")
        raw = hg._data
    else:
        raw = head._xp.asarray(hg)
    if tuple(raw.shape) != head.shape:
        raise ValueError(f"head gradient has shape {tuple(raw.shape)}, expected {head.shape}")
    return raw.astype(head.dtype, copy=False)
