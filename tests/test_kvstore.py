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
    return subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(SCRIPT), scenario],
                          capture_output=True, text=True, timeout=timeout, env=env)


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
    assert lines == [f"rank {r}/2 a=[3.0, 3.0, 3.0, 3.0, 3.0] b=45.0 c=[1.0, 1.0, 1.0]"
                     for r in (0, 1)]


def test_a_silent_peer_gives_a_timeout_not_a_hang():
    result = _run("silent-peer")
    assert result.returncode != 0
    assert "allreduce of fc_weight on rank 0 of 2 did not complete within 3 s" in result.stderr


def test_a_failing_peer_ends_every_rank_with_its_message():
    result = _run("raising-peer")
    assert result.returncode != 0
    assert "[rank 1] training failed: RuntimeError('simulated failure in rank 1')" \
        in result.stderr
