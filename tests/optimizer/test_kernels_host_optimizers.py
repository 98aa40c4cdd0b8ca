"""kernels/optimizers.cu on the CPU (tests/cuda_host), through gluonlite._kernels, against
each optimizer's Python math function on NumPy float32 copies, over three steps from fresh
states; then the optimizers' public fused path through the stand-in CuPy.

The kernels round after every operation in the Python order, so on this CPU they agree to
the bit or nearly; the tolerance (1e-6 relative, 1e-7 absolute) leaves room for nvcc's FMA
contraction so that the same checks hold on a GPU. Weights and states live in the harness's
guard zones (an out-of-bounds store shows), gradients must keep their bytes, and every launch
runs under forward, reverse and shuffled thread orders.
"""

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _kernels, optimizer
from tests.cuda_host import fake_cupy, harness
from tests.test_kernels_host_multi_tensor import cupy_stand_in  # noqa: F401 - a fixture
from tests.test_kernels_host_multi_tensor import guarded

harness.require_toolchain()

RTOL, ATOL = 1e-6, 1e-7
SHAPES = [(0,), (3,), (70,), (5, 7)]  # 70: three blocks of THREADS, the last one partial
THREADS = 32
# (optimizer, options): every kernel, with and without its optional parts.
ROWS = [
    ("nag", dict(momentum=0.9, wd=0.01, clip_gradient=0.5)),
    ("nag", dict(momentum=0.0)),
    ("signum", dict(momentum=0.9, wd=0.01, wd_lh=0.1)),
    ("signum", dict(momentum=0.0, wd=0.01, wd_lh=0.1)),
    ("dcasgd", dict(momentum=0.9, lamda=0.1, wd=0.01)),
    ("dcasgd", dict(lamda=0.1, clip_gradient=0.5)),
    ("adamw", dict(wd=0.1, clip_gradient=0.5)),
    ("adamax", dict(wd=0.01)),
    ("nadam", dict(wd=0.01, schedule_decay=0.1)),
    ("adabelief", dict(wd=0.01, clip_gradient=0.5)),
    ("adagrad", dict(wd=0.01)),
    ("adadelta", dict(rho=0.8, wd=0.01)),
    ("rmsprop", dict(wd=0.01, clip_gradient=0.5)),
    ("rmsprop", dict(centered=True, momentum=0.8, clip_weights=0.9)),
    ("ftrl", dict(lamda1=0.05, wd=0.01)),
    ("ftml", dict(wd=0.01, clip_gradient=0.5)),
]
IDS = [f"{name}-{k}" for k, (name, _) in enumerate(ROWS)]


@pytest.fixture
def rt(request, monkeypatch):
    # Every thread owns its elements (no barriers, no sharing), so one shuffled order per
    # row is enough; two rows also run forward and reverse.
    order = getattr(request, "param", "shuffled")
    monkeypatch.setattr(_kernels, "_OPTIMIZER_THREADS", THREADS)
    runtime = harness.HostRuntime(order=order, seed=5, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


def test_every_kernel_has_a_row_and_an_optimizer():
    # SGLD's kernel takes its noise as the state: tested in test_kernels_host_layerwise.py.
    assert {name for name, _ in ROWS} == set(_kernels._OPTIMIZER_KERNELS) - {"sgld"}
    for name in _kernels._OPTIMIZER_KERNELS:
        assert optimizer.create(name)._kernel == name


@pytest.mark.parametrize(
    "name, options, rt",
    [
        *[(name, options, "shuffled") for name, options in ROWS],
        *[(*ROWS[k], order) for k in (4, 13) for order in ("forward", "reverse")],
    ],
    ids=[*IDS, *[f"{IDS[k]}-{order}" for k in (4, 13) for order in ("forward", "reverse")]],
    indirect=["rt"],
)
def test_kernel_matches_the_python_math(rt, name, options):
    rng = np.random.default_rng(3)
    opt = optimizer.create(name, rescale_grad=0.5, **options)
    math_fn = type(opt)._math
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    kernel = [opt._buffers(guarded(rt, w), opt.create_state(0, guarded(rt, w))) for w in weights]
    # create_state on a guarded weight gives unguarded states; move them into guard zones.
    kernel = [tuple(guarded(rt, b) for b in bufs) for bufs in kernel]
    reference = [tuple(b.copy() for b in bufs) for bufs in kernel]
    for _ in range(3):
        opt._update_count(list(range(len(SHAPES))))
        hypers = opt._hypers(
            list(range(len(SHAPES))),
            opt._get_lrs(range(len(SHAPES))),
            opt._get_wds(range(len(SHAPES))),
        )
        for bufs, ref, hyper in zip(kernel, reference, hypers):
            grad = guarded(rt, (2 * rng.standard_normal(bufs[0].shape)).astype(np.float32))
            saved = grad.copy()
            _kernels._optimizer_step(rt, name, bufs[0], grad, bufs[1:], **hyper)
            math_fn(grad.copy(), *ref, **hyper)
            assert grad.tobytes() == saved.tobytes(), "the gradient was modified"
            for k, (a, r) in enumerate(zip(bufs, ref)):
                np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL, err_msg=f"{name} buffer {k}")
    expected = [f"optimizer_step<glo_{name}>"] * 3 * (len(SHAPES) - 1)  # (0,): no launch
    assert rt.launches == expected


