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
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, Protocol, SupportsFloat, TypeVar, Union, overload

import numpy
import numpy.typing as npt

from .. import _backend
from .._typing import RawArray
from ..device import Device, cpu
from ..ndarray import ArrayLike, ndarray

if TYPE_CHECKING:
    from typing import TypeAlias

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

# What ``update`` takes as labels or as predictions: one array (``mx.np``, NumPy, CuPy or a
# nested sequence) or a list of them, one per device (as ``split_and_load`` gives them).
_Arrays: TypeAlias = Union[ArrayLike, Sequence[ArrayLike]]
# Host arrays of statistics (confusion counts, per-class scores).
_F64: TypeAlias = npt.NDArray[numpy.float64]
# A metric's value: a float, or the per-class scores of ``F1(average=None)``.
_Value: TypeAlias = Union[float, _F64]
# What ``get()`` returns: ``(name, value)``, or for a composite the list of the names and the
# list of the values of its children.
_NameValue: TypeAlias = tuple[Union[str, list[str]], Union[_Value, list[_Value]]]
# A ``feval(label, pred)`` of ``CustomMetric``: a batch's value, or its ``(sum, count)``.
_FEval: TypeAlias = Callable[[Any, Any], Union[SupportsFloat, tuple[SupportsFloat, SupportsFloat]]]

_MetricClass = TypeVar("_MetricClass", bound="type[EvalMetric]")
_S = TypeVar("_S", bound="_State[Any]")
_Stats = TypeVar("_Stats")
_StatsIn = TypeVar("_StatsIn", contravariant=True)

_REGISTRY: dict[str, type[EvalMetric]] = {}


@overload
def register(klass: _MetricClass, *aliases: str) -> _MetricClass: ...


@overload
def register(klass: None = None, *aliases: str) -> Callable[[_MetricClass], _MetricClass]: ...


def register(
    klass: _MetricClass | None = None, *aliases: str
) -> _MetricClass | Callable[[_MetricClass], _MetricClass]:
    """Register a metric class under its lower-cased name (and ``aliases``) for ``create``."""

    def add(cls: _MetricClass) -> _MetricClass:
        for name in (cls.__name__, *aliases):
            _REGISTRY[name.lower()] = cls
        return cls

    return add(klass) if klass is not None else add


def _alias(*names: str) -> Callable[[_MetricClass], _MetricClass]:
    return lambda cls: register(cls, *names)


def check_label_shapes(
    labels: Any, preds: Any, wrap: bool = False, shape: bool = False, metric: str = "metric"
) -> tuple[Any, Any]:
    """Raise ``ValueError`` unless ``labels`` and ``preds`` agree in length (or shape).

    With ``wrap`` a single array becomes a one-element list. Returns ``(labels, preds)``.
    """
    if wrap:
        labels = [labels] if not isinstance(labels, (list, tuple)) else labels
        preds = [preds] if not isinstance(preds, (list, tuple)) else preds
    got: tuple[object, object]
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


def _raw(x: ArrayLike) -> tuple[ModuleType, RawArray, Device]:
    """``(xp, raw array, device)`` of an ndarray, NumPy/CuPy array or Python sequence."""
    if isinstance(x, ndarray):
        return x._xp, x._data, x.device
    if _backend.is_gpu_array(x):
        from ..device import gpu

        raw: RawArray = x  # a CuPy array
        return _backend.cupy(), raw, gpu(raw.device.id)
    if hasattr(x, "asnumpy"):
        x = x.asnumpy()
    return numpy, numpy.asarray(x), cpu(0)


def _pair(label: ArrayLike, pred: ArrayLike) -> tuple[ModuleType, RawArray, RawArray, Device]:
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


def _check_same_shape(metric: str, lab: RawArray, prd: RawArray) -> None:
    if lab.shape != prd.shape:
        raise ValueError(
            f"{metric}: label shape {tuple(lab.shape)} does not match prediction "
            f"shape {tuple(prd.shape)}"
        )


