"""Datasets, samplers and batchify functions."""

from __future__ import annotations

import struct

import numpy
import pytest

import gluonlite as mx
from gluonlite.gluon import data as gdata
from gluonlite.gluon.data import batchify


def test_array_and_simple_dataset_transforms():
    ds = gdata.ArrayDataset(numpy.arange(6).reshape(3, 2), [10, 11, 12])
    assert len(ds) == 3
    x, y = ds[1]
    assert x.tolist() == [2, 3] and y == 11
    calls = []

    def double(x, y):
        calls.append(y)
        return x * 2, y

    lazy = ds.transform(double)
    assert calls == []  # nothing computed before access
    assert lazy[2][0].tolist() == [8, 10] and calls == [12]
    eager = ds.transform(double, lazy=False)
    assert isinstance(eager, gdata.SimpleDataset) and calls == [12, 10, 11, 12]
    first = ds.transform_first(lambda x: x.sum())
    assert first[0] == (1, 10)
    single = gdata.SimpleDataset([5, 6, 7])
    assert single.transform_first(lambda v: -v)[1] == -6
    assert gdata.ArrayDataset([1, 2, 3])[2] == 3
    with pytest.raises(ValueError, match="same length"):
        gdata.ArrayDataset([1, 2], [1, 2, 3])


def test_filter_shard_take_sample():
    ds = gdata.SimpleDataset(list(range(10)))
    assert list(ds.filter(lambda v: v % 3 == 0)) == [0, 3, 6, 9]
    shards = [list(ds.shard(3, i)) for i in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert list(ds.take(2)) == [0, 1] and len(ds.take(None)) == 10
    assert list(ds.sample([9, 0])) == [9, 0]
    with pytest.raises(ValueError, match="index"):
        ds.shard(3, 3)


def test_samplers():
    assert list(gdata.SequentialSampler(3, start=2)) == [2, 3, 4]
    numpy.random.seed(0)
    perm = list(gdata.RandomSampler(8))
    assert sorted(perm) == list(range(8)) and perm != list(range(8))
    assert list(gdata.IntervalSampler(7, 3)) == [0, 3, 6, 1, 4, 2, 5]
    assert list(gdata.IntervalSampler(7, 3, rollover=False)) == [0, 3, 6]
    assert len(gdata.IntervalSampler(7, 3, rollover=False)) == 3
    seq = gdata.SequentialSampler(7)
    keep = gdata.BatchSampler(seq, 3, "keep")
    assert list(keep) == [[0, 1, 2], [3, 4, 5], [6]] and len(keep) == 3
    discard = gdata.BatchSampler(seq, 3, "discard")
    assert list(discard) == [[0, 1, 2], [3, 4, 5]] and len(discard) == 2
    roll = gdata.BatchSampler(seq, 3, "rollover")
    assert list(roll) == [[0, 1, 2], [3, 4, 5]]
    assert len(roll) == 2  # 1 left over + 7 -> 2 full batches
    assert list(roll) == [[6, 0, 1], [2, 3, 4]]
    assert list(roll) == [[5, 6, 0], [1, 2, 3], [4, 5, 6]]  # 2 + 7 left over: 3 batches


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: gdata.BatchSampler(gdata.SequentialSampler(3), -1), ValueError, "batch_size"),
        (lambda: gdata.BatchSampler(gdata.SequentialSampler(3), 2.5), TypeError, "batch_size"),
        (
            lambda: gdata.BatchSampler(gdata.SequentialSampler(3), 2, "drop"),
            ValueError,
            "last_batch",
        ),
        (lambda: gdata.SequentialSampler(-2), ValueError, "length"),
        (lambda: gdata.IntervalSampler(5, 0), ValueError, "interval"),
    ],
)
def test_sampler_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_batchify_stack_pad_group(device):
    batch = batchify.Stack()(
        [numpy.ones((2, 3), numpy.float32), numpy.zeros((2, 3), numpy.float32)]
    )
    assert isinstance(batch, mx.np.ndarray) and batch.shape == (2, 2, 3)
    assert batchify.Stack()([1.0, 2.0]).dtype == numpy.float32
    assert batchify.Stack()([1, 2]).dtype == numpy.int64
    on_device = batchify.Stack()([mx.np.ones(2, device=device), mx.np.zeros(2, device=device)])
    assert on_device.device == device and on_device.shape == (2, 2)
    with pytest.raises(ValueError, match="Pad"):
        batchify.Stack()([numpy.ones(2), numpy.ones(3)])
    padded = batchify.Pad(val=-1, round_to=4)([numpy.array([[1, 2, 3]]), numpy.array([[4], [5]])])
    assert padded.shape == (2, 4, 4)
    assert padded.asnumpy()[0, 0].tolist() == [1, 2, 3, -1]
    assert padded.asnumpy()[1, :, 0].tolist() == [4, 5, -1, -1]
    data, label = batchify.Tuple(batchify.Stack(), batchify.Pad())(
        [(numpy.ones(2), [1]), (numpy.zeros(2), [2, 3])]
    )
    assert data.shape == (2, 2) and label.asnumpy().tolist() == [[1, 0], [2, 3]]
    with pytest.raises(ValueError, match="fields"):
        batchify.Group(batchify.Stack())([(1, 2), (3, 4)])
    appended = batchify.Append()([numpy.ones(2), numpy.ones(3)])
    assert [a.shape for a in appended] == [(1, 2), (1, 3)]


def _write_recordio(path, payloads):
    """MXNet's RecordIO layout: magic, length word (cflag in the top 3 bits), payload, pad;
    a payload containing the magic number is split into continuation parts."""
    magic = struct.pack("<I", 0xCED7230A)
    offsets = []
    with open(path, "wb") as f:
        for payload in payloads:
            offsets.append(f.tell())
            parts = payload.split(magic)
            for i, part in enumerate(parts):
                cflag = (
                    0 if len(parts) == 1 else (1 if i == 0 else (3 if i == len(parts) - 1 else 2))
                )
                f.write(magic + struct.pack("<I", (cflag << 29) | len(part)) + part)
                f.write(b"\0" * ((4 - len(part) % 4) % 4))
    with open(path.with_suffix(".idx"), "w") as f:
        for i, off in enumerate(offsets):
            f.write(f"{i}\t{off}\n")


def test_record_file_dataset(tmp_path):
    magic = struct.pack("<I", 0xCED7230A)
    payloads = [b"hello", b"", b"a" * 13, b"left" + magic + b"mid" + magic + b"right"]
    _write_recordio(tmp_path / "d.rec", payloads)
    ds = gdata.RecordFileDataset(str(tmp_path / "d.rec"))
    assert len(ds) == 4
    assert [ds[i] for i in (3, 0, 2, 1)] == [payloads[3], payloads[0], payloads[2], b""]
    with pytest.raises(FileNotFoundError, match="missing.idx"):
        gdata.RecordFileDataset(str(tmp_path / "missing.rec"))
