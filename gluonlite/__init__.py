"""gluonlite: the Apache MXNet Gluon parameter-store API on NumPy (cpu) and CuPy (gpu).

>>> import gluonlite as mx
>>> x = mx.np.zeros((2, 3), device=mx.cpu(1))
>>> x.shape, x.device
((2, 3), cpu(1))
"""
from . import autograd, device, np, npx, random
from . import kvstore as kv
from . import optimizer
from .device import Device, cpu, current_device, gpu, num_gpus

__all__ = ["Device", "cpu", "gpu", "current_device", "num_gpus", "device", "np", "npx",
           "autograd", "random", "kv", "optimizer"]
__version__ = "0.1.0"
