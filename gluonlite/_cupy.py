"""Which CuPy serves ``gpu(i)``: the installed one, or the test suite's emulated GPUs.

``GLUONLITE_EMULATE_GPUS=n`` (read once, when gluonlite is imported) replaces CuPy with
``tests/cuda_host/fake_cupy.py``'s emulation of ``n`` GPUs, run from a source checkout, so
that every GPU code path of gluonlite runs in CI without a GPU. Unset (the normal case),
``module()`` is ``import cupy`` and nothing of the emulation is loaded.

This module sits below ``device.py`` and ``_backend.py``; it imports nothing of gluonlite.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

__all__ = [
    "EMULATE_ENV",
    "emulated_gpus",
    "module",
    "cupyx",
    "special",
    "nccl",
    "device_count",
    "is_array",
]

EMULATE_ENV = "GLUONLITE_EMULATE_GPUS"
_EMULATOR_MODULE = "tests.cuda_host.fake_cupy"


def _read_environment() -> int | None:
    value = os.environ.get(EMULATE_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{EMULATE_ENV}={value!r}: expected a number of GPUs to emulate")
    return int(value)


_EMULATED_GPUS = _read_environment()
# The emulated cupy module (tests/cuda_host/fake_cupy.py), made on first use.
_emulator: ModuleType | None = None


def emulated_gpus() -> int | None:
    """The number of emulated GPUs, or None when the real CuPy is in use."""
    return _EMULATED_GPUS


def module() -> ModuleType:
    """The ``cupy`` module (real or emulated); a clear ``RuntimeError`` when CuPy is not
    installed."""
    global _emulator
    if _EMULATED_GPUS is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(
                "A GPU device was requested, but CuPy is not installed. "
                "Install gluonlite[cuda12] or gluonlite[cuda13]."
            ) from e
        return cupy  # type: ignore[no-any-return]  # untyped CuPy
    if _emulator is None:
        try:
            fake = importlib.import_module(_EMULATOR_MODULE)
        except ImportError as e:
            raise ImportError(
                f"{EMULATE_ENV} is set, but the emulator {_EMULATOR_MODULE} "
                "is not importable: run from the source tree"
            ) from e
        _emulator = fake.emulated(_EMULATED_GPUS)
    return _emulator


def cupyx() -> ModuleType:
    """``cupyx`` (``scatter_add``) of the CuPy in use."""
    if _EMULATED_GPUS is None:
        import cupyx as _cupyx

        return _cupyx  # type: ignore[no-any-return]  # untyped CuPy
    return module().cupyx  # type: ignore[no-any-return]  # untyped CuPy


def special() -> ModuleType:
    """``cupyx.scipy.special`` (``erf``) of the CuPy in use."""
    if _EMULATED_GPUS is None:
        import cupyx.scipy.special as _special

        return _special  # type: ignore[no-any-return]  # untyped CuPy
    return module().cupyx.scipy.special  # type: ignore[no-any-return]  # untyped CuPy


def device_count() -> int:
    """Visible GPUs: 0 when CuPy is missing, no driver is found or no GPU is there.

    Never raises. (``cupy.cuda.is_available()`` raises on some CuPy versions, hence the
    broad guard.)
    """
    try:
        return int(module().cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        return 0


def is_array(raw: Any) -> bool:
    """True for an array of the CuPy in use."""
    if type(raw).__module__.startswith("cupy"):
        return True
    return _emulator is not None and isinstance(raw, _emulator.ndarray)


def nccl() -> ModuleType:
    """``cupy.cuda.nccl`` of the CuPy in use (ImportError where it is missing)."""
    if _EMULATED_GPUS is None:
        from cupy.cuda import nccl as _nccl

        return _nccl  # type: ignore[no-any-return]  # untyped CuPy
    return module().cuda.nccl  # type: ignore[no-any-return]  # untyped CuPy
