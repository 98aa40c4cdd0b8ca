"""kernels/multi_tensor.cu on the CPU (tests/cuda_host), through gluonlite._kernels, against
the optimizer's reference path (``_single_tensor_sgd`` / ``_single_tensor_adam`` on NumPy
copies), for many tensors of awkward sizes in one launch.

The update is in place, so instead of NaN-poisoned outputs: every weight and state is
allocated inside the harness's guard zones (an out-of-bounds store shows there), every
element must end where the reference says (an element the kernel skipped keeps its old value,
far outside the tolerance), and gradients must keep their bytes. Each launch runs under
forward, reverse and shuffled thread (and block) orders.

Tolerance, float32: |kernel - reference| <= 1e-6 |reference| + 1e-7 per element. The kernel
rounds after every operation in the reference's order, so on this CPU it usually agrees to
the bit; the slack is for nvcc contracting a * b + c into one FMA (one rounding fewer, a few
ulps after several dependent operations), so that the same checks hold on a GPU. A dropped or
misplaced term (weight decay, rescale, clipping, a momentum or moment update) moves elements
by 1e-3 relative or more at the hyper-parameters used here.
"""

import sys

import numpy as np
import pytest

from gluonlite import _cupy, _kernels, optimizer
from gluonlite.optimizer import SGD, Adam, RowSparseGrad
from tests.cuda_host import fake_cupy, harness

harness.require_toolchain()

RTOL, ATOL = 1e-6, 1e-7
CHUNK = 1024  # the chunk size these tests run with, so that sizes below straddle chunks
# Element counts 0, 1, 3, one short of a chunk, a chunk, one past it, two chunks and one
# past four; several shapes, a 0-d one and empty ones among them.
SHAPES = [(0,), (), (3,), (3, 341), (1024,), (1025,), (2, 0, 3), (4097,), (2, 1024), (5, 1)]


@pytest.fixture(params=tuple(harness.ORDERS))
def rt(request, monkeypatch):
    monkeypatch.setattr(_kernels, "_MULTI_TENSOR_CHUNK", CHUNK)
    runtime = harness.HostRuntime(order=request.param, seed=5, sanitize=harness.sanitizer())
    yield runtime
    runtime.check_guards()


def guarded(rt, values):
    """``values`` copied into a float32 array inside the runtime's guard zones."""
    array = rt.empty(values.shape, np.float32)
    array[...] = values
    return array


def make_tensors(rt, rng, shapes, states: int, positive_last=False):
    """(weights, states lists) in guard zones, with their NumPy reference copies."""
    arrays = [[guarded(rt, rng.standard_normal(s).astype(np.float32)) for s in shapes]]
    for k in range(states):
        column = []
        for s in shapes:
            values = rng.standard_normal(s).astype(np.float32)
            if positive_last and k == states - 1:  # Adam's variance: non-negative
                values = np.abs(values)
            column.append(guarded(rt, values))
        arrays.append(column)
    reference = [[a.copy() for a in column] for column in arrays]
    return arrays, reference


def make_grads(rt, rng, shapes):
    # Scaled so that a clip bound below 1 clips a good share of the elements.
    grads = [guarded(rt, (2 * rng.standard_normal(s)).astype(np.float32)) for s in shapes]
    return grads, [g.copy() for g in grads]


def assert_matches(actual, reference, what):
    for t, (a, r) in enumerate(zip(actual, reference)):
        assert a.shape == r.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL, err_msg=f"{what} of tensor {t}")


def assert_untouched(grads, saved):
    for t, (g, s) in enumerate(zip(grads, saved)):
        assert g.tobytes() == s.tobytes(), f"gradient of tensor {t} was modified"


def per_tensor(rng, n, low, high):
    values = rng.uniform(low, high, n)
    return [float(v) for v in values]


