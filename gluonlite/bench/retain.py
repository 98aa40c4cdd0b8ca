"""Suite ``retain``: ``RowSparseNDArray.retain`` throughput vs a plain copy of the same bytes.

A row-sparse table stores every other row of ``2 * stored`` rows. Each call asks for
``stored / 2`` ids that are stored and as many that are not, plus repeats of a quarter of
them, shuffled (``retain`` accepts unsorted ids with duplicates). Work is the kept rows'
bytes, read and written; the peer copies an array of exactly those bytes (``copyto`` in
NumPy on CPU, a device-to-device copy in CuPy on GPU), the bandwidth retain can approach.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy

from .. import np as mnp, sparse
from .report import Metric
from .targets import Target, clock_for
from .timing import rotations
from .workload import Builder, Spec, Workload

__all__ = ["NAME", "TITLE", "METRIC", "SIZE_LABEL", "specs", "describe", "implementations"]

NAME = "retain"
TITLE = "RowSparseNDArray.retain vs a plain copy of the kept rows (bytes read + written)"
METRIC = Metric("GB/s", 1e9)
SIZE_LABEL = "bytes per call"

# (stored rows, row width in float32): narrow rows stress the per-row work (search,
# gather), wide ones the copy bandwidth. CPU tables are 16 MiB, GPU ones 256 MiB.
_SWEEPS = {
    ("cpu", False): ((1 << 17, 32), (1 << 15, 128), (1 << 12, 1024)),
    ("cpu", True): ((1 << 12, 32), (1 << 10, 256)),
    ("gpu", False): ((1 << 21, 32), (1 << 19, 128), (1 << 16, 1024)),
    ("gpu", True): ((1 << 16, 128),),
}
_ID_SETS = 3  # different requests in rotation, so no call finds the previous one's rows


def specs(target: Target, quick: bool) -> list[Spec]:
    return [{"stored": k, "width": w, "dtype": "float32"} for k, w in _SWEEPS[(target.kind, quick)]]


def _kept(spec: Spec) -> int:
    return int(spec["stored"]) // 2


def _bytes(spec: Spec) -> float:
    return 2.0 * _kept(spec) * int(spec["width"]) * 4


def describe(spec: Spec) -> tuple[str, str, float]:
    label = f"{spec['stored']} of {2 * spec['stored']} rows x {spec['width']}, keep {_kept(spec)}"
    return label, f"width {spec['width']}", _bytes(spec)


def _requests(spec: Spec) -> list[numpy.ndarray[Any, Any]]:
    """``_ID_SETS`` shuffled id arrays, each keeping exactly ``_kept(spec)`` rows."""
    rng = numpy.random.default_rng(0)
    k, m = spec["stored"], _kept(spec)
    out = []
    for _ in range(_ID_SETS):
        present = 2 * rng.choice(k, size=m, replace=False)  # stored rows are even
        absent = 2 * rng.choice(k, size=m, replace=False) + 1
        ids = numpy.concatenate([present, absent])
        ids = numpy.concatenate([ids, rng.choice(ids, size=len(ids) // 4)])
        rng.shuffle(ids)
        out.append(ids)
    return out


def _gluonlite(spec: Spec, target: Target) -> Workload:
    device, k, w = target.primary, spec["stored"], spec["width"]
    rng = numpy.random.default_rng(1)
    values = rng.standard_normal((k, w), dtype=numpy.float32)
    table = sparse.row_sparse_array(
        (values, numpy.arange(0, 2 * k, 2)), shape=(2 * k, w), device=device
    )
    ids = [(mnp.array(r, dtype="int64", device=device),) for r in _requests(spec)]
    return Workload(table.retain, ids, _bytes(spec), clock_for([device]))


def _copy(spec: Spec, target: Target) -> Workload:
    device, m, w = target.primary, _kept(spec), spec["width"]
    xp: Any
    copyto: Callable[[Any, Any], object]
    if target.kind == "cpu":
        xp, copyto = numpy, numpy.copyto
    else:
        import cupy

        xp = cupy

        def copyto(dst: Any, src: Any) -> None:
            dst[...] = src

    # Allocated on the current device, which run_case sets to the target's.
    sets = [
        (xp.empty((m, w), dtype=xp.float32), xp.ones((m, w), dtype=xp.float32))
        for _ in range(rotations(2 * m * w * 4))
    ]
    return Workload(copyto, sets, _bytes(spec), clock_for([device]))


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    return {"gluonlite": lambda: _gluonlite(spec, target), "copy": lambda: _copy(spec, target)}
