"""``mx.gluon.nn``: layers, one module per family as in MXNet (``basic_layers``,
``activations``, ``conv_layers``, ``norm_layers``).

>>> import gluonlite as mx
>>> sorted({'Dense', 'Conv2D', 'BatchNorm', 'GELU', 'HybridSequential'} - set(mx.gluon.nn.__all__))
[]
"""

# "as": re-exported for type checkers too (__all__ below is computed).
from ..block import Block as Block, HybridBlock as HybridBlock
from . import activations, basic_layers
from .activations import *  # noqa: F401,F403
from .basic_layers import *  # noqa: F401,F403
from . import conv_layers, norm_layers
from .conv_layers import *  # noqa: F401,F403
from .norm_layers import *  # noqa: F401,F403

__all__ = ["Block", "HybridBlock"] + basic_layers.__all__ + activations.__all__
__all__ += conv_layers.__all__ + norm_layers.__all__