SGD_CASES = {
    "plain": dict(momentum=None, rescale_grad=1.0, clip_gradient=None, wd=(0.01, 0.2)),
    "plain_clip_rescale": dict(momentum=None, rescale_grad=0.5, clip_gradient=0.6, wd=(0.01, 0.2)),
    "momentum": dict(momentum=0.9, rescale_grad=1.0, clip_gradient=None, wd=(0.01, 0.2)),
    "momentum_clip_rescale": dict(
        momentum=0.9, rescale_grad=0.25, clip_gradient=0.3, wd=(0.01, 0.2)
    ),
    "momentum_no_wd": dict(momentum=0.5, rescale_grad=1.5, clip_gradient=1.0, wd=(0.0, 0.0)),
}


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_reference(rt, case):
    c = SGD_CASES[case]
    rng = np.random.default_rng(len(case))
    has_mom = c["momentum"] is not None
    (arrays, reference) = make_tensors(rt, rng, SHAPES, 1 if has_mom else 0)
    n = len(SHAPES)
    for step in range(3):
        lrs = per_tensor(rng, n, 0.05, 0.5)
        wds = per_tensor(rng, n, *c["wd"])
        wds[2] = 0.0  # one tensor without weight decay among ones with it
        grads, saved = make_grads(rt, rng, SHAPES)
        rt.launches.clear()
        _kernels._multi_tensor_sgd(
            rt,
            arrays[0],
            grads,
            arrays[1] if has_mom else None,
            lrs,
            wds,
            momentum=c["momentum"] or 0.0,
            rescale_grad=c["rescale_grad"],
            clip_gradient=c["clip_gradient"],
        )
        assert rt.launches == [f"multi_tensor_sgd<{str(has_mom).lower()}>"]
        optimizer._single_tensor_sgd(
            reference[0],
            [s.copy() for s in saved],
            reference[1] if has_mom else [None] * n,
            lrs=lrs,
            wds=wds,
            momentum=c["momentum"] or 0.0,
            rescale_grad=c["rescale_grad"],
            clip_gradient=c["clip_gradient"],
            lazy_update=False,
        )
        assert_untouched(grads, saved)
        assert_matches(arrays[0], reference[0], f"step {step}: weight")
        if has_mom:
            assert_matches(arrays[1], reference[1], f"step {step}: momentum")


ADAM_CASES = {
    "plain": dict(rescale_grad=1.0, clip_gradient=None, wd=(0.0, 0.0)),
    "wd": dict(rescale_grad=1.0, clip_gradient=None, wd=(0.01, 0.3)),
    "wd_clip_rescale": dict(rescale_grad=0.5, clip_gradient=0.4, wd=(0.01, 0.3)),
    "clip": dict(rescale_grad=2.0, clip_gradient=1.0, wd=(0.0, 0.0)),
}


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_matches_reference(rt, case):
    c = ADAM_CASES[case]
    beta1, beta2, epsilon = 0.8, 0.95, 1e-3  # far from the defaults: swapped ones show
    rng = np.random.default_rng(100 + len(case))
    arrays, reference = make_tensors(rt, rng, SHAPES, 2, positive_last=True)
    n = len(SHAPES)
    for step in range(3):
        lrs = per_tensor(rng, n, 0.01, 0.2)
        wds = per_tensor(rng, n, *c["wd"])
        # Tensors at different update counts, so their bias corrections differ.
        steps = [step + 1 + t % 3 for t in range(n)]
        grads, saved = make_grads(rt, rng, SHAPES)
        rt.launches.clear()
        corrected = [optimizer._bias_corrected_lr(lr, t, beta1, beta2) for lr, t in zip(lrs, steps)]
        _kernels._multi_tensor_adam(
            rt,
            arrays[0],
            grads,
            arrays[1],
            arrays[2],
            corrected,
            wds,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            rescale_grad=c["rescale_grad"],
            clip_gradient=c["clip_gradient"],
        )
        assert rt.launches == ["multi_tensor_adam"]
        optimizer._single_tensor_adam(
            reference[0],
            [s.copy() for s in saved],
            reference[1],
            reference[2],
            lrs=lrs,
            wds=wds,
            steps=steps,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            rescale_grad=c["rescale_grad"],
            clip_gradient=c["clip_gradient"],
            lazy_update=False,
        )
        assert_untouched(grads, saved)
        for k, what in enumerate(("weight", "mean", "variance")):
            assert_matches(arrays[k], reference[k], f"step {step}: {what}")


