"""``mx.npx`` utilities: NumPy-semantics switches."""
from __future__ import annotations

__all__ = ["set_np", "reset_np", "is_np_array", "is_np_shape"]


def set_np(shape: bool = True, array: bool = True, dtype: bool = False) -> None:
    """MXNet 2 scripts start with ``npx.set_np()``; gluonlite always has NumPy semantics
    (``mx.np`` arrays, -1 for unknown dims), so this accepts that call and refuses to turn
    them off, since the legacy ``mx.nd`` front end is not provided."""
    if not (shape and array):
        raise ValueError("gluonlite only provides NumPy semantics (mx.np); set_np(shape="
                         "False) or set_np(array=False) would need the legacy mx.nd API")
    if dtype:
        raise ValueError("set_np(dtype=True) (float64 defaults) is not supported; gluonlite "
                         "creates float32 unless a dtype is given, as MXNet does by default")


def reset_np() -> None:
    """Accepted for MXNet compatibility: NumPy semantics cannot be turned off here."""


def is_np_array() -> bool:
    return True


def is_np_shape() -> bool:
    return True
