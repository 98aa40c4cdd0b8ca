"""``mx.gluon.loss``: losses returning one value per sample (shape ``(batch,)``).

>>> import gluonlite as mx
>>> loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
>>> pred = mx.np.array([[0.0, 0.0], [10.0, 0.0]])
>>> label = mx.np.array([1, 0])
>>> [round(v, 4) for v in loss(pred, label).tolist()]
[0.6931, 0.0]
"""
from __future__ import annotations

from .. import npx
from .block import Block

__all__ = ["Loss", "SoftmaxCrossEntropyLoss", "SoftmaxCELoss", "L2Loss"]


class Loss(Block):
    """Base of the losses: weighting and the mean over all axes but ``batch_axis``.

    Args:
        weight: a global scalar multiplying the loss (None for 1).
        batch_axis: the axis kept in the output.
    """

    def __init__(self, weight=None, batch_axis: int = 0):
        super().__init__()
        self._weight, self._batch_axis = weight, batch_axis

    def _finish(self, loss, sample_weight, weight):
        """Apply ``sample_weight`` (broadcast) and ``weight``, then average per sample."""
        if sample_weight is not None:
            loss = loss * sample_weight
        if weight is not None:
            loss = loss * weight
        batch_axis = self._batch_axis % loss.ndim
        axes = tuple(a for a in range(loss.ndim) if a != batch_axis)
        return loss.mean(axis=axes) if axes else loss

    def _extra_repr(self) -> str:
        return f"batch_axis={self._batch_axis}, w={self._weight}"


class SoftmaxCrossEntropyLoss(Loss):
    """Cross entropy between ``softmax(pred)`` and the labels.

    Args:
        axis: the class axis.
        sparse_label: labels are class indices (shape of ``pred`` without ``axis``);
            otherwise they are distributions shaped like ``pred``.
        from_logits: ``pred`` already holds log-probabilities (no log_softmax is applied).
        weight, batch_axis: see ``Loss``.

    ``forward(pred, label, sample_weight=None)`` returns ``(batch,)`` losses.
    """

    def __init__(self, axis: int = -1, sparse_label: bool = True, from_logits: bool = False,
                 weight=None, batch_axis: int = 0):
        super().__init__(weight, batch_axis)
        self._axis, self._sparse_label, self._from_logits = axis, sparse_label, from_logits

    def forward(self, pred, label, sample_weight=None):
        logp = pred if self._from_logits else npx.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            loss = -npx.pick(logp, label, axis=self._axis, keepdims=True)
        else:
            if label.shape != pred.shape:
                label = label.reshape(pred.shape)
            label = label.astype(pred.dtype, copy=False)
            loss = -(logp * label).sum(axis=self._axis, keepdims=True)
        return self._finish(loss, sample_weight, self._weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class L2Loss(Loss):
    """Half the squared error, ``weight / 2 * (label - pred) ** 2``, averaged per sample.

    ``label`` is reshaped to ``pred``'s shape when the sizes agree (e.g. ``(n,)`` against
    ``(n, 1)``).
    """

    def __init__(self, weight: float = 1.0, batch_axis: int = 0):
        super().__init__(weight, batch_axis)

    def forward(self, pred, label, sample_weight=None):
        if label.shape != pred.shape:
            label = label.reshape(pred.shape)
        # Integer labels would promote the loss to float64; keep pred's precision.
        diff = label.astype(pred.dtype, copy=False) - pred
        weight = 1.0 if self._weight is None else self._weight
        return self._finish(diff * diff, sample_weight, weight / 2)
