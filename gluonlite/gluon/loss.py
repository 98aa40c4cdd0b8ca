"""``mx.gluon.loss``: losses returning one value per sample (shape ``(batch,)``).

Every loss is composed of differentiable ``mx.np``/``mx.npx`` ops (so autograd gives its
gradient) with MXNet 2's formulas, written in their numerically stable forms: the sigmoid and
softmax losses never exponentiate a large positive logit, so logits of +-1e4 give finite
losses and gradients. ``CTCLoss`` runs the alpha-beta recursion as one recorded op.

>>> import gluonlite as mx
>>> loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
>>> pred = mx.np.array([[0.0, 0.0], [10.0, 0.0]])
>>> label = mx.np.array([1, 0])
>>> [round(v, 4) for v in loss(pred, label).tolist()]
[0.6931, 0.0]
"""

from __future__ import annotations

import math
import numbers

import numpy

from .. import _backend, np, npx
from ..autograd import record_op
from ..ndarray import ndarray
from .block import Block
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from .._typing import RawArray

__all__ = [
    "Loss",
    "L2Loss",
    "L1Loss",
    "SigmoidBinaryCrossEntropyLoss",
    "SigmoidBCELoss",
    "SoftmaxCrossEntropyLoss",
    "SoftmaxCELoss",
    "KLDivLoss",
    "CTCLoss",
    "HuberLoss",
    "HingeLoss",
    "SquaredHingeLoss",
    "LogisticLoss",
    "TripletLoss",
    "PoissonNLLLoss",
    "CosineEmbeddingLoss",
    "SDMLLoss",
]


def _softrelu(x: ndarray) -> ndarray:
    """``log(1 + exp(x))`` without overflow (MXNet's ``softrelu`` activation)."""
    return npx.activation(x, act_type="softrelu")


class Loss(Block):
    """Base of the losses: weighting and the mean over all axes but ``batch_axis``.

    Args:
        weight: a global scalar multiplying the loss (None for 1).
        batch_axis: the axis kept in the output.
    """

    _weight: float | None
    _batch_axis: int

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any) -> None:
        super().__init__()
        if weight is not None and not isinstance(weight, numbers.Number):
            raise TypeError(
                f"{type(self).__name__}: weight must be a number or None, got "
                f"{type(weight).__name__}"
            )
        if not isinstance(batch_axis, numbers.Integral):
            raise TypeError(
                f"{type(self).__name__}: batch_axis must be an int, got {type(batch_axis).__name__}"
            )
        self._weight, self._batch_axis = weight, int(batch_axis)

    def _like(self, x: ndarray, like: ndarray, what: str = "label") -> ndarray:
        """``x`` reshaped to ``like``'s shape (MXNet's ``reshape_like``), cast to its dtype."""
        if isinstance(x, numpy.ndarray) and like.device.device_type == "cpu":
            x = ndarray(x, like.device)  # host data next to a host pred: no copy
        if not isinstance(x, ndarray):
            raise TypeError(
                f"{type(self).__name__}: {what} must be an mx.np.ndarray, got {type(x).__name__}"
            )
        if x.shape != like.shape:
            if x.size != like.size:
                raise ValueError(
                    f"{type(self).__name__}: {what} has shape {x.shape} "
                    f"({x.size} elements) but pred has shape {like.shape}; "
                    f"they must have the same number of elements"
                )
            x = x.reshape(like.shape)
        # Integer labels would promote the loss to float64; keep pred's precision.
        return x.astype(like.dtype, copy=False) if x.dtype != like.dtype else x

    def _weighted(
        self, loss: ndarray, sample_weight: ndarray | None, weight: float | None = None
    ) -> ndarray:
        """``loss * sample_weight * weight`` (MXNet's ``_apply_weighting``)."""
        if sample_weight is not None:
            loss = loss * sample_weight
        weight = self._weight if weight is None else weight
        if weight is not None:
            loss = loss * weight
        return loss

    def _batch_mean(self, loss: ndarray) -> ndarray:
        batch_axis = self._batch_axis % loss.ndim
        axes = tuple(a for a in range(loss.ndim) if a != batch_axis)
        return loss.mean(axis=axes) if axes else loss

    def _finish(
        self, loss: ndarray, sample_weight: ndarray | None, weight: float | None = None
    ) -> ndarray:
        """Apply ``sample_weight`` (broadcast) and ``weight``, then average per sample."""
        return self._batch_mean(self._weighted(loss, sample_weight, weight))

    def _extra_repr(self) -> str:
        return f"batch_axis={self._batch_axis}, w={self._weight}"


