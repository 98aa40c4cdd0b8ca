"""Every gluon loss against a NumPy float64 transcription of MXNet 2's formula: values,
gradients (finite differences), weights, batch_axis, stability at logits of +-1e4, CTC
against brute force over all alignments."""

from __future__ import annotations

import itertools

import numpy
import pytest

import gluonlite as mx
from gluonlite import autograd
from gluonlite.gluon import loss as gloss

RNG = numpy.random.default_rng(7)
N, K = 3, 4


def _softplus(x):
    return numpy.logaddexp(0, x)


def _log_softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=axis, keepdims=True))


def _mean_rest(x):
    return x.reshape(x.shape[0], -1).mean(axis=1)


def _cos(a, b):
    dot = (a * b).sum(-1)
    return dot / numpy.maximum(numpy.linalg.norm(a, axis=-1) * numpy.linalg.norm(b, axis=-1), 1e-12)


def _signs(shape):
    return RNG.choice([-1.0, 1.0], size=shape)


def _probs(shape):
    p = RNG.random(shape) + 0.1
    return p / p.sum(-1, keepdims=True)


# name, loss factory, inputs (the first is differentiated), NumPy reference
CASES = [
    (
        "L1",
        lambda: gloss.L1Loss(),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K))],
        lambda p, l: _mean_rest(numpy.abs(p - l)),
    ),
    (
        "L2",
        lambda: gloss.L2Loss(),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K))],
        lambda p, l: _mean_rest((p - l) ** 2 / 2),
    ),
    (
        "SigmoidBCE",
        lambda: gloss.SigmoidBCELoss(),
        lambda: [RNG.normal(size=(N, K)), RNG.integers(0, 2, (N, K)).astype(float)],
        lambda p, l: _mean_rest(
            -(
                l * numpy.log(1 / (1 + numpy.exp(-p)))
                + (1 - l) * numpy.log(1 - 1 / (1 + numpy.exp(-p)))
            )
        ),
    ),
    (
        "SigmoidBCE_from_sigmoid",
        lambda: gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True),
        lambda: [RNG.uniform(0.1, 0.9, (N, K)), RNG.integers(0, 2, (N, K)).astype(float)],
        lambda p, l: _mean_rest(-(l * numpy.log(p + 1e-12) + (1 - l) * numpy.log(1 - p + 1e-12))),
    ),
    (
        "SoftmaxCE_sparse",
        lambda: gloss.SoftmaxCELoss(),
        lambda: [RNG.normal(size=(N, K)), RNG.integers(0, K, N).astype(float)],
        lambda p, l: -_log_softmax(p)[numpy.arange(N), l.astype(int)],
    ),
    (
        "SoftmaxCE_dense_axis0",
        lambda: gloss.SoftmaxCrossEntropyLoss(axis=0, sparse_label=False, batch_axis=1),
        lambda: [RNG.normal(size=(N, K)), _probs((K, N)).T.copy()],
        lambda p, l: -(_log_softmax(p, 0) * l).sum(0),
    ),
    (
        "SoftmaxCE_from_logits",
        lambda: gloss.SoftmaxCELoss(from_logits=True),
        lambda: [_log_softmax(RNG.normal(size=(N, K))), RNG.integers(0, K, N).astype(float)],
        lambda p, l: -p[numpy.arange(N), l.astype(int)],
    ),
    (
        "KLDiv",
        lambda: gloss.KLDivLoss(),
        lambda: [_log_softmax(RNG.normal(size=(N, K))), _probs((N, K))],
        lambda p, l: _mean_rest(l * (numpy.log(l + 1e-12) - p)),
    ),
    (
        "KLDiv_logits",
        lambda: gloss.KLDivLoss(from_logits=False),
        lambda: [RNG.normal(size=(N, K)), _probs((N, K))],
        lambda p, l: _mean_rest(l * (numpy.log(l + 1e-12) - _log_softmax(p))),
    ),
    (
        "Huber",
        lambda: gloss.HuberLoss(rho=0.5),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K))],
        lambda p, l: _mean_rest(
            numpy.where(
                numpy.abs(l - p) > 0.5, numpy.abs(l - p) - 0.25, numpy.abs(l - p) ** 2 / (2 * 0.5)
            )
        ),
    ),
    (
        "Hinge",
        lambda: gloss.HingeLoss(),
        lambda: [RNG.normal(size=(N, K)), _signs((N, K))],
        lambda p, l: _mean_rest(numpy.maximum(0, 1 - p * l)),
    ),
    (
        "SquaredHinge",
        lambda: gloss.SquaredHingeLoss(margin=2),
        lambda: [RNG.normal(size=(N, K)), _signs((N, K))],
        lambda p, l: _mean_rest(numpy.maximum(0, 2 - p * l) ** 2),
    ),
    (
        "Logistic_signed",
        lambda: gloss.LogisticLoss(),
        lambda: [RNG.normal(size=(N, K)), _signs((N, K))],
        lambda p, l: _mean_rest(_softplus(-p * l)),
    ),
    (
        "Logistic_binary",
        lambda: gloss.LogisticLoss(label_format="binary"),
        lambda: [RNG.normal(size=(N, K)), RNG.integers(0, 2, (N, K)).astype(float)],
        lambda p, l: _mean_rest(_softplus(-p * (2 * l - 1))),
    ),
    (
        "Triplet",
        lambda: gloss.TripletLoss(margin=3),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K)), RNG.normal(size=(N, K))],
        lambda p, a, b: numpy.maximum(((a - p) ** 2 - (b - p) ** 2).sum(1) + 3, 0),
    ),
    (
        "PoissonNLL",
        lambda: gloss.PoissonNLLLoss(),
        lambda: [RNG.normal(size=(N, K)), RNG.integers(0, 5, (N, K)).astype(float)],
        lambda p, t: _mean_rest(numpy.exp(p) - t * p),
    ),
    (
        "PoissonNLL_full",
        lambda: gloss.PoissonNLLLoss(from_logits=False, compute_full=True),
        lambda: [RNG.uniform(0.5, 3, (N, K)), RNG.integers(0, 5, (N, K)).astype(float)],
        lambda p, t: _mean_rest(
            p
            - t * numpy.log(p + 1e-8)
            + (t > 1)
            * (
                t * numpy.log(numpy.maximum(t, 1))
                - t
                + 0.5 * numpy.log(2 * numpy.pi * numpy.maximum(t, 1))
            )
        ),
    ),
    (
        "CosineEmbedding",
        lambda: gloss.CosineEmbeddingLoss(margin=0.1),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K)), numpy.array([1.0, -1.0, -1.0])],
        lambda a, b, l: numpy.where(l == 1, 1 - _cos(a, b), numpy.clip(_cos(a, b) - 0.1, 0, 0.9)),
    ),
    (
        "SDML",
        lambda: gloss.SDMLLoss(smoothing_parameter=0.3),
        lambda: [RNG.normal(size=(N, K)), RNG.normal(size=(N, K))],
        lambda a, b: _sdml(a, b, 0.3),
    ),
]


