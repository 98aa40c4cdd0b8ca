"""Reading Apache MXNet NDArray files: the real ones in tests/data (written by MXNet 1.9.1
with tests/data/make_mxnet_params.py) and hand-built ones for layouts MXNet 1.9 no longer
writes (V1, pre-V1, GPU contexts, damaged headers)."""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gluonlite as mx
from gluonlite import checkpoint

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
with open(os.path.join(DATA, "mxnet_expected.json")) as _f:
    EXPECTED = json.load(_f)["arrays"]
FILES = sorted({key.split("/", 1)[0] for key in EXPECTED})
NON_BF16_FILES = [f for f in FILES if f != "mxnet_bfloat16.nd"]

LIST_MAGIC, V1, V2, V3 = 0x112, 0xF993FAC8, 0xF993FAC9, 0xF993FACA
TYPE_FLAGS = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
}


@pytest.fixture(scope="module")
def expected_values():
    with numpy.load(os.path.join(DATA, "mxnet_expected.npz")) as npz:
        return {k: npz[k] for k in npz.files}


def expected_for(filename):
    """``{gluonlite name: (MXNet name, meta)}`` for one file (``arg:``/``aux:`` dropped)."""
    out = {}
    for key, meta in EXPECTED.items():
        fname, name = key.split("/", 1)
        if fname == filename:
            short = name[4:] if name.startswith(("arg:", "aux:")) else name
            out[short] = (name, meta)
    return out


# ----------------------------------------------------------------------- real MXNet files
@pytest.mark.parametrize("filename", NON_BF16_FILES)
def test_real_mxnet_files_load_with_identical_values(filename, device, expected_values):
    arrays = mx.gluon.load_mxnet_params(os.path.join(DATA, filename), device=device)
    want = expected_for(filename)
    assert sorted(arrays) == sorted(want)
    for name, (mx_name, meta) in want.items():
        arr = arrays[name]
        assert arr.device == device
        assert arr.stype == meta["stype"], name
        assert arr.dtype == numpy.dtype(meta["dtype"]), name
        assert arr.shape == tuple(meta["shape"]), name
        values = expected_values[f"{filename}/{mx_name}"]
        numpy.testing.assert_array_equal(arr.asnumpy(), values, err_msg=name)
        if meta["stype"] == "row_sparse":
            assert arr.indices.asnumpy().tolist() == meta["indices"]


def test_bfloat16_file(monkeypatch, expected_values):
    path = os.path.join(DATA, "mxnet_bfloat16.nd")
    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    if ml_dtypes is not None:
        arr = mx.gluon.load_mxnet_params(path)["bf16"]
        assert arr.dtype == numpy.dtype(ml_dtypes.bfloat16)
        numpy.testing.assert_array_equal(
            arr.asnumpy().astype(numpy.float32), expected_values["mxnet_bfloat16.nd/bf16"]
        )
    # Without ml_dtypes NumPy has no bfloat16: a clear error, never silently other values.
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"array #0 in '.*' is bfloat16.*"
        r"ml_dtypes",
    ):
        mx.gluon.load_mxnet_params(path)


def test_gluon_file_into_a_gluonlite_block(devices, expected_values):
    """A model saved with MXNet's ``net.save_parameters`` loads into the same gluonlite model
    (structural names ``0.weight`` ...); its BatchNorm has no gluonlite layer and is skipped
    as extra."""
    net = mx.gluon.nn.Sequential()
    net.add(
        mx.gluon.nn.Embedding(10, 4),
        mx.gluon.nn.Dense(5),
        mx.gluon.nn.Dropout(0.0),
        mx.gluon.nn.Dense(2),
    )
    path = os.path.join(DATA, "mxnet_gluon_net.params")
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"'2.beta'"):
        net.load_parameters(path, device=devices)
    net.load_parameters(path, device=devices, ignore_extra=True)
    params = net.collect_params()
    assert sorted(params) == ["0.weight", "1.bias", "1.weight", "3.bias", "3.weight"]
    for name, p in params.items():
        assert p.list_device() == devices
        for dev in devices:
            numpy.testing.assert_array_equal(
                p.data(dev).asnumpy(), expected_values[f"mxnet_gluon_net.params/{name}"]
            )
    # The loaded model computes what the MXNet one would (Dropout(0) is the identity).
    tokens = mx.np.array([1, 2, 3], dtype="int64", device=devices[0])
    emb = expected_values["mxnet_gluon_net.params/0.weight"][[1, 2, 3]]
    hidden = (
        emb @ expected_values["mxnet_gluon_net.params/1.weight"].T
        + expected_values["mxnet_gluon_net.params/1.bias"]
    )
    out = (
        hidden @ expected_values["mxnet_gluon_net.params/3.weight"].T
        + expected_values["mxnet_gluon_net.params/3.bias"]
    )
    numpy.testing.assert_allclose(net(tokens).asnumpy(), out, rtol=1e-5, atol=1e-6)


