"""Checkpoints: safetensors save/load of parameters and trainer states.

Covers the round trip on every device and across device sets, deferred shapes, the checks
made before anything changes (missing/extra names, shapes, dtypes, devices), damaged files
(by hand and by a hypothesis fuzzer), and atomic replacement (a writer that fails midway and
a process killed midway both leave the previous checkpoint intact).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import numpy
import pytest
import safetensors
import safetensors.numpy
from hypothesis import HealthCheck, given, settings, strategies as st

import gluonlite as mx
from gluonlite import checkpoint
from tests.helpers import assert_matches

CPU0, CPU1 = mx.cpu(0), mx.cpu(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_param(name, values, device, **kwargs):
    """An initialized Parameter on ``device`` (one or a list) holding ``values``."""
    values = numpy.asarray(values)
    p = mx.gluon.Parameter(name, shape=values.shape, dtype=values.dtype, **kwargs)
    p.initialize(init=mx.init.Constant(values), device=device)
    return p


def sample_values():
    rng = numpy.random.RandomState(0)
    return {
        "fc_weight": rng.randn(4, 3).astype(numpy.float32),
        "fc_bias": rng.randn(4).astype(numpy.float64),
        "half": rng.randn(2, 5).astype(numpy.float16),
        "counts": numpy.arange(6, dtype=numpy.int32).reshape(2, 3),
    }


def host(param, device=None):
    """The parameter's values on ``device`` (its only one by default), as NumPy."""
    if param.stype == "row_sparse":
        dev = device or param.list_device()[0]
        rows = mx.np.arange(param.shape[0], dtype="int64", device=dev)
        return param.row_sparse_data(rows).asnumpy()
    return param.data(device).asnumpy()