def _sdml(a, b, s):
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    gold = numpy.eye(len(a))
    lab = gold * (1 - s) + (1 - gold) * s / (len(a) - 1)
    return _mean_rest(lab * (numpy.log(lab + 1e-12) - _log_softmax(-d, 1)))


def _run(loss_fn, arrays, device, dtype="float64"):
    xs = [mx.np.array(a, dtype=dtype, device=device) for a in arrays]
    xs[0].attach_grad()
    with autograd.record():
        out = loss_fn(*xs)
    out.backward()
    return out.asnumpy(), xs[0].grad.asnumpy()


@pytest.mark.parametrize("name,factory,inputs,reference", CASES, ids=[c[0] for c in CASES])
def test_loss_values_and_gradient(name, factory, inputs, reference, device):
    arrays = inputs()
    value, grad = _run(factory(), arrays, device)
    numpy.testing.assert_allclose(value, reference(*arrays), rtol=1e-6, atol=1e-9)
    # Central differences of sum(loss) against the recorded gradient.
    eps, numeric = 1e-6, numpy.zeros_like(arrays[0])
    for idx in numpy.ndindex(arrays[0].shape):
        hi, lo = [a.copy() for a in arrays], [a.copy() for a in arrays]
        hi[0][idx] += eps
        lo[0][idx] -= eps
        numeric[idx] = (reference(*hi).sum() - reference(*lo).sum()) / (2 * eps)
    numpy.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_weight_sample_weight_and_batch_axis(device):
    p, l = RNG.normal(size=(N, K)), RNG.normal(size=(N, K))
    sw = RNG.random((N, 1))
    got = gloss.L1Loss(weight=0.5)(
        mx.np.array(p, device=device), mx.np.array(l, device=device), mx.np.array(sw, device=device)
    ).asnumpy()
    numpy.testing.assert_allclose(got, 0.5 * (numpy.abs(p - l) * sw).mean(1), rtol=1e-5)
    got = gloss.L2Loss(batch_axis=1)(
        mx.np.array(p, device=device), mx.np.array(l, device=device)
    ).asnumpy()
    numpy.testing.assert_allclose(got, ((p - l) ** 2 / 2).mean(0), rtol=1e-5)
    assert got.shape == (K,)


