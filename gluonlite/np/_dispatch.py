"""How a row of ``_table.py`` becomes an ``mx.np`` function.

A row names the function, its forward (the NumPy/CuPy function of the same name unless the
row gives one) and its backward. ``make`` turns it into a Python function that unwraps
gluonlite arrays (also inside lists, for ``concatenate`` and friends), checks that they all
live on one device, calls the forward with that device's array module, applies MXNet's dtype
rule, wraps the result and, while recording, attaches the backward to the tape.

Backward kinds (``Row.grad``):
  ``None``        not differentiable: outputs stop the tape.
  ``"select"``    the output only picks (or sums copies of) input elements: transposes,
                  reshapes, flips, concatenation, splitting, ``take``, ``where``... The
                  gradient is found by running the forward once more on arrays of element
                  numbers and scattering ``g`` back along them, one rule for all such rows.
  a function      ``grad(ctx, g) -> gradients`` per differentiable input, where ``ctx``
                  holds the raw inputs, output, arguments and ``xp``.
  ``("unary", d)`` / ``("binary", d)``  elementwise: ``d`` gives the partial derivatives.

For ``autograd.grad(create_graph=True)`` the backward must itself be recorded. Each node
carries the same rule a second time as ``Node.graph``: run with the op's ``ndarray``s in
place of raw arrays and ``Recorded`` (``mx.np``) as ``xp``, so every call in the rule is a
recorded op. Elementwise and "select" rows always allow it (the scatter of "select" is a
recorded op whose backward is a gather); a function row says ``graph=True`` when its rule
uses only what ``Recorded`` provides. Other rows name themselves instead (see
``autograd._graph_backward``).

Note: errors raised by NumPy/CuPy while computing a forward are re-raised with the same type
and the function's name in front, so a user never reads a traceback from deep inside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from .. import _backend
from ..autograd import Node, _recording, _scatter_add
from ..device import Device, current_device
from ..ndarray import (
    _C,
    ndarray,
    _device_mismatch,
    _new,
    _recording_get,
    _unbroadcast,
    scatter_add,
)

__all__ = ["Row", "make", "Ctx"]

_F64 = numpy.dtype(numpy.float64)
_F32 = numpy.dtype(numpy.float32)
_SCALARS = (int, float, bool, complex, numpy.generic)
_NDARRAY = numpy.ndarray  # module constants: numpy.ndarray per call is two lookups
_asarray = numpy.asarray


class Row:
    """One ``mx.np`` function: name, forward, backward and dtype rule.

    Args:
        name: the public name.
        forward: ``forward(xp, *args, **kwargs)`` on raw arrays; by default the function of
            the same ``np_name`` in NumPy/CuPy.
        grad: backward (see the module docstring).
        np_name: NumPy's name when it differs (``concat`` -> ``concatenate``).
        raw: the result is a Python value (``shape``, ``shares_memory``), not wrapped.
        float32: MXNet's rule: a float64 result from inputs none of which is float64 (ints,
            Python floats) is float32, unless ``dtype=`` was given.
        out: the function takes ``out=``.
        zero: arguments that are constants in the output (``pad``'s ``constant_values``,
            ``insert``'s ``values``); the ``"select"`` backward runs with them zeroed.
        graph: the backward can be recorded for higher-order gradients (see above).
    """

    __slots__ = (
        "name",
        "forward",
        "grad",
        "np_name",
        "raw",
        "float32",
        "out",
        "zero",
        "module",
        "keep",
        "cpu",
        "graph",
    )

    def __init__(
        self,
        name: str,
        forward: Callable[..., Any] | None = None,
        grad: str | Callable[..., Any] | None = None,
        *,
        np_name: str | None = None,
        raw: bool = False,
        float32: bool = True,
        out: bool = False,
        zero: tuple[int | str, ...] = (),
        keep: tuple[int, ...] = (),
        module: str | None = None,
        graph: bool | None = None,
    ) -> None:
        self.name, self.forward, self.grad = name, forward, grad
        # The backward also runs on recorded arrays (``create_graph``): "select" rows and
        # elementwise rows always; a function row when it says so (its rule then uses
        # only ``ctx.xp``'s functions, operators and methods, which the recorded
        # namespace provides; see ``Recorded``).
        self.graph = graph if graph is not None else grad == "select"
        self.np_name = np_name or name
        self.raw, self.float32, self.out, self.zero = raw, float32, out, zero
        self.keep = keep  # argument positions whose arrays "select" must not renumber
        # NumPy's own function, called directly on cpu (no wrapper in between)
        self.cpu = (
            None
            if forward is not None
            else getattr(numpy.linalg if module == "linalg" else numpy, self.np_name, None)
        )
        self.module = module  # "linalg" for numpy.linalg functions

    @property
    def differentiable(self) -> bool:
        return self.grad is not None


# The array namespace a forward or backward gets: NumPy, CuPy, or for a recorded backward
# (create_graph) the ``Recorded`` namespace below.
Xp = Any


class Ctx:
    """What a backward sees: raw inputs (``ins``, in argument order), the raw output
    (``out``; a tuple for several outputs), which output this gradient belongs to (``k``),
    the raw arguments (``args``, ``kwargs``), ``xp`` and a way to rerun the forward."""

    __slots__ = ("row", "xp", "ins", "out", "k", "args", "kwargs", "orig", "device", "arrays")
    row: Row
    xp: Xp
    ins: tuple[Any, ...]  # raw arrays
    out: Any
    k: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    orig: tuple[tuple[Any, ...], dict[str, Any]]
    device: Device
    arrays: tuple[ndarray, ...]

    def rerun(self, replace):
        """The forward again, with input ``i`` replaced by ``replace[i]`` (None: as is)."""
        args, kwargs = self.orig
        it = iter([r if r is not None else a._data for a, r in zip(self.arrays, replace)])
        rargs = tuple(_substitute(a, it) for a in args)
        rkw = {k: _substitute(v, it) for k, v in kwargs.items()}
        for z in self.row.zero:  # constants of the output, unless an input array
            if isinstance(z, int):
                if len(rargs) > z and not isinstance(args[z], ndarray):
                    rargs = rargs[:z] + (0,) + rargs[z + 1 :]
            elif z in rkw and not isinstance(kwargs[z], ndarray):
                rkw[z] = 0
        return _forward(self.row, self.xp)(self.xp, *rargs, **rkw)


def _substitute(v, it):
    """``v`` with its arrays replaced by the next values of ``it`` (``_unwrap``'s order)."""
    if isinstance(v, ndarray):
        return next(it)
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], ndarray):
        return [_substitute(e, it) for e in v]
    return v


