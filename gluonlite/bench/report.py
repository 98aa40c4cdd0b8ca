"""Benchmark results: rows of timings per implementation, ratio tables, JSON and the plot.

Ratios are always ``peer time / gluonlite time`` for the same work, so a ratio above 1 means
gluonlite is faster, whatever the suite's metric (a rate such as GFLOP/s, or a time such as
microseconds per call).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable
from typing import Any

from .timing import Timing

__all__ = [
    "Metric",
    "Result",
    "Row",
    "SuiteResult",
    "REFERENCE",
    "render",
    "to_json",
    "write_json",
    "plot",
]

REFERENCE = "gluonlite"
SCHEMA = "gluonlite-bench/1"


@dataclasses.dataclass(frozen=True)
class Metric:
    """How a suite shows its timings: ``work / seconds / scale`` for a rate, or
    ``seconds / work / scale`` for a cost per unit of work (``rate=False``)."""

    unit: str
    scale: float
    rate: bool = True

    def value(self, seconds: float, work: float) -> float:
        if self.rate:
            return work / seconds / self.scale if seconds > 0 else float("inf")
        return seconds / work / self.scale


@dataclasses.dataclass
class Result:
    """One implementation's timing of one case; ``work`` is per call (FLOPs, bytes, ...)."""

    impl: str
    work: float
    timing: Timing | None = None
    error: str | None = None
    # What an implementation measured elsewhere reports about itself (e.g. the MXNet
    # runner's versions); goes to the JSON only.
    info: dict[str, Any] | None = None

    @property
    def seconds_per_work(self) -> float | None:
        return None if self.timing is None else self.timing.median / self.work


@dataclasses.dataclass
class Row:
    """One case of a suite on one device, measured by gluonlite and its peers.

    ``series`` groups rows into a line of the plot (e.g. ``forward float32``) and ``size``
    is the x coordinate (e.g. FLOPs per call).
    """

    label: str
    device: str
    series: str
    size: float
    case: dict[str, Any]
    results: list[Result]

    def result(self, impl: str) -> Result | None:
        return next((r for r in self.results if r.impl == impl), None)

    def ratios(self) -> dict[str, float | None]:
        """``peer time / gluonlite time`` per peer; None where either side has no timing."""
        ref = self.result(REFERENCE)
        theirs = None if ref is None else ref.seconds_per_work
        out: dict[str, float | None] = {}
        for r in self.results:
            if r.impl == REFERENCE:
                continue
            mine = r.seconds_per_work  # None exactly when there is no timing
            out[r.impl] = mine / theirs if mine is not None and theirs is not None else None
        return out


@dataclasses.dataclass
class SuiteResult:
    name: str
    title: str
    metric: Metric
    size_label: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def errors(self) -> list[tuple[str, str, str]]:
        return [
            (row.label, r.impl, r.error)
            for row in self.rows
            for r in row.results
            if r.error is not None
        ]


def _number(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _impls(rows: Iterable[Row]) -> list[str]:
    seen = [REFERENCE]
    for row in rows:
        seen += [r.impl for r in row.results if r.impl not in seen]
    return seen


def render(suite: SuiteResult) -> str:
    """A plain-text table: one row per case, the metric per implementation, then ratios."""
    lines = [f"== {suite.name}: {suite.title}"]
    if suite.skipped is not None:
        return "\n".join(lines + [f"   skipped: {suite.skipped}"])
    impls = _impls(suite.rows)
    peers = impls[1:]
    header = (
        ["case", "device"]
        + [f"{i} {suite.metric.unit}" for i in impls]
        + [f"vs {p}" for p in peers]
    )
    table = [header]
    for row in suite.rows:
        cells = [row.label, row.device]
        for impl in impls:
            r = row.result(impl)
            if r is None:
                cells.append("")
            elif r.timing is None:
                cells.append("error")
            else:
                cells.append(_number(suite.metric.value(r.timing.median, r.work)))
        ratios = row.ratios()
        cells += [
            ("-" if ratios.get(p) is None else f"{ratios[p]:.2f}x") if p in ratios else ""
            for p in peers
        ]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for k, cells in enumerate(table):
        # Left-align the case names, right-align the numbers.
        text = "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )
        lines.append("   " + text.rstrip())
        if k == 0:
            lines.append("   " + "  ".join("-" * w for w in widths))
    if peers:
        lines.append(
            "   vs X = X's time / gluonlite's time for the same work (> 1: gluonlite is faster)"
        )
    lines += [f"   note: {n}" for n in suite.notes]
    lines += [f"   error in {label} ({impl}): {err}" for label, impl, err in suite.errors]
    return "\n".join(lines)


def to_json(
    suites: Iterable[SuiteResult], machine: dict[str, Any], args: dict[str, Any]
) -> dict[str, Any]:
    """Every raw timing, with the machine and the arguments; see docs/benchmarks.md."""

    def row_json(row: Row) -> dict[str, Any]:
        return {
            "label": row.label,
            "device": row.device,
            "series": row.series,
            "size": row.size,
            "case": row.case,
            "results": {
                r.impl: {
                    "work": r.work,
                    "error": r.error,
                    **(r.timing.to_json() if r.timing else {}),
                    **({"info": r.info} if r.info else {}),
                }
                for r in row.results
            },
            "ratios": row.ratios(),
        }

    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "args": args,
        "machine": machine,
        "suites": [
            {
                "name": s.name,
                "title": s.title,
                "unit": s.metric.unit,
                "scale": s.metric.scale,
                "rate": s.metric.rate,
                "size_label": s.size_label,
                "status": "skipped" if s.skipped is not None else "ok",
                "reason": s.skipped,
                "notes": s.notes,
                "rows": [row_json(r) for r in s.rows],
            }
            for s in suites
        ],
    }


def write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def plot(suites: Iterable[SuiteResult], path: str) -> None:
    """Throughput vs size, one panel per suite, one line per (implementation, series, device).

    Needs matplotlib (the ``plot`` extra); the CLI checks for it before running anything.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    panels = [s for s in suites if s.skipped is None and s.rows]
    if not panels:
        raise ValueError("nothing to plot: every suite was skipped or empty")
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    for ax, suite in zip(axes[:, 0], panels):
        lines: dict[str, list[tuple[float, float]]] = {}
        for row in suite.rows:
            for r in row.results:
                if r.timing is not None:
                    key = f"{r.impl} {row.series} {row.device}".replace("  ", " ")
                    lines.setdefault(key, []).append(
                        (row.size, suite.metric.value(r.timing.median, r.work))
                    )
        for key, points in lines.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(suite.size_label)
        ax.set_ylabel(suite.metric.unit)
        ax.set_title(f"{suite.name}: {suite.title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