def test_module_file_prefixes_dropped_by_load_parameters(expected_values):
    path = os.path.join(DATA, "mxnet_module.params")
    want = expected_for("mxnet_module.params")
    params = {
        name: mx.gluon.Parameter(name, shape=tuple(meta["shape"]))
        for name, (_, meta) in want.items()
    }
    mx.gluon.load_parameters(path, params, device=mx.cpu(1))
    for name, (mx_name, _) in want.items():
        numpy.testing.assert_array_equal(
            params[name].data(mx.cpu(1)).asnumpy(),
            expected_values[f"mxnet_module.params/{mx_name}"],
        )


def test_row_sparse_mxnet_array_into_parameters(expected_values):
    path = os.path.join(DATA, "mxnet_sparse.nd")
    dense = mx.gluon.Parameter("embed_weight", shape=(6, 3))
    sparse = mx.gluon.Parameter("embed_weight", shape=(6, 3), stype="row_sparse")
    for p in (dense, sparse):
        mx.gluon.load_parameters(path, {"embed_weight": p}, ignore_extra=True)
    want = expected_values["mxnet_sparse.nd/embed_weight"]
    numpy.testing.assert_array_equal(dense.data().asnumpy(), want)
    rows = sparse.row_sparse_data(mx.np.array([4, 1], dtype="int64"))
    assert rows.indices.asnumpy().tolist() == [1, 4]
    numpy.testing.assert_array_equal(rows.asnumpy(), want)


def test_numpy_semantics_scalar_into_a_0d_parameter():
    path = os.path.join(DATA, "mxnet_np_semantics.nd")
    scalar = mx.gluon.Parameter("scalar", shape=())
    vector = mx.gluon.Parameter("vector", shape=(3,), dtype="int32")
    mx.gluon.load_parameters(path, {"scalar": scalar, "vector": vector}, ignore_extra=True)
    assert scalar.data().shape == () and scalar.data().item() == 3.25
    assert vector.data().asnumpy().tolist() == [1, 2, 3]
    # A Parameter cannot hold a zero-size array: refused by name before anything changes.
    empty = mx.gluon.Parameter("zero_size", shape=(2, 0), dtype="float64", allow_deferred_init=True)
    with pytest.raises(
        checkpoint.CheckpointMismatchError, match=r"Parameter 'zero_size'.*zero-size dimension"
    ):
        mx.gluon.load_parameters(path, {"scalar": scalar, "zero_size": empty}, ignore_extra=True)
    assert scalar.data().item() == 3.25 and empty.shape == (2, -1)


@pytest.mark.parametrize("filename", NON_BF16_FILES)
def test_every_truncation_of_a_real_file_is_reported(filename, monkeypatch):
    with open(os.path.join(DATA, filename), "rb") as f:
        good = f.read()
    # Every prefix, served from memory: hundreds of file writes would only time the disk.
    prefix = []
    monkeypatch.setattr(checkpoint, "_read_bytes", lambda path: prefix[0])
    for n in range(len(good)):
        prefix[:] = [good[:n]]
        with pytest.raises(checkpoint.CorruptCheckpointError, match="cut.params"):
            # Short prefixes are not even recognised as MXNet files: load_parameters then
            # reports them as damaged checkpoints, which they are.
            mx.gluon.load_parameters("cut.params", {}, ignore_extra=True)


_REAL = {name: open(os.path.join(DATA, name), "rb").read() for name in NON_BF16_FILES}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filename=st.sampled_from(NON_BF16_FILES), data=st.data())
def test_fuzzed_mxnet_files_raise_only_checkpoint_errors(tmp_path, filename, data):
    buf = bytearray(_REAL[filename])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        choice = data.draw(st.sampled_from(["flip", "word", "cut"]))
        if choice == "flip":
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif choice == "word":  # a whole length / ndim / dim field replaced
            word = data.draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**63, -1]))
            buf[pos : pos + 8] = struct.pack("<q" if word < 2**63 else "<Q", word)
        else:
            del buf[pos:]
            break
    path = tmp_path / "fuzzed.params"
    path.write_bytes(bytes(buf))
    try:
        arrays = mx.gluon.load_mxnet_params(path)
    except checkpoint.CheckpointError:
        return
    for arr in arrays.values():
        # Whatever loads is a well-formed array. Sparse ones are read as stored: a damaged
        # full shape may be legal but far too large to densify.
        parts = [arr] if arr.stype == "default" else [arr.data, arr.indices]
        for part in parts:
            assert part.asnumpy().shape == part.shape


# ----------------------------------------------------------------------- layouts by hand
def shape_bytes(shape):
    return struct.pack("<i", len(shape)) + struct.pack(f"<{len(shape)}q", *shape)


