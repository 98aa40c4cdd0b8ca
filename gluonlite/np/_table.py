"""Every ``mx.np`` array function as one row: name, forward, backward, dtype rule.

Forward is NumPy's (cpu) or CuPy's (gpu) function of the same name unless a row says
otherwise; backward sits on the same row (see ``_dispatch.py`` for the kinds; ``graph=True``:
the rule also runs recorded, for higher-order gradients). Every row
follows MXNet's dtype rule (a float64 result from non-float64 inputs is float32) unless it
says ``float32=False``.
"""

from __future__ import annotations

import math

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy

from .._typing import RawArray
from ..ndarray import _unbroadcast
from ._dispatch import Ctx, Row, Xp, make, select_grad

if TYPE_CHECKING:
    from typing import TypeAlias

# An einsum form of a product: (input subscripts, output subscripts, the two operands).
_Subs: TypeAlias = tuple[list[str], str, RawArray, RawArray]
_SubsFn: TypeAlias = Callable[[RawArray, RawArray, Ctx], _Subs]

_LN10, _LN2 = math.log(10.0), math.log(2.0)


def _zero(xp: Xp, x: RawArray, y: RawArray) -> RawArray:
    return xp.zeros_like(x)


# ------------------------------------------------------------------ elementwise, one input
# name: dy/dx as d(xp, x, y); None = not differentiable.  (np_name when NumPy's differs)
UNARY = {
    "sin": lambda xp, x, y: xp.cos(x),
    "cos": lambda xp, x, y: -xp.sin(x),
    "tan": lambda xp, x, y: 1 + y * y,
    "sinh": lambda xp, x, y: xp.cosh(x),
    "cosh": lambda xp, x, y: xp.sinh(x),
    "tanh": lambda xp, x, y: 1 - y * y,
    "arcsin": lambda xp, x, y: 1 / xp.sqrt(1 - x * x),
    "arccos": lambda xp, x, y: -1 / xp.sqrt(1 - x * x),
    "arctan": lambda xp, x, y: 1 / (1 + x * x),
    "arcsinh": lambda xp, x, y: 1 / xp.sqrt(x * x + 1),
    "arccosh": lambda xp, x, y: 1 / xp.sqrt(x * x - 1),
    "arctanh": lambda xp, x, y: 1 / (1 - x * x),
    "exp": lambda xp, x, y: y,
    "expm1": lambda xp, x, y: y + 1,
    "log": lambda xp, x, y: 1 / x,
    "log10": lambda xp, x, y: 1 / (x * _LN10),
    "log2": lambda xp, x, y: 1 / (x * _LN2),
    "log1p": lambda xp, x, y: 1 / (1 + x),
    "sqrt": lambda xp, x, y: 0.5 / y,
    "cbrt": lambda xp, x, y: 1 / (3 * y * y),
    "square": lambda xp, x, y: 2 * x,
    "reciprocal": lambda xp, x, y: -y * y,
    "abs": lambda xp, x, y: xp.sign(x),
    "absolute": lambda xp, x, y: xp.sign(x),
    "fabs": lambda xp, x, y: xp.sign(x),
    "negative": lambda xp, x, y: -xp.ones_like(x),
    "positive": lambda xp, x, y: xp.ones_like(x),
    "degrees": lambda xp, x, y: xp.full_like(x, 180 / math.pi),
    "rad2deg": lambda xp, x, y: xp.full_like(x, 180 / math.pi),
    "radians": lambda xp, x, y: xp.full_like(x, math.pi / 180),
    "deg2rad": lambda xp, x, y: xp.full_like(x, math.pi / 180),
    "nan_to_num": lambda xp, x, y: xp.isfinite(x).astype(x.dtype),
    # piecewise constant: zero gradient, as MXNet
    "sign": _zero,
    "rint": _zero,
    "fix": _zero,
    "ceil": _zero,
    "floor": _zero,
    "trunc": _zero,
    "around": _zero,
    "round": _zero,
    # not differentiable
    "bitwise_not": None,
    "invert": None,
    "logical_not": None,
    "isnan": None,
    "isinf": None,
    "isposinf": None,
    "isneginf": None,
    "isfinite": None,
}
UNARY_ALIASES = {
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "round_": "round",
    "bitwise_invert": "invert",
}


