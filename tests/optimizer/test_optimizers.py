"""Every optimizer against a plain NumPy float64 transcription of MXNet 2's formula
(``reference.py``), over a table of optimizers x options; the single-tensor (``step``) and
multi-tensor (``fused_step``) paths against each other; multi_precision; row-sparse
gradients; states of ``mx.np`` arrays; bad input."""

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import optimizer

from . import reference

NAMES = {0: "fc_weight", 1: "fc_bias"}
# (optimizer, options); every row also runs with rescale_grad=0.5.
ROWS = [
    ("sgd", dict(learning_rate=0.1)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.5)),
    ("nag", dict(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.5)),
    ("nag", dict(learning_rate=0.1, momentum=0.0, wd=0.01)),
    ("signum", dict(learning_rate=0.01, momentum=0.9, wd=0.01, wd_lh=0.1)),
    ("signum", dict(learning_rate=0.01, momentum=0.0, wd=0.01, wd_lh=0.1)),
    ("sgld", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("dcasgd", dict(learning_rate=0.1, momentum=0.9, lamda=0.1, wd=0.01)),
    ("dcasgd", dict(learning_rate=0.1, lamda=0.1, clip_gradient=0.5)),
    ("adam", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("adamw", dict(learning_rate=0.01, wd=0.1)),
    ("adamw", dict(learning_rate=0.01, wd=0.1, correct_bias=False, clip_gradient=0.5)),
    ("adamax", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("nadam", dict(learning_rate=0.01, wd=0.01, schedule_decay=0.1)),
    ("adabelief", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("adabelief", dict(learning_rate=0.01, correct_bias=False)),
    ("adagrad", dict(learning_rate=0.1, wd=0.01, clip_gradient=0.5)),
    ("adadelta", dict(learning_rate=1.0, rho=0.8, wd=0.01)),
    ("rmsprop", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("rmsprop", dict(learning_rate=0.01, centered=True, momentum=0.8, clip_weights=0.9)),
    ("ftrl", dict(learning_rate=0.1, lamda1=0.05, wd=0.01)),
    ("ftml", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    ("lamb", dict(learning_rate=0.01, wd=0.01)),
    (
        "lamb",
        dict(
            learning_rate=0.01,
            bias_correction=False,
            lower_bound=0.5,
            upper_bound=1.5,
            clip_gradient=0.5,
        ),
    ),
    ("lans", dict(learning_rate=0.01, wd=0.01)),
    ("lars", dict(learning_rate=0.1, momentum=0.9, wd=0.01, param_idx2name=NAMES)),
]
IDS = [f"{name}-{k}" for k, (name, _) in enumerate(ROWS)]
SHAPES = [(3, 4), (5,)]
STEPS = 3


def _data(seed=0, shapes=SHAPES, dtype=np.float64):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[(2 * rng.standard_normal(s)).astype(dtype) for s in shapes] for _ in range(STEPS)]
    return weights, grads


def _reference(name, options, weights, grads, seed=None):
    hp = dict(options, rescale_grad=0.5)
    names = hp.pop("param_idx2name", {})
    lr, wd = hp.pop("learning_rate"), hp.pop("wd", 0.0)
    fn = getattr(reference, name)
    ws = [w.astype(np.float64) for w in weights]
    states = [{} for _ in ws]
    glob = {"rng": np.random.default_rng(seed)}
    for t, step_grads in enumerate(grads, start=1):
        for k, g in enumerate(step_grads):
            name_k = names.get(k, str(k))
            decayed = not names or name_k.endswith(("_weight", "_gamma"))
            glob.update(name=name_k, initial=weights[k].astype(np.float64))
            ws[k] = fn(
                ws[k], g.astype(np.float64), states[k], t, lr, wd if decayed else 0.0, hp, glob
            )
    return ws


def _run(name, options, weights, grads, *, fused, seed=None, device=None, **extra):
    if seed is not None:
        mx.random.seed(seed)
    opt = optimizer.create(name, rescale_grad=0.5, use_fused_step=fused, **options, **extra)
    ws = [mx.np.array(w, dtype=w.dtype, device=device) for w in weights]
    states = [opt.create_state_multi_precision(k, w) for k, w in enumerate(ws)]
    for step_grads in grads:
        opt.update_multi_precision(
            list(range(len(ws))),
            ws,
            [mx.np.array(g, dtype=g.dtype, device=device) for g in step_grads],
            states,
        )
    return opt, ws, states


@pytest.mark.parametrize("fused", [False, True], ids=["step", "fused_step"])
@pytest.mark.parametrize("name, options", ROWS, ids=IDS)
def test_matches_the_numpy_transcription(name, options, fused, device):
    weights, grads = _data()
    _, ws, _ = _run(name, options, weights, grads, fused=fused, seed=7, device=device)
    expected = _reference(name, options, weights, grads, seed=7)
    # LARS takes its norms in float32, LAMB and LANS keep float32 moments, as MXNet does.
    rtol = 1e-5 if name in ("lars", "lamb", "lans") else 1e-9
    for w, e in zip(ws, expected):
        assert w.device == device and w.dtype == np.float64
        np.testing.assert_allclose(w.asnumpy(), e, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name, options", ROWS, ids=IDS)
def test_fused_step_matches_step_in_float32(name, options, monkeypatch):
    # Tiny buckets, so that the bucketed path concatenates and splits several tensors.
    monkeypatch.setitem(optimizer._BUCKET_ELEMENTS, "numpy", 16)
    monkeypatch.setitem(optimizer._DIRECT_ELEMENTS, "numpy", 12)
    options = (
        dict(options, param_idx2name={k: f"p{k}_weight" for k in range(5)})
        if "param_idx2name" in options
        else options
    )
    weights, grads = _data(1, [(3, 4), (5,), (0,), (2, 3), (20,)], np.float32)
    results = [
        _run(name, options, weights, grads, fused=fused, seed=3)[1] for fused in (False, True)
    ]
    for a, b in zip(*results):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, options", ROWS, ids=IDS)
def test_multi_precision_steps_a_float32_master_copy(name, options):
    weights, grads = _data(2, dtype=np.float16)
    opt, ws, states = _run(name, options, weights, grads, fused=True, seed=5, multi_precision=True)
    _, ws32, _ = _run(
        name,
        options,
        [w.astype(np.float32) for w in weights],
        [[g.astype(np.float32) for g in gs] for gs in grads],
        fused=True,
        seed=5,
    )
    for w, state, w32 in zip(ws, states, ws32):
        master = state[0]
        assert w.dtype == np.float16 and master.dtype == np.float32
        np.testing.assert_allclose(master.asnumpy(), w32.asnumpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(w.asnumpy(), master.asnumpy().astype(np.float16))


LAZY = {"sgd": dict(lazy_update=True), "adam": dict(lazy_update=True), "adagrad": {}, "ftrl": {}}


@pytest.mark.parametrize("name, options", ROWS, ids=IDS)
def test_row_sparse_gradients(name, options):
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((6, 3))
    rows = np.array([1, 4])
    values = [rng.standard_normal((2, 3)) for _ in range(STEPS)]
    dense = [np.zeros((6, 3)) for _ in values]
    for d, v in zip(dense, values):
        d[rows] = v
    lazy = name in LAZY
    extra = LAZY.get(name, {})
    opt = optimizer.create(name, rescale_grad=0.5, **options, **extra)
    mx.random.seed(9)
    w = mx.np.array(w0)
    state = opt.create_state(0, w)
    for v in values:
        g = mx.sparse.row_sparse_array((v, rows), shape=(6, 3))
        opt.update([0], [w], [g], [state])
    if lazy:
        # Only the present rows change, each as a dense update of those rows would.
        expected = w0.copy()
        expected[rows] = _reference(name, options, [w0[rows]], [[v] for v in values])[0]
    else:
        _, (expected,), _ = _run(name, options, [w0], [[d] for d in dense], fused=True, seed=9)
        expected = expected.asnumpy()
    np.testing.assert_allclose(w.asnumpy(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_update_writes_the_states_of_mx_np_arrays(name):
    # Regression: given mx.np arrays, update() used to step the weights but leave the
    # momentum / moment states at zero (silently wrong weights from the second step on).
    options = dict(learning_rate=0.1, momentum=0.9) if name == "sgd" else dict(learning_rate=0.1)
    weights, grads = _data(6, [(4,)])
    opt = optimizer.create(name, rescale_grad=0.5, **options)
    w = mx.np.array(weights[0])
    state = opt.create_state(0, w)
    for (g,) in grads:
        opt.update([0], [w], [mx.np.array(g)], [state])
    arrays = state if isinstance(state, tuple) else (state,)
    assert all(isinstance(a, mx.np.ndarray) and np.abs(a.asnumpy()).sum() > 0 for a in arrays)
    np.testing.assert_allclose(w.asnumpy(), _reference(name, options, weights, grads)[0], rtol=1e-9)


def test_every_optimizer_is_registered_with_mxnet_2s_names():
    expected = {
        "sgd",
        "nag",
        "signum",
        "sgld",
        "dcasgd",
        "adam",
        "adamw",
        "adamax",
        "nadam",
        "adabelief",
        "adagrad",
        "adadelta",
        "rmsprop",
        "ftrl",
        "ftml",
        "lamb",
        "lans",
        "lars",
    }
    assert {name for name, _ in ROWS} == expected
    for name in expected:
        opt = optimizer.create(name.upper())
        assert isinstance(opt, optimizer.Optimizer) and opt.learning_rate > 0


@pytest.mark.parametrize(
    "bad, what",
    [
        (lambda w, g, s: ([0], [w.asnumpy().tolist()], [g], [s]), "weights\\[0\\]"),
        (lambda w, g, s: ([0], [w], [g.asnumpy().tolist()], [s]), "grads\\[0\\]"),
        (lambda w, g, s: ([0], [w], [mx.sparse.from_dense(g, "csr")], [s]), "grads\\[0\\]"),
        (lambda w, g, s: ([0], [w], [g], [(s[0].asnumpy().tolist(), s[1])]), "states\\[0\\]"),
    ],
)
def test_what_update_cannot_take_raises_type_error_and_changes_nothing(bad, what):
    opt = optimizer.Adam(learning_rate=0.1)
    w = mx.np.ones((2, 3))
    g = mx.np.ones((2, 3))
    state = opt.create_state(0, w)
    with pytest.raises(TypeError, match=what):
        opt.update(*bad(w, g, state))
    assert (w.asnumpy() == 1).all() and opt.num_update == 0
    assert all((s.asnumpy() == 0).all() for s in state)


def test_unknown_arguments_and_names_raise():
    with pytest.raises(TypeError, match="momentun"):
        optimizer.SGD(momentun=0.9)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        optimizer.create("adamm")
    with pytest.raises(TypeError, match="optimizer name"):
        optimizer.create(3)


@pytest.mark.parametrize(
    "name, options",
    [
        ("lamb", dict(wd=0.01)),
        ("lars", dict(momentum=0.9, wd=0.01)),
        ("lans", dict(wd=0.01)),
        ("sgld", dict(wd=0.01)),
    ],
)
def test_unbucketable_optimizers_run_their_gpu_kernels(gpu, name, options, monkeypatch):
    # LAMB/LARS/LANS: norms then scaled steps (2 or 4 launches per tensor); SGLD: one launch with
    # the host-drawn noise, so the GPU result matches cpu(0)'s under the same seed.
    from gluonlite import _kernels

    calls = []
    for fn in ("layerwise_step", "optimizer_step"):
        real = getattr(_kernels, fn)
        monkeypatch.setattr(
            _kernels, fn, lambda n, *a, real=real, **k: calls.append(n) or real(n, *a, **k)
        )
    results = []
    for device in (mx.cpu(0), gpu):
        mx.random.seed(3)
        opt = mx.optimizer.create(name, use_fused_step=True, **options)
        w = mx.np.array(np.linspace(-1, 1, 60, dtype=np.float32).reshape(6, 10), device=device)
        g = mx.np.array(np.cos(np.arange(60, dtype=np.float32)).reshape(6, 10), device=device)
        state = opt.create_state(0, w)
        for _ in range(2):
            opt.update([0], [w], [g], [state])
        results.append(w.asnumpy())
    assert calls == [name] * 2
    np.testing.assert_allclose(results[1], results[0], rtol=2e-5, atol=1e-6)
