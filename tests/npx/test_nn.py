"""``mx.npx`` operators: values against NumPy transcriptions and, for every differentiable
one, gradients against central finite differences in float64 (one parametrised table), on
every device; non-differentiable ones by value; bad input by exception type and message."""

from __future__ import annotations

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import autograd, npx
from gluonlite.npx._rnn import param_size
from tests.helpers import numeric_grad

RNG = np.random.default_rng(3)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _away(*shape):
    """|x| >= 0.2: kinks (relu) stay out of finite-difference reach."""
    return RNG.uniform(0.2, 1.5, shape) * RNG.choice([-1.0, 1.0], shape)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _softmax(a, axis=-1, t=1.0, mask=None, log=False):
    """NumPy softmax over the positions where ``mask`` holds; masked ones are 0."""
    z = a / t
    mask = np.ones(a.shape, bool) if mask is None else np.broadcast_to(mask, a.shape)
    z = np.where(mask, z, -np.inf)
    top = np.max(z, axis=axis, keepdims=True)
    e = np.where(mask, np.exp(z - top), 0)
    total = e.sum(axis=axis, keepdims=True)
    if log:
        return np.where(mask, z - top - np.log(total), 0)
    return e / total


def _length_mask(shape, lengths, axis):
    pos = np.arange(shape[axis]).reshape((-1,) + (1,) * (len(shape) - axis % len(shape) - 1))
    return pos < np.expand_dims(lengths, axis)


# --------------------------------------------------------------------- NumPy fused RNN
_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def _np_step(mode, gi, gh, h, c, H, wr=None, clip=None):
    if mode == "rnn_relu":
        return np.maximum(gi + gh, 0), c
    if mode == "rnn_tanh":
        return np.tanh(gi + gh), c
    if mode == "lstm":
        g = gi + gh
        c = _sigmoid(g[H : 2 * H]) * c + _sigmoid(g[:H]) * np.tanh(g[2 * H : 3 * H])
        if clip is not None:
            c = np.clip(c, *clip)
        out = _sigmoid(g[3 * H :]) * np.tanh(c)
        return (out if wr is None else wr @ out), c
    r, z = _sigmoid(gi[:H] + gh[:H]), _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
    return (1 - z) * n + z * h, c


