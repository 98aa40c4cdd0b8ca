"""``mx.sym``: symbolic variables, enough to describe a parameter (``Parameter.var()``).

gluonlite runs imperatively; a ``Symbol`` here only carries a variable's name and
attributes (shape, dtype, learning-rate and weight-decay multipliers, initializer, storage
type) for code that inspects them.

>>> import gluonlite as mx
>>> w = mx.sym.var('fc_weight', shape=(64, 100), lr_mult=2.0)
>>> w
<Symbol fc_weight>
>>> w.shape, w.lr_mult, w.list_attr()
((64, 100), 2.0, {'__shape__': '(64, 100)', '__lr_mult__': '2.0'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy

from . import _backend
from ._typing import DTypeLike, ShapeLike

if TYPE_CHECKING:
    from .initializer import InitLike

__all__ = ["Symbol", "var", "Variable"]

# Attribute names in the order and spelling of MXNet's symbol attributes.
_ATTRS = ("shape", "dtype", "lr_mult", "wd_mult", "init", "stype")


class Symbol:
    """A named symbolic variable with optional attributes (None when not given)."""

    __slots__ = ("_name", "_attrs")

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        self._name = name
        self._attrs = dict(attrs)

    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, ...] | None:
        shape: tuple[int, ...] | None = self._attrs.get("shape")
        return shape

    @property
    def dtype(self) -> numpy.dtype[Any] | None:
        dtype: numpy.dtype[Any] | None = self._attrs.get("dtype")
        return dtype

    @property
    def lr_mult(self) -> float | None:
        lr_mult: float | None = self._attrs.get("lr_mult")
        return lr_mult

    @property
    def wd_mult(self) -> float | None:
        wd_mult: float | None = self._attrs.get("wd_mult")
        return wd_mult

    @property
    def init(self) -> InitLike:
        init: InitLike = self._attrs.get("init")
        return init

    @property
    def stype(self) -> str | None:
        stype: str | None = self._attrs.get("stype")
        return stype

    def attr(self, key: str) -> str | None:
        """The attribute ``key`` as MXNet spells it in ``list_attr`` (a string), or None."""
        return self.list_attr().get(key)

    def list_attr(self) -> dict[str, str]:
        """The given attributes as MXNet's ``{'__shape__': '(64, 100)', ...}`` strings."""
        out: dict[str, str] = {}
        for key in _ATTRS:
            value = self._attrs.get(key)
            if value is None:
                continue
            if key == "init" and hasattr(value, "dumps"):
                value = value.dumps()
            elif key == "stype":
                value = {"default": 0, "row_sparse": 1, "csr": 2}[value]
            out[f"__{key}__"] = str(value)
        return out

    def __repr__(self) -> str:
        return f"<Symbol {self._name}>"


def var(
    name: str,
    attr: Mapping[str, Any] | None = None,
    shape: ShapeLike | None = None,
    lr_mult: float | None = None,
    wd_mult: float | None = None,
    dtype: DTypeLike = None,
    init: InitLike = None,
    stype: str | None = None,
) -> Symbol:
    """A symbolic variable ``name`` carrying the given attributes.

    Example:
        >>> import gluonlite as mx
        >>> mx.sym.var('emb', stype='row_sparse').stype
        'row_sparse'
    """
    if not isinstance(name, str):
        raise TypeError(f"var: name must be a str, got {type(name).__name__}")
    if stype not in (None, "default", "row_sparse", "csr"):
        raise ValueError(f"var: stype must be 'default', 'row_sparse' or 'csr', got {stype!r}")
    attrs = dict(attr or {})
    if shape is not None:
        attrs["shape"] = (int(shape),) if isinstance(shape, int) else tuple(shape)
    if dtype is not None:
        attrs["dtype"] = _backend.dtype_of(dtype)
    for key, value in (
        ("lr_mult", lr_mult),
        ("wd_mult", wd_mult),
        ("init", init),
        ("stype", stype),
    ):
        if value is not None:
            attrs[key] = value
    return Symbol(name, attrs)


Variable = var
