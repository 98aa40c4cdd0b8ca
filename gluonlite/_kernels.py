"""GPU implementations behind ``npx.fully_connected`` and row-sparse ``retain``.

All functions take and return CuPy arrays that live on the current CuPy device.
This first version uses plain CuPy (cuBLAS through ``cupy.matmul``); the custom CUDA
kernels of ``kernels/*.cu`` and the measured dispatch between them come with the kernels
issue.
"""
from __future__ import annotations

__all__ = ["fc_forward", "fc_backward", "retain"]


def fc_forward(x, w, b=None):
    """``x @ w.T + b`` for 2-D ``x [N, K]``, ``w [M, K]``, ``b [M]`` or None."""
    import cupy
    y = cupy.matmul(x, w.T)
    if b is not None:
        y += b
    return y


def fc_backward(dy, x, w, need_dx=True, need_dw=True, need_db=True):
    """Gradients ``(dx, dw, db)`` of ``y = x @ w.T + b``; entries not needed are None."""
    import cupy
    dx = cupy.matmul(dy, w) if need_dx else None
    dw = cupy.matmul(dy.T, x) if need_dw else None
    db = dy.sum(axis=0) if need_db else None
    return dx, dw, db


def retain(data, indices, row_ids):
    """Rows of a row-sparse array (``data [k, ...]``, sorted unique int64 ``indices [k]``)
    whose ids occur in ``row_ids`` (any order, duplicates allowed).

    Returns ``(out_data, out_indices)`` with ``out_indices`` sorted and unique.
    """
    import cupy
    wanted = cupy.unique(row_ids.astype(cupy.int64))
    pos = cupy.searchsorted(indices, wanted)
    pos_clipped = cupy.minimum(pos, max(indices.shape[0] - 1, 0))
    if indices.shape[0] == 0:
        keep = cupy.zeros(wanted.shape, dtype=bool)
    else:
        keep = indices[pos_clipped] == wanted
    rows = pos_clipped[keep]
    return data[rows], indices[rows]
