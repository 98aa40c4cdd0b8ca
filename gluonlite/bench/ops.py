"""Suite ``ops``: per-call time of common small-array ops, outside and inside ``record()``.

Each op is gluonlite's wrapper around one NumPy (cpu) or CuPy (gpu) call, so this suite
measures what the wrapper and the autograd tape add. Cases: ~20 ops on 64x64 float32
arrays (``fully_connected`` on a 1x64 input), in two modes:

- ``call``: the op alone. Peer: the same expression on raw NumPy/CuPy arrays.
- ``record``: ``with autograd.record(): y = op(...)`` then ``y.backward()`` with the inputs'
  gradients attached. Peer: MXNet 1.9.1 doing the same (CPU, where ``.venv-mxnet``
  exists); for ``fully_connected`` also NumPy/CuPy computing the forward and the three
  backward products by hand.

In ``call`` mode MXNet 1.9.1 (``mx.np``/``mx.npx`` under ``set_np``) is a peer as well. Its
side runs in the MXNet runner (``benchmarks/mxnet_workloads.py``), which evaluates the very
same expression strings of :data:`OPS` with MXNet's ``np``/``npx``; timed the same way
(:mod:`gluonlite.bench.timing`, its clock waiting for MXNet's asynchronous engine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from .. import autograd, np as mnp, npx as mnpx
from ..ndarray import ndarray
from . import _mxnet_runner as mxnet
from .report import Metric
from .targets import Target, clock_for
from .timing import rotations
from .workload import Builder, Skip, Spec, Workload

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "OPS",
    "MODES",
    "specs",
    "describe",
    "implementations",
    "inputs_for",
]

NAME = "ops"
TITLE = "per-call time of small-array ops (64x64 float32), outside and inside record()"
METRIC = Metric("us/call", 1e-6, rate=False)
SIZE_LABEL = None  # one size: nothing to plot against
MODES = ("call", "record")

_N = 64
_F = ("float32",)
_SQ, _ROW = [_N, _N], [_N]
# label -> (inputs as (shape, dtype), expression in np/npx names, NumPy expression).
# The first expression runs in gluonlite (np = mx.np, npx = mx.npx) and, unchanged, in
# MXNet 1.9.1; the second on raw NumPy/CuPy arrays (xp).
OPS = {
    "a + b": (((_SQ, "float32"), (_SQ, "float32")), "a + b", "a + b"),
    "a * b": (((_SQ, "float32"), (_SQ, "float32")), "a * b", "a * b"),
    "a + row (broadcast)": (((_SQ, "float32"), (_ROW, "float32")), "a + b", "a + b"),
    "a * 2.0": (((_SQ, "float32"),), "a * 2.0", "a * 2.0"),
    "exp": (((_SQ, "float32"),), "np.exp(a)", "xp.exp(a)"),
    "tanh": (((_SQ, "float32"),), "np.tanh(a)", "xp.tanh(a)"),
    "maximum": (((_SQ, "float32"), (_SQ, "float32")), "np.maximum(a, b)", "xp.maximum(a, b)"),
    "sum": (((_SQ, "float32"),), "a.sum()", "a.sum()"),
    "sum(axis=1)": (((_SQ, "float32"),), "a.sum(axis=1)", "a.sum(axis=1)"),
    "mean": (((_SQ, "float32"),), "a.mean()", "a.mean()"),
    "max(axis=0)": (((_SQ, "float32"),), "a.max(axis=0)", "a.max(axis=0)"),
    "a[3]": (((_SQ, "float32"),), "a[3]", "a[3]"),
    "a[1:9]": (((_SQ, "float32"),), "a[1:9]", "a[1:9]"),
    "a[int array]": (((_SQ, "float32"), ([16], "int64")), "a[b]", "a[b]"),
    "reshape(-1)": (((_SQ, "float32"),), "a.reshape(-1)", "a.reshape(-1)"),
    "transpose": (((_SQ, "float32"),), "a.T", "a.T"),
    "concatenate": (
        ((_SQ, "float32"), (_SQ, "float32")),
        "np.concatenate([a, b])",
        "xp.concatenate([a, b])",
    ),
    "matmul 64x64": (((_SQ, "float32"), (_SQ, "float32")), "np.matmul(a, b)", "xp.matmul(a, b)"),
    "softmax": (
        ((_SQ, "float32"),),
        "npx.softmax(a)",
        "xp.exp(a - a.max(-1, keepdims=True)) / "
        "xp.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)",
    ),
    "log_softmax": (
        ((_SQ, "float32"),),
        "npx.log_softmax(a)",
        "a - a.max(-1, keepdims=True) - xp.log(xp.exp("
        "a - a.max(-1, keepdims=True)).sum(-1, keepdims=True))",
    ),
    "relu": (((_SQ, "float32"),), "npx.activation(a, act_type='relu')", "xp.maximum(a, 0)"),
    "sigmoid": (
        ((_SQ, "float32"),),
        "npx.activation(a, act_type='sigmoid')",
        "1 / (1 + xp.exp(-a))",
    ),
    "fully_connected 1x64": (
        (([1, _N], "float32"), (_SQ, "float32"), (_ROW, "float32")),
        "npx.fully_connected(a, b, c, num_hidden=64, no_bias=False)",
        "a @ b.T + c",
    ),
}
# The same forward and backward by hand (dy = ones, as backward() uses): the 0.7x target.
_FC_TRAIN = "_fc_train(a, b, c)"


def specs(target: Target, quick: bool) -> list[Spec]:
    names = ["a + b", "sum", "a[1:9]", "fully_connected 1x64"] if quick else list(OPS)
    return [
        {
            "op": name,
            "mode": mode,
            "inputs": [list(s) for s in OPS[name][0]],
            "expr": OPS[name][1],
            "quick": quick,
        }
        for mode in MODES
        for name in names
    ]


def describe(spec: Spec) -> tuple[str, str, float]:
    return f"{spec['op']:<22} {spec['mode']}", spec["mode"], 1.0


def inputs_for(spec: Spec) -> list[tuple[numpy.ndarray[Any, Any], ...]]:
    """Input sets of host arrays, the same values for every implementation (and MXNet's
    runner draws them the same way: seed 0, in order)."""
    rng = numpy.random.default_rng(0)
    per_set = sum(4 * int(numpy.prod(shape)) for shape, _ in spec["inputs"])
    sets = []
    for _ in range(rotations(per_set)):
        sets.append(
            tuple(
                rng.integers(0, _N, shape).astype(dtype)
                if dtype.startswith("int")
                else rng.standard_normal(shape).astype(dtype)
                for shape, dtype in spec["inputs"]
            )
        )
    return sets


def _compile(expr: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    # eval of our own table's expressions (OPS), not of input.
    fn: Callable[..., Any] = eval(f"lambda a, b=None, c=None: {expr}", dict(namespace))  # noqa: S307
    return fn


def _gluonlite(spec: Spec, target: Target) -> Workload:
    device = target.primary
    fn = _compile(spec["expr"], {"np": mnp, "npx": mnpx})
    sets = [tuple(mnp.array(a, dtype=a.dtype, device=device) for a in s) for s in inputs_for(spec)]
    if spec["mode"] == "call":
        return Workload(fn, sets, 1.0, clock_for([device]))
    for s in sets:
        for a in s:
            if a.dtype.kind == "f":
                a.attach_grad()
    record = autograd.record

    def train(*args: ndarray) -> None:
        with record():
            y = fn(*args)
        y.backward()

    return Workload(train, sets, 1.0, clock_for([device]))


def _fc_train(xp: Any) -> Callable[[Any, Any, Any], tuple[Any, ...]]:
    def train(a: Any, b: Any, c: Any) -> tuple[Any, ...]:
        y = a @ b.T + c
        dy = xp.ones(y.shape, dtype=y.dtype)
        return y, dy @ b, dy.T @ a, dy.sum(axis=0)

    return train


def _array_library(spec: Spec, target: Target) -> Workload:
    xp: Any
    if target.kind == "cpu":
        xp = numpy
    else:
        import cupy  # run_case makes the target's GPU current

        xp = cupy
    if spec["mode"] == "record":
        if spec["op"] != "fully_connected 1x64":
            raise Skip("NumPy has no tape: only fully_connected's backward is written out")
        fn = _compile(_FC_TRAIN, {"_fc_train": _fc_train(xp)})
    else:
        fn = _compile(OPS[spec["op"]][2], {"xp": xp})
    sets = [tuple(xp.asarray(a) for a in s) for s in inputs_for(spec)]
    return Workload(fn, sets, 1.0, clock_for([target.primary]))


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    impls: dict[str, Builder] = {
        "gluonlite": lambda: _gluonlite(spec, target),
        "numpy" if target.kind == "cpu" else "cupy": lambda: _array_library(spec, target),
    }
    if target.kind == "cpu":
        try:
            mxnet.locate()
        except Skip:
            return impls
        impls[mxnet.PEER] = lambda: mxnet.remote(NAME, spec, spec["quick"])
    return impls
