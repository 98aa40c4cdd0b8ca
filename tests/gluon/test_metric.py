"""gluon.metric against NumPy (and MXNet's documented examples), on one and two devices."""

from __future__ import annotations

import math

import numpy
import pytest

import gluonlite as mx
from gluonlite.gluon import metric

RNG = numpy.random.default_rng(3)


def _split(arrays, devices):
    """One slice of each NumPy array per device, as split_and_load would give."""
    parts = [numpy.array_split(a, len(devices)) for a in arrays]
    return [
        [mx.np.array(p[i], dtype=p[i].dtype, device=d) for i, d in enumerate(devices)]
        for p in parts
    ]


def _pearson(l, p):
    return numpy.corrcoef(l.ravel(), p.ravel())[0, 1]


def _mcc_binary(l, p):
    tp = ((p == 1) & (l == 1)).sum()
    tn = ((p == 0) & (l == 0)).sum()
    fp = ((p == 1) & (l == 0)).sum()
    fn = ((p == 0) & (l == 1)).sum()
    terms = [t if t else 1 for t in (tp + fp, tp + fn, tn + fp, tn + fn)]
    return (tp * tn - fp * fn) / math.sqrt(numpy.prod(terms, dtype=float))


def _f1(l, p, beta=1.0):
    tp = ((p == 1) & (l == 1)).sum()
    fp = ((p == 1) & (l == 0)).sum()
    fn = ((p == 0) & (l == 1)).sum()
    prec, rec = tp / max(tp + fp, 1e-12), tp / max(tp + fn, 1e-12)
    return (1 + beta**2) * prec * rec / max(beta**2 * prec + rec, 1e-12)


n, k = 10, 4
scores = RNG.random((n, k))
classes = RNG.integers(0, k, n)
binary = RNG.integers(0, 2, n)
probs = RNG.random(n)
values, targets = RNG.normal(size=(n, 3)), RNG.normal(size=(n, 3))
softmax = scores / scores.sum(1, keepdims=True)

# metric factory, labels, preds, expected value
CASES = [
    ("Accuracy", metric.Accuracy, classes, scores, (scores.argmax(1) == classes).mean()),
    (
        "TopKAccuracy",
        lambda: metric.TopKAccuracy(top_k=2),
        classes,
        scores,
        numpy.mean([c in numpy.argsort(s)[-2:] for c, s in zip(classes, scores)]),
    ),
    ("F1", metric.F1, binary, probs, _f1(binary, (probs > 0.5).astype(int))),
    (
        "Fbeta",
        lambda: metric.Fbeta(beta=2),
        binary,
        probs,
        _f1(binary, (probs > 0.5).astype(int), 2.0),
    ),
    (
        "BinaryAccuracy",
        lambda: metric.BinaryAccuracy(threshold=0.3),
        binary,
        probs,
        ((probs > 0.3) == binary).mean(),
    ),
    (
        "MCC",
        metric.MCC,
        binary,
        numpy.stack([1 - probs, probs], 1),
        _mcc_binary(binary, (probs > 0.5).astype(int)),
    ),
    ("MAE", metric.MAE, targets, values, numpy.abs(targets - values).mean()),
    ("MSE", metric.MSE, targets, values, ((targets - values) ** 2).mean()),
    ("RMSE", metric.RMSE, targets, values, math.sqrt(((targets - values) ** 2).mean())),
    (
        "MeanPairwiseDistance",
        metric.MeanPairwiseDistance,
        targets,
        values,
        numpy.linalg.norm(targets - values, axis=1).mean(),
    ),
    (
        "MeanCosineSimilarity",
        metric.MeanCosineSimilarity,
        targets,
        values,
        (
            (targets * values).sum(1)
            / (numpy.linalg.norm(targets, axis=1) * numpy.linalg.norm(values, axis=1))
        ).mean(),
    ),
    (
        "CrossEntropy",
        metric.CrossEntropy,
        classes,
        softmax,
        -numpy.log(softmax[numpy.arange(n), classes]).mean(),
    ),
    (
        "Perplexity",
        metric.Perplexity,
        classes,
        softmax,
        math.exp(-numpy.log(softmax[numpy.arange(n), classes]).mean()),
    ),
    ("PearsonCorrelation", metric.PearsonCorrelation, targets, values, _pearson(targets, values)),
    (
        "PCC",
        metric.PCC,
        binary,
        numpy.stack([1 - probs, probs], 1),
        _mcc_binary(binary, (probs > 0.5).astype(int)),
    ),
]


@pytest.mark.parametrize("name,factory,labels,preds,expected", CASES, ids=[c[0] for c in CASES])
def test_metric_against_numpy_on_split_batches(name, factory, labels, preds, expected, devices):
    m = factory()
    # Two batches, each split over the devices: the tally must not depend on the split.
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        ls, ps = _split([labels[lo:hi], preds[lo:hi]], devices)
        m.update(ls, ps)
    got = m.get()[1]
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), name
    assert m.get_global()[1] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    m.reset_local()
    assert math.isnan(m.get()[1])
    assert m.get_global()[1] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    m.reset()
    assert math.isnan(m.get_global()[1])


