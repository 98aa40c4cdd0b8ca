"""``mx.gluon.nn``: layers, one module per family as in MXNet (``basic_layers``,
``activations``).

>>> import gluonlite as mx
>>> net = mx.gluon.nn.Sequential()
>>> net.add(mx.gluon.nn.Dense(4, activation='relu'), mx.gluon.nn.Dense(2))
>>> net.initialize(mx.init.Xavier())
>>> net(mx.np.ones((3, 5))).shape
(3, 2)
"""
from ..block import Block, HybridBlock
from . import activations, basic_layers
from .activations import *  # noqa: F401,F403
from .basic_layers import *  # noqa: F401,F403
from . import conv_layers, norm_layers
from .conv_layers import *  # noqa: F401,F403
from .norm_layers import *  # noqa: F401,F403

__all__ = ["Block", "HybridBlock"] + basic_layers.__all__ + activations.__all__
__all__ += conv_layers.__all__ + norm_layers.__all__
