"""``mx.np``: MXNet 2's NumPy-style functions on gluonlite arrays, differentiable where it
makes sense.

The array functions are rows of one table (``_table.py``: name, forward, backward, dtype
rule) run through ``_dispatch.py``; creation (``creation.py``), ``random`` and ``linalg``
are modules of their own. Arrays on different devices never mix silently.

>>> import gluonlite as mx
>>> x = mx.np.arange(4, device=mx.cpu(1))
>>> mx.np.exp(x * 0).sum().item()
4.0
>>> mx.np.linalg.norm(mx.np.array([3., 4.]))
array(5.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as _numpy

from .. import _backend
from ..autograd import record_op

# "as ndarray": re-exported for type checkers too (__all__ below is computed).
from ..ndarray import ndarray as ndarray, install_ops as _install_ops
from . import _ops, creation, linalg, random
from ._dispatch import Recorded
from ._ops import *  # noqa: F401,F403
from .creation import *  # noqa: F401,F403

_FUNCTIONS = {k: v for k, v in vars(_ops).items() if callable(v) and not k.startswith("_")}
_install_ops(_FUNCTIONS)

float16, float32, float64 = _numpy.float16, _numpy.float32, _numpy.float64
int8, int16, int32, int64 = _numpy.int8, _numpy.int16, _numpy.int32, _numpy.int64
uint8, bool_ = _numpy.uint8, _numpy.bool_
dtype = _numpy.dtype
pi, e, inf, nan, newaxis = _numpy.pi, _numpy.e, _numpy.inf, _numpy.nan, None

# MXNet 2's ``mx.np`` names (``tests/data/mxnet2_np_surface.txt`` holds the same list).
__all__ = sorted(set(_FUNCTIONS) | set(creation.__all__)) + [
    "ndarray",
    "random",
    "linalg",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool_",
    "dtype",
    "pi",
    "e",
    "inf",
    "nan",
    "newaxis",
]


def _unary(x: ndarray, forward: Callable[..., Any], backward: Callable[..., Any]) -> ndarray:
    """Apply ``forward(xp, raw)``; ``backward(xp, g, x_raw, y_raw)`` gives dL/dx.

    A helper for ``npx``'s activations (elementwise ops outside the table)."""
    xp = x._xp
    with _backend.on(x.device):
        y = forward(xp, x._data)
    out = ndarray(y, x.device)
    return record_op(
        out,
        (x,),
        lambda g: (backward(xp, g, x._data, y),),
        lambda out, g: (backward(Recorded(x.device), g, x, out),),
    )