# ------------------------------------------------------------------ elementwise, two inputs
def _floor_ratio(xp: Xp, a: RawArray, b: RawArray) -> RawArray:
    return xp.floor(xp.asarray(a) / b)


# name: (dy/da, dy/db) as d(xp, a, b, y); a or b may be a Python scalar.
BINARY = {
    "add": lambda xp, a, b, y: (1, 1),
    "subtract": lambda xp, a, b, y: (1, -1),
    "multiply": lambda xp, a, b, y: (b, a),
    "divide": lambda xp, a, b, y: (1 / b, -y / b),
    "true_divide": lambda xp, a, b, y: (1 / b, -y / b),
    "power": lambda xp, a, b, y: (
        b * xp.power(a, xp.asarray(b) - 1),
        y * xp.log(xp.where(xp.asarray(a) > 0, a, 1)),
    ),
    "mod": lambda xp, a, b, y: (1, -_floor_ratio(xp, a, b)),
    "remainder": lambda xp, a, b, y: (1, -_floor_ratio(xp, a, b)),
    "fmod": lambda xp, a, b, y: (1, -xp.trunc(xp.asarray(a) / b)),
    "floor_divide": lambda xp, a, b, y: (0, 0),
    "arctan2": lambda xp, a, b, y: (
        b / (xp.asarray(a) ** 2 + b**2),
        -xp.asarray(a) / (xp.asarray(a) ** 2 + b**2),
    ),
    "hypot": lambda xp, a, b, y: (a / y, b / y),
    "maximum": lambda xp, a, b, y: (xp.asarray(a) >= b, xp.asarray(a) < b),
    "minimum": lambda xp, a, b, y: (xp.asarray(a) <= b, xp.asarray(a) > b),
    "fmax": lambda xp, a, b, y: (xp.asarray(a) >= b, xp.asarray(a) < b),
    "fmin": lambda xp, a, b, y: (xp.asarray(a) <= b, xp.asarray(a) > b),
    "copysign": lambda xp, a, b, y: (xp.sign(a) * xp.copysign(1, b), 0),
    "ldexp": lambda xp, a, b, y: (xp.ldexp(xp.ones_like(xp.asarray(a)), b), 0),
    "logaddexp": lambda xp, a, b, y: (xp.exp(xp.asarray(a) - y), xp.exp(xp.asarray(b) - y)),
    # not differentiable
    "bitwise_and": None,
    "bitwise_or": None,
    "bitwise_xor": None,
    "left_shift": None,
    "right_shift": None,
    "lcm": None,
    "gcd": None,
    "logical_and": None,
    "logical_or": None,
    "logical_xor": None,
    "equal": None,
    "not_equal": None,
    "greater": None,
    "less": None,
    "greater_equal": None,
    "less_equal": None,
}
BINARY_ALIASES = {
    "pow": "power",
    "atan2": "arctan2",
    "bitwise_left_shift": "left_shift",
    "bitwise_right_shift": "right_shift",
}


