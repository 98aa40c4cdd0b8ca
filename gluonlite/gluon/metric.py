"""``mx.gluon.metric``: evaluation metrics accumulated over batches (MXNet 2's classes).

``update(labels, preds)`` takes lists of per-device arrays (one pair per device, as
``split_and_load`` gives them). Each pair's statistics are computed on the arrays' own
device, and only those few numbers come back to the host, in one transfer per pair: the
batch itself is never copied to the host. A metric keeps a local and a global tally:
``reset_local()`` clears the first (e.g. per logging interval), ``reset()`` both;
``get()`` reads the local one, ``get_global()`` the global one.

>>> import gluonlite as mx
>>> acc = mx.gluon.metric.Accuracy()
>>> acc.update([mx.np.array([0, 1, 1])], [mx.np.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
>>> acc.get()
('accuracy', 0.6666666666666666)
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import numpy

from .. import _backend
from ..device import cpu
from ..ndarray import ndarray

__all__ = [
    "EvalMetric",
    "CompositeEvalMetric",
    "Accuracy",
    "TopKAccuracy",
    "F1",
    "Fbeta",
    "BinaryAccuracy",
    "MCC",
    "MAE",
    "MSE",
    "RMSE",
    "MeanPairwiseDistance",
    "MeanCosineSimilarity",
    "CrossEntropy",
    "Perplexity",
    "PearsonCorrelation",
    "PCC",
    "Loss",
    "Torch",
    "CustomMetric",
    "create",
    "register",
    "np",
    "check_label_shapes",
]

_REGISTRY: dict[str, type] = {}


def register(klass=None, *aliases):
    """Register a metric class under its lower-cased name (and ``aliases``) for ``create``."""

    def add(cls):
        for name in (cls.__name__, *aliases):
            _REGISTRY[name.lower()] = cls
        return cls

    return add(klass) if klass is not None else add


def _alias(*names):
    return lambda cls: register(cls, *names)


def check_label_shapes(
    labels, preds, wrap: bool = False, shape: bool = False, metric: str = "metric"
):
    """Raise ``ValueError`` unless ``labels`` and ``preds`` agree in length (or shape).

    With ``wrap`` a single array becomes a one-element list. Returns ``(labels, preds)``.
    """
    if wrap:
        labels = [labels] if not isinstance(labels, (list, tuple)) else labels
        preds = [preds] if not isinstance(preds, (list, tuple)) else preds
    if shape:
        got = (tuple(labels.shape), tuple(preds.shape))
        what = "shape"
    else:
        got = (len(labels), len(preds))
        what = "number of arrays"
    if got[0] != got[1]:
        raise ValueError(
            f"{metric}: {what} of labels {got[0]} does not match {what} of predictions {got[1]}"
        )
    return labels, preds


def _raw(x):
    """``(xp, raw array, device)`` of an ndarray, NumPy/CuPy array or Python sequence."""
    if isinstance(x, ndarray):
        return x._xp, x._data, x.device
    if _backend.is_gpu_array(x):
        from ..device import gpu

        return _backend.cupy(), x, gpu(x.device.id)
    if hasattr(x, "asnumpy"):
        x = x.asnumpy()
    return numpy, numpy.asarray(x), cpu(0)


def _pair(label, pred):
    """Label and prediction as raw arrays on the label's device (pred moved there if not)."""
    if isinstance(label, ndarray) and isinstance(pred, ndarray) and pred.device != label.device:
        pred = pred.to_device(label.device)
    xp, lab, device = _raw(label)
    _, prd, _ = _raw(pred)
    if xp is not numpy and not _backend.is_gpu_array(prd):
        prd = xp.asarray(prd)
    elif xp is numpy and _backend.is_gpu_array(prd):
        prd = prd.get()
    return xp, lab, prd, device


def _check_same_shape(metric: str, lab, prd) -> None:
    if lab.shape != prd.shape:
        raise ValueError(
            f"{metric}: label shape {tuple(lab.shape)} does not match prediction "
            f"shape {tuple(prd.shape)}"
        )