def snapshot(params):
    """Everything a load may change: shape, dtype, devices and values on each device."""
    out = {}
    for name, p in params.items():
        if p._data is None:
            out[name] = (p.shape, p.dtype, None)
            continue
        out[name] = (p.shape, p.dtype, [(d, host(p, d).tobytes()) for d in p.list_device()])
    return out


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of ``sample_values()`` on cpu(0) and the parameters it came from."""
    params = {k: make_param(k, v, CPU0) for k, v in sample_values().items()}
    path = tmp_path / "model.safetensors"
    mx.gluon.save_parameters(path, params)
    return path, params


# ----------------------------------------------------------------------- round trips
def test_round_trip_on_every_device(tmp_path, device):
    values = sample_values()
    params = {k: make_param(k, v, device) for k, v in values.items()}
    path = tmp_path / "model.safetensors"
    mx.gluon.save_parameters(path, params)
    fresh = {
        k: mx.gluon.Parameter(k, shape=(0,) * v.ndim, dtype=v.dtype, allow_deferred_init=True)
        for k, v in values.items()
    }
    mx.gluon.load_parameters(path, fresh, device=device)
    for k, v in values.items():
        assert fresh[k].list_device() == [device]
        assert_matches(fresh[k].data(), v, rtol=0, atol=0, device=device)


def test_file_is_plain_safetensors_with_gluonlite_metadata(saved):
    path, _ = saved
    values = sample_values()
    plain = safetensors.numpy.load_file(str(path))
    assert sorted(plain) == sorted(values)
    for k, v in values.items():
        numpy.testing.assert_array_equal(plain[k], v)
        assert plain[k].dtype == v.dtype
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "gluonlite" and meta["kind"] == "parameters"
    entries = json.loads(meta["entries"])
    assert entries["half"]["dtype"] == "float16" and entries["half"]["shape"] == [2, 5]
    assert entries["fc_weight"]["stype"] == "default"


def test_replicas_save_once_and_load_onto_other_devices(tmp_path, devices):
    values = sample_values()
    params = {k: make_param(k, v, devices) for k, v in values.items()}
    path = tmp_path / "model.safetensors"
    mx.gluon.save_parameters(path, params)
    # Each name is stored once, whatever the number of replicas.
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == sorted(values)
    targets = list(reversed(devices)) + [mx.cpu(2)]
    fresh = {k: mx.gluon.Parameter(k, shape=v.shape, dtype=v.dtype) for k, v in values.items()}
    mx.gluon.load_parameters(path, fresh, device=targets)
    for k, v in values.items():
        assert fresh[k].list_device() == targets
        for dev in targets:
            assert_matches(fresh[k].data(dev), v, rtol=0, atol=0, device=dev)


def test_saves_a_cpu_replica_in_place_without_copying(tmp_path, monkeypatch):
    p = make_param("w", numpy.ones((3, 2), numpy.float32), [CPU1, CPU0])
    p.data(CPU1)[:] = 5.0  # replicas normally agree; here they differ to see which is saved
    seen = {}
    real = checkpoint._serialize

    def spy(tensors, tmp, metadata):
        seen.update(tensors)
        real(tensors, tmp, metadata)

    monkeypatch.setattr(checkpoint, "_serialize", spy)
    mx.gluon.save_parameters(tmp_path / "w.safetensors", {"w": p})
    # The first CPU replica, handed to the writer as the live array: no host copy.
    assert numpy.shares_memory(seen["w"], p.data(CPU1)._data)
    loaded = checkpoint.read_checkpoint(tmp_path / "w.safetensors").arrays["w"].values
    numpy.testing.assert_array_equal(loaded, numpy.full((3, 2), 5.0, numpy.float32))


def test_gpu_replica_moved_to_host_once(tmp_path, gpu, monkeypatch):
    p = make_param("w", numpy.arange(6, dtype=numpy.float32).reshape(2, 3), [gpu])
    calls = []
    real = mx.np.ndarray.asnumpy

    def counting(self):
        calls.append(self.device)
        return real(self)

    monkeypatch.setattr(mx.np.ndarray, "asnumpy", counting)
    mx.gluon.save_parameters(tmp_path / "w.safetensors", {"w": p})
    assert calls == [gpu]


def test_row_sparse_parameter_stored_as_rows_and_ids(tmp_path, device):
    values = numpy.zeros((6, 3), numpy.float32)
    values[1], values[4] = [1, 2, 3], [4, 5, 6]
    p = make_param("emb", values, device, stype="row_sparse")
    path = tmp_path / "emb.safetensors"
    mx.gluon.save_parameters(path, {"emb": p})
    plain = safetensors.numpy.load_file(str(path))
    numpy.testing.assert_array_equal(plain["emb.__indices__"], [1, 4])
    numpy.testing.assert_array_equal(plain["emb"], values[[1, 4]])
    sparse_again = mx.gluon.Parameter("emb", shape=(6, 3), stype="row_sparse")
    dense_again = mx.gluon.Parameter("emb", shape=(6, 3))
    mx.gluon.load_parameters(path, {"emb": sparse_again}, device=device)
    mx.gluon.load_parameters(path, {"emb": dense_again}, device=device)
    numpy.testing.assert_array_equal(host(sparse_again), values)
    assert_matches(dense_again.data(), values, rtol=0, atol=0, device=device)
    # An all-zero row-sparse weight is stored as zero rows and comes back as zeros.
    zero = make_param("zero", numpy.zeros((4, 2), numpy.float32), device, stype="row_sparse")
    mx.gluon.save_parameters(path, {"zero": zero})
    assert safetensors.numpy.load_file(str(path))["zero"].shape == (0, 2)
    target = mx.gluon.Parameter("zero", shape=(4, 2), stype="row_sparse", init="ones")
    mx.gluon.load_parameters(path, {"zero": target}, device=device)
    numpy.testing.assert_array_equal(host(target), numpy.zeros((4, 2), numpy.float32))


def test_bfloat16_round_trip(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    values = numpy.array([1.0, -2.5, 0.15625], dtype=ml_dtypes.bfloat16)
    p = make_param("w", values, CPU0)
    path = tmp_path / "bf.safetensors"
    mx.gluon.save_parameters(path, {"w": p})
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert f.get_slice("w").get_dtype() == "BF16"
    fresh = mx.gluon.Parameter("w", shape=(3,), dtype="bfloat16")
    mx.gluon.load_parameters(path, {"w": fresh})
    assert fresh.data().dtype == values.dtype
    numpy.testing.assert_array_equal(
        fresh.data().asnumpy().astype(numpy.float32), values.astype(numpy.float32)
    )


def test_foreign_safetensors_file_loads_dense(tmp_path):
    w = numpy.arange(6, dtype=numpy.float32).reshape(3, 2)
    safetensors.numpy.save_file({"w": w}, str(tmp_path / "other.safetensors"))
    p = mx.gluon.Parameter("w", shape=(3, 2))
    mx.gluon.load_parameters(tmp_path / "other.safetensors", {"w": p})
    assert_matches(p.data(), w, rtol=0, atol=0)


def test_block_methods_and_shared_parameters(tmp_path, devices):
    net = mx.gluon.nn.Sequential()
    net.add(mx.gluon.nn.Dense(4, in_units=3), mx.gluon.nn.Dense(2, in_units=4))
    net.initialize(device=devices)
    net.save_parameters(tmp_path / "net.safetensors")
    again = mx.gluon.nn.Sequential()
    again.add(mx.gluon.nn.Dense(4), mx.gluon.nn.Dense(2))  # in_units deferred
    again.load_parameters(tmp_path / "net.safetensors", device=devices)
    for name, p in net.collect_params().items():
        q = again.collect_params()[name]
        assert q.shape == p.shape and q.list_device() == devices
        for dev in devices:
            numpy.testing.assert_array_equal(q.data(dev).asnumpy(), p.data(dev).asnumpy())
    # A parameter listed under two names: deduplicate stores it once and loading fills it
    # from whichever name is present.
    shared = make_param("w", numpy.ones((2,), numpy.float32), CPU0)
    mx.gluon.save_parameters(
        tmp_path / "s.safetensors", {"a.w": shared, "b.w": shared}, deduplicate=True
    )
    assert list(checkpoint.read_checkpoint(tmp_path / "s.safetensors").arrays) == ["a.w"]
    target = mx.gluon.Parameter("w", shape=(2,))
    mx.gluon.load_parameters(tmp_path / "s.safetensors", {"a.w": target, "b.w": target})
    assert_matches(target.data(), numpy.ones(2, numpy.float32))


# ----------------------------------------------------------------------- where data goes
def test_deferred_shapes_filled_on_their_devices(saved, devices):
    path, _ = saved
    p = mx.gluon.Parameter("fc_weight", shape=(0, 3), allow_deferred_init=True)
    p.initialize(device=devices)
    mx.gluon.load_parameters(path, {"fc_weight": p}, ignore_extra=True)
    assert p.shape == (4, 3) and p.list_device() == devices
    for dev in devices:
        assert_matches(p.data(dev), sample_values()["fc_weight"], rtol=0, atol=0, device=dev)


def test_uninitialized_goes_to_current_device_without_random_draws(saved):
    path, _ = saved
    values = sample_values()
    fresh = {k: mx.gluon.Parameter(k, shape=v.shape, dtype=v.dtype) for k, v in values.items()}
    mx.random.seed(5)
    with CPU1:
        mx.gluon.load_parameters(path, fresh)
    after_load = mx.np.random.uniform(size=(4,)).asnumpy()
    mx.random.seed(5)
    assert numpy.array_equal(after_load, mx.np.random.uniform(size=(4,)).asnumpy())
    for k, v in values.items():
        assert fresh[k].list_device() == [CPU1]
        assert_matches(fresh[k].data(), v, rtol=0, atol=0, device=CPU1)


def test_initialized_parameters_keep_their_devices(saved, devices):
    path, _ = saved
    values = sample_values()
    params = {k: make_param(k, numpy.zeros_like(v), devices) for k, v in values.items()}
    live = params["fc_weight"].data(devices[1])
    mx.gluon.load_parameters(path, params)
    for k, v in values.items():
        for dev in devices:
            assert_matches(params[k].data(dev), v, rtol=0, atol=0, device=dev)
    # Loaded in place: arrays handed out before the load see the new values.
    numpy.testing.assert_array_equal(live.asnumpy(), values["fc_weight"])
    before = snapshot(params)
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"initialized on"):
        mx.gluon.load_parameters(path, params, device=[mx.cpu(3)])
    assert snapshot(params) == before


# ----------------------------------------------------------------------- mismatches
@pytest.mark.parametrize("case", ["missing", "extra"])
def test_missing_and_extra_names(saved, case):
    path, _ = saved
    values = sample_values()
    params = {k: make_param(k, numpy.zeros_like(v), CPU0) for k, v in values.items()}
    if case == "missing":
        params["extra_param"] = make_param("extra_param", numpy.ones(2, numpy.float32), CPU0)
        match = r"Parameters \['extra_param'\] are missing in '.*model.safetensors'"
        allow = {"allow_missing": True}
    else:
        del params["counts"]
        match = r"'.*model.safetensors' holds \['counts'\], which are not among"
        allow = {"ignore_extra": True}
    before = snapshot(params)
    with pytest.raises(checkpoint.CheckpointMismatchError, match=match):
        mx.gluon.load_parameters(path, params)
    assert snapshot(params) == before
    mx.gluon.load_parameters(path, params, **allow)
    for k, p in params.items():
        want = values.get(k, numpy.ones(2, numpy.float32))  # extra_param keeps its values
        assert_matches(p.data(), want, rtol=0, atol=0)


def test_shape_mismatch_found_before_any_parameter_changes(saved):
    path, _ = saved
    values = sample_values()
    # Every parameter fits except the last one: the earlier ones must stay untouched.
    params = {k: make_param(k, numpy.zeros_like(v), CPU0) for k, v in values.items()}
    params["counts"] = make_param("counts", numpy.zeros((3, 2), numpy.int32), CPU0)
    deferred = mx.gluon.Parameter("x", shape=(0, 3), allow_deferred_init=True)
    params["deferred"] = deferred
    before = snapshot(params)
    with pytest.raises(
        checkpoint.CheckpointMismatchError,
        match=r"Parameter 'counts' from '.*model.safetensors'.*file has shape "
        r"\(2, 3\), the parameter expects \(3, 2\)",
    ):
        mx.gluon.load_parameters(path, params, allow_missing=True)
    assert snapshot(params) == before
    assert deferred.shape == (-1, 3)


def test_dtype_mismatch_and_casts(saved):
    path, _ = saved
    values = sample_values()

    def float32_params():
        return {k: mx.gluon.Parameter(k, shape=v.shape, dtype="float32") for k, v in values.items()}

    params = float32_params()
    with pytest.raises(
        checkpoint.CheckpointMismatchError,
        match=r"Parameter 'fc_bias'.*dtype float64, the parameter expects "
        r"float32. Set cast_dtype=True",
    ):
        mx.gluon.load_parameters(path, params)
    assert all(p._data is None for p in params.values())

    mx.gluon.load_parameters(path, params, cast_dtype=True)
    for k, v in values.items():
        assert_matches(params[k].data(), v.astype(numpy.float32), rtol=0, atol=0)

    params = float32_params()
    for p in params.values():
        p.initialize(device=[CPU0, CPU1])
    mx.gluon.load_parameters(path, params, cast_dtype=True, dtype_source="saved")
    for k, v in values.items():
        for dev in (CPU0, CPU1):
            assert_matches(params[k].data(dev), v, rtol=0, atol=0, device=dev)
    with pytest.raises(ValueError, match="dtype_source"):
        mx.gluon.load_parameters(path, params, cast_dtype=True, dtype_source="file")


def test_trainer_file_is_not_parameters(tmp_path):
    net = mx.gluon.nn.Dense(2, in_units=2)
    net.initialize()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    trainer.save_states(tmp_path / "t.states")
    with pytest.raises(checkpoint.CheckpointError, match="holds trainer states"):
        net.load_parameters(tmp_path / "t.states")


def test_newer_format_version_refused(saved, tmp_path):
    path, params = saved
    loaded = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    meta["format_version"] = "2"
    safetensors.numpy.save_file(loaded, str(tmp_path / "v2.safetensors"), metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match="format version 2 by a newer"):
        mx.gluon.load_parameters(tmp_path / "v2.safetensors", params)


def test_unsaveable_parameters_write_nothing(tmp_path, saved):
    path, params = saved
    before = path.read_bytes()
    pending = mx.gluon.Parameter("late", shape=(0,), allow_deferred_init=True)
    pending.initialize()
    with pytest.raises(checkpoint.CheckpointError, match="Cannot save Parameter 'late'"):
        mx.gluon.save_parameters(path, {**params, "late": pending})
    with pytest.raises(checkpoint.CheckpointError, match=r"not ending in '\.__indices__'"):
        mx.gluon.save_parameters(path, {"w.__indices__": params["fc_bias"]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]


# ----------------------------------------------------------------------- damaged files
def test_damaged_files_raise_and_change_nothing(saved, tmp_path):
    path, _ = saved
    good = path.read_bytes()
    values = sample_values()
    params = {k: make_param(k, numpy.zeros_like(v), CPU0) for k, v in values.items()}
    before = snapshot(params)
    damaged = {
        "truncated": good[:-7],
        "header only": good[:40],
        "empty": b"",
        "not a checkpoint": b"hello world, certainly not tensors\n" * 4,
        # The last data byte flipped: the structure is fine, the checksum is not.
        "flipped value": good[:-1] + bytes([good[-1] ^ 0x10]),
    }
    for what, data in damaged.items():
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(data)
        with pytest.raises(checkpoint.CorruptCheckpointError, match="bad.safetensors"):
            mx.gluon.load_parameters(bad, params)
        assert snapshot(params) == before, what
    with pytest.raises(FileNotFoundError):
        mx.gluon.load_parameters(tmp_path / "absent.safetensors", params)


def test_edited_entry_table_is_detected(saved, tmp_path):
    """Shapes live in the header, outside the tensors' checksums: an edited table must not
    give a deferred parameter a wrong shape."""
    path, _ = saved
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    entries = json.loads(meta["entries"])
    entries["fc_weight"]["shape"] = [4, 3, 1]
    tensors["fc_weight"] = tensors["fc_weight"].reshape(4, 3, 1)
    meta["entries"] = json.dumps(entries, sort_keys=True)
    safetensors.numpy.save_file(tensors, str(tmp_path / "edited.safetensors"), metadata=meta)
    p = mx.gluon.Parameter("fc_weight", shape=(0, 0, 0), allow_deferred_init=True)
    p.initialize()
    with pytest.raises(checkpoint.CorruptCheckpointError, match="entry table does not match"):
        mx.gluon.load_parameters(
            tmp_path / "edited.safetensors", {"fc_weight": p}, ignore_extra=True
        )
    assert p.shape == (-1, -1, -1)


def _fuzz_base():
    """Bytes of a small checkpoint with a dense, a row-sparse and a float16 entry."""
    import tempfile

    emb = numpy.zeros((5, 2), numpy.float32)
    emb[3] = [7, 8]
    params = {
        "w": make_param("w", numpy.arange(6, dtype=numpy.float32).reshape(2, 3), CPU0),
        "emb": make_param("emb", emb, CPU0, stype="row_sparse"),
        "h": make_param("h", numpy.array([0.5, -1], numpy.float16), CPU0),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "base.safetensors")
        mx.gluon.save_parameters(path, params)
        with open(path, "rb") as f:
            return f.read(), snapshot(params)


_FUZZ_BASE, _FUZZ_EXPECTED = _fuzz_base()
_mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, len(_FUZZ_BASE) - 1), st.just(0)),
    st.tuples(st.just("flip"), st.integers(0, len(_FUZZ_BASE) - 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, len(_FUZZ_BASE)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(_FUZZ_BASE) - 1), st.just(0)),
    # The 8-byte header length, the first thing a reader trusts.
    st.tuples(st.just("length"), st.just(0), st.integers(0, 2**64 - 1)),
)


def _mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in mutations:
        pos = min(pos, len(buf))
        if kind == "truncate":
            del buf[pos:]
        elif kind == "flip" and pos < len(buf):
            buf[pos] ^= value
        elif kind == "insert":
            buf[pos:pos] = bytes([value])
        elif kind == "delete":
            del buf[pos : pos + 1]
        elif kind == "length" and len(buf) >= 8:
            buf[:8] = struct.pack("<Q", value)
    return bytes(buf)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_fuzzed_checkpoints_fail_cleanly_or_load_exactly(tmp_path, mutations):
    data = _mutate(_FUZZ_BASE, mutations)
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(data)
    params = {
        "w": make_param("w", numpy.zeros((2, 3), numpy.float32), CPU0),
        "emb": make_param("emb", numpy.zeros((5, 2), numpy.float32), CPU0, stype="row_sparse"),
        "h": make_param("h", numpy.zeros(2, numpy.float16), CPU0),
    }
    before = snapshot(params)
    try:
        mx.gluon.load_parameters(path, params)
    except checkpoint.CheckpointError:
        assert snapshot(params) == before
    else:
        # Checksums cover every byte of data, so a load that succeeds is exact.
        assert snapshot(params) == _FUZZ_EXPECTED


# ----------------------------------------------------------------------- atomic writes
def test_writer_dying_midway_keeps_previous_checkpoint(saved, monkeypatch):
    path, params = saved
    before = path.read_bytes()
    real = checkpoint._serialize

    def dies_halfway(tensors, tmp, metadata):
        real(tensors, tmp, metadata)
        with open(tmp, "r+b") as f:
            f.truncate(os.path.getsize(tmp) // 2)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint, "_serialize", dies_halfway)
    changed = {k: make_param(k, numpy.ones_like(sample_values()[k]), CPU0) for k in params}
    with pytest.raises(OSError, match="simulated"):
        mx.gluon.save_parameters(path, changed)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # the temporary file is gone too


def test_process_killed_midway_keeps_previous_checkpoint(saved):
    path, params = saved
    before = path.read_bytes()
    # A child saves new values over the same file; its writer signals once half the
    # temporary file is on disk, then waits to be killed.
    child = textwrap.dedent(f"""
        import os, sys, time
        import numpy
        import gluonlite as mx
        from gluonlite import checkpoint
        real = checkpoint._serialize
        def slow(tensors, tmp, metadata):
            real(tensors, tmp, metadata)
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            print("midway", flush=True)
            time.sleep(60)
        checkpoint._serialize = slow
        w = mx.gluon.Parameter("fc_weight", shape=(4, 3), init="ones")
        w.initialize()
        mx.gluon.save_parameters({str(path)!r}, {{"fc_weight": w}})
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "midway"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert path.read_bytes() == before
    fresh = {
        k: mx.gluon.Parameter(k, shape=v.shape, dtype=v.dtype) for k, v in sample_values().items()
    }
    mx.gluon.load_parameters(path, fresh)
    assert_matches(fresh["fc_weight"].data(), sample_values()["fc_weight"], rtol=0, atol=0)
    # What the killed writer leaves is a hidden temporary, never the checkpoint's name.
    leftovers = [n for n in os.listdir(path.parent) if n != path.name]
    assert all(n.startswith(".model.safetensors.") and n.endswith(".tmp") for n in leftovers)


