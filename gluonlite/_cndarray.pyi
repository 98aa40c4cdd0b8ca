# The optional C extension gluonlite/_cndarray.c: the base class of gluonlite.ndarray.ndarray.
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

class NDArrayBase:
    _data: Any
    _device: Any
    def __init__(self, data: Any, device: Any) -> None: ...

def new(cls: type[Any], /) -> Any: ...
def register(
    cls: type,
    recording_var: ContextVar[bool],
    numpy_ndarray: type,
    asarray: Callable[..., Any],
    float32: Any,
    float64: Any,
    init: Callable[..., Any],
    getitem: Callable[..., Any],
    T: Callable[..., Any],
    reshape: Callable[..., Any],
    /,
) -> None: ...
def set_binary(
    name: str, numpy_fn: Callable[..., Any] | None, scalars: bool, fallback: Callable[..., Any], /
) -> None: ...