def _host(xp, device, *values) -> list:
    """Device scalars as Python floats, brought to the host in one transfer."""
    if xp is numpy:
        return [float(v) for v in values]
    with _backend.on(device):
        stacked = xp.stack([xp.asarray(v, dtype=xp.float64).reshape(()) for v in values])
        return [float(v) for v in stacked.get()]


class EvalMetric:
    """Base of the metrics: a running ``sum_metric`` over ``num_inst`` instances.

    Subclasses implement ``update(labels, preds)``; ``get()`` returns ``(name, value)``
    with ``value = sum_metric / num_inst`` (NaN before any update).

    Args:
        name: display name.
        output_names, label_names: which entries ``update_dict`` uses (None: all).
    """

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._kwargs = kwargs
        self.reset()

    def __str__(self) -> str:
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self) -> dict:
        """The arguments that recreate this metric with ``create(**config)``."""
        config = dict(self._kwargs)
        config.update(
            metric=type(self).__name__,
            name=self.name,
            output_names=self.output_names,
            label_names=self.label_names,
        )
        return config

    def update_dict(self, label, pred) -> None:
        """``update`` from name -> array mappings, selecting ``label_names``/``output_names``."""
        preds = (
            [pred[n] for n in self.output_names]
            if self.output_names is not None
            else list(pred.values())
        )
        labels = (
            [label[n] for n in self.label_names]
            if self.label_names is not None
            else list(label.values())
        )
        self.update(labels, preds)

    def update(self, labels, preds) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def _pairs(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, wrap=True, metric=self.name)
        return zip(labels, preds)

    def _add(self, sum_metric, num_inst) -> None:
        self.sum_metric += sum_metric
        self.num_inst += num_inst
        self.global_sum_metric += sum_metric
        self.global_num_inst += num_inst

    def _commit(self, staged) -> None:
        """Add the ``(sum, count)`` of every pair of one update, once all were computed: an
        update that raises on its second pair leaves the tallies as they were."""
        for sum_metric, num_inst in staged:
            self._add(sum_metric, num_inst)

    def reset(self) -> None:
        """Clear the local and the global tallies."""
        self.num_inst, self.sum_metric = 0, 0.0
        self.global_num_inst, self.global_sum_metric = 0, 0.0

    def reset_local(self) -> None:
        """Clear the local tally only; ``get_global()`` keeps counting."""
        self.num_inst, self.sum_metric = 0, 0.0

    def _value(self, sum_metric, num_inst):
        return float("nan") if num_inst == 0 else sum_metric / num_inst

    def get(self):
        """``(name, value)`` over the updates since the last reset or reset_local."""
        return self.name, self._value(self.sum_metric, self.num_inst)

    def get_global(self):
        """``(name, value)`` over the updates since the last reset."""
        return self.name, self._value(self.global_sum_metric, self.global_num_inst)

    def get_name_value(self) -> list:
        """``[(name, value), ...]`` (one pair, or one per child of a composite)."""
        return _zip_name_value(*self.get())

    def get_global_name_value(self) -> list:
        return _zip_name_value(*self.get_global())


def _zip_name_value(name, value) -> list:
    names = name if isinstance(name, list) else [name]
    values = value if isinstance(value, list) else [value]
    return list(zip(names, values))


def create(metric, *args, **kwargs) -> EvalMetric:
    """A metric from a name (``'acc'``, ``'f1'``, ...), an instance, a callable
    (``CustomMetric``) or a list of those (``CompositeEvalMetric``)."""
    if isinstance(metric, EvalMetric):
        return metric
    if isinstance(metric, (list, tuple)):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if callable(metric):
        return CustomMetric(metric, *args, **kwargs)
    if not isinstance(metric, str):
        raise TypeError(
            f"metric.create: metric must be a name, an EvalMetric, a callable or "
            f"a list of them, got {type(metric).__name__}"
        )
    klass = _REGISTRY.get(metric.lower())
    if klass is None:
        raise ValueError(
            f"metric.create: unknown metric {metric!r}; known names: {', '.join(sorted(_REGISTRY))}"
        )
    return klass(*args, **kwargs)


