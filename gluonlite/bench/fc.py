"""Suite ``fc``: ``npx.fully_connected`` forward, and forward + backward, over a shape sweep.

Peers: the same arithmetic written directly in the array library gluonlite runs on
(NumPy on CPU, CuPy's ``matmul`` + bias on GPU), which shows what gluonlite's dispatch,
autograd tape and kernels add or save, and ``torch.nn.functional.linear`` where torch is
importable. Forward + backward computes ``dX``, ``dW`` and ``db`` for a given ``dY``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy

from .. import autograd, np as mnp, npx
from .._typing import RawArray
from ..ndarray import ndarray
from .report import Metric
from .targets import Target, clock_for
from .timing import Clock, HostClock, TorchEventClock, rotations
from .workload import Builder, Spec, Workload, optional_torch

__all__ = ["NAME", "TITLE", "METRIC", "SIZE_LABEL", "specs", "describe", "implementations", "flops"]

NAME = "fc"
TITLE = "npx.fully_connected y = x @ W.T + b, forward and forward+backward"
METRIC = Metric("GFLOP/s", 1e9)
SIZE_LABEL = "FLOP per call"

# (batch sizes, in = out features). The CPU sweep stops where one call takes ~0.1 s on a
# laptop-class CPU; the GPU sweep is the kernels issue's (batch 1 ... 8192, 64 ... 8192).
_SWEEPS = {
    ("cpu", False): ((1, 16, 128, 1024), (64, 256, 1024, 2048)),
    ("cpu", True): ((16, 128), (64, 256)),
    ("gpu", False): ((1, 16, 128, 1024, 8192), (64, 512, 2048, 8192)),
    ("gpu", True): ((16, 1024), (512, 2048)),
}
OPS = ("fwd", "fwd+bwd")


def _dtypes(target: Target) -> tuple[str, ...]:
    """float32 everywhere; bfloat16 on GPUs where gluonlite can hold bf16 arrays there."""
    if target.kind == "cpu":
        return ("float32",)
    try:
        mnp.zeros((1,), dtype="bfloat16", device=target.primary)
    except Exception:  # noqa: BLE001 - no bf16 support in this build/backend: fp32 only
        return ("float32",)
    return ("float32", "bfloat16")


def specs(target: Target, quick: bool) -> list[Spec]:
    batches, features = _SWEEPS[(target.kind, quick)]
    return [
        {"op": op, "batch": n, "in": f, "out": f, "dtype": dtype}
        for dtype in _dtypes(target)
        for op in OPS
        for n in batches
        for f in features
    ]


def flops(spec: Spec) -> float:
    # Forward is one GEMM (2*N*K*M); backward adds dX and dW, two more of the same size.
    forward = 2.0 * int(spec["batch"]) * int(spec["in"]) * int(spec["out"])
    return forward if spec["op"] == "fwd" else 3 * forward


def describe(spec: Spec) -> tuple[str, str, float]:
    label = f"{spec['op']:<7} {spec['dtype']} {spec['batch']}x{spec['in']}->{spec['out']}"
    return label, f"{spec['op']} {spec['dtype']}", flops(spec)


def _host_inputs(spec: Spec) -> list[tuple[numpy.ndarray[Any, Any], ...]]:
    """Input sets of float32 host arrays: (x, w, b) or, with backward, (x, w, b, dy).

    Every implementation of a case starts from the same values; callers copy them.
    """
    return _draw(spec["batch"], spec["in"], spec["out"], spec["op"] != "fwd")


# One case at a time: its implementations are built one after the other, and drawing the
# large GPU shapes (3 x 8192 x 8192) on the host takes seconds.
@functools.lru_cache(maxsize=1)
def _draw(n: int, k: int, m: int, train: bool) -> list[tuple[numpy.ndarray[Any, Any], ...]]:
    per_set = 4 * (n * k + m * k + m + (n * m if train else 0))
    rng = numpy.random.default_rng(0)
    sets = []
    for _ in range(rotations(per_set)):
        arrays = [
            rng.standard_normal(shape, dtype=numpy.float32)
            for shape in ((n, k), (m, k), (m,)) + (((n, m),) if train else ())
        ]
        sets.append(tuple(arrays))
    return sets


def _gluonlite(spec: Spec, target: Target) -> Workload:
    device, m = target.primary, spec["out"]
    sets = [
        tuple(mnp.array(a, dtype=spec["dtype"], device=device) for a in s)
        for s in _host_inputs(spec)
    ]
    fn: Callable[..., None]
    if spec["op"] == "fwd":

        def fn(x: ndarray, w: ndarray, b: ndarray) -> None:
            npx.fully_connected(x, w, b, num_hidden=m)
    else:
        for x, w, b, _ in sets:
            for a in (x, w, b):
                a.attach_grad()

        def fn(x: ndarray, w: ndarray, b: ndarray, dy: ndarray) -> None:
            with autograd.record():
                y = npx.fully_connected(x, w, b, num_hidden=m)
            y.backward(dy)

    return Workload(fn, sets, flops(spec), clock_for([device]))


def _array_library(spec: Spec, target: Target) -> Workload:
    """The same arithmetic in NumPy (cpu) or CuPy (gpu), written out by hand."""
    xp: Any
    if target.kind == "cpu":
        xp = numpy
    else:
        import cupy  # run_case makes the target's GPU current, so arrays land there

        xp = cupy

    def forward(x: RawArray, w: RawArray, b: RawArray) -> RawArray:
        y = xp.matmul(x, w.T)
        y += b
        return y

    def train(x: RawArray, w: RawArray, b: RawArray, dy: RawArray) -> tuple[RawArray, ...]:
        forward(x, w, b)
        return xp.matmul(dy, w), xp.matmul(dy.T, x), dy.sum(axis=0)

    sets = [tuple(xp.array(a) for a in s) for s in _host_inputs(spec)]  # copies
    return Workload(
        forward if spec["op"] == "fwd" else train, sets, flops(spec), clock_for([target.primary])
    )


def _torch(spec: Spec, target: Target, torch: ModuleType) -> Workload:
    clock: Clock
    if target.kind == "cpu":
        device, clock = torch.device("cpu"), HostClock()
    else:
        device = torch.device("cuda", target.primary.device_id)
        clock = TorchEventClock(target.primary.device_id)
    dtype = getattr(torch, spec["dtype"])
    train = spec["op"] != "fwd"
    sets = []
    for s in _host_inputs(spec):
        t = [torch.tensor(a, device=device, dtype=dtype) for a in s]  # copies
        for a in t[:3]:
            a.requires_grad_(train)
        sets.append(tuple(t))
    linear = torch.nn.functional.linear
    fn: Callable[..., None]
    if not train:

        def fn(x: Any, w: Any, b: Any) -> None:
            linear(x, w, b)
    else:

        def fn(x: Any, w: Any, b: Any, dy: Any) -> None:
            # autograd.grad rather than backward(): no accumulation into .grad between calls.
            torch.autograd.grad(linear(x, w, b), (x, w, b), dy)

    return Workload(fn, sets, flops(spec), clock)


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    impls: dict[str, Builder] = {"gluonlite": lambda: _gluonlite(spec, target)}
    # NumPy and CuPy have no bfloat16 GEMM; torch does.
    if spec["dtype"] == "float32":
        impls["numpy" if target.kind == "cpu" else "cupy"] = lambda: _array_library(spec, target)
    torch = optional_torch(target.primary)
    if torch is not None:
        impls["torch"] = lambda: _torch(spec, target, torch)
    return impls