# --------------------------------------------------------------------- forward lookup
_FORWARDS: dict = {}


def _forward(row: Row, xp):
    """``row``'s forward for ``xp`` as ``f(xp, *args, **kwargs)``, looked up once."""
    key = (row, xp)
    f = _FORWARDS.get(key)
    if f is None:
        if row.forward is not None:
            f = row.forward
        else:
            mod = xp.linalg if row.module == "linalg" else xp
            fn = getattr(mod, row.np_name, None)
            if fn is None:
                fn = _host_fallback(row)
            f = _drop_xp(fn)
        _FORWARDS[key] = f
    return f


def _drop_xp(fn):
    def f(xp, *args, **kwargs):
        return fn(*args, **kwargs)

    return f


def _host_fallback(row: Row):
    """For the few functions CuPy lacks: compute on the host and bring the result back.

    Documented per function in ``_table.py``; the copy is explicit, not a silent mix of
    devices (inputs must still all be on the one device)."""
    mod = numpy.linalg if row.module == "linalg" else numpy
    host_fn = getattr(mod, row.np_name)

    def fn(*args, **kwargs):
        cp = _backend.cupy()

        def conv(v):
            return cp.asnumpy(v) if _backend.is_gpu_array(v) else v

        res = host_fn(*[conv(a) for a in args], **{k: conv(v) for k, v in kwargs.items()})
        if isinstance(res, tuple):
            return tuple(cp.asarray(r) for r in res)
        return cp.asarray(res)

    return fn