@_alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get()`` returns lists of names and values."""

    def __init__(self, metrics=None, name: str = "composite", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric) -> None:
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(
                f"CompositeEvalMetric.get_metric: index {index} is out of range "
                f"for {len(self.metrics)} metrics"
            ) from None

    def update_dict(self, labels, preds) -> None:
        if self.label_names is not None:
            labels = OrderedDict((k, v) for k, v in labels.items() if k in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict((k, v) for k, v in preds.items() if k in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds) -> None:
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self) -> None:
        for metric in getattr(self, "metrics", []):
            metric.reset()

    def reset_local(self) -> None:
        for metric in self.metrics:
            metric.reset_local()

    def _collect(self, getter):
        names, values = [], []
        for metric in self.metrics:
            name, value = getter(metric)
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return names, values

    def get(self):
        return self._collect(lambda m: m.get())

    def get_global(self):
        return self._collect(lambda m: m.get_global())

    def get_config(self) -> dict:
        config = super().get_config()
        config["metrics"] = [m.get_config() for m in self.metrics]
        return config


# --------------------------------------------------------------------- classification
@_alias("acc")
class Accuracy(EvalMetric):
    """Fraction of predictions equal to the label; a prediction shaped unlike its label is
    a score vector whose argmax along ``axis`` is the predicted class."""

    def __init__(self, axis: int = 1, name: str = "accuracy", output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names)
        self.axis = axis

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            with _backend.on(device):
                if prd.shape != lab.shape:
                    prd = prd.argmax(axis=self.axis)
                prd, lab = prd.astype(xp.int64).reshape(-1), lab.astype(xp.int64).reshape(-1)
                if prd.shape != lab.shape:
                    raise ValueError(
                        f"{self.name}: {lab.size} labels but {prd.size} "
                        f"predictions (label shape {tuple(label.shape)}, pred "
                        f"shape {tuple(pred.shape)})"
                    )
                (correct,) = _host(xp, device, (prd == lab).sum())
            staged.append((correct, lab.size))
        self._commit(staged)


@_alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the ``top_k`` highest scores."""

    def __init__(
        self, top_k: int = 1, name: str = "top_k_accuracy", output_names=None, label_names=None
    ):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names)
        if not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise ValueError(f"TopKAccuracy: top_k must be a positive int, got {top_k!r}")
        self.top_k = int(top_k)
        self.name += f"_{self.top_k}"

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            if prd.ndim not in (1, 2):
                raise ValueError(
                    f"{self.name}: predictions must be 1-D or 2-D, got shape {tuple(prd.shape)}"
                )
            with _backend.on(device):
                lab = lab.astype(xp.int64).reshape(-1)
                if prd.ndim == 1:
                    if prd.shape[0] != lab.shape[0]:
                        raise ValueError(
                            f"{self.name}: {lab.size} labels but {prd.shape[0]} predictions"
                        )
                    hits = (prd.astype(xp.int64) == lab).sum()
                else:
                    if prd.shape[0] != lab.shape[0]:
                        raise ValueError(
                            f"{self.name}: {lab.size} labels but {prd.shape[0]} "
                            f"predictions of shape {tuple(prd.shape)}"
                        )
                    k = min(self.top_k, prd.shape[1])
                    top = xp.argpartition(prd, -k, axis=1)[:, -k:]
                    hits = (top == lab[:, None]).any(axis=1).sum()
                (correct,) = _host(xp, device, hits)
            staged.append((correct, lab.size))
        self._commit(staged)


