"""gluonlite: the Apache MXNet Gluon parameter-store API on NumPy (cpu) and CuPy (gpu)."""
from . import device
from .device import Device, cpu, gpu, num_gpus

__all__ = ["Device", "cpu", "gpu", "num_gpus", "device"]
__version__ = "0.1.0"
