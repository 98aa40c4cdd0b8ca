"""The machine a benchmark ran on: CPU, GPUs and library versions, for the header and JSON.

Every probe is guarded: a missing library or driver is reported as such, never raised,
because the header must print on any machine the benchmark can run on.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

from ..device import num_gpus

__all__ = ["describe", "header_lines"]


def _cpu_model() -> str:
    # /proc/cpuinfo names the model on Linux; platform.processor() is often empty there.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cupy_info() -> dict[str, Any]:
    """CuPy's version, the CUDA runtime/driver versions and the GPU names, where present."""
    try:
        import cupy
    except ImportError:
        return {"cupy": None, "cuda_runtime": None, "cuda_driver": None, "gpus": []}
    info: dict[str, Any] = {
        "cupy": cupy.__version__,
        "cuda_runtime": None,
        "cuda_driver": None,
        "gpus": [],
    }

    def fmt(v: int) -> str | None:  # CUDA encodes 12.4 as 12040; 0 means no driver is installed
        return f"{v // 1000}.{v % 1000 // 10}" if v else None

    try:
        info["cuda_runtime"] = fmt(cupy.cuda.runtime.runtimeGetVersion())
        info["cuda_driver"] = fmt(cupy.cuda.runtime.driverGetVersion())
    except Exception:  # noqa: BLE001 - no driver: leave the versions unknown
        pass
    for i in range(num_gpus()):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"]
        info["gpus"].append(
            {
                "id": i,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
                "compute_capability": f"{props['major']}.{props['minor']}",
            }
        )
    return info


# Thread-count variables of the BLAS and OpenMP runtimes that NumPy, CuPy's host side and
# MXNet use; the MXNet runner inherits them, so both sides of a ratio run alike.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _blas() -> str | None:
    """NumPy's BLAS, e.g. ``scipy-openblas 0.3.27`` (NumPy >= 1.25 reports it as a dict)."""
    import numpy

    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy prints its config instead
        return None


def describe() -> dict[str, Any]:
    """A JSON-ready description of this machine and of the software measured on it."""
    import numpy
    from .. import __version__

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gluonlite": __version__,
        "numpy": numpy.__version__,
        "blas": _blas(),
        "threads": {v: os.environ.get(v) for v in THREAD_VARIABLES},
        "torch": _version("torch"),
    }
    info.update(_cupy_info())
    return info


def header_lines(info: dict[str, Any]) -> list[str]:
    gpus = (
        ", ".join(
            f"gpu({g['id']}) {g['name']} ({g['memory_gib']} GiB, "
            f"sm_{g['compute_capability'].replace('.', '')})"
            for g in info["gpus"]
        )
        or "none"
    )

    def v(key: str) -> Any:
        return info.get(key) or "not installed"

    cuda = (
        f"runtime {info['cuda_runtime']}, driver {info['cuda_driver'] or 'none'}"
        if info.get("cuda_runtime")
        else "not available"
    )
    threads = (
        "  ".join(f"{k}={val}" for k, val in info["threads"].items() if val)
        or "library defaults (set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to pin)"
    )
    return [
        f"CPU     {info['cpu']}, {info['cpu_count']} cores ({info['platform']})",
        f"GPU     {gpus}",
        f"Python  {info['python']}   gluonlite {info['gluonlite']}   NumPy {info['numpy']}"
        f" ({info['blas'] or 'BLAS unknown'})",
        f"CuPy    {v('cupy')}   CUDA {cuda}   torch {v('torch')}",
        f"Threads {threads}",
    ]