class _BinaryCounts:
    """True/false positive/negative counts per class, added up over batches (host floats)."""

    def __init__(self, class_type: str, threshold, beta: float = 1.0):
        if class_type not in ("binary", "multiclass", "multilabel"):
            raise ValueError(
                f"class_type must be 'binary', 'multiclass' or 'multilabel', got {class_type!r}"
            )
        self.class_type, self.threshold, self.beta = class_type, threshold, beta
        self.reset()

    def reset(self) -> None:
        self.counts = None  # (4, classes): tp, fp, fn, tn

    def batch(self, metric, label, pred):
        """This pair's counts, computed on its device and returned as one host array."""
        xp, lab, prd, device = _pair(label, pred)
        with _backend.on(device):
            lab = lab.astype(xp.int64)
            if self.class_type == "binary":
                if lab.size and int(lab.max()) > 1:
                    raise ValueError(
                        f"{metric}: binary classification needs labels in "
                        f"{{0, 1}}, got a label {int(lab.max())}"
                    )
                if prd.shape != lab.shape:
                    if prd.shape[-1] > 2 or prd.size != 2 * lab.size:
                        raise ValueError(
                            f"{metric}: prediction shape {tuple(prd.shape)} does "
                            f"not fit labels of shape {tuple(lab.shape)} for "
                            f"binary classification"
                        )
                    prd = prd.reshape(-1, 2)[:, 1]
                p = (prd > self.threshold).reshape(-1, 1)
                t = lab.reshape(-1, 1) == 1
            elif self.class_type == "multiclass":
                k = prd.shape[-1]
                if lab.size != prd.size // k:
                    raise ValueError(
                        f"{metric}: {lab.size} labels but predictions of shape {tuple(prd.shape)}"
                    )
                classes = xp.arange(k)
                p = prd.reshape(-1, k).argmax(axis=1)[:, None] == classes
                t = lab.reshape(-1)[:, None] == classes
            else:
                if prd.shape != lab.shape:
                    raise ValueError(
                        f"{metric}: multilabel labels must be shaped like the "
                        f"predictions, got {tuple(lab.shape)} and "
                        f"{tuple(prd.shape)}"
                    )
                k = prd.shape[-1]
                p, t = (prd > self.threshold).reshape(-1, k), (lab == 1).reshape(-1, k)
            counts = xp.stack(
                [(p & t).sum(0), (p & ~t).sum(0), (~p & t).sum(0), (~p & ~t).sum(0)]
            ).astype(xp.float64)
            counts = counts if xp is numpy else counts.get()
        return counts

    def merge(self, counts) -> None:
        if self.counts is not None and self.counts.shape != counts.shape:
            raise ValueError(
                f"the number of classes changed from {self.counts.shape[1]} to {counts.shape[1]}"
            )
        self.counts = counts if self.counts is None else self.counts + counts

    def fscore(self, average):
        if self.counts is None:
            return 0.0
        tp, fp, fn, _ = self.counts
        b2 = self.beta**2
        if average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = tp / numpy.maximum(tp + fp, 1e-12)
        recall = tp / numpy.maximum(tp + fn, 1e-12)
        score = (1 + b2) * precision * recall / numpy.maximum(b2 * precision + recall, 1e-12)
        if average == "micro":
            return float(score)
        return float(score.mean()) if average == "macro" else score

    def matthews(self) -> float:
        if self.counts is None or not self.counts[:, 0].sum():
            return 0.0
        tp, fp, fn, tn = (float(v) for v in self.counts[:, 0])
        denom = 1.0
        for term in (tp + fp, tp + fn, tn + fp, tn + fn):
            denom *= term if term else 1.0
        return (tp * tn - fp * fn) / math.sqrt(denom)


class _StateMetric(EvalMetric):
    """A metric whose value is a function of a mergeable state (confusion counts, moments),
    kept once for the local and once for the global tally.

    Subclasses give ``_new_state()``, ``_pair_stats(label, pred)`` (one pair's statistics,
    computed on its device and returned to the host), ``_score(state)`` and ``_count(stats)``
    (what one pair adds to ``num_inst``). A state has ``merge(stats)``.
    """

    def reset(self) -> None:
        super().reset()
        self._local, self._global = self._new_state(), self._new_state()

    def reset_local(self) -> None:
        super().reset_local()
        self._local = self._new_state()

    def update(self, labels, preds) -> None:
        # Every pair is checked and reduced before any tally changes.
        stats = [self._pair_stats(label, pred) for label, pred in self._pairs(labels, preds)]
        for st in stats:
            self._local.merge(st)
            self._global.merge(st)
            self.num_inst += self._count(st)
            self.global_num_inst += self._count(st)

    def _count(self, stats):
        return 1

    def get(self):
        return self.name, self._score(self._local) if self.num_inst else float("nan")

    def get_global(self):
        return self.name, self._score(self._global) if self.global_num_inst else float("nan")


