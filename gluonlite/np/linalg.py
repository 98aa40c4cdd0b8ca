"""``mx.np.linalg``: one row per function, with the gradients of ``norm``, ``inv``, ``det``,
``slogdet``, ``solve``, ``cholesky``, ``svd``, ``eigh``, ``eigvalsh`` and ``svdvals``.

CuPy has no ``eig``/``eigvals`` (and, before 14, no ``eigvals``): on a GPU those compute on
the host and return the result to the GPU. Gradients of ``svd``/``eigh`` assume distinct
singular values/eigenvalues (as every implementation does); ``cholesky``'s and ``eigh``'s
treat the input as symmetric.

>>> import gluonlite as mx
>>> a = mx.np.array([[2., 0.], [0., 4.]])
>>> float(mx.np.linalg.det(a))
8.0
"""

from __future__ import annotations

from typing import Any

from .._typing import DTypeLike
from ..ndarray import ArrayLike
from ..ndarray import ndarray

from ._dispatch import Row, make
from ._table import _arg, _axes
from . import _ops as _np

__all__ = [
    "norm",
    "svd",
    "cholesky",
    "qr",
    "inv",
    "det",
    "slogdet",
    "solve",
    "tensorinv",
    "tensorsolve",
    "pinv",
    "eigvals",
    "eig",
    "eigvalsh",
    "eigh",
    "lstsq",
    "matrix_rank",
    "cross",
    "diagonal",
    "outer",
    "tensordot",
    "trace",
    "matrix_transpose",
    "vecdot",
    "svdvals",
    "vector_norm",
    "matrix_norm",
]


def _t(xp, a):
    return xp.swapaxes(a, -1, -2)


# ------------------------------------------------------------------ norms
def _norm_core(xp, x, y, g, axis, keepdims, ord):
    nd = x.ndim
    vector = (
        isinstance(axis, int)
        or (axis is not None and len(axis) == 1)
        or (axis is None and (nd == 1 or ord is None))
    )
    if not keepdims:
        axes = _axes(axis, nd)
        y, g = xp.expand_dims(xp.asarray(y), axes), xp.expand_dims(xp.asarray(g), axes)
    if ord is None or ord == "fro" or (ord == 2 and vector):
        return g * xp.where(y == 0, 0, x / xp.where(y == 0, 1, y))
    if ord == 1 and vector:
        return g * xp.sign(x)
    raise ValueError(
        f"norm: the gradient for ord={ord!r} is not supported "
        "(None, 'fro', and 1 or 2 for vectors are)"
    )


def _norm_grad(ctx, g):
    x = ctx.ins[0]
    return [
        _norm_core(
            ctx.xp,
            x,
            ctx.out,
            g,
            _arg(ctx, 2, "axis"),
            _arg(ctx, 3, "keepdims", False),
            _arg(ctx, 1, "ord"),
        )
    ]


def _vector_norm(xp, x, axis=None, keepdims: bool = False, ord=2):
    if axis is None:
        res = xp.linalg.norm(x.reshape(-1), ord)
        return res.reshape((1,) * x.ndim) if keepdims else res
    return xp.linalg.norm(x, ord, axis, keepdims)


def _vector_norm_grad(ctx, g):
    x = ctx.ins[0]
    axis, keep = _arg(ctx, 1, "axis"), _arg(ctx, 2, "keepdims", False)
    return [_norm_core(ctx.xp, x, ctx.out, g, axis, keep, _arg(ctx, 3, "ord", 2))]


def _matrix_norm(xp, x, keepdims: bool = False, ord: str = "fro"):
    return xp.linalg.norm(x, ord, (-2, -1), keepdims)


def _matrix_norm_grad(ctx, g):
    x = ctx.ins[0]
    ord = _arg(ctx, 2, "ord", "fro")
    return [
        _norm_core(
            ctx.xp,
            x,
            ctx.out,
            g,
            (x.ndim - 2, x.ndim - 1),
            _arg(ctx, 1, "keepdims", False),
            "fro" if ord == "fro" else ord,
        )
    ]


# ------------------------------------------------------------------ matrix functions
def _inv_grad(ctx, g):
    y, xp = ctx.out, ctx.xp
    return [-_t(xp, y) @ g @ _t(xp, y)]