def test_new_checkpoint_replaces_old_with_usual_permissions(saved):
    path, params = saved
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(path).st_mode & 0o777) == (0o666 & ~umask)
    bigger = {k: make_param(k, v * 2, CPU0) for k, v in sample_values().items()}
    mx.gluon.save_parameters(path, bigger)
    fresh = {
        k: mx.gluon.Parameter(k, shape=v.shape, dtype=v.dtype) for k, v in sample_values().items()
    }
    mx.gluon.load_parameters(path, fresh)
    assert_matches(fresh["fc_bias"].data(), sample_values()["fc_bias"] * 2, rtol=0, atol=0)


# ----------------------------------------------------------------------- trainer states
def _trained(devices, optimizer="adam", dtype="float32"):
    net = mx.gluon.nn.Dense(3, in_units=2, dtype=dtype)
    net.initialize(mx.init.One(), device=devices)
    # float16 weights get float32 master copies: a nested state to save.
    trainer = mx.gluon.Trainer(
        net.collect_params(),
        optimizer,
        {"learning_rate": 0.1, "multi_precision": dtype == "float16"},
    )
    x = mx.np.array([[1.0, 2.0], [3.0, -1.0]], dtype=dtype)
    for _ in range(2):
        with mx.autograd.record():
            losses = [(net(part) ** 2).sum() for part in mx.gluon.utils.split_and_load(x, devices)]
        for loss in losses:
            loss.backward()
        trainer.step(batch_size=2)
    return net, trainer, x