class _CountingMetric(_StateMetric):
    """A metric of true/false positive/negative counts (F1, Fbeta, MCC); ``num_inst`` counts
    samples."""

    def _pair_stats(self, label, pred):
        return self._local.batch(self.name, label, pred)

    def _count(self, counts):
        return int(counts[:, 0].sum())


class F1(_CountingMetric):
    """F1 score from true/false positives and negatives accumulated over the batches.

    Args:
        class_type: ``'binary'`` (predictions: a probability per sample, or two scores),
            ``'multiclass'`` (argmax of scores) or ``'multilabel'`` (a probability per class).
        threshold: probability above which a prediction is positive.
        average: ``'micro'`` (global counts), ``'macro'`` (mean of per-class scores) or
            None (the per-class scores).
    """

    def __init__(
        self,
        name: str = "f1",
        output_names=None,
        label_names=None,
        class_type: str = "binary",
        threshold=0.5,
        average: str | None = "micro",
    ):
        if average not in ("micro", "macro", None):
            raise ValueError(
                f"{type(self).__name__}: average must be 'micro', 'macro' or None, got {average!r}"
            )
        self.average, self._class_type, self._threshold = average, class_type, threshold
        self._beta = getattr(self, "_beta", 1.0)
        _BinaryCounts(class_type, threshold)  # validate before anything is stored
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self):
        return _BinaryCounts(self._class_type, self._threshold, self._beta)

    def _score(self, counts):
        return counts.fscore(self.average)


class Fbeta(F1):
    """F-beta score: ``(1 + beta^2) P R / (beta^2 P + R)``; see ``F1`` for the arguments."""

    def __init__(
        self,
        name: str = "fbeta",
        output_names=None,
        label_names=None,
        class_type: str = "binary",
        beta: float = 1,
        threshold=0.5,
        average: str | None = "micro",
    ):
        self._beta = float(beta)
        super().__init__(name, output_names, label_names, class_type, threshold, average)


class MCC(_CountingMetric):
    """Matthews correlation coefficient of a binary classification (zero denominator terms
    count as 1)."""

    def __init__(self, name: str = "mcc", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self):
        return _BinaryCounts("binary", 0.5)

    def _score(self, counts):
        return counts.matthews()


class BinaryAccuracy(EvalMetric):
    """Accuracy of thresholded predictions (binary or multilabel); ``threshold`` may be a
    float or one value per class."""

    def __init__(
        self, name: str = "binary_accuracy", output_names=None, label_names=None, threshold=0.5
    ):
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.threshold = threshold

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            with _backend.on(device):
                threshold = self.threshold
                if not isinstance(threshold, numbers.Number):
                    threshold = xp.asarray(_raw(threshold)[1])
                predicted = (prd > threshold).astype(xp.int64).reshape(-1)
                lab = lab.astype(xp.int64).reshape(-1)
                if predicted.shape != lab.shape:
                    raise ValueError(
                        f"{self.name}: {lab.size} labels but {predicted.size} "
                        f"predictions (shapes {tuple(label.shape)} and "
                        f"{tuple(pred.shape)})"
                    )
                (correct,) = _host(xp, device, (predicted == lab).sum())
            staged.append((correct, lab.size))
        self._commit(staged)