def test_grid_stride_loop_over_chunks(rt, monkeypatch):
    # Two blocks for 23 chunks of 64 elements: each block takes many chunks of several
    # tensors, and the tensors' tails end mid-chunk.
    monkeypatch.setattr(_kernels, "_MAX_STRIDE_BLOCKS", 2)
    monkeypatch.setattr(_kernels, "_MULTI_TENSOR_CHUNK", 64)
    shapes = [(300,), (64,), (1,), (65,), (129, 5)]
    rng = np.random.default_rng(9)
    arrays, reference = make_tensors(rt, rng, shapes, 1)
    grads, saved = make_grads(rt, rng, shapes)
    lrs, wds = per_tensor(rng, 5, 0.1, 0.3), per_tensor(rng, 5, 0.05, 0.1)
    hyper = dict(momentum=0.7, rescale_grad=0.5, clip_gradient=0.8)
    _kernels._multi_tensor_sgd(rt, arrays[0], grads, arrays[1], lrs, wds, **hyper)
    optimizer._single_tensor_sgd(
        reference[0], saved, reference[1], lrs=lrs, wds=wds, lazy_update=False, **hyper
    )
    assert_untouched(grads, saved)
    assert_matches(arrays[0], reference[0], "weight")
    assert_matches(arrays[1], reference[1], "momentum")


def test_non_contiguous_gradient_is_read_not_written(rt):
    rng = np.random.default_rng(12)
    arrays, reference = make_tensors(rt, rng, [(6, 5)], 0)
    wide = guarded(rt, rng.standard_normal((6, 10)).astype(np.float32))
    grad = wide[:, ::2]  # strided view: the kernel reads a contiguous copy
    saved = wide.copy()
    _kernels._multi_tensor_sgd(
        rt,
        arrays[0],
        [grad],
        None,
        [0.3],
        [0.1],
        momentum=0.0,
        rescale_grad=1.0,
        clip_gradient=None,
    )
    assert wide.tobytes() == saved.tobytes()
    optimizer._single_tensor_sgd(
        reference[0],
        [saved[:, ::2].copy()],
        [None],
        lrs=[0.3],
        wds=[0.1],
        momentum=0.0,
        rescale_grad=1.0,
        clip_gradient=None,
        lazy_update=False,
    )
    assert_matches(arrays[0], reference[0], "weight")


def test_only_empty_tensors_launch_nothing(rt):
    weights = [np.zeros((0,), np.float32), np.zeros((3, 0), np.float32)]
    _kernels._multi_tensor_sgd(
        rt,
        weights,
        [w.copy() for w in weights],
        None,
        [0.1, 0.1],
        [0.0, 0.0],
        momentum=0.0,
        rescale_grad=1.0,
        clip_gradient=None,
    )
    _kernels._multi_tensor_sgd(
        rt, [], [], None, [], [], momentum=0.0, rescale_grad=1.0, clip_gradient=None
    )
    assert rt.launches == []


def test_argument_errors():
    rt = harness.HostRuntime()
    w = np.ones((4, 3), np.float32)
    hyper = dict(momentum=0.9, rescale_grad=1.0, clip_gradient=None)
    with pytest.raises(
        TypeError, match="the weight of tensor 0 is float64; the fused kernels take float32 only"
    ):
        _kernels._multi_tensor_sgd(
            rt, [w.astype(np.float64)], [w.astype(np.float64)], None, [0.1], [0.0], **hyper
        )
    with pytest.raises(TypeError, match="the state 0 of tensor 1 is not C-contiguous"):
        _kernels._multi_tensor_sgd(
            rt, [w, w.T.copy()], [w, w.T.copy()], [w, w.T], [0.1, 0.1], [0.0, 0.0], **hyper
        )
    with pytest.raises(
        ValueError, match="the gradient of tensor 0 has shape \\(3, 4\\), its weight \\(4, 3\\)"
    ):
        _kernels._multi_tensor_sgd(rt, [w], [w.T.copy()], None, [0.1], [0.0], **hyper)
    with pytest.raises(ValueError, match="1 weights but lists of lengths \\[1, 1\\], 2 lrs"):
        _kernels._multi_tensor_sgd(rt, [w], [w], None, [0.1, 0.2], [0.0], **hyper)
    assert rt.launches == []


