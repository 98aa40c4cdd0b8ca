"""MXNet's symbol JSON, both ways: ``HybridBlock.export`` writes it, ``SymbolBlock`` runs it.

gluonlite has no symbolic graph of its own. ``export`` therefore traces: it runs the
block once more (``autograd`` paused, predict mode) on zeros shaped like the inputs of its
last hybridized call, while the operators below record each call as a node of MXNet's
graph JSON, with MXNet's operator names and attributes (``FullyConnected``,
``Convolution``, ``BatchNorm``, ...). Parameters become variables named by their
structural names (``0.weight``), the inputs ``data`` (``data0``, ``data1``, ... for
several), and the values go to ``path-%04d.params`` in MXNet's NDArray format with the
``arg:``/``aux:`` prefixes MXNet writes, so that both MXNet's and gluonlite's
``SymbolBlock.imports`` load the pair.

Traced: the operators of ``gluon.nn``'s layers (``npx.fully_connected``, ``activation``,
``relu``, ``sigmoid``, ``leaky_relu``, ``convolution``, ``deconvolution``, ``pooling``,
``batch_norm``, ``layer_norm``, ``instance_norm``, ``group_norm``, ``dropout``,
``embedding``, ``softmax``, ``log_softmax``), ``np.add``/``subtract``/``multiply``/
``divide``/``maximum``/``minimum`` and the ``+ - * / **`` and unary ``-`` operators between
traced arrays and scalars, ``np.tanh``/``exp``/``log``/``sqrt``, ``np.concatenate``,
``ndarray.reshape`` and ``transpose``, ``nn.ReflectionPad2D`` as MXNet's ``Pad``, and
``nn.Lambda``/``HybridLambda`` of one of these functions (``HybridLambda('tanh')``). Anything
else that computes an array the graph needs (indexing, other ``np`` functions, raw NumPy)
raises ``TypeError`` naming the block and, where known, the operator; so do in-place
updates of traced arrays. Only calls made through the module attributes are seen
(``mx.npx.relu(x)``, not a reference to the function taken before the export).

>>> import gluonlite as mx, os, tempfile
>>> net = mx.gluon.nn.HybridSequential()
>>> net.add(mx.gluon.nn.Dense(3, activation='relu'), mx.gluon.nn.Dense(2))
>>> net.initialize()
>>> net.hybridize()
>>> x = mx.np.ones((4, 5))
>>> y = net(x)
>>> prefix = os.path.join(tempfile.mkdtemp(), 'mlp')
>>> net.export(prefix)  # doctest: +ELLIPSIS
('...mlp-symbol.json', '...mlp-0000.params')
>>> back = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
...                                     prefix + '-0000.params')
>>> bool((back(x) == y).all())
True
"""

from __future__ import annotations

import ast
import contextvars
import inspect
import json
import os
import threading

import numpy

from .. import _mxnet_format, autograd, checkpoint, np, npx
from ..ndarray import ndarray
from .block import Block, HybridBlock, _block_paths, register_exporter
from .parameter import Parameter
from collections.abc import Callable, Sequence
from typing import Any
from .._typing import DevicesLike, StrPath

__all__ = ["SymbolBlock"]

# The trace running in this context (None outside ``export``).
_active: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "gluonlite_export_trace", default=None
)
_MXNET_VERSION = 10901  # loadable by MXNet 1.9.1 and 2.x
# Inputs of these operators that MXNet keeps as auxiliary states (saved as ``aux:``).
_AUX_INPUTS = {"BatchNorm": (3, 4)}
# Outputs per node (the visible first one and the hidden statistics / masks).
_NUM_OUTPUTS = {"BatchNorm": 3, "LayerNorm": 3, "InstanceNorm": 3, "GroupNorm": 3, "Dropout": 2}
# mshadow type flags, as MXNet's ``__dtype__`` attribute holds them.
_DTYPE_FLAGS = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
}
_FLAG_DTYPES = {v: k for k, v in _DTYPE_FLAGS.items()}
# One export at a time: the wrappers are installed process-wide (see _Patched).
_export_lock = threading.Lock()


class _Unexportable(Exception):
    """Raised by a converter: this call has no MXNet symbol (the message says why)."""


class _Const:
    """A value a converter adds as an extra variable (e.g. the ones of an unscaled
    InstanceNorm), saved with the parameters."""

    def __init__(self, hint: str, value: numpy.ndarray) -> None:
        self.hint, self.value = hint, value


# --------------------------------------------------------------------- attribute text
def _text(value: Any) -> str:
    """An attribute as MXNet writes it: ``True``, ``(3, 3)``, ``0.5``, ``relu``."""
    if isinstance(value, (bool, numpy.bool_)):
        return "True" if value else "False"
    if isinstance(value, (tuple, list)):
        items = [str(int(v)) for v in value]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(value, (int, numpy.integer)):
        return str(int(value))
    if isinstance(value, (float, numpy.floating)):
        return repr(float(value))
    if isinstance(value, numpy.dtype):
        name: str = value.name
        return name
    return str(value)


def _attrs(**items: Any) -> dict[Any, Any]:
    return {k: _text(v) for k, v in items.items() if v is not None}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, numpy.integer, numpy.floating)) and not isinstance(
        value, (bool, numpy.bool_)
    )


# --------------------------------------------------------------------- converters
# Each takes the call's bound arguments and returns (op, attrs, inputs); inputs are
# arrays (traced, parameters or graph inputs) or _Const values.
def _fc(a: Any) -> Any:
    bias = None if a["no_bias"] else a["bias"]
    return (
        "FullyConnected",
        _attrs(num_hidden=a["weight"].shape[0], no_bias=bias is None, flatten=a["flatten"]),
        [a["x"], a["weight"]] + ([bias] if bias is not None else []),
    )


def _activation(a: Any) -> Any:
    return "Activation", _attrs(act_type=a["act_type"]), [a["data"]]