def test_sigmoid_bce_pos_weight(device):
    p, l = RNG.normal(size=(N, K)), RNG.integers(0, 2, (N, K)).astype(float)
    pw = RNG.uniform(0.5, 3, (K,))
    got = gloss.SigmoidBCELoss()(
        mx.np.array(p, dtype="float64", device=device),
        mx.np.array(l, device=device),
        None,
        mx.np.array(pw, dtype="float64", device=device),
    ).asnumpy()
    sig = 1 / (1 + numpy.exp(-p))
    expected = -(pw * l * numpy.log(sig) + (1 - l) * numpy.log(1 - sig))
    numpy.testing.assert_allclose(got, expected.mean(1), rtol=1e-6)
    got = gloss.SigmoidBCELoss(from_sigmoid=True)(
        mx.np.array(sig, dtype="float64", device=device),
        mx.np.array(l, device=device),
        None,
        mx.np.array(pw, dtype="float64", device=device),
    ).asnumpy()
    numpy.testing.assert_allclose(got, expected.mean(1), rtol=1e-6)


STABLE = [
    ("SigmoidBCE", lambda: gloss.SigmoidBCELoss(), lambda x: numpy.array([[1.0, 0.0], [0.0, 1.0]])),
    (
        "SigmoidBCE_pos_weight",
        lambda: gloss.SigmoidBCELoss(),
        lambda x: numpy.array([[1.0, 0.0], [0.0, 1.0]]),
    ),
    ("SoftmaxCE", lambda: gloss.SoftmaxCELoss(), lambda x: numpy.array([0.0, 1.0])),
    ("Logistic", lambda: gloss.LogisticLoss(), lambda x: numpy.array([[1.0, -1.0], [-1.0, 1.0]])),
    (
        "KLDiv_logits",
        lambda: gloss.KLDivLoss(from_logits=False),
        lambda x: numpy.array([[0.5, 0.5], [0.9, 0.1]]),
    ),
]


@pytest.mark.parametrize("name,factory,label", STABLE, ids=[s[0] for s in STABLE])
def test_stable_at_huge_logits(name, factory, label, device):
    logits = numpy.array([[1e4, -1e4], [1e4, -1e4]], dtype=numpy.float32)
    x = mx.np.array(logits, device=device)
    x.attach_grad()
    extra = [None, mx.np.array([2.0, 2.0], device=device)] if "pos_weight" in name else []
    with autograd.record():
        out = factory()(x, mx.np.array(label(logits), device=device), *extra)
    out.backward()
    assert numpy.isfinite(out.asnumpy()).all(), out
    assert numpy.isfinite(x.grad.asnumpy()).all()
    # The confidently right sample costs nothing; the wrong one about 1e4 (not inf).
    assert out.asnumpy().max() < 2.1e4


