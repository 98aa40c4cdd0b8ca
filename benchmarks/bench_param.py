"""pytest-benchmark version of ``gluonlite-bench param``: Parameter accessors over 1000
parameters with two replicas.

Collected by the normal test run with ``--benchmark-disable`` (each body runs once and its
checks hold); ``pytest benchmarks/bench_param.py --benchmark-enable`` times them. Every
timed call loops over all 1000 parameters: divide by 1000 for the time per accessor call.
"""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from gluonlite.bench import param

COUNT = 1000
GROUPS = [pytest.param([mx.cpu(0), mx.cpu(1)], id="cpu0-cpu1")]
if mx.num_gpus() >= 1:
    GROUPS.append(pytest.param([mx.gpu(i) for i in range(min(2, mx.num_gpus()))], id="gpu"))


@pytest.fixture(params=GROUPS)
def devices(request):
    return request.param


@pytest.fixture
def params(devices):
    return param.make_params(COUNT, (8, 8), devices)


@pytest.mark.parametrize("op", ["data()", "data(device)", "grad()"])
def test_single_replica_accessors(benchmark, params, devices, op):
    accessor = param.accessor(op, devices)

    def run():
        with devices[0]:
            return [accessor(p) for p in params]

    got = benchmark(run)
    # data() and grad() resolve the current device; data(device) the one asked for.
    expected = devices[-1] if op == "data(device)" else devices[0]
    assert len(got) == COUNT and {a.device for a in got} == {expected}


def test_list_data(benchmark, params, devices):
    call = param.accessor("list_data()", devices)
    got = benchmark(lambda: [call(p) for p in params])
    assert [a.device for a in got[-1]] == devices
    numpy.testing.assert_array_equal(got[-1][0].asnumpy(), got[-1][-1].asnumpy())


def test_zero_grad(benchmark, params, devices):
    for p in params[:3]:
        for g in p.list_grad():
            g[:] = 1.0
    call = param.accessor("zero_grad()", devices)
    benchmark(lambda: [call(p) for p in params])
    assert all(float(abs(g).sum().item()) == 0.0 for p in params[:3] for g in p.list_grad())
