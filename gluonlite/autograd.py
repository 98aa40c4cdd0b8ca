"""A small autograd tape.

Under ``record()`` every op whose inputs need a gradient attaches a ``Node`` to its output:
the inputs and a function mapping the output's gradient to the inputs' gradients. Each
op's backward sits next to its forward (``ndarray.py``, ``numpy_extension.py``).
``backward()`` sorts the graph iteratively in a deterministic order, walks it once and
deposits gradients at the leaves only, where ``grad_req`` decides: 'write' overwrites, 'add'
accumulates, 'null' skips. ``grad(..., create_graph=True)`` walks the graph with each op's
backward written in recorded ops instead (``Node.graph``), so its gradients can be
differentiated again; the plain walk never touches that form.

>>> import gluonlite as mx
>>> x = mx.np.array([1.0, 2.0, 3.0])
>>> x.attach_grad()
>>> with mx.autograd.record():
...     y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.])
"""

from __future__ import annotations

import contextvars
from types import ModuleType
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy

from . import _backend, _cupy
from ._typing import DTypeLike, RawArray

if TYPE_CHECKING:
    from .ndarray import ndarray as _ndarray_cls

_T = TypeVar("_T", bound="_ndarray_cls")

__all__ = [
    "record",
    "pause",
    "train_mode",
    "predict_mode",
    "is_recording",
    "is_training",
    "backward",
    "mark_variables",
    "Node",
    "grad",
    "set_recording",
    "set_training",
    "Function",
]

_recording: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gluonlite_recording", default=False
)
_numpy_empty = numpy.empty
_training: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gluonlite_training", default=False
)


class _Scope:
    """Sets recording and/or training for a ``with`` block and restores them after.

    A scope may be entered again while entered (nested): each entry pushes its (recording
    token, training token) pair onto ``_saved``, a linked stack of tuples (one tuple per
    entry, no list), and each exit pops one. ``record()`` is entered once per training step,
    so the scope is made without an ``__init__`` call.
    """

    __slots__ = ("_recording", "_training", "_saved")
    _saved: Any  # (recording token, training token, the entry before) or None

    def __init__(self, recording: bool | None, training: bool | None) -> None:
        self._recording, self._training, self._saved = recording, training, None

    def __enter__(self) -> _Scope:
        rec, train = self._recording, self._training
        self._saved = (
            None if rec is None else _recording.set(rec),
            None if train is None else _training.set(train),
            self._saved,
        )
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        rec, train, self._saved = self._saved
        if train is not None:
            _training.reset(train)
        if rec is not None:
            _recording.reset(rec)


_new_scope = object.__new__