def _named_activation(act_type: str) -> Callable[..., Any]:
    return lambda a: ("Activation", _attrs(act_type=act_type), [a["x"]])


_LEAKY = {
    "leaky": ("slope",),
    "prelu": (),
    "elu": ("slope",),
    "selu": (),
    "gelu": (),
    "rrelu": ("lower_bound", "upper_bound"),
}


def _leaky(a: Any) -> Any:
    act = a["act_type"]
    if act not in _LEAKY:
        raise _Unexportable(f"leaky_relu(act_type={act!r}) has no MXNet 1.x LeakyReLU act_type")
    attrs = _attrs(act_type=act, **{k: a[k] for k in _LEAKY[act]})
    return "LeakyReLU", attrs, [a["data"]] + ([a["gamma"]] if act == "prelu" else [])


def _conv(op: str) -> Callable[..., Any]:
    def convert(a: Any) -> Any:
        bias = None if a["no_bias"] else a["bias"]
        extra = {}
        if op == "Deconvolution":
            extra = dict(adj=a["adj"], target_shape=a["target_shape"])
        attrs = _attrs(
            kernel=a["kernel"],
            stride=a["stride"],
            dilate=a["dilate"],
            pad=a["pad"],
            num_filter=a["num_filter"],
            num_group=a["num_group"],
            no_bias=bias is None,
            layout=a["layout"],
            **extra,
        )
        return op, attrs, [a["data"], a["weight"]] + ([bias] if bias is not None else [])

    return convert


def _pooling(a: Any) -> Any:
    if a["pool_type"] not in ("max", "avg", "sum"):
        raise _Unexportable(f"pooling(pool_type={a['pool_type']!r})")
    return (
        "Pooling",
        _attrs(
            kernel=a["kernel"],
            stride=a["stride"],
            pad=a["pad"],
            pool_type=a["pool_type"],
            pooling_convention=a["pooling_convention"],
            global_pool=a["global_pool"],
            count_include_pad=a["count_include_pad"],
            layout=a["layout"],
        ),
        [a["data"]],
    )


