"""The kernels of the optimizers that cannot be bucketed, on the CPU (tests/cuda_host):
LAMB's, LARS's and LANS's phases (``_kernels._layerwise_step``) and SGLD's elementwise
step with its noise passed in, against each optimizer's Python math function on NumPy
float32 copies over three steps; then their public fused path through the stand-in CuPy.

The norms accumulate in float32 on the device and in float64 in the Python code, hence a
looser tolerance than the elementwise kernels' (the trust ratio carries the summation error
into every element of the step).
"""

import numpy as np
import pytest

from gluonlite import _kernels, optimizer
from gluonlite.optimizer import sgld
from tests.cuda_host import harness
from tests.optimizer.test_kernels_host_optimizers import (  # noqa: F401 - rt: a fixture
    PUBLIC_SHAPES,
    guarded,
    numpy_and_fused_results,
    rt,
)
from tests.test_kernels_host_multi_tensor import cupy_stand_in  # noqa: F401 - a fixture

harness.require_toolchain()

RTOL, ATOL = 2e-5, 1e-6
SHAPES = [(0,), (3,), (70,), (5, 7)]  # 70: three blocks of 32 threads, the last partial
# (optimizer, options, parameter name): every kernel with and without its optional parts.
ROWS = [
    ("lamb", dict(wd=0.01, clip_gradient=0.5), "w"),
    ("lamb", dict(bias_correction=False, lower_bound=0.5, upper_bound=2.0), "w"),
    ("lars", dict(momentum=0.9, wd=0.01, eta=0.5, clip_gradient=0.5), "w"),
    ("lars", dict(eta=0.5), "w"),
    ("lars", dict(momentum=0.9, wd=0.01), "fc_bias"),  # not layer-wise: no norms launch
    ("lans", dict(wd=0.01, clip_gradient=0.5), "w"),
    ("lans", dict(lower_bound=0.5, upper_bound=2.0), "w"),
]
IDS = [f"{name}-{k}" for k, (name, _, _) in enumerate(ROWS)]


def test_every_layerwise_kernel_has_a_row_and_an_optimizer():
    assert {name for name, _, _ in ROWS} == set(_kernels._LAYERWISE_KERNELS)
    for name in _kernels._LAYERWISE_KERNELS:
        assert optimizer.create(name)._kernel == name


@pytest.mark.parametrize(
    "name, options, param, rt",
    [
        *[(*row, "shuffled") for row in ROWS],
        *[(*ROWS[0], order) for order in ("forward", "reverse")],
    ],
    ids=[*IDS, *[f"{IDS[0]}-{order}" for order in ("forward", "reverse")]],
    indirect=["rt"],
)
def test_layerwise_kernels_match_the_python_math(rt, name, options, param):
    rng = np.random.default_rng(3)
    # A large learning rate, so that an error in a step shows above the tolerance.
    opt = optimizer.create(
        name, learning_rate=0.5, rescale_grad=0.5, param_idx2name={0: param}, **options
    )
    math_fn = type(opt)._math
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    kernel = [
        tuple(guarded(rt, b) for b in opt._buffers(w, opt.create_state(0, w))) for w in weights
    ]
    reference = [tuple(b.copy() for b in bufs) for bufs in kernel]
    for _ in range(3):
        opt._update_count([0])
        for bufs, ref in zip(kernel, reference):
            hyper = opt._hypers([0], opt._get_lrs([0]), opt._get_wds([0]))[0]
            grad = guarded(rt, (2 * rng.standard_normal(bufs[0].shape)).astype(np.float32))
            saved = grad.copy()
            _kernels._layerwise_step(rt, name, bufs[0], grad, bufs[1:], **hyper)
            math_fn(grad.copy(), *ref, **hyper)
            assert grad.tobytes() == saved.tobytes(), "the gradient was modified"
            for k, (a, r) in enumerate(zip(bufs, ref)):
                np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL, err_msg=f"{name} buffer {k}")
    per_tensor = [
        f"optimizer_{kernel}<glo_{op}>"
        for kernel, op, _, _ in _kernels._LAYERWISE_KERNELS[name][1]
        if kernel != "norms" or param == "w"
    ]
    assert len(per_tensor) == {"lans": 4}.get(name, 2 if param == "w" else 1)
    assert rt.launches == per_tensor * 3 * (len(SHAPES) - 1)  # (0,): no launch


