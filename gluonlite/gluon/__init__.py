"""``mx.gluon``: the parameter store, blocks and layers, losses and the Trainer.

>>> import gluonlite as mx
>>> mx.gluon.Parameter('fc_weight', shape=(64, 100))
Parameter fc_weight (shape=(64, 100), dtype=float32)
"""

from ..checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    load_mxnet_params,
    load_parameters,
    save_parameters,
)
from . import loss, nn, rnn, utils
from . import data, metric
from .block import Block, HybridBlock
from .parameter import Constant, DeferredInitializationError, Parameter, ParameterDict
from .symbol_block import SymbolBlock
from .trainer import Trainer

__all__ = [
    "Parameter",
    "Constant",
    "DeferredInitializationError",
    "Block",
    "HybridBlock",
    "Trainer",
    "nn",
    "loss",
    "utils",
    "save_parameters",
    "load_parameters",
    "load_mxnet_params",
    "CheckpointError",
    "CorruptCheckpointError",
    "CheckpointMismatchError",
    "ParameterDict",
    "data",
    "metric",
    "SymbolBlock",
    "rnn",
]