def record(train_mode: bool = True) -> _Scope:
    """Record ops for ``backward()`` inside the block (and train mode unless told not to)."""
    scope = _new_scope(_Scope)
    scope._recording, scope._training, scope._saved = True, train_mode, None
    return scope


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

    ``graph`` is the same product written with recorded ops, for ``create_graph=True``:
    ``graph(out, g)`` receives the output array itself and its gradient as ``ndarray``s and
    returns ``ndarray``s (or None), computed while recording, so that they can be
    differentiated again. A string instead names an op whose backward is not written that
    way (see :func:`_graph_backward`); None, the same with the op's name taken from
    ``backward``.
    """

    __slots__ = ("inputs", "backward", "versions", "graph")

    def __init__(
        self,
        inputs: tuple[Any, ...],
        backward: Callable[..., Any],
        graph: Callable[..., Any] | str | None = None,
    ) -> None:
        self.inputs = inputs
        self.backward = backward
        self.graph = graph
        # An in-place change of an input after this op was recorded bumps its _version
        # (ndarray.py); backward() then refuses rather than return a wrong gradient. None
        # stands for "all 0" (inputs never changed in place): no tuple per op then.
        versions = None
        for i in inputs:  # (inputs are mx.np arrays: _version is a class default of 0)
            if i._version:
                versions = tuple([i._version for i in inputs])
                break
        self.versions = versions


class SparseRows:
    """A gradient that is nonzero in a few rows only (from ``embedding(sparse_grad=True)``).

    ``indices`` may hold duplicates; the rows are summed when they are deposited.
    """

    __slots__ = ("indices", "values", "shape")

    def __init__(self, indices: RawArray, values: RawArray, shape: Sequence[int]) -> None:
        self.indices, self.values, self.shape = indices, values, tuple(shape)

    def to_dense(self, xp: ModuleType) -> RawArray:
        out = xp.zeros(self.shape, dtype=self.values.dtype)
        _scatter_add(xp, out, self.indices, self.values)
        return out


def _scatter_add(xp: ModuleType, target: RawArray, index: RawArray, values: RawArray) -> None:
    """``target[index] += values`` with repeated indices summed (NumPy and CuPy)."""
    if xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:
        _cupy.cupyx().scatter_add(target, index, values)


def _accumulate(a: Any, b: Any, xp: ModuleType) -> Any:
    """Sum two gradients, keeping the row-sparse form when both are sparse."""
    if a is None:
        return b
    if isinstance(a, SparseRows) and isinstance(b, SparseRows):
        return SparseRows(
            xp.concatenate([a.indices, b.indices]), xp.concatenate([a.values, b.values]), a.shape
        )
    if isinstance(a, SparseRows):
        a, b = b, a
    if isinstance(b, SparseRows):
        out = a.copy()
        _scatter_add(xp, out, b.indices, b.values)
        return out
    return a + b


def requires_grad(x: Any) -> bool:
    return x._node is not None or x._grad_req != "null"


def record_op(
    out: _T,
    inputs: tuple[Any, ...],
    backward: Callable[..., Any],
    graph: Callable[..., Any] | str | None = None,
) -> _T:
    """Attach a node to ``out`` when recording and some input needs a gradient
    (``graph``: see ``Node``)."""
    # The hot path of every op: a plain loop, no generator or helper call per input.
    if _recording.get():
        for i in inputs:
            if i._node is not None or i._grad_req != "null":
                out._node = Node(inputs, backward, graph)
                break
    return out


def mark_variables(
    variables: Any, gradients: Any, grad_reqs: str | list[str] | tuple[str, ...] = "write"
) -> None:
    """Make ``variables`` leaves whose gradients go into ``gradients`` (MXNet's API).

    Args:
        variables: an array or a list of them.
        gradients: the gradient buffer for each (same shapes).
        grad_reqs: ``'write'``, ``'add'`` or ``'null'``, or one per variable.

    Raises:
        ValueError: the lists differ in length, or a buffer's shape differs from its
            variable's; nothing is marked then.
    """
    ndarray = _ndarray()

    if isinstance(variables, ndarray):
        variables, gradients = [variables], [gradients]
    variables, gradients = list(variables), list(gradients)
    if not isinstance(grad_reqs, (list, tuple)):
        grad_reqs = [grad_reqs] * len(variables)
    if not len(variables) == len(gradients) == len(grad_reqs):
        raise ValueError(
            f"mark_variables: got {len(variables)} variables, "
            f"{len(gradients)} gradients and {len(grad_reqs)} grad_reqs"
        )
    _require_arrays("mark_variables", "variables", variables)
    for i, (var, g, req) in enumerate(zip(variables, gradients, grad_reqs)):
        if req not in ("write", "add", "null"):
            raise ValueError(
                f"mark_variables: grad_reqs[{i}] must be 'write', 'add' or 'null', got {req!r}"
            )
        if g is not None and tuple(g.shape) != var.shape:
            raise ValueError(
                f"mark_variables: gradients[{i}] has shape {tuple(g.shape)}, "
                f"variable {i} has shape {var.shape}"
            )
    for var, g, req in zip(variables, gradients, grad_reqs):
        var._attach_grad_buffer(g, req)


def _topological_order(heads: Any) -> list[Any]:
    """Arrays with a recorded node reachable from ``heads``, outputs before inputs.

    Leaves are left out: nothing flows out of them, so ``backward`` collects their
    gradients on the way and deposits them after the walk. Iterative depth-first search (no
    recursion limit on deep graphs); inputs are visited in argument order, so the order,
    and therefore float summation order, is deterministic.
    """
    if len(heads) == 1 and heads[0]._node is not None:
        # One op on leaves (the head's inputs have no node): nothing to sort.
        for inp in heads[0]._node.inputs:
            if inp._node is not None:
                break
        else:
            return [heads[0]]
    order: list[Any] = []
    visited: set[int] = set()
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


_ndarray_type: type[_ndarray_cls] | None = None


def register_ndarray(cls: type[_ndarray_cls]) -> None:
    """Tell the tape which class is ``mx.np.ndarray``: ``ndarray.py`` calls this once,
    right after defining the class. The tape sits below the array class (``ndarray.py``
    imports this module), so it learns the class by registration instead of importing it."""
    global _ndarray_type
    _ndarray_type = cls


def _ndarray() -> type[_ndarray_cls]:
    """The ndarray class registered by ``ndarray.py`` (always done by ``import gluonlite``)."""
    if _ndarray_type is None:
        raise RuntimeError(
            "gluonlite.autograd: the ndarray class is not registered; import gluonlite "
            "(gluonlite.ndarray registers it) before using the tape"
        )
    return _ndarray_type


def backward(heads: Any, head_grads: Any = None, retain_graph: bool = False) -> None:
    """Compute gradients of ``heads`` and deposit them in the leaves' gradient buffers.

    ``head_grads`` default to ones. Unless ``retain_graph``, the graph is freed afterwards,
    so a second ``backward`` through it is an error.
    """
    if isinstance(heads, _ndarray_type or _ndarray()):
        node = heads._node
        if head_grads is None and node is not None:
            for inp in node.inputs:
                if inp._node is not None:
                    break
            else:
                return _backward_one_op(heads, node, retain_graph)
        heads = [heads]
        head_grads = [head_grads]
    elif head_grads is None:
        head_grads = [None] * len(heads)
    # Gradients of arrays with a node (by id) and of leaves (by id: (leaf, gradient)), in
    # the order they arrive, which is deterministic.
    grads: dict[int, object] = {}
    leaves: dict[int, tuple[Any, Any]] = {}
    for h, hg in zip(heads, head_grads):
        if not requires_grad(h):
            raise RuntimeError(
                "backward() was called on an array that is not part of a recorded graph: "
                "compute it inside autograd.record() from arrays with attach_grad() or "
                "from initialized Parameters"
            )
        with _backend.on(h._device):  # a GPU head's seed lands on its own GPU
            g = h._xp.ones(h._data.shape, dtype=h._data.dtype) if hg is None else _raw_grad(hg, h)
        _collect(grads, leaves, h, g)
    # The backward functions are not recorded themselves; one switch around the whole walk
    # (not one per node) keeps a long graph's bookkeeping off the critical path, and none
    # when backward() is called outside record(), as usual.
    token = _recording.set(False) if _recording.get() else None
    try:
        pop = grads.pop
        order = _topological_order(heads)
        for x in order:
            g = pop(id(x), None)
            if g is None:
                continue
            node = x._node
            _check_versions(node)
            # With the node's GPU current, its gradients are computed, summed and land there.
            if x._device.device_type == "cpu":
                for inp, ig in zip(node.inputs, node.backward(g)):
                    if ig is not None:
                        _collect(grads, leaves, inp, ig)
            else:
                with _backend.on(x._device):
                    for inp, ig in zip(node.inputs, node.backward(g)):
                        if ig is not None:
                            _collect(grads, leaves, inp, ig)
        # Freed once the walk is through: a backward that raised leaves the graph intact.
        if not retain_graph:
            for x in order:
                x._node = None
        for leaf, g in leaves.values():
            if leaf._device.device_type == "cpu":
                leaf._deposit_grad(g)
            else:
                with _backend.on(leaf._device):
                    leaf._deposit_grad(g)
    finally:
        if token is not None:
            _recording.reset(token)


def _backward_one_op(head: Any, node: Node, retain_graph: bool) -> None:
    """``backward`` of an array computed by one recorded op from leaves (``y = f(x, w)``;
    a Dense layer's loss-free step): no graph to sort, gradients straight to the leaves."""
    inputs = node.inputs
    if node.versions is not None:
        _check_versions(node)
    else:
        for inp in inputs:
            if inp._version:
                _check_versions(node)
                break
    token = _recording.set(False) if _recording.get() else None
    try:
        raw = head._data
        # The op's inputs share the head's device: the seed, the gradients and their
        # deposits all happen with it current.
        if head._device.device_type == "cpu":
            g = _numpy_empty(raw.shape, raw.dtype)  # two C calls; numpy.ones is Python
            g.fill(1)
            _deposit_all(inputs, node.backward(g))
        else:
            with _backend.on(head._device):
                _deposit_all(
                    inputs, node.backward(_backend.cupy().ones(raw.shape, dtype=raw.dtype))
                )
        if not retain_graph:
            head._node = None
    finally:
        if token is not None:
            _recording.reset(token)


def _deposit_all(inputs: tuple[Any, ...], grads: Any) -> None:
    """Deposit one op's input gradients in its leaves (a leaf read twice: summed first)."""
    n = len(inputs)
    if (
        n == 1
        or (n == 2 and inputs[0] is not inputs[1])
        or (
            n == 3
            and inputs[0] is not inputs[1]
            and inputs[0] is not inputs[2]
            and inputs[1] is not inputs[2]
        )
        or (n > 3 and len(set(map(id, inputs))) == n)
    ):
        for inp, ig in zip(inputs, grads):
            if ig is not None:
                inp._deposit_grad(ig)
    else:  # a leaf read twice (x * x): its gradients add up first
        leaves: dict[int, tuple[Any, Any]] = {}
        for inp, ig in zip(inputs, grads):
            if ig is not None:
                _collect({}, leaves, inp, ig)
        for leaf, lg in leaves.values():
            leaf._deposit_grad(lg)


def _collect(
    grads: dict[int, Any], leaves: dict[int, tuple[Any, Any]], x: Any, g: RawArray
) -> None:
    """Add gradient ``g`` of ``x`` to the walk's tables (dropped where no gradient is needed).

    The first gradient of an array is stored as is: no call, no copy."""
    key = id(x)
    if x._node is not None:
        prev = grads.get(key)
        if prev is None:
            grads[key] = g
        else:
            with _backend.on(x._device):  # x's own GPU (the walk has the consumer's)
                grads[key] = _accumulate(prev, g, x._xp)
    elif x._grad_req != "null":
        prev = leaves.get(key)
        if prev is None:
            leaves[key] = (x, g)
        else:
            with _backend.on(x._device):
                leaves[key] = (x, _accumulate(prev[1], g, x._xp))


def _check_versions(node: Node) -> None:
    versions = node.versions
    if versions is None:
        for inp in node.inputs:
            if inp._version:
                break
        else:
            return
        versions = (0,) * len(node.inputs)
    for inp, version in zip(node.inputs, versions):
        if inp._version != version:
            raise RuntimeError(
                f"backward: an array of shape {inp.shape} that a recorded op read was "
                "changed in place afterwards (x += ..., x[...] = ...), so its gradient "
                "would be wrong; compute a new array instead (y = x + ...)"
            )


def _raw_grad(hg: Any, head: Any) -> RawArray:
    if isinstance(hg, _ndarray()):
        if hg.device != head.device:
            raise ValueError(f"head gradient is on {hg.device}, but the head is on {head.device}")
        raw = hg._data
    else:
        raw = head._xp.asarray(hg)
    if raw.shape != head._data.shape:
        raise ValueError(f"head gradient has shape {tuple(raw.shape)}, expected {head.shape}")
    return raw.astype(head._data.dtype, copy=False)


def set_recording(is_recording: bool) -> bool:  # noqa: F811 - MXNet's name
    """Turn recording on or off outside a ``with`` block; returns the previous state."""
    previous = _recording.get()
    _recording.set(bool(is_recording))
    return previous


def set_training(train_mode: bool) -> bool:  # noqa: F811 - MXNet's name
    """Turn train mode on or off outside a ``with`` block; returns the previous state."""
    previous = _training.get()
    _training.set(bool(train_mode))
    return previous


def grad(
    heads: Any,
    variables: Any,
    head_grads: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    train_mode: bool = True,
) -> Any:
    """Gradients of ``heads`` with respect to ``variables``, returned as new arrays.

    Unlike ``backward()``, no gradient buffer is written (neither the variables' nor any
    other leaf's). ``variables`` must need a gradient (``attach_grad()``, an initialized
    Parameter's replica, or an array computed from one while recording).

    With ``create_graph=True`` the gradient computation is itself recorded: the returned
    gradients are part of the graph, so a function of them can be differentiated again
    (``backward()`` or another ``grad``), for higher-order derivatives or a gradient
    penalty. Every op's backward is recorded through differentiable ops, except the few
    listed in the docs (coming from MXNet); differentiating a gradient through one of
    those raises ``NotImplementedError`` naming the op.

    Args:
        heads: an array or a list of them.
        variables: an array or a list; a list gives a list back.
        head_grads: the gradient of each head (default: ones).
        retain_graph: keep the graph for another backward pass (default: ``create_graph``).
            With ``create_graph`` the graph is always kept: the recorded gradients read it.
        create_graph: record the gradient computation for higher-order gradients.
        train_mode: with ``create_graph``, whether the recorded gradient computation runs
            in train mode (as MXNet); otherwise accepted for compatibility.

    Example:
        >>> import gluonlite as mx
        >>> x = mx.np.array([1.0, 2.0])
        >>> x.attach_grad()
        >>> with mx.autograd.record():
        ...     y = (x * x * x).sum()
        >>> mx.autograd.grad(y, x)
        array([ 3., 12.])
        >>> x.grad
        array([0., 0.])

        The second derivative, through the recorded first one:

        >>> with mx.autograd.record():
        ...     y = (x * x * x).sum()
        ...     dy = mx.autograd.grad(y, x, create_graph=True)
        ...     dy.sum().backward()
        >>> x.grad
        array([ 6., 12.])
    """
    ndarray = _ndarray()

    single = isinstance(variables, ndarray)
    variables = [variables] if single else list(variables)
    heads = [heads] if isinstance(heads, ndarray) else list(heads)
    if head_grads is None or isinstance(head_grads, ndarray):
        head_grads = [head_grads] * len(heads) if head_grads is None else [head_grads]
    head_grads = list(head_grads)
    if len(head_grads) != len(heads):
        raise ValueError(f"autograd.grad: got {len(heads)} heads but {len(head_grads)} head_grads")
    _require_arrays("autograd.grad", "variables", variables)
    for i, v in enumerate(variables):
        if not requires_grad(v):
            raise ValueError(
                f"autograd.grad: cannot differentiate with respect to "
                f"variables[{i}]: it does not need a gradient (call "
                f"attach_grad() on it before recording)"
            )
    seeds: dict[int, object] = {}
    for i, (h, hg) in enumerate(zip(heads, head_grads)):
        if not isinstance(h, ndarray) or not requires_grad(h):
            raise ValueError(f"autograd.grad: heads[{i}] is not part of a recorded graph")
        with _backend.on(h._device):  # as in backward(): each GPU's work on that GPU
            if create_graph:
                g = _graph_seed(h, hg)
                prev = seeds.get(id(h))
                seeds[id(h)] = g if prev is None else _recorded_sum(prev, g)
            else:
                g = h._xp.ones(h.shape, dtype=h.dtype) if hg is None else _raw_grad(hg, h)
                seeds[id(h)] = _accumulate(seeds.get(id(h)), g, h._xp)
    if create_graph:
        with _Scope(True, bool(train_mode)):
            found, seeds = _graph_walk(heads, seeds, {id(v) for v in variables})
    else:
        found, seeds = _raw_walk(heads, seeds, {id(v) for v in variables}, bool(retain_graph))
    out = []
    for v in variables:
        # Leaves are not part of the walk (see _topological_order): theirs stay in seeds.
        g = found.get(id(v), seeds.get(id(v)))
        xp = v._xp
        with _backend.on(v._device):
            if g is None:
                out.append(ndarray(xp.zeros(v.shape, dtype=v.dtype), v.device))
            elif create_graph:
                with _Scope(True, None):
                    out.append(g.astype(v.dtype, copy=False))
            else:
                if isinstance(g, SparseRows):
                    g = g.to_dense(xp)
                out.append(ndarray(g.astype(v.dtype, copy=False), v.device))
    return out[0] if single else out


def _raw_walk(
    heads: Any, seeds: dict[int, Any], wanted: set[int], keep: bool
) -> tuple[dict[int, Any], dict[int, Any]]:
    """``grad``'s walk on raw arrays: (gradients of the wanted arrays with a node, the
    gradients left for leaves), both by id."""
    found: dict[int, object] = {}
    order = _topological_order(heads)
    with _Scope(False, None):
        for x in order:
            g = seeds.pop(id(x), None)
            if g is None:
                continue
            if id(x) in wanted:
                found[id(x)] = g
            node = x._node
            with _backend.on(x._device):
                for inp, ig in zip(node.inputs, node.backward(g)):
                    if ig is not None and requires_grad(inp):
                        prev = seeds.get(id(inp))
                        if prev is None:
                            seeds[id(inp)] = ig
                        else:
                            with _backend.on(inp._device):
                                seeds[id(inp)] = _accumulate(prev, ig, inp._xp)
    if not keep:
        for x in order:
            x._node = None
    return found, seeds


def _graph_walk(
    heads: Any, seeds: dict[int, Any], wanted: set[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    """``grad(create_graph=True)``'s walk: as ``_raw_walk`` with ``ndarray`` gradients
    computed while recording (the caller records), so that they join the graph. The graph
    is kept: the recorded gradients read its arrays."""
    found: dict[int, object] = {}
    for x in _topological_order(heads):
        g = seeds.pop(id(x), None)
        if g is None:
            continue
        if id(x) in wanted:
            found[id(x)] = g
        node = x._node
        _check_versions(node)
        with _backend.on(x._device):
            for inp, ig in zip(node.inputs, _graph_backward(x, node, g)):
                if ig is not None and requires_grad(inp):
                    if ig.dtype != inp.dtype:
                        ig = ig.astype(inp.dtype)
                    prev = seeds.get(id(inp))
                    seeds[id(inp)] = ig if prev is None else prev + ig
    return found, seeds


def _recorded_sum(a: Any, b: Any) -> Any:
    """``a + b`` while recording (the seeds of a head listed twice)."""
    with _Scope(True, None):
        return a + b


def _graph_seed(head: Any, hg: Any) -> Any:
    """The head gradient as an ``ndarray`` (ones by default; a given array as is, so a
    recorded head gradient is differentiated too)."""
    ndarray = _ndarray()
    if isinstance(hg, ndarray):
        _raw_grad(hg, head)  # the checks: device and shape
        if hg.dtype != head.dtype:
            with _Scope(True, None):
                return hg.astype(head.dtype)
        return hg
    if hg is None:
        return ndarray(head._xp.ones(head.shape, dtype=head.dtype), head._device)
    return ndarray(_raw_grad(hg, head), head._device)


def _graph_backward(out: Any, node: Node, g: Any) -> tuple[Any, ...]:
    """The gradients of ``node``'s inputs as recorded ``ndarray``s, given ``out``'s
    gradient ``g`` (an ``ndarray``).

    A node whose backward has no recorded form (``Node.graph`` not callable) still gives
    its values, from the raw backward, but each is marked so that differentiating it raises
    ``NotImplementedError`` naming the op: a second derivative is never silently wrong.
    """
    rule = node.graph
    if callable(rule):
        grads_: tuple[Any, ...] = rule(out, g)
        return grads_
    name = rule if isinstance(rule, str) else _op_name(node.backward)
    ndarray = _ndarray()
    with _Scope(False, None):
        raws = node.backward(g._data)
    grads: list[Any] = []
    for inp, raw in zip(node.inputs, raws):
        if raw is None:
            grads.append(None)
            continue
        if isinstance(raw, SparseRows):
            raw = raw.to_dense(inp._xp)
        gi = ndarray(raw, inp._device)
        stop = _not_differentiable(name)
        gi._node = Node((g,) + tuple(node.inputs), stop, stop)
        grads.append(gi)
    return tuple(grads)


def _op_name(backward: Any) -> str:
    """The op a backward function belongs to, from where it was defined
    (``convolution.<locals>.backward`` -> ``convolution``)."""
    qual = getattr(backward, "__qualname__", "") or "an op"
    return qual.split(".<locals>")[0].split(".")[-1]


def _not_differentiable(name: str) -> Callable[..., Any]:
    def stop(*args: Any) -> Any:
        raise NotImplementedError(
            f"higher-order gradient through {name}: its backward is not written with "
            f"differentiable ops, so the gradient that autograd.grad(create_graph=True) "
            f"computed through {name} cannot be differentiated again (first-order "
            f"gradients of {name} work as usual)"
        )

    return stop


class Function:
    """A differentiable operation with a hand-written backward, as MXNet's
    ``autograd.Function``: subclass it, implement ``forward(*inputs)`` and
    ``backward(*output_grads)`` on ``mx.np`` arrays, then call an instance.

    ``forward`` runs without recording; ``save_for_backward(*arrays)`` keeps what
    ``backward`` needs (``self.saved_tensors``). ``backward`` returns one gradient per
    input (None for an input that needs none). Make a new instance per call.

    Example:
        >>> import gluonlite as mx
        >>> class Square(mx.autograd.Function):
        ...     def forward(self, x):
        ...         self.save_for_backward(x)
        ...         return x * x
        ...     def backward(self, dy):
        ...         x, = self.saved_tensors
        ...         return 2 * x * dy
        >>> x = mx.np.array([3.0])
        >>> x.attach_grad()
        >>> with mx.autograd.record():
        ...     y = Square()(x)
        >>> y.backward()
        >>> x.grad
        array([6.])
    """

    def __init__(self) -> None:
        self.saved_tensors = ()
        self._used = False

    def save_for_backward(self, *args: Any) -> None:
        self.saved_tensors = args

    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, *output_grads: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, *inputs: Any) -> Any:
        ndarray = _ndarray()

        if self._used:
            raise RuntimeError(
                f"{type(self).__name__}: each Function instance can be "
                f"called once; make a new one per call"
            )
        _require_arrays(type(self).__name__, "inputs", inputs)
        self._used = True
        with _Scope(False, None):
            outputs = self.forward(*inputs)
        single = isinstance(outputs, ndarray)
        outs = [outputs] if single else list(outputs)
        for i, o in enumerate(outs):
            if not isinstance(o, ndarray):
                raise TypeError(
                    f"{type(self).__name__}.forward: output {i} is a "
                    f"{type(o).__name__}, not an mx.np.ndarray"
                )
        if _recording.get() and any(requires_grad(x) for x in inputs):
            # One node per output; each calls backward with zeros for the other outputs
            # (the gradients from several outputs add up, backward being linear in them).
            for k, o in enumerate(outs):
                if any(o is x for x in inputs):
                    outs[k] = o = ndarray(o._data.copy(), o.device)
                # Not differentiable twice: what forward() saved for backward() was
                # computed without recording, so a recorded backward() would miss its
                # dependence on the inputs.
                o._node = Node(
                    tuple(inputs),
                    self._backward_for(k, outs, inputs),
                    f"the autograd.Function {type(self).__name__}",
                )
        return outs[0] if single else tuple(outs)

    def _backward_for(
        self, k: int, outs: list[Any], inputs: tuple[Any, ...]
    ) -> Callable[[RawArray], Any]:
        ndarray = _ndarray()

        shapes = [(o.shape, o.dtype, o.device) for o in outs]
        name = type(self).__name__

        def backward(g: RawArray) -> Any:
            xp: Any = inputs[0]._xp if inputs else None
            if isinstance(g, SparseRows):
                g = g.to_dense(xp)
            grads = []
            for j, (shape, dtype, device) in enumerate(shapes):
                raw = g if j == k else _zeros_like_raw(xp, shape, dtype)
                grads.append(ndarray(raw, device))
            result = self.backward(*grads)
            result = [result] if isinstance(result, ndarray) or result is None else list(result)
            if len(result) != len(inputs):
                raise ValueError(
                    f"{name}.backward returned {len(result)} gradients for {len(inputs)} inputs"
                )
            raw = []
            for i, (r, x) in enumerate(zip(result, inputs)):
                if r is not None and tuple(r.shape) != x.shape:
                    raise ValueError(
                        f"{name}.backward: gradient {i} has shape "
                        f"{tuple(r.shape)}, input {i} has shape {x.shape}"
                    )
                raw.append(None if r is None else r._data)
            return raw

        return backward


def _require_arrays(where: str, what: str, items: Iterable[Any]) -> None:
    """TypeError naming the first item of ``items`` that is not an ``mx.np.ndarray``."""
    ndarray = _ndarray()

    for i, x in enumerate(items):
        if not isinstance(x, ndarray):
            raise TypeError(f"{where}: {what}[{i}] is a {type(x).__name__}, not an mx.np.ndarray")


def _zeros_like_raw(xp: ModuleType, shape: tuple[int, ...], dtype: DTypeLike) -> RawArray:
    return xp.zeros(shape, dtype=dtype)
