"""``mx.npx``: MXNet's neural-network operators (``nn``) and utilities (``utils``).

>>> import gluonlite as mx
>>> sorted({'fully_connected', 'convolution', 'batch_norm', 'rnn', 'save'} - set(mx.npx.__all__))
[]
"""

from . import nn, utils
from .nn import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
from . import conv
from .conv import *  # noqa: F401,F403
from . import norm, _leaky
from .norm import *  # noqa: F401,F403
from ._leaky import *  # noqa: F401,F403
from ._rnn import rnn as rnn  # composes nn's operators, so it sits above nn (nn does not import it)

__all__ = nn.__all__ + utils.__all__
__all__ += conv.__all__ + norm.__all__ + _leaky.__all__ + ["rnn"]
