"""pytest-benchmark version of ``gluonlite-bench replicate``: ``initialize`` and
``reset_device`` of 20 parameters of 64x64 over N devices.

Collected by the normal test run with ``--benchmark-disable`` (each body runs once and its
checks hold); ``pytest benchmarks/bench_replicate.py --benchmark-enable`` times them. The
CLI suite runs the larger sizes and reports bytes/s against plain copies.
"""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite.bench import replicate

SPEC = {"params": 20, "shape": [64, 64]}


def _groups():
    groups = [pytest.param(1, "cpu", id="cpu-1"), pytest.param(2, "cpu", id="cpu-2")]
    if mx.num_gpus() >= 2:
        groups.append(pytest.param(1, "gpu", id="gpu-1"))
    return groups


def _devices(kind, first, n):
    make = mx.cpu if kind == "cpu" else mx.gpu
    return [make(first + i) for i in range(n)]


@pytest.mark.parametrize("n, kind", _groups())
def test_initialize(benchmark, n, kind):
    devices = _devices(kind, 0, n)
    params = replicate.make_params(SPEC)
    benchmark(replicate.initialize_all, params, devices)
    for p in params:
        assert p.list_device() == devices
        first = p.list_data()[0].asnumpy()
        assert numpy.abs(first).max() <= 0.07  # Uniform(0.07), the default initializer
        for replica in p.list_data()[1:]:
            numpy.testing.assert_array_equal(replica.asnumpy(), first)


@pytest.mark.parametrize("n, kind", _groups())
def test_reset_device_round_trip(benchmark, n, kind):
    src, dst = _devices(kind, 0, n), _devices(kind, n, n)
    params = replicate.make_params(SPEC)
    replicate.initialize_all(params, src)
    before = [p.data(src[0]).asnumpy() for p in params]

    def round_trip():
        replicate.reset_all(params, dst)
        replicate.reset_all(params, src)

    benchmark(round_trip)
    for p, value in zip(params, before):
        assert p.list_device() == src
        for replica in p.list_data():
            numpy.testing.assert_array_equal(replica.asnumpy(), value)
