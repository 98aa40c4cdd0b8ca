"""Tiny inputs for every row of ``mx.np``'s table (and ``mx.np.linalg``'s), shared by the
value test (against NumPy) and the gradient test (against finite differences).

A case is ``(args, kwargs)`` holding NumPy arrays; the tests turn them into gluonlite arrays
on the device under test.
"""

from __future__ import annotations

import numpy

_rng = numpy.random.default_rng(0)


def f(*shape):
    """Normal floats, kept away from 0 and from integers+0.5 (rounding jumps)."""
    x = _rng.normal(size=shape)
    x = numpy.where(numpy.abs(x) < 0.2, x + numpy.sign(x + 1e-9) * 0.3, x)
    return x.astype(numpy.float32)


def distinct(*shape):
    """Floats whose values are all different (no ties for max, sort, ...)."""
    n = int(numpy.prod(shape))
    return (_rng.permutation(n).reshape(shape) * 0.37 + 0.1).astype(numpy.float32)


def uni(lo, hi, *shape):
    return _rng.uniform(lo, hi, size=shape).astype(numpy.float32)


def pos(*shape):
    return uni(0.5, 2.0, *shape)


def unit(*shape):
    return uni(-0.8, 0.8, *shape)


def ints(*shape, hi=5):
    return _rng.integers(1, hi, size=shape).astype(numpy.int64)


def bools(*shape):
    return _rng.integers(0, 2, size=shape).astype(bool)


def spd(n):
    a = _rng.normal(size=(n, n))
    return (a @ a.T + n * numpy.eye(n)).astype(numpy.float32)


def well(n):
    """A well-conditioned square matrix."""
    return (_rng.normal(size=(n, n)) + 3 * numpy.eye(n)).astype(numpy.float32)


def C(*args, **kwargs):
    return (args, kwargs)


_special = numpy.array([1.0, numpy.nan, numpy.inf, -numpy.inf, -2.0], dtype=numpy.float32)

UNARY_DOMAIN = {
    "arcsin": unit,
    "asin": unit,
    "arccos": unit,
    "acos": unit,
    "arctanh": unit,
    "atanh": unit,
    "arccosh": lambda *s: uni(1.2, 3, *s),
    "acosh": lambda *s: uni(1.2, 3, *s),
    "log": pos,
    "log10": pos,
    "log2": pos,
    "log1p": pos,
    "sqrt": pos,
    "reciprocal": pos,
    "cbrt": pos,
    "bitwise_not": ints,
    "invert": ints,
    "bitwise_invert": ints,
    "logical_not": bools,
    "isnan": lambda *s: _special,
    "isinf": lambda *s: _special,
    "isposinf": lambda *s: _special,
    "isneginf": lambda *s: _special,
    "isfinite": lambda *s: _special,
    "nan_to_num": f,
}
BINARY_DOMAIN = {
    "divide": (f, pos),
    "true_divide": (f, pos),
    "power": (pos, f),
    "pow": (pos, f),
    "mod": (f, pos),
    "remainder": (f, pos),
    "fmod": (f, pos),
    "floor_divide": (f, pos),
    "ldexp": (f, ints),
    "bitwise_and": (ints, ints),
    "bitwise_or": (ints, ints),
    "bitwise_xor": (ints, ints),
    "left_shift": (ints, ints),
    "right_shift": (ints, ints),
    "bitwise_left_shift": (ints, ints),
    "bitwise_right_shift": (ints, ints),
    "lcm": (ints, ints),
    "gcd": (ints, ints),
    "logical_and": (bools, bools),
    "logical_or": (bools, bools),
    "logical_xor": (bools, bools),
}


def unary_case(name):
    return C(UNARY_DOMAIN.get(name, f)(2, 3))


def binary_case(name):
    fa, fb = BINARY_DOMAIN.get(name, (f, f))
    return C(fa(2, 3), fb(3))


