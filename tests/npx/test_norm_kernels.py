"""The GPU kernels behind npx.batch_norm, layer_norm, group_norm and instance_norm
(kernels/norm.cu) against the array-op path they replace: the same values within float32
rounding (then the storage type's rounding), the same running statistics and gradients, for
float32, float16 and bfloat16.

On a GPU (real or emulated) the default path must launch the kernels; ``norm._use_kernels``
off gives the array-op path of ``_normalize``. On the CPU both are the NumPy path, so there
the test checks that switching the flag changes nothing.
"""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite import _kernels, autograd
from gluonlite.npx import norm
from tests.helpers import with_bfloat16

DTYPES = with_bfloat16(["float32", "float16"])
# Relative to the largest magnitude: float32 rounding, or one unit of the 16-bit storage.
RTOL = {"float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def _host(a):
    return None if a is None else a.asnumpy().astype(numpy.float64)


def _assert_close(got, want, dtype, what):
    got, want = _host(got), _host(want)
    assert got.shape == want.shape, what
    scale = max(numpy.abs(want).max(), 1e-30) if want.size else 1
    error = numpy.abs(got - want).max() / scale if want.size else 0
    assert error <= RTOL[dtype], f"{what}: relative error {error:.3g}"


def _spy(monkeypatch, name):
    calls = []
    real = getattr(_kernels, name)
    monkeypatch.setattr(_kernels, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    return calls


def _batch_norm_run(
    device,
    dtype,
    shape,
    axis,
    fix_gamma,
    use_global,
    training,
    kernels,
    monkeypatch,
    param_dtype="float32",
):
    rng = numpy.random.default_rng(3)
    c = shape[axis]
    x = mx.np.array(rng.standard_normal(shape) * 2 + 3, device=device).astype(dtype)
    gamma = mx.np.array(rng.standard_normal(c) + 1, device=device).astype(param_dtype)
    beta = mx.np.array(rng.standard_normal(c), device=device).astype(param_dtype)
    rmean = mx.np.array(rng.standard_normal(c), device=device).astype(param_dtype)
    rvar = mx.np.array(rng.random(c) + 0.5, device=device).astype(param_dtype)
    dy = mx.np.array(rng.standard_normal(shape), device=device).astype(dtype)
    for a in (x, gamma, beta):
        a.attach_grad()
    monkeypatch.setattr(norm, "_use_kernels", kernels)
    with autograd.record(train_mode=training):
        y, mean, var = mx.npx.batch_norm(
            x,
            gamma,
            beta,
            rmean,
            rvar,
            eps=1e-3,
            momentum=0.8,
            fix_gamma=fix_gamma,
            use_global_stats=use_global,
            output_mean_var=True,
            axis=axis,
        )
    y.backward(dy)
    return y, mean, var, rmean, rvar, x.grad, gamma.grad, beta.grad


# (shape, axis, fix_gamma, use_global_stats, training)
CASES = [
    ((4, 3, 5, 5), 1, False, False, True),
    ((4, 3, 5, 5), 1, True, False, True),
    ((4, 3, 5, 5), 1, False, True, True),
    ((4, 3, 5, 5), 1, False, False, False),
    ((9, 6), 1, False, False, True),
    ((2, 5, 3, 4), -1, False, False, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis, fix_gamma, use_global, training", CASES)
def test_batch_norm_kernels_match_the_array_op_path(
    device, dtype, shape, axis, fix_gamma, use_global, training, monkeypatch
):
    forward = _spy(monkeypatch, "batch_norm_forward")
    backward = _spy(monkeypatch, "batch_norm_backward")
    args = (device, dtype, shape, axis, fix_gamma, use_global, training)
    got = _batch_norm_run(*args, True, monkeypatch)
    launched = 1 if device.device_type == "gpu" else 0
    assert len(forward) == len(backward) == launched, "the kernels serve GPUs (only)"
    want = _batch_norm_run(*args, False, monkeypatch)
    assert len(forward) == launched, "the flag turns the kernels off"
    names = ("y", "mean", "var", "running mean", "running var", "dx", "dgamma", "dbeta")
    for g, w, what in zip(got, want, names):
        assert g.dtype == w.dtype and g.device == w.device, what
        _assert_close(g, w, dtype if what in ("y", "dx") else "float32", what)


@pytest.mark.parametrize("param_dtype", ["float16", "float64"])
def test_batch_norm_kernels_with_parameters_of_another_dtype(device, param_dtype, monkeypatch):
    # Running statistics that the kernel cannot update in place (not float32) are updated
    # by the array ops after it; gradients come back in the parameters' dtype.
    args = (device, "float32", (6, 4, 3), 1, False, False, True)
    got = _batch_norm_run(*args, True, monkeypatch, param_dtype)
    want = _batch_norm_run(*args, False, monkeypatch, param_dtype)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        _assert_close(g, w, "float16" if param_dtype == "float16" else "float32", "value")


def _layer_norm_run(device, dtype, shape, affine, kernels, monkeypatch, param_dtype="float32"):
    rng = numpy.random.default_rng(5)
    d = shape[-1]
    x = mx.np.array(rng.standard_normal(shape) * 2 + 3, device=device).astype(dtype)
    gamma = (
        mx.np.array(rng.standard_normal(d) + 1, device=device).astype(param_dtype)
        if affine
        else None
    )
    beta = (
        mx.np.array(rng.standard_normal(d), device=device).astype(param_dtype) if affine else None
    )
    dy = mx.np.array(rng.standard_normal(shape), device=device).astype(dtype)
    for a in (x, gamma, beta):
        if a is not None:
            a.attach_grad()
    monkeypatch.setattr(norm, "_use_kernels", kernels)
    with autograd.record():
        y, mean, var = mx.npx.layer_norm(x, gamma, beta, axis=-1, eps=1e-5, output_mean_var=True)
    y.backward(dy)
    return (y, mean, var, x.grad) + ((gamma.grad, beta.grad) if affine else ())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, affine", [((4, 3, 10), True), ((6, 70), True), ((5, 9), False)])
def test_layer_norm_kernels_match_the_array_op_path(device, dtype, shape, affine, monkeypatch):
    forward = _spy(monkeypatch, "layer_norm_forward")
    backward = _spy(monkeypatch, "layer_norm_backward")
    got = _layer_norm_run(device, dtype, shape, affine, True, monkeypatch)
    launched = 1 if device.device_type == "gpu" else 0
    assert len(forward) == len(backward) == launched, "the kernels serve GPUs (only)"
    want = _layer_norm_run(device, dtype, shape, affine, False, monkeypatch)
    assert len(forward) == launched, "the flag turns the kernels off"
    for g, w, what in zip(got, want, ("y", "mean", "var", "dx", "dgamma", "dbeta")):
        assert g.dtype == w.dtype and g.shape == w.shape and g.device == w.device, what
        _assert_close(g, w, dtype if what in ("y", "dx") else "float32", what)


def test_layer_norm_over_another_axis_keeps_the_array_ops(device, monkeypatch):
    forward = _spy(monkeypatch, "layer_norm_forward")
    x = mx.np.ones((3, 4), device=device)
    mx.npx.layer_norm(x, mx.np.ones((3,), device=device), mx.np.zeros((3,), device=device), axis=0)
    assert forward == []


def _group_norm_run(device, dtype, shape, groups, affine, kernels, monkeypatch):
    """groups None: npx.instance_norm (which returns no statistics)."""
    rng = numpy.random.default_rng(6)
    c = shape[1]
    x = mx.np.array(rng.standard_normal(shape) * 2 + 3, device=device).astype(dtype)
    gamma = mx.np.array(rng.standard_normal(c) + 1, device=device) if affine else None
    beta = mx.np.array(rng.standard_normal(c), device=device) if affine else None
    dy = mx.np.array(rng.standard_normal(shape), device=device).astype(dtype)
    for a in (x, gamma, beta):
        if a is not None:
            a.attach_grad()
    monkeypatch.setattr(norm, "_use_kernels", kernels)
    with autograd.record():
        if groups is None:
            outs = (mx.npx.instance_norm(x, gamma, beta, eps=1e-5),)
        else:
            outs = mx.npx.group_norm(
                x, gamma, beta, num_groups=groups, eps=1e-5, output_mean_var=True
            )
    outs[0].backward(dy)
    return tuple(outs) + (x.grad,) + ((gamma.grad, beta.grad) if affine else ())


# (shape, groups, affine); groups None is instance_norm
GN_CASES = [((2, 4, 3, 5), 2, True), ((6, 9), 3, False), ((3, 4, 7), None, True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, groups, affine", GN_CASES)
def test_group_and_instance_norm_kernels_match_the_array_op_path(
    device, dtype, shape, groups, affine, monkeypatch
):
    forward = _spy(monkeypatch, "group_norm_forward")
    backward = _spy(monkeypatch, "group_norm_backward")
    got = _group_norm_run(device, dtype, shape, groups, affine, True, monkeypatch)
    launched = 1 if device.device_type == "gpu" else 0
    assert len(forward) == len(backward) == launched, "the kernels serve GPUs (only)"
    want = _group_norm_run(device, dtype, shape, groups, affine, False, monkeypatch)
    assert len(forward) == launched, "the flag turns the kernels off"
    names = ("y", "mean", "var") if groups is not None else ("y",)
    for g, w, what in zip(got, want, names + ("dx", "dgamma", "dbeta")):
        assert g.dtype == w.dtype and g.shape == w.shape and g.device == w.device, what
        _assert_close(g, w, dtype if what in ("y", "dx") else "float32", what)


# create_graph through the kernels: their recorded gradient is the array-op path's graph,
# so a gradient penalty through the normalisations on a GPU equals the array-op path's.
@pytest.mark.parametrize(
    "op, training",
    [
        ("batch_norm", True),
        ("batch_norm", False),
        ("layer_norm", True),
        ("group_norm", True),
        ("instance_norm", True),
    ],
)
def test_second_order_through_the_kernels_matches_the_array_op_path(
    device, op, training, monkeypatch
):
    rng = numpy.random.default_rng(5)
    shape = (4, 4, 5) if op == "group_norm" else (4, 3, 5)
    c = shape[-1] if op == "layer_norm" else shape[1]
    host = {k: rng.standard_normal(s) for k, s in (("x", shape), ("gamma", c), ("beta", c))}

    def penalty_grads(kernels):
        monkeypatch.setattr(norm, "_use_kernels", kernels)
        x, gamma, beta = (
            mx.np.array(host[k], device=device, dtype="float32") for k in ("x", "gamma", "beta")
        )
        for a in (x, gamma, beta):
            a.attach_grad()
        with autograd.record(train_mode=training):
            if op == "batch_norm":
                rmean = mx.np.zeros(c, device=device)
                rvar = mx.np.ones(c, device=device)
                y = mx.npx.batch_norm(x, gamma, beta, rmean, rvar, fix_gamma=False)
            elif op == "group_norm":
                y = mx.npx.group_norm(x, gamma, beta, num_groups=2)
            elif op == "instance_norm":
                y = mx.npx.instance_norm(x, gamma, beta)
            else:
                y = mx.npx.layer_norm(x, gamma, beta)
            gx = autograd.grad((y * y * y).sum(), [x], create_graph=True)
            gx = gx[0] if isinstance(gx, (list, tuple)) else gx
            loss = (gx * gx).sum()
        loss.backward()
        return x.grad, gamma.grad

    got, want = penalty_grads(True), penalty_grads(False)
    for g, w, what in zip(got, want, ("x", "gamma")):
        _assert_close(g, w, "float32", f"{op} second-order gradient of {what}")