def _host(xp: ModuleType, device: Device, *values: Any) -> list[float]:
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

    num_inst: float
    sum_metric: float
    global_num_inst: float
    global_sum_metric: float

    def __init__(
        self,
        name: str,
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._kwargs = kwargs
        self.reset()

    def __str__(self) -> str:
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self) -> dict[str, Any]:
        """The arguments that recreate this metric with ``create(**config)``."""
        config = dict(self._kwargs)
        config.update(
            metric=type(self).__name__,
            name=self.name,
            output_names=self.output_names,
            label_names=self.label_names,
        )
        return config

    def update_dict(self, label: Mapping[str, ArrayLike], pred: Mapping[str, ArrayLike]) -> None:
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

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        """Add a batch: ``labels`` and ``preds`` are one array each, or equally long lists of
        arrays (one pair per device); a pair that does not fit raises ``ValueError``."""
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def _pairs(self, labels: _Arrays, preds: _Arrays) -> Iterator[tuple[ArrayLike, ArrayLike]]:
        label_list, pred_list = check_label_shapes(labels, preds, wrap=True, metric=self.name)
        return zip(label_list, pred_list)

    def _add(self, sum_metric: float, num_inst: float) -> None:
        self.sum_metric += sum_metric
        self.num_inst += num_inst
        self.global_sum_metric += sum_metric
        self.global_num_inst += num_inst

    def _commit(self, staged: Iterable[tuple[float, float]]) -> None:
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

    def _value(self, sum_metric: float, num_inst: float) -> float:
        return float("nan") if num_inst == 0 else sum_metric / num_inst

    def get(self) -> _NameValue:
        """``(name, value)`` over the updates since the last reset or reset_local."""
        return self.name, self._value(self.sum_metric, self.num_inst)

    def get_global(self) -> _NameValue:
        """``(name, value)`` over the updates since the last reset."""
        return self.name, self._value(self.global_sum_metric, self.global_num_inst)

    def get_name_value(self) -> list[tuple[str, _Value]]:
        """``[(name, value), ...]`` (one pair, or one per child of a composite)."""
        return _zip_name_value(*self.get())

    def get_global_name_value(self) -> list[tuple[str, _Value]]:
        """``[(name, value), ...]`` of the global tally (see ``get_name_value``)."""
        return _zip_name_value(*self.get_global())


def _zip_name_value(
    name: str | list[str], value: _Value | list[_Value]
) -> list[tuple[str, _Value]]:
    names = name if isinstance(name, list) else [name]
    values = value if isinstance(value, list) else [value]
    return list(zip(names, values))


