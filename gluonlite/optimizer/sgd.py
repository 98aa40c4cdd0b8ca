"""SGD (MXNet's ``sgd``): momentum, weight decay, lazy updates for row-sparse gradients.

Three layers, as in ``torch.optim``: the class :class:`SGD` validates hyper-parameters and
creates states; the pure function :func:`sgd` updates lists of raw arrays; behind it
``_single_tensor_sgd`` (a loop, the reference) and ``_multi_tensor_sgd`` (buckets on NumPy,
the fused multi-tensor kernel ``kernels/multi_tensor.cu`` for float32 CuPy arrays).
"""

from __future__ import annotations

from typing import Sequence, Any

from .. import _kernels
from ._foreach import _array_module, _check_tensors, _foreach_multi, _foreach_single, _fresh_copy
from .optimizer import _Checked, _MathOptimizer, _zeros_state, register
from .._typing import RawArray
from ..ndarray import ndarray

__all__ = ["SGD", "sgd"]


def _sgd_math(
    grad: RawArray,
    weight: RawArray,
    mom: RawArray = None,
    *,
    lr: float,
    wd: float,
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    """MXNet's ``sgd_update``/``sgd_mom_update`` on whole arrays, in place on weight and mom.

    Clipping comes before weight decay here (MXNet's SGD kernels), unlike Adam.
    """
    g = _fresh_copy(grad, rescale_grad)
    if clip_gradient is not None:
        _array_module(g).clip(g, -clip_gradient, clip_gradient, out=g)
    if wd != 0:
        g += wd * weight
    if mom is None:
        weight -= lr * g
    else:
        mom *= momentum
        mom -= lr * g
        weight += mom


def _sgd_plan(
    weights: Any,
    moms: Sequence[RawArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> tuple[list[Any], list[dict[str, Any]]]:
    buffers = [(w,) if m is None else (w, m) for w, m in zip(weights, moms)]
    hypers = [
        dict(
            lr=lr, wd=wd, momentum=momentum, rescale_grad=rescale_grad, clip_gradient=clip_gradient
        )
        for lr, wd in zip(lrs, wds)
    ]
    return buffers, hypers


def _single_tensor_sgd(
    weights: Any,
    grads: Any,
    moms: Sequence[RawArray],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
) -> None:
    buffers, hypers = _sgd_plan(weights, moms, lrs, wds, momentum, rescale_grad, clip_gradient)
    _foreach_single(_sgd_math, grads, buffers, hypers, lazy_update)


def _fused_sgd(
    grads: Any,
    buffers: Any,
    lrs: Sequence[float],
    wds: Sequence[float],
    *,
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
) -> None:
    moms = [b[1] for b in buffers] if len(buffers[0]) == 2 else None
    _kernels.multi_tensor_sgd(
        [b[0] for b in buffers],
        grads,
        moms,
        lrs,
        wds,
        momentum=momentum,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
    )


def _multi_tensor_sgd(
    weights: Any,
    grads: Any,
    moms: Sequence[RawArray],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
) -> None:
    buffers, hypers = _sgd_plan(weights, moms, lrs, wds, momentum, rescale_grad, clip_gradient)
    _foreach_multi(_sgd_math, grads, buffers, hypers, lazy_update, _fused_sgd)


def sgd(
    weights: Sequence[Any],
    grads: Sequence[Any],
    moms: Sequence[Any],
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    momentum: float,
    rescale_grad: float,
    clip_gradient: float | None,
    lazy_update: bool,
    foreach: bool = True,
) -> None:
    """MXNet's SGD on lists of raw arrays, updating ``weights`` and ``moms`` in place.

    Per tensor, with ``g = clip(rescale_grad * grad, clip_gradient) + wd * weight``:
    ``mom = momentum * mom - lr * g; weight += mom``, or ``weight -= lr * g`` where the
    momentum state is None.

    Args:
        weights: NumPy or CuPy arrays.
        grads: arrays of the weights' shapes and dtypes, or row-sparse gradients (see the
            module's Note).
        moms: momentum arrays shaped like the weights, or None entries (no momentum).
        lrs, wds: learning rate and weight decay per tensor (multipliers already applied).
        momentum, rescale_grad, clip_gradient: as in :class:`SGD`; ``clip_gradient=None``
            disables clipping.
        lazy_update: update only the rows present in row-sparse gradients.
        foreach: use the multi-tensor path (fewer, larger operations) instead of the loop.
    """
    _check_tensors("sgd", weights, grads, [moms, lrs, wds])
    if momentum != 0 and any(m is None for m in moms):
        raise ValueError(
            f"sgd: momentum={momentum} needs a momentum state for every tensor, "
            "got None; create the states with create_state() after setting "
            "momentum"
        )
    fn = _multi_tensor_sgd if foreach else _single_tensor_sgd
    fn(
        weights,
        grads,
        moms,
        lrs=lrs,
        wds=wds,
        momentum=momentum,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
        lazy_update=lazy_update,
    )


@register
class SGD(_MathOptimizer):
    """Stochastic gradient descent with momentum and weight decay (MXNet's ``sgd``).

    Per parameter, with ``g = clip(rescale_grad * grad, clip_gradient) + wd * weight``:
    ``mom = momentum * mom - lr * g; weight += mom`` (no momentum: ``weight -= lr * g``).

    Args:
        learning_rate: default 0.1 (MXNet 2's).
        momentum: in [0, 1); 0 keeps no state.
        lazy_update: for row-sparse gradients, update only the rows present.
        **kwargs: see :class:`Optimizer`.

    >>> import gluonlite as mx
    >>> opt = SGD(learning_rate=0.5, wd=0.1)
    >>> w = mx.np.array([1.0, -2.0])
    >>> opt.update([0], [w], [mx.np.array([0.2, 0.2])], [opt.create_state(0, w)])
    >>> w
    array([ 0.85, -2.  ])
    """

    _default_lr = 0.1
    _lazy_rows = True
    momentum: _Checked[float] = _Checked("momentum", low=0.0, high=1.0, high_open=True)

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        lazy_update: bool = False,
        multi_precision: bool = False,
        use_fused_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            multi_precision=multi_precision,
            use_fused_step=use_fused_step,
            **kwargs,
        )
        self.momentum = momentum
        self.lazy_update = bool(lazy_update)

    def create_state(self, index: Any, weight: ndarray) -> Any:
        """A zero momentum array like ``weight``, or None when ``momentum`` is 0."""
        return None if self.momentum == 0.0 else _zeros_state(weight)

    def _state_count(self) -> int:
        return 0 if self.momentum == 0.0 else 1

    def _apply(
        self, grads: Any, buffers: Any, hypers: Sequence[dict[str, Any]], foreach: bool
    ) -> None:
        sgd(
            [b[0] for b in buffers],
            grads,
            [b[1] if len(b) > 1 else None for b in buffers],
            lrs=[h["lr"] for h in hypers],
            wds=[h["wd"] for h in hypers],
            momentum=self.momentum,
            rescale_grad=self.rescale_grad,
            clip_gradient=self.clip_gradient,
            lazy_update=self.lazy_update,
            foreach=foreach,
        )