# ------------------------------------- the optimizers' public path through a stand-in CuPy


@pytest.fixture
def cupy_stand_in(monkeypatch):
    """``cupy`` replaced by cuda_host.fake_cupy, whose arrays the optimizer takes for CuPy's;
    gluonlite's CuPy-side caches emptied, the fused kernels on."""
    fake = fake_cupy.module(order="shuffled", sanitize=harness.sanitizer())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    # Under GLUONLITE_EMULATE_GPUS, _cupy.module() would hand out the emulator instead.
    monkeypatch.setattr(_cupy, "_EMULATED_GPUS", None)
    monkeypatch.setattr(
        optimizer._foreach, "is_gpu_array", lambda a: isinstance(a, fake_cupy.Array)
    )
    monkeypatch.delenv(optimizer.FUSED_OPTIMIZER_ENV, raising=False)
    monkeypatch.setattr(_kernels, "_MULTI_TENSOR_CHUNK", CHUNK)
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()
    yield fake
    _kernels._runtime.cache_clear()
    _kernels._load_module.cache_clear()


# float32 tensors (dense gradients), then a float64 one and a float32 one with a row-sparse
# gradient, which stay on the bucketed path.
PUBLIC_SHAPES = [(3, 4), (0,), (1025,), (), (7, 2, 3), (2048,)]
FLOAT64, SPARSE = len(PUBLIC_SHAPES), len(PUBLIC_SHAPES) + 1


def public_inputs(seed):
    rng = np.random.default_rng(seed)
    # np.array, not astype: a 0-d draw is a NumPy scalar, which cannot be updated in place.
    weights = [np.array(rng.standard_normal(s), np.float32) for s in PUBLIC_SHAPES]
    weights += [rng.standard_normal(5), np.array(rng.standard_normal((6, 2)), np.float32)]
    return weights


def public_grads(rng, weights):
    grads = []
    for i, w in enumerate(weights):
        if i == SPARSE:
            rows = np.array([0, 4], np.int64)
            grads.append(RowSparseGrad(rows, rng.standard_normal((2, 2)).astype(w.dtype)))
        else:
            grads.append(np.array(2 * rng.standard_normal(w.shape), w.dtype))
    return grads


def to_fake(x):
    if isinstance(x, RowSparseGrad):
        return RowSparseGrad(fake_cupy.as_array(x.indices), fake_cupy.as_array(x.data))
    return fake_cupy.as_array(x.copy())


OPTIMIZERS = {
    "sgd": lambda fused: SGD(learning_rate=0.2, wd=0.05, clip_gradient=0.7, use_fused_step=fused),
    "sgd_momentum": lambda fused: SGD(
        learning_rate=0.1, momentum=0.9, wd=0.02, rescale_grad=0.5, use_fused_step=fused
    ),
    "adam": lambda fused: Adam(
        learning_rate=0.05, wd=0.02, clip_gradient=1.5, rescale_grad=0.5, use_fused_step=fused
    ),
}
FUSED_LAUNCH = {
    "sgd": "multi_tensor_sgd<false>",
    "sgd_momentum": "multi_tensor_sgd<true>",
    "adam": "multi_tensor_adam",
}


def run_steps(opt, weights, grads_per_step, wrap):
    """Three updates with different lr/wd multipliers, tensor 2 joining late (its Adam step
    count then differs), on arrays made by ``wrap``; returns weights and states."""
    opt.set_lr_mult({0: 0.5, 4: 2.0})
    opt.set_wd_mult({1: 0.0, 5: 3.0})
    weights = [wrap(w) for w in weights]
    indices = list(range(len(weights)))
    states = [opt.create_state(i, w) for i, w in zip(indices, weights)]
    for step, grads in enumerate(grads_per_step):
        grads = [wrap(g) for g in grads]
        saved = [np.array(g.data if isinstance(g, RowSparseGrad) else g) for g in grads]
        active = [i for i in indices if i != 2 or step >= 1]
        opt.update(
            active,
            [weights[i] for i in active],
            [grads[i] for i in active],
            [states[i] for i in active],
        )
        for g, s in zip(grads, saved):
            assert (
                np.array(g.data if isinstance(g, RowSparseGrad) else g).tobytes() == s.tobytes()
            ), "a gradient was modified"
    return weights, states


