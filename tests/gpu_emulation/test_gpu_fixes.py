"""The GPU bugs of issue 14, each shown on the emulated GPUs (``emulated_gpus``): every test
here failed before its fix."""

import warnings

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _backend, _collective, _kernels, kvstore
from gluonlite.gluon import trainer


def test_peer_copy_is_ordered_by_events_and_keeps_its_source(emulated_gpus):
    cp, machine = emulated_gpus, emulated_gpus.machine
    expected = np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1:3]
    with cp.cuda.Device(0):
        # A strided view: transfer copies it into a temporary that only the copy holds.
        view = cp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))[:, 1:3]
    syncs = machine.host_syncs
    out = _backend.transfer(view, mx.gpu(0), mx.gpu(1))
    blocked = machine.host_syncs - syncs
    with cp.cuda.Device(0):
        reused = cp.empty((3, 2), np.float32)  # takes the temporary's memory if it is free
        reused[...] = -1
    with cp.cuda.Device(1):
        np.testing.assert_array_equal(cp.asnumpy(out), expected)
    assert blocked == 0, "the peer copy blocked the host"


def test_empty_cache_frees_its_own_device(emulated_gpus):
    cp, machine = emulated_gpus, emulated_gpus.machine
    with cp.cuda.Device(1):
        cp.zeros(1000, np.float32)  # freed at once, cached by device 1's pool
    assert machine.pools[1].cached > 0
    mx.gpu(1).empty_cache()  # while gpu(0) is current
    assert machine.pools[1].cached == 0


def _pair(cp, host):
    arrays = []
    for device in (0, 1):
        with cp.cuda.Device(device):
            arrays.append(cp.asarray(host * (device + 1)))
    return arrays


def test_nccl_reduces_bfloat16(emulated_gpus):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    cp, machine = emulated_gpus, emulated_gpus.machine
    bf16 = np.dtype(ml_dtypes.bfloat16)
    assert bf16 in _collective.nccl_dtypes()
    arrays = _pair(cp, np.array([1.5, -2.0, 3.25], bf16))
    trainer.allreduce(arrays, [mx.gpu(0), mx.gpu(1)], use_nccl=True)
    assert machine.collectives == [("allReduce", bf16, 3)]
    for device, array in enumerate(arrays):
        with cp.cuda.Device(device):
            np.testing.assert_array_equal(cp.asnumpy(array).astype(np.float32), [4.5, -6.0, 9.75])


def test_nccl_takes_only_c_contiguous_buffers(emulated_gpus):
    cp, machine = emulated_gpus, emulated_gpus.machine
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    views = [a[:, ::2] for a in _pair(cp, host)]
    devices = [mx.gpu(0), mx.gpu(1)]
    with pytest.raises(ValueError, match="C-contiguous"):
        _collective.nccl_allreduce(views, devices)
    trainer.allreduce(views, devices, use_nccl=True)  # the copying path instead
    assert machine.collectives == []
    for device, view in enumerate(views):
        with cp.cuda.Device(device):
            np.testing.assert_array_equal(cp.asnumpy(view), 3 * host[:, ::2])


class _TwoRanks:
    """An MPI communicator of two ranks, this one rank 0, the other contributing rows 1
    and 5 of ones; requests complete at once."""

    done = type("Request", (), {"Test": lambda self: True})()
    other_ids = np.array([1, 5], np.int64)

    def Get_size(self):
        return 2

    def Get_rank(self):
        return 0

    def Iallgather(self, send, recv):
        recv[:] = [send[0], self.other_ids.size]
        return self.done

    def Iallgatherv(self, send, recv):
        every, lengths = recv
        every[:] = np.concatenate([send, self.other_ids])
        return self.done

    def Iallreduce(self, _in_place, buf, op):
        union = np.unique(np.concatenate([self.ids, self.other_ids]))
        buf[np.searchsorted(union, self.other_ids)] += 1
        return self.done


def test_kvstore_allreduce_rows_returns_on_the_values_device(emulated_gpus):
    cp = emulated_gpus
    store = object.__new__(kvstore.MPIKVStore)
    kvstore.KVStore.__init__(store, "dist_sync")
    store._comm, store.timeout = _TwoRanks(), 5.0
    store._comm.ids = np.array([0, 1], np.int64)
    store._mpi = type("MPI", (), {"IN_PLACE": None, "SUM": None})
    with cp.cuda.Device(1):
        indices = cp.asarray(store._comm.ids)
        values = cp.asarray(np.full((2, 3), 2.0, np.float32))
    union, block = store.allreduce_rows(indices, values, (8, 3), name="w")  # gpu(0) current
    assert union.device.id == 1 and block.device.id == 1
    with cp.cuda.Device(1):
        np.testing.assert_array_equal(cp.asnumpy(union), [0, 1, 5])
        np.testing.assert_array_equal(cp.asnumpy(block), [[2] * 3, [3] * 3, [1] * 3])


def test_optimizer_kernels_compile_without_fused_multiply_add(emulated_gpus):
    cp, machine = emulated_gpus, emulated_gpus.machine
    rng = np.random.default_rng(0)
    w, g = (rng.standard_normal(5).astype(np.float32) for _ in range(2))
    with cp.cuda.Device(0):
        weight, grad = cp.asarray(w), cp.asarray(g)
        _kernels.multi_tensor_sgd(
            [weight],
            [grad],
            None,
            [0.5],
            [0.25],
            momentum=0.0,
            rescale_grad=1.0,
            clip_gradient=None,
        )
        got = cp.asnumpy(weight)
    [(expressions, options)] = machine.modules
    assert "--fmad=false" in options and "multi_tensor_sgd<false>" in expressions
    lr, wd = np.float32(0.5), np.float32(0.25)
    np.testing.assert_array_equal(got, w - lr * (g + wd * w))


def test_host_to_gpu_transfer_keeps_zero_d_arrays_zero_d(emulated_gpus):
    # numpy.ascontiguousarray returns at least 1-d: a 0-d host value became shape (1,).
    moved = _backend.transfer(np.array(2.5), mx.cpu(0), mx.gpu(1))
    assert moved.shape == () and moved.device.id == 1


def test_backward_on_gpu1_computes_on_gpu1_while_gpu0_is_current(emulated_gpus):
    """Found by the emulated run after the merges: backward ran a gpu(1) graph's gradient
    ops (and a float index array's conversion) with gpu(0) current, so they went through
    peer access and their results landed on gpu(0)."""
    from tests.cuda_host.fake_cupy import PerformanceWarning

    x = mx.np.array([[1.0, -2.0], [3.0, 4.0]], device=mx.gpu(1))
    w = mx.np.array([[0.5, 1.0], [-1.0, 2.0]], device=mx.gpu(1))
    x.attach_grad()
    w.attach_grad()
    index = mx.np.array([1.0, 0.0], device=mx.gpu(1))  # float index array (MXNet accepts)
    with emulated_gpus.cuda.Device(0), warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        with mx.autograd.record():
            y = (mx.np.tanh(mx.np.matmul(x, w)) * x)[index].sum()
        y.backward()
        with mx.autograd.record():
            z = mx.np.exp(x)  # one op on leaves: the single-op path
        z.backward()
    assert x.grad.device == mx.gpu(1) and w.grad.device == mx.gpu(1)
    np.testing.assert_allclose(x.grad.asnumpy(), np.exp(x.asnumpy()))