class L2Loss(Loss):
    """Half the squared error, ``weight / 2 * (label - pred) ** 2``, averaged per sample.

    ``label`` is reshaped to ``pred``'s shape when the sizes agree (e.g. ``(n,)`` against
    ``(n, 1)``).
    """

    def __init__(self, weight: float = 1.0, batch_axis: int = 0, **kwargs: Any) -> None:
        super().__init__(weight, batch_axis)

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        diff = self._like(label, pred) - pred
        weight = 1.0 if self._weight is None else self._weight
        return self._finish(diff * diff, sample_weight, weight / 2)


class L1Loss(Loss):
    """Mean absolute error ``|label - pred|`` per sample."""

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        return self._finish(np.abs(self._like(label, pred) - pred), sample_weight)


class SigmoidBinaryCrossEntropyLoss(Loss):
    """Binary cross entropy of ``sigmoid(pred)`` (or of ``pred`` with ``from_sigmoid``).

    Without ``from_sigmoid`` the stable form ``max(x, 0) - x*z + log(1 + exp(-|x|))`` is used;
    ``pos_weight`` (a forward argument, broadcast against ``pred``) scales the positive term.
    With ``from_sigmoid``, ``-(z log(p + 1e-12) + (1 - z) log(1 - p + 1e-12))``.
    """

    def __init__(
        self,
        from_sigmoid: bool = False,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        self._from_sigmoid = from_sigmoid

    def forward(
        self,
        pred: ndarray,
        label: ndarray,
        sample_weight: ndarray | None = None,
        pos_weight: ndarray | None = None,
    ) -> ndarray:
        label = self._like(label, pred)
        if not self._from_sigmoid:
            if pos_weight is None:
                loss = npx.relu(pred) - pred * label + _softrelu(-np.abs(pred))
            else:
                log_weight = 1 + (pos_weight - 1) * label
                loss = (
                    pred - pred * label + log_weight * (_softrelu(-np.abs(pred)) + npx.relu(-pred))
                )
        else:
            eps = 1e-12
            positive = np.log(pred + eps) * label
            if pos_weight is not None:
                positive = positive * pos_weight
            loss = -(positive + np.log(1.0 - pred + eps) * (1.0 - label))
        return self._finish(loss, sample_weight)


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


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

    def __init__(
        self,
        axis: int = -1,
        sparse_label: bool = True,
        from_logits: bool = False,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        self._axis, self._sparse_label, self._from_logits = axis, sparse_label, from_logits

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        logp = pred if self._from_logits else npx.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            expected = (
                pred.shape[: self._axis % pred.ndim] + pred.shape[self._axis % pred.ndim + 1 :]
            )
            if label.size != math.prod(expected):
                raise ValueError(
                    f"SoftmaxCrossEntropyLoss: sparse label has shape "
                    f"{label.shape}, expected {expected} (pred {pred.shape} "
                    f"without axis {self._axis})"
                )
            loss = -npx.pick(logp, label, axis=self._axis, keepdims=True)
        else:
            loss = -(logp * self._like(label, pred)).sum(axis=self._axis, keepdims=True)
        return self._finish(loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class KLDivLoss(Loss):
    """``label * (log(label + 1e-12) - pred)``; ``pred`` is log-probabilities when
    ``from_logits`` (default), else ``log_softmax(pred, axis)`` is taken first."""

    def __init__(
        self,
        from_logits: bool = True,
        axis: int = -1,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        self._from_logits, self._axis = from_logits, axis

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        if not self._from_logits:
            pred = npx.log_softmax(pred, axis=self._axis)
        label = self._like(label, pred)
        loss = label * (np.log(label + 1e-12) - pred)
        return self._finish(loss, sample_weight)


class HuberLoss(Loss):
    """Smooth L1: ``|d| - rho/2`` where ``|d| > rho``, else ``d**2 / (2 rho)``."""

    def __init__(
        self, rho: float = 1, weight: float | None = None, batch_axis: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(weight, batch_axis)
        self._rho = rho

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        dist = np.abs(self._like(label, pred) - pred)
        loss = np.where(
            dist > self._rho, dist - 0.5 * self._rho, (0.5 / self._rho) * np.square(dist)
        )
        return self._finish(loss, sample_weight)


class HingeLoss(Loss):
    """``max(0, margin - pred * label)`` with labels in {-1, 1}."""

    def __init__(
        self, margin: float = 1, weight: float | None = None, batch_axis: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(weight, batch_axis)
        self._margin = margin

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        loss = npx.relu(self._margin - pred * self._like(label, pred))
        return self._finish(loss, sample_weight)


class SquaredHingeLoss(HingeLoss):
    """``max(0, margin - pred * label) ** 2`` with labels in {-1, 1}."""

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        loss = np.square(npx.relu(self._margin - pred * self._like(label, pred)))
        return self._finish(loss, sample_weight)


class LogisticLoss(Loss):
    """``log(1 + exp(-pred * label))``, labels in {-1, 1} ('signed') or {0, 1} ('binary')."""

    def __init__(
        self,
        weight: float | None = None,
        batch_axis: int = 0,
        label_format: str = "signed",
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        if label_format not in ("signed", "binary"):
            raise ValueError(
                f"LogisticLoss: label_format must be 'signed' or 'binary', got {label_format!r}"
            )
        self._label_format = label_format

    def forward(
        self, pred: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        label = self._like(label, pred)
        if self._label_format == "signed":
            label = (label + 1.0) / 2.0
        loss = npx.relu(pred) - pred * label + _softrelu(-np.abs(pred))
        return self._finish(loss, sample_weight)


class TripletLoss(Loss):
    """``max(sum ||positive - pred||^2 - ||negative - pred||^2 + margin, 0)`` per sample."""

    def __init__(
        self, margin: float = 1, weight: float | None = None, batch_axis: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(weight, batch_axis)
        self._margin = margin

    def forward(
        self,
        pred: ndarray,
        positive: ndarray,
        negative: ndarray,
        sample_weight: ndarray | None = None,
    ) -> ndarray:
        positive = self._like(positive, pred, "positive")
        negative = self._like(negative, pred, "negative")
        gap = np.square(positive - pred) - np.square(negative - pred)
        batch_axis = self._batch_axis % gap.ndim
        axes = tuple(a for a in range(gap.ndim) if a != batch_axis)
        loss = npx.relu((gap.sum(axis=axes) if axes else gap) + self._margin)
        return self._weighted(loss, sample_weight)


class PoissonNLLLoss(Loss):
    """Poisson negative log-likelihood: ``exp(pred) - target * pred`` (``from_logits``) or
    ``pred - target * log(pred + epsilon)``; ``compute_full`` adds Stirling's approximation of
    ``log(target!)`` where ``target > 1``."""

    def __init__(
        self,
        weight: float | None = None,
        from_logits: bool = True,
        batch_axis: int = 0,
        compute_full: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        self._from_logits, self._compute_full = from_logits, compute_full

    def forward(
        self,
        pred: ndarray,
        target: ndarray,
        sample_weight: ndarray | None = None,
        epsilon: float = 1e-08,
    ) -> ndarray:
        target = self._like(target, pred, "target")
        if self._from_logits:
            loss = np.exp(pred) - target * pred
        else:
            loss = pred - target * np.log(pred + epsilon)
        if self._compute_full:
            big = target > 1
            safe = np.where(big, target, 1.0)  # log(0) would poison the masked-out terms
            stirling = safe * np.log(safe) - safe + 0.5 * np.log(2 * math.pi * safe)
            loss = loss + stirling * big.astype(pred.dtype)
        return self._finish(loss, sample_weight)


class CosineEmbeddingLoss(Loss):
    """``1 - cos(input1, input2)`` for label 1, ``clip(cos - margin, 0, 1 - margin)`` for -1.

    The cosine is taken over the last axis, its denominator floored at 1e-12.
    """

    def __init__(
        self, weight: float | None = None, batch_axis: int = 0, margin: float = 0, **kwargs: Any
    ) -> None:
        super().__init__(weight, batch_axis)
        self._margin = margin

    def forward(
        self, input1: ndarray, input2: ndarray, label: ndarray, sample_weight: ndarray | None = None
    ) -> ndarray:
        input1 = self._like(input1, input2, "input1")
        norm1 = np.sqrt((input1 * input1).sum(axis=-1)).reshape((-1, 1))
        norm2 = np.sqrt((input2 * input2).sum(axis=-1)).reshape((-1, 1))
        dot = (input1 * input2).sum(axis=-1).reshape((-1, 1))
        cos = dot / np.maximum(norm1 * norm2, 1e-12)
        label = self._like(label, cos)
        loss = np.where(label == 1, 1 - cos, np.clip(cos - self._margin, 0, 1 - self._margin))
        return self._finish(loss, sample_weight)


class SDMLLoss(Loss):
    """Smoothed deep metric learning: KL divergence between ``softmax(-distances)`` of every
    ``x1`` row to every ``x2`` row and the identity smoothed by ``smoothing_parameter``.

    Rows ``x1[i]`` and ``x2[i]`` are the positive pairs; the other rows of the batch serve as
    negatives.
    """

    def __init__(
        self,
        smoothing_parameter: float = 0.3,
        weight: float = 1.0,
        batch_axis: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, batch_axis)
        self.kl_loss = KLDivLoss(from_logits=True)
        self.smoothing_parameter = smoothing_parameter

    def forward(self, x1: ndarray, x2: ndarray) -> ndarray:
        n = x1.shape[0]
        if x2.shape != x1.shape or x1.ndim != 2:
            raise ValueError(
                f"SDMLLoss: x1 and x2 must both be (batch, dim); got {x1.shape} and {x2.shape}"
            )
        diff = np.expand_dims(x1, 1) - np.expand_dims(x2, 0)
        distances = (diff * diff).sum(axis=2)
        gold = numpy.eye(n)
        smooth = self.smoothing_parameter
        labels = gold * (1 - smooth) + (1 - gold) * smooth / max(n - 1, 1)
        labels = np.array(labels, dtype=x1.dtype, device=x1.device)  # type: ignore[assignment]
        return self.kl_loss(  # type: ignore[no-any-return]
            npx.log_softmax(-distances, axis=1), labels
        )


# ------------------------------------------------------------------------------------ CTC
def _ctc_label_lengths(xp: ModuleType, labels: Any, padding: int | Sequence[int]) -> RawArray:
    """Entries before the first ``padding`` value in each row."""
    is_pad = labels == padding
    first = xp.where(is_pad.any(axis=1), is_pad.argmax(axis=1), labels.shape[1])
    return first.astype(xp.int64)


def _ctc_raw(
    xp: ModuleType,
    logits: RawArray,
    labels: Any,
    data_lengths: RawArray,
    label_lengths: RawArray,
    blank: int,
) -> RawArray:
    """Negative log-likelihoods (N,) and their gradient w.r.t. ``logits`` (T, N, C).

    The alpha-beta recursion in log space over the extended label ``blank l1 blank l2 ...
    blank``, vectorised over the batch: ``alpha[b, s]`` is the log-probability of the
    prefixes ending in state ``s`` at the current time.
    """
    T, N, C = logits.shape
    f64 = xp.float64
    z = logits.astype(f64)
    z = z - z.max(axis=2, keepdims=True)
    logp = z - xp.log(xp.exp(z).sum(axis=2, keepdims=True))  # (T, N, C)
    L = labels.shape[1]
    S = 2 * L + 1
    ext = xp.full((N, S), blank, dtype=xp.int64)
    ext[:, 1::2] = xp.where(xp.arange(L)[None, :] < label_lengths[:, None], labels, blank)
    # A skip over a blank is allowed into a label that differs from the one two states back.
    skip = xp.zeros((N, S), dtype=bool)
    skip[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
    rows = xp.arange(N)[:, None]
    neg_inf = -xp.inf
    emit = logp[:, rows, ext]  # (T, N, S)
    states = xp.arange(S)[None, :]
    end = 2 * label_lengths[:, None]  # last state (a blank)

    def shift(a: Any, k: int) -> RawArray:
        out = xp.full_like(a, neg_inf)
        if k < S:
            out[:, k:] = a[:, :-k]
        return out

    alphas = xp.full((T, N, S), neg_inf, dtype=f64)
    alpha = xp.where(states < 2, emit[0], neg_inf)
    alphas[0] = alpha
    for t in range(1, T):
        stay = xp.logaddexp(alpha, shift(alpha, 1))
        new = xp.logaddexp(stay, xp.where(skip, shift(alpha, 2), neg_inf)) + emit[t]
        alpha = xp.where((t < data_lengths)[:, None], new, alpha)
        alphas[t] = new
    final = xp.where((states == end) | (states == end - 1), alpha, neg_inf)
    loglik = _logsumexp(xp, final, axis=1)  # (N,)

    betas = xp.full((T, N, S), neg_inf, dtype=f64)
    beta = xp.full((N, S), neg_inf, dtype=f64)
    last = (data_lengths - 1)[:, None]
    for t in range(T - 1, -1, -1):
        start = xp.where((states == end) | (states == end - 1), emit[t], neg_inf)
        back = xp.logaddexp(beta, _shift_left(xp, beta, 1))
        skip_from = _shift_left(xp, xp.where(skip, beta, neg_inf), 2)
        step = xp.logaddexp(back, skip_from) + emit[t]
        beta = xp.where(t == last, start, xp.where(t < last, step, neg_inf))
        betas[t] = beta
    # Posterior of each state at each time, gathered onto the classes it emits.
    with numpy.errstate(invalid="ignore", over="ignore"):
        post = xp.exp(alphas + betas - emit - loglik[None, :, None])
    post = xp.where(xp.isfinite(post), post, 0.0)
    onehot = (ext[:, :, None] == xp.arange(C)[None, None, :]).astype(f64)  # (N, S, C)
    occupancy = xp.einsum("tns,nsc->tnc", post, onehot)
    valid = (xp.arange(T)[:, None] < data_lengths[None, :])[:, :, None]
    grad = xp.where(valid, xp.exp(logp) - occupancy, 0.0)
    return -loglik, grad


def _shift_left(xp: ModuleType, a: Any, k: int) -> RawArray:
    out = xp.full_like(a, -xp.inf)
    if k < a.shape[1]:
        out[:, :-k] = a[:, k:]
    return out


def _logsumexp(xp: ModuleType, a: Any, axis: int) -> RawArray:
    top = a.max(axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    return (xp.log(xp.exp(a - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def _ctc_loss(
    pred: ndarray,
    label: ndarray,
    pred_lengths: ndarray | None = None,
    label_lengths: ndarray | None = None,
    blank_label: str = "last",
) -> ndarray:
    """MXNet's ``ctc_loss`` on ``pred`` (T, N, C) of unnormalised scores: ``(N,)`` losses.

    With ``blank_label='last'`` the blank is class ``C - 1`` and labels are padded with -1;
    with ``'first'`` the blank is 0, labels are 1..C-1 and padded with 0.
    """
    if blank_label not in ("first", "last"):
        raise ValueError(f"CTCLoss: blank_label must be 'first' or 'last', got {blank_label!r}")
    if pred.ndim != 3 or label.ndim != 2:
        raise ValueError(
            f"CTCLoss: pred must be 3-D and label 2-D, got {pred.shape} and {label.shape}"
        )
    T, N, C = pred.shape
    if label.shape[0] != N:
        raise ValueError(f"CTCLoss: label has {label.shape[0]} sequences but pred has {N}")
    xp = pred._xp
    blank, padding = (C - 1, -1) if blank_label == "last" else (0, 0)
    with _backend.on(pred.device):
        labels = label._data.astype(xp.int64)
        if label_lengths is None:
            lab_len = _ctc_label_lengths(xp, labels, padding)
        else:
            lab_len = label_lengths._data.astype(xp.int64).reshape(N)
        dat_len = (
            xp.full((N,), T, dtype=xp.int64)
            if pred_lengths is None
            else pred_lengths._data.astype(xp.int64).reshape(N)
        )
        if (
            bool((dat_len > T).any())
            or bool((dat_len < 1).any())
            or bool((lab_len > label.shape[1]).any())
        ):
            raise ValueError(
                f"CTCLoss: pred_lengths must be in [1, {T}] and label_lengths "
                f"at most {label.shape[1]}"
            )
        nll, grad = _ctc_raw(xp, pred._data, labels, dat_len, lab_len, blank)
        out = ndarray(nll.astype(pred.dtype), pred.device)
    return record_op(
        out, (pred,), lambda g: ((grad * g[None, :, None]).astype(pred.dtype),), "CTCLoss"
    )


class CTCLoss(Loss):
    """Connectionist Temporal Classification loss, ``-log p(label | pred)`` per sequence.

    Args:
        layout: ``'NTC'`` or ``'TNC'``, the layout of ``pred`` (unnormalised scores; the
            softmax over ``C`` is part of the loss).
        label_layout: ``'NT'`` or ``'TN'``.
        weight: global scalar weight.
        blank_label: ``'last'`` (MXNet's Gluon default: blank is ``C - 1``, labels
            ``0..C-2`` padded with -1) or ``'first'`` (blank 0, labels padded with 0).

    ``forward(pred, label, pred_lengths=None, label_lengths=None, sample_weight=None)``.
    """

    def __init__(
        self,
        layout: str = "NTC",
        label_layout: str = "NT",
        weight: float | None = None,
        blank_label: str = "last",
        **kwargs: Any,
    ) -> None:
        if layout not in ("NTC", "TNC"):
            raise ValueError(f"CTCLoss: layout must be 'NTC' or 'TNC', got {layout!r}")
        if label_layout not in ("NT", "TN"):
            raise ValueError(f"CTCLoss: label_layout must be 'NT' or 'TN', got {label_layout!r}")
        super().__init__(weight, label_layout.find("N"))
        self._layout, self._label_layout = layout, label_layout
        self._blank_label = blank_label

    def forward(
        self,
        pred: ndarray,
        label: ndarray,
        pred_lengths: ndarray | None = None,
        label_lengths: ndarray | None = None,
        sample_weight: ndarray | None = None,
    ) -> ndarray:
        if self._layout == "NTC":
            pred = pred.transpose((1, 0, 2))
        if self._batch_axis == 1:
            label = label.transpose((1, 0))
        loss = _ctc_loss(pred, label, pred_lengths, label_lengths, self._blank_label)
        return self._weighted(loss, sample_weight)
