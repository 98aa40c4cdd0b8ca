"""Suite ``mxnet``: the ``param``, ``fc``, ``replicate`` and ``step`` workloads in Apache
MXNet 1.9.1, on CPU, side by side with gluonlite's.

MXNet 1.9.1 needs Python <= 3.11 and ``numpy==1.23.5``, so it lives in its own virtual
environment, ``.venv-mxnet`` (``make bench-mxnet`` or ``bash ci/mxnet_env.sh`` creates it).
The MXNet side runs in one subprocess, ``benchmarks/mxnet_workloads.py``, which receives
the very case dicts of the gluonlite suites and times each case with the same
:mod:`gluonlite.bench.timing` method right before gluonlite's side is timed here. The suite
skips, saying why, where the environment or the runner is missing.

The table shows milliseconds per workload call (e.g. 1000 ``data()`` calls, one FC forward,
one ``Trainer.step``), identical work on both sides.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import subprocess
import tempfile
from typing import IO, Any, Callable

from . import fc, param, replicate, step, timing
from .report import Metric
from .targets import Target
from .workload import Builder, Remote, Skip, Spec, Workload

__all__ = [
    "NAME",
    "TITLE",
    "METRIC",
    "SIZE_LABEL",
    "PEER",
    "specs",
    "describe",
    "implementations",
    "locate",
    "remote",
]

NAME = "mxnet"
TITLE = "the same workloads in Apache MXNet 1.9.1 on CPU (time per workload call)"
METRIC = Metric("ms/call", 1e-3, rate=False)
SIZE_LABEL = None  # cases of different suites share no size axis: not plotted
PEER = "mxnet-1.9.1"

_SUITES = {m.NAME: m for m in (param, fc, replicate, step)}
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


def _fc_specs(target: Target, quick: bool) -> list[Spec]:
    # A few shapes from both ends of the sweep: MXNet is there for the comparison, not for
    # a second full sweep.
    keep: Callable[[Spec], bool] = (
        (lambda s: s["in"] == 256)
        if quick
        else (lambda s: s["batch"] in (16, 1024) and s["in"] in (256, 1024))
    )
    return [s for s in fc.specs(target, quick) if keep(s)]


def specs(target: Target, quick: bool) -> list[Spec]:
    if target.kind != "cpu":
        raise Skip("MXNet 1.9.1's pip wheel is CPU-only")
    locate()
    inner = [("param", s) for s in param.specs(target, quick)]
    inner += [("fc", s) for s in _fc_specs(target, quick)]
    inner += [("replicate", s) for s in replicate.specs(target, quick)]
    inner += [("step", s) for s in step.specs(target, quick) if s["optimizer"] in step.HYPER]
    return [dict(s, suite=name, index=i, quick=quick) for i, (name, s) in enumerate(inner)]


def _inner(spec: Spec) -> Spec:
    return {k: v for k, v in spec.items() if k not in ("suite", "index", "quick")}


def describe(spec: Spec) -> tuple[str, str, float]:
    label, series, size = _SUITES[spec["suite"]].describe(_inner(spec))
    return f"{spec['suite']:<9} {label}", f"{spec['suite']} {series}", size


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


def _mxnet(spec: Spec) -> Remote:
    return remote(spec["suite"], _inner(spec), spec["quick"])


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
    return _mxnet(dict(case, index=0, quick=case.get("quick", False)))


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    suite, inner = _SUITES[spec["suite"]], _inner(spec)
    build: Builder = suite.implementations(inner, target)["gluonlite"]

    def gluonlite() -> Workload | Remote:
        # Per workload call, as the MXNet side reports it.
        made = build()
        made.work = 1.0
        return made

    return {"gluonlite": gluonlite, PEER: lambda: _mxnet(spec)}
