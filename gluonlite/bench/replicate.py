"""Suite ``replicate``: ``initialize`` and ``reset_device`` of many parameters over N devices.

Throughput in bytes of parameter data written per second. ``initialize`` computes each
value once on the host and copies it to the N devices; ``reset_device`` alternates the
parameters between two disjoint device sets (replicas on a device in both sets would be
kept, not copied), so every call copies every replica.

Peers do the same copies by hand: NumPy copies on CPU; on GPUs CuPy host<->device copies,
``cudaMemcpyPeer`` between GPUs, and GPU -> host -> GPU ("via host"), so the table shows
whether gluonlite's peer-to-peer path beats going through host memory. Parameters have
``grad_req='null'`` so that only data moves, which the peers copy too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy

from .. import gluon, initializer
from .._typing import RawArray
from ..device import Device, cpu
from .report import Metric
from .targets import Target, clock_for, parse_device
from .workload import Builder, Spec, Workload

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "specs",
    "describe",
    "implementations",
    "make_params",
    "initialize_all",
    "reset_all",
    "gluonlite_workload",
]

NAME = "replicate"
TITLE = "Parameter.initialize / reset_device over N devices (bytes written per second)"
METRIC = Metric("GB/s", 1e9)
SIZE_LABEL = "bytes per call"

# (parameters, shape): 100 x 256 KiB = 25 MiB per replica, big enough for bandwidth to
# dominate yet with enough parameters for per-parameter overhead to show.
_SIZES = {False: (100, (256, 256)), True: (20, (64, 64))}


def _names(devices: Iterable[Device]) -> list[str]:
    return [str(d) for d in devices]


def specs(target: Target, quick: bool) -> list[Spec]:
    count, shape = _SIZES[quick]
    base: Spec = {"params": count, "shape": list(shape)}
    if target.kind == "cpu":
        ns: Sequence[int] = (1, 2) if quick else (1, 2, 4)
        out = [dict(base, op="initialize", devices=_names(cpu(i) for i in range(n))) for n in ns]
        out += [
            dict(
                base,
                op="reset_device",
                src=_names(cpu(i) for i in range(n)),
                dst=_names(cpu(n + i) for i in range(n)),
            )
            for n in ns
        ]
        return out
    gpus = list(target.devices)
    ns = [n for n in (1, 2, 4, 8) if n <= len(gpus)]
    out = [dict(base, op="initialize", devices=_names(gpus[:n])) for n in ns]
    out.append(dict(base, op="reset_device", src=_names(gpus[:1]), dst=["cpu(0)"]))
    out += [
        dict(base, op="reset_device", src=_names(gpus[:n]), dst=_names(gpus[n : 2 * n]))
        for n in ns
        if 2 * n <= len(gpus)
    ]
    return out


def _bytes(spec: Spec) -> float:
    per_replica = spec["params"] * 4 * int(numpy.prod(spec["shape"]))
    copies = len(spec["devices"] if spec["op"] == "initialize" else spec["dst"])
    return float(per_replica * copies)


def _span(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def describe(spec: Spec) -> tuple[str, str, float]:
    what = f"{spec['params']}x{tuple(spec['shape'])}"
    if spec["op"] == "initialize":
        label = f"initialize   {what} -> {_span(spec['devices'])}"
        series = f"initialize {spec['devices'][0][:3]}"
    else:
        label = f"reset_device {what} {_span(spec['src'])} <-> {_span(spec['dst'])}"
        series = f"reset_device {spec['src'][0][:3]}->{spec['dst'][0][:3]}"
    return label, series, _bytes(spec)


def _all_devices(spec: Spec) -> list[Device]:
    names = spec["devices"] if spec["op"] == "initialize" else spec["src"] + spec["dst"]
    return [parse_device(n) for n in names]


def make_params(spec: Spec) -> list[gluon.Parameter]:
    """The case's parameters, not yet initialized (no gradients: only data is replicated)."""
    return [
        gluon.Parameter(f"p{i}", shape=tuple(spec["shape"]), grad_req="null")
        for i in range(spec["params"])
    ]


def initialize_all(
    params: Iterable[gluon.Parameter],
    devices: Sequence[Device],
    init: initializer.Initializer = initializer.Uniform(),
) -> None:
    for p in params:
        p.initialize(init=init, device=devices, force_reinit=True)


def reset_all(params: Iterable[gluon.Parameter], devices: Sequence[Device]) -> None:
    for p in params:
        p.reset_device(devices)


def gluonlite_workload(spec: Spec) -> Workload:
    params = make_params(spec)
    clock = clock_for(_all_devices(spec))
    if spec["op"] == "initialize":
        devices = [parse_device(n) for n in spec["devices"]]
        return Workload(lambda: initialize_all(params, devices), ((),), _bytes(spec), clock)
    src = [parse_device(n) for n in spec["src"]]
    dst = [parse_device(n) for n in spec["dst"]]
    initialize_all(params, src)
    # Calls alternate between the two input sets: src -> dst, dst -> src, ...
    return Workload(
        lambda devices: reset_all(params, devices), ((dst,), (src,)), _bytes(spec), clock
    )


def _copy(raw: RawArray, dst: Device, via_host: bool = False) -> RawArray:
    """A copy of ``raw`` (NumPy or CuPy) on device ``dst``, the way the peers do it."""
    is_cupy = type(raw).__module__.startswith("cupy")
    if dst.device_type == "cpu":
        return raw.get() if is_cupy else raw.copy()
    import cupy

    with cupy.cuda.Device(dst.device_id):
        if not is_cupy:
            return cupy.asarray(raw)
        if raw.device.id == dst.device_id:
            return raw.copy()
        if via_host:
            return cupy.asarray(raw.get())
        out = cupy.empty(raw.shape, dtype=raw.dtype)
        cupy.cuda.runtime.memcpyPeer(
            out.data.ptr, dst.device_id, raw.data.ptr, raw.device.id, raw.nbytes
        )
        return out


def _peer_workload(spec: Spec, via_host: bool = False) -> Workload:
    shape = tuple(spec["shape"])
    rng = numpy.random.default_rng(0)
    clock = clock_for(_all_devices(spec))
    if spec["op"] == "initialize":
        devices = [parse_device(n) for n in spec["devices"]]

        def fn() -> None:
            for _ in range(spec["params"]):
                value = rng.uniform(-0.07, 0.07, size=shape).astype(numpy.float32)
                for d in devices:
                    _copy(value, d)

        return Workload(fn, ((),), _bytes(spec), clock)
    src = [parse_device(n) for n in spec["src"]]
    dst = [parse_device(n) for n in spec["dst"]]
    first = numpy.zeros(shape, dtype=numpy.float32)
    replicas = [[_copy(first, d) for d in src] for _ in range(spec["params"])]

    def move(devices: Sequence[Device]) -> None:
        for i, old in enumerate(replicas):
            replicas[i] = [_copy(old[0], d, via_host) for d in devices]

    return Workload(move, ((dst,), (src,)), _bytes(spec), clock)


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    impls: dict[str, Builder] = {"gluonlite": lambda: gluonlite_workload(spec)}
    names = spec["devices"] if spec["op"] == "initialize" else spec["src"] + spec["dst"]
    if not any(n.startswith("gpu") for n in names):
        impls["numpy"] = lambda: _peer_workload(spec)
    elif spec["op"] == "reset_device" and all(n.startswith("gpu") for n in names):
        impls["cudaMemcpyPeer"] = lambda: _peer_workload(spec)
        impls["via host"] = lambda: _peer_workload(spec, via_host=True)
    else:
        impls["cupy"] = lambda: _peer_workload(spec)
    return impls
