"""``mx.gluon.rnn``: the fused recurrent layers ``RNN``, ``LSTM`` (with ``projection_size``)
and ``GRU`` (``rnn_layer``). The recurrent cells of MXNet (``LSTMCell``, ...) are not
provided.

>>> import gluonlite as mx
>>> sorted(mx.gluon.rnn.__all__)
['GRU', 'LSTM', 'RNN']
"""

from . import rnn_layer
from .rnn_layer import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU"]
