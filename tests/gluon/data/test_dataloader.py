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
    ds = gdata.ArrayDataset(numpy.arange(14, dtype=numpy.float32).reshape(7, 2),
                            numpy.arange(7))
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
    custom = gdata.DataLoader(ds, batch_sampler=[[6, 0], [1]],
                              batchify_fn=lambda samples: [s[1] for s in samples])
    assert list(custom) == [[6, 0], [1]]


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_size=-2), ValueError, "batch_size"),
    (dict(batch_size="4"), TypeError, "batch_size"),
    (dict(), ValueError, "batch_size"),
    (dict(batch_size=2, num_workers=-1), ValueError, "num_workers"),
    (dict(batch_size=2, last_batch="drop"), ValueError, "last_batch"),
    (dict(batch_size=2, shuffle=True, sampler=gdata.SequentialSampler(3)), ValueError,
     "shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), ValueError, "batch_sampler"),
    (dict(batch_size=2, timeout=0), ValueError, "timeout"),
    (dict(batch_size=2, batchify_fn=3), TypeError, "batchify_fn"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gdata.DataLoader(gdata.SimpleDataset([1, 2, 3]), **kwargs)
    with pytest.raises(TypeError, match="dataset"):
        gdata.DataLoader(42, batch_size=1)


def test_workers_load_in_parallel_processes_in_order(no_new_children):
    loader = gdata.DataLoader(MeetDataset(24, parties=2), batch_size=3, num_workers=2,
                              prefetch=4)
    workers = set()
    for _ in range(2):   # the pool serves several epochs
        batches = list(loader)
        values = numpy.concatenate([b[0].asnumpy() for b in batches])
        assert values.tolist() == list(range(24))           # sampler order kept
        pids = {int(p) for b in batches for p in b[1].asnumpy()}
        assert os.getpid() not in pids
        workers |= pids
        draws = numpy.concatenate([b[2].asnumpy() for b in batches])
        assert len(set(draws.tolist())) == len(draws)        # each worker its own stream
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

    loader = gdata.DataLoader(Blocking(), batch_size=1, num_workers=1, thread_pool=True,
                              timeout=0.2)
    with pytest.raises(TimeoutError, match="timeout=0.2"):
        next(iter(loader))
    gate.set()
    assert [b.asnumpy().tolist() for b in loader] == [[0.0], [1.0]]
