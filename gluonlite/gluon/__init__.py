"""``mx.gluon``: the parameter store (``Parameter``, ``Constant``).

>>> import gluonlite as mx
>>> mx.gluon.Parameter('fc_weight', shape=(64, 100))
Parameter fc_weight (shape=(64, 100), dtype=float32)
"""
from .parameter import Constant, DeferredInitializationError, Parameter

__all__ = ["Parameter", "Constant", "DeferredInitializationError"]
