import os
import pathlib
import shutil
import subprocess
import sys

import numpy
import pytest

import gluonlite as mx

SCRIPT = pathlib.Path(__file__).parent / "mpi" / "collectives.py"
ROOT = pathlib.Path(__file__).parent.parent


def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
    local = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    return found


def _run(scenario, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [_mpiexec(), "-n", "2", sys.executable, str(SCRIPT), scenario],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_local_store_is_a_single_worker():
    kv = mx.kv.create("device")
    a = numpy.ones(3)
    kv.allreduce_([a])
    kv.broadcast_([a])
    kv.barrier()
    assert (kv.type, kv.rank, kv.num_workers) == ("device", 0, 1)
    numpy.testing.assert_array_equal(a, numpy.ones(3))
    assert mx.kv.create(kv) is kv


def test_unknown_store_name_is_rejected():
    with pytest.raises(ValueError, match="Unknown kvstore 'dist_async'"):
        mx.kv.create("dist_async")


def test_allreduce_and_broadcast_across_two_processes():
    result = _run("sum")
    assert result.returncode == 0, result.stderr
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank"))
    assert lines == [
        f"rank {r}/2 a=[3.0, 3.0, 3.0, 3.0, 3.0] b=45.0 c=[1.0, 1.0, 1.0]" for r in (0, 1)
    ]


def test_a_silent_peer_gives_a_timeout_not_a_hang():
    result = _run("silent-peer")
    assert result.returncode != 0
    assert "allreduce of fc_weight on rank 0 of 2 did not complete within 3 s" in result.stderr


def test_a_failing_peer_ends_every_rank_with_its_message():
    result = _run("raising-peer")
    assert result.returncode != 0
    assert "[rank 1] training failed: RuntimeError('simulated failure in rank 1')" in result.stderr


@pytest.mark.slow
def test_mpi_training_matches_the_two_device_run(tmp_path):
    pytest.importorskip("sklearn", reason="the demo needs scikit-learn")
    pytest.importorskip("safetensors", reason="comparing needs safetensors")
    from safetensors.numpy import load_file

    demo = str(ROOT / "examples" / "train_digits.py")
    common = ["--quick", "--epochs", "2", "--dropout", "0"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    single = subprocess.run(
        [
            sys.executable,
            demo,
            *common,
            "--devices",
            "cpu0,cpu1",
            "--save",
            str(tmp_path / "single.params"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    dist = subprocess.run(
        [
            _mpiexec(),
            "-n",
            "2",
            sys.executable,
            demo,
            *common,
            "--kvstore",
            "dist_sync",
            "--save",
            str(tmp_path / "dist.params"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert dist.returncode == 0, dist.stderr[-2000:]
    a, b = load_file(tmp_path / "single.params"), load_file(tmp_path / "dist.params")
    assert sorted(a) == sorted(b)
    for name in a:
        numpy.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_dist_trainer_broadcasts_rank0_and_keeps_ranks_identical():
    result = _run("trainer")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = sorted(
        line.split(" ", 2)[2] for line in result.stdout.splitlines() if line.startswith("rank")
    )
    assert len(lines) == 2 and lines[0] == lines[1], result.stdout
    # Rank 0 looked up rows 1 and 5, rank 1 rows 2 and 5: the lazy update touches the union.
    assert "changed=[1, 2, 5]" in lines[0]