def test_lamb_trust_ratio_falls_back_to_one_for_a_zero_weight(rt):
    # ||w|| = 0 makes the ratio 0: the step is lr * u, as in the Python code.
    opt = optimizer.create("lamb", learning_rate=0.1)
    opt._update_count([0])
    hyper = opt._hypers([0], opt._get_lrs([0]), opt._get_wds([0]))[0]
    w = guarded(rt, np.zeros(5, np.float32))
    states = [guarded(rt, np.zeros(5, np.float32)) for _ in range(2)]
    grad = guarded(rt, np.arange(5, dtype=np.float32) - 2)
    ref = [w.copy(), *(s.copy() for s in states)]
    _kernels._layerwise_step(rt, "lamb", w, grad, states, **hyper)
    type(opt)._math(grad.copy(), *ref, **hyper)
    np.testing.assert_allclose(w, ref[0], rtol=RTOL, atol=ATOL)
    assert np.all(np.isfinite(w)) and np.any(w != 0)


def test_sgld_kernel_matches_the_python_math_with_the_same_noise(rt, monkeypatch):
    rng = np.random.default_rng(4)
    opt = optimizer.create("sgld", learning_rate=0.05, rescale_grad=0.5, wd=0.01, clip_gradient=0.5)
    for shape in SHAPES[1:]:
        hyper = opt._hypers([0], opt._get_lrs([0]), opt._get_wds([0]))[0]
        w = guarded(rt, rng.standard_normal(shape).astype(np.float32))
        grad = guarded(rt, (2 * rng.standard_normal(shape)).astype(np.float32))
        noise = guarded(rt, rng.standard_normal(shape).astype(np.float32))
        ref = w.copy()
        _kernels._optimizer_step(rt, "sgld", w, grad, [noise], **hyper)
        monkeypatch.setattr(sgld, "_noise", lambda weight, lr: noise.copy())
        sgld._sgld_math(grad.copy(), ref, **hyper)
        np.testing.assert_allclose(w, ref, rtol=1e-6, atol=1e-7)
    assert rt.launches == ["optimizer_step<glo_sgld>"] * 3


def test_bad_arguments_raise_before_launching(rt):
    w = guarded(rt, np.zeros(4, np.float32))
    hyper = dict(
        lr=0.1,
        wd=0.0,
        rescale_grad=1.0,
        clip_gradient=None,
        momentum=0.0,
        eta=0.1,
        epsilon=1e-8,
        layer_wise=True,
    )
    with pytest.raises(ValueError, match="no kernels for optimizer 'adam'"):
        _kernels._layerwise_step(rt, "adam", w, w.copy(), [], **hyper)
    with pytest.raises(TypeError, match="float32 only"):
        _kernels._layerwise_step(rt, "lars", w, np.zeros(4), [], **hyper)
    with pytest.raises(ValueError, match="at most 2 state arrays"):
        _kernels._layerwise_step(rt, "lamb", w, w.copy(), [w.copy()] * 3, **hyper)
    assert rt.launches == []


@pytest.mark.parametrize(
    "name, options",
    [
        ("lamb", dict(wd=0.01)),
        ("lars", dict(momentum=0.9, wd=0.01)),
        ("lans", dict(wd=0.01)),
        ("sgld", dict(wd=0.01)),
    ],
)
def test_fused_step_runs_the_kernels_and_matches_the_reference(
    cupy_stand_in, name, options, monkeypatch
):
    launches = []
    for fn in ("_layerwise_step", "_optimizer_step"):
        real = getattr(_kernels, fn)
        monkeypatch.setattr(
            _kernels,
            fn,
            lambda rt, n, *a, real=real, **k: launches.append(n) or real(rt, n, *a, **k),
        )
    results = numpy_and_fused_results(name, options)
    assert launches == [name] * 2 * len(PUBLIC_SHAPES)
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(b), a, rtol=RTOL, atol=ATOL)