def encode_dense(a: numpy.ndarray, magic=V2, device=(1, 0)) -> bytes:
    """One dense array as MXNet's NDArray::Save lays it out (``magic=None``: pre-V1)."""
    if magic in (V2, V3):
        head = struct.pack("<Ii", magic, 0) + shape_bytes(a.shape)
    elif magic == V1:
        head = struct.pack("<I", V1) + shape_bytes(a.shape)
    else:
        head = struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
    return head + struct.pack("<iii", *device, TYPE_FLAGS[a.dtype.name]) + a.tobytes()


def encode_list(blobs, names) -> bytes:
    out = struct.pack("<QQQ", LIST_MAGIC, 0, len(blobs)) + b"".join(blobs)
    out += struct.pack("<Q", len(names))
    for name in names:
        raw = name.encode()
        out += struct.pack("<Q", len(raw)) + raw
    return out


def test_encoder_matches_real_mxnet_bytes():
    """The hand encoder below reproduces a real MXNet file byte for byte, so the layouts it
    builds for the other tests are MXNet's."""
    blobs = [
        encode_dense(numpy.array([1, 2, 3], numpy.float32)),
        encode_dense(numpy.array([[4.5]], numpy.float32)),
    ]
    assert encode_list(blobs, []) == _REAL["mxnet_list.nd"]


@pytest.mark.parametrize("magic", [V1, None, V3], ids=["v1", "pre-v1", "v3"])
def test_older_layouts_and_gpu_contexts(tmp_path, magic):
    a = numpy.arange(6, dtype=numpy.float64).reshape(2, 3)
    b = numpy.array([7, -8], dtype=numpy.int32)
    data = encode_list(
        [encode_dense(a, magic, device=(2, 1)), encode_dense(b, magic)], ["w", "aux:b"]
    )
    (tmp_path / "old.params").write_bytes(data)
    arrays = mx.gluon.load_mxnet_params(tmp_path / "old.params", device=mx.cpu(1))
    assert sorted(arrays) == ["b", "w"]
    numpy.testing.assert_array_equal(arrays["w"].asnumpy(), a)
    numpy.testing.assert_array_equal(arrays["b"].asnumpy(), b)
    assert arrays["w"].device == mx.cpu(1)


def test_unusable_contents_are_named(tmp_path):
    x = numpy.ones(2, numpy.float32)
    clash = encode_list([encode_dense(x), encode_dense(x)], ["arg:w", "w"])
    (tmp_path / "clash.params").write_bytes(clash)
    with pytest.raises(checkpoint.CheckpointError, match=r"both 'w' and a prefixed copy"):
        mx.gluon.load_mxnet_params(tmp_path / "clash.params")
    # Before NumPy semantics an ndim of 0 meant "never allocated": nothing to load.
    none = struct.pack("<Iii", V2, 0, 0)
    (tmp_path / "none.params").write_bytes(encode_list([none], ["ghost"]))
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"'ghost' in '.*none.params' is an "
        r"MXNet NDArray without a shape",
    ):
        mx.gluon.load_mxnet_params(tmp_path / "none.params")
    dup = encode_list([encode_dense(x), encode_dense(x)], ["w", "w"])
    (tmp_path / "dup.params").write_bytes(dup)
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"\['w'\] occur more"):
        mx.gluon.load_mxnet_params(tmp_path / "dup.params")
    (tmp_path / "st.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b'{"a": 1}        ')
    with pytest.raises(checkpoint.CorruptCheckpointError, match="not an MXNet NDArray file"):
        mx.gluon.load_mxnet_params(tmp_path / "st.safetensors")


def test_safetensors_header_of_length_0x112_is_not_taken_for_mxnet(tmp_path):
    # Its first word equals MXNet's list magic; the JSON after it tells the formats apart.
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    header = header.encode().ljust(LIST_MAGIC, b" ")
    data = struct.pack("<Q", len(header)) + header + numpy.float32([1.5, 2.5]).tobytes()
    (tmp_path / "w.safetensors").write_bytes(data)
    p = mx.gluon.Parameter("w", shape=(2,))
    mx.gluon.load_parameters(tmp_path / "w.safetensors", {"w": p})
    assert p.data().asnumpy().tolist() == [1.5, 2.5]


def test_huge_counts_and_dims_fail_fast(tmp_path):
    # A damaged count or dim must be refused from the sizes left, not allocated.
    huge_count = struct.pack("<QQQ", LIST_MAGIC, 0, 2**62)
    big_dims = encode_list(
        [struct.pack("<Ii", V2, 0) + shape_bytes((2**40, 2**40)) + struct.pack("<iii", 1, 0, 0)],
        ["w"],
    )
    for name, data in (("count", huge_count), ("dims", big_dims)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(checkpoint.CorruptCheckpointError, match="truncated or corrupted"):
            mx.gluon.load_mxnet_params(tmp_path / name)