def _det_grad(ctx, g):
    xp = ctx.xp
    a, det = ctx.ins[0], xp.asarray(ctx.out)
    return [(g * det)[..., None, None] * _t(xp, xp.linalg.inv(a))]


def _slogdet_grad(ctx, g):
    xp, a = ctx.xp, ctx.ins[0]
    if ctx.k == 0:  # the sign is piecewise constant
        return [xp.zeros_like(a)]
    return [xp.asarray(g)[..., None, None] * _t(xp, xp.linalg.inv(a))]


def _solve_grad(ctx, g):
    xp = ctx.xp
    a, b, x = ctx.args[0], ctx.args[1], ctx.out
    gb = xp.linalg.solve(_t(xp, a), g)
    ga = -xp.outer(gb, x) if b.ndim == 1 else -gb @ _t(xp, x)
    return [gr for gr, o in zip((ga, gb), ctx.orig[0]) if hasattr(o, "_data")]


def _cholesky_grad(ctx, g):
    xp, low = ctx.xp, ctx.out
    phi = xp.tril(_t(xp, low) @ g)
    n = low.shape[-1]
    phi = phi - 0.5 * phi * xp.eye(n, dtype=phi.dtype)
    linv = xp.linalg.inv(low)
    s = _t(xp, linv) @ phi @ linv
    return [0.5 * (s + _t(xp, s))]


def _eigh_vjp(xp, w, v, gw, gv):
    inner = xp.zeros(v.shape, dtype=v.dtype)
    if gw is not None:
        inner = inner + xp.asarray(gw)[..., None] * xp.eye(w.shape[-1], dtype=v.dtype)
    if gv is not None:
        diff = w[..., None, :] - w[..., :, None]
        eye = xp.eye(w.shape[-1], dtype=bool)
        f = xp.where(eye, 0, 1 / xp.where(eye, 1, diff))
        inner = inner + f * (_t(xp, v) @ gv)
    ga = v @ inner @ _t(xp, v)
    return 0.5 * (ga + _t(xp, ga))


def _eigh_grad(ctx, g):
    w, v = ctx.out
    return [_eigh_vjp(ctx.xp, w, v, g if ctx.k == 0 else None, g if ctx.k == 1 else None)]


def _eigvalsh_grad(ctx, g):
    xp = ctx.xp
    w, v = xp.linalg.eigh(ctx.ins[0])
    return [_eigh_vjp(xp, w, v, g, None)]


def _svd_vjp(xp, u, s, vh, gu, gs, gvh):
    v = _t(xp, vh)
    ga = xp.zeros((u.shape[:-1] + (vh.shape[-1],)), dtype=u.dtype)
    if gs is not None:
        ga = ga + (u * gs[..., None, :]) @ vh
    if gu is None and gvh is None:
        return ga
    s2 = s * s
    diff = s2[..., None, :] - s2[..., :, None]
    eye = xp.eye(s.shape[-1], dtype=bool)
    f = xp.where(eye, 0, 1 / xp.where(eye, 1, diff))
    if gu is not None:
        j = f * (_t(xp, u) @ gu - _t(xp, gu) @ u)
        ga = ga + u @ (j * s[..., None, :]) @ vh
        proj = xp.eye(u.shape[-2], dtype=u.dtype) - u @ _t(xp, u)
        ga = ga + proj @ (gu / s[..., None, :]) @ vh
    if gvh is not None:
        gv = _t(xp, gvh)
        k = f * (vh @ gv - _t(xp, gv) @ v)
        ga = ga + u @ (s[..., :, None] * k) @ vh
        proj = xp.eye(v.shape[-2], dtype=u.dtype) - v @ vh
        ga = ga + (u / s[..., None, :]) @ _t(xp, gv) @ proj
    return ga


def _svd(xp, a, full_matrices: bool = False, compute_uv: bool = True, hermitian: bool = False):
    """MXNet's svd is the reduced one: (ut, l, v) with ``a = ut @ diag(l) @ v``."""
    return xp.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)


