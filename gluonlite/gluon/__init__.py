"""``mx.gluon``: the parameter store (``Parameter``, ``Constant``).

>>> import gluonlite as mx
>>> mx.gluon.Parameter('fc_weight', shape=(64, 100))
Parameter fc_weight (shape=(64, 100), dtype=float32)
"""
from ..checkpoint import (CheckpointError, CheckpointMismatchError, CorruptCheckpointError,
                          load_mxnet_params, load_parameters, save_parameters)
from .parameter import Constant, DeferredInitializationError, Parameter

__all__ = ["Parameter", "Constant", "DeferredInitializationError", "save_parameters",
           "load_parameters", "load_mxnet_params", "CheckpointError",
           "CorruptCheckpointError", "CheckpointMismatchError"]
