"""``mx.npx``: MXNet's neural-network operators (``nn``) and utilities (``utils``).

>>> import gluonlite as mx
>>> x = mx.np.ones((2, 3))
>>> w = mx.np.ones((4, 3))
>>> mx.npx.fully_connected(x, w, None, num_hidden=4, no_bias=True)
array([[3., 3., 3., 3.],
       [3., 3., 3., 3.]])
"""
from . import nn, utils
from .nn import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
from . import conv
from .conv import *  # noqa: F401,F403
from . import norm, _leaky
from .norm import *  # noqa: F401,F403
from ._leaky import *  # noqa: F401,F403

__all__ = nn.__all__ + utils.__all__
__all__ += conv.__all__ + norm.__all__ + _leaky.__all__
