"""Ranks that die or disagree under dist_sync (issue 15, item 4): real ``mpiexec -n 2``
runs, each bounded in time (MXNET_KVSTORE_TIMEOUT keeps a hung collective short)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import gluonlite as mx

from ..test_kvstore import _mpiexec  # skips cleanly without mpi4py or mpiexec

SCRIPT = pathlib.Path(__file__).parent / "mpi_scenarios.py"
ROOT = pathlib.Path(__file__).parent.parent.parent


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", MXNET_KVSTORE_TIMEOUT="8")


# scenario: (whether the job succeeds, text on stderr or stdout)
_LAUNCHED = {
    "early-exit": (False, "rank 1 of 2 ended before finishing the script"),
    "raise": (False, "rank 1 of 2 failed: RuntimeError: simulated failure on rank 1"),
    "complete": (True, "rank 1 finished 3 steps"),
}


@pytest.mark.parametrize("scenario", sorted(_LAUNCHED))
def test_the_launcher_names_a_rank_that_ends_early_or_fails(scenario):
    succeeds, text = _LAUNCHED[scenario]
    mpiexec = _mpiexec()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gluonlite.distributed.run",
            "-n",
            "2",
            "--mpiexec",
            mpiexec,
            str(SCRIPT),
            scenario,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert (result.returncode == 0) == succeeds, result.stderr[-3000:]
    assert text in (result.stdout if succeeds else result.stderr), result.stderr[-3000:]
    if not succeeds:
        assert "the job FAILED" in result.stderr
        assert "finished 40 steps" not in result.stdout  # the survivor was stopped


def test_ranks_with_different_parameters_get_one_clear_error_each():
    result = subprocess.run(
        [_mpiexec(), "-n", "2", sys.executable, str(SCRIPT), "mismatches"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    expected = {
        "width": r"rank 0 has '0.weight' of shape (4, 3), dtype float32, grad_req 'write'; "
        r"rank 1 has '0.weight' of shape (5, 3)",
        "extra layer": "rank 0 has only 2 parameters; rank 1 has '1.weight'",
        "dtype": "rank 1 has '0.weight' of shape (4, 3), dtype float64",
        "deferred": "rank 0 has 'weight' of shape (2, 3), dtype float32, grad_req 'write'; "
        "rank 1 has 'weight' of shape (2, 4)",
    }
    for case, text in expected.items():
        for rank in (0, 1):
            line = next((x for x in lines if x.startswith(f"rank {rank} {case}:")), "")
            assert "the ranks hold different parameters" in line and text in line, (
                case,
                rank,
                result.stdout,
                result.stderr[-2000:],
            )


class _FailingStore(mx.kv.KVStore):
    """Two workers whose broadcast fails as an MPI error does (a RuntimeError subclass)."""

    @property
    def num_workers(self):
        return 2

    def broadcast_(self, arrays, root=0, names=None):
        raise RuntimeError("MPI_ERR_OTHER: Other MPI error (simulated)")


def test_trainer_creation_never_swallows_a_collective_error():
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize(device=mx.cpu(0))
    with pytest.raises(RuntimeError, match="Other MPI error"):
        mx.gluon.Trainer(net.collect_params(), "sgd", kvstore=_FailingStore("dist_sync"))
