"""The emulated CuPy enforces the rules that decide whether GPU code is right; each test
breaks one rule and expects the error (or the wrong values) a GPU would give."""

import numpy as np
import pytest

from tests.cuda_host import fake_cupy, harness

KERNEL = """
extern "C" __global__ void scale(const float* x, float* y, int n, float a) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i];
}
"""


@pytest.fixture
def scale(emulated_gpus):
    harness.require_toolchain()
    with emulated_gpus.cuda.Device(0):
        return emulated_gpus.RawModule(code=KERNEL, name_expressions=("scale",)).get_function(
            "scale"
        )


def test_arrays_belong_to_their_device(emulated_gpus):
    cp = emulated_gpus
    with cp.cuda.Device(1):
        a = cp.ones(3, np.float32)
    assert a.device.id == 1
    with pytest.warns(fake_cupy.PerformanceWarning, match="peer access has been activated"):
        b = a + 1  # under gpu(0): CuPy enables peer access on the spot and computes there
    assert b.device.id == 0
    cp.machine.peer.clear()
    cp.machine.peer_capable = False
    with pytest.raises(ValueError, match="peer access is unavailable"):
        a * 2


def test_no_implicit_host_conversion(emulated_gpus):
    a = emulated_gpus.zeros(2)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="NumPy array on the host"):
        emulated_gpus.add(a, np.ones(2))


def test_freed_memory_is_poisoned_and_reused_at_once(emulated_gpus):
    cp = emulated_gpus
    a = cp.ones(4, np.float32)
    ptr = a.data.ptr
    del a
    b = cp.empty(4, np.float32)
    assert b.data.ptr == ptr
    assert np.isnan(cp.asnumpy(b)).all()


def test_async_copy_runs_in_its_streams_order(emulated_gpus):
    cp = emulated_gpus
    with cp.cuda.Device(0):
        src = cp.asarray(np.arange(4, dtype=np.float32))
    with cp.cuda.Device(1):
        dst = cp.zeros(4, np.float32)
        stream = cp.cuda.Stream()
        with stream:
            cp.cuda.runtime.memcpyPeerAsync(dst.data.ptr, 1, src.data.ptr, 0, 16, stream.ptr)
        # The null stream of gpu(1) is not ordered after `stream`: the copy has not run.
        np.testing.assert_array_equal(cp.asnumpy(dst), 0)
        cp.cuda.get_current_stream().wait_event(stream.record())
        np.testing.assert_array_equal(cp.asnumpy(dst), np.arange(4))


def test_kernel_arguments_are_checked_against_the_parameter_types(emulated_gpus, scale):
    cp = emulated_gpus
    x, y = cp.ones(4, np.float32), cp.empty(4, np.float32)
    scale((1,), (4,), (x, y, np.int32(4), np.float32(3)))
    np.testing.assert_array_equal(cp.asnumpy(y), 3)
    with pytest.raises(TypeError, match="expected numpy.int32"):
        scale((1,), (4,), (x, y, 4, np.float32(3)))
    with pytest.raises(TypeError, match="float32"):
        scale((1,), (4,), (x.astype(np.float64), y, np.int32(4), np.float32(3)))
    with pytest.raises(TypeError, match="host"):
        scale((1,), (4,), (np.ones(4, np.float32), y, np.int32(4), np.float32(3)))


def test_launch_limits_are_the_h200s(emulated_gpus, scale):
    cp = emulated_gpus
    x, y = cp.ones(4, np.float32), cp.empty(4, np.float32)
    args = (x, y, np.int32(4), np.float32(1))
    for grid, block in (((1, 65536), (4,)), ((1,), (2048,)), ((1,), (32, 32, 2)), ((0,), (4,))):
        with pytest.raises(fake_cupy.CUDARuntimeError, match="InvalidConfiguration"):
            scale(grid, block, args)
    with pytest.raises(fake_cupy.CUDARuntimeError, match="shared memory"):
        scale((1,), (4,), args, shared_mem=64 * 1024)


def test_kernels_read_other_devices_only_with_peer_access(emulated_gpus, scale):
    cp = emulated_gpus
    with cp.cuda.Device(1):
        x = cp.ones(4, np.float32)
    y = cp.empty(4, np.float32)
    with pytest.raises(fake_cupy.EmulationError, match="without peer access"):
        scale((1,), (4,), (x, y, np.int32(4), np.float32(1)))
    cp.cuda.runtime.deviceEnablePeerAccess(1)
    scale((1,), (4,), (x, y, np.int32(4), np.float32(1)))
    np.testing.assert_array_equal(cp.asnumpy(y), 1)


def test_nccl_group_must_reach_every_rank(emulated_gpus):
    cp = emulated_gpus
    nccl = cp.cuda.nccl
    comms = nccl.NcclCommunicator.initAll([0, 1])
    a = cp.ones(3, np.float32)
    nccl.groupStart()
    comms[0].allReduce(a.data.ptr, a.data.ptr, 3, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 0)
    with pytest.raises(fake_cupy.EmulationError, match="wait forever"):
        nccl.groupEnd()
