"""Optimizers (``mx.optimizer``): MXNet 2's eighteen optimizers on ``mx.np`` arrays.

One module per family, as MXNet 2 lays them out (``sgd``, ``nag``, ``signum``, ``sgld``,
``dcasgd``, ``adam``, ``adamw``, ``adamax``, ``nadam``, ``adabelief``, ``adagrad``,
``adadelta``, ``rmsprop``, ``ftrl``, ``ftml``, ``lamb``, ``lans``, ``lars``); the base class,
``create``, ``register``, ``Updater`` and ``get_updater`` in ``optimizer``; the shared
single-tensor and multi-tensor/fused paths in ``_foreach``.

``GLUONLITE_FUSED_OPTIMIZER=0`` turns the fused GPU kernels off (every tensor then takes
the bucketed path).

>>> import gluonlite as mx
>>> opt = mx.optimizer.create('sgd', learning_rate=0.1, momentum=0.9)
>>> w = mx.np.ones(3)
>>> state = opt.create_state(0, w)
>>> opt.update([0], [w], [mx.np.full(3, 2.0)], [state])
>>> w, state
(array([0.8, 0.8, 0.8]), array([-0.2, -0.2, -0.2]))
"""

from . import (
    adabelief,
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    dcasgd,
    ftml,
    ftrl,
    lamb,
    lans,
    lars,
    nadam,
    nag,
    optimizer,
    rmsprop,
    sgd,
    sgld,
    signum,
)
from ._foreach import (
    FUSED_OPTIMIZER_ENV,
    RowSparseGrad,
    _BUCKET_ELEMENTS,
    _DIRECT_ELEMENTS,
    _gather,
    _scatter,
)
from .._backend import is_gpu_array
from .adabelief import AdaBelief
from .adadelta import AdaDelta
from .adagrad import AdaGrad
from .adam import Adam, _bias_corrected_lr, _single_tensor_adam
from .adamax import Adamax
from .adamw import AdamW
from .dcasgd import DCASGD
from .ftml import FTML
from .ftrl import Ftrl
from .lamb import LAMB
from .lans import LANS
from .lars import LARS
from .nadam import Nadam
from .nag import NAG
from .optimizer import Optimizer, Updater, create, get_updater, register
from .rmsprop import RMSProp
from .sgd import SGD, _sgd_math, _single_tensor_sgd
from .sgld import SGLD
from .signum import Signum

__all__ = [
    "Optimizer",
    "Updater",
    "create",
    "register",
    "get_updater",
    "RowSparseGrad",
    "SGD",
    "NAG",
    "Signum",
    "SGLD",
    "DCASGD",
    "Adam",
    "AdamW",
    "Adamax",
    "Nadam",
    "AdaBelief",
    "AdaGrad",
    "AdaDelta",
    "RMSProp",
    "Ftrl",
    "FTML",
    "LAMB",
    "LANS",
    "LARS",
]