m23, m33 = f(2, 3), f(3, 3)
CASES = {
    # reductions
    "sum": [C(f(2, 3)), C(f(2, 3), axis=1, keepdims=True)],
    "mean": [C(f(2, 3), axis=0)],
    "prod": [C(pos(2, 3), axis=1)],
    "std": [C(f(2, 3), axis=1)],
    "var": [C(f(2, 3), ddof=1)],
    "amax": [C(distinct(2, 3), axis=1)],
    "amin": [C(distinct(2, 3))],
    "max": [C(distinct(2, 3), axis=0, keepdims=True)],
    "min": [C(distinct(2, 3), axis=1)],
    "average": [C(f(2, 3), axis=1, weights=pos(3))],
    "cumsum": [C(f(2, 3), axis=1), C(f(2, 3))],
    "trace": [C(f(3, 3)), C(f(2, 3, 3), 0, 1, 2)],
    "diff": [C(f(2, 4), n=2)],
    "ediff1d": [C(f(2, 3))],
    "median": [C(distinct(2, 3), axis=1), C(distinct(2, 4), keepdims=True)],
    "quantile": [C(distinct(2, 3), 0.3), C(distinct(3, 4), [0.25, 0.5], axis=1)],
    "percentile": [C(distinct(2, 3), 40, axis=0, keepdims=True)],
    "all": [C(bools(2, 3), axis=0)],
    "any": [C(bools(2, 3))],
    "argmax": [C(distinct(2, 3), axis=1)],
    "argmin": [C(distinct(2, 3))],
    "argsort": [C(distinct(2, 3))],
    # products
    "dot": [C(f(2, 3), f(3, 2)), C(f(3), f(3)), C(f(2, 2, 3), f(3, 2)), C(f(2, 3), f(3))],
    "matmul": [C(f(2, 3), f(3, 2)), C(f(2, 2, 3), f(3)), C(f(3), f(3, 2))],
    "tensordot": [C(f(2, 3, 2), f(3, 2, 2), 2), C(f(2, 3), f(3, 2), ([1], [0]))],
    "einsum": [C("ij,jk->ik", f(2, 3), f(3, 2)), C("ij->j", f(2, 3)), C("i,j", f(2), f(3))],
    "inner": [C(f(2, 3), f(2, 3))],
    "outer": [C(f(2), f(3))],
    "vdot": [C(f(2, 3), f(2, 3))],
    "kron": [C(f(2, 2), f(2, 3))],
    "cross": [C(f(2, 3), f(2, 3))],
    # selection and shape
    "broadcast_to": [C(f(3), (2, 3))],
    "transpose": [C(f(2, 3, 2), (1, 2, 0))],
    "permute_dims": [C(f(2, 3, 2), (2, 0, 1))],
    "moveaxis": [C(f(2, 3, 2), 0, -1)],
    "swapaxes": [C(f(2, 3), 0, 1)],
    "rollaxis": [C(f(2, 3, 2), 2)],
    "reshape": [C(f(2, 3), (3, -1))],
    "ravel": [C(f(2, 3))],
    "squeeze": [C(f(2, 1, 3))],
    "expand_dims": [C(f(2, 3), 1)],
    "atleast_1d": [C(f(2))],
    "atleast_2d": [C(f(2))],
    "atleast_3d": [C(f(2, 3), f(3))],
    "tile": [C(f(2, 3), (2, 1))],
    "repeat": [C(f(2, 3), 2, axis=1)],
    "flip": [C(f(2, 3), 1)],
    "flipud": [C(f(2, 3))],
    "fliplr": [C(f(2, 3))],
    "roll": [C(f(2, 3), 1, axis=1)],
    "rot90": [C(f(2, 3))],
    "diag": [C(f(3)), C(f(3, 3), 1)],
    "diagonal": [C(f(3, 3))],
    "diagflat": [C(f(2, 2))],
    "tril": [C(f(3, 3))],
    "triu": [C(f(3, 3), 1)],
    "take": [C(f(2, 3), ints(4, hi=3), axis=1)],
    "delete": [C(f(2, 3), 1, axis=1)],
    "insert": [C(f(2, 3), 1, 5.0, axis=1)],
    "resize": [C(f(2, 3), (3, 4))],
    "pad": [C(f(2, 3), 1), C(f(2, 3), ((1, 0), (0, 2)), mode="reflect")],
    "copy": [C(f(2, 3))],
    "concatenate": [C([f(2, 3), f(1, 3)])],
    "concat": [C([f(2, 3), f(2, 1)], axis=1)],
    "stack": [C([f(2, 3), f(2, 3)], axis=1)],
    "vstack": [C([f(2, 3), f(3)])],
    "row_stack": [C([f(2, 3), f(3)])],
    "column_stack": [C([f(2), f(2, 2)])],
    "hstack": [C([f(2, 3), f(2, 1)])],
    "dstack": [C([f(2, 3), f(2, 3)])],
    "split": [C(f(4, 3), 2)],
    "array_split": [C(f(5, 2), 3)],
    "hsplit": [C(f(2, 4), 2)],
    "vsplit": [C(f(4, 2), [1])],
    "dsplit": [C(f(2, 2, 4), 2)],
    "where": [
        C(bools(2, 3), f(2, 3), f(3)),
        C(bools(2, 3), f(2, 3), 5.0),
        C(f(2, 3) > 0, 2.0, f(3)),
    ],
    "append": [C(f(2, 3), f(2, 3), axis=0), C(f(3), 4.0)],
    "clip": [C(f(2, 3), -0.5, 0.6)],
    "sort": [C(distinct(2, 3)), C(distinct(2, 3), axis=0)],
    # not differentiable
    "unique": [C(ints(6))],
    "nonzero": [C(bools(2, 3))],
    "flatnonzero": [C(bools(2, 3))],
    "unravel_index": [C(ints(3), (2, 3))],
    "diag_indices_from": [C(f(3, 3))],
    "triu_indices_from": [C(f(3, 3))],
    "histogram": [C(f(8), 3)],
    "bincount": [C(ints(6))],
    "interp": [
        C(
            f(4),
            numpy.array([-1.0, 0.0, 1.0], numpy.float32),
            numpy.array([0.0, 2.0, 3.0], numpy.float32),
        )
    ],
    "polyval": [C(f(3), f(4))],
    "shape": [C(f(2, 3))],
    "shares_memory": [C(f(2), f(2))],
    "may_share_memory": [C(f(2), f(2))],
}
LINALG_CASES = {
    "norm": [C(f(2, 3)), C(f(2, 3), None, 1), C(f(3), 1), C(f(2, 3), "fro")],
    "vector_norm": [C(f(2, 3), axis=1)],
    "matrix_norm": [C(f(2, 3, 3))],
    "inv": [C(well(3))],
    "det": [C(well(3))],
    "slogdet": [C(well(3))],
    "solve": [C(well(3), f(3)), C(well(3), f(3, 2))],
    "cholesky": [C(spd(3))],
    "svd": [C(f(2, 3))],
    "svdvals": [C(f(3, 2))],
    "eigh": [C(spd(3))],
    "eigvalsh": [C(spd(3))],
    "qr": [C(f(3, 2))],
    "pinv": [C(f(3, 2))],
    "lstsq": [C(well(3), f(3), rcond=None)],
    "tensorinv": [C(well(4).reshape(2, 2, 4), ind=2)],
    "tensorsolve": [C(well(4).reshape(2, 2, 4), f(2, 2))],
    "matrix_rank": [C(f(3, 3))],
    "eig": [C(spd(3))],
    "eigvals": [C(spd(3))],
    "cross": [C(f(2, 3), f(2, 3))],
    "diagonal": [C(f(2, 3, 3))],
    "outer": [C(f(2), f(3))],
    "tensordot": [C(f(2, 3), f(3, 2), axes=1)],
    "trace": [C(f(2, 3, 3))],
    "matrix_transpose": [C(f(2, 3, 2))],
    "vecdot": [C(f(2, 3), f(3))],
}
# Symmetric-input functions see (A + A^T) / 2 in the gradient test (they read one triangle);
# vector outputs determined up to sign are squared.
SYMMETRIC = {"cholesky", "eigh", "eigvalsh"}
SIGN_FREE = {"svd": (0, 2), "eigh": (1,)}
