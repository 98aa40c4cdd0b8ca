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
        import cupyx
        cupyx.scatter_add(target, index, values)


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
    # The hot path of every op: a plain loop, no generator or helper call per input.
    if _recording.get():
        for i in inputs:
            if i._node is not None or i._grad_req != "null":
                out._node = Node(inputs, backward)
                break
    return out


def mark_variables(variables, gradients, grad_reqs="write"):
    """Make ``variables`` leaves whose gradients go into ``gradients`` (MXNet's API)."""
    if not isinstance(grad_reqs, (list, tuple)):
        grad_reqs = [grad_reqs] * len(variables)
    for var, grad, req in zip(variables, gradients, grad_reqs):
        var._attach_grad_buffer(grad, req)


def _topological_order(heads) -> list:
    """Arrays with a recorded node reachable from ``heads``, outputs before inputs.

    Leaves are left out: nothing flows out of them, so ``backward`` collects their
    gradients on the way and deposits them after the walk. Iterative depth-first search (no
    recursion limit on deep graphs); inputs are visited in argument order, so the order,
    and therefore float summation order, is deterministic.
    """
    order, visited = [], set()
    stack = [(h, False) for h in reversed(heads) if h._node is not None]
    pop, push, seen, mark = stack.pop, stack.append, visited.__contains__, visited.add
    while stack:
        x, expanded = pop()
        if expanded:
            order.append(x)
            continue
        key = id(x)
        if seen(key):
            continue
        mark(key)
        push((x, True))
        for inp in reversed(x._node.inputs):
            if inp._node is not None and not seen(id(inp)):
                push((inp, False))
    order.reverse()
    return order


_ndarray_type = None


def _ndarray():
    """The ndarray class (imported on first use: ndarray.py imports this module)."""
    global _ndarray_type
    if _ndarray_type is None:
        from .ndarray import ndarray
        _ndarray_type = ndarray
    return _ndarray_type


def backward(heads, head_grads=None, retain_graph: bool = False) -> None:
    """Compute gradients of ``heads`` and deposit them in the leaves' gradient buffers.

    ``head_grads`` default to ones. Unless ``retain_graph``, the graph is freed afterwards,
    so a second ``backward`` through it is an error.
    """
    if isinstance(heads, _ndarray()):
        heads = [heads]
        head_grads = [head_grads]
    elif head_grads is None:
        head_grads = [None] * len(heads)
    # Gradients of arrays with a node (by id) and of leaves (by id: (leaf, gradient)), in
    # the order they arrive, which is deterministic.
    grads: dict[int, object] = {}
    leaves: dict[int, tuple] = {}
    for h, hg in zip(heads, head_grads):
        if not requires_grad(h):
            raise RuntimeError(
                "backward() was called on an array that is not part of a recorded graph: "
                "compute it inside autograd.record() from arrays with attach_grad() or "
                "from initialized Parameters")
        xp = h._xp
        g = xp.ones(h._data.shape, dtype=h._data.dtype) if hg is None else _raw_grad(hg, h)
        _collect(grads, leaves, h, g)
    # The backward functions are not recorded themselves; one switch around the whole walk
    # (not one per node) keeps a long graph's bookkeeping off the critical path.
    token = _recording.set(False)
    try:
        pop = grads.pop
        for x in _topological_order(heads):
            g = pop(id(x), None)
            if g is None:
                continue
            node = x._node
            for inp, ig in zip(node.inputs, node.backward(g)):
                if ig is not None:
                    _collect(grads, leaves, inp, ig)
            if not retain_graph:
                x._node = None
        for leaf, g in leaves.values():
            leaf._deposit_grad(g)
    finally:
        _recording.reset(token)


def _collect(grads: dict, leaves: dict, x, g) -> None:
    """Add gradient ``g`` of ``x`` to the walk's tables (dropped where no gradient is needed).

    The first gradient of an array is stored as is: no call, no copy."""
    key = id(x)
    if x._node is not None:
        prev = grads.get(key)
        grads[key] = g if prev is None else _accumulate(prev, g, x._xp)
    elif x._grad_req != "null":
        prev = leaves.get(key)
        leaves[key] = (x, g) if prev is None else (x, _accumulate(prev[1], g, x._xp))


def _raw_grad(hg, head):
    if isinstance(hg, _ndarray()):
        if hg.device != head.device:
            raise ValueError(f"head gradient is on {hg.device}, but the head is on "
                             f"{head.device}")
        raw = hg._data
    else:
        raw = head._xp.asarray(hg)
    if raw.shape != head._data.shape:
        raise ValueError(f"head gradient has shape {tuple(raw.shape)}, expected {head.shape}")
    return raw.astype(head._data.dtype, copy=False)
