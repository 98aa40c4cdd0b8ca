"""MXNet's old names (``ctx=``, ``list_ctx``, ``reset_ctx``, ``as_in_context``) in one place.

Each warns with ``DeprecationWarning`` and forwards to the ``device`` form; giving both the
old and the new keyword is ambiguous and refused.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

_T = TypeVar("_T")

__all__ = ["resolve_ctx", "warn_renamed"]


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} is deprecated, use {new}", DeprecationWarning, stacklevel=stacklevel)


def resolve_ctx(device: _T, ctx: _T | None, stacklevel: int = 4) -> _T:
    """The device meant by a call that may use the deprecated ``ctx=`` keyword."""
    if ctx is None:
        return device
    if device is not None:
        raise TypeError("Got both device= and ctx=; pass only device= (ctx is deprecated)")
    warn_renamed("ctx=", "device=", stacklevel)
    return ctx