def _svd_grad(ctx, g):
    xp = ctx.xp
    if not isinstance(ctx.out, tuple):
        raise ValueError("svd: the gradient with compute_uv=False is not supported; use svdvals")
    u, s, vh = ctx.out
    if u.shape[-1] != s.shape[-1] or vh.shape[-2] != s.shape[-1]:
        raise ValueError("svd: the gradient needs full_matrices=False")
    gs = [None, None, None]
    gs[ctx.k] = g
    return [_svd_vjp(xp, u, s, vh, *gs)]


def _svdvals(xp, x):
    return xp.linalg.svd(x, compute_uv=False)


def _svdvals_grad(ctx, g):
    xp = ctx.xp
    u, s, vh = xp.linalg.svd(ctx.ins[0], full_matrices=False)
    return [_svd_vjp(xp, u, s, vh, None, g, None)]


def _eig(xp, a):
    if xp.__name__ == "numpy" or hasattr(xp.linalg, "eig"):
        return xp.linalg.eig(a)
    import numpy

    w, v = numpy.linalg.eig(xp.asnumpy(a))
    return xp.asarray(w), xp.asarray(v)


def _eigvals(xp, a):
    if xp.__name__ == "numpy" or hasattr(xp.linalg, "eigvals"):
        return xp.linalg.eigvals(a)
    import numpy

    return xp.asarray(numpy.linalg.eigvals(xp.asnumpy(a)))


_L = "linalg"
ROWS = [
    Row("norm", grad=_norm_grad, module=_L, graph=True),
    Row("vector_norm", _vector_norm, grad=_vector_norm_grad, module=_L, graph=True),
    Row("matrix_norm", _matrix_norm, grad=_matrix_norm_grad, module=_L, graph=True),
    Row("inv", grad=_inv_grad, module=_L, graph=True),
    Row("det", grad=_det_grad, module=_L, graph=True),
    Row("slogdet", grad=_slogdet_grad, module=_L, graph=True),
    Row("solve", grad=_solve_grad, module=_L, graph=True),
    Row("cholesky", grad=_cholesky_grad, module=_L, graph=True),
    Row("svd", _svd, grad=_svd_grad, module=_L),
    Row("svdvals", _svdvals, grad=_svdvals_grad, module=_L, graph=True),
    Row("eigh", grad=_eigh_grad, module=_L),
    Row("eigvalsh", grad=_eigvalsh_grad, module=_L, graph=True),
    # not differentiable here
    Row("qr", module=_L),
    Row("pinv", module=_L),
    Row("lstsq", module=_L),
    Row("tensorinv", module=_L),
    Row("tensorsolve", module=_L),
    Row("matrix_rank", module=_L),
    Row("eig", _eig, module=_L),
    Row("eigvals", _eigvals, module=_L),
]

globals().update({row.name: make(row) for row in ROWS})


# ------------------------------------------------------------------ the Array API spellings
def cross(x1: ArrayLike, x2: ArrayLike, axis: int = -1) -> ndarray:
    """Cross product of 3-vectors along ``axis`` (differentiable)."""
    return _np.cross(x1, x2, axis=axis)


def diagonal(x: ArrayLike, offset: int = 0) -> ndarray:
    """Diagonals of the matrices in the last two axes (differentiable)."""
    return _np.diagonal(x, offset, -2, -1)


def outer(x1: ArrayLike, x2: ArrayLike) -> ndarray:
    """Outer product of two vectors (differentiable)."""
    return _np.outer(x1, x2)


def tensordot(x1: ArrayLike, x2: ArrayLike, axes: Any = 2) -> ndarray:
    """``np.tensordot`` (differentiable)."""
    return _np.tensordot(x1, x2, axes)


def trace(x: ArrayLike, offset: int = 0, dtype: DTypeLike = None) -> ndarray:
    """Traces of the matrices in the last two axes (differentiable)."""
    return _np.trace(x, offset, -2, -1, dtype)


def matrix_transpose(x: ArrayLike) -> ndarray:
    """``x`` with its last two axes swapped (differentiable)."""
    return _np.swapaxes(x, -1, -2)


def vecdot(x1: ArrayLike, x2: ArrayLike, axis: int = -1) -> ndarray:
    """Dot products along ``axis`` (differentiable)."""
    return _np.sum(_np.multiply(x1, x2), axis=axis)