# --------------------------------------------------------------------- regression
class _PerSampleMetric(EvalMetric):
    """A metric averaging one number per sample; ``_per_sample(xp, label, pred)`` gives them
    from ``(n, -1)``-shaped label and prediction."""

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            if lab.size != prd.size:
                raise ValueError(
                    f"{self.name}: label shape {tuple(lab.shape)} does not match "
                    f"prediction shape {tuple(prd.shape)}"
                )
            n = lab.shape[0] if lab.ndim else 1
            with _backend.on(device):
                lab = lab.astype(xp.float64).reshape(n, -1)
                prd = prd.astype(xp.float64).reshape(n, -1)
                (total,) = _host(xp, device, self._per_sample(xp, lab, prd).sum())
            staged.append((total, self._count(lab)))
        self._commit(staged)

    def _count(self, lab):
        return lab.shape[0]


class MAE(_PerSampleMetric):
    """Mean absolute error (per sample over its elements, then over the samples)."""

    def __init__(self, name: str = "mae", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _per_sample(self, xp, lab, prd):
        return xp.abs(lab - prd).mean(axis=1)


class MSE(_PerSampleMetric):
    """Mean squared error (per sample over its elements, then over the samples)."""

    def __init__(self, name: str = "mse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _per_sample(self, xp, lab, prd):
        return ((lab - prd) ** 2).mean(axis=1)


class RMSE(MSE):
    """Square root of the mean squared error."""

    def __init__(self, name: str = "rmse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _value(self, sum_metric, num_inst):
        return float("nan") if num_inst == 0 else math.sqrt(sum_metric / num_inst)


class MeanPairwiseDistance(_PerSampleMetric):
    """Mean over samples of the ``p``-norm of ``label - pred``."""

    def __init__(self, name: str = "mpd", output_names=None, label_names=None, p: float = 2):
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.p = p

    def _per_sample(self, xp, lab, prd):
        return (xp.abs(lab - prd) ** self.p).sum(axis=1) ** (1.0 / self.p)


class MeanCosineSimilarity(EvalMetric):
    """Mean cosine similarity over the last axis, the denominator floored at ``eps``."""

    def __init__(
        self, name: str = "cos_sim", output_names=None, label_names=None, eps: float = 1e-8
    ):
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.eps = eps

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            _check_same_shape(self.name, lab, prd)
            with _backend.on(device):
                d = lab.shape[-1] if lab.ndim else 1
                lab = lab.astype(xp.float64).reshape(-1, d)
                prd = prd.astype(xp.float64).reshape(-1, d)
                norms = xp.sqrt((lab * lab).sum(-1)) * xp.sqrt((prd * prd).sum(-1))
                sim = (lab * prd).sum(-1) / xp.maximum(norms, self.eps)
                (total,) = _host(xp, device, sim.sum())
            staged.append((total, lab.shape[0]))
        self._commit(staged)


@_alias("ce")
class CrossEntropy(EvalMetric):
    """Mean of ``-log(p[label])`` over samples; ``pred`` holds probabilities along ``axis``
    (or logits with ``from_logits``); labels equal to ``ignore_label`` are not counted."""

    def __init__(
        self,
        eps: float = 1e-12,
        ignore_label=None,
        axis: int = -1,
        from_logits: bool = False,
        name: str = "cross-entropy",
        output_names=None,
        label_names=None,
    ):
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.ignore_label, self.axis, self.from_logits, self.eps = (
            ignore_label,
            axis,
            from_logits,
            eps,
        )

    def update(self, labels, preds) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            axis = self.axis % prd.ndim
            if lab.size * prd.shape[axis] != prd.size:
                raise ValueError(
                    f"{self.name}: label shape {tuple(lab.shape)} does not match "
                    f"prediction shape {tuple(prd.shape)} (one label per "
                    f"distribution along axis {self.axis})"
                )
            with _backend.on(device):
                prd = xp.moveaxis(prd.astype(xp.float64), axis, -1).reshape(-1, prd.shape[axis])
                if self.from_logits:
                    e = xp.exp(prd - prd.max(axis=1, keepdims=True))
                    prd = e / e.sum(axis=1, keepdims=True)
                lab = lab.reshape(-1).astype(xp.int64)
                picked = xp.take_along_axis(
                    prd, xp.clip(lab, 0, prd.shape[1] - 1)[:, None], axis=1
                )[:, 0]
                keep = (
                    xp.ones(lab.shape, dtype=bool)
                    if self.ignore_label is None
                    else lab != self.ignore_label
                )
                nll = -(xp.log(xp.maximum(self.eps, picked)) * keep).sum()
                total, count = _host(xp, device, nll, keep.sum())
            staged.append((total, int(count)))
        self._commit(staged)


class Perplexity(CrossEntropy):
    """``exp`` of the cross entropy."""

    def __init__(
        self,
        eps: float = 1e-12,
        ignore_label=None,
        axis: int = -1,
        from_logits: bool = False,
        name: str = "perplexity",
        output_names=None,
        label_names=None,
    ):
        super().__init__(eps, ignore_label, axis, from_logits, name, output_names, label_names)

    def _value(self, sum_metric, num_inst):
        return float("nan") if num_inst == 0 else math.exp(sum_metric / num_inst)


class _Moments:
    """Count, means, and centred second moments of two series, merged batch by batch
    (Chan et al.'s parallel update, stable where the naive sums cancel)."""

    def __init__(self):
        self.n = 0.0
        self.mean_l = self.mean_p = self.m2_l = self.m2_p = self.c = 0.0

    def merge(self, stats) -> None:
        n, mean_l, mean_p, m2_l, m2_p, c = stats
        total = self.n + n
        if total == 0:
            return
        dl, dp = mean_l - self.mean_l, mean_p - self.mean_p
        w = self.n * n / total
        self.m2_l += m2_l + dl * dl * w
        self.m2_p += m2_p + dp * dp * w
        self.c += c + dl * dp * w
        self.mean_l += dl * n / total
        self.mean_p += dp * n / total
        self.n = total

    def pearson(self) -> float:
        denom = math.sqrt(self.m2_l * self.m2_p)
        return self.c / denom if denom else float("nan")


@_alias("pearsonr")
class PearsonCorrelation(_StateMetric):
    """Pearson correlation between all labels and predictions seen (flattened)."""

    def __init__(self, name: str = "pearsonr", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self):
        return _Moments()

    def _pair_stats(self, label, pred):
        xp, lab, prd, device = _pair(label, pred)
        _check_same_shape(self.name, lab, prd)
        with _backend.on(device):
            lab = lab.astype(xp.float64).reshape(-1)
            prd = prd.astype(xp.float64).reshape(-1)
            ml, mp = lab.mean(), prd.mean()
            dl, dp = lab - ml, prd - mp
            return _host(
                xp,
                device,
                xp.asarray(lab.size),
                ml,
                mp,
                (dl * dl).sum(),
                (dp * dp).sum(),
                (dl * dp).sum(),
            )

    def _score(self, moments):
        return moments.pearson()


class _Confusion:
    """A confusion matrix (rows: predictions, columns: labels) that grows with the classes."""

    def __init__(self):
        self.matrix = numpy.zeros((2, 2))

    def merge(self, cm) -> None:
        k = max(cm.shape[0], self.matrix.shape[0])
        self.matrix = self._grow(self.matrix, k) + self._grow(cm, k)

    @staticmethod
    def _grow(cm, k):
        pad = k - cm.shape[0]
        return numpy.pad(cm, ((0, pad), (0, pad))) if pad else cm

    def mcc(self) -> float:
        cm = self.matrix
        n = cm.sum()
        x, y = cm.sum(axis=1), cm.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        cov_xy = numpy.sum(numpy.diag(cm) * n - x * y)
        return float(cov_xy / math.sqrt(cov_xx * cov_yy))


class PCC(_StateMetric):
    """Multiclass Matthews correlation (Gorodkin's R_K) from the confusion matrix; the
    class count grows with the largest label or prediction seen."""

    def __init__(self, name: str = "pcc", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self):
        return _Confusion()

    def _pair_stats(self, label, pred):
        xp, lab, prd, device = _pair(label, pred)
        with _backend.on(device):
            if prd.shape != lab.shape:
                prd = prd.argmax(axis=1)
            prd, lab = prd.astype(xp.int64).reshape(-1), lab.astype(xp.int64).reshape(-1)
            if prd.shape != lab.shape:
                raise ValueError(f"{self.name}: {lab.size} labels but {prd.size} predictions")
            k = max(int(max(prd.max(), lab.max())) + 1, 2) if lab.size else 2
            cm = xp.bincount(prd * k + lab, minlength=k * k).reshape(k, k)
            return cm.astype(numpy.float64) if xp is numpy else cm.get().astype(numpy.float64)

    def _score(self, confusion):
        return confusion.mcc()


# --------------------------------------------------------------------- others
class Loss(EvalMetric):
    """Mean of the loss values passed as ``preds`` (labels are ignored)."""

    def __init__(self, name: str = "loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, _, preds) -> None:
        preds = preds if isinstance(preds, (list, tuple)) else [preds]
        staged = []
        for pred in preds:
            xp, raw, device = _raw(pred)
            with _backend.on(device):
                (total,) = _host(xp, device, raw.astype(xp.float64).sum())
            staged.append((total, raw.size))
        self._commit(staged)


class Torch(Loss):
    """``Loss`` under the name 'torch' (MXNet keeps it for its torch criterions)."""

    def __init__(self, name: str = "torch", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


class CustomMetric(EvalMetric):
    """A metric from ``feval(label, pred)``, which returns a value per batch or a
    ``(sum_metric, num_inst)`` pair; it receives ``mx.np`` arrays on the label's device."""

    def __init__(
        self,
        feval,
        name: str | None = None,
        allow_extra_outputs: bool = False,
        output_names=None,
        label_names=None,
    ):
        if not callable(feval):
            raise TypeError(f"CustomMetric: feval must be callable, got {type(feval).__name__}")
        if name is None:
            name = getattr(feval, "__name__", "custom")
            if "<" in name:
                name = f"custom({name})"
        super().__init__(
            name,
            feval=feval,
            allow_extra_outputs=allow_extra_outputs,
            output_names=output_names,
            label_names=label_names,
        )
        self._feval, self._allow_extra_outputs = feval, allow_extra_outputs

    def update(self, labels, preds) -> None:
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, wrap=True, metric=self.name)
        else:
            labels = labels if isinstance(labels, (list, tuple)) else [labels]
            preds = preds if isinstance(preds, (list, tuple)) else [preds]
        staged = []
        for pred, label in zip(preds, labels):
            if (
                isinstance(label, ndarray)
                and isinstance(pred, ndarray)
                and pred.device != label.device
            ):
                pred = pred.to_device(label.device)
            value = self._feval(label, pred)
            if isinstance(value, tuple):
                total, count = value
            else:
                total, count = value, 1
            staged.append(
                (float(total), int(count) if isinstance(count, numbers.Integral) else float(count))
            )
        self._commit(staged)

    def get_config(self):
        raise NotImplementedError("CustomMetric cannot be serialized: feval is a function")


def np(numpy_feval, name: str | None = None, allow_extra_outputs: bool = False):
    """A ``CustomMetric`` whose ``numpy_feval(label, pred)`` receives NumPy arrays."""

    def feval(label, pred):
        return numpy_feval(_as_numpy(label), _as_numpy(pred))

    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)


def _as_numpy(x):
    return x.asnumpy() if hasattr(x, "asnumpy") else numpy.asarray(x)


for _cls in (
    CompositeEvalMetric,
    Accuracy,
    TopKAccuracy,
    F1,
    Fbeta,
    BinaryAccuracy,
    MCC,
    MAE,
    MSE,
    RMSE,
    MeanPairwiseDistance,
    MeanCosineSimilarity,
    CrossEntropy,
    Perplexity,
    PearsonCorrelation,
    PCC,
    Loss,
    Torch,
    CustomMetric,
):
    register(_cls)