# ------------------------------------------------------------------ argument helpers
def _arg(ctx: Ctx, pos: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` (positional index ``pos``) of the call, raw."""
    if len(ctx.args) > pos:
        return ctx.args[pos]
    return ctx.kwargs.get(name, default)


def _axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes) if ndim else ()


def _expand(
    xp: Xp, g: RawArray, x_shape: Sequence[int], axis: int | Sequence[int] | None, keepdims: bool
) -> RawArray:
    """``g`` of a reduction over ``axis`` reshaped to broadcast against the input."""
    if keepdims or not x_shape:
        return g
    return xp.expand_dims(g, _axes(axis, len(x_shape)))


# ------------------------------------------------------------------ reductions
def _sum_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x = ctx.ins[0]
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 4, "keepdims", False)
    return [ctx.xp.broadcast_to(_expand(ctx.xp, g, x.shape, axis, keep), x.shape)]


def _count(shape: Sequence[int], axis: int | Sequence[int] | None) -> int:
    return int(numpy.prod([shape[a] for a in _axes(axis, len(shape))]))


def _mean_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x = ctx.ins[0]
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 4, "keepdims", False)
    g = _expand(ctx.xp, g, x.shape, axis, keep) / max(_count(x.shape, axis), 1)
    return [ctx.xp.broadcast_to(g, x.shape)]


def _prod_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 4, "keepdims", False)
    y = _expand(xp, xp.asarray(ctx.out), x.shape, axis, keep)
    return [_expand(xp, g, x.shape, axis, keep) * y / x]


def _var_grad(ctx: Ctx, g: RawArray, std: bool = False) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 5, "keepdims", False)
    ddof = _arg(ctx, 4, "ddof", 0)
    n = _count(x.shape, axis) - ddof
    centred = x - x.mean(axis=axis, keepdims=True)
    g = _expand(xp, g, x.shape, axis, keep)
    if std:
        return [g * centred / (n * _expand(xp, xp.asarray(ctx.out), x.shape, axis, keep))]
    return [g * 2 * centred / n]


def _extreme_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    """Max/min: the gradient goes to the extreme elements, shared equally between ties."""
    x, xp = ctx.ins[0], ctx.xp
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 3, "keepdims", False)
    y = _expand(xp, xp.asarray(ctx.out), x.shape, axis, keep)
    mask = (x == y).astype(g.dtype)
    mask /= mask.sum(axis=axis, keepdims=True)
    return [mask * _expand(xp, g, x.shape, axis, keep)]


def _average_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    axis, weights = _arg(ctx, 1, "axis"), _arg(ctx, 2, "weights")
    keep = _arg(ctx, 4, "keepdims", False)
    g = _expand(xp, g, x.shape, axis, keep)
    if weights is None:
        return [xp.broadcast_to(g / max(_count(x.shape, axis), 1), x.shape)]
    w = weights
    if w.shape != x.shape:  # 1-D weights along a single axis
        shape = [1] * x.ndim
        shape[_axes(axis, x.ndim)[0]] = w.shape[0]
        w = w.reshape(shape)
    total = w.sum(axis=axis, keepdims=True)
    y = _expand(xp, xp.asarray(ctx.out), x.shape, axis, keep)
    gw = _unbroadcast(xp.broadcast_to(g * (x - y) / total, x.shape), w.shape)
    return [g * w / total, gw.reshape(weights.shape)][: len(ctx.ins)]


def _quantile_grad(ctx: Ctx, g: RawArray, scale: float = 1.0) -> list[RawArray | None]:
    """Linear-interpolation quantiles: each output is a mix of two sorted neighbours."""
    x, xp = ctx.ins[0], ctx.xp
    name = ctx.row.name
    q: Any  # a number or an array of them, made an array below
    if name == "median":
        q, axis, keep = 0.5, _arg(ctx, 1, "axis"), _arg(ctx, 4, "keepdims", False)
    else:
        q, axis = _arg(ctx, 1, "q"), _arg(ctx, 2, "axis")
        keep = _arg(ctx, 6, "keepdims", False)
        if _arg(ctx, 5, "method", "linear") != "linear":
            raise ValueError(f"{name}: the gradient needs method='linear'")
    if axis is not None and not isinstance(axis, int):
        raise ValueError(f"{name}: the gradient supports one axis or axis=None")
    q = numpy.asarray(q, dtype=numpy.float64) / scale
    xm = x.reshape(-1) if axis is None else xp.moveaxis(x, axis, -1)
    n = xm.shape[-1]
    if keep:  # drop the kept axis: g becomes q.shape + xm.shape[:-1]
        g = g.reshape(q.shape + xm.shape[:-1])
    order = xp.argsort(xm, axis=-1, kind="stable")
    pos = q.reshape(-1) * (n - 1)
    g = g.reshape((pos.size,) + xm.shape[:-1])
    # Each quantile's gradient lands on its two sorted neighbours: a sum of rows of the
    # identity, not in-place adds (so that it can be recorded too, for create_graph).
    eye = xp.eye(n, dtype=g.dtype)
    grad_sorted = None
    for j, p in enumerate(pos.tolist()):
        lo, hi = int(math.floor(p)), int(math.ceil(p))
        frac = p - lo
        term = g[j][..., None] * (eye[lo] * (1 - frac) + eye[hi] * frac)
        grad_sorted = term if grad_sorted is None else grad_sorted + term
    grad = xp.take_along_axis(grad_sorted, xp.argsort(order, axis=-1), axis=-1)
    return [grad.reshape(x.shape) if axis is None else xp.moveaxis(grad, -1, axis)]


def _polyval_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    xp = ctx.xp
    p, x = xp.asarray(ctx.args[0]), xp.asarray(ctx.args[1])
    n = p.shape[0]
    powers = xp.stack([x ** (n - 1 - k) for k in range(n)])  # (n,) + x.shape
    gp = (powers * g).reshape(n, -1).sum(axis=1)
    dp = p[:-1] * xp.arange(n - 1, 0, -1, dtype=p.dtype)
    gx = g * (xp.polyval(dp, x) if n > 1 else xp.zeros_like(x))
    return [gr for gr, o in zip((gp, gx), ctx.orig[0]) if hasattr(o, "_data")]


def _cumsum_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    axis = _arg(ctx, 1, "axis")
    if axis is None:
        return [xp.flip(xp.cumsum(xp.flip(g.reshape(-1)))).reshape(x.shape)]
    return [xp.flip(xp.cumsum(xp.flip(g, axis), axis), axis)]


def _trace_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    offset, a1, a2 = _arg(ctx, 1, "offset", 0), _arg(ctx, 2, "axis1", 0), _arg(ctx, 3, "axis2", 1)
    a1, a2 = a1 % x.ndim, a2 % x.ndim
    eye = xp.eye(x.shape[a1], x.shape[a2], k=offset, dtype=g.dtype)
    full = xp.asarray(g)[..., None, None] * eye
    return [xp.moveaxis(full, (-2, -1), (a1, a2))]


def _diff_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    n, axis = _arg(ctx, 1, "n", 1), _arg(ctx, 2, "axis", -1)
    if _arg(ctx, 3, "prepend") is not None or _arg(ctx, 4, "append") is not None:
        raise ValueError("diff: the gradient with prepend/append is not supported")
    for _ in range(n):  # adjoint of one difference: g[i-1] - g[i]
        # Two pad lists, not one changed in between: a recorded pad (create_graph) keeps
        # its arguments for its own backward.
        front, back = [(0, 0)] * g.ndim, [(0, 0)] * g.ndim
        front[axis % g.ndim], back[axis % g.ndim] = (1, 0), (0, 1)
        g = xp.pad(g, front) - xp.pad(g, back)
    return [g.reshape(x.shape)]


def _ediff1d_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    if _arg(ctx, 1, "to_end") is not None or _arg(ctx, 2, "to_begin") is not None:
        raise ValueError("ediff1d: the gradient with to_end/to_begin is not supported")
    xp = ctx.xp
    g = xp.pad(g, (1, 0)) - xp.pad(g, (0, 1))
    return [g.reshape(ctx.ins[0].shape)]


def _clip_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    lo, hi = _arg(ctx, 1, "a_min"), _arg(ctx, 2, "a_max")
    mask = xp.ones(x.shape, dtype=bool)
    if lo is not None:
        mask &= x >= lo
    if hi is not None:
        mask &= x <= hi
    return [g * mask] + [None] * (len(ctx.ins) - 1)


def _sort_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    x, xp = ctx.ins[0], ctx.xp
    axis = _arg(ctx, 1, "axis", -1)
    if axis is None:  # g[j] belongs to element order[j]: gather by the inverse order
        order = xp.argsort(x.reshape(-1), kind="stable")
        return [g.reshape(-1)[xp.argsort(order)].reshape(x.shape)]
    order = xp.argsort(x, axis=axis, kind="stable")
    # g[j] belongs to the element sorted into place j: undo the permutation
    return [xp.take_along_axis(g, xp.argsort(order, axis=axis), axis=axis)]


def _cross_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    xp = ctx.xp
    a, b = ctx.args[0], ctx.args[1]
    if any(k in ctx.kwargs for k in ("axisa", "axisb", "axisc")) or len(ctx.args) > 2:
        raise ValueError("cross: the gradient supports only the axis= argument")
    axis = ctx.kwargs.get("axis", -1)
    grads = (
        _unbroadcast(xp.cross(b, g, axis=axis), numpy.shape(a)),
        _unbroadcast(xp.cross(g, a, axis=axis), numpy.shape(b)),
    )
    return [gr for gr, o in zip(grads, ctx.orig[0]) if hasattr(o, "_data")]


# ------------------------------------------------------------------ products via einsum
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_vjp(
    xp: Xp, subs: Sequence[str], out_sub: str, operands: Sequence[RawArray], g: RawArray, k: int
) -> RawArray:
    """Gradient of ``einsum(subs -> out_sub)`` w.r.t. operand ``k``."""
    target = subs[k]
    if len(set(target)) != len(target):
        raise ValueError(
            "einsum: the gradient of an operand with a repeated index (a diagonal) is not supported"
        )
    others = [s for i, s in enumerate(subs) if i != k] + [out_sub]
    ops = [o for i, o in enumerate(operands) if i != k] + [g]
    present = "".join(c for c in target if any(c in s for s in others))
    res = xp.einsum(",".join(others) + "->" + present, *ops)
    if present != target:  # indices summed within operand k alone: broadcast back
        shape = operands[k].shape
        for pos, c in enumerate(target):
            if c not in present:
                res = xp.expand_dims(res, pos)
        res = xp.broadcast_to(res, shape)
    return res


def _einsum_grads(
    ctx: Ctx, g: RawArray, subs: Sequence[str], out_sub: str, operands: Sequence[RawArray]
) -> list[RawArray]:
    return [_einsum_vjp(ctx.xp, subs, out_sub, operands, g, k) for k in range(len(operands))]


def _parse_einsum(spec: str, operands: Sequence[RawArray]) -> tuple[list[str], str]:
    spec = spec.replace(" ", "")
    if "." in spec:
        raise ValueError("einsum: the gradient with '...' is not supported")
    if "->" in spec:
        ins, out = spec.split("->")
    else:
        ins = spec
        letters = ins.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ins.split(","), out


def _einsum_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    spec, operands = ctx.args[0], list(ctx.args[1:])
    if not isinstance(spec, str):
        raise ValueError("einsum: the gradient needs the subscripts-string form")
    subs, out = _parse_einsum(spec, operands)
    grads = _einsum_grads(ctx, g, subs, out, operands)
    return [gr for gr, o in zip(grads, ctx.orig[0][1:]) if hasattr(o, "_data")]


def _tensordot_subs(a_nd: int, b_nd: int, axes: Any) -> tuple[list[str], str]:
    if isinstance(axes, int):
        ax_a, ax_b = list(range(a_nd - axes, a_nd)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a, ax_b = [i % a_nd for i in ax_a], [i % b_nd for i in ax_b]
    sa = list(_LETTERS[:a_nd])
    sb = list(_LETTERS[a_nd : a_nd + b_nd])
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in ax_a] + [
        c for j, c in enumerate(sb) if j not in ax_b
    ]
    return ["".join(sa), "".join(sb)], "".join(out)


def _pair_grad(subs_fn: _SubsFn) -> Callable[[Ctx, RawArray], list[RawArray | None]]:
    """Gradient of a two-operand product whose subscripts ``subs_fn(a, b, ctx)`` gives."""

    def grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
        a, b = ctx.args[0], ctx.args[1]
        xp = ctx.xp
        a2, b2 = xp.asarray(a), xp.asarray(b)
        subs, out, a2, b2 = subs_fn(a2, b2, ctx)
        ga, gb = _einsum_grads(ctx, g.reshape(_out_shape(subs, out, a2, b2)), subs, out, [a2, b2])
        grads = []
        if hasattr(ctx.orig[0][0], "_data"):
            grads.append(ga.reshape(numpy.shape(a)))
        if hasattr(ctx.orig[0][1], "_data"):
            grads.append(gb.reshape(numpy.shape(b)))
        return grads

    return grad


def _out_shape(subs: Sequence[str], out: str, a: RawArray, b: RawArray) -> tuple[int, ...]:
    sizes = dict(zip(subs[0], a.shape))
    sizes.update(zip(subs[1], b.shape))
    return tuple(sizes[c] for c in out)


def _tensordot_subs_ctx(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    subs, out = _tensordot_subs(a.ndim, b.ndim, _arg(ctx, 2, "axes", 2))
    return subs, out, a, b


def _dot_subs(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    if a.ndim == 0 or b.ndim == 0:
        return [_LETTERS[: a.ndim], _LETTERS[: b.ndim]], _LETTERS[: max(a.ndim, b.ndim)], a, b
    axes = ([a.ndim - 1], [0 if b.ndim == 1 else b.ndim - 2])
    subs, out = _tensordot_subs(a.ndim, b.ndim, axes)
    if b.ndim >= 2:  # dot puts b's last axis last
        free_b = [c for j, c in enumerate(subs[1]) if j != b.ndim - 2]
        out = out[: a.ndim - 1] + "".join(free_b)
    return subs, out, a, b


def _inner_subs(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    if a.ndim == 0 or b.ndim == 0:
        return [_LETTERS[: a.ndim], _LETTERS[: b.ndim]], _LETTERS[: max(a.ndim, b.ndim)], a, b
    subs, out = _tensordot_subs(a.ndim, b.ndim, ([-1], [-1]))
    return subs, out, a, b


def _outer_subs(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    return ["a", "b"], "ab", a.reshape(-1), b.reshape(-1)


def _vdot_subs(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    return ["a", "a"], "", a.reshape(-1), b.reshape(-1)


def _kron_subs(a: RawArray, b: RawArray, ctx: Ctx) -> _Subs:
    nd = max(a.ndim, b.ndim)
    a = a.reshape((1,) * (nd - a.ndim) + a.shape)
    b = b.reshape((1,) * (nd - b.ndim) + b.shape)
    sa, sb = _LETTERS[:nd], _LETTERS[nd : 2 * nd]
    return [sa, sb], "".join(x + y for x, y in zip(sa, sb)), a, b


def _matmul_grad(ctx: Ctx, g: RawArray) -> list[RawArray | None]:
    xp = ctx.xp
    ra, rb = ctx.args[0], ctx.args[1]
    a2 = ra[None, :] if ra.ndim == 1 else ra
    b2 = rb[:, None] if rb.ndim == 1 else rb
    g2 = g
    if rb.ndim == 1:
        g2 = xp.expand_dims(g2, -1)
    if ra.ndim == 1:
        g2 = xp.expand_dims(g2, -2)
    ga = _unbroadcast(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(ra.shape)
    gb = _unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(rb.shape)
    return [ga, gb]


# ------------------------------------------------------------------ custom forwards
def _fill_diagonal(xp: Xp, a: RawArray, val: Any, wrap: bool = False) -> None:
    xp.fill_diagonal(a, val, wrap=wrap)


def _concat(xp: Xp, seq: Sequence[RawArray], axis: int | None = 0, out: Any = None) -> RawArray:
    return xp.concatenate(seq, axis=axis)


def _where(xp: Xp, condition: RawArray, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return xp.nonzero(condition)
    return xp.where(condition, x, y)


def _vstack(xp: Xp, tup: Sequence[RawArray]) -> RawArray:
    return xp.vstack(tup)


def _resize(xp: Xp, a: RawArray, new_shape: int | Sequence[int]) -> RawArray:
    """NumPy's ``resize`` (repeat the elements cyclically), built from calls CuPy has."""
    shape = (new_shape,) if isinstance(new_shape, int) else tuple(new_shape)
    n = int(numpy.prod(shape))
    flat = a.reshape(-1)
    if flat.size == 0:
        return xp.zeros(shape, dtype=a.dtype)
    return xp.tile(flat, -(-n // flat.size))[:n].reshape(shape)


# ------------------------------------------------------------------ the other rows
_GRAD = {
    "sum": _sum_grad,
    "mean": _mean_grad,
    "prod": _prod_grad,
    "std": lambda ctx, g: _var_grad(ctx, g, std=True),
    "var": _var_grad,
    "amax": _extreme_grad,
    "amin": _extreme_grad,
    "max": _extreme_grad,
    "min": _extreme_grad,
    "average": _average_grad,
    "cumsum": _cumsum_grad,
    "trace": _trace_grad,
    "diff": _diff_grad,
    "ediff1d": _ediff1d_grad,
    "clip": _clip_grad,
    "sort": _sort_grad,
    "cross": _cross_grad,
    "einsum": _einsum_grad,
    "tensordot": _pair_grad(_tensordot_subs_ctx),
    "dot": _pair_grad(_dot_subs),
    "inner": _pair_grad(_inner_subs),
    "outer": _pair_grad(_outer_subs),
    "vdot": _pair_grad(_vdot_subs),
    "kron": _pair_grad(_kron_subs),
    "matmul": _matmul_grad,
}

SELECT = "select"
ROWS = [
    # reductions and scans
    Row("sum", out=True, grad=_GRAD["sum"], graph=True),
    Row("mean", out=True, grad=_GRAD["mean"], graph=True),
    Row("prod", out=True, grad=_GRAD["prod"], graph=True),
    Row("std", out=True, grad=_GRAD["std"], graph=True),
    Row("var", out=True, grad=_GRAD["var"], graph=True),
    Row("amax", out=True, grad=_GRAD["amax"], graph=True),
    Row("amin", out=True, grad=_GRAD["amin"], graph=True),
    Row("max", out=True, grad=_GRAD["max"], graph=True),
    Row("min", out=True, grad=_GRAD["min"], graph=True),
    Row("average", grad=_GRAD["average"], graph=True),
    Row("cumsum", out=True, grad=_GRAD["cumsum"], graph=True),
    Row("trace", out=True, grad=_GRAD["trace"], graph=True),
    Row("diff", grad=_GRAD["diff"], graph=True),
    Row("ediff1d", grad=_GRAD["ediff1d"], graph=True),
    Row("median", out=True, grad=_quantile_grad, graph=True),
    Row("quantile", out=True, grad=_quantile_grad, graph=True),
    Row(
        "percentile", out=True, grad=lambda ctx, g: _quantile_grad(ctx, g, scale=100.0), graph=True
    ),
    Row("all", out=True),
    Row("any", out=True),
    Row("argmax", out=True),
    Row("argmin", out=True),
    Row("argsort"),
    # products
    Row("dot", out=True, grad=_GRAD["dot"], graph=True),
    Row("matmul", out=True, grad=_GRAD["matmul"], graph=True),
    Row("tensordot", grad=_GRAD["tensordot"], graph=True),
    Row("einsum", out=True, grad=_GRAD["einsum"], graph=True),
    Row("inner", grad=_GRAD["inner"], graph=True),
    Row("outer", grad=_GRAD["outer"], graph=True),
    Row("vdot", grad=_GRAD["vdot"], graph=True),
    Row("kron", grad=_GRAD["kron"], graph=True),
    Row("cross", grad=_GRAD["cross"], graph=True),
    # selection, shape and joining: one "select" backward for all
    Row("broadcast_to", grad=SELECT),
    Row("transpose", grad=SELECT),
    Row("permute_dims", grad=SELECT, np_name="transpose"),
    Row("moveaxis", grad=SELECT),
    Row("swapaxes", grad=SELECT),
    Row("rollaxis", grad=SELECT),
    Row("reshape", grad=SELECT),
    Row("ravel", grad=SELECT),
    Row("squeeze", grad=SELECT),
    Row("expand_dims", grad=SELECT),
    Row("atleast_1d", grad=SELECT),
    Row("atleast_2d", grad=SELECT),
    Row("atleast_3d", grad=SELECT),
    Row("tile", grad=SELECT),
    Row("repeat", grad=SELECT),
    Row("flip", grad=SELECT),
    Row("flipud", grad=SELECT),
    Row("fliplr", grad=SELECT),
    Row("roll", grad=SELECT),
    Row("rot90", grad=SELECT),
    Row("diag", grad=SELECT),
    Row("diagonal", grad=SELECT),
    Row("diagflat", grad=SELECT),
    Row("tril", grad=SELECT),
    Row("triu", grad=SELECT),
    Row("take", grad=SELECT, out=True),
    Row("delete", grad=SELECT),
    Row("insert", grad=SELECT, zero=(2, "values")),
    Row("append", grad=SELECT, zero=(1, "values")),
    Row("resize", _resize, grad=SELECT),
    Row("pad", grad=SELECT, zero=("constant_values",)),
    Row("copy", grad=SELECT),
    Row("concatenate", grad=SELECT, out=True),
    Row("concat", _concat, grad=SELECT, out=True),
    Row("stack", grad=SELECT, out=True),
    Row("vstack", grad=SELECT),
    Row("row_stack", _vstack, grad=SELECT),
    Row("column_stack", grad=SELECT),
    Row("hstack", grad=SELECT),
    Row("dstack", grad=SELECT),
    Row("split", grad=SELECT),
    Row("array_split", grad=SELECT),
    Row("hsplit", grad=SELECT),
    Row("vsplit", grad=SELECT),
    Row("dsplit", grad=SELECT),
    Row("where", _where, grad=SELECT, keep=(0,), zero=(1, 2, "x", "y")),
    Row("clip", out=True, grad=_GRAD["clip"], graph=True),
    Row("sort", grad=_GRAD["sort"], graph=True),
    # not differentiable
    Row("unique"),
    Row("nonzero"),
    Row("flatnonzero"),
    Row("unravel_index"),
    Row("diag_indices_from"),
    Row("triu_indices_from"),
    Row("histogram"),
    Row("bincount"),
    Row("interp"),
    Row("polyval", grad=_polyval_grad),
    Row("fill_diagonal", _fill_diagonal, raw=True),
    Row("shape", raw=True),
    Row("shares_memory", raw=True),
    Row("may_share_memory", raw=True),
]


# Rows with a cpu shortcut outside recording (see ``_dispatch``): two-array products,
# joins of a list of arrays, and reductions that are methods of NumPy's arrays.
_FAST_KIND = {
    "matmul": "pair",
    "dot": "pair",
    "concatenate": "seq",
    "stack": "seq",
    **{
        n: "method"
        for n in (
            "sum",
            "mean",
            "prod",
            "std",
            "var",
            "max",
            "min",
            "all",
            "any",
            "argmax",
            "argmin",
            "cumsum",
        )
    },
}


def build() -> dict[str, Callable[..., Any]]:
    """``{name: function}`` for every row, aliases included."""
    fns: dict[str, Callable[..., Any]] = {}
    for name, d in UNARY.items():
        fns[name] = make(Row(name, out=True), "unary", d)
    for alias, name in UNARY_ALIASES.items():
        fns[alias] = make(Row(alias, np_name=name, out=True), "unary", UNARY[name])
    for name, d2 in BINARY.items():
        fns[name] = make(Row(name, out=True), "binary", d2)
    for alias, name in BINARY_ALIASES.items():
        fns[alias] = make(Row(alias, np_name=name, out=True), "binary", BINARY[name])
    for row in ROWS:
        fns[row.name] = make(row, _FAST_KIND.get(row.name))
    return fns


__all__ = ["build", "ROWS", "UNARY", "BINARY", "select_grad"]
