"""gluonlite: the Apache MXNet Gluon parameter-store API on NumPy (cpu) and CuPy (gpu).

>>> import gluonlite as mx
>>> x = mx.np.zeros((2, 3), device=mx.cpu(1))
>>> x.shape, x.device
((2, 3), cpu(1))
"""

from types import ModuleType

from . import (
    autograd,
    checkpoint,
    device,
    gluon,
    initializer,
    np,
    npx,
    optimizer,
    random,
    runtime,
    sparse,
    symbol,
)
from . import initializer as init, kvstore as kv, symbol as sym
from . import lr_scheduler
from .device import Device, cpu, current_device, gpu, num_gpus
from .sparse import CSRNDArray, RowSparseNDArray

__all__ = [
    "Device",
    "cpu",
    "gpu",
    "current_device",
    "num_gpus",
    "device",
    "np",
    "npx",
    "autograd",
    "random",
    "sparse",
    "RowSparseNDArray",
    "CSRNDArray",
    "init",
    "initializer",
    "sym",
    "symbol",
    "gluon",
    "kv",
    "optimizer",
    "checkpoint",
    "runtime",
    "lr_scheduler",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    # MXNet 1.x's mx.metric became mx.gluon.metric in MXNet 2; the old spelling still works.
    if name == "metric":
        from ._compat import warn_renamed

        warn_renamed("mx.metric", "mx.gluon.metric")
        return gluon.metric
    raise AttributeError(f"module 'gluonlite' has no attribute {name!r}")