def _batch_norm(a: Any) -> Any:
    if a["output_mean_var"]:
        raise _Unexportable("batch_norm(output_mean_var=True)")
    return (
        "BatchNorm",
        _attrs(
            eps=a["eps"],
            momentum=a["momentum"],
            fix_gamma=a["fix_gamma"],
            use_global_stats=a["use_global_stats"],
            axis=a["axis"],
        ),
        [a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"]],
    )


def _layer_norm(a: Any) -> Any:
    if a["output_mean_var"]:
        raise _Unexportable("layer_norm(output_mean_var=True)")
    return "LayerNorm", _attrs(axis=a["axis"], eps=a["eps"]), [a["data"], a["gamma"], a["beta"]]


def _instance_norm(a: Any) -> Any:
    data, gamma, beta = a["data"], a["gamma"], a["beta"]
    channels = data.shape[1]
    # MXNet's InstanceNorm always takes gamma and beta: the unscaled (unshifted) layer
    # becomes a constant 1 (0).
    if gamma is None:
        gamma = _Const("gamma", numpy.ones((channels,), data.dtype))
    if beta is None:
        beta = _Const("beta", numpy.zeros((channels,), data.dtype))
    return "InstanceNorm", _attrs(eps=a["eps"]), [data, gamma, beta]


def _group_norm(a: Any) -> Any:
    if a["output_mean_var"]:
        raise _Unexportable("group_norm(output_mean_var=True)")
    return (
        "GroupNorm",
        _attrs(num_groups=a["num_groups"], eps=a["eps"]),
        [a["data"], a["gamma"], a["beta"]],
    )


def _dropout(a: Any) -> Any:
    return "Dropout", _attrs(p=a["p"], mode=a["mode"], axes=tuple(a["axes"] or ())), [a["data"]]


def _embedding(a: Any) -> Any:
    return (
        "Embedding",
        _attrs(
            input_dim=a["input_dim"],
            output_dim=a["output_dim"],
            dtype=numpy.dtype(a["dtype"]),
            sparse_grad=a["sparse_grad"],
        ),
        [a["data"], a["weight"]],
    )


def _softmax(op: str) -> Callable[..., Any]:
    def convert(a: Any) -> Any:
        if a["use_length"] or a["length"] is not None:
            raise _Unexportable(f"{op}(use_length=True)")
        if a["dtype"] is not None:
            raise _Unexportable(f"{op}(dtype=...)")
        return op, _attrs(axis=a["axis"], temperature=a["temperature"]), [a["data"]]

    return convert


# op for (array, array), for (array, scalar) and for (scalar, array)
_BINARY = {
    "add": ("broadcast_add", "_plus_scalar", "_plus_scalar"),
    "subtract": ("broadcast_sub", "_minus_scalar", "_rminus_scalar"),
    "multiply": ("broadcast_mul", "_mul_scalar", "_mul_scalar"),
    "divide": ("broadcast_div", "_div_scalar", "_rdiv_scalar"),
    "power": ("broadcast_power", "_power_scalar", "_rpower_scalar"),
    "maximum": ("broadcast_maximum", "_maximum_scalar", "_maximum_scalar"),
    "minimum": ("broadcast_minimum", "_minimum_scalar", "_minimum_scalar"),
}


def _binary(name: str) -> Callable[..., Any]:
    both, right, left = _BINARY[name]

    def convert(a: Any) -> Any:
        x, y = a["a"], a["b"]
        if a.get("out") is not None:
            raise _Unexportable(f"{name}(out=...)")
        if isinstance(x, ndarray) and isinstance(y, ndarray):
            return both, {}, [x, y]
        if isinstance(x, ndarray) and _scalar(y):
            return right, _attrs(scalar=float(y)), [x]
        if _scalar(x) and isinstance(y, ndarray):
            return left, _attrs(scalar=float(x)), [y]
        raise _Unexportable(f"{name} of a {type(x).__name__} and a {type(y).__name__}")

    return convert


def _unary(op: str) -> Callable[..., Any]:
    def convert(a: Any) -> Any:
        if a.get("out") is not None or a.get("args"):
            raise _Unexportable(f"{op} with extra arguments")
        return op, {}, [a["x"]]

    return convert


def _concatenate(a: Any) -> Any:
    seq = list(a["seq"]) + list(a.get("args") or ())
    axis = (a.get("kwargs") or {}).get("axis", 0)
    if a.get("out") is not None or set(a.get("kwargs") or {}) - {"axis"} or axis is None:
        raise _Unexportable("concatenate with arguments other than axis")
    return "Concat", _attrs(dim=axis, num_args=len(seq)), seq


def _reshape(a: Any) -> Any:
    x, shape, kwargs = a["self"], a["shape"], dict(a["kwargs"])
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if kwargs:
        shape = kwargs.pop("newshape", kwargs.pop("shape", shape))
        if kwargs.pop("order", "C") != "C" or kwargs:
            raise _Unexportable("reshape with order='F' or other arguments")
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    if x.ndim >= 2 and len(shape) == 2 and shape[0] == x.shape[0] and shape[1] == -1:
        return "Flatten", {}, [x]
    # MXNet's 0 copies the input's dimension: the batch axis stays free in the graph.
    if shape and x.ndim and shape[0] == x.shape[0] and x.shape[0] != 0:
        shape = (0,) + shape[1:]
    return "Reshape", _attrs(shape=shape), [x]


def _transpose(a: Any) -> Any:
    axes = a["axes"]
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = tuple(axes[0]) if axes[0] is not None else ()
    return "transpose", _attrs(axes=tuple(axes) or None), [a["self"]]


_NPX_CONVERTERS = {
    "fully_connected": _fc,
    "activation": _activation,
    "relu": _named_activation("relu"),
    "sigmoid": _named_activation("sigmoid"),
    "leaky_relu": _leaky,
    "convolution": _conv("Convolution"),
    "deconvolution": _conv("Deconvolution"),
    "pooling": _pooling,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "instance_norm": _instance_norm,
    "group_norm": _group_norm,
    "dropout": _dropout,
    "embedding": _embedding,
    "softmax": _softmax("softmax"),
    "log_softmax": _softmax("log_softmax"),
}
_NP_CONVERTERS = {
    **{
        name: _binary(name)
        for name in ("add", "subtract", "multiply", "divide", "maximum", "minimum")
    },
    "tanh": _unary("tanh"),
    "exp": _unary("exp"),
    "log": _unary("log"),
    "sqrt": _unary("sqrt"),
    "concatenate": _concatenate,
}


def _dunder(name: str, reflected: bool = False) -> Callable[..., Any]:
    """Converter of ``x.__op__(other)`` (``other.__op__(x)`` reflected) as ``np.name``."""
    convert = _binary(name)

    def dunder(a: Any) -> Any:
        x, other = a["self"], a["other"]
        return convert({"a": other, "b": x} if reflected else {"a": x, "b": other})

    return dunder


_METHOD_CONVERTERS = {
    "__add__": _dunder("add"),
    "__radd__": _dunder("add", True),
    "__sub__": _dunder("subtract"),
    "__rsub__": _dunder("subtract", True),
    "__mul__": _dunder("multiply"),
    "__rmul__": _dunder("multiply", True),
    "__truediv__": _dunder("divide"),
    "__rtruediv__": _dunder("divide", True),
    "__pow__": _dunder("power"),
    "__rpow__": _dunder("power", True),
    "__neg__": lambda a: ("negative", {}, [a["self"]]),
    "reshape": _reshape,
    "transpose": _transpose,
}
# How each method's arguments bind (by name) for its converter.
_METHOD_SIGNATURES = {
    "__neg__": inspect.signature(lambda self: None),
    "reshape": inspect.signature(lambda self, *shape, **kwargs: None),
    "transpose": inspect.signature(lambda self, *axes: None),
}
_BINARY_SIGNATURE = inspect.signature(lambda self, other: None)
_INPLACE = (
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "__ipow__",
    "__imod__",
    "__ifloordiv__",
    "__setitem__",
)


# --------------------------------------------------------------------- block rules
# A rule turns a whole block's call into one node (its inside is not traced): it takes
# (block, args, trace) and returns a converter of (block, args), or None to trace inside.
def _reflection_pad(block: Any, args: Any, trace: Any) -> Any:
    return lambda block, args: (
        "Pad",
        _attrs(mode="reflect", pad_width=block._padding),
        list(args[:1]),
    )


def _lambda(block: Any, args: Any, trace: Any) -> Any:
    # Lambda('tanh') holds mx.np.tanh itself, taken before export wrapped it.
    found = trace.originals.get(id(block._func))
    if found is None:
        return None
    bind, convert = found

    def rule(block: Any, args: Any) -> Any:
        bound = bind.bind(*args)
        bound.apply_defaults()
        try:
            return convert(dict(bound.arguments))
        except _Unexportable as e:
            raise TypeError(
                f"export: {e} in {trace._block_text(block)} has no MXNet operator"
            ) from None

    return rule


def _block_rules() -> dict[Any, Any]:
    from .nn.basic_layers import HybridLambda, Lambda  # nn imports block; loaded late
    from .nn.conv_layers import ReflectionPad2D

    return {ReflectionPad2D: _reflection_pad, Lambda: _lambda, HybridLambda: _lambda}


# --------------------------------------------------------------------- the trace
class _Trace:
    """Records the traced calls of one ``export`` as the nodes of MXNet's graph."""

    def __init__(self, root: Block, param_names: dict[Any, Any]) -> None:
        self.root = root
        self.paths = _block_paths(root)
        self.nodes: list[Any] = []
        self.where: dict[int, list[Any]] = {}  # id(array) -> [node, output, 0]
        self.keep: list[Any] = []  # the traced arrays, alive so that their ids stay theirs
        self.replicas = {}  # id(replica) -> (name, Parameter)
        for name, param in param_names.items():
            for replica in param.list_data():
                self.replicas[id(replica)] = (name, param)
                self.keep.append(replica)
        self.variables: dict[str, int] = {}  # variable name -> node index
        self.params: dict[Any, Any] = {}  # variable name -> Parameter or numpy constant
        self.counts: dict[Any, Any] = {}
        self.depth = 0  # > 0 inside a traced call or a block rule
        self.stack: list[Any] = []  # blocks whose forward is running
        self.block_rules: list[Any] = []  # the rule of each of them (or None)
        self.rules: dict[Any, Any] = {}  # block type -> rule maker (see _block_rules)
        # id(unwrapped np/npx function) -> (signature, convert)
        self.originals: dict[Any, Any] = {}

    def variable(self, name: str, attrs: Any = None) -> int:
        if name not in self.variables:
            node = {"op": "null", "name": name, "inputs": []}
            if attrs:
                node["attrs"] = attrs
            self.variables[name] = len(self.nodes)
            self.nodes.append(node)
        return self.variables[name]

    def add_input(self, name: str, array: ndarray) -> None:
        self.where[id(array)] = [self.variable(name), 0, 0]
        self.keep.append(array)

    def _block_text(self, block: Any) -> str:
        path = self.paths.get(id(block))
        return f"{type(block).__name__} ({path or 'the top block'})"

    def _current(self) -> str:
        return self._block_text(self.stack[-1]) if self.stack else self._block_text(self.root)

    def ref(self, value: Any, node_name: str, op: str, position: int) -> list[Any]:
        if isinstance(value, _Const):
            name = f"{node_name}_{value.hint}"
            self.params[name] = value.value
            return [self.variable(name, _var_attrs(value.value.shape, value.value.dtype)), 0, 0]
        found = self.where.get(id(value))
        if found is not None:
            return found
        param = self.replicas.get(id(value))
        if param is not None:
            name, p = param
            self.params[name] = p
            return [self.variable(name, _var_attrs(p.shape, p.dtype)), 0, 0]
        what = type(value).__name__ if not isinstance(value, ndarray) else "an array"
        outer = self._block_text(self.stack[-2]) if len(self.stack) > 1 else None
        raise TypeError(
            f"export: input {position} of {op} in the forward of {self._current()} is "
            f"{what} computed by an operation export cannot trace (no MXNet symbol in "
            f"gluonlite's export){f'; look in the forward of {outer}' if outer else ''}. "
            f"Traced are gluon.nn's layers and the operators listed in "
            f"gluonlite.gluon.symbol_block's notes"
        )

    def record(
        self, what: str, op: str, attrs: dict[Any, Any], inputs: list[Any], out: Any
    ) -> None:
        if not isinstance(out, ndarray):
            raise TypeError(
                f"export: {what} in the forward of {self._current()} returned "
                f"{type(out).__name__}; export traces single-array operators"
            )
        base = op.lower().lstrip("_")
        k = self.counts.get(base, 0)
        self.counts[base] = k + 1
        path = self.paths.get(id(self.stack[-1])) if self.stack else ""
        name = f"{path}.{base}{k}" if path else f"{base}{k}"
        refs = [self.ref(v, name, what, i) for i, v in enumerate(inputs)]
        node: dict[str, Any] = {"op": op, "name": name, "inputs": refs}
        if attrs:
            node["attrs"] = attrs
        self.where[id(out)] = [len(self.nodes), 0, 0]
        self.keep.append(out)
        self.nodes.append(node)

    def call(self, what: str, convert: Any, fn: Any, bind: Any, args: Any, kwargs: Any) -> Any:
        """Run ``fn`` untraced inside, then record it as one node."""
        self.depth += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            self.depth -= 1
        try:
            bound = bind.bind(*args, **kwargs)
            bound.apply_defaults()
            op, attrs, inputs = convert(dict(bound.arguments))
        except _Unexportable as e:
            raise TypeError(
                f"export: {e} in the forward of {self._current()} has no MXNet operator"
            ) from None
        self.record(what, op, attrs, inputs, out)
        return out

    # -- block hooks
    def pre_hook(self, block: Any, args: Any) -> None:
        make = self.rules.get(type(block))
        rule = make(block, args, self) if make is not None else None
        self.stack.append(block)
        self.block_rules.append(rule)
        if rule is not None:
            self.depth += 1

    def post_hook(self, block: Any, args: Any, out: Any) -> None:
        rule = self.block_rules.pop()
        if rule is not None:
            self.depth -= 1
            if self.depth == 0:
                op, attrs, inputs = rule(block, args)
                self.record(type(block).__name__, op, attrs, inputs, out)
        elif self.depth == 0:
            for o in _flat_outputs(out):
                if isinstance(o, ndarray) and id(o) not in self.where:
                    raise TypeError(
                        f"export: {self._block_text(block)} computes its output with an "
                        f"operation export cannot trace (no MXNet symbol in gluonlite's "
                        f"export); traced are gluon.nn's layers and the operators listed "
                        f"in gluonlite.gluon.symbol_block's notes"
                    )
        self.stack.pop()


def _var_attrs(shape: Any, dtype: Any) -> dict[Any, Any]:
    attrs = {}
    if shape is not None and all(int(n) > 0 for n in shape):
        attrs["__shape__"] = _text(tuple(shape))
    name = numpy.dtype(dtype).name
    if name in _DTYPE_FLAGS:
        attrs["__dtype__"] = str(_DTYPE_FLAGS[name])
    return attrs


def _flat_outputs(out: Any) -> list[Any]:
    if isinstance(out, (list, tuple)):
        return [o for item in out for o in _flat_outputs(item)]
    return [out]


def _traced(what: Any, fn: Any, convert: Any, bind: Any) -> Any:
    def traced(*args: Any, **kwargs: Any) -> Any:
        trace = _active.get()
        if trace is None or trace.depth:
            return fn(*args, **kwargs)
        return trace.call(what, convert, fn, bind, args, kwargs)

    traced.__wrapped__ = fn  # type: ignore[attr-defined]
    return traced


def _refuse_inplace(name: Any, fn: Any) -> Any:
    def method(self: Any, *args: Any) -> Any:
        trace = _active.get()
        if (
            trace is not None
            and not trace.depth
            and (id(self) in trace.where or id(self) in trace.replicas)
        ):
            raise TypeError(
                f"export: an in-place update ({name}) of an array of the graph "
                f"in the forward of {trace._current()} cannot be exported; "
                f"write it out of place (y = x + 1)"
            )
        return fn(self, *args)

    return method


_INHERITED = object()  # _Patched's mark for a class attribute found on a base class


class _Patched:
    """Installs the tracing wrappers on ``mx.np``, ``mx.npx`` and ``ndarray`` for the
    duration (each checks the trace of its own context, so other threads run as before)."""

    def __init__(self, trace: _Trace) -> None:
        self._trace = trace

    def __enter__(self) -> Any:
        self._saved: list[Any] = []
        for module, table in ((npx, _NPX_CONVERTERS), (np, _NP_CONVERTERS)):
            for name, convert in table.items():
                fn = getattr(module, name)
                self._trace.originals[id(fn)] = (inspect.signature(fn), convert)
                self._swap(
                    module,
                    name,
                    _traced(
                        f"{module.__name__.split('.')[-1]}.{name}",
                        fn,
                        convert,
                        inspect.signature(fn),
                    ),
                )
        for name, convert in _METHOD_CONVERTERS.items():
            bind = _METHOD_SIGNATURES.get(name, _BINARY_SIGNATURE)
            self._swap(
                ndarray, name, _traced(f"ndarray.{name}", getattr(ndarray, name), convert, bind)
            )
        for name in _INPLACE:
            self._swap(ndarray, name, _refuse_inplace(name, getattr(ndarray, name)))
        return self

    def _swap(self, owner: Any, name: Any, value: Any) -> Any:
        # A class attribute it inherits (ndarray's operators, reshape and __getitem__ from
        # its C base, gluonlite/_cndarray.c) is deleted again on exit, not copied down.
        saved = owner.__dict__.get(name, _INHERITED) if isinstance(owner, type) else None
        self._saved.append((owner, name, getattr(owner, name) if saved is None else saved))
        setattr(owner, name, value)

    def __exit__(self, *exc: Any) -> None:
        for owner, name, value in reversed(self._saved):
            if value is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def export_block(
    block: HybridBlock, path: Any, epoch: int = 0, remove_amp_cast: bool = True
) -> tuple[str, str]:
    """``HybridBlock.export`` (see there)."""
    name = type(block).__name__
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}.export: path must be a str, got {type(path).__name__}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, numpy.integer)) or epoch < 0:
        raise ValueError(f"{name}.export: epoch must be an int >= 0, got {epoch!r}")
    specs = getattr(block, "_export_inputs", None)
    if specs is None:
        raise RuntimeError(
            f"{name}.export: please first call block.hybridize() and then run "
            f"forward with this block at least once before calling export "
            f"(the inputs of that call shape the graph)"
        )
    if any(s is None for s in specs):
        raise TypeError(
            f"{name}.export: the last hybridized call had arguments that are not "
            f"arrays; export needs every input of forward to be an array"
        )
    unique: dict[Any, Any] = {}
    for pname, param in block.collect_params().items():
        if all(p is not param for p in unique.values()):
            if param._data is None:
                raise RuntimeError(
                    f"{name}.export: Parameter {pname!r} is not initialized; run a forward first"
                )
            unique[pname] = param
    trace = _Trace(block, unique)
    trace.rules = _block_rules()
    inputs = []
    for i, (shape, dtype, device) in enumerate(specs):
        x = np.zeros(shape, dtype=dtype, device=device)
        trace.add_input("data" if len(specs) == 1 else f"data{i}", x)
        inputs.append(x)
    handles = []
    token = _active.set(trace)
    try:
        for b in block._blocks():
            handles.append(b.register_forward_pre_hook(trace.pre_hook))
            handles.append(b.register_forward_hook(trace.post_hook))
        with _export_lock, _Patched(trace), autograd.pause():
            out = block(*inputs)
    finally:
        _active.reset(token)
        for h in handles:
            h.detach()
    heads = []
    for o in _flat_outputs(out):
        if not isinstance(o, ndarray) or id(o) not in trace.where:
            raise TypeError(
                f"export: an output of {name} (the top block) is not computed by traced operators"
            )
        heads.append(trace.where[id(o)])
    graph = _graph_json(trace.nodes, heads)
    arrays, names = [], []
    for var, value in trace.params.items():
        prefix = "arg:"
        for node in trace.nodes:
            positions = _AUX_INPUTS.get(node["op"], ())
            if any(
                node["inputs"][i][0] == trace.variables[var]
                for i in positions
                if i < len(node["inputs"])
            ):
                prefix = "aux:"
        host = (
            value.data(value.list_device()[0]).asnumpy()
            if isinstance(value, Parameter)
            else numpy.asarray(value)
        )
        arrays.append(host)
        names.append(prefix + var)
    version = 2 if all(a.ndim for a in arrays) else 3
    data = _mxnet_format.encode_mxnet_list(arrays, names, version=version)
    sym_file = f"{os.fspath(path)}-symbol.json"
    params_file = f"{os.fspath(path)}-{int(epoch):04d}.params"
    checkpoint.atomic_write(sym_file, lambda p: _write(p, graph.encode("utf-8")))
    checkpoint.atomic_write(params_file, lambda p: _write(p, data))
    return sym_file, params_file


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _graph_json(nodes: list[Any], heads: list[Any]) -> str:
    row_ptr = [0]
    for node in nodes:
        row_ptr.append(row_ptr[-1] + _NUM_OUTPUTS.get(node["op"], 1))
    graph = {
        "nodes": nodes,
        "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"],
        "node_row_ptr": row_ptr,
        "heads": heads,
        "attrs": {"mxnet_version": ["int", _MXNET_VERSION]},
    }
    return json.dumps(graph, indent=2)


