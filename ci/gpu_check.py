"""``make gpu-check``: verify and benchmark gluonlite on a GPU machine, in one command.

Runs from the source tree with the Python already there (CuPy, NumPy, pytest,
pytest-benchmark, torch) and installs nothing:

1. the whole test suite (tests/, doctests, benchmarks in quick mode) with pytest;
2. the kernel checks on their own (tests/test_kernels_gpu.py: kernels vs NumPy on fresh random
   inputs, both fully-connected paths, PTX fast path vs portable path) and, where nvcc is
   there, the registers / shared memory / spills of every kernel for sm_90;
3. the kernel benchmarks (benchmarks/bench_kernels.py) with timing enabled;
4. ``gluonlite-bench --device gpu`` (every suite's GPU tables with ratios against CuPy, torch
   and copies; ``GPU_CHECK_BENCH_ARGS`` adds arguments, e.g. ``--quick`` or a suite list),
   its output in ``bench_cli.txt`` and its raw timings in ``bench_cli.json``;

then writes ``gpu_check.json`` and ``gpu_check.md`` (a short table: TFLOP/s, GB/s and the
ratios against cuBLAS-through-CuPy, torch and a device-to-device copy) into
``$GPU_CHECK_OUT`` (default ``build/gpu-check``) and prints the table.

``GPU_CHECK_STAGES`` (comma-separated, default all of ``suite,kernels,bench,cli``) runs some
of the four steps only, e.g. to split the work over calls of a machine that limits how long
one command may run.

Exit status: 0 when every test passed, 1 when a test failed, 2 when no GPU is visible (the
test suite still runs on the CPU, but nothing was checked on a GPU). Missed performance
targets are reported in the table and do not change the status.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import gluonlite  # noqa: E402

STAGES = ("suite", "kernels", "bench", "cli")
FC_TARGET = 1.0  # gluonlite / peer speed on every shape
RETAIN_TARGET = 0.85  # fraction of device-to-device copy bandwidth


def device_info() -> dict:
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    info = {"name": props["name"].decode() if isinstance(props["name"], bytes)
            else str(props["name"]),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "driver": cupy.cuda.runtime.driverGetVersion(),
            "runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cupy": cupy.__version__, "python": sys.version.split()[0]}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def run_pytest(args: list[str], out: Path, name: str) -> dict:
    """Run pytest in a child process (so a crash cannot take the check down); counts from
    its JUnit XML, the log kept beside it."""
    junit = out / f"{name}.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p",
                           "no:cacheprovider", f"--junitxml={junit}", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if junit.exists():
        for suite in ET.parse(junit).getroot().iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    return {"returncode": proc.returncode, "seconds": round(time.time() - start, 1),
            "summary": summary, **counts}


def kernel_resources(out: Path) -> list[dict] | str:
    from tests.cuda_host import nvcc as nv
    from gluonlite import _kernels
    nvcc = nv.find_nvcc()
    if nvcc is None:
        return "nvcc not found: resources not reported (the CI compile check reports them)"
    entries = []
    for source in _kernels.KERNEL_SOURCES:
        proc, _ = nv.compile_source(nvcc, source, "sm_90", "cubin", out)
        if proc.returncode != 0:
            return f"nvcc failed on {source}:\n{proc.stderr}"
        entries += nv.parse_ptxas(proc.stderr + proc.stdout)
    return entries


def benchmark_rows(bench_json: Path) -> list[dict]:
    """One row per benchmark group: each implementation's median time and rate, and ratios
    of gluonlite against its peers (> 1: gluonlite is faster)."""
    data = json.loads(bench_json.read_text())
    groups: dict[str, dict] = {}
    for bench in data["benchmarks"]:
        info, median = bench["extra_info"], bench["stats"]["median"]
        row = groups.setdefault(bench["group"], {"kind": info["kind"], "dtype": info["dtype"],
                                                 "shape": info["shape"],
                                                 "op": info.get("op", "retain"), "impls": {}})
        work = info.get("flops", info.get("bytes"))
        row["impls"][info["impl"]] = {"median_s": median, "rate": work / median / (
            1e12 if info["kind"] == "fc" else 1e9)}
    for row in groups.values():
        impls = row["impls"]
        mine = impls.get("gluonlite")
        row["ratios"] = {peer: impls[peer]["median_s"] / mine["median_s"]
                         for peer in impls if mine and peer != "gluonlite"}
        target = FC_TARGET if row["kind"] == "fc" else RETAIN_TARGET
        row["target"] = target
        # None: no peer ran in this group (e.g. torch missing), so there is nothing to judge.
        row["meets_target"] = (min(row["ratios"].values()) >= target) if row["ratios"] else None
    return sorted(groups.values(), key=lambda r: (r["kind"], r["op"], r["dtype"],
                                                  [int(s) for s in r["shape"]]))


def format_table(rows: list[dict]) -> str:
    lines = ["| benchmark | shape | gluonlite | cupy / copy | torch | ratio vs cupy/copy | "
             "ratio vs torch | target |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = "TFLOP/s" if r["kind"] == "fc" else "GB/s"
        rate = lambda impl: (f"{r['impls'][impl]['rate']:.3g} {unit}"  # noqa: E731
                             if impl in r["impls"] else "-")
        peer = "cupy" if r["kind"] == "fc" else "copy"
        ratio = lambda p: (f"{r['ratios'][p]:.2f}x" if p in r["ratios"] else "-")  # noqa: E731
        verdict = {True: "ok", False: f"MISS (>= {r['target']})", None: "no peer"}[
            r["meets_target"]]
        name = f"fc {r['op']}" if r["kind"] == "fc" else "retain"
        lines.append(f"| {name} {r['dtype']} | {'x'.join(map(str, r['shape']))} "
                     f"| {rate('gluonlite')} | {rate(peer)} | {rate('torch')} | {ratio(peer)} "
                     f"| {ratio('torch')} | {verdict} |")
    return "\n".join(lines)


def run_bench_cli(out: Path) -> dict:
    """``python -m gluonlite.bench --device gpu``; its tables are printed and kept."""
    extra = os.environ.get("GPU_CHECK_BENCH_ARGS", "").split()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gluonlite.bench", "--device", "gpu",
                           "--json", str(out / "bench_cli.json"), *extra],
                          cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    (out / "bench_cli.txt").write_text(proc.stdout + proc.stderr)
    print(proc.stdout, flush=True)
    return {"returncode": proc.returncode, "seconds": round(time.monotonic() - start, 1)}


def stages() -> list[str]:
    """The steps ``GPU_CHECK_STAGES`` asks for (all of ``STAGES`` when unset), in order."""
    asked = {s.strip() for s in os.environ.get("GPU_CHECK_STAGES", "").split(",") if s.strip()}
    unknown = asked - set(STAGES)
    if unknown:
        raise SystemExit(f"gpu-check: unknown GPU_CHECK_STAGES {sorted(unknown)}; choose "
                         f"from {','.join(STAGES)}")
    return [s for s in STAGES if s in asked] if asked else list(STAGES)


def _not_run() -> dict:
    return {"returncode": 0, "summary": "not run (GPU_CHECK_STAGES)", "seconds": 0}


def main() -> int:
    chosen = stages()
    out = Path(os.environ.get("GPU_CHECK_OUT") or ROOT / "build" / "gpu-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    gpus = gluonlite.num_gpus()
    print(f"gpu-check: {gpus} GPU(s) visible; results go to {out}", flush=True)
    if gpus == 0:
        print("gpu-check: NO GPU VISIBLE (CuPy missing, no driver, or no device). Running the "
              "test suite on the CPU only; nothing is verified on a GPU.", flush=True)
        report["device"] = None
        report["suite"] = run_pytest([], out, "suite")
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        print(f"suite: {report['suite']['summary']}")
        return 2
    report["device"] = device_info()
    print(f"device: {report['device']}", flush=True)

    report["stages"] = chosen
    report["suite"] = run_pytest([], out, "suite") if "suite" in chosen else _not_run()
    print(f"whole suite: {report['suite']['summary']} ({report['suite']['seconds']} s)",
          flush=True)
    report["kernel_checks"] = _not_run()
    report["kernel_resources"] = "not run (GPU_CHECK_STAGES)"
    if "kernels" in chosen:
        report["kernel_checks"] = run_pytest(["tests/test_kernels_gpu.py"], out,
                                             "kernel_checks")
        report["kernel_resources"] = kernel_resources(out)
    print(f"kernel checks: {report['kernel_checks']['summary']}", flush=True)

    bench_json = out / "bench.json"
    report["benchmarks_run"] = _not_run()
    rows = []
    if "bench" in chosen:
        report["benchmarks_run"] = run_pytest(
            ["benchmarks/bench_kernels.py", "--benchmark-enable",
             f"--benchmark-json={bench_json}", "--benchmark-max-time=0.25",
             "--benchmark-min-rounds=3"], out, "benchmarks")
        rows = benchmark_rows(bench_json) if bench_json.exists() else []
    print(f"benchmarks: {report['benchmarks_run']['summary']}", flush=True)
    report["benchmarks"] = rows
    report["bench_cli"] = run_bench_cli(out) if "cli" in chosen else _not_run()
    print(f"gluonlite-bench --device gpu: exit {report['bench_cli']['returncode']} "
          f"(tables in {out / 'bench_cli.txt'})", flush=True)
    table = format_table(rows)
    resources = report["kernel_resources"]
    if isinstance(resources, list):
        spills = sum(e["spill_stores"] + e["spill_loads"] for e in resources)
        resources = (f"{len(resources)} kernels for sm_90, at most "
                     f"{max((e['registers'] or 0) for e in resources) if resources else 0} "
                     f"registers, {spills} bytes of spills")
    device = report["device"]
    header = (f"# gpu-check on {device['name']} (cc {device['compute_capability']}, driver "
              f"{device['driver']}, CuPy {device['cupy']}, torch {device['torch']})\n\n"
              f"- whole suite: {report['suite']['summary']}\n"
              f"- kernel checks: {report['kernel_checks']['summary']}\n"
              f"- kernel resources: {resources}\n"
              f"- benchmarks: {report['benchmarks_run']['summary']}; "
              f"{sum(r['meets_target'] is True for r in rows)}/{len(rows)} meet their "
              f"target\n\n")
    (out / "gpu_check.md").write_text(header + table + "\n")
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print("\n" + header + table)
    failed = any(report[k]["returncode"] != 0 for k in ("suite", "kernel_checks",
                                                        "benchmarks_run", "bench_cli"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