def test_documented_examples():
    preds = [mx.np.array([[0.3, 0.7], [0, 1.0], [0.4, 0.6]])]
    labels = [mx.np.array([0, 1, 1])]
    assert metric.F1().update(labels, preds) is None
    f1 = metric.F1()
    f1.update(labels, preds)
    assert f1.get() == ("f1", pytest.approx(0.8))
    fb = metric.Fbeta(beta=2)
    fb.update(labels, preds)
    assert fb.get()[1] == pytest.approx(0.9090909090909091)
    ce = metric.create("ce")
    ce.update(labels, preds)
    assert ce.get()[1] == pytest.approx(0.57159948348999023)
    pr = metric.PearsonCorrelation()
    pr.update([mx.np.array([[1, 0], [0, 1], [0, 1]])], preds)
    assert pr.get()[1] == pytest.approx(0.42163704544016178)
    mpd = metric.MeanPairwiseDistance()
    mpd.update([mx.np.array([[1.0, 0.0], [4.0, 2.0]])], [mx.np.array([[1.0, 2.0], [3.0, 4.0]])])
    assert mpd.get()[1] == pytest.approx(2.1180338859558105)
    mcs = metric.MeanCosineSimilarity()
    mcs.update([mx.np.array([[3.0, 4.0], [2.0, 2.0]])], [mx.np.array([[1.0, 0.0], [1.0, 1.0]])])
    assert mcs.get()[1] == pytest.approx(0.8)
    # MXNet's MCC example: a network that almost always predicts positive.
    fp, fn, tp, tn = 1000, 1, 10000, 1
    p = [mx.np.array([[0.3, 0.7]] * fp + [[0.7, 0.3]] * tn + [[0.7, 0.3]] * fn + [[0.3, 0.7]] * tp)]
    l = [mx.np.array([0.0] * (fp + tn) + [1.0] * (fn + tp))]
    mcc, pcc = metric.MCC(), metric.PCC()
    mcc.update(l, p)
    pcc.update(l, p)
    assert mcc.get()[1] == pytest.approx(0.01917751877733392)
    assert pcc.get()[1] == pytest.approx(0.01917751877733392)


def test_multiclass_and_macro_f1():
    l = numpy.array([0, 1, 2, 2, 1])
    p = numpy.eye(3)[[0, 2, 2, 1, 1]]
    m = metric.F1(class_type="multiclass", average="macro")
    m.update([mx.np.array(l)], [mx.np.array(p)])
    per_class = [_f1((l == c).astype(int), (p.argmax(1) == c).astype(int)) for c in range(3)]
    assert m.get()[1] == pytest.approx(numpy.mean(per_class))


def test_composite_create_loss_custom_and_np():
    comp = metric.create(["acc", "mse", metric.Loss()])
    assert isinstance(comp, metric.CompositeEvalMetric)
    comp.update([mx.np.array([1.0, 0.0])], [mx.np.array([1.0, 1.0])])
    names, vals = comp.get()
    assert names == ["accuracy", "mse", "loss"]
    assert vals == pytest.approx([0.5, 0.5, 1.0])
    assert comp.get_name_value()[0] == ("accuracy", 0.5)

    custom = metric.create(lambda label, pred: float(mx.np.abs(label - pred).sum()))
    custom.update([mx.np.array([1.0, 2.0])], [mx.np.array([2.0, 2.0])])
    assert custom.get() == ("custom(<lambda>)", 1.0)

    def mean_gap(label, pred):
        assert isinstance(label, numpy.ndarray)
        return numpy.abs(label - pred).mean(), 2

    np_metric = metric.np(mean_gap)
    np_metric.update([mx.np.array([0.0, 4.0])], [mx.np.array([1.0, 1.0])])
    assert np_metric.get() == ("mean_gap", 1.0)
    assert metric.create("top_k_acc", top_k=3).name == "top_k_accuracy_3"
    assert metric.Torch().name == "torch"


def test_bad_input_raises_naming_the_metric():
    with pytest.raises(ValueError, match="accuracy"):
        metric.Accuracy().update([mx.np.array([0, 1, 1])], [mx.np.array([[0.3, 0.7]] * 2)])
    with pytest.raises(ValueError, match="mse"):
        metric.MSE().update([mx.np.ones((2, 3))], [mx.np.ones((2, 4))])
    with pytest.raises(ValueError, match="number of arrays"):
        metric.MAE().update([mx.np.ones(2)], [mx.np.ones(2), mx.np.ones(2)])
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        metric.create("nope")
    with pytest.raises(TypeError):
        metric.create(3)
    with pytest.raises(ValueError, match="average"):
        metric.F1(average="weighted")
    m = metric.F1()
    with pytest.raises(ValueError, match="f1"):
        m.update(
            [mx.np.array([0, 1]), mx.np.array([0, 3])],
            [mx.np.array([0.9, 0.1]), mx.np.array([0.9, 0.1])],
        )
    assert math.isnan(m.get()[1])  # the failing call changed nothing
    for bad in (metric.Accuracy(), metric.MAE(), metric.CrossEntropy()):
        with pytest.raises(ValueError, match=bad.name):
            bad.update(
                [mx.np.array([0, 1]), mx.np.array([0, 1, 1])],
                [mx.np.array([[0.4, 0.6], [0.5, 0.5]]), mx.np.ones((2, 5))],
            )
        assert math.isnan(bad.get()[1]) and bad.num_inst == 0, bad.name


def test_mxnet1_metric_spelling_warns_and_works():
    with pytest.warns(DeprecationWarning, match="mx.gluon.metric"):
        acc = mx.metric.Accuracy()
    acc.update(mx.np.array([1, 0]), mx.np.array([1, 1]))
    assert acc.get() == ("accuracy", 0.5)


def test_update_dict_and_config_roundtrip():
    acc = metric.Accuracy(label_names=["y"], output_names=["out"])
    acc.update_dict(
        {"y": mx.np.array([1, 0]), "other": mx.np.array([5, 5])},
        {"out": mx.np.array([[0.2, 0.8], [0.1, 0.9]])},
    )
    assert acc.get() == ("accuracy", 0.5)
    clone = metric.create(**acc.get_config())
    assert isinstance(clone, metric.Accuracy) and clone.label_names == ["y"]