# --------------------------------------------------------------------- calling
def _unwrap(v, arrays):
    if isinstance(v, ndarray):
        arrays.append(v)
        return v._data
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], ndarray):
        return [_unwrap(e, arrays) for e in v]
    return v


def _device_of(name, arrays) -> Device:
    if not arrays:
        return current_device()
    device = arrays[0]._device
    for a in arrays:
        if a._device is not device and a._device != device:
            raise _device_mismatch(name, device, a._device)
    return device


def renamed_error(name: str, e: Exception) -> Exception:
    """``e`` with ``name`` in front of its message, same type (AxisError stays AxisError)."""
    msg = f"{name}: {e}"
    try:
        err = type(e)(msg)
        if str(err) == msg:
            return err
    except Exception:  # noqa: BLE001 - exception types with other constructors
        pass
    for base in (numpy.exceptions.AxisError, TypeError, IndexError, ValueError):
        if isinstance(e, base):
            return base(msg)
    return RuntimeError(msg)


_CAUGHT = (ValueError, TypeError, IndexError, ArithmeticError, numpy.linalg.LinAlgError)


def _wrap(res, device, rule_ok):
    if isinstance(res, list):  # split and friends return lists, as in MXNet
        return [_wrap(r, device, rule_ok) for r in res]
    if isinstance(res, tuple):
        return tuple(_wrap(r, device, rule_ok) for r in res)
    if isinstance(res, numpy.ndarray) or _backend.is_gpu_array(res):
        if rule_ok and res.dtype == _F64:
            res = res.astype(_F32)
        return ndarray(res, device)
    if isinstance(res, _SCALARS):
        if device.device_type == "cpu":
            res = numpy.asarray(res)
        else:
            res = _backend.cupy().asarray(res)
        if rule_ok and res.dtype == _F64:
            res = res.astype(_F32)
        return ndarray(res, device)
    return res


def call(row: Row, args, kwargs, out=None):
    """Run ``row`` on ``args``/``kwargs`` (which may hold gluonlite arrays)."""
    arrays: list = []
    rargs = []
    for a in args:
        if type(a) is ndarray:
            arrays.append(a)
            rargs.append(a._data)
        else:
            rargs.append(_unwrap(a, arrays))
    rkw = kwargs
    if kwargs:  # a loop: a comprehension would make arrays a cell, created on every call
        rkw = {}
        for k, v in kwargs.items():
            rkw[k] = _unwrap(v, arrays)
    name = row.name
    device = _device_of(name, arrays)
    if out is not None:
        _check_out(name, out, device)
    try:
        if device.device_type == "cpu":
            xp = numpy
            if row.cpu is not None:
                res = row.cpu(*rargs, **rkw)
            else:
                res = _forward(row, xp)(xp, *rargs, **rkw)
        else:
            xp = _backend.xp(device)
            with _backend.on(device):
                res = _forward(row, xp)(xp, *rargs, **rkw)
    except _CAUGHT as e:
        raise renamed_error(name, e) from None
    if row.raw:
        return res
    if isinstance(res, numpy.generic):  # NumPy reductions return scalars
        res = _asarray(res)
    if type(res) is _NDARRAY and res.dtype is not _F64:
        result = _new(ndarray)  # the common case, without _wrap's checks
        result._data, result._device = res, device
    else:
        rule_ok = (
            row.float32 and "dtype" not in kwargs and not any(a._data.dtype == _F64 for a in arrays)
        )
        with _backend.on(device):  # a GPU result's float32 cast stays on its GPU
            result = _wrap(res, device, rule_ok)
    if (
        row.grad is not None
        and _recording.get()
        and any(a._node is not None or a._grad_req != "null" for a in arrays)
    ):
        _attach(row, result, res, arrays, tuple(rargs), rkw, (args, kwargs or {}), xp, device)
    if out is not None:
        return _write_out(name, out, result)
    return result


def _check_out(name, out, device):
    if not isinstance(out, ndarray):
        raise TypeError(f"{name}: out must be an mx.np.ndarray, got {type(out).__name__}")
    if out._device != device:
        raise _device_mismatch(name, device, out._device)


