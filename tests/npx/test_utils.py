"""``mx.npx`` utilities: devices, waitall, NumPy/DLPack interop, and save/savez/load in
Apache MXNet's NDArray-list format, byte for byte as MXNet writes it (the MXNet-written
fixtures in tests/data), read back by gluonlite and, where ``.venv-mxnet`` exists, by
MXNet 1.9.1 itself."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import _mxnet_format, npx

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def test_device_helpers_are_mxnet_names():
    assert npx.cpu(1) == mx.cpu(1) and npx.gpu(2) == mx.gpu(2)
    assert npx.num_gpus() == mx.num_gpus()
    assert npx.current_device() == mx.cpu(0)
    with mx.cpu(1):
        assert npx.current_device() == mx.cpu(1)
    npx.waitall()  # nothing queued: returns
    assert npx.is_np_array() and npx.is_np_shape()


@pytest.mark.skipif(mx.num_gpus() > 0, reason="checks the error on a machine without GPU")
def test_gpu_memory_info_without_gpu_says_so():
    with pytest.raises(RuntimeError, match=r"gpu\(0\) requested"):
        npx.gpu_memory_info(0)
    with pytest.raises(ValueError, match="device_id"):
        npx.gpu_memory_info(-1)


def test_gpu_memory_info_on_a_gpu(gpu):
    free, total = npx.gpu_memory_info(gpu.device_id)
    assert 0 < free <= total


def test_from_numpy_shares_memory_or_copies():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    shared = npx.from_numpy(a)
    assert shared.device == mx.cpu(0) and shared.dtype == np.float64
    a[0, 0] = 7
    assert shared.asnumpy()[0, 0] == 7
    copied = npx.from_numpy(a, zero_copy=False)
    a[0, 0] = 8
    assert copied.asnumpy()[0, 0] == 7
    with pytest.raises(ValueError, match="C-contiguous"):
        npx.from_numpy(a.T)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        npx.from_numpy([1, 2])


def test_dlpack_round_trip_shares_memory(device):
    x = mx.np.array([[1.0, 2.0], [3.0, 4.0]], device=device)
    for export in (npx.to_dlpack_for_read, npx.to_dlpack_for_write):
        y = npx.from_dlpack(export(x))
        assert y.device == device and y.shape == x.shape
        np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    shared = npx.from_dlpack(npx.to_dlpack_for_write(x))
    x[0, 0] = 9.0
    assert shared.asnumpy()[0, 0] == 9.0  # one buffer, no copy
    # Objects with __dlpack__ (NumPy here) work as well.
    assert npx.from_dlpack(np.ones(3)).shape == (3,)
    with pytest.raises(TypeError, match="to_dlpack_for_read: expected an mx.np.ndarray"):
        npx.to_dlpack_for_read(np.ones(2))
    with pytest.raises(TypeError, match="from_dlpack"):
        npx.from_dlpack([1, 2])


# --------------------------------------------------------------------- MXNet files
@pytest.mark.parametrize(
    "filename, version", [("mxnet_np_semantics.nd", 3), ("mxnet_dense.nd", 2), ("mxnet_list.nd", 2)]
)
def test_writer_reproduces_mxnet_written_files_byte_for_byte(filename, version):
    with open(os.path.join(DATA, filename), "rb") as f:
        original = f.read()
    arrays, names = _mxnet_format.read_mxnet_arrays(original, filename)
    rewritten = _mxnet_format.encode_mxnet_list([a.values for a in arrays], names, version)
    assert rewritten == original


def test_load_reads_mxnet_written_files(device):
    named = npx.load(os.path.join(DATA, "mxnet_np_semantics.nd"))
    assert sorted(named) == ["scalar", "vector", "zero_size"]
    assert named["scalar"].shape == () and named["scalar"].item() == 3.25
    assert named["vector"].dtype == np.int32 and named["vector"].tolist() == [1, 2, 3]
    assert named["zero_size"].shape == (2, 0) and named["zero_size"].dtype == np.float64
    unnamed = npx.load(os.path.join(DATA, "mxnet_list.nd"))
    assert isinstance(unnamed, list) and [a.tolist() for a in unnamed] == [[1, 2, 3], [[4.5]]]


def _arrays(device):
    return {
        "w": mx.np.array(np.arange(6).reshape(2, 3), dtype="float16", device=device),
        "scalar": mx.np.array(np.float64(2.5), dtype="float64", device=device),
        "ids": mx.np.array([3, -1], dtype="int64", device=device),
        "flags": mx.np.array([True, False], dtype=bool, device=device),
        "empty": mx.np.zeros((0, 3), device=device),
    }


def _same(loaded, arrays):
    assert loaded.keys() == arrays.keys()
    for k, a in arrays.items():
        assert loaded[k].device == mx.cpu(0)
        assert loaded[k].dtype == a.dtype and loaded[k].shape == a.shape, k
        np.testing.assert_array_equal(loaded[k].asnumpy(), a.asnumpy())


def test_save_savez_load_round_trip(tmp_path, device):
    arrays = _arrays(device)
    npx.save(tmp_path / "d.nd", arrays)
    _same(npx.load(tmp_path / "d.nd"), arrays)
    npx.save(str(tmp_path / "l.nd"), list(arrays.values()))
    assert [a.shape for a in npx.load(str(tmp_path / "l.nd"))] == [a.shape for a in arrays.values()]
    npx.save(tmp_path / "one.nd", arrays["w"])
    assert isinstance(npx.load(tmp_path / "one.nd"), list)
    npx.savez(tmp_path / "z.nd", arrays["w"], arrays["ids"], scalar=arrays["scalar"])
    loaded = npx.load(tmp_path / "z.nd")
    assert list(loaded) == ["arr_0", "arr_1", "scalar"]
    _same(loaded, {"arr_0": arrays["w"], "arr_1": arrays["ids"], "scalar": arrays["scalar"]})
    # The checkpoint reader takes the same file (gluon.load_mxnet_params).
    assert sorted(mx.gluon.load_mxnet_params(tmp_path / "d.nd")) == sorted(arrays)


@pytest.mark.parametrize(
    "bad, exc",
    [
        ({"x": np.ones(2)}, TypeError),  # not an ndarray
        ([mx.np.ones(2), "x"], TypeError),
        ({1: mx.np.ones(2)}, TypeError),  # non-str name
        ({"c": mx.np.array(np.ones(2, dtype=np.complex64))}, TypeError),  # dtype MXNet lacks
        (3.0, TypeError),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, bad, exc):
    path = tmp_path / "x.nd"
    npx.save(path, [mx.np.ones(1)])
    before = path.read_bytes()
    with pytest.raises(exc):
        npx.save(path, bad)
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(tmp_path) == ["x.nd"]  # and no temporary file is left
    with pytest.raises(TypeError):
        npx.save(tmp_path / "new.nd", bad)
    assert not (tmp_path / "new.nd").exists()
    with pytest.raises(ValueError, match="un-named variables and keyword arr_0"):
        npx.savez(tmp_path / "new.nd", mx.np.ones(1), arr_0=mx.np.ones(1))


def _mxnet_python():
    from gluonlite.bench import mxnet

    try:
        return mxnet.locate()[0]
    except mxnet.Skip as e:
        pytest.skip(str(e))


_MXNET_READ = """
import json, sys
import mxnet as mx
mx.npx.set_np()
out = {}
for k, v in mx.npx.load(sys.argv[1]).items():
    out[k] = {"dtype": str(v.dtype), "shape": list(v.shape), "values": v.asnumpy().tolist()}
print(json.dumps(out))
"""


def test_mxnet_1_9_1_reads_files_written_by_gluonlite(tmp_path):
    python = _mxnet_python()
    arrays = _arrays(mx.cpu(0))
    npx.save(tmp_path / "g.nd", arrays)
    proc = subprocess.run(
        [python, "-c", _MXNET_READ, str(tmp_path / "g.nd")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(seen) == sorted(arrays)
    for k, a in arrays.items():
        assert seen[k]["shape"] == list(a.shape), k
        assert seen[k]["dtype"] == str(a.dtype), k
        np.testing.assert_array_equal(
            np.array(seen[k]["values"], dtype=a.dtype).reshape(a.shape), a.asnumpy()
        )