def test_bad_arguments_raise_before_launching(rt):
    w = guarded(rt, np.zeros(4, np.float32))
    hyper = dict(lr=0.1, wd=0.0, rescale_grad=1.0, clip_gradient=None, epsilon=1e-6)
    with pytest.raises(ValueError, match="no fused kernel for optimizer 'lamb'"):
        _kernels._optimizer_step(rt, "lamb", w, w.copy(), [w.copy()], **hyper)
    with pytest.raises(TypeError, match="float32 only"):
        _kernels._optimizer_step(rt, "adagrad", w, np.zeros(4), [w.copy()], **hyper)
    with pytest.raises(ValueError, match="shape"):
        _kernels._optimizer_step(rt, "adagrad", w, w.copy(), [np.zeros(3, np.float32)], **hyper)
    with pytest.raises(TypeError, match="C-contiguous"):
        _kernels._optimizer_step(
            rt, "adagrad", w, w.copy(), [np.zeros(8, np.float32)[::2]], **hyper
        )
    assert rt.launches == []


PUBLIC_SHAPES = [(3, 4), (0,), (300,), ()]


def numpy_and_fused_results(name, options):
    """The weights after two updates by optimizer ``name`` on NumPy arrays (reference) and
    on stand-in CuPy arrays through ``fused_step``, from the same seeds (the generator
    too, for SGLD's noise)."""
    rng = np.random.default_rng(8)
    weights = [np.array(rng.standard_normal(s), np.float32) for s in PUBLIC_SHAPES]
    grads = [
        [np.array(2 * rng.standard_normal(s), np.float32) for s in PUBLIC_SHAPES] for _ in range(2)
    ]
    results = []
    for fused, wrap in ((False, np.array), (True, fake_cupy.as_array)):
        mx.random.seed(11)
        opt = optimizer.create(name, rescale_grad=0.5, use_fused_step=fused, **options)
        ws = [wrap(w.copy()) for w in weights]
        states = [opt.create_state(k, w) for k, w in enumerate(ws)]
        for step_grads in grads:
            opt.update(list(range(len(ws))), ws, [wrap(g) for g in step_grads], states)
        results.append(ws)
    return results


@pytest.mark.parametrize("name, options", ROWS[::2], ids=IDS[::2])
def test_fused_step_launches_one_kernel_per_tensor(
    cupy_stand_in,
    name,
    options,  # noqa: F811
    monkeypatch,
):
    launches = []
    real = _kernels._optimizer_step
    monkeypatch.setattr(
        _kernels,
        "_optimizer_step",
        lambda rt, n, *a, **k: launches.append(n) or real(rt, n, *a, **k),
    )
    results = numpy_and_fused_results(name, options)
    assert launches == [name] * 2 * len(PUBLIC_SHAPES)
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(b), a, rtol=RTOL, atol=ATOL)