# --------------------------------------------------------------------- reading graphs
def _B(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ValueError(f"not a bool: {text!r}")


def _T(text: str) -> tuple[Any, ...]:
    """``'(3, 3)'``, ``'[3]'``, ``'3'`` or ``'()'`` as a tuple of ints."""
    text = text.strip()
    value = ast.literal_eval(text) if text not in ("", "()") else ()
    value = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(int(v) for v in value)


def _OT(text: str) -> Any:
    return None if text.strip() in ("None", "") else _T(text)


def _OF(text: str) -> Any:
    return None if text.strip() == "None" else float(text)


_I, _F, _S = int, float, str
# Attributes that only tune MXNet's kernels; they change no value.
_IGNORED = {"workspace", "cudnn_tune", "cudnn_off", "mode_cudnn"}


def _first(fn: Any) -> Any:
    return lambda inputs, kw: fn(inputs[0], **kw)


def _with_optional_bias(fn: Any) -> Any:
    def run(inputs: Any, kw: Any) -> Any:
        bias = inputs[2] if len(inputs) > 2 else None
        return fn(inputs[0], inputs[1], bias, **kw)

    return run


def _reshape_legacy(x: Any, shape: Any = ()) -> Any:
    out = []
    for i, s in enumerate(shape):
        if s == 0:
            out.append(x.shape[i])
        elif s >= -1:
            out.append(s)
        else:
            raise ValueError(
                f"Reshape: the special value {s} of MXNet's legacy Reshape is "
                f"not supported by gluonlite"
            )
    return x.reshape(tuple(out))


def _pad(x: Any, mode: Any = "constant", pad_width: Any = (), constant_value: Any = 0.0) -> Any:
    if mode == "reflect" and x.ndim == 4:
        from .nn.conv_layers import ReflectionPad2D

        return ReflectionPad2D(tuple(pad_width))(x)
    if mode == "constant":
        pairs = [(pad_width[2 * i], pad_width[2 * i + 1]) for i in range(x.ndim)]
        return np.pad(x, pairs, constant_values=constant_value)
    raise ValueError(f"Pad: mode={mode!r} on a {x.ndim}-d input is not supported by gluonlite")


def _scalar_op(fn: Any) -> Any:
    return lambda inputs, kw: fn(inputs[0], kw["scalar"])


# MXNet op -> (run(inputs, kwargs), {attribute: parser})
_OPS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "FullyConnected": (
        _with_optional_bias(lambda x, w, b, **kw: npx.fully_connected(x, w, b, **kw)),
        {"num_hidden": _I, "no_bias": _B, "flatten": _B},
    ),
    "Activation": (_first(lambda x, **kw: npx.activation(x, **kw)), {"act_type": _S}),
    "LeakyReLU": (
        lambda inputs, kw: npx.leaky_relu(inputs[0], *inputs[1:2], **kw),
        {"act_type": _S, "slope": _F, "lower_bound": _F, "upper_bound": _F},
    ),
    "Convolution": (
        _with_optional_bias(lambda x, w, b, **kw: npx.convolution(x, w, b, **kw)),
        {
            "kernel": _T,
            "stride": _T,
            "dilate": _T,
            "pad": _T,
            "num_filter": _I,
            "num_group": _I,
            "no_bias": _B,
            "layout": _S,
        },
    ),
    "Deconvolution": (
        _with_optional_bias(lambda x, w, b, **kw: npx.deconvolution(x, w, b, **kw)),
        {
            "kernel": _T,
            "stride": _T,
            "dilate": _T,
            "pad": _T,
            "adj": _T,
            "target_shape": _OT,
            "num_filter": _I,
            "num_group": _I,
            "no_bias": _B,
            "layout": _S,
        },
    ),
    "Pooling": (
        _first(lambda x, **kw: npx.pooling(x, **kw)),
        {
            "kernel": _T,
            "stride": _T,
            "pad": _T,
            "pool_type": _S,
            "pooling_convention": _S,
            "global_pool": _B,
            "count_include_pad": _B,
            "layout": _S,
        },
    ),
    "BatchNorm": (
        lambda inputs, kw: npx.batch_norm(*inputs[:5], **kw),
        {
            "eps": _F,
            "momentum": _F,
            "fix_gamma": _B,
            "use_global_stats": _B,
            "axis": _I,
            "output_mean_var": _B,
        },
    ),
    "LayerNorm": (
        lambda inputs, kw: npx.layer_norm(*inputs[:3], **kw),
        {"axis": _I, "eps": _F, "output_mean_var": _B},
    ),
    "InstanceNorm": (lambda inputs, kw: npx.instance_norm(*inputs[:3], **kw), {"eps": _F}),
    "GroupNorm": (
        lambda inputs, kw: npx.group_norm(*inputs[:3], **kw),
        {"num_groups": _I, "eps": _F, "output_mean_var": _B},
    ),
    "Dropout": (_first(lambda x, **kw: npx.dropout(x, **kw)), {"p": _F, "mode": _S, "axes": _T}),
    "Embedding": (
        lambda inputs, kw: npx.embedding(inputs[0], inputs[1], **kw),
        {"input_dim": _I, "output_dim": _I, "dtype": _S, "sparse_grad": _B},
    ),
    "softmax": (_first(lambda x, **kw: npx.softmax(x, **kw)), {"axis": _I, "temperature": _OF}),
    "log_softmax": (
        _first(lambda x, **kw: npx.log_softmax(x, **kw)),
        {"axis": _I, "temperature": _OF},
    ),
    "Flatten": (_first(lambda x: x.reshape(x.shape[0], -1)), {}),
    "flatten": (_first(lambda x: x.reshape(x.shape[0], -1)), {}),
    "Reshape": (_first(_reshape_legacy), {"shape": _T}),
    "transpose": (_first(lambda x, axes=(): x.transpose(tuple(axes) or None)), {"axes": _T}),
    "Concat": (
        lambda inputs, kw: np.concatenate(inputs, axis=kw.get("dim", 1)),
        {"dim": _I, "num_args": _I},
    ),
    "Pad": (_first(_pad), {"mode": _S, "pad_width": _T, "constant_value": _F}),
    "relu": (_first(lambda x: npx.relu(x)), {}),
    "sigmoid": (_first(lambda x: npx.sigmoid(x)), {}),
    "tanh": (_first(lambda x: np.tanh(x)), {}),
    "exp": (_first(lambda x: np.exp(x)), {}),
    "log": (_first(lambda x: np.log(x)), {}),
    "sqrt": (_first(lambda x: np.sqrt(x)), {}),
    "negative": (_first(lambda x: -x), {}),
    "abs": (_first(lambda x: np.abs(x)), {}),
    "_copy": (_first(lambda x: x.copy()), {}),
    "identity": (_first(lambda x: x.copy()), {}),
}
# The functions are looked up when they run (np.add, not a reference taken here), so that
# a SymbolBlock's forward is traced by export like any other.
_fn: Any
for _names, _fn in (
    (("broadcast_add", "elemwise_add", "_Plus", "_plus"), "add"),
    (("broadcast_sub", "elemwise_sub", "_Minus", "_minus"), "subtract"),
    (("broadcast_mul", "elemwise_mul", "_Mul", "_mul"), "multiply"),
    (("broadcast_div", "elemwise_div", "_Div", "_div"), "divide"),
    (("broadcast_power", "_Power", "_power"), "power"),
    (("broadcast_maximum", "_Maximum", "_maximum"), "maximum"),
    (("broadcast_minimum", "_Minimum", "_minimum"), "minimum"),
):
    for _name in _names:
        _OPS[_name] = ((lambda f: lambda inputs, kw: getattr(np, f)(inputs[0], inputs[1]))(_fn), {})