def _state_arrays(trainer):
    """Each parameter's optimizer state arrays (master copies included), as NumPy."""
    from gluonlite.gluon.trainer import _map_state

    out = {}
    for i, (_, state) in trainer._states.items():
        leaves = []
        # CuPy arrays come to the host with .get(); NumPy ones have no such method.
        _map_state(state, lambda a: leaves.append(a.get() if hasattr(a, "get") else a))
        out[i] = leaves
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_trainer_states_round_trip_in_safetensors(tmp_path, devices, dtype):
    net, trainer, x = _trained(devices, dtype=dtype)
    path = tmp_path / "trainer.states"
    trainer.save_states(path)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert f.metadata()["kind"] == "trainer_states"
    net.save_parameters(tmp_path / "net.safetensors")

    net2 = mx.gluon.nn.Dense(3, in_units=2, dtype=dtype)
    net2.load_parameters(tmp_path / "net.safetensors", device=devices)
    trainer2 = mx.gluon.Trainer(
        net2.collect_params(), "adam", {"learning_rate": 0.1, "multi_precision": dtype == "float16"}
    )
    trainer2.load_states(path)
    assert trainer2.optimizer.num_update == trainer.optimizer.num_update
    expected = _state_arrays(trainer)
    got = _state_arrays(trainer2)
    assert sorted(got) == sorted(expected)
    for i in expected:
        for a, b in zip(expected[i], got[i]):
            numpy.testing.assert_array_equal(a, b)
    # One more step from both: identical results show that nothing was lost.
    for n, t in ((net, trainer), (net2, trainer2)):
        with mx.autograd.record():
            losses = [(n(part) ** 2).sum() for part in mx.gluon.utils.split_and_load(x, devices)]
        for loss in losses:
            loss.backward()
        t.step(batch_size=2)
    numpy.testing.assert_array_equal(
        net.weight.data(devices[0]).asnumpy(), net2.weight.data(devices[0]).asnumpy()
    )


def test_trainer_load_states_checks_before_changing(tmp_path):
    _, trainer, _ = _trained([CPU0])
    path = tmp_path / "trainer.states"
    trainer.save_states(path)
    _, sgd, _ = _trained([CPU0], optimizer="sgd")
    before = dict(sgd._states)
    with pytest.raises(checkpoint.CheckpointMismatchError, match="holds Adam states"):
        sgd.load_states(path)
    assert sgd._states == before
    net = mx.gluon.nn.Dense(3, in_units=2)
    net.initialize()
    net.save_parameters(tmp_path / "params.safetensors")
    with pytest.raises(checkpoint.CheckpointMismatchError, match="not a gluonlite trainer"):
        trainer.load_states(tmp_path / "params.safetensors")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(checkpoint.CorruptCheckpointError):
        trainer.load_states(path)
