"""DataLoader: batching, last_batch, argument checks, and worker processes that load in
parallel and never outlive an error."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import numpy
import pytest

import gluonlite as mx
from gluonlite.gluon import data as gdata


class PidDataset(gdata.Dataset):
    """Sample i is (i, pid of the process that read it, a random draw); index ``fail_at``
    raises."""

    def __init__(self, n, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"sample {i} is corrupt")
        return numpy.float32(i), os.getpid(), numpy.random.random()


class MeetDataset(PidDataset):
    """A PidDataset whose workers each wait, on their first sample, until ``parties``
    processes are reading at once: it can only be read by that many parallel workers."""

    def __init__(self, n, parties):
        super().__init__(n)
        self._barrier, self._met = multiprocessing.Barrier(parties), False

    def __getitem__(self, i):
        if not self._met:
            self._met = True
            self._barrier.wait(timeout=30)
        return super().__getitem__(i)


@pytest.fixture
def no_new_children():
    """A check that no child process started during the test is still alive."""
    before = set(multiprocessing.active_children())
    return lambda: set(multiprocessing.active_children()) <= before


def test_batches_in_process():
    ds = gdata.ArrayDataset(numpy.arange(14, dtype=numpy.float32).reshape(7, 2), numpy.arange(7))
    loader = gdata.DataLoader(ds, batch_size=3)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    x, y = batches[0]
    assert isinstance(x, mx.np.ndarray) and x.device == mx.cpu(0)
    assert y.asnumpy().tolist() == [0, 1, 2]
    assert len(list(gdata.DataLoader(ds, batch_size=3, last_batch="discard"))) == 2
    roll = gdata.DataLoader(ds, batch_size=3, last_batch="rollover")
    assert [b[1].asnumpy().tolist() for b in roll] == [[0, 1, 2], [3, 4, 5]]
    assert [b[1].asnumpy().tolist() for b in roll][0] == [6, 0, 1]
    numpy.random.seed(1)
    shuffled = numpy.concatenate([b[1].asnumpy() for b in gdata.DataLoader(ds, 2, shuffle=True)])
    assert sorted(shuffled.tolist()) == list(range(7)) and shuffled.tolist() != list(range(7))
    custom = gdata.DataLoader(
        ds, batch_sampler=[[6, 0], [1]], batchify_fn=lambda samples: [s[1] for s in samples]
    )
    assert list(custom) == [[6, 0], [1]]


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(batch_size=-2), ValueError, "batch_size"),
        (dict(batch_size="4"), TypeError, "batch_size"),
        (dict(), ValueError, "batch_size"),
        (dict(batch_size=2, num_workers=-1), ValueError, "num_workers"),
        (dict(batch_size=2, last_batch="drop"), ValueError, "last_batch"),
        (
            dict(batch_size=2, shuffle=True, sampler=gdata.SequentialSampler(3)),
            ValueError,
            "shuffle",
        ),
        (dict(batch_sampler=[[0]], batch_size=2), ValueError, "batch_sampler"),
        (dict(batch_size=2, timeout=0), ValueError, "timeout"),
        (dict(batch_size=2, batchify_fn=3), TypeError, "batchify_fn"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gdata.DataLoader(gdata.SimpleDataset([1, 2, 3]), **kwargs)
    with pytest.raises(TypeError, match="dataset"):
        gdata.DataLoader(42, batch_size=1)


def test_workers_load_in_parallel_processes_in_order(no_new_children):
    loader = gdata.DataLoader(MeetDataset(24, parties=2), batch_size=3, num_workers=2, prefetch=4)
    workers = set()
    for _ in range(2):  # the pool serves several epochs
        batches = list(loader)
        values = numpy.concatenate([b[0].asnumpy() for b in batches])
        assert values.tolist() == list(range(24))  # sampler order kept
        pids = {int(p) for b in batches for p in b[1].asnumpy()}
        assert os.getpid() not in pids
        workers |= pids
        draws = numpy.concatenate([b[2].asnumpy() for b in batches])
        assert len(set(draws.tolist())) == len(draws)  # each worker its own stream
    # Both workers read (at once, in the first epoch: MeetDataset), and only they did.
    assert len(workers) == 2
    loader._shutdown()
    assert no_new_children()


def test_worker_error_propagates_and_stops_workers(no_new_children):
    loader = gdata.DataLoader(PidDataset(12, fail_at=7), batch_size=2, num_workers=2)
    with pytest.raises(KeyError, match="sample 7 is corrupt"):
        for _ in loader:
            pass
    assert no_new_children()
    # The loader still works after the failure with a fresh pool (the bad index skipped).
    loader._dataset.fail_at = None
    assert len(list(loader)) == 6
    loader._shutdown()
    assert no_new_children()


def test_interrupt_in_loop_body_stops_workers(no_new_children):
    loader = gdata.DataLoader(PidDataset(40), batch_size=2, num_workers=2, prefetch=6)
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(loader):
            if i == 1:
                raise KeyboardInterrupt
    assert no_new_children()


class CtrlC(gdata.Dataset):
    """Reading sample 4 sends SIGINT to the parent, as Ctrl-C in a terminal would."""

    def __len__(self):
        return 40

    def __getitem__(self, i):
        if i == 4:
            os.kill(os.getppid(), signal.SIGINT)
        return numpy.float32(i)


def test_ctrl_c_while_waiting_for_workers_stops_them(no_new_children):
    loader = gdata.DataLoader(CtrlC(), batch_size=2, num_workers=2, prefetch=2)
    with pytest.raises(KeyboardInterrupt):
        for _ in loader:
            pass
    assert no_new_children()


def test_thread_pool_and_timeout():
    gate = threading.Event()

    class Blocking(gdata.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            gate.wait(10)
            return numpy.float32(i)

    loader = gdata.DataLoader(
        Blocking(), batch_size=1, num_workers=1, thread_pool=True, timeout=0.2
    )
    with pytest.raises(TimeoutError, match="timeout=0.2"):
        next(iter(loader))
    gate.set()
    assert [b.asnumpy().tolist() for b in loader] == [[0.0], [1.0]]


# ----------------------------------------------------------------------- pin_memory
def _pairs(n=6):
    return gdata.ArrayDataset(
        numpy.arange(n * 3, dtype=numpy.float32).reshape(n, 3), numpy.arange(n, dtype=numpy.int64)
    )


def test_pin_memory_without_a_gpu_changes_nothing():
    if mx.num_gpus():
        pytest.skip("a GPU is visible: test_pin_memory_places_batches_in_pinned_memory")
    from gluonlite import _backend

    plain = list(gdata.DataLoader(_pairs(), batch_size=4))
    pinned = list(gdata.DataLoader(_pairs(), batch_size=4, pin_memory=True, pin_device_id=3))
    for (x, y), (px, py) in zip(plain, pinned):
        assert px.device == mx.cpu(0)
        numpy.testing.assert_array_equal(px.asnumpy(), x.asnumpy())
        numpy.testing.assert_array_equal(py.asnumpy(), y.asnumpy())
        assert px._data.base is None  # an ordinary host array, as in MXNet's CPU build
    assert _backend.pinned_owner(numpy.zeros(3)) is None


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pin_memory_places_batches_in_pinned_memory(emulated_gpus, num_workers):
    from gluonlite import _backend

    machine = emulated_gpus.machine
    loader = gdata.DataLoader(
        _pairs(), batch_size=4, pin_memory=True, pin_device_id=1, num_workers=num_workers
    )
    batches = list(loader)
    assert len(batches) == 2
    plain = list(gdata.DataLoader(_pairs(), batch_size=4))
    for (x, y), (px, py) in zip(plain, batches):
        for a, pa in ((x, px), (y, py)):
            assert pa.device == mx.cpu(0) and pa.dtype == a.dtype
            numpy.testing.assert_array_equal(pa.asnumpy(), a.asnumpy())
            # The buffer is the pinned allocator's, allocated with gpu(pin_device_id) current.
            owner = _backend.pinned_owner(pa._data)
            assert isinstance(owner, emulated_gpus.cuda.PinnedMemoryPointer)
            assert owner.device_id == 1
    assert [device for _, device in machine.pinned] == [1] * 4


def test_copy_from_a_pinned_batch_is_asynchronous(emulated_gpus):
    from gluonlite import _backend

    machine = emulated_gpus.machine
    ((x, y),) = gdata.DataLoader(_pairs(4), batch_size=4, pin_memory=True)
    expected = x.asnumpy().copy()
    stream = machine.current_stream(0)
    parts = mx.gluon.utils.split_and_load(x, [mx.gpu(0)])
    # Queued on gpu(0)'s stream, not yet run: the host did not wait for it.
    assert machine.pinned_copies == 1 and stream.executed < stream.enqueued
    assert any(
        held is not None and _backend.pinned_owner(held) is not None
        for _, held in _backend._in_flight
    )
    del x  # the batch may go: the copy holds its source until it has run
    numpy.testing.assert_array_equal(parts[0].asnumpy(), expected)
    # A pageable source is copied at once, as before.
    moved = mx.np.array(numpy.ones(3, numpy.float32)).to_device(mx.gpu(1))
    assert machine.pinned_copies == 1
    numpy.testing.assert_array_equal(moved.asnumpy(), 1.0)
    # Both devices read their own copy of a pinned batch split in two.
    ((x, _),) = gdata.DataLoader(_pairs(4), batch_size=4, pin_memory=True)
    halves = mx.gluon.utils.split_and_load(x, [mx.gpu(0), mx.gpu(1)])
    assert machine.pinned_copies == 3
    numpy.testing.assert_array_equal(numpy.concatenate([h.asnumpy() for h in halves]), expected)
    # Empty and 0-d pinned arrays move too.
    for shape in ((0, 3), ()):
        host = _backend.pinned_empty(shape, numpy.float32, 0)
        host[...] = 5.0
        moved = mx.np.ndarray(host, mx.cpu(0)).to_device(mx.gpu(0))
        assert moved.shape == shape
        numpy.testing.assert_array_equal(moved.asnumpy(), host)


def test_an_async_copy_whose_pinned_source_is_freed_is_caught(emulated_gpus):
    # The emulator's rule that the test above relies on: without the hold, the copy fails.
    from tests.cuda_host import fake_cupy

    source = numpy.frombuffer(emulated_gpus.cuda.alloc_pinned_memory(12), numpy.float32, 3)
    source[...] = 2.0
    with emulated_gpus.cuda.Device(0):
        out = emulated_gpus.empty((3,), numpy.float32)
        out.set(source, stream=emulated_gpus.cuda.get_current_stream())
        del source
        with pytest.raises(fake_cupy.EmulationError, match="freed before the copy ran"):
            emulated_gpus.cuda.get_current_stream().synchronize()


def test_pin_device_id_is_checked(emulated_gpus):
    with pytest.raises(ValueError, match=r"pin_device_id=2, but there are only 2 GPUs"):
        gdata.DataLoader(_pairs(), batch_size=2, pin_memory=True, pin_device_id=2)
    for bad in ("0", -1, True, 1.0):
        with pytest.raises(TypeError, match="pin_device_id must be a GPU id"):
            gdata.DataLoader(_pairs(), batch_size=2, pin_memory=True, pin_device_id=bad)