for _name, _fn in (
    ("_plus_scalar", lambda x, s: x + s),
    ("_minus_scalar", lambda x, s: x - s),
    ("_rminus_scalar", lambda x, s: s - x),
    ("_mul_scalar", lambda x, s: x * s),
    ("_div_scalar", lambda x, s: x / s),
    ("_rdiv_scalar", lambda x, s: s / x),
    ("_power_scalar", lambda x, s: x**s),
    ("_rpower_scalar", lambda x, s: s**x),
    ("_maximum_scalar", lambda x, s: np.maximum(x, s)),
    ("_minimum_scalar", lambda x, s: np.minimum(x, s)),
):
    _OPS[_name] = (_scalar_op(_fn), {"scalar": _F, "is_int": _B})
del _names, _fn, _name


def _load_graph(graph: Any, where: str) -> dict[Any, Any]:
    """The checked graph dict of MXNet's symbol JSON (text or parsed)."""
    if isinstance(graph, (bytes, str)):
        try:
            graph = json.loads(graph)
        except ValueError as e:
            raise ValueError(f"{where}: not MXNet symbol JSON ({e})") from None
    if (
        not isinstance(graph, dict)
        or not isinstance(graph.get("nodes"), list)
        or not isinstance(graph.get("heads"), list)
    ):
        raise ValueError(
            f"{where}: not MXNet symbol JSON (expected an object with 'nodes' and 'heads')"
        )
    nodes = graph["nodes"]
    for i, node in enumerate(nodes):
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("op"), str)
            or not isinstance(node.get("name"), str)
        ):
            raise ValueError(f"{where}: node {i} has no 'op' and 'name'")
        for ref in node.get("inputs", []):
            if not (
                isinstance(ref, list)
                and len(ref) >= 2
                and isinstance(ref[0], int)
                and 0 <= ref[0] < i
            ):
                raise ValueError(
                    f"{where}: node {i} ({node['name']!r}) has input {ref!r}, not an earlier node"
                )
        if node["op"] == "null":
            continue
        if node["op"] not in _OPS:
            raise TypeError(
                f"{where}: operator {node['op']!r} (node {node['name']!r}) is not "
                f"supported by gluonlite's SymbolBlock"
            )
        schema = _OPS[node["op"]][1]
        for key in _node_attrs(node):
            if key not in schema and key not in _IGNORED and not key.startswith("__"):
                raise TypeError(
                    f"{where}: attribute {key!r} of operator {node['op']!r} "
                    f"(node {node['name']!r}) is not supported by gluonlite's "
                    f"SymbolBlock"
                )
    for ref in graph["heads"]:
        if not (
            isinstance(ref, list)
            and len(ref) >= 2
            and isinstance(ref[0], int)
            and 0 <= ref[0] < len(nodes)
        ):
            raise ValueError(f"{where}: head {ref!r} is not a node")
        if ref[1] != 0:
            raise TypeError(
                f"{where}: head {ref!r} reads output {ref[1]} of "
                f"{nodes[ref[0]]['name']!r}; gluonlite's SymbolBlock computes "
                f"the first output of each operator only"
            )
    return graph


