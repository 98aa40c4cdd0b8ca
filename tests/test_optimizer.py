"""Optimizers: MXNet's arithmetic against NumPy written out by hand, single- vs multi-tensor
parity, multipliers, clipping, lazy row-sparse updates and validation."""

import math
import pickle

import numpy as np
import pytest

import gluonlite
from gluonlite import optimizer
from gluonlite.optimizer import SGD, Adam, RowSparseGrad


def _module_params():
    params = [pytest.param(np, id="numpy")]
    if gluonlite.num_gpus() > 0:
        import cupy

        params.append(pytest.param(cupy, id="cupy"))
    else:
        params.append(
            pytest.param(None, id="cupy", marks=pytest.mark.skip(reason="no GPU visible"))
        )
    return params


@pytest.fixture(params=_module_params())
def xp(request):
    return request.param


def host(a):
    """A NumPy copy of a NumPy or CuPy array."""
    return a.get() if type(a).__module__.startswith("cupy") else np.array(a, copy=True)


TOL = {
    np.float16: dict(rtol=2e-3, atol=2e-3),
    np.float32: dict(rtol=1e-6, atol=1e-7),
    np.float64: dict(rtol=1e-12, atol=1e-14),
}


def assert_close(actual, expected, dtype=None):
    actual = host(actual)
    expected = np.asarray(expected)
    dtype = np.dtype(dtype or actual.dtype)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual.astype(np.float64), expected.astype(np.float64), **TOL[dtype.type]
    )


# --------------------------------------------------------------------------------------
# MXNet arithmetic
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_sgd_momentum_first_steps_by_hand(xp, fused):
    opt = SGD(learning_rate=0.1, momentum=0.9, use_fused_step=fused)
    w = xp.ones(3, dtype=xp.float64)
    state = opt.create_state(0, w)
    g = xp.full(3, 2.0, dtype=xp.float64)
    opt.update([0], [w], [g], [state])
    # mom = 0.9*0 - 0.1*2 = -0.2 ; w = 1 - 0.2
    assert_close(state, [-0.2] * 3)
    assert_close(w, [0.8] * 3)
    opt.update([0], [w], [g], [state])
    # mom = 0.9*(-0.2) - 0.1*2 = -0.38 ; w = 0.8 - 0.38
    assert_close(state, [-0.38] * 3)
    assert_close(w, [0.42] * 3)


def _sgd_reference(w, grads, *, lr, wd, momentum, rescale, clip):
    """MXNet's sgd_mom_update written out for a sequence of gradients, in float64."""
    w = w.astype(np.float64)
    mom = np.zeros_like(w)
    for g in grads:
        g = rescale * g.astype(np.float64)
        if clip is not None:
            g = np.minimum(np.maximum(g, -clip), clip)
        g = g + wd * w
        mom = momentum * mom - lr * g
        w = w + mom
    return w, mom