def _ctc_brute(logits, label, blank):
    """-log of the summed probability of every alignment collapsing to ``label``."""
    T, C = logits.shape
    p = numpy.exp(_log_softmax(logits))
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        collapsed = [k for i, k in enumerate(path) if (i == 0 or k != path[i - 1]) and k != blank]
        if collapsed == list(label):
            total += numpy.prod(p[numpy.arange(T), list(path)])
    return -numpy.log(total)


@pytest.mark.parametrize("blank_label", ["last", "first"])
def test_ctc_matches_brute_force_and_gradient(blank_label, device):
    T, B, C = 4, 3, 3
    logits = RNG.normal(size=(B, T, C))
    if blank_label == "last":
        labels = numpy.array([[0, 1], [1, 1], [0, -1]])
        blank, pad = C - 1, -1
    else:
        labels = numpy.array([[1, 2], [2, 2], [1, 0]])
        blank, pad = 0, 0
    lengths = numpy.array([4, 4, 2])
    loss_fn = gloss.CTCLoss(blank_label=blank_label)

    def loss_of(z):
        return loss_fn(
            mx.np.array(z, dtype="float64", device=device),
            mx.np.array(labels, device=device),
            mx.np.array(lengths, device=device),
        ).asnumpy()

    x = mx.np.array(logits, dtype="float64", device=device)
    x.attach_grad()
    with autograd.record():
        out = loss_fn(x, mx.np.array(labels, device=device), mx.np.array(lengths, device=device))
    out.backward()
    expected = [
        _ctc_brute(logits[b, : lengths[b]], [v for v in labels[b] if v != pad], blank)
        for b in range(B)
    ]
    numpy.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-9)
    numeric = numpy.zeros_like(logits)
    for idx in numpy.ndindex(logits.shape):
        hi, lo = logits.copy(), logits.copy()
        hi[idx] += 1e-6
        lo[idx] -= 1e-6
        numeric[idx] = (loss_of(hi).sum() - loss_of(lo).sum()) / 2e-6
    numpy.testing.assert_allclose(x.grad.asnumpy(), numeric, atol=1e-6)


def test_ctc_layouts_and_label_lengths(device):
    T, B, C = 3, 2, 3
    logits = RNG.normal(size=(T, B, C))
    labels_tn = numpy.array([[0, 1], [1, 0]])  # (L, N): sequence 0 is [0, 1], 1 is [1, 0]
    got = gloss.CTCLoss(layout="TNC", label_layout="TN")(
        mx.np.array(logits, dtype="float64", device=device),
        mx.np.array(labels_tn, device=device),
        None,
        mx.np.array([2, 1], device=device),
    ).asnumpy()
    expected = [_ctc_brute(logits[:, 0], [0, 1], C - 1), _ctc_brute(logits[:, 1], [1], C - 1)]
    numpy.testing.assert_allclose(got, expected, rtol=1e-9)


def test_bad_inputs_raise_naming_the_loss():
    with pytest.raises(ValueError, match="L1Loss"):
        gloss.L1Loss()(mx.np.ones((2, 3)), mx.np.ones((2, 4)))
    with pytest.raises(ValueError, match="SoftmaxCrossEntropyLoss"):
        gloss.SoftmaxCELoss()(mx.np.ones((2, 3)), mx.np.ones((3,)))
    with pytest.raises(ValueError, match="label_format"):
        gloss.LogisticLoss(label_format="bogus")
    with pytest.raises(TypeError, match="weight"):
        gloss.L1Loss(weight="heavy")
    with pytest.raises(ValueError, match="layout"):
        gloss.CTCLoss(layout="CTN")
    with pytest.raises(ValueError, match="blank_label"):
        gloss.CTCLoss(blank_label="middle")(mx.np.ones((1, 2, 3)), mx.np.zeros((1, 1)))