def _node_attrs(node: dict[Any, Any]) -> dict[Any, Any]:
    # MXNet before 1.0 wrote "param" (or "attr") instead of "attrs".
    return node.get("attrs") or node.get("param") or node.get("attr") or {}


def _run_node(node: dict[Any, Any], inputs: list[Any]) -> Any:
    run, schema = _OPS[node["op"]]
    kwargs = {}
    for key, text in _node_attrs(node).items():
        if key in schema and key not in ("num_args", "is_int"):
            try:
                kwargs[key] = schema[key](str(text))
            except (ValueError, SyntaxError) as e:
                raise ValueError(
                    f"SymbolBlock: attribute {key}={text!r} of node "
                    f"{node['name']!r} ({node['op']}): {e}"
                ) from None
    return run(inputs, kwargs)


class SymbolBlock(HybridBlock):
    """A block running a graph in MXNet's symbol JSON, e.g. what ``export`` (of gluonlite
    or MXNet) wrote; ``imports`` loads one with its parameters.

    Args:
        outputs: the graph: symbol JSON text, or the dict it parses to. (gluonlite has no
            ``Symbol`` graph objects; ``mx.sym.var`` only describes variables.)
        inputs: the names of the graph's input variables (a str or a list of str); every
            other variable is a Parameter of this block, named as in the graph (its shape
            and dtype from the ``__shape__``/``__dtype__`` attributes when present).
        params: optional dict name -> Parameter to use instead of new ones.

    The operators of ``gluonlite.gluon.symbol_block``'s table run (MXNet's attribute
    semantics; the first output of each); another operator or attribute raises
    ``TypeError`` at construction. Parameters read by ``BatchNorm`` as statistics have
    ``grad_req='null'``.
    """

    _graph: dict[str, Any]
    _input_names: list[str]

    def __init__(
        self,
        outputs: str | bytes | dict[str, Any],
        inputs: str | Sequence[str],
        params: dict[str, Parameter] | None = None,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        if hasattr(outputs, "tojson"):
            outputs = outputs.tojson()
        elif not isinstance(outputs, (str, bytes, dict)):
            raise TypeError(
                f"{where}: outputs must be MXNet symbol JSON (text or dict); "
                f"gluonlite has no Symbol graphs, got {type(outputs).__name__}"
            )
        graph = _load_graph(outputs, where)
        names = [inputs] if isinstance(inputs, str) else list(inputs)
        names = [getattr(n, "name", n) for n in names]
        if any(not isinstance(n, str) for n in names):
            raise TypeError(f"{where}: inputs must be variable names (str)")
        nodes = graph["nodes"]
        variables = {n["name"]: i for i, n in enumerate(nodes) if n["op"] == "null"}
        missing = [n for n in names if n not in variables]
        if missing:
            raise ValueError(
                f"{where}: inputs {missing} are not variables of the graph; its "
                f"variables are {sorted(variables)}"
            )
        aux = set()
        for node in nodes:
            for i in _AUX_INPUTS.get(node["op"], ()):
                if i < len(node.get("inputs", [])):
                    aux.add(node["inputs"][i][0])
        if params is not None and not isinstance(params, dict):
            raise TypeError(
                f"{where}: params must be a dict name -> Parameter, got {type(params).__name__}"
            )
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_input_names", names)
        for name, index in variables.items():
            if name in names:
                continue
            if params is not None and name in params:
                self._reg_params[name] = params[name]
                continue
            attrs = _node_attrs(nodes[index])
            shape = _T(attrs["__shape__"]) if "__shape__" in attrs else None
            dtype = _FLAG_DTYPES.get(int(attrs.get("__dtype__", 0)), "float32")
            self._reg_params[name] = Parameter(
                name,
                grad_req="null" if index in aux else "write",
                shape=shape,
                dtype=dtype,
                allow_deferred_init=True,
            )

    @staticmethod
    def imports(
        symbol_file: StrPath,
        input_names: str | Sequence[str],
        param_file: str | None = None,
        device: DevicesLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        ctx: DevicesLike = None,
    ) -> SymbolBlock:
        """Load ``symbol_file`` (``path-symbol.json``) and, when given, ``param_file``
        (``path-0000.params``, MXNet's format with ``arg:``/``aux:`` names) onto ``device``
        (default: the current device), as MXNet's ``SymbolBlock.imports``.

        Returns:
            The ``SymbolBlock``; its inputs are named ``input_names`` (``'data'`` for what
            ``export`` wrote from a block with one input).
        """
        from .._compat import resolve_ctx

        device = resolve_ctx(device, ctx)
        with open(symbol_file, encoding="utf-8") as f:
            text = f.read()
        block = SymbolBlock(text, input_names)
        if param_file is not None:
            block.load_parameters(
                param_file,
                device=device,
                allow_missing=allow_missing,
                ignore_extra=ignore_extra,
                cast_dtype=True,
                dtype_source="saved",
            )
        return block

    def forward(self, *args: Any) -> Any:
        where = type(self).__name__
        if len(args) != len(self._input_names):
            raise TypeError(
                f"{where} takes {len(self._input_names)} inputs "
                f"({self._input_names}), got {len(args)}"
            )
        for name, value in zip(self._input_names, args):
            if not isinstance(value, ndarray):
                raise TypeError(
                    f"{where}: input {name!r} must be an mx.np.ndarray, got {type(value).__name__}"
                )
        device = args[0].device
        given = dict(zip(self._input_names, args))
        values: list[Any] = []
        for node in self._graph["nodes"]:
            if node["op"] == "null":
                name = node["name"]
                values.append(given[name] if name in given else self._reg_params[name].data(device))
                continue
            inputs = [values[ref[0]] for ref in node.get("inputs", [])]
            out = _run_node(node, inputs)
            values.append(out[0] if isinstance(out, (list, tuple)) else out)
        heads = [values[ref[0]] for ref in self._graph["heads"]]
        return heads[0] if len(heads) == 1 else heads

    def _extra_repr(self) -> str:
        ops = [n["op"] for n in self._graph["nodes"] if n["op"] != "null"]
        return f"{len(ops)} operators, inputs {self._input_names}"


# HybridBlock.export() writes through export_block (block.py sits below this module and
# does not import it).
register_exporter(export_block)
