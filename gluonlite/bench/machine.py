"""The machine a benchmark ran on: CPU, GPUs and library versions, for the header and JSON.

Every probe is guarded: a missing library or driver is reported as such, never raised,
because the header must print on any machine the benchmark can run on.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform

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


def _version(dist: str):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cupy_info() -> dict:
    """CuPy's version, the CUDA runtime/driver versions and the GPU names, where present."""
    try:
        import cupy
    except ImportError:
        return {"cupy": None, "cuda_runtime": None, "cuda_driver": None, "gpus": []}
    info = {"cupy": cupy.__version__, "cuda_runtime": None, "cuda_driver": None, "gpus": []}

    def fmt(v):  # CUDA encodes 12.4 as 12040
        return f"{v // 1000}.{v % 1000 // 10}"
    try:
        info["cuda_runtime"] = fmt(cupy.cuda.runtime.runtimeGetVersion())
        info["cuda_driver"] = fmt(cupy.cuda.runtime.driverGetVersion())
    except Exception:  # noqa: BLE001 - no driver: leave the versions unknown
        pass
    for i in range(num_gpus()):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"]
        info["gpus"].append({
            "id": i, "name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "compute_capability": f"{props['major']}.{props['minor']}"})
    return info


def describe() -> dict:
    """A JSON-ready description of this machine and of the software measured on it."""
    import numpy
    from .. import __version__
    info = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gluonlite": __version__,
        "numpy": numpy.__version__,
        "torch": _version("torch"),
    }
    info.update(_cupy_info())
    return info


def header_lines(info: dict) -> list:
    gpus = ", ".join(f"gpu({g['id']}) {g['name']} ({g['memory_gib']} GiB, "
                     f"sm_{g['compute_capability'].replace('.', '')})"
                     for g in info["gpus"]) or "none"

    def v(key):
        return info.get(key) or "not installed"
    cuda = (f"runtime {info['cuda_runtime']}, driver {info['cuda_driver']}"
            if info.get("cuda_runtime") else "not available")
    return [
        f"CPU     {info['cpu']}, {info['cpu_count']} cores ({info['platform']})",
        f"GPU     {gpus}",
        f"Python  {info['python']}   gluonlite {info['gluonlite']}   NumPy {info['numpy']}",
        f"CuPy    {v('cupy')}   CUDA {cuda}   torch {v('torch')}",
    ]

