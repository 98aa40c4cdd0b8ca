"""The MXNet 1.9.1 side of the benchmarks: finds ``.venv-mxnet`` and the runner script
``benchmarks/mxnet_workloads.py``, and times cases there in one subprocess kept for the
run. Shared by the ``mxnet`` suite and by the suites that show MXNet as a column of their
own (``param``, ``step``, ``ops``), so it sits below all of them (see
:mod:`gluonlite.bench.mxnet` for the method).
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import subprocess
import tempfile
from typing import IO, Any

from . import timing
from .workload import Remote, Skip, Spec

__all__ = ["PEER", "locate", "remote", "optimizers", "measure_case"]

PEER = "mxnet-1.9.1"

_VENV = ".venv-mxnet"
_RUNNER = pathlib.Path("benchmarks", "mxnet_workloads.py")


def _roots() -> list[pathlib.Path]:
    # The current directory (``make bench`` runs in the checkout) and, for an editable
    # install, the checkout holding this package.
    return [pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parents[2]]


def locate() -> tuple[str, str]:
    """``(python, runner)`` for the MXNet side; raises :class:`Skip` saying what is missing."""
    runners = [r / _RUNNER for r in _roots() if (r / _RUNNER).is_file()]
    if not runners:
        raise Skip(f"{_RUNNER} not found: the MXNet comparison runs from a source checkout")
    explicit = os.environ.get("GLUONLITE_MXNET_PYTHON")
    if explicit:
        return explicit, str(runners[0])
    for root in _roots():
        # ci/mxnet_env.sh writes the marker only once mxnet imports, so a half-made
        # environment is never used.
        if (root / _VENV / ".installed").is_file():
            return str(root / _VENV / "bin" / "python"), str(runners[0])
    raise Skip(
        f"no MXNet 1.9.1 environment ({_VENV}): run `make bench-mxnet` or "
        "`bash ci/mxnet_env.sh` to create it, or set GLUONLITE_MXNET_PYTHON"
    )


def _inner(spec: Spec) -> Spec:
    return {k: v for k, v in spec.items() if k not in ("suite", "index", "quick")}


class _Runner:
    """The MXNet side: one ``benchmarks/mxnet_workloads.py`` process serving requests.

    One JSON request per line on its stdin, one JSON reply per line on its stdout (see the
    runner's docstring). Its stderr (MXNet's warnings) goes to a file, read back only to
    explain a crash: a pipe nobody reads could fill up and block it.
    """

    def __init__(self, python: str, script: str) -> None:
        self.optimizers: frozenset[str] | None = None  # asked for on first use
        self._log = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [python, script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            self.versions: dict[str, Any] = self.ask({"op": "hello"})["versions"]
        except Exception:
            self.close()
            raise

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            stdin, stdout = self._pipes()
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            # Its stdout closed: it is exiting. Wait for it, since poll() right after the
            # end of its output can still say "running" (status None).
            try:
                status = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = None
            self._log.seek(0)
            tail = " | ".join(self._log.read().strip().splitlines()[-3:])
            raise RuntimeError(f"the MXNet runner exited (status {status}): {tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"MXNet: {reply['error']}")
        return reply

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        # Both are pipes (Popen was given PIPE for them).
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the MXNet runner was started without its pipes")
        return stdin, stdout

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        try:
            self._pipes()[0].close()  # end of requests: the runner returns
        except OSError:  # it already exited and the pipe is broken
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._pipes()[1].close()
        self._log.close()


_runner: _Runner | None = None


def _get_runner() -> _Runner:
    """The runner process, started on first use and kept for the rest of the run."""
    global _runner
    if _runner is None or not _runner.alive():
        _runner = _Runner(*locate())
        atexit.register(_runner.close)
    return _runner


class _Measured:
    """MXNet's repeats of one case, taken as a block in the runner, handed out in turn.

    Not alternated with gluonlite's repeats like the in-process peers: two processes' thread
    pools (MXNet's OpenMP, NumPy's OpenBLAS) taking turns on a small machine stall each
    other (measured: 100x slower GEMMs on 2 cores), which no single library would see.
    """

    def __init__(self, reply: dict[str, Any]) -> None:
        self.number: int = reply["number"]
        self._times = iter(reply["times_s"])

    def repeat(self) -> float:
        seconds: float = next(self._times)
        return seconds


def remote(suite: str, case: Spec, quick: bool, work: float = 1.0) -> Remote:
    """MXNet's timing of ``case`` of ``suite`` (e.g. the ``param`` suite's own MXNet peer),
    ``work`` units per workload call."""
    runner = _get_runner()
    settings = timing.QUICK if quick else timing.FULL
    reply = runner.ask(
        {"op": "measure", "case": dict(case, suite=suite), "settings": settings.kwargs()}
    )
    return Remote(_Measured(reply), work, runner.versions)


def optimizers() -> frozenset[str]:
    """The optimizer names MXNet 1.9.1 registers (raises :class:`Skip` without MXNet)."""
    runner = _get_runner()
    if runner.optimizers is None:
        runner.optimizers = frozenset(runner.ask({"op": "optimizers"})["optimizers"])
    return runner.optimizers


def measure_case(case: Spec) -> Remote:
    """One case of ``case['suite']`` timed in MXNet (per workload call, FULL settings unless
    the case says ``quick``), for suites that show MXNet as a column of their own."""
    return remote(case["suite"], _inner(case), case.get("quick", False))
