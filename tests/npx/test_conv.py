"""npx.convolution, npx.deconvolution and npx.pooling: values against the loop
transcriptions in conv_reference.py, gradients against finite differences, bad input."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from tests.helpers import with_bfloat16
from tests.npx import conv_reference as ref
from tests.npx.gradcheck import check_gradients

# (spatial, kernel, stride, dilate, pad, groups, channels in, filters, bias): every option
# MXNet documents for Convolution, in 1, 2 and 3 dimensions.
CONV_CASES = [
    ((7,), (3,), 1, 1, 0, 1, 2, 3, True),
    ((9,), (3,), 2, 2, 1, 1, 2, 2, False),
    ((6, 5), (3, 3), 1, 1, 1, 1, 3, 4, True),
    ((7, 6), (3, 2), 2, 1, 1, 1, 2, 3, True),
    ((7, 7), (3, 3), 1, 2, 2, 2, 4, 4, False),
    ((8, 7), (3, 3), 3, 1, 1, 2, 4, 6, True),
    ((6, 6), (3, 3), 1, 1, 1, 4, 4, 4, False),  # depthwise
    ((6, 6), (3, 3), 2, 1, 1, 4, 4, 8, True),  # depthwise, multiplier 2
    ((6, 6), (1, 1), 2, 1, 0, 1, 3, 2, False),  # the strided 1x1 projection of ResNets
    ((4, 5, 4), (2, 3, 2), 1, 1, 1, 1, 2, 2, True),
    ((5, 5, 5), (3, 3, 3), 2, 1, 1, 2, 2, 4, False),
]
IDS = [f"{len(c[0])}d-k{c[1]}-s{c[2]}-d{c[3]}-p{c[4]}-g{c[5]}" for c in CONV_CASES]


def _conv_inputs(case, rng):
    spatial, kernel, stride, dilate, pad, groups, cin, cout, bias = case
    x = rng.standard_normal((2, cin) + spatial)
    w = rng.standard_normal((cout, cin // groups) + kernel)
    b = rng.standard_normal(cout) if bias else None
    nd = len(spatial)
    kwargs = dict(
        kernel=kernel,
        stride=(stride,) * nd,
        dilate=(dilate,) * nd,
        pad=(pad,) * nd,
        num_filter=cout,
        num_group=groups,
        no_bias=not bias,
    )
    return x, w, b, kwargs


@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_convolution_matches_the_loop_transcription(case, device):
    x, w, b, kw = _conv_inputs(case, numpy.random.default_rng(0))
    args = [mx.np.array(a, dtype="float64", device=device) for a in (x, w)]
    bias = None if b is None else mx.np.array(b, dtype="float64", device=device)
    y = mx.npx.convolution(*args, bias, **kw)
    want = ref.convolution(x, w, b, kw["stride"], kw["dilate"], kw["pad"], kw["num_group"])
    assert y.shape == want.shape and y.device == device and y.dtype == numpy.float64
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_convolution_gradients(case, device):
    x, w, b, kw = _conv_inputs(case, numpy.random.default_rng(1))
    if b is None:
        check_gradients(lambda x, w: mx.npx.convolution(x, w, **kw), [x, w], device)
    else:
        check_gradients(lambda x, w, b: mx.npx.convolution(x, w, b, **kw), [x, w, b], device)


# The CPU splits a channels-first convolution into column blocks (npx/conv.py, _Columns):
# with the block sizes shrunk, these cases cut an image's first output axis into uneven
# parts, or group uneven runs of images, with and without the transposed products; the
# data gradient runs as the mirrored convolution (stride 1) or by col2im (the others).
# (spatial, kernel, stride, dilate, pad, channels in, filters, bias, block elements, block
# minimum positions)
BLOCK_CASES = [
    ((7, 6), (3, 3), 1, 1, 1, 2, 3, True, 18 * 12, 1),  # 2 output rows per block
    ((3, 3), (3, 3), 1, 1, 1, 4, 3, False, 36 * 20, 1),  # 2 of 3 images, transposed
    ((6, 6), (1, 1), 2, 1, 0, 2, 3, True, 2 * 18, 1),  # 2 of 3 images, batched
    ((7, 6, 5), (3, 2, 2), 2, 2, 1, 2, 2, False, 24 * 7, 1),  # 3-D, strided, dilated, 1 row
    ((11,), (3,), 2, 2, 2, 3, 2, True, 9 * 2, 1),  # 1-D, two outputs per block
    ((5, 4), (1, 2), 1, 1, 1, 2, 3, True, 4 * 6, 1),  # pad beyond the kernel: col2im
    ((7, 6), (3, 3), 1, 2, 2, 2, 3, False, 18 * 12, 1),  # dilated, mirrored, row blocks
    ((5, 7), (1, 1), 3, 1, 0, 2, 3, False, 4 * 6, 1),  # strided 1x1: the points gathered
]
BLOCK_IDS = [f"{len(c[0])}d-k{c[1]}-s{c[2]}-d{c[3]}-p{c[4]}-e{c[8]}" for c in BLOCK_CASES]


@pytest.mark.parametrize("case", BLOCK_CASES, ids=BLOCK_IDS)
def test_convolution_in_small_column_blocks(case, device, monkeypatch):
    from gluonlite.npx import conv

    spatial, kernel, stride, dilate, pad, cin, cout, bias, elems, least = case
    monkeypatch.setattr(conv, "_COL_ELEMS", elems)
    monkeypatch.setattr(conv, "_COL_MIN", least)
    rng = numpy.random.default_rng(9)
    nd = len(spatial)
    x = rng.standard_normal((3, cin) + spatial)
    w = rng.standard_normal((cout, cin) + kernel)
    b = rng.standard_normal(cout) if bias else None
    kw = dict(
        kernel=kernel,
        stride=(stride,) * nd,
        dilate=(dilate,) * nd,
        pad=(pad,) * nd,
        num_filter=cout,
        no_bias=not bias,
    )
    args = [mx.np.array(a, dtype="float64", device=device) for a in (x, w)]
    y = mx.npx.convolution(
        *args, None if b is None else mx.np.array(b, device=device, dtype="float64"), **kw
    )
    want = ref.convolution(x, w, b, kw["stride"], kw["dilate"], kw["pad"], 1)
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-10, atol=1e-10)
    if b is None:
        check_gradients(lambda x, w: mx.npx.convolution(x, w, **kw), [x, w], device)
    else:
        check_gradients(lambda x, w, b: mx.npx.convolution(x, w, b, **kw), [x, w, b], device)


# (spatial, kernel, stride, dilate, pad, adj, groups, channels in, filters, bias)
DECONV_CASES = [
    ((5,), (3,), 2, 1, 1, 1, 1, 2, 3, True),
    ((4, 5), (3, 3), 1, 1, 1, 0, 1, 3, 2, False),
    ((4, 4), (4, 4), 2, 1, 1, 0, 1, 2, 2, True),
    ((3, 4), (3, 2), 2, 2, 1, 1, 2, 4, 2, False),
    ((3, 3), (3, 3), 2, 1, 0, 1, 2, 2, 4, True),
    ((3, 3, 2), (2, 2, 2), 2, 1, 0, 0, 1, 2, 2, False),
]
DECONV_IDS = [f"{len(c[0])}d-k{c[1]}-s{c[2]}-d{c[3]}-p{c[4]}-a{c[5]}-g{c[6]}" for c in DECONV_CASES]


def _deconv_inputs(case, rng):
    spatial, kernel, stride, dilate, pad, adj, groups, cin, cout, bias = case
    nd = len(spatial)
    x = rng.standard_normal((2, cin) + spatial)
    w = rng.standard_normal((cin, cout // groups) + kernel)
    b = rng.standard_normal(cout) if bias else None
    kwargs = dict(
        kernel=kernel,
        stride=(stride,) * nd,
        dilate=(dilate,) * nd,
        pad=(pad,) * nd,
        adj=(adj,) * nd,
        num_filter=cout,
        num_group=groups,
        no_bias=not bias,
    )
    return x, w, b, kwargs


@pytest.mark.parametrize("case", DECONV_CASES, ids=DECONV_IDS)
def test_deconvolution_matches_the_loop_transcription(case, device):
    x, w, b, kw = _deconv_inputs(case, numpy.random.default_rng(2))
    bias = None if b is None else mx.np.array(b, dtype="float64", device=device)
    y = mx.npx.deconvolution(
        mx.np.array(x, dtype="float64", device=device),
        mx.np.array(w, dtype="float64", device=device),
        bias,
        **kw,
    )
    want = ref.deconvolution(
        x, w, b, kw["stride"], kw["dilate"], kw["pad"], kw["adj"], kw["num_group"]
    )
    assert y.shape == want.shape
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", DECONV_CASES, ids=DECONV_IDS)
def test_deconvolution_gradients(case, device):
    x, w, b, kw = _deconv_inputs(case, numpy.random.default_rng(3))
    if b is None:
        check_gradients(lambda x, w: mx.npx.deconvolution(x, w, **kw), [x, w], device)
    else:
        check_gradients(lambda x, w, b: mx.npx.deconvolution(x, w, b, **kw), [x, w, b], device)


def test_deconvolution_target_shape_sets_adj(device):
    x = mx.np.ones((1, 2, 3, 3), device=device)
    w = mx.np.ones((2, 1, 3, 3), device=device)
    y = mx.npx.deconvolution(
        x, w, kernel=(3, 3), stride=(2, 2), pad=(1, 1), target_shape=(6, 6), num_filter=1
    )
    assert y.shape == (1, 1, 6, 6)


# (spatial, kernel, stride, pad, pool_type, convention, count_include_pad)
POOL_CASES = [
    ((7,), (3,), 2, 1, "max", "valid", True),
    ((8,), (2,), 2, 0, "avg", "full", True),
    ((7, 6), (3, 2), 2, 1, "max", "valid", True),
    ((7, 6), (3, 2), 2, 1, "max", "full", True),
    ((7, 6), (3, 3), 2, 1, "avg", "valid", True),
    ((7, 6), (3, 3), 2, 1, "avg", "valid", False),
    ((7, 6), (3, 3), 2, 1, "avg", "full", True),
    ((7, 6), (3, 3), 2, 1, "avg", "full", False),
    ((6, 6), (2, 2), 1, 0, "sum", "valid", True),
    ((5, 6), (3, 3), 3, 1, "sum", "full", True),
    ((6, 4, 5), (2, 2, 3), 2, 1, "max", "full", True),
    ((5, 4, 5), (3, 2, 2), 1, 1, "avg", "valid", False),
]
POOL_IDS = [
    f"{len(c[0])}d-{c[4]}-{c[5]}-k{c[1]}-s{c[2]}-p{c[3]}-cip{int(c[6])}" for c in POOL_CASES
]


def _pool_kwargs(case):
    spatial, kernel, stride, pad, pool_type, convention, cip = case
    nd = len(spatial)
    return dict(
        kernel=kernel,
        stride=(stride,) * nd,
        pad=(pad,) * nd,
        pool_type=pool_type,
        pooling_convention=convention,
        count_include_pad=cip,
    )


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pooling_matches_the_loop_transcription(case, device):
    x = numpy.random.default_rng(4).standard_normal((2, 3) + case[0])
    kw = _pool_kwargs(case)
    y = mx.npx.pooling(mx.np.array(x, dtype="float64", device=device), **kw)
    want = ref.pooling(
        x,
        kw["kernel"],
        kw["stride"],
        kw["pad"],
        kw["pool_type"],
        kw["pooling_convention"] == "full",
        kw["count_include_pad"],
    )
    assert y.shape == want.shape
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pooling_gradients(case, device):
    x = numpy.random.default_rng(5).standard_normal((2, 2) + case[0])
    kw = _pool_kwargs(case)
    check_gradients(lambda x: mx.npx.pooling(x, **kw), [x], device)


def test_max_pooling_gives_an_infinite_gradient_to_the_maximum_only(device):
    # Windows of 2x2, stride 1, overlapping: every element but the maxima gets exactly 0,
    # also where the head gradient is infinite.
    x = mx.np.array(numpy.arange(9.0).reshape(1, 1, 3, 3), device=device)
    x.attach_grad()
    with mx.autograd.record():
        y = mx.npx.pooling(x, kernel=(2, 2), stride=(1, 1), pool_type="max")
    y.backward(mx.np.array([[[[numpy.inf, 1.0], [2.0, 3.0]]]], device=device))
    want = numpy.zeros((1, 1, 3, 3))
    want[0, 0, 1:, 1:] = [[numpy.inf, 1.0], [2.0, 3.0]]
    numpy.testing.assert_array_equal(x.grad.asnumpy(), want)


@pytest.mark.parametrize("pool_type", ["max", "avg", "sum"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_pooling_values_and_gradients(pool_type, layout, device):
    x = numpy.random.default_rng(6).standard_normal((2, 3, 4, 5))
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    y = mx.npx.pooling(
        mx.np.array(x, dtype="float64", device=device),
        global_pool=True,
        pool_type=pool_type,
        layout=layout,
    )
    want = {
        "max": x.max(axis=axes, keepdims=True),
        "sum": x.sum(axis=axes, keepdims=True),
        "avg": x.mean(axis=axes, keepdims=True),
    }[pool_type]
    numpy.testing.assert_allclose(y.asnumpy(), want, rtol=1e-12)
    check_gradients(
        lambda x: mx.npx.pooling(x, global_pool=True, pool_type=pool_type, layout=layout),
        [x],
        device,
    )


def test_channels_last_layouts_match_channels_first(device):
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((2, 4, 6, 5)).astype(numpy.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(numpy.float32)
    kw = dict(kernel=(3, 3), stride=(2, 1), pad=(1, 1), num_filter=6, num_group=2, no_bias=True)
    first = mx.npx.convolution(mx.np.array(x, device=device), mx.np.array(w, device=device), **kw)
    last = mx.npx.convolution(
        mx.np.array(x.transpose(0, 2, 3, 1), device=device),
        mx.np.array(w.transpose(0, 2, 3, 1), device=device),
        layout="NHWC",
        **kw,
    )
    numpy.testing.assert_allclose(
        last.asnumpy().transpose(0, 3, 1, 2), first.asnumpy(), rtol=1e-5, atol=1e-5
    )
    pool_first = mx.npx.pooling(
        mx.np.array(x, device=device), kernel=(3, 3), stride=(2, 2), pool_type="avg", pad=(1, 1)
    )
    pool_last = mx.npx.pooling(
        mx.np.array(x.transpose(0, 2, 3, 1), device=device),
        kernel=(3, 3),
        stride=(2, 2),
        pool_type="avg",
        pad=(1, 1),
        layout="NHWC",
    )
    numpy.testing.assert_allclose(
        pool_last.asnumpy().transpose(0, 3, 1, 2), pool_first.asnumpy(), rtol=1e-6
    )


@pytest.mark.parametrize("dtype", with_bfloat16(["float16"]))
def test_half_precision_computes_in_float32(dtype, device):
    rng = numpy.random.default_rng(8)
    x = rng.standard_normal((2, 8, 6, 6)).astype(numpy.float32)
    w = (rng.standard_normal((4, 8, 3, 3)) / 8).astype(numpy.float32)
    xh = mx.np.array(x, device=device).astype(dtype)
    wh = mx.np.array(w, device=device).astype(dtype)
    y = mx.npx.convolution(xh, wh, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True)
    assert y.dtype == xh.dtype
    want = ref.convolution(
        xh.asnumpy().astype(numpy.float64),
        wh.asnumpy().astype(numpy.float64),
        None,
        (1, 1),
        (1, 1),
        (1, 1),
        1,
    )
    tol = 2e-2 if dtype == "bfloat16" else 2e-3
    numpy.testing.assert_allclose(y.asnumpy().astype(numpy.float64), want, rtol=tol, atol=tol)
    p = mx.npx.pooling(xh, kernel=(2, 2), stride=(2, 2), pool_type="avg")
    assert p.dtype == xh.dtype


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda x, w: mx.npx.convolution(
                x, mx.np.ones((2, 3, 5, 5)), kernel=(5, 5), num_filter=2, no_bias=True
            ),
            "kernel (5, 5) with dilate (1, 1) is larger than the padded input (4, 4)",
        ),
        (
            lambda x, w: mx.npx.convolution(
                x, w, kernel=(3, 3), num_filter=2, num_group=2, no_bias=True
            ),
            "not divisible by num_group=2",
        ),
        (
            lambda x, w: mx.npx.convolution(
                x, w, kernel=(3, 3), num_filter=2, no_bias=True, layout="NCW"
            ),
            "layout 'NCW' does not fit",
        ),
        (
            lambda x, w: mx.npx.convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True),
            "weight of shape (2, 3, 3, 3) does not fit",
        ),
        (lambda x, w: mx.npx.convolution(x, w, kernel=(3, 3), num_filter=2), "bias is None"),
        (lambda x, w: mx.npx.pooling(x, kernel=(5, 5)), "larger than the padded input"),
        (lambda x, w: mx.npx.pooling(x, kernel=(2, 2), pool_type="lp"), "lp pooling"),
        (lambda x, w: mx.npx.pooling(x, kernel=(2, 2), pad=(2, 2)), "must be smaller"),
    ],
)
def test_bad_input_raises_value_error_naming_the_shapes(call, message):
    x = mx.np.ones((1, 3, 4, 4))
    w = mx.np.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(x, w)


def test_mismatched_devices_raise():
    x = mx.np.ones((1, 3, 4, 4), device=mx.cpu(0))
    w = mx.np.ones((2, 3, 3, 3), device=mx.cpu(1))
    with pytest.raises(ValueError, match="cpu"):
        mx.npx.convolution(x, w, kernel=(3, 3), num_filter=2, no_bias=True)