def _adam_reference(w, grads, *, lr, wd, beta1, beta2, eps, rescale, clip):
    """MXNet's adam_update (bias correction on lr, wd before clipping), in float64."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = rescale * g.astype(np.float64) + wd * w
        if clip is not None:
            g = np.minimum(np.maximum(g, -clip), clip)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w, m, v


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_reference_with_wd_rescale_and_clip(xp, fused, momentum):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 5))
    grads = [rng.standard_normal((4, 5)) * 3 for _ in range(4)]
    hyper = dict(lr=0.05, wd=0.01, momentum=momentum, rescale=0.5, clip=0.6)
    opt = SGD(
        learning_rate=0.05,
        momentum=momentum,
        wd=0.01,
        rescale_grad=0.5,
        clip_gradient=0.6,
        use_fused_step=fused,
    )
    w = xp.array(w0)
    state = opt.create_state(0, w)
    assert (state is None) == (momentum == 0.0)
    for g in grads:
        opt.update([0], [w], [xp.array(g)], [state])
    w_ref, mom_ref = _sgd_reference(w0, grads, **hyper)
    assert_close(w, w_ref)
    if state is not None:
        assert_close(state, mom_ref)


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_adam_first_step_moves_each_weight_by_about_lr(xp, fused):
    # At t=1 the bias-corrected step is lr * g / (|g| + eps / sqrt(1 - beta2)).
    opt = Adam(learning_rate=0.01, use_fused_step=fused)
    w = xp.array([1.0, 1.0, 1.0])
    state = opt.create_state(0, w)
    opt.update([0], [w], [xp.array([3.0, -0.5, 0.0])], [state])
    eps_hat = 1e-8 / math.sqrt(1 - 0.999)
    assert_close(w, [1 - 0.01 * 3 / (3 + eps_hat), 1 + 0.01 * 0.5 / (0.5 + eps_hat), 1.0])
    assert_close(state[0], [0.3, -0.05, 0.0])
    assert_close(state[1], [0.009, 0.00025, 0.0])


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_adam_matches_reference_with_wd_rescale_and_clip(xp, fused):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 7))
    grads = [rng.standard_normal((3, 7)) for _ in range(5)]
    opt = Adam(
        learning_rate=0.02,
        beta1=0.8,
        beta2=0.95,
        epsilon=1e-6,
        wd=0.3,
        rescale_grad=2.0,
        clip_gradient=1.5,
        use_fused_step=fused,
    )
    w = xp.array(w0)
    state = opt.create_state(0, w)
    for g in grads:
        opt.update([0], [w], [xp.array(g)], [state])
    w_ref, m_ref, v_ref = _adam_reference(
        w0, grads, lr=0.02, wd=0.3, beta1=0.8, beta2=0.95, eps=1e-6, rescale=2.0, clip=1.5
    )
    assert_close(w, w_ref)
    assert_close(state[0], m_ref)
    assert_close(state[1], v_ref)


def test_clip_comes_before_wd_in_sgd_and_after_wd_in_adam(xp):
    # A large weight with a small gradient tells the two orders apart.
    w_sgd = xp.array([10.0])
    SGD(learning_rate=1.0, wd=0.1, clip_gradient=0.5).update(
        [0], [w_sgd], [xp.array([0.2])], [None]
    )
    assert_close(w_sgd, [10.0 - (0.2 + 0.1 * 10.0)])  # clip(0.2) + wd*w = 1.2, unclipped
    adam = Adam(learning_rate=1.0, beta1=0.0, beta2=0.0, wd=0.1, clip_gradient=0.5)
    w_adam = xp.array([10.0])
    state = adam.create_state(0, w_adam)
    adam.update([0], [w_adam], [xp.array([0.2])], [state])
    assert_close(state[0], [0.5])  # clip(0.2 + wd*w) = clip(1.2) = 0.5


def test_adam_bias_correction_counts_each_index_separately(xp):
    opt = Adam(learning_rate=0.1)
    a, b = xp.zeros(2), xp.zeros(2)
    sa, sb = opt.create_state(0, a), opt.create_state(1, b)
    g = xp.ones(2)
    opt.update([0], [a], [g], [sa])
    opt.update([0], [a], [g], [sa])
    opt.update([0, 1], [a, b], [g, g], [sa, sb])
    assert opt._index_update_count == {0: 3, 1: 1}
    assert opt.num_update == 3
    # Index 1 takes a first step (t=1): it moves by lr, as index 0 did on its first step.
    assert_close(b, [-0.1 / (1 + 1e-8 / math.sqrt(1 - 0.999))] * 2)


def test_begin_num_update_sets_the_first_step(xp):
    opt = Adam(learning_rate=0.1, begin_num_update=10)
    w = xp.zeros(1)
    state = opt.create_state(0, w)
    opt.update([0], [w], [xp.ones(1)], [state])
    lr_t = 0.1 * math.sqrt(1 - 0.999**11) / (1 - 0.9**11)
    assert_close(w, [-lr_t * 0.1 / (math.sqrt(0.001) + 1e-8)])


def test_gradients_are_not_modified(xp):
    for opt in (
        SGD(momentum=0.9, wd=0.1, rescale_grad=0.5, clip_gradient=0.1),
        Adam(wd=0.1, rescale_grad=0.5, clip_gradient=0.1),
    ):
        w = xp.ones((2, 3))
        g = xp.full((2, 3), 4.0)
        opt.update([0], [w], [g], [opt.create_state(0, w)])
        assert_close(g, np.full((2, 3), 4.0))


# --------------------------------------------------------------------------------------
# Single- vs multi-tensor parity
# --------------------------------------------------------------------------------------

SHAPES_DTYPES = [
    ((3, 4), np.float32),
    ((0,), np.float32),
    ((5,), np.float64),
    ((2, 0, 3), np.float16),
    ((7, 2, 3), np.float32),
    ((), np.float64),
    ((6, 4), np.float16),
    ((9,), np.float32),
    ((4, 3), np.float64),
    ((3,), np.float32),
    ((2, 2), np.float32),
    ((5,), np.float32),
    ((1,), np.float32),
]
SPARSE = {7: [0, 3, 5], 8: [0, 3]}  # index -> rows present in its row-sparse gradient


def _make(xp, seed):
    rng = np.random.default_rng(seed)
    return [xp.array(rng.standard_normal(s).astype(d)) for s, d in SHAPES_DTYPES]


def _grads(xp, rng, weights):
    grads = []
    for i, w in enumerate(weights):
        if i in SPARSE and w.ndim >= 1:
            rows = np.array(SPARSE[i], dtype=np.int64)
            data = rng.standard_normal((len(rows),) + tuple(w.shape[1:])).astype(w.dtype)
            grads.append(RowSparseGrad(xp.array(rows), xp.array(data)))
        else:
            grads.append(xp.array(rng.standard_normal(w.shape).astype(w.dtype)))
    return grads


@pytest.mark.parametrize("lazy_update", [True, False], ids=["lazy", "dense"])
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda fused, lazy: SGD(
            learning_rate=0.05, wd=0.01, clip_gradient=1.0, use_fused_step=fused, lazy_update=lazy
        ),
        lambda fused, lazy: SGD(
            learning_rate=0.05,
            momentum=0.9,
            wd=0.01,
            rescale_grad=0.25,
            use_fused_step=fused,
            lazy_update=lazy,
        ),
        lambda fused, lazy: Adam(
            learning_rate=0.01, wd=0.02, clip_gradient=0.8, use_fused_step=fused, lazy_update=lazy
        ),
    ],
    ids=["sgd", "sgd_momentum", "adam"],
)
@pytest.mark.parametrize("tiny_buckets", [False, True], ids=["default", "tiny_buckets"])
def test_multi_tensor_matches_single_tensor(xp, make_opt, lazy_update, tiny_buckets, monkeypatch):
    if tiny_buckets:
        # Groups then span several buckets (some of one tensor), and the two largest
        # tensors are updated where they lie.
        for name in ("numpy", "cupy"):
            monkeypatch.setitem(optimizer._BUCKET_ELEMENTS, name, 8)
            monkeypatch.setitem(optimizer._DIRECT_ELEMENTS, name, 20)
    runs = []
    for fused in (False, True):
        opt = make_opt(fused, lazy_update)
        # Different multipliers split the parameters into several groups of one dtype.
        opt.set_lr_mult({1: 0.5, 4: 0.5, 6: 2.0})
        opt.set_wd_mult({4: 0.0, 7: 3.0})
        weights = _make(xp, seed=3)
        indices = list(range(len(weights)))
        states = [opt.create_state(i, w) for i, w in zip(indices, weights)]
        rng = np.random.default_rng(4)
        for step in range(5):
            # Index 2 joins late, so its Adam step count differs from the others.
            active = [i for i in indices if i != 2 or step >= 2]
            grads = _grads(xp, rng, weights)
            opt.update(
                active,
                [weights[i] for i in active],
                [grads[i] for i in active],
                [states[i] for i in active],
            )
        runs.append((weights, states))
    (w_single, s_single), (w_multi, s_multi) = runs
    pairs = list(zip(w_single, w_multi)) + [
        (a, b)
        for sa, sb in zip(s_single, s_multi)
        for a, b in (zip(sa, sb) if isinstance(sa, tuple) else [(sa, sb)])
    ]
    for a, b in pairs:
        if a is None:
            assert b is None
            continue
        assert a.shape == b.shape and a.dtype == b.dtype
        if xp is np:
            # Both paths run the same elementwise operations with the same scalars, so on
            # NumPy they agree to the bit; a fused GPU kernel may contract into FMAs.
            np.testing.assert_array_equal(b, a)
        else:
            assert_close(b, host(a))


def test_multi_tensor_path_runs_the_math_once_per_group(xp, monkeypatch):
    # The bucketed path, which the fused kernel would bypass for float32 CuPy tensors.
    monkeypatch.setenv(optimizer.FUSED_OPTIMIZER_ENV, "0")
    calls = []
    real = optimizer.sgd._sgd_math

    def counting(grad, *buffers, **hyper):
        calls.append((str(grad.dtype), grad.size, round(hyper["lr"], 12)))
        real(grad, *buffers, **hyper)

    monkeypatch.setattr(optimizer.sgd, "_sgd_math", counting)
    opt = SGD(learning_rate=0.1, momentum=0.9)
    opt.set_lr_mult({0: 2.0})
    weights = [xp.ones((4, 3), dtype=xp.float32) for _ in range(6)]
    weights += [xp.ones(5, dtype=xp.float64) for _ in range(3)] + [xp.ones(0, xp.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    opt.update(range(10), weights, [xp.ones_like(w) for w in weights], states)
    # Groups: index 0 (lr 0.2), the other float32 tensors, the float64 ones.
    assert sorted(calls) == sorted(
        [("float32", 12, 0.2), ("float32", 5 * 12, 0.1), ("float64", 3 * 5, 0.1)]
    )
    calls.clear()
    opt.use_fused_step = False
    opt.update(range(10), weights, [xp.ones_like(w) for w in weights], states)
    assert len(calls) == 10


# Element counts around the fused kernel's chunks (_kernels._MULTI_TENSOR_CHUNK = 16384).
FUSED_SHAPES = [(0,), (), (3,), (1023,), (4097,), (16384,), (16385,), (3, 50001), (7, 2, 3)]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda fused: SGD(learning_rate=0.1, wd=0.05, clip_gradient=0.7, use_fused_step=fused),
        lambda fused: SGD(
            learning_rate=0.1, momentum=0.9, wd=0.01, rescale_grad=0.5, use_fused_step=fused
        ),
        lambda fused: Adam(
            learning_rate=0.01, wd=0.02, clip_gradient=1.5, rescale_grad=0.5, use_fused_step=fused
        ),
    ],
    ids=["sgd", "sgd_momentum", "adam"],
)
def test_fused_gpu_kernel_matches_single_tensor_path(gpu, make_opt, monkeypatch):
    import cupy
    from gluonlite import _kernels

    monkeypatch.delenv(optimizer.FUSED_OPTIMIZER_ENV, raising=False)
    launches = []

    def recorded(name):
        real = getattr(_kernels, name)

        def launch(*args, **kwargs):
            launches.append(name)
            real(*args, **kwargs)

        return launch

    for name in ("multi_tensor_sgd", "multi_tensor_adam"):
        monkeypatch.setattr(_kernels, name, recorded(name))
    rng = np.random.default_rng(21)
    host_weights = [np.array(rng.standard_normal(s), np.float32) for s in FUSED_SHAPES]
    host_grads = [
        [np.array(2 * rng.standard_normal(s), np.float32) for s in FUSED_SHAPES] for _ in range(4)
    ]
    runs = []
    with cupy.cuda.Device(gpu.device_id):
        for fused in (True, False):
            opt = make_opt(fused)
            opt.set_lr_mult({1: 0.5, 4: 2.0})  # per-tensor lr and wd in one launch
            opt.set_wd_mult({2: 0.0, 5: 3.0})
            weights = [cupy.asarray(w) for w in host_weights]
            states = [opt.create_state(i, w) for i, w in enumerate(weights)]
            for step, grads in enumerate(host_grads):
                active = [i for i in range(len(weights)) if i != 3 or step >= 2]
                g = [cupy.asarray(grads[i]) for i in active]
                opt.update(active, [weights[i] for i in active], g, [states[i] for i in active])
                for a, i in zip(g, active):  # the kernel only reads gradients
                    np.testing.assert_array_equal(host(a), grads[i])
            runs.append(
                weights
                + [
                    a
                    for s in states
                    if s is not None
                    for a in (s if isinstance(s, tuple) else (s,))
                ]
            )
            if fused:
                assert len(launches) == len(host_grads)  # one launch per update
    for fused_array, single_array in zip(*runs):
        assert_close(fused_array, host(single_array))


# --------------------------------------------------------------------------------------
# Multipliers, clipping, rescaling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("how", ["set_lr_mult", "param_dict"])
def test_lr_mult_zero_freezes(xp, fused, how):
    class Param:
        lr_mult = 0.0
        wd_mult = 1.0

    for opt in (
        SGD(learning_rate=0.1, momentum=0.9, wd=0.5, use_fused_step=fused),
        Adam(learning_rate=0.1, wd=0.5, use_fused_step=fused),
    ):
        if how == "set_lr_mult":
            opt.set_lr_mult({"frozen": 0.0})
        else:
            opt.param_dict = {"frozen": Param()}
        frozen, live = xp.array([1.5, -2.0]), xp.array([1.5, -2.0])
        states = [opt.create_state("frozen", frozen), opt.create_state("live", live)]
        for _ in range(3):
            opt.update(["frozen", "live"], [frozen, live], [xp.ones(2), xp.ones(2)], states)
        np.testing.assert_array_equal(host(frozen), [1.5, -2.0])
        assert not np.array_equal(host(live), [1.5, -2.0])


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_wd_mult_scales_weight_decay(xp, fused):
    opt = SGD(learning_rate=0.1, wd=0.2, use_fused_step=fused)
    opt.set_wd_mult({"bias": 0.0, "double": 2.0})
    ws = [xp.array([1.0]), xp.array([1.0]), xp.array([1.0])]
    zeros = [xp.zeros(1) for _ in ws]
    opt.update(["bias", "plain", "double"], ws, zeros, [None] * 3)
    # With a zero gradient only the decay moves a weight: w -= lr * wd * wd_mult * w.
    assert_close(ws[0], [1.0])
    assert_close(ws[1], [1.0 - 0.1 * 0.2])
    assert_close(ws[2], [1.0 - 0.1 * 0.4])
    opt.set_wd_mult({})
    opt.update(["bias"], [ws[0]], [zeros[0]], [None])
    assert_close(ws[0], [1.0 - 0.1 * 0.2])


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_clip_gradient_bounds_the_step(xp, fused):
    opt = SGD(learning_rate=1.0, clip_gradient=0.25, use_fused_step=fused)
    w = xp.zeros(4)
    opt.update([0], [w], [xp.array([-10.0, -0.1, 0.1, 10.0])], [None])
    assert_close(w, [0.25, 0.1, -0.1, -0.25])


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
def test_rescale_grad_is_the_same_as_scaling_the_gradient(xp, fused):
    rng = np.random.default_rng(5)
    w0, g = rng.standard_normal(6), rng.standard_normal(6)
    results = []
    for rescale, grad in ((0.5, g), (1.0, g * 0.5)):  # exact: 0.5 is a power of two
        opt = Adam(learning_rate=0.1, rescale_grad=rescale, use_fused_step=fused)
        w = xp.array(w0)
        state = opt.create_state(0, w)
        opt.update([0], [w], [xp.array(grad)], [state])
        results.append(host(w))
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], w0)


def test_lr_scheduler_decides_the_learning_rate(xp):
    seen = []

    def schedule(num_update):
        seen.append(num_update)
        return 0.1 / num_update if num_update else 0.1

    opt = SGD(learning_rate=5.0, lr_scheduler=schedule)
    w = xp.zeros(1)
    for _ in range(2):
        opt.update([0], [w], [xp.ones(1)], [None])
    assert seen == [1, 2]
    assert_close(w, [-(0.1 + 0.05)])
    assert opt.learning_rate == pytest.approx(0.1 / 2)
    with pytest.warns(UserWarning, match="lr_scheduler"):
        opt.set_learning_rate(0.3)
    assert opt.lr == 5.0 and opt.learning_rate == pytest.approx(0.1 / 2)


def test_learning_rate_and_set_learning_rate():
    opt = optimizer.create("SGD", learning_rate=0.3)
    assert opt.learning_rate == opt.lr == 0.3
    opt.set_learning_rate(0.2)
    assert opt.learning_rate == 0.2
    assert isinstance(optimizer.create("adam"), Adam)
    assert optimizer.create("adam").learning_rate == 0.001


# --------------------------------------------------------------------------------------
# Row-sparse (lazy) updates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("kind", ["sgd", "sgd_momentum", "adam"])
def test_lazy_update_touches_only_present_rows(xp, fused, kind):
    make = {
        "sgd": lambda lazy: SGD(learning_rate=0.1, wd=0.1, use_fused_step=fused, lazy_update=lazy),
        "sgd_momentum": lambda lazy: SGD(
            learning_rate=0.1, momentum=0.9, wd=0.1, use_fused_step=fused, lazy_update=lazy
        ),
        "adam": lambda lazy: Adam(
            learning_rate=0.1, wd=0.1, use_fused_step=fused, lazy_update=lazy
        ),
    }[kind]
    rng = np.random.default_rng(6)
    w0 = rng.standard_normal((6, 2, 3)).astype(np.float32)
    warmup = rng.standard_normal((6, 2, 3)).astype(np.float32)
    rows = np.array([1, 4], dtype=np.int64)
    data = rng.standard_normal((2, 2, 3)).astype(np.float32)

    def run(lazy, sparse):
        opt = make(lazy)
        w = xp.array(w0)
        state = opt.create_state(0, w)
        # A dense step first, so that states are non-zero and a decay would show.
        opt.update([0], [w], [xp.array(warmup)], [state])
        before = (host(w), [host(s) for s in _arrays(state)])
        if sparse:
            grad = RowSparseGrad(xp.array(rows), xp.array(data))
        else:
            dense = np.zeros_like(w0)
            dense[rows] = data
            grad = xp.array(dense)
        opt.update([0], [w], [grad], [state])
        return before, (host(w), [host(s) for s in _arrays(state)])

    (w_before, s_before), (w_lazy, s_lazy) = run(lazy=True, sparse=True)
    _, (w_dense, s_dense) = run(lazy=True, sparse=False)
    absent = np.setdiff1d(np.arange(6), rows)
    np.testing.assert_array_equal(w_lazy[absent], w_before[absent])
    for a, b in zip(s_lazy, s_before):
        np.testing.assert_array_equal(a[absent], b[absent])
    # Present rows get exactly the dense update of those rows.
    assert_close(w_lazy[rows], w_dense[rows])
    assert not np.array_equal(w_lazy[rows], w_before[rows])
    for a, b in zip(s_lazy, s_dense):
        assert_close(a[rows], b[rows])
    # lazy_update=False treats the row-sparse gradient as the dense one.
    _, (w_std, s_std) = run(lazy=False, sparse=True)
    assert_close(w_std, w_dense)
    assert not np.array_equal(w_std[absent], w_before[absent])  # decayed everywhere
    for a, b in zip(s_std, s_dense):
        assert_close(a, b)


def _arrays(state):
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def test_row_sparse_gradient_with_no_rows_changes_nothing(xp):
    for opt in (SGD(momentum=0.9, wd=0.1, lazy_update=True), Adam(wd=0.1, lazy_update=True)):
        w = xp.array(np.arange(6.0).reshape(3, 2))
        state = opt.create_state(0, w)
        grad = RowSparseGrad(xp.zeros(0, dtype=xp.int64), xp.zeros((0, 2)))
        opt.update([0], [w], [grad], [state])
        np.testing.assert_array_equal(host(w), np.arange(6.0).reshape(3, 2))


def test_any_object_with_indices_and_data_is_row_sparse(xp):
    class Grad:
        def __init__(self, indices, data):
            self.indices, self.data = indices, data

    opt = SGD(learning_rate=1.0)
    w = xp.zeros((3, 2))
    opt.update([0], [w], [Grad(xp.array([2]), xp.ones((1, 2)))], [None])
    np.testing.assert_array_equal(host(w), [[0, 0], [0, 0], [-1, -1]])


# --------------------------------------------------------------------------------------
# States and pickling
# --------------------------------------------------------------------------------------


def test_states_are_plain_arrays_like_the_weight(xp):
    w = xp.zeros((2, 3), dtype=xp.float16)
    mom = SGD(momentum=0.5).create_state(0, w)
    mean, var = Adam().create_state(0, w)
    for s in (mom, mean, var):
        assert type(s) is type(w) and s.shape == w.shape and s.dtype == w.dtype
    assert SGD().create_state(0, w) is None


def test_optimizer_pickles_with_counts_and_without_param_dict():
    opt = Adam(learning_rate=0.02, param_dict={0: object()})
    opt.set_lr_mult({1: 0.5})
    w = np.zeros(2)
    state = opt.create_state(1, w)
    opt.update([1], [w], [np.ones(2)], [state])
    clone = pickle.loads(pickle.dumps((opt, state)))
    restored, restored_state = clone
    assert restored.param_dict == {}
    assert restored._index_update_count == {1: 1} and restored.num_update == 1
    assert restored.lr == 0.02 and restored.lr_mult == {1: 0.5}
    np.testing.assert_array_equal(restored_state[0], state[0])


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda mp: SGD(learning_rate=0.1, momentum=0.9, wd=0.01, multi_precision=mp),
        lambda mp: Adam(learning_rate=0.01, wd=0.01, multi_precision=mp),
    ],
    ids=["sgd", "adam"],
)
def test_multi_precision_updates_a_float32_master_copy(xp, make_opt):
    rng = np.random.default_rng(7)
    w16 = rng.standard_normal((5, 3)).astype(np.float16)
    grads = [rng.standard_normal((5, 3)).astype(np.float16) for _ in range(3)]
    rows = xp.array([0, 3])
    opt = make_opt(True)
    w, w_other = xp.array(w16), xp.array(w16.astype(np.float32))
    states = [opt.create_state_multi_precision(0, w), opt.create_state_multi_precision(1, w_other)]
    master = states[0][0]
    assert master.dtype == np.float32
    # A float32 weight needs no master copy: its state is the ordinary one.
    assert type(states[1]) is type(opt.create_state(1, w_other))
    ref_opt = make_opt(False)
    ref = xp.array(w16.astype(np.float32))
    ref_state = ref_opt.create_state(0, ref)
    for step, g in enumerate(grads):
        g16 = xp.array(g)
        g_in = RowSparseGrad(rows, g16[rows]) if step == 2 else g16
        g32 = xp.array(g.astype(np.float32))
        g_ref = RowSparseGrad(rows, g32[rows]) if step == 2 else g32
        opt.update_multi_precision([0, 1], [w, w_other], [g_in, g32], states)
        ref_opt.update([0], [ref], [g_ref], [ref_state])
    # The float32 master follows the float32 run exactly; the float16 weight is its rounding.
    np.testing.assert_array_equal(host(master), host(ref))
    np.testing.assert_array_equal(host(w), host(ref).astype(np.float16))
    assert w.dtype == np.float16
    # Without multi_precision the same calls are a plain update in float16.
    results = []
    for mp_api in (True, False):
        plain = make_opt(False)
        w_plain = xp.array(w16)
        state = (plain.create_state_multi_precision if mp_api else plain.create_state)(0, w_plain)
        (plain.update_multi_precision if mp_api else plain.update)(
            [0], [w_plain], [xp.array(grads[0])], [state]
        )
        results.append(host(w_plain))
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], w16)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(learning_rate=-0.1), "learning_rate must be in"),
        (lambda: SGD(learning_rate=float("nan")), "learning_rate"),
        (lambda: SGD(momentum=1.0), r"momentum must be in \[0, 1\)"),
        (lambda: SGD(momentum=-0.1), "momentum"),
        (lambda: SGD(wd=-1e-4), "wd must be in"),
        (lambda: SGD(rescale_grad=0.0), "rescale_grad"),
        (lambda: SGD(clip_gradient=0.0), "use None to disable it"),
        (lambda: SGD(clip_gradient=-1.0), "clip_gradient"),
        (lambda: Adam(beta1=1.0), "beta1"),
        (lambda: Adam(beta2=-0.5), "beta2"),
        (lambda: Adam(beta2=1.5), "beta2"),
        (lambda: Adam(epsilon=0.0), "epsilon"),
        (lambda: SGD(begin_num_update=-1), "begin_num_update"),
        (lambda: SGD().set_lr_mult({0: -1.0}), "lr_mult"),
        (lambda: Adam().set_wd_mult({"w": -1.0}), "wd_mult"),
        (lambda: optimizer.create("rmsprops"), "registered optimizers are"),
    ],
)
def test_invalid_hyper_parameters_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_setting_an_invalid_rescale_grad_later_raises():
    opt = SGD()
    opt.rescale_grad = 1 / 32
    assert opt.rescale_grad == 1 / 32
    with pytest.raises(ValueError, match="rescale_grad"):
        opt.rescale_grad = -1.0
    with pytest.raises(TypeError, match="real number"):
        opt.lr = "0.1"
    with pytest.raises(ValueError, match="momentum"):
        opt.momentum = 1.0
    adam = Adam()
    with pytest.raises(ValueError, match="beta2"):
        adam.beta2 = 1.0
    adam.clip_gradient = None
    assert adam.clip_gradient is None


def test_invalid_update_arguments_raise_and_do_not_count(xp):
    opt = Adam()
    w = xp.zeros((3, 2), dtype=xp.float32)
    state = opt.create_state(0, w)
    g = xp.zeros((3, 2), dtype=xp.float32)
    cases = [
        (ValueError, "same length|one of each", ([0], [w], [g, g], [state])),
        (ValueError, "unique", ([0, 0], [w, w], [g, g], [state, state])),
        (ValueError, "does not match weight shape", ([0], [w], [xp.zeros(6, xp.float32)], [state])),
        (TypeError, "cast the gradient", ([0], [w], [g.astype(xp.float64)], [state])),
        (ValueError, "what create_state", ([0], [w], [g], [None])),
        (
            ValueError,
            "needs data of shape",
            ([0], [w], [RowSparseGrad(xp.array([1]), xp.zeros((1, 3), xp.float32))], [state]),
        ),
    ]
    for error, message, args in cases:
        with pytest.raises(error, match=message):
            opt.update(*args)
    if xp is not np:
        with pytest.raises(TypeError, match="numpy"):
            opt.update([0], [w], [np.zeros((3, 2), np.float32)], [state])
    assert opt._index_update_count == {} and opt.num_update == 0
    np.testing.assert_array_equal(host(w), np.zeros((3, 2)))


def test_sgd_momentum_without_state_raises(xp):
    opt = SGD(momentum=0.9)
    w = xp.zeros(2)
    with pytest.raises(ValueError, match="create_state"):
        opt.update([0], [w], [xp.ones(2)], [None])