def _write_out(name, out, result):
    if not isinstance(result, ndarray):
        raise TypeError(f"{name}: out= is only supported for a single output")
    if out.shape != result.shape:
        raise ValueError(f"{name}: out has shape {out.shape}, the result has shape {result.shape}")
    if result._node is not None and out._grad_req != "null":
        raise RuntimeError(
            f"{name}: out= cannot overwrite an array with attach_grad() while recording"
        )
    with _backend.on(out._device):
        out._data[...] = result._data
    # Recorded ops that read the overwritten value must not backpropagate through it.
    if out._node is not None or out._grad_req != "null":
        out._version += 1
    out._node = result._node
    return out


def _attach(row, result, res, arrays, rargs, rkw, orig, xp, device):
    """Give each output a node whose backward maps its gradient to the inputs'."""
    ins = tuple(a._data for a in arrays)
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    for k, o in enumerate(outputs):
        if not isinstance(o, ndarray) or o._data.dtype.kind == "b":  # bool: no gradient
            continue
        ctx = Ctx()
        ctx.row, ctx.xp, ctx.ins, ctx.out, ctx.k = row, xp, ins, res, k
        ctx.args, ctx.kwargs, ctx.orig, ctx.arrays, ctx.device = (
            rargs,
            rkw,
            orig,
            tuple(arrays),
            device,
        )
        o._node = Node(
            tuple(arrays),
            _backward_fn(row, ctx, len(outputs) > 1),
            _graph_fn(row, ctx) if row.graph else row.name,
        )


def _backward_fn(row, ctx, multi):
    grad = row.grad

    def backward(g):
        if grad == "select":
            grads = select_grad(ctx, g)
        else:
            grads = grad(ctx, g)
        return tuple(
            None if gi is None else gi.astype(x.dtype, copy=False) for gi, x in zip(grads, ctx.ins)
        )

    return backward


def _graph_fn(row, ctx):
    """``row``'s backward on recorded arrays (``Node.graph``): the same rule, given a
    context whose arrays are the op's ``ndarray``s and whose ``xp`` is ``mx.np``."""
    grad = row.grad

    def graph(out, g):
        if grad == "select":
            grads = select_graph(ctx, g)
        else:
            gc = Ctx()
            gc.row, gc.xp, gc.ins, gc.out, gc.k = row, Recorded(ctx.device), ctx.arrays, out, ctx.k
            gc.args, gc.kwargs = ctx.orig
            gc.orig, gc.arrays, gc.device = ctx.orig, ctx.arrays, ctx.device
            grads = grad(gc, g)
        return tuple(
            None if gi is None else as_dtype(gi, x.dtype, ctx.device)
            for gi, x in zip(grads, ctx.arrays)
        )

    return graph


def as_dtype(v, dtype, device):
    """A rule's result ``v`` (an ``ndarray`` or a Python number) as an ``ndarray``."""
    if not isinstance(v, ndarray):
        xp = _backend.xp(device)
        with _backend.on(device):
            return ndarray(xp.asarray(v, dtype=dtype), device)
    return v if v._data.dtype == dtype else v.astype(dtype)


