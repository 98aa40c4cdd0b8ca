"""``mx.gluon.nn`` activation layers.

>>> import gluonlite as mx
>>> mx.gluon.nn.Activation('relu')(mx.np.array([-1., 2.]))
array([0., 2.]...)
"""

from __future__ import annotations

from ... import npx
from ..block import HybridBlock
from ..parameter import Parameter
from ...ndarray import ndarray
from typing import Any
from ...initializer import InitLike

__all__ = ["Activation", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "Swish", "SiLU"]


class Activation(HybridBlock):
    """An activation function: ``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'softrelu'`` or
    ``'softsign'`` (see ``npx.activation``)."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self._act_type = activation

    def forward(self, x: ndarray) -> Any:
        return npx.activation(x, act_type=self._act_type)

    def _extra_repr(self) -> str:
        return self._act_type


class LeakyReLU(HybridBlock):
    """``x`` for positive inputs, ``alpha * x`` otherwise."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"LeakyReLU: alpha must be >= 0, got {alpha}")
        self._alpha = alpha

    def forward(self, x: ndarray) -> Any:
        return npx.leaky_relu(x, act_type="leaky", slope=self._alpha)

    def _extra_repr(self) -> str:
        return str(self._alpha)


class PReLU(HybridBlock):
    """Leaky ReLU with a learned slope ``alpha`` (a Parameter of shape ``(in_channels,)``,
    one per channel on axis 1, or one shared slope with the default ``in_channels=1``)."""

    def __init__(self, alpha_initializer: InitLike = None, in_channels: int = 1) -> None:
        super().__init__()
        from ... import initializer

        init = initializer.Constant(0.25) if alpha_initializer is None else alpha_initializer
        self.alpha = Parameter("alpha", shape=(int(in_channels),), init=init)

    def forward(self, x: ndarray) -> Any:
        return npx.leaky_relu(x, self.alpha.data(x.device), act_type="prelu")


class ELU(HybridBlock):
    """``x`` for positive inputs, ``alpha * (exp(x) - 1)`` otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self._alpha = alpha

    def forward(self, x: ndarray) -> Any:
        return npx.leaky_relu(x, act_type="elu", slope=self._alpha)


class SELU(HybridBlock):
    """Scaled ELU with the self-normalising constants (Klambauer et al., 2017)."""

    def forward(self, x: ndarray) -> Any:
        return npx.leaky_relu(x, act_type="selu")


class GELU(HybridBlock):
    """``x * Phi(x)``; ``approximation='erf'`` (exact) or ``'tanh'``."""

    def __init__(self, approximation: str = "erf") -> None:
        super().__init__()
        if approximation not in ("erf", "tanh"):
            raise ValueError(f"GELU: approximation must be 'erf' or 'tanh', got {approximation!r}")
        self._act_type = "gelu" if approximation == "erf" else "gelu_tanh"

    def forward(self, x: ndarray) -> Any:
        return npx.leaky_relu(x, act_type=self._act_type)


class Swish(HybridBlock):
    """``x * sigmoid(beta * x)``."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self._beta = beta

    def forward(self, x: ndarray) -> Any:
        return x * npx.sigmoid(x * self._beta)


class SiLU(Swish):
    """``x * sigmoid(x)`` (Swish with beta 1)."""

    def __init__(self) -> None:
        super().__init__(1.0)
