"""gluonlite: the Apache MXNet Gluon parameter-store API on NumPy (cpu) and CuPy (gpu).

>>> import gluonlite as mx
>>> x = mx.np.zeros((2, 3), device=mx.cpu(1))
>>> x.shape, x.device
((2, 3), cpu(1))
"""
from . import (autograd, checkpoint, device, gluon, initializer, np, npx, optimizer, random,
               sparse, symbol)
from . import initializer as init, kvstore as kv, symbol as sym
from . import lr_scheduler
from .device import Device, cpu, current_device, gpu, num_gpus
from .sparse import CSRNDArray, RowSparseNDArray

__all__ = ["Device", "cpu", "gpu", "current_device", "num_gpus", "device", "np", "npx",
           "autograd", "random", "sparse", "RowSparseNDArray", "CSRNDArray", "init",
           "initializer", "sym", "symbol", "gluon", "kv", "optimizer", "checkpoint"]
__all__ += ["lr_scheduler"]
__version__ = "0.1.0"