class Recorded:
    """The ``xp`` a backward rule sees when its own computation is recorded
    (``autograd.grad(create_graph=True)``): ``mx.np``'s functions, which record themselves
    and work on ``ndarray``s; array creation lands on the op's device.
    """

    __name__ = "gluonlite.np"

    def __init__(self, device: Device) -> None:
        self._device = device

    def __getattr__(self, name):
        from .. import np as mx_np  # on use: gluonlite.np imports this module

        return getattr(mx_np, name)

    def asarray(self, v, dtype=None):
        if isinstance(v, ndarray):
            return v if dtype is None else v.astype(dtype, copy=False)
        with _backend.on(self._device):
            return ndarray(_backend.xp(self._device).asarray(v, dtype=dtype), self._device)

    def _create(self, fn, *args, **kwargs):
        with _backend.on(self._device):
            return ndarray(getattr(_backend.xp(self._device), fn)(*args, **kwargs), self._device)

    def zeros(self, shape, dtype=None):
        return self._create("zeros", shape, dtype=dtype or numpy.float32)

    def ones(self, shape, dtype=None):
        return self._create("ones", shape, dtype=dtype or numpy.float32)

    def eye(self, n, m=None, k=0, dtype=None):
        return self._create("eye", n, m, k=k, dtype=dtype or numpy.float32)

    def arange(self, *args, dtype=None):
        return self._create("arange", *args, dtype=dtype)

    def take_along_axis(self, arr, indices, axis):
        """NumPy's ``take_along_axis`` as a recorded gather (an indexing of ``arr``; not
        an ``mx.np`` function, which MXNet 2 lacks)."""
        idx = indices._data if isinstance(indices, ndarray) else indices
        xp = _backend.xp(self._device)
        axis %= arr.ndim
        with _backend.on(self._device):
            grids = xp.indices(idx.shape, sparse=True)
        return arr[tuple(idx if i == axis else grid for i, grid in enumerate(grids))]


def _select_index(ctx):
    """The element numbers behind a "select" op's output: (index, spans, size).

    Each float input (not at a ``Row.keep`` position) is numbered from 1 up; ``index``
    holds the number of the input element each output element came from (0: none),
    ``spans[i]`` input ``i``'s (first number, count) (None: no gradient)."""
    xp = ctx.xp
    keep, i = set(), 0  # inputs (by order among the arrays) given at positions row.keep
    for pos, a in enumerate(ctx.orig[0]):
        if isinstance(a, ndarray):
            if pos in ctx.row.keep:
                keep.add(i)
            i += 1
        elif isinstance(a, (list, tuple)) and a and isinstance(a[0], ndarray):
            i += len(a)
    replace, offset, spans = [], 1, []
    for i, x in enumerate(ctx.ins):
        if x.dtype.kind in "fc" and i not in keep:
            replace.append(xp.arange(offset, offset + x.size, dtype=xp.int64).reshape(x.shape))
            spans.append((offset, x.size))
            offset += x.size
        else:
            replace.append(None)
            spans.append(None)
    index = ctx.rerun(replace)
    if isinstance(index, (tuple, list)):
        index = index[ctx.k]
    index = xp.asarray(index)
    if index.dtype.kind != "i":  # constants (zeroed, see Row.zero) promoted the type
        index = index.astype(xp.int64)
    return index, spans, offset


def select_grad(ctx, g):
    """Gradient of an op that only picks input elements (see the module docstring)."""
    xp = ctx.xp
    index, spans, offset = _select_index(ctx)
    flat = xp.zeros(offset, dtype=g.dtype)
    _scatter_add(xp, flat, index.reshape(-1), xp.asarray(g).reshape(-1))
    return [
        None if s is None else flat[s[0] : s[0] + s[1]].reshape(x.shape)
        for s, x in zip(spans, ctx.ins)
    ]


def select_graph(ctx, g):
    """``select_grad`` with ``g`` an ``ndarray``, recorded: the scatter is an op whose
    backward gathers (and the gather's scatters), so every order differentiates."""
    with _backend.on(ctx.device):
        index, spans, offset = _select_index(ctx)
        flat = scatter_add(g.reshape(-1), (offset,), index.reshape(-1))
    return [
        None if s is None else flat[s[0] : s[0] + s[1]].reshape(x.shape)
        for s, x in zip(spans, ctx.arrays)
    ]


