"""``gluonlite-bench``: gluonlite's workloads and the same workloads in its peers, in one run.

Usage::

    gluonlite-bench [SUITE ...] [--device cpu|gpu|all|'gpu(0)'] [--quick]
                    [--json FILE] [--plot FILE.png]

Prints a header describing the machine, then one table per suite with a ratio column per
peer (``peer time / gluonlite time``: above 1, gluonlite is faster). A progress bar runs on
stderr. Exit status: 0 when every case ran, 1 when some implementation failed (its cell
says ``error`` and the error is printed under the table), 2 for bad arguments, such as
``--device gpu`` on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Any

from . import conv, fc, machine, mxnet, ops, param, replicate, report, retain, step, targets
from . import timing
from .progress import Progress
from .workload import Skip, run_case

__all__ = ["SUITES", "main"]

SUITES = {m.NAME: m for m in (fc, retain, replicate, param, step, conv, mxnet, ops)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gluonlite-bench",
        description="Benchmark gluonlite against NumPy/CuPy/torch and Apache MXNet 1.9.1. "
        "Ratios are peer time / gluonlite time (> 1: gluonlite is faster).",
    )
    p.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"suites to run, any of: {', '.join(SUITES)} (default: all)",
    )
    p.add_argument(
        "--device",
        default="all",
        help="cpu, gpu (every visible GPU), all (default: the CPU and any GPU), "
        "or one device such as 'gpu(0)'",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="few cases, few repeats: a smoke run in seconds, not for quoting",
    )
    p.add_argument("--json", metavar="FILE", help="write every raw timing to FILE")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="plot throughput vs size per implementation (needs matplotlib: "
        "pip install 'gluonlite[plot]')",
    )
    return p


# One case to run: its suite module, the suite's result, the case and the target.
_Case = tuple[ModuleType, report.SuiteResult, dict[str, Any], targets.Target]


def _plan(
    names: list[str], target_list: list[targets.Target], quick: bool
) -> tuple[list[report.SuiteResult], list[_Case]]:
    """(suite results, [(suite module, result, spec, target)]) with skips already recorded."""
    results: list[report.SuiteResult] = []
    cases: list[_Case] = []
    for name in names:
        module = SUITES[name]
        result = report.SuiteResult(name, module.TITLE, module.METRIC, module.SIZE_LABEL)
        reasons: list[str] = []
        for target in target_list:
            try:
                cases += [(module, result, spec, target) for spec in module.specs(target, quick)]
            except Skip as e:
                reasons.append(f"{target.kind}: {e}")
        if len(reasons) == len(target_list):
            result.skipped = "; ".join(reasons)
        else:
            result.notes += [f"skipped on {r}" for r in reasons]
        results.append(result)
    return results, cases


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'gluonlite[plot]'")
    try:
        target_list = targets.resolve(args.device)
    except targets.DeviceError as e:
        parser.error(str(e))
    settings = timing.QUICK if args.quick else timing.FULL

    info = machine.describe()
    print(
        "gluonlite-bench  "
        + (
            "(quick: smoke numbers, not for quoting)"
            if args.quick
            else f"median of {settings.repeats} repeats"
        )
    )
    print("\n".join(machine.header_lines(info)))
    print(flush=True)

    results, cases = _plan(names, target_list, args.quick)
    progress = Progress(len(cases))
    printed: set[int] = set()

    def print_finished(upto: int) -> None:
        # A suite's table prints as soon as its last case is done, so a long run shows
        # results early; skipped suites print in their turn.
        for result in results:
            if id(result) in printed:
                continue
            if any(c[1] is result for c in cases[upto:]):
                break
            progress.clear()
            print(report.render(result) + "\n", flush=True)
            printed.add(id(result))

    for i, (module, result, spec, target) in enumerate(cases):
        print_finished(i)
        progress.step(module.NAME, module.describe(spec)[0])
        result.rows.append(run_case(module, spec, target, settings))
        progress.advance()
    progress.close()
    print_finished(len(cases))

    if args.json:
        document = report.to_json(
            results,
            info,
            {
                "suites": names,
                "device": args.device,
                "quick": args.quick,
                "settings": settings.kwargs(),
                "targets": [t.name for t in target_list],
            },
        )
        report.write_json(args.json, document)
        print(f"raw timings written to {args.json}")
    if args.plot:
        report.plot(results, args.plot)
        print(f"plot written to {args.plot}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