def flat_states(states):
    out = []
    for s in states:
        out += list(s) if isinstance(s, tuple) else ([] if s is None else [s])
    return out


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_public_update_runs_one_fused_launch_and_matches_the_reference(cupy_stand_in, name):
    weights = public_inputs(1)
    rng = np.random.default_rng(2)
    grads_per_step = [public_grads(rng, weights) for _ in range(3)]
    w_fused, s_fused = run_steps(OPTIMIZERS[name](True), weights, grads_per_step, to_fake)
    # One launch per update for all dense float32 tensors, whatever their lr and wd (four
    # lr/wd combinations here); float64 and the row-sparse gradient took the other path.
    assert cupy_stand_in.launches == [FUSED_LAUNCH[name]] * 3
    w_ref, s_ref = run_steps(
        OPTIMIZERS[name](False),
        weights,
        grads_per_step,
        lambda x: x if isinstance(x, RowSparseGrad) else x.copy(),
    )
    for i, (a, r) in enumerate(zip(w_fused + flat_states(s_fused), w_ref + flat_states(s_ref))):
        assert isinstance(a, fake_cupy.Array) and a.dtype == r.dtype, i
        np.testing.assert_allclose(np.asarray(a), r, rtol=RTOL, atol=ATOL, err_msg=str(i))


@pytest.mark.parametrize("name", ["sgd_momentum", "adam"])
def test_switch_turns_the_fused_kernel_off(cupy_stand_in, monkeypatch, name):
    monkeypatch.setenv(optimizer.FUSED_OPTIMIZER_ENV, "0")
    weights = public_inputs(3)
    rng = np.random.default_rng(4)
    grads_per_step = [public_grads(rng, weights) for _ in range(2)]
    w_off, _ = run_steps(OPTIMIZERS[name](True), weights, grads_per_step, to_fake)
    assert cupy_stand_in.launches == []
    monkeypatch.setenv(optimizer.FUSED_OPTIMIZER_ENV, "1")
    w_on, _ = run_steps(OPTIMIZERS[name](True), weights, grads_per_step, to_fake)
    assert cupy_stand_in.launches == [FUSED_LAUNCH[name]] * 2
    for a, b in zip(w_off, w_on):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)


def test_switch_rejects_other_values(cupy_stand_in, monkeypatch):
    monkeypatch.setenv(optimizer.FUSED_OPTIMIZER_ENV, "off")
    opt = OPTIMIZERS["sgd"](True)
    w = fake_cupy.as_array(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="GLUONLITE_FUSED_OPTIMIZER='off'; expected '1'"):
        opt.update([0], [w], [fake_cupy.as_array(np.ones(3, np.float32))], [opt.create_state(0, w)])


def test_non_contiguous_weight_stays_on_the_bucketed_path(cupy_stand_in):
    opt = OPTIMIZERS["sgd"](True)
    base = fake_cupy.as_array(np.ones((4, 6), np.float32))
    weights = [base[:, ::2], fake_cupy.as_array(np.ones(5, np.float32))]
    grads = [fake_cupy.as_array(np.full(w.shape, 0.5, np.float32)) for w in weights]
    opt.update([0, 1], weights, grads, [None, None])
    # Only the contiguous weight went through the kernel; both moved alike.
    assert cupy_stand_in.launches == ["multi_tensor_sgd<false>"]
    expected = np.float32(1) - np.float32(0.2) * (np.float32(0.5) + np.float32(0.05))
    np.testing.assert_allclose(np.asarray(base[:, ::2]), expected, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(weights[1]), expected, rtol=RTOL)
    np.testing.assert_array_equal(np.asarray(base[:, 1::2]), 1)