def np_rnn(x, params, h0, c0, mode, H, L, bidirectional, lengths=None, P=None, clip=None):
    """MXNet's fused RNN transcribed one sequence and one step at a time (``P``: the LSTM
    projection size; each direction's [P, H] projection follows its h2h weight)."""
    G, D = _GATES[mode], 2 if bidirectional else 1
    T, N, I = x.shape
    R = H if P is None else P  # width of the output and the recurrent state
    off, w = 0, {}
    for layer in range(L):
        inputs = I if layer == 0 else D * R
        for d in range(D):
            wi = params[off : off + G * H * inputs].reshape(G * H, inputs)
            off += G * H * inputs
            wh = params[off : off + G * H * R].reshape(G * H, R)
            off += G * H * R
            wr = None
            if P is not None:
                wr = params[off : off + P * H].reshape(P, H)
                off += P * H
            w[layer, d] = [wi, wh, wr]
    for layer in range(L):
        for d in range(D):
            w[layer, d] += [params[off : off + G * H], params[off + G * H : off + 2 * G * H]]
            off += 2 * G * H
    assert off == params.size
    lengths = [T] * N if lengths is None else list(lengths)
    seq, hs, cs = x, [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            wi, wh, wr, bi, bh = w[layer, d]
            k = layer * D + d
            out = np.zeros((T, N, R))
            hk, ck = np.zeros((N, R)), np.zeros((N, H))
            for b in range(N):
                h, c = h0[k, b], (c0[k, b] if c0 is not None else None)
                steps = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
                for t in steps:
                    h, c = _np_step(mode, wi @ seq[t, b] + bi, wh @ h + bh, h, c, H, wr, clip)
                    out[t, b] = h
                hk[b] = h
                if c is not None:
                    ck[b] = c
            outs.append(out)
            hs.append(hk)
            cs.append(ck)
        seq = np.concatenate(outs, axis=2)
    return seq, np.stack(hs), np.stack(cs)


def _rnn_case(mode, layers, bidirectional, lengths=None, P=None, clip=None):
    T, N, I, H = 3, 2, 3, 2 if P is None else 3
    D = 2 if bidirectional else 1
    size = param_size(mode, layers, I, H, bidirectional, P)
    inputs = [_randn(T, N, I), 0.5 * _randn(size), _randn(layers * D, N, P or H)]
    if mode == "lstm":
        inputs.append(_randn(layers * D, N, H))
    clips = {} if clip is None else dict(lstm_state_clip_min=clip[0], lstm_state_clip_max=clip[1])

    def mx_fn(device):
        seq = None if lengths is None else mx.np.array(lengths, dtype="int32", device=device)

        def fn(x, p, h0, c0=None):
            out, hn, *cn = npx.rnn(
                x,
                p,
                h0,
                c0,
                sequence_length=seq,
                mode=mode,
                state_size=H,
                num_layers=layers,
                bidirectional=bidirectional,
                state_outputs=True,
                use_sequence_length=seq is not None,
                projection_size=P,
                **clips,
            )
            parts = [out, hn] + cn
            return mx.np.concatenate([a.reshape(-1) for a in parts])

        return fn

    def np_fn(x, p, h0, c0=None):
        out, hn, cn = np_rnn(x, p, h0, c0, mode, H, layers, bidirectional, lengths, P, clip)
        parts = [out, hn] + ([cn] if mode == "lstm" else [])
        return np.concatenate([a.reshape(-1) for a in parts])

    return mx_fn, np_fn, inputs


def _plain(mx_fn, np_fn, *inputs):
    return (lambda device: mx_fn), np_fn, list(inputs)


def _with_device(make_mx, np_fn, *inputs):
    return make_mx, np_fn, list(inputs)


LENGTHS = np.array([2, 4, 1])
MASK = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
IDX = np.array([3, 0, 2])


def _const(a, dtype=None):
    return lambda device: mx.np.array(a, dtype=dtype, device=device)


ACT = {
    "relu": lambda a: np.maximum(a, 0),
    "sigmoid": _sigmoid,
    "log_sigmoid": lambda a: -np.log1p(np.exp(-a)),
    "mish": lambda a: a * np.tanh(np.log1p(np.exp(a))),
    "tanh": np.tanh,
    "softrelu": lambda a: np.log1p(np.exp(a)),
    "softsign": lambda a: a / (1 + np.abs(a)),
}

# name -> (make_mx_fn(device), numpy function, float64 inputs); every row is differentiable.
CASES = {
    **{
        f"activation-{k}": _plain(lambda a, k=k: npx.activation(a, act_type=k), f, _away(3, 4))
        for k, f in ACT.items()
    },
    "softmax-axis0-t2": _plain(
        lambda a: npx.softmax(a, axis=0, temperature=2.0),
        lambda a: _softmax(a, 0, 2.0),
        _randn(3, 4),
    ),
    "softmax-length": _with_device(
        lambda d: (
            lambda a: npx.softmax(
                a, length=_const(LENGTHS, "int32")(d), use_length=True, temperature=0.5
            )
        ),
        lambda a: _softmax(a, -1, 0.5, _length_mask((3, 4), LENGTHS, -1)),
        _randn(3, 4),
    ),
    "log_softmax": _plain(
        lambda a: npx.log_softmax(a, axis=1), lambda a: _softmax(a, 1, log=True), _randn(2, 3, 2)
    ),
    "log_softmax-length-axis0": _with_device(
        lambda d: (
            lambda a: npx.log_softmax(a, axis=0, length=_const([1, 3, 2, 3])(d), use_length=True)
        ),
        lambda a: _softmax(a, 0, mask=_length_mask((3, 4), np.array([1, 3, 2, 3]), 0), log=True),
        _randn(3, 4),
    ),
    "masked_softmax": _with_device(
        lambda d: lambda a: npx.masked_softmax(a, _const(MASK)(d), temperature=1.5),
        lambda a: _softmax(a, -1, 1.5, MASK),
        _randn(3, 4),
    ),
    "masked_log_softmax": _with_device(
        lambda d: (
            lambda a: mx.np.where(_const(MASK)(d), npx.masked_log_softmax(a, _const(MASK)(d)), 0.0)
        ),
        lambda a: _softmax(a, -1, mask=MASK, log=True),
        _randn(3, 4),
    ),
    "fully_connected": _plain(
        lambda x, w, b: npx.fully_connected(x, w, b, num_hidden=3),
        lambda x, w, b: x.reshape(2, -1) @ w.T + b,
        _randn(2, 2, 2),
        _randn(3, 4),
        _randn(3),
    ),
    "pick-wrap-keepdims": _with_device(
        lambda d: lambda a: npx.pick(a, _const(IDX + 4)(d), axis=1, mode="wrap", keepdims=True),
        lambda a: np.take_along_axis(a, IDX[:, None], 1),
        _randn(3, 4),
    ),
    "pick-clip-axis0": _with_device(
        lambda d: lambda a: npx.pick(a, _const([5, -1, 1, 0])(d), axis=0),
        lambda a: a[[2, 0, 1, 0], [0, 1, 2, 3]],
        _randn(3, 4),
    ),
    "embedding": _with_device(
        lambda d: (
            lambda w: npx.embedding(_const([[0, 4], [2, 9]])(d), w, input_dim=5, output_dim=2)
        ),
        lambda w: w[np.array([[0, 4], [2, 4]])],
        _randn(5, 2),
    ),
    "topk-value": _plain(
        lambda a: npx.topk(a, axis=0, k=2, ret_typ="value"),
        lambda a: -np.sort(-a, axis=0)[:2],
        _randn(4, 3),
    ),
    "topk-value-ascend-flat": _plain(
        lambda a: npx.topk(a, axis=None, k=3, ret_typ="value", is_ascend=True),
        lambda a: np.sort(a.ravel())[:3],
        _randn(2, 3),
    ),
    **{
        f"batch_dot-{ta:d}{tb:d}": _plain(
            lambda a, b, ta=ta, tb=tb: npx.batch_dot(a, b, transpose_a=ta, transpose_b=tb),
            lambda a, b, ta=ta, tb=tb: (
                (a.swapaxes(1, 2) if ta else a) @ (b.swapaxes(1, 2) if tb else b)
            ),
            _randn(2, 3, 4) if not ta else _randn(2, 4, 3),
            _randn(2, 4, 2) if not tb else _randn(2, 2, 4),
        )
        for ta in (False, True)
        for tb in (False, True)
    },
    "broadcast_like": _with_device(
        lambda d: lambda a: npx.broadcast_like(a, _const(np.zeros((3, 4)))(d)),
        lambda a: np.broadcast_to(a, (3, 4)),
        _randn(1, 4),
    ),
    "broadcast_like-axes": _with_device(
        lambda d: (
            lambda a: npx.broadcast_like(
                a, _const(np.zeros((5, 3)))(d), lhs_axes=(0, 2), rhs_axes=(1, 0)
            )
        ),
        lambda a: np.broadcast_to(a, (3, 2, 5)),
        _randn(1, 2, 1),
    ),
    **{f"rnn-{m}": _rnn_case(m, 1, False) for m in _GATES},
    "rnn-lstm-2layer-bidirectional": _rnn_case("lstm", 2, True),
    "rnn-gru-bidirectional-lengths": _rnn_case("gru", 1, True, lengths=[2, 3]),
    "rnn-rnn_tanh-lengths": _rnn_case("rnn_tanh", 2, False, lengths=[3, 1]),
    "rnn-lstmp": _rnn_case("lstm", 1, False, P=2),
    "rnn-lstmp-2layer-bidirectional": _rnn_case("lstm", 2, True, P=2),
    "rnn-lstmp-lengths-clip": _rnn_case("lstm", 2, True, lengths=[2, 3], P=1, clip=(-0.4, 0.4)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_against_numpy(device, name):
    make, np_fn, inputs = CASES[name]
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    xs = [mx.np.array(a, device=device) for a in inputs]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        out = make(device)(*xs)
    expected = np.asarray(np_fn(*inputs))
    assert out.device == device and out.dtype == np.float64
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-7, atol=1e-9)
    head = RNG.standard_normal(expected.shape)
    out.backward(mx.np.array(head, device=device))
    for k, x in enumerate(xs):
        numeric = numeric_grad(lambda *a: float((np_fn(*a) * head).sum()), inputs, k)
        np.testing.assert_allclose(
            x.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-6, err_msg=f"gradient of input {k}"
        )


# --------------------------------------------------------------------- values only
def test_softmax_dtype_and_float32_default(device):
    x = mx.np.array(_randn(2, 5), dtype="float16", device=device)
    y = npx.softmax(x, dtype="float32")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.asnumpy(), _softmax(x.asnumpy().astype(np.float64)), rtol=1e-3)
    assert npx.log_softmax(mx.np.ones((2, 3), device=device)).dtype == np.float32


def test_masked_log_softmax_is_minus_inf_where_masked(device):
    data = mx.np.array(_randn(3, 4), device=device)
    y = npx.masked_log_softmax(data, mx.np.array(MASK, device=device)).asnumpy()
    assert np.all(np.isneginf(y[~MASK])) and np.all(np.isfinite(y[MASK]))
    full = npx.masked_softmax(data, mx.np.zeros((3, 4), dtype=bool, device=device))
    assert not full.asnumpy().any()  # nothing unmasked: zeros, not NaN


@pytest.mark.parametrize("ret_typ", ["indices", "mask", "both"])
@pytest.mark.parametrize("is_ascend", [False, True])
def test_topk_indices_mask_both(device, ret_typ, is_ascend):
    a = np.array([[0.3, 0.2, 0.4, 0.2], [0.1, 0.3, 0.2, 0.5]])
    x = mx.np.array(a, device=device)
    order = np.argsort(a if is_ascend else -a, axis=1, kind="stable")[:, :2]
    out = npx.topk(x, k=2, ret_typ=ret_typ, is_ascend=is_ascend, dtype="int32")
    if ret_typ == "mask":
        expected = np.zeros_like(a)
        np.put_along_axis(expected, order, 1, axis=1)
        np.testing.assert_array_equal(out.asnumpy(), expected)
        assert out.dtype == x.dtype
        return
    indices = out if ret_typ == "indices" else out[1]
    assert indices.dtype == np.int32
    np.testing.assert_array_equal(indices.asnumpy(), order)
    if ret_typ == "both":
        np.testing.assert_array_equal(out[0].asnumpy(), np.take_along_axis(a, order, 1))
    assert npx.topk(x).dtype == np.float32  # MXNet's default index dtype
    np.testing.assert_array_equal(npx.topk(x, k=0).asnumpy(), np.argsort(-a, 1, kind="stable"))


def test_one_hot(device):
    idx = mx.np.array([[0, 2], [5, -1]], dtype="int64", device=device)
    out = npx.one_hot(idx, 3, on_value=2.0, off_value=-1.0, dtype="float64")
    expected = np.full((2, 2, 3), -1.0)
    expected[0, 0, 0] = expected[0, 1, 2] = 2.0
    assert out.dtype == np.float64 and out.device == device
    np.testing.assert_array_equal(out.asnumpy(), expected)


def test_arange_like(device):
    x = mx.np.zeros((2, 3), device=device)
    np.testing.assert_array_equal(npx.arange_like(x).asnumpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(
        npx.arange_like(x, start=1, step=0.5, repeat=2).asnumpy(),
        (1 + 0.5 * (np.arange(6) // 2)).reshape(2, 3),
    )
    along = npx.arange_like(x, start=2.0, axis=1)
    assert along.shape == (3,) and along.dtype == np.float32 and along.device == device
    np.testing.assert_array_equal(along.asnumpy(), [2.0, 3.0, 4.0])


def test_rnn_returns_output_only_without_state_outputs_and_matches_float32(device):
    make, np_fn, inputs = _rnn_case("lstm", 1, False)
    x, p, h0, c0 = (mx.np.array(a, dtype="float32", device=device) for a in inputs)
    out = npx.rnn(x, p, h0, c0, mode="lstm", state_size=2, num_layers=1)
    assert isinstance(out, mx.np.ndarray) and out.shape == (3, 2, 2)
    assert out.dtype == np.float32
    ref = np_rnn(*inputs, "lstm", 2, 1, False)[0]
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-6)


def test_rnn_dropout_between_layers_only_in_training(device):
    make, np_fn, inputs = _rnn_case("rnn_tanh", 2, False)
    x, p, h0 = (mx.np.array(a, device=device) for a in inputs)
    kwargs = dict(mode="rnn_tanh", state_size=2, num_layers=2, p=0.5)
    ref = np_rnn(*inputs, None, "rnn_tanh", 2, 2, False)[0]
    np.testing.assert_allclose(npx.rnn(x, p, h0, **kwargs).asnumpy(), ref, rtol=1e-7)
    with autograd.train_mode():
        assert not np.allclose(npx.rnn(x, p, h0, **kwargs).asnumpy(), ref)


# --------------------------------------------------------------------- bad input
def _bad_cases(d):
    x = mx.np.ones((2, 3), device=d)
    i = mx.np.zeros((2,), dtype="int64", device=d)
    p = mx.np.zeros((param_size("gru", 1, 3, 2),), device=d)
    s = mx.np.zeros((1, 2, 2), device=d)
    seq = mx.np.ones((4, 2, 3), device=d)
    return [
        (lambda: npx.activation(x, act_type="swish"), ValueError, "act_type must be one of"),
        (lambda: npx.activation([1.0], act_type="relu"), TypeError, "mx.np.ndarray"),
        (lambda: npx.softmax(x, axis=2), np.exceptions.AxisError, "softmax: axis 2"),
        (lambda: npx.softmax(i), TypeError, "floating-point"),
        (lambda: npx.softmax(x, use_length=True), ValueError, "needs a length"),
        (lambda: npx.softmax(x, length=i), ValueError, "use_length=False"),
        (
            lambda: npx.log_softmax(x, length=mx.np.ones((3,), device=d), use_length=True),
            ValueError,
            "length has shape",
        ),
        (
            lambda: npx.masked_softmax(x, mx.np.ones((4,), device=d)),
            ValueError,
            "does not broadcast",
        ),
        (lambda: npx.pick(x, i, mode="raise"), ValueError, "mode must be"),
        (lambda: npx.pick(x, mx.np.zeros((3,), device=d)), ValueError, "index has shape"),
        (lambda: npx.topk(x, k=4), ValueError, "k=4 exceeds"),
        (lambda: npx.topk(x, ret_typ="values"), ValueError, "ret_typ must be"),
        (lambda: npx.batch_dot(x, x), ValueError, "rank >= 3"),
        (lambda: npx.batch_dot(seq, seq), ValueError, "inner dimensions"),
        (
            lambda: npx.broadcast_like(mx.np.ones((2, 2), device=d), x),
            ValueError,
            "cannot broadcast",
        ),
        (lambda: npx.broadcast_like(x, x, lhs_axes=(0,)), ValueError, "or neither"),
        (lambda: npx.one_hot(i), ValueError, "depth"),
        (lambda: npx.arange_like(x, repeat=0), ValueError, "repeat"),
        (lambda: npx.dropout(x, mode="sometimes"), ValueError, "mode must be"),
        (lambda: npx.embedding(i, x, input_dim=3), ValueError, "input_dim=3"),
        (
            lambda: npx.rnn(seq, p, s, mode="lstm2", state_size=2, num_layers=1),
            ValueError,
            "mode must be one of",
        ),
        (
            lambda: npx.rnn(seq, p[:-1], s, mode="gru", state_size=2, num_layers=1),
            ValueError,
            "parameters has shape",
        ),
        (
            lambda: npx.rnn(seq, p, s[:, :1], mode="gru", state_size=2, num_layers=1),
            ValueError,
            "state has shape",
        ),
        (
            lambda: npx.rnn(
                seq, p, s, mode="gru", state_size=2, num_layers=1, use_sequence_length=True
            ),
            ValueError,
            "needs sequence_length",
        ),
        (
            lambda: npx.rnn(seq, p, s, mode="gru", state_size=2, num_layers=1, projection_size=1),
            ValueError,
            "only supported for mode='lstm'",
        ),
        (
            lambda: npx.rnn(
                seq, p, s, s, mode="lstm", state_size=2, num_layers=1, projection_size=0
            ),
            ValueError,
            "positive int or None",
        ),
        (
            lambda: npx.rnn(
                seq,
                mx.np.zeros((param_size("lstm", 1, 3, 2, False, 1),), device=d),
                s,
                s,
                mode="lstm",
                state_size=2,
                num_layers=1,
                projection_size=1,
            ),
            ValueError,
            r"state has shape \(1, 2, 2\), expected \(1, 2, 1\)",
        ),
    ]


@pytest.mark.parametrize("k", range(len(_bad_cases(mx.cpu(0)))))
def test_bad_input_raises_numpy_exception_types(device, k):
    call, exc, match = _bad_cases(device)[k]
    with pytest.raises(exc, match=match):
        call()


def test_operands_on_different_devices_are_refused():
    a = mx.np.ones((2, 3, 4), device=mx.cpu(0))
    b = mx.np.ones((2, 4, 2), device=mx.cpu(1))
    with pytest.raises(ValueError, match="batch_dot: operands are on different devices"):
        npx.batch_dot(a, b)
    with pytest.raises(ValueError, match="softmax: operands are on different devices"):
        npx.softmax(a, length=mx.np.ones((2, 3), device=mx.cpu(1)), use_length=True)


def test_fully_connected_of_a_non_contiguous_view_stays_on_its_device(device):
    # The reshape of a swapped view copies; on a GPU that copy must land on the input's GPU.
    a, w = _randn(3, 4, 5), _randn(2, 5)
    x = mx.np.array(a, device=device)
    weight = mx.np.array(w, device=device)
    x.attach_grad()
    with autograd.record():
        y = npx.fully_connected(
            mx.np.swapaxes(x, 0, 1), weight, no_bias=True, num_hidden=2, flatten=False
        )
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), np.swapaxes(a, 0, 1) @ w.T, rtol=1e-12)
    assert y.device == device and x.grad.device == device
    np.testing.assert_allclose(x.grad.asnumpy(), np.broadcast_to(w.sum(0), a.shape), rtol=1e-12)
