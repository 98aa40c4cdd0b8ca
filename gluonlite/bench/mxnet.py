"""Suite ``mxnet``: the ``param``, ``fc``, ``replicate`` and ``step`` workloads in Apache
MXNet 1.9.1, on CPU, side by side with gluonlite's.

MXNet 1.9.1 needs Python <= 3.11 and ``numpy==1.23.5``, so it lives in its own virtual
environment, ``.venv-mxnet`` (``make bench-mxnet`` or ``bash ci/mxnet_env.sh`` creates it).
The MXNet side runs in one subprocess, ``benchmarks/mxnet_workloads.py``, which receives
the very case dicts of the gluonlite suites and times them with the same
:mod:`gluonlite.bench.timing` method; the gluonlite side is timed here. The suite skips,
saying why, where the environment or the runner is missing.

The table shows milliseconds per workload call (e.g. 1000 ``data()`` calls, one FC forward,
one ``Trainer.step``), identical work on both sides.
"""
from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess

from . import fc, param, replicate, step, timing
from .report import Metric, Result
from .workload import Skip

__all__ = ["NAME", "TITLE", "METRIC", "SIZE_LABEL", "PEER", "specs", "describe",
           "implementations", "locate"]

NAME = "mxnet"
TITLE = "the same workloads in Apache MXNet 1.9.1 on CPU (time per workload call)"
METRIC = Metric("ms/call", 1e-3, rate=False)
SIZE_LABEL = None  # cases of different suites share no size axis: not plotted
PEER = "mxnet-1.9.1"

_SUITES = {m.NAME: m for m in (param, fc, replicate, step)}
_VENV = ".venv-mxnet"
_RUNNER = pathlib.Path("benchmarks", "mxnet_workloads.py")
_TIMEOUT_S = 1800


def _roots() -> list:
    # The current directory (``make bench`` runs in the checkout) and, for an editable
    # install, the checkout holding this package.
    return [pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parents[2]]


def locate():
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
    raise Skip(f"no MXNet 1.9.1 environment ({_VENV}): run `make bench-mxnet` or "
               "`bash ci/mxnet_env.sh` to create it, or set GLUONLITE_MXNET_PYTHON")


def _fc_specs(target, quick: bool) -> list:
    # A few shapes from both ends of the sweep: MXNet is there for the comparison, not for
    # a second full sweep.
    keep = (lambda s: s["in"] == 256) if quick else \
        (lambda s: s["batch"] in (16, 1024) and s["in"] in (256, 1024))
    return [s for s in fc.specs(target, quick) if keep(s)]


def specs(target, quick: bool) -> list:
    if target.kind != "cpu":
        raise Skip("MXNet 1.9.1's pip wheel is CPU-only")
    locate()
    inner = [("param", s) for s in param.specs(target, quick)]
    inner += [("fc", s) for s in _fc_specs(target, quick)]
    inner += [("replicate", s) for s in replicate.specs(target, quick)]
    inner += [("step", s) for s in step.specs(target, quick)]
    return [dict(s, suite=name, index=i, quick=quick) for i, (name, s) in enumerate(inner)]


def _inner(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("suite", "index", "quick")}


def describe(spec: dict):
    label, series, size = _SUITES[spec["suite"]].describe(_inner(spec))
    return f"{spec['suite']:<9} {label}", f"{spec['suite']} {series}", size


@functools.lru_cache(maxsize=None)
def _run(request_json: str) -> dict:
    """Run the MXNet runner once for all cases (memoised: every row reads its result)."""
    python, runner = locate()
    try:
        proc = subprocess.run([python, runner], input=request_json, capture_output=True,
                              text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": f"{runner} exited with {proc.returncode}: {' | '.join(tail)}"}
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": f"{runner} printed no JSON: {proc.stdout[-300:]!r}"}


def _mxnet_result(spec: dict, target) -> Result:
    quick = spec["quick"]
    settings = timing.QUICK if quick else timing.FULL
    cases = [dict(_inner(s), suite=s["suite"]) for s in specs(target, quick)]
    out = _run(json.dumps({"settings": settings.kwargs(), "cases": cases}, sort_keys=True))
    if "error" in out:
        return Result(PEER, 1.0, error=out["error"])
    got = out["results"][spec["index"]]
    if "error" in got:
        return Result(PEER, 1.0, error=got["error"])
    return Result(PEER, 1.0, timing.Timing(got["times_s"], got["number"]),
                  info=out.get("versions"))


def implementations(spec: dict, target) -> dict:
    suite, inner = _SUITES[spec["suite"]], _inner(spec)
    build = suite.implementations(inner, target)["gluonlite"]

    def gluonlite():
        # Per workload call, as the MXNet side reports it.
        made = build()
        made.work = 1.0
        return made
    return {"gluonlite": gluonlite, PEER: lambda: _mxnet_result(spec, target)}
