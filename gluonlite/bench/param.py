"""Suite ``param``: per-call cost of the Parameter accessors over 1000 parameters, and of
``initialize`` over 200 parameters of 256x256.

``data()``, ``data(device)``, ``list_data()``, ``grad()`` and ``zero_grad()`` run in every
training step for every parameter, so their Python overhead adds up. Each parameter has a
replica on two devices (``data()`` then resolves the current device, as in MXNet).
``initialize`` (``force_reinit``, the default Uniform initializer) draws each parameter
once and makes its two replicas and gradient buffers.

Peers: ``dict``, the same accesses on a plain ``{device: array}`` dict per parameter, the
cheapest store possible (its ratio is what gluonlite's API costs on top of it; for
``initialize``: a float32 draw copied to each device plus zeroed gradients, by hand); and
``mxnet-1.9.1``, the same calls on MXNet's ``gluon.Parameter`` in the same run, on CPU
where ``.venv-mxnet`` exists (``make bench-mxnet``), timed by the ``mxnet`` suite's runner
(left out of ``--quick`` smoke runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy

from .. import gluon, initializer
from .._typing import RawArray
from ..device import Device
from . import _mxnet_runner as mxnet
from .report import Metric
from .targets import Target, clock_for, parse_device
from .workload import Builder, Remote, Skip, Spec, Workload

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "OPS",
    "specs",
    "describe",
    "implementations",
    "make_params",
    "accessor",
    "gluonlite_workload",
]

NAME = "param"
TITLE = "Parameter accessors: time per call, over 1000 parameters with 2 replicas"
METRIC = Metric("us/call", 1e-6, rate=False)
SIZE_LABEL = "parameters"

OPS = ("data()", "data(device)", "list_data()", "grad()", "zero_grad()", "initialize")
# Small parameters, so that the accessors' overhead, not memory traffic, is measured
# (zero_grad still writes every gradient: 8x8 floats each).
_COUNT, _SHAPE = 1000, (8, 8)
# initialize: the case (200 x 256x256, 50 MiB per replica); a small one when quick.
_INIT_SIZES = {False: (200, (256, 256)), True: (20, (64, 64))}


def specs(target: Target, quick: bool) -> list[Spec]:
    devices = [str(d) for d in target.devices[:2]]
    out: list[Spec] = [
        {"op": op, "params": _COUNT, "shape": list(_SHAPE), "devices": devices, "quick": quick}
        for op in OPS
        if op != "initialize"
    ]
    count, shape = _INIT_SIZES[quick]
    out.append(
        {
            "op": "initialize",
            "params": count,
            "shape": list(shape),
            "devices": devices,
            "quick": quick,
        }
    )
    return out


def describe(spec: Spec) -> tuple[str, str, float]:
    label = f"{spec['op']:<13} x{spec['params']} on {len(spec['devices'])} devices"
    return label, spec["op"], spec["params"]


def make_params(
    count: int, shape: Sequence[int], devices: Sequence[Device]
) -> list[gluon.Parameter]:
    """``count`` initialized parameters with replicas (and gradients) on ``devices``."""
    params = [gluon.Parameter(f"p{i}", shape=tuple(shape)) for i in range(count)]
    for p in params:
        p.initialize(device=list(devices))
    return params


def accessor(op: str, devices: Sequence[Device]) -> Callable[[gluon.Parameter], object]:
    """The call ``op`` names, as a function of one parameter (``data(device)`` reads the
    replica on the last of ``devices``)."""
    last = devices[-1]
    uniform = initializer.Uniform()
    calls: dict[str, Callable[[gluon.Parameter], object]] = {
        "initialize": lambda p: p.initialize(init=uniform, device=devices, force_reinit=True),
        "data()": lambda p: p.data(),
        "data(device)": lambda p: p.data(last),
        "list_data()": lambda p: p.list_data(),
        "grad()": lambda p: p.grad(),
        "zero_grad()": lambda p: p.zero_grad(),
    }
    return calls[op]


def gluonlite_workload(spec: Spec) -> Workload:
    devices = [parse_device(d) for d in spec["devices"]]
    params = make_params(spec["params"], spec["shape"], devices)
    call = accessor(spec["op"], devices)

    def fn() -> None:
        # With several replicas, data() and grad() return the current device's one.
        with devices[0]:
            for p in params:
                call(p)

    return Workload(fn, ((),), spec["params"], clock_for(devices))


def _dict_workload(spec: Spec) -> Workload:
    from .. import _backend

    devices = [parse_device(d) for d in spec["devices"]]
    shape = tuple(spec["shape"])

    def zeros(device: Device) -> RawArray:
        xp = _backend.xp(device)
        with _backend.on(device):
            return xp.zeros(shape, dtype="float32")

    data = [{d: zeros(d) for d in devices} for _ in range(spec["params"])]
    grads = [{d: zeros(d) for d in devices} for _ in range(spec["params"])]
    first, last = devices[0], devices[-1]

    def zero_all(g: dict[Device, RawArray]) -> None:
        for a in g.values():
            a.fill(0)

    def initialize(i: int) -> None:
        # What initializing one parameter takes at least: one float32 draw, a copy per
        # device, zeroed gradients.
        xp = _backend.xp(first)
        drawn = rng.random(shape, dtype="float32")
        drawn *= 0.14
        drawn -= 0.07
        data[i] = {d: _backend.transfer(drawn, first, d) for d in devices}
        grads[i] = {d: xp.zeros(shape, dtype="float32") for d in devices}

    rng = numpy.random.default_rng(0)
    calls: dict[str, Callable[[int], object]] = {
        "initialize": initialize,
        "data()": lambda i: data[i][first],
        "data(device)": lambda i: data[i][last],
        "list_data()": lambda i: list(data[i].values()),
        "grad()": lambda i: grads[i][first],
        "zero_grad()": lambda i: zero_all(grads[i]),
    }
    call = calls[spec["op"]]

    def fn() -> None:
        for i in range(len(data)):
            call(i)

    return Workload(fn, ((),), spec["params"], clock_for(devices))


def _mxnet_workload(spec: Spec, target: Target) -> Remote:
    if target.kind != "cpu":
        raise Skip("MXNet 1.9.1's pip wheel is CPU-only")
    if spec.get("quick"):
        # A smoke run stays quick: the MXNet process is started by full runs (and by the
        # mxnet suite, which covers these cases too).
        raise Skip("quick run")
    mxnet.locate()  # raises Skip where there is no MXNet environment
    return mxnet.remote("param", spec, bool(spec.get("quick")), work=spec["params"])


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    return {
        "gluonlite": lambda: gluonlite_workload(spec),
        "dict": lambda: _dict_workload(spec),
        "mxnet-1.9.1": lambda: _mxnet_workload(spec, target),
    }