# --------------------------------------------------------------------- fast paths
def _unary_fast(row, d):
    """Elementwise unary function: ``d(xp, x, y)`` is dy/dx (None: not differentiable)."""
    name = row.name
    np_fn = getattr(numpy, row.np_name) if row.forward is None else None

    def fn(x, *args, out=None, **kwargs):
        if type(x) is not ndarray or args or kwargs or np_fn is None:
            return call(row, (x,) + args, kwargs, out)
        device = x._device
        if device.device_type != "cpu":
            return call(row, (x,), kwargs, out)
        xr = x._data
        try:
            y = np_fn(xr)
        except _CAUGHT as e:
            raise renamed_error(name, e) from None
        if type(y) is not _NDARRAY:
            y = _asarray(y)
        if y.dtype is _F64 and xr.dtype is not _F64:
            y = y.astype(_F32)
        res = _new(ndarray)
        res._data, res._device = y, device
        if (
            d is not None
            and _recording_get()
            and (x._node is not None or x._grad_req != "null")
            and y.dtype.kind != "b"
        ):
            res._node = Node((x,), _unary_node(d, xr, y), _unary_graph(d, x))
        if out is not None:
            _check_out(name, out, device)
            return _write_out(name, out, res)
        return res

    fn.np_fn = np_fn  # for the C form (make)
    return fn


def _unary_node(d, xr, y):
    # Outside fn: a closure there would make xr and y cells, created on every call.
    return lambda g: ((g * d(numpy, xr, y)).astype(xr.dtype, copy=False),)


def _unary_graph(d, x):
    return lambda out, g: unary_graph(d, x, out, g)


def unary_grad(d):
    def grad(ctx, g):
        return [g * d(ctx.xp, ctx.ins[0], ctx.out)]

    return grad


def unary_graph(d, x, out, g):
    """``Node.graph`` of an elementwise function of ``x`` with derivative ``d``."""
    return (as_dtype(g * d(Recorded(x._device), x, out), x._data.dtype, x._device),)


def binary_grad(d):
    """``d(xp, a, b, y)`` gives (dy/da, dy/db); inputs may be scalars."""

    def grad(ctx, g):
        xp = ctx.xp
        a, b = ctx.args[0], ctx.args[1]
        da, db = d(xp, a, b, ctx.out)
        oa, ob = ctx.orig[0][0], ctx.orig[0][1]
        grads = []
        if isinstance(oa, ndarray):
            grads.append(_unbroadcast(g * da, a.shape))
        if isinstance(ob, ndarray):
            grads.append(_unbroadcast(g * db, b.shape))
        return grads

    return grad


def binary_graph(d, a, b, out, g):
    """``Node.graph`` of an elementwise function of ``a`` and ``b`` (arrays or Python
    numbers) whose partial derivatives ``d`` gives; one gradient per array operand."""
    da, db = d(Recorded(out._device), a, b, out)
    grads = []
    for v, dv in ((a, da), (b, db)):
        if isinstance(v, ndarray):
            gv = _unbroadcast(g * dv, v.shape)
            grads.append(as_dtype(gv, v._data.dtype, v._device))
    return tuple(grads)


def _binary_fast(row, d):
    """Elementwise binary function. Its ``dunder`` attribute (``a + b``: no ``out=``, no
    keyword arguments) and ``rdunder`` (``2.0 + a``) are the same path without the keyword
    handling, installed as ``ndarray``'s operators."""
    name = row.name
    if row.forward is not None:
        raise ValueError(
            f"{name}: an elementwise binary row computes NumPy's (CuPy's) own "
            "function; a row with its own forward is a plain row"
        )
    np_fn = getattr(numpy, row.np_name)
    scalars = (int, float, bool)

    def core(a, b):
        # Plain arrays (or a Python scalar) on cpu: NumPy directly; anything else: call().
        ta, tb = type(a), type(b)
        if ta is ndarray:
            dev = a._device
            if tb is ndarray:
                if b._device is not dev and b._device != dev:
                    raise _device_mismatch(name, dev, b._device)
                rb = b._data
            elif tb in scalars:
                rb = b
            else:
                return call(row, (a, b), {})
            ra = a._data
        elif tb is ndarray and ta in scalars:
            dev, ra, rb = b._device, a, b._data
        else:
            return call(row, (a, b), {})
        if dev.device_type != "cpu":
            return call(row, (a, b), {})
        try:
            y = np_fn(ra, rb)
        except _CAUGHT as e:
            raise renamed_error(name, e) from None
        if type(y) is not _NDARRAY:
            y = _asarray(y)
        if y.dtype is _F64 and not (
            (ta is ndarray and ra.dtype is _F64) or (tb is ndarray and rb.dtype is _F64)
        ):
            y = y.astype(_F32)
        res = _new(ndarray)
        res._data, res._device = y, dev
        if d is not None and _recording_get() and y.dtype.kind != "b":
            ins = tuple(v for v in (a, b) if type(v) is ndarray)
            for v in ins:
                if v._node is not None or v._grad_req != "null":
                    res._node = Node(ins, _binary_node(ins, ra, rb, y, d), _binary_graph(d, a, b))
                    break
        return res

    def fn(a, b, out=None, **kwargs):
        if kwargs:
            return call(row, (a, b), kwargs, out)
        res = core(a, b)
        if out is not None:
            _check_out(name, out, res._device)
            return _write_out(name, out, res)
        return res

    def rdunder(a, b):
        return core(b, a)

    fn.dunder, fn.rdunder, fn.np_fn = core, rdunder, np_fn  # np_fn: for the C operators
    return fn


