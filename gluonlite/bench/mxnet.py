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

from typing import Callable

from . import fc, param, replicate, step
from ._mxnet_runner import PEER, _inner, locate, measure_case, optimizers, remote
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
    "optimizers",
    "measure_case",
]

NAME = "mxnet"
TITLE = "the same workloads in Apache MXNet 1.9.1 on CPU (time per workload call)"
METRIC = Metric("ms/call", 1e-3, rate=False)
SIZE_LABEL = None  # cases of different suites share no size axis: not plotted

_SUITES = {m.NAME: m for m in (param, fc, replicate, step)}


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


def describe(spec: Spec) -> tuple[str, str, float]:
    label, series, size = _SUITES[spec["suite"]].describe(_inner(spec))
    return f"{spec['suite']:<9} {label}", f"{spec['suite']} {series}", size


def _mxnet(spec: Spec) -> Remote:
    return remote(spec["suite"], _inner(spec), spec["quick"])


def implementations(spec: Spec, target: Target) -> dict[str, Builder]:
    suite, inner = _SUITES[spec["suite"]], _inner(spec)
    build: Builder = suite.implementations(inner, target)["gluonlite"]

    def gluonlite() -> Workload | Remote:
        # Per workload call, as the MXNet side reports it.
        made = build()
        made.work = 1.0
        return made

    return {"gluonlite": gluonlite, PEER: lambda: _mxnet(spec)}
