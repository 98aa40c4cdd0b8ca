"""``mx.gluon.nn`` activation layers.

>>> import gluonlite as mx
>>> mx.gluon.nn.Activation('relu')(mx.np.array([-1., 2.]))
array([0., 2.]...)
"""
from __future__ import annotations

from ... import npx
from ..block import Block

__all__ = ["Activation"]


class Activation(Block):
    """An activation function: ``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'softrelu'`` or
    ``'softsign'`` (see ``npx.activation``)."""

    def __init__(self, activation: str):
        super().__init__()
        self._act_type = activation

    def forward(self, x):
        return npx.activation(x, act_type=self._act_type)

    def _extra_repr(self) -> str:
        return self._act_type