def create(
    metric: str | EvalMetric | _FEval | Sequence[str | EvalMetric | _FEval],
    *args: Any,
    **kwargs: Any,
) -> EvalMetric:
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

    def __init__(
        self,
        metrics: Sequence[str | EvalMetric | _FEval] | None = None,
        name: str = "composite",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric: str | EvalMetric | _FEval) -> None:
        """Add a child metric (anything ``create`` takes)."""
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        """The child metric at ``index``; ``ValueError`` when out of range."""
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(
                f"CompositeEvalMetric.get_metric: index {index} is out of range "
                f"for {len(self.metrics)} metrics"
            ) from None

    def update_dict(self, labels: Mapping[str, ArrayLike], preds: Mapping[str, ArrayLike]) -> None:
        if self.label_names is not None:
            labels = OrderedDict((k, v) for k, v in labels.items() if k in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict((k, v) for k, v in preds.items() if k in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self) -> None:
        for metric in getattr(self, "metrics", []):
            metric.reset()

    def reset_local(self) -> None:
        for metric in self.metrics:
            metric.reset_local()

    def _collect(
        self, getter: Callable[[EvalMetric], _NameValue]
    ) -> tuple[list[str], list[_Value]]:
        names: list[str] = []
        values: list[_Value] = []
        for metric in self.metrics:
            name, value = getter(metric)
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return names, values

    def get(self) -> tuple[list[str], list[_Value]]:
        return self._collect(lambda m: m.get())

    def get_global(self) -> tuple[list[str], list[_Value]]:
        return self._collect(lambda m: m.get_global())

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["metrics"] = [m.get_config() for m in self.metrics]
        return config


# --------------------------------------------------------------------- classification
@_alias("acc")
class Accuracy(EvalMetric):
    """Fraction of predictions equal to the label; a prediction shaped unlike its label is
    a score vector whose argmax along ``axis`` is the predicted class."""

    def __init__(
        self,
        axis: int = 1,
        name: str = "accuracy",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names)
        self.axis = axis

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            shapes = tuple(lab.shape), tuple(prd.shape)
            with _backend.on(device):
                if prd.shape != lab.shape:
                    prd = prd.argmax(axis=self.axis)
                prd, lab = prd.astype(xp.int64).reshape(-1), lab.astype(xp.int64).reshape(-1)
                if prd.shape != lab.shape:
                    raise ValueError(
                        f"{self.name}: {lab.size} labels but {prd.size} "
                        f"predictions (label shape {shapes[0]}, pred shape {shapes[1]})"
                    )
                (correct,) = _host(xp, device, (prd == lab).sum())
            staged.append((correct, lab.size))
        self._commit(staged)


@_alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the ``top_k`` highest scores."""

    def __init__(
        self,
        top_k: int = 1,
        name: str = "top_k_accuracy",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names)
        if not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise ValueError(f"TopKAccuracy: top_k must be a positive int, got {top_k!r}")
        self.top_k: int = int(top_k)
        self.name += f"_{self.top_k}"

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
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

    counts: _F64 | None

    def __init__(self, class_type: str, threshold: float, beta: float = 1.0) -> None:
        if class_type not in ("binary", "multiclass", "multilabel"):
            raise ValueError(
                f"class_type must be 'binary', 'multiclass' or 'multilabel', got {class_type!r}"
            )
        self.class_type, self.threshold, self.beta = class_type, threshold, beta
        self.reset()

    def reset(self) -> None:
        self.counts = None  # (4, classes): tp, fp, fn, tn

    def batch(self, metric: str, label: ArrayLike, pred: ArrayLike) -> _F64:
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
            host: _F64 = counts if xp is numpy else counts.get()
        return host

    def merge(self, counts: _F64) -> None:
        if self.counts is not None and self.counts.shape != counts.shape:
            raise ValueError(
                f"the number of classes changed from {self.counts.shape[1]} to {counts.shape[1]}"
            )
        self.counts = counts if self.counts is None else self.counts + counts

    def fscore(self, average: str | None) -> _Value:
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


class _State(Protocol[_StatsIn]):
    def merge(self, stats: _StatsIn) -> None: ...


class _StateMetric(EvalMetric, Generic[_S, _Stats]):
    """A metric whose value is a function of a mergeable state (confusion counts, moments),
    kept once for the local and once for the global tally.

    Subclasses give ``_new_state()``, ``_pair_stats(label, pred)`` (one pair's statistics,
    computed on its device and returned to the host), ``_score(state)`` and ``_count(stats)``
    (what one pair adds to ``num_inst``). A state has ``merge(stats)``.
    """

    _local: _S
    _global: _S

    @abstractmethod
    def _new_state(self) -> _S:
        """A state of no updates."""

    @abstractmethod
    def _pair_stats(self, label: ArrayLike, pred: ArrayLike) -> _Stats:
        """One label/prediction pair's statistics, on the host."""

    @abstractmethod
    def _score(self, state: _S) -> _Value:
        """The metric's value of a state with at least one update."""

    def reset(self) -> None:
        super().reset()
        self._local, self._global = self._new_state(), self._new_state()

    def reset_local(self) -> None:
        super().reset_local()
        self._local = self._new_state()

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        # Every pair is checked and reduced before any tally changes.
        stats = [self._pair_stats(label, pred) for label, pred in self._pairs(labels, preds)]
        for st in stats:
            self._local.merge(st)
            self._global.merge(st)
            self.num_inst += self._count(st)
            self.global_num_inst += self._count(st)

    def _count(self, stats: _Stats) -> int:
        return 1

    def get(self) -> tuple[str, _Value]:
        return self.name, self._score(self._local) if self.num_inst else float("nan")

    def get_global(self) -> tuple[str, _Value]:
        return self.name, self._score(self._global) if self.global_num_inst else float("nan")


class _CountingMetric(_StateMetric[_BinaryCounts, _F64]):
    """A metric of true/false positive/negative counts (F1, Fbeta, MCC); ``num_inst`` counts
    samples."""

    def _pair_stats(self, label: ArrayLike, pred: ArrayLike) -> _F64:
        return self._local.batch(self.name, label, pred)

    def _count(self, counts: _F64) -> int:
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
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        class_type: str = "binary",
        threshold: float = 0.5,
        average: str | None = "micro",
    ) -> None:
        if average not in ("micro", "macro", None):
            raise ValueError(
                f"{type(self).__name__}: average must be 'micro', 'macro' or None, got {average!r}"
            )
        self.average, self._class_type, self._threshold = average, class_type, threshold
        self._beta = getattr(self, "_beta", 1.0)
        _BinaryCounts(class_type, threshold)  # validate before anything is stored
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self) -> _BinaryCounts:
        return _BinaryCounts(self._class_type, self._threshold, self._beta)

    def _score(self, counts: _BinaryCounts) -> _Value:
        return counts.fscore(self.average)


class Fbeta(F1):
    """F-beta score: ``(1 + beta^2) P R / (beta^2 P + R)``; see ``F1`` for the arguments."""

    def __init__(
        self,
        name: str = "fbeta",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        class_type: str = "binary",
        beta: float = 1,
        threshold: float = 0.5,
        average: str | None = "micro",
    ) -> None:
        self._beta = float(beta)
        super().__init__(name, output_names, label_names, class_type, threshold, average)


