"""``mx.runtime``: what this installation can do, as MXNet's ``Features`` reports it, and the
report ``python -m gluonlite`` prints for bug reports.

MXNet's features were fixed when libmxnet was compiled; gluonlite's depend on what is
installed and visible now (CuPy, a GPU, NCCL, mpi4py, ml_dtypes), so they are probed when
asked. Nothing here raises on a machine without CuPy or a GPU: a probe that fails reports the
feature as disabled and says why in the report.

>>> import gluonlite as mx
>>> features = mx.runtime.Features()
>>> features.is_enabled('INT64_TENSOR_SIZE')
True
>>> 'CUDA' in features
True
"""

from __future__ import annotations

import collections
import importlib.metadata
import importlib.resources
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, TypeVar

import numpy

from . import _cupy as _cupy_source
from .device import num_gpus

__all__ = ["Feature", "Features", "feature_list", "report"]

_T = TypeVar("_T")
_D = TypeVar("_D")


class Feature:
    """One feature: its ``name`` and whether it is ``enabled`` here."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = bool(enabled)

    def __repr__(self) -> str:
        return f"{'✔' if self.enabled else '✖'} {self.name}"


def _safe(probe: Callable[[], _T], default: _D) -> _T | _D:
    """``probe()``, or ``default`` when it fails in any way (a report must never raise)."""
    try:
        with warnings.catch_warnings():  # e.g. CuPy's "nccl library could not be loaded"
            warnings.simplefilter("ignore")
            return probe()
    except Exception:  # noqa: BLE001 - a failing probe means "not available here"
        return default


def _cupy() -> ModuleType:
    return _cupy_source.module()  # the real CuPy, or the emulated one under its variable


def _nccl_version() -> int | None:
    return int(_cupy_source.nccl().get_version())


def _has_bfloat16() -> bool:
    import ml_dtypes  # noqa: F401

    return True


def _has_mpi4py() -> bool:
    return importlib.util.find_spec("mpi4py") is not None


def _blas_name() -> str:
    config = numpy.show_config(mode="dicts")
    return str(config["Build Dependencies"]["blas"]["name"])


# name -> probe; the order is the order MXNet users see (accelerators, then libraries).
_PROBES: dict[str, Callable[[], bool]] = {
    # CUDA: CuPy (the CUDA backend) is installed; GPU_VISIBLE: a GPU can be used right now.
    "CUDA": lambda: _safe(lambda: _cupy() is not None, False),
    "CUDNN": lambda: False,  # CuPy 14 dropped cuDNN; gluonlite's kernels do not use it
    "NCCL": lambda: _safe(lambda: _nccl_version() is not None, False),
    "CUDA_RTC": lambda: _safe(lambda: _cupy().cuda.nvrtc.getVersion() is not None, False),
    "GPU_VISIBLE": lambda: num_gpus() > 0,
    "BF16": lambda: _safe(_has_bfloat16, False),
    "DIST_KVSTORE": lambda: _has_mpi4py(),
    "INT64_TENSOR_SIZE": lambda: True,
    "BLAS_OPEN": lambda: _safe(lambda: "openblas" in _blas_name().lower(), False),
    "BLAS_MKL": lambda: _safe(lambda: "mkl" in _blas_name().lower(), False),
    "LAPACK": lambda: True,  # numpy.linalg always ships one
    "DEBUG": lambda: False,
}


class Features(collections.OrderedDict[str, Feature]):
    """The features of this installation, by name, as ``mx.runtime.Features()`` in MXNet."""

    def __init__(self) -> None:
        super().__init__((name, Feature(name, probe())) for name, probe in _PROBES.items())

    def __repr__(self) -> str:
        return str(list(self.values()))

    def is_enabled(self, feature_name: str) -> bool:
        """Whether ``feature_name`` (case-insensitive) is enabled; unknown names raise."""
        name = feature_name.upper()
        if name not in self:
            raise RuntimeError(
                f"Feature '{feature_name}' is unknown, known features are: {list(self.keys())}"
            )
        return self[name].enabled


def feature_list() -> list[Feature]:
    """The features as a list, as MXNet's ``runtime.feature_list()``."""
    return list(Features().values())


