"""Suite ``param``: per-call cost of the Parameter accessors over 1000 parameters.

``data()``, ``data(device)``, ``list_data()``, ``grad()`` and ``zero_grad()`` run in every
training step for every parameter, so their Python overhead adds up. Each parameter has a
replica on two devices (``data()`` then resolves the current device, as in MXNet).

Peer ``dict``: the same accesses on a plain ``{device: array}`` dict per parameter, the
cheapest store possible; its ratio is what gluonlite's API costs on top of it. The MXNet
1.9.1 figures come from the ``mxnet`` suite.
"""
from __future__ import annotations

from .. import gluon
from .report import Metric
from .targets import clock_for, parse_device
from .workload import Workload

__all__ = ["NAME", "TITLE", "METRIC", "SIZE_LABEL", "OPS", "specs", "describe",
           "implementations", "make_params", "accessor", "gluonlite_workload"]

NAME = "param"
TITLE = "Parameter accessors: time per call, over 1000 parameters with 2 replicas"
METRIC = Metric("us/call", 1e-6, rate=False)
SIZE_LABEL = "parameters"

OPS = ("data()", "data(device)", "list_data()", "grad()", "zero_grad()")
# Small parameters, so that the accessors' overhead, not memory traffic, is measured
# (zero_grad still writes every gradient: 8x8 floats each).
_COUNT, _SHAPE = 1000, (8, 8)


def specs(target, quick: bool) -> list:
    devices = [str(d) for d in target.devices[:2]]
    return [{"op": op, "params": _COUNT, "shape": list(_SHAPE), "devices": devices}
            for op in OPS]


def describe(spec: dict):
    label = f"{spec['op']:<13} x{spec['params']} on {len(spec['devices'])} devices"
    return label, spec["op"], spec["params"]


def make_params(count: int, shape, devices) -> list:
    """``count`` initialized parameters with replicas (and gradients) on ``devices``."""
    params = [gluon.Parameter(f"p{i}", shape=tuple(shape)) for i in range(count)]
    for p in params:
        p.initialize(device=list(devices))
    return params


def accessor(op: str, devices):
    """The call ``op`` names, as a function of one parameter (``data(device)`` reads the
    replica on the last of ``devices``)."""
    last = devices[-1]
    return {
        "data()": lambda p: p.data(),
        "data(device)": lambda p: p.data(last),
        "list_data()": lambda p: p.list_data(),
        "grad()": lambda p: p.grad(),
        "zero_grad()": lambda p: p.zero_grad(),
    }[op]


def gluonlite_workload(spec: dict) -> Workload:
    devices = [parse_device(d) for d in spec["devices"]]
    params = make_params(spec["params"], spec["shape"], devices)
    call = accessor(spec["op"], devices)

    def fn():
        # With several replicas, data() and grad() return the current device's one.
        with devices[0]:
            for p in params:
                call(p)
    return Workload(fn, ((),), spec["params"], clock_for(devices))


def _dict_workload(spec: dict) -> Workload:
    from .. import _backend
    devices = [parse_device(d) for d in spec["devices"]]
    shape = tuple(spec["shape"])

    def zeros(device):
        xp = _backend.xp(device)
        with _backend.on(device):
            return xp.zeros(shape, dtype="float32")
    data = [{d: zeros(d) for d in devices} for _ in range(spec["params"])]
    grads = [{d: zeros(d) for d in devices} for _ in range(spec["params"])]
    first, last = devices[0], devices[-1]

    def zero_all(g):
        for a in g.values():
            a.fill(0)
    calls = {
        "data()": lambda i: data[i][first],
        "data(device)": lambda i: data[i][last],
        "list_data()": lambda i: list(data[i].values()),
        "grad()": lambda i: grads[i][first],
        "zero_grad()": lambda i: zero_all(grads[i]),
    }
    call = calls[spec["op"]]

    def fn():
        for i in range(len(data)):
            call(i)
    return Workload(fn, ((),), spec["params"], clock_for(devices))


def implementations(spec: dict, target) -> dict:
    return {"gluonlite": lambda: gluonlite_workload(spec), "dict": lambda: _dict_workload(spec)}
