"""Files that load but should not: trainer states, damaged MXNet sparse headers, gluonlite
checkpoints with odd versions, and paths that are not regular files (issue 15, item 1)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy
import pytest
import safetensors.numpy
from safetensors import safe_open

import gluonlite as mx
from gluonlite import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------- trainer states
def _params(width=3):
    w = mx.gluon.Parameter("w", shape=(4, width), init="ones")
    b = mx.gluon.Parameter("b", shape=(width,), init="zeros")
    for p in (w, b):
        p.initialize(device=mx.cpu(0))
    return {"w": w, "b": b}


def _stepped(params, optimizer="adam", steps=2, **kwargs):
    trainer = mx.gluon.Trainer(params, optimizer, {"learning_rate": 0.1, **kwargs})
    for k in range(steps):
        with mx.autograd.record():
            loss = (params["w"].data() * (k + 1.0)).sum() + (params["b"].data() * 2.0).sum()
        loss.backward()
        trainer.step(1)
    return trainer


def _rewrite(path, edit, fix_checksum=True):
    """Rewrite the trainer description of a states file; ``fix_checksum`` plays a tool that
    edits the JSON on purpose (so only the field checks can catch it)."""
    with safe_open(str(path), "numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    trainer = json.loads(meta["trainer"])
    edit(trainer)
    meta["trainer"] = json.dumps(trainer)
    if fix_checksum and "trainer_crc32" in meta:
        meta["trainer_crc32"] = format(zlib.crc32(meta["trainer"].encode()), "08x")
    safetensors.numpy.save_file(tensors, str(path), metadata=meta)


def _snapshot(trainer):
    opt = trainer.optimizer
    states = {
        i: [numpy.array(a) for a in (s if isinstance(s, tuple) else (s,))]
        for i, (_, s) in trainer._states.items()
    }
    return opt.num_update, dict(opt._index_update_count), states


def _set(key, value):
    def edit(t):
        t[key] = value

    return edit


def _set_state(field, value):
    def edit(t):
        t["states"][0][field] = value

    return edit


# (edit, error type, text the message must hold)
_DAMAGE = {
    "negative num_update": (
        _set("num_update", -1),
        checkpoint.CorruptCheckpointError,
        r"num_update",
    ),
    "num_update below the counts": (
        _set("num_update", 1),
        checkpoint.CorruptCheckpointError,
        r"num_update",
    ),
    "num_update a string": (
        _set("num_update", "2"),
        checkpoint.CorruptCheckpointError,
        r"num_update",
    ),
    "empty states list": (
        _set("states", []),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*states",
    ),
    "swapped mean and variance": (
        _set_state("structure", [1, 0]),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*structure",
    ),
    "structure None": (
        _set_state("structure", None),
        checkpoint.CheckpointMismatchError,
        r"Parameter 'w'.*structure",
    ),
    "state index a float": (_set_state("index", 0.0), checkpoint.CorruptCheckpointError, r"index"),
    "negative update count": (
        _set("index_update_count", {"0": -2, "1": 2}),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*index_update_count",
    ),
    "count for an unknown index": (
        _set("index_update_count", {"0": 2, "1": 2, "7": 2}),
        checkpoint.CorruptCheckpointError,
        r"index_update_count",
    ),
    # The fields of kvstore=None's per-device states (see Trainer._states_content).
    "device counts not a list": (
        _set("device_update_counts", {"0": 2}),
        checkpoint.CorruptCheckpointError,
        r"device_update_counts",
    ),
    "a device's count negative": (
        _set("device_update_counts", [{"0": -1}]),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*device_update_counts\[0\]",
    ),
    "a device's counts without states": (
        _set("device_update_counts", [{"0": 2, "1": 2}]),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*no entry for it for device 1",
    ),
    "a state for a device without counts": (
        _set_state("device", 1),
        checkpoint.CorruptCheckpointError,
        r"Parameter 'w'.*device 1",
    ),
}


@pytest.mark.parametrize("case", sorted(_DAMAGE))
def test_damaged_trainer_description_is_refused_all_or_nothing(tmp_path, case):
    edit, error, text = _DAMAGE[case]
    path = tmp_path / "states"
    _stepped(_params()).save_states(str(path))
    _rewrite(path, edit)
    trainer = _stepped(_params(), steps=1)
    before = _snapshot(trainer)
    with pytest.raises(error, match=text):
        trainer.load_states(str(path))
    after = _snapshot(trainer)
    assert before[:2] == after[:2]
    assert before[2].keys() == after[2].keys()
    for i in before[2]:
        for a, b in zip(before[2][i], after[2][i]):
            numpy.testing.assert_array_equal(a, b)


def test_altered_description_fails_its_checksum(tmp_path):
    path = tmp_path / "states"
    _stepped(_params()).save_states(str(path))
    _rewrite(path, _set("num_update", 5), fix_checksum=False)
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"checksum"):
        _stepped(_params(), steps=0).load_states(str(path))


def test_states_of_other_shapes_do_not_fit(tmp_path):
    path = tmp_path / "states"
    _stepped(_params(width=3)).save_states(str(path))
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"Parameter 'w'.*\(4, 3\)"):
        _stepped(_params(width=5), steps=0).load_states(str(path))


def test_valid_states_still_resume_exactly(tmp_path):
    path = tmp_path / "states"
    a, b = _params(), _params()
    ta = _stepped(a, steps=2)
    ta.save_states(str(path))
    for name in a:
        b[name].set_data(a[name].data())
    tb = _stepped(b, steps=0)
    tb.load_states(str(path))
    for params, trainer in ((a, ta), (b, tb)):
        with mx.autograd.record():
            loss = (params["w"].data() * 3.0).sum() + (params["b"].data() * 2.0).sum()
        loss.backward()
        trainer.step(1)
    for name in a:
        numpy.testing.assert_array_equal(a[name].data().asnumpy(), b[name].data().asnumpy())


def test_sgd_without_momentum_keeps_none_states(tmp_path):
    path = tmp_path / "states"
    _stepped(_params(), "sgd").save_states(str(path))
    trainer = _stepped(_params(), "sgd", steps=0)
    trainer.load_states(str(path))
    assert trainer.optimizer.num_update == 2


# ----------------------------------------------------------------------- MXNet sparse headers
V2 = 0xF993FAC9


def _shape(shape):
    return struct.pack("<i", len(shape)) + struct.pack(f"<{len(shape)}q", *shape)


def _mxnet_file(blob, name="w"):
    raw = name.encode()
    return struct.pack("<QQQ", 0x112, 0, 1) + blob + struct.pack("<QQ", 1, len(raw)) + raw


def _row_sparse(rows, values, ids):
    return (
        struct.pack("<Ii", V2, 1)
        + _shape(values.shape)
        + _shape((rows,) + values.shape[1:])
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + _shape(ids.shape)
        + values.astype(numpy.float32).tobytes()
        + ids.astype(numpy.int64).tobytes()
    )


def _csr(shape, values, indptr, indices):
    return (
        struct.pack("<Ii", V2, 2)
        + _shape(values.shape)
        + _shape(shape)
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + _shape(indptr.shape)
        + struct.pack("<i", 6)
        + _shape(indices.shape)
        + values.astype(numpy.float32).tobytes()
        + indptr.astype(numpy.int64).tobytes()
        + indices.astype(numpy.int64).tobytes()
    )


_HUGE = {
    "row_sparse with 2**40 rows": _row_sparse(2**40, numpy.ones((2, 3)), numpy.array([1, 4])),
    "csr with 2**40 columns": _csr(
        (3, 2**40), numpy.ones(3), numpy.array([0, 2, 2, 3]), numpy.array([0, 2, 1])
    ),
}


@pytest.mark.parametrize("case", sorted(_HUGE))
def test_sparse_header_declaring_terabytes_is_refused_before_allocating(tmp_path, case):
    path = tmp_path / "huge.params"
    path.write_bytes(_mxnet_file(_HUGE[case]))
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"'w'|array #0"):
        mx.gluon.load_mxnet_params(path)
    p = mx.gluon.Parameter("w", shape=(-1, -1), allow_deferred_init=True)
    p.initialize(device=mx.cpu(0))
    with pytest.raises(checkpoint.CorruptCheckpointError):
        mx.gluon.load_parameters(path, {"w": p})
    assert p.shape == (-1, -1)


def test_sane_sparse_headers_still_load(tmp_path):
    path = tmp_path / "ok.params"
    path.write_bytes(_mxnet_file(_row_sparse(6, numpy.ones((2, 3)), numpy.array([1, 4]))))
    assert mx.gluon.load_mxnet_params(path)["w"].shape == (6, 3)


# ----------------------------------------------------------------------- gluonlite files
def test_huge_format_version_is_a_typed_error(tmp_path):
    path = tmp_path / "w.safetensors"
    mx.gluon.save_parameters(path, _params())
    with safe_open(str(path), "numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["format_version"] = "9" * 5000
    safetensors.numpy.save_file(tensors, str(path), metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match="newer gluonlite"):
        mx.gluon.load_parameters(path, _params())


_NOT_REGULAR = textwrap.dedent("""
    import os, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import gluonlite as mx
    from gluonlite import checkpoint
    fifo = os.path.join(sys.argv[1], "fifo")
    os.mkfifo(fifo)
    for path in ("/dev/zero", fifo, sys.argv[1]):
        for load in (lambda: mx.gluon.load_mxnet_params(path),
                     lambda: checkpoint.read_checkpoint(path)):
            try:
                load()
            except checkpoint.CorruptCheckpointError as e:
                assert "not a regular file" in str(e), e
            else:
                raise SystemExit("loaded " + path)
    print("refused")
""")


@pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
    reason="needs POSIX FIFOs and /dev/zero",
)
def test_non_regular_files_are_refused_up_front(tmp_path):
    # In a child with a memory cap and a time limit: reading /dev/zero to the end or opening
    # a FIFO without a writer must not be what the loader does.
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _NOT_REGULAR, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "refused" in out.stdout, out.stderr[-2000:]