def _binary_graph(d, a, b):
    # Outside core(): a closure there would make a and b cells, created on every call.
    return lambda out, g: binary_graph(d, a, b, out, g)


def _binary_node(ins, ra, rb, y, d):
    def backward(g):
        da, db = d(numpy, ra, rb, y)
        grads = []
        if isinstance(ra, numpy.ndarray) and ins[0]._data is ra:
            grads.append(_unbroadcast(g * da, ra.shape).astype(ra.dtype, copy=False))
        if isinstance(rb, numpy.ndarray) and ins[-1]._data is rb:
            grads.append(_unbroadcast(g * db, rb.shape).astype(rb.dtype, copy=False))
        return tuple(grads)

    return backward


def _pair_fast(row):
    """Two arrays on one cpu device, outside recording (``matmul``, ``dot``): NumPy directly."""
    name, np_fn = row.name, row.cpu

    def fn(a, b, *args, out=None, **kwargs):
        if (
            type(a) is ndarray
            and type(b) is ndarray
            and not args
            and not kwargs
            and out is None
            and np_fn is not None
            and a._device.device_type == "cpu"
            and not (
                _recording_get()
                and (
                    a._node is not None
                    or a._grad_req != "null"
                    or b._node is not None
                    or b._grad_req != "null"
                )
            )
        ):
            if b._device is not a._device and b._device != a._device:
                raise _device_mismatch(name, a._device, b._device)
            try:
                y = np_fn(a._data, b._data)
            except _CAUGHT as e:
                raise renamed_error(name, e) from None
            if type(y) is not _NDARRAY:
                y = _asarray(y)
            if y.dtype is _F64 and a._data.dtype is not _F64 and b._data.dtype is not _F64:
                y = y.astype(_F32)
            res = _new(ndarray)
            res._data, res._device = y, a._device
            return res
        return call(row, (a, b) + args, kwargs, out)

    fn.np_fn = np_fn  # the C base's @ takes the same fast path (gluonlite/_cndarray.c)
    return fn


# NumPy's sum/prod/max/min methods are Python functions (numpy/_core/_methods.py) that
# pass their arguments on to the ufunc's reduce: called with at most an axis, the reduce
# itself (the same C call, one Python layer less).
_REDUCES = {
    "sum": numpy.add.reduce,
    "prod": numpy.multiply.reduce,
    "max": numpy.maximum.reduce,
    "min": numpy.minimum.reduce,
}


