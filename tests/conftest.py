"""Shared fixtures: every test that takes ``device`` runs on cpu(0) and on each visible GPU.

Multi-device tests take ``devices``: [cpu(0), cpu(1)] always, plus [gpu(0), gpu(1)] with two
GPUs and [cpu(0), gpu(0)] with one, so replica logic runs everywhere.
"""
from __future__ import annotations

import numpy
import pytest

import gluonlite as mx

_GPUS = mx.num_gpus()

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


@pytest.fixture(autouse=True)
def _seeded():
    mx.random.seed(1234)
    yield