class MCC(_CountingMetric):
    """Matthews correlation coefficient of a binary classification (zero denominator terms
    count as 1)."""

    def __init__(
        self,
        name: str = "mcc",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self) -> _BinaryCounts:
        return _BinaryCounts("binary", 0.5)

    def _score(self, counts: _BinaryCounts) -> float:
        return counts.matthews()


class BinaryAccuracy(EvalMetric):
    """Accuracy of thresholded predictions (binary or multilabel); ``threshold`` may be a
    float or one value per class."""

    def __init__(
        self,
        name: str = "binary_accuracy",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        threshold: ArrayLike = 0.5,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.threshold = threshold

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        staged = []
        for label, pred in self._pairs(labels, preds):
            xp, lab, prd, device = _pair(label, pred)
            shapes = tuple(lab.shape), tuple(prd.shape)
            with _backend.on(device):
                threshold = self.threshold
                if not isinstance(threshold, numbers.Number):
                    threshold = xp.asarray(_raw(threshold)[1])
                predicted = (prd > threshold).astype(xp.int64).reshape(-1)
                lab = lab.astype(xp.int64).reshape(-1)
                if predicted.shape != lab.shape:
                    raise ValueError(
                        f"{self.name}: {lab.size} labels but {predicted.size} "
                        f"predictions (shapes {shapes[0]} and {shapes[1]})"
                    )
                (correct,) = _host(xp, device, (predicted == lab).sum())
            staged.append((correct, lab.size))
        self._commit(staged)


# --------------------------------------------------------------------- regression
class _PerSampleMetric(EvalMetric):
    """A metric averaging one number per sample; ``_per_sample(xp, label, pred)`` gives them
    from ``(n, -1)``-shaped label and prediction."""

    @abstractmethod
    def _per_sample(self, xp: ModuleType, lab: RawArray, prd: RawArray) -> RawArray:
        """The per-sample values of ``(n, -1)``-shaped float64 label and prediction."""

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
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

    def _count(self, lab: RawArray) -> int:
        return int(lab.shape[0])


class MAE(_PerSampleMetric):
    """Mean absolute error (per sample over its elements, then over the samples)."""

    def __init__(
        self,
        name: str = "mae",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _per_sample(self, xp: ModuleType, lab: RawArray, prd: RawArray) -> RawArray:
        return xp.abs(lab - prd).mean(axis=1)


class MSE(_PerSampleMetric):
    """Mean squared error (per sample over its elements, then over the samples)."""

    def __init__(
        self,
        name: str = "mse",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _per_sample(self, xp: ModuleType, lab: RawArray, prd: RawArray) -> RawArray:
        return ((lab - prd) ** 2).mean(axis=1)


class RMSE(MSE):
    """Square root of the mean squared error."""

    def __init__(
        self,
        name: str = "rmse",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _value(self, sum_metric: float, num_inst: float) -> float:
        return float("nan") if num_inst == 0 else math.sqrt(sum_metric / num_inst)


class MeanPairwiseDistance(_PerSampleMetric):
    """Mean over samples of the ``p``-norm of ``label - pred``."""

    def __init__(
        self,
        name: str = "mpd",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        p: float = 2,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.p = p

    def _per_sample(self, xp: ModuleType, lab: RawArray, prd: RawArray) -> RawArray:
        return (xp.abs(lab - prd) ** self.p).sum(axis=1) ** (1.0 / self.p)


class MeanCosineSimilarity(EvalMetric):
    """Mean cosine similarity over the last axis, the denominator floored at ``eps``."""

    def __init__(
        self,
        name: str = "cos_sim",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.eps = eps

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
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
        ignore_label: int | None = None,
        axis: int = -1,
        from_logits: bool = False,
        name: str = "cross-entropy",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)
        self.ignore_label, self.axis, self.from_logits, self.eps = (
            ignore_label,
            axis,
            from_logits,
            eps,
        )

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
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
        ignore_label: int | None = None,
        axis: int = -1,
        from_logits: bool = False,
        name: str = "perplexity",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(eps, ignore_label, axis, from_logits, name, output_names, label_names)

    def _value(self, sum_metric: float, num_inst: float) -> float:
        return float("nan") if num_inst == 0 else math.exp(sum_metric / num_inst)


class _Moments:
    """Count, means, and centred second moments of two series, merged batch by batch
    (Chan et al.'s parallel update, stable where the naive sums cancel)."""

    def __init__(self) -> None:
        self.n = 0.0
        self.mean_l = self.mean_p = self.m2_l = self.m2_p = self.c = 0.0

    def merge(self, stats: Sequence[float]) -> None:
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
class PearsonCorrelation(_StateMetric[_Moments, list[float]]):
    """Pearson correlation between all labels and predictions seen (flattened)."""

    def __init__(
        self,
        name: str = "pearsonr",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self) -> _Moments:
        return _Moments()

    def _pair_stats(self, label: ArrayLike, pred: ArrayLike) -> list[float]:
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

    def _score(self, moments: _Moments) -> float:
        return moments.pearson()


class _Confusion:
    """A confusion matrix (rows: predictions, columns: labels) that grows with the classes."""

    def __init__(self) -> None:
        self.matrix: _F64 = numpy.zeros((2, 2))

    def merge(self, cm: _F64) -> None:
        k = max(cm.shape[0], self.matrix.shape[0])
        self.matrix = self._grow(self.matrix, k) + self._grow(cm, k)

    @staticmethod
    def _grow(cm: _F64, k: int) -> _F64:
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


class PCC(_StateMetric[_Confusion, _F64]):
    """Multiclass Matthews correlation (Gorodkin's R_K) from the confusion matrix; the
    class count grows with the largest label or prediction seen."""

    def __init__(
        self,
        name: str = "pcc",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def _new_state(self) -> _Confusion:
        return _Confusion()

    def _pair_stats(self, label: ArrayLike, pred: ArrayLike) -> _F64:
        xp, lab, prd, device = _pair(label, pred)
        with _backend.on(device):
            if prd.shape != lab.shape:
                prd = prd.argmax(axis=1)
            prd, lab = prd.astype(xp.int64).reshape(-1), lab.astype(xp.int64).reshape(-1)
            if prd.shape != lab.shape:
                raise ValueError(f"{self.name}: {lab.size} labels but {prd.size} predictions")
            k = max(int(max(prd.max(), lab.max())) + 1, 2) if lab.size else 2
            cm = xp.bincount(prd * k + lab, minlength=k * k).reshape(k, k)
            host: _F64 = cm.astype(numpy.float64) if xp is numpy else cm.get().astype(numpy.float64)
            return host

    def _score(self, confusion: _Confusion) -> float:
        return confusion.mcc()


# --------------------------------------------------------------------- others
class Loss(EvalMetric):
    """Mean of the loss values passed as ``preds`` (labels are ignored)."""

    def __init__(
        self,
        name: str = "loss",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    def update(self, _: _Arrays, preds: _Arrays) -> None:
        arrays: Sequence[Any] = preds if isinstance(preds, (list, tuple)) else [preds]
        staged = []
        for pred in arrays:
            xp, raw, device = _raw(pred)
            with _backend.on(device):
                (total,) = _host(xp, device, raw.astype(xp.float64).sum())
            staged.append((total, raw.size))
        self._commit(staged)


class Torch(Loss):
    """``Loss`` under the name 'torch' (MXNet keeps it for its torch criterions)."""

    def __init__(
        self,
        name: str = "torch",
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)


class CustomMetric(EvalMetric):
    """A metric from ``feval(label, pred)``, which returns a value per batch or a
    ``(sum_metric, num_inst)`` pair; it receives ``mx.np`` arrays on the label's device."""

    def __init__(
        self,
        feval: _FEval,
        name: str | None = None,
        allow_extra_outputs: bool = False,
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
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

    def update(self, labels: _Arrays, preds: _Arrays) -> None:
        label_list: Sequence[Any]
        pred_list: Sequence[Any]
        if not self._allow_extra_outputs:
            label_list, pred_list = check_label_shapes(labels, preds, wrap=True, metric=self.name)
        else:
            label_list = labels if isinstance(labels, (list, tuple)) else [labels]
            pred_list = preds if isinstance(preds, (list, tuple)) else [preds]
        staged = []
        for pred, label in zip(pred_list, label_list):
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

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError("CustomMetric cannot be serialized: feval is a function")


def np(
    numpy_feval: _FEval, name: str | None = None, allow_extra_outputs: bool = False
) -> CustomMetric:
    """A ``CustomMetric`` whose ``numpy_feval(label, pred)`` receives NumPy arrays."""

    def feval(
        label: ArrayLike, pred: ArrayLike
    ) -> SupportsFloat | tuple[SupportsFloat, SupportsFloat]:
        return numpy_feval(_as_numpy(label), _as_numpy(pred))

    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)


def _as_numpy(x: ArrayLike) -> numpy.ndarray[Any, Any]:
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