def _method_fast(row):
    """Reductions on one cpu array outside recording: the NumPy array's own method (NumPy's
    module-level ``sum`` & co. add a Python layer of their own). Every such method takes
    ``axis`` first, with None its default."""
    meth = getattr(numpy.ndarray, row.np_name)  # unbound: no attribute lookup per call
    reduce = _REDUCES.get(row.np_name)
    name = row.name

    def fn(a, axis=None, *args, out=None, **kwargs):
        if (
            type(a) is ndarray
            and out is None
            and not args
            and a._device.device_type == "cpu"
            and not (_recording_get() and (a._node is not None or a._grad_req != "null"))
        ):
            ra = a._data
            try:
                if kwargs:
                    y = meth(ra, axis, **kwargs)
                elif reduce is not None:
                    y = reduce(ra, axis)
                else:
                    y = meth(ra, axis)
            except _CAUGHT as e:
                raise renamed_error(name, e) from None
            if type(y) is not _NDARRAY:
                y = _asarray(y)
            if y.dtype is _F64 and ra.dtype is not _F64 and "dtype" not in kwargs:
                y = y.astype(_F32)
            res = _new(ndarray)
            res._data, res._device = y, a._device
            return res
        return call(row, (a,) if axis is None and not args else (a, axis) + args, kwargs, out)

    fn.np_fn, fn.reduce = meth, reduce  # for the C form (make)
    return fn


def _seq_fast(row):
    """A list of plain arrays on one cpu device, outside recording (``concatenate``,
    ``stack``): NumPy directly on their raw arrays."""
    name, np_fn = row.name, row.cpu

    def fn(seq, *args, out=None, **kwargs):
        tseq = type(seq)
        if (
            out is None
            and not args
            and (tseq is list or tseq is tuple)
            and seq
            and type(seq[0]) is ndarray
        ):
            dev = seq[0]._device
            recording = _recording_get()
            raws = []
            if dev.device_type == "cpu":
                for v in seq:
                    if type(v) is not ndarray or (
                        recording and (v._node is not None or v._grad_req != "null")
                    ):
                        break
                    if v._device is not dev and v._device != dev:
                        raise _device_mismatch(name, dev, v._device)
                    raws.append(v._data)
                else:
                    try:
                        y = np_fn(raws, **kwargs) if kwargs else np_fn(raws)
                    except _CAUGHT as e:
                        raise renamed_error(name, e) from None
                    if (
                        y.dtype is _F64
                        and "dtype" not in kwargs
                        and not any(r.dtype is _F64 for r in raws)
                    ):
                        y = y.astype(_F32)
                    res = _new(ndarray)
                    res._data, res._device = y, dev
                    return res
        return call(row, (seq,) + args, kwargs, out)

    fn.np_fn = np_fn  # for the C form (make)
    return fn


# --------------------------------------------------------------------- make
def make(row: Row, kind: str | None = None, d=None):
    """The public function for ``row``; ``kind`` 'unary'/'binary' takes a fast path."""
    if kind == "unary":
        if d is not None:
            row.grad, row.graph = unary_grad(d), True
        fn = _unary_fast(row, d)
    elif kind == "binary":
        if d is not None:
            row.grad, row.graph = binary_grad(d), True
        fn = _binary_fast(row, d)
    elif kind == "pair":
        fn = _pair_fast(row)
    elif kind == "method":
        fn = _method_fast(row)
    elif kind == "seq":
        fn = _seq_fast(row)
    elif row.out:

        def fn(*args, out=None, **kwargs):
            return call(row, args, kwargs, out)
    else:

        def fn(*args, **kwargs):
            return call(row, args, kwargs)

    fn.__name__ = fn.__qualname__ = row.name
    mod = "numpy.linalg" if row.module == "linalg" else "numpy"
    fn.__doc__ = (
        f"MXNet 2's ``np.{'linalg.' if row.module == 'linalg' else ''}{row.name}``"
        f": ``{mod}.{row.np_name}`` on gluonlite arrays (NumPy on cpu, CuPy on "
        f"gpu), {'differentiable' if row.grad is not None else 'not differentiable'}"
        ". Inputs must share one device."
    )
    fn.row = row
    if _C is not None and kind is not None and getattr(fn, "np_fn", None) is not None:
        # The C extension's form of the same fast path (gluonlite/_cndarray.c, FastOp): the
        # plain cpu call outside recording in C, every other call to fn itself.
        fast = _C.fast(kind, fn.np_fn, getattr(fn, "reduce", None), fn)
        fast.__dict__.update(fn.__dict__)
        fast.__name__ = fast.__qualname__ = fn.__name__
        fast.__doc__, fast.__module__, fast.__wrapped__ = fn.__doc__, fn.__module__, fn
        return fast
    return fn
