"""Shared fixtures: every test that takes ``device`` runs on cpu(0) and on each visible GPU.

Multi-device tests take ``devices``: [cpu(0), cpu(1)] always, plus [gpu(0), gpu(1)] with two
GPUs and [cpu(0), gpu(0)] with one, so replica logic runs everywhere.

With ``GLUONLITE_EMULATE_GPUS=2`` the GPUs are emulated (``tests/cuda_host/fake_cupy.py``
behind ``gluonlite._cupy``), so the GPU parameters run here through gluonlite's real GPU
code. Every test that runs on a GPU is marked ``gpu``: ``pytest -m gpu`` selects exactly
them (``make test`` runs them so once, ``make gpu-check`` on a real GPU).
"""

from __future__ import annotations

import sys

import pytest

import gluonlite as mx
from gluonlite import _cupy

_GPUS = mx.num_gpus()
if _cupy.emulated_gpus() is not None:
    # Tests that drive CuPy themselves (``import cupy``) get the emulated one too.
    sys.modules["cupy"] = _cupy.module()
    sys.modules["cupyx"] = _cupy.module().cupyx

# tests/data/make_mxnet_params.py runs under MXNet 1.9.1 in a venv of its own; importing it
# here (as --doctest-modules would) needs mxnet.
collect_ignore = ["data"]


def _device_params():
    params = [pytest.param(mx.cpu(0), id="cpu0")]
    params += [pytest.param(mx.gpu(i), id=f"gpu{i}") for i in range(_GPUS)]
    return params


def _device_group_params():
    groups = [pytest.param([mx.cpu(0), mx.cpu(1)], id="cpu0-cpu1")]
    if _GPUS >= 2:
        groups.append(pytest.param([mx.gpu(0), mx.gpu(1)], id="gpu0-gpu1"))
    if _GPUS >= 1:
        groups.append(pytest.param([mx.cpu(0), mx.gpu(0)], id="cpu0-gpu0"))
    return groups


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a GPU (real or emulated)")
    config.addinivalue_line(
        "markers", "slow: a long test (a build, a subprocess suite); scheduled first"
    )


def _on_gpu(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, mx.Device) and v.device_type == "gpu" for v in values)


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "gpu" in getattr(item, "fixturenames", ()) or any(
            _on_gpu(params.get(name)) for name in ("device", "devices")
        ):
            item.add_marker(pytest.mark.gpu)
    # The long tests first, so that pytest-xdist's workers start them at once and the short
    # ones fill the time around them, rather than one long test running alone at the end.
    # (A stable sort: every worker collects the same order, as xdist requires.)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(params=_device_params())
def device(request):
    return request.param


@pytest.fixture(params=_device_group_params())
def devices(request):
    return request.param


@pytest.fixture
def gpu():
    """gpu(0), or a clean skip on machines without one."""
    if _GPUS == 0:
        pytest.skip("needs a GPU: gluonlite.num_gpus() is 0 on this machine")
    return mx.gpu(0)


@pytest.fixture
def emulated_gpus():
    """A fresh emulated machine with two GPUs, whatever ``GLUONLITE_EMULATE_GPUS`` says: the
    emulated ``cupy`` module (``.machine`` holds its state). gluonlite's CuPy-side caches
    are emptied before and after, so no compiled module or communicator leaks across."""
    from gluonlite import _backend, _collective, _kernels, device
    from tests.cuda_host import fake_cupy

    def clear_caches():
        for cached in (
            device.num_gpus,
            _backend._enable_peer_access,
            _kernels._load_module,
            _kernels._runtime,
            _collective.nccl_module,
            _collective.nccl_dtypes,
            _collective._communicators,
        ):
            cached.cache_clear()
        _kernels._choices.clear()

    fake = fake_cupy.emulated(2)
    patch = pytest.MonkeyPatch()
    patch.setattr(_cupy, "_EMULATED_GPUS", 2)
    patch.setattr(_cupy, "_emulator", fake)
    patch.setitem(sys.modules, "cupy", fake)
    clear_caches()
    try:
        yield fake
    finally:
        patch.undo()
        clear_caches()


@pytest.fixture(autouse=True)
def _seeded():
    mx.random.seed(1234)
    yield