def _mpiexec() -> str | None:
    """mpiexec on PATH, or the one the ``mpich`` wheel put beside this Python."""
    return shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))


def _version(dist: str) -> str:
    return _safe(lambda: importlib.metadata.version(dist), "not installed")


def _gpu_lines() -> list[str]:
    count = num_gpus()
    if count == 0:
        return ["GPUs: none visible"]
    runtime = _cupy().cuda.runtime
    lines = [f"GPUs: {count} visible"]
    for i in range(count):
        props: dict[str, Any] = _safe(lambda: runtime.getDeviceProperties(i), {})
        name = props.get("name", b"?")
        name = name.decode() if isinstance(name, bytes) else str(name)
        total = props.get("totalGlobalMem", 0) / 2**30
        cc = f"{props.get('major', '?')}.{props.get('minor', '?')}"
        lines.append(f"  gpu({i}): {name}, {total:.1f} GiB, compute capability {cc}")
    if count > 1:
        lines.append("  peer access (row reads column):")
        for i in range(count):
            row = " ".join(
                "-"
                if i == j
                else ("y" if _safe(lambda: runtime.deviceCanAccessPeer(i, j), 0) else "n")
                for j in range(count)
            )
            lines.append(f"    gpu({i}): {row}")
    return lines


def _kernel_lines() -> list[str]:
    from . import _kernels

    found = [
        name
        for name in _kernels.KERNEL_SOURCES
        if _safe(
            lambda: importlib.resources.files("gluonlite.kernels").joinpath(name).is_file(), False
        )
    ]
    lines = [
        f"kernel sources: {len(found)} of {len(_kernels.KERNEL_SOURCES)} found "
        f"({', '.join(found) or 'none'})"
    ]
    nvcc = shutil.which("nvcc")
    if num_gpus() > 0:
        status = _safe(lambda: _compile_all(_kernels), "failed")
        lines.append(f"kernels compile here (NVRTC through CuPy): {status}")
    else:
        lines.append("kernels compile here: not checked (NVRTC through CuPy needs a GPU)")
    lines.append(f"nvcc: {nvcc or 'not on PATH'}")
    return lines


def _compile_all(kernels: ModuleType) -> str:
    for source, entries in kernels.instantiations().items():
        for type_key, _ in entries:
            kernels._load_module(0, source, type_key, False)
    return "yes"


def report() -> str:
    """The installation report that ``python -m gluonlite`` prints."""
    from . import __version__

    cuda_runtime = _safe(lambda: _cupy().cuda.runtime.runtimeGetVersion(), None)
    cuda_driver = _safe(lambda: _cupy().cuda.runtime.driverGetVersion(), None)
    nccl = _safe(_nccl_version, None)
    lines = [
        f"gluonlite {__version__}",
        f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}",
        f"NumPy {numpy.__version__} (BLAS: {_safe(_blas_name, 'unknown')})",
        f"CuPy {_safe(lambda: _cupy().__version__, 'not installed')}",
        f"CUDA runtime {cuda_runtime or 'unavailable'}, driver {cuda_driver or 'unavailable'}",
        f"NCCL {nccl or 'unavailable'}",
        f"mpi4py {_version('mpi4py')}, mpich {_version('mpich')}, "
        f"mpiexec {_mpiexec() or 'not found'}",
        f"safetensors {_version('safetensors')}, ml_dtypes {_version('ml_dtypes')} "
        f"(bfloat16 {'yes' if _safe(_has_bfloat16, False) else 'no'})",
    ]
    lines += _safe(_gpu_lines, ["GPUs: could not be listed"])
    lines += _safe(_kernel_lines, ["kernel sources: could not be listed"])
    lines.append("features: " + " ".join(repr(f) for f in feature_list()))
    return "\n".join(lines)
