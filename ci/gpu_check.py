"""``make gpu-check``: gluonlite on a real GPU in one command of at most five minutes.

Runs from the source tree with the Python already on the machine (CuPy, NumPy, pytest; torch
where installed) and installs nothing. Three stages, each in a child process with its own
time limit, so that a hung or slow stage cannot take the others' time:

- ``tests``   the GPU-parametrised tests only (``pytest -m gpu tests``: every test on
              ``gpu(i)``, the multi-GPU groups, the GPU-only tests), no CPU-only tests;
- ``kernels`` the kernel correctness sweep: fully-connected (forward, backward, both paths,
              float32/float16/bfloat16), retain, dropout, the fused optimizer steps, batch,
              layer and group norm and pooling's backward on a representative subset of shapes,
              inputs drawn once per shape in float32, checked against NumPy;
- ``bench``   the benchmark table: fc float32/bfloat16 vs ``cupy.matmul`` + bias and torch
              ``F.linear``, retain vs a copy of the same bytes, the fused optimizer step vs
              torch's fused Adam, and the peer-to-peer copy when two GPUs are there.

They run in the order kernels, bench, tests (see ``STAGE_LIMITS``).
``GPU_CHECK_STAGES=tests,bench`` picks stages. Everything printed goes, as it happens, to
``$OUT/gpu-check.log``; ``$OUT/gpu-check.json`` and ``$OUT/gpu-check.md`` (the table) are
rewritten after every stage, so a run killed at its limit still returns what it finished.
Those three are the only files under ``$OUT`` (default ``build/gpu-check``); compiled
kernels (CuPy's cache, the host harness) go to a temporary folder.

With ``GLUONLITE_EMULATE_GPUS=2`` (``make gpu-check-dry``) the same plan runs on the emulated
GPUs of the test suite: the tests and the sweep with the same shapes, the benchmark cases
with every dimension divided by ``DRY_SHRINK`` (a host harness cannot run 4096^3 GEMMs), so
that the plan, its stage limits and the report are checked without a GPU.

Exit status: 0 when every stage passed, 1 when one failed or ran out of time, 2 without a GPU.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy  # noqa: E402

import gluonlite  # noqa: E402

# Seconds each stage may run, in the order they run; with start-up they stay under the five
# minutes of one call. The two short stages go first, so that a tests stage slowed by CuPy
# compiling its elementwise kernels on first use can only cut itself short.
STAGE_LIMITS = {"kernels": 50, "bench": 60, "tests": 170}
TOTAL_LIMIT = 300
OUT_FILES = ("gpu-check.log", "gpu-check.json", "gpu-check.md")
DRY_SHRINK = 16
CASE_BUDGET_S = 0.25  # timed calls per benchmark case stop after about this long

# The kernel sweep: (N, M, K) of x [N, K] @ w[M, K].T; retain (rows, row width, kept);
# dropout lengths; fused-optimizer tensor shapes.
SWEEP_FC = [(1, 1, 1), (3, 5, 1), (1, 300, 70), (65, 67, 17), (257, 130, 129), (0, 8, 4)]
SWEEP_FC_DTYPES = ("float32", "float16", "bfloat16")
SWEEP_RETAIN = [(1, 1, 1), (100, 3, 40), (1000, 33, 10), (64, 256, 64)]
SWEEP_DROPOUT = [1, 1023, 70001]
SWEEP_OPTIMIZER = [(3,), (0,), (17, 5), (300, 130)]
# Benchmark cases: fc (N, M, K); retain (rows, row width, kept); optimizer (tensors, size);
# peer copy bytes.
BENCH_FC = [(32, 4096, 4096), (1024, 1024, 1024), (4096, 4096, 4096)]
BENCH_FC_DTYPES = ("float32", "bfloat16")
BENCH_RETAIN = [(1 << 16, 1024, 1 << 15)]
BENCH_OPTIMIZER = [(64, 1 << 18)]
BENCH_P2P_BYTES = [1 << 28]


# ------------------------------------------------------------------------- the parent
class Log:
    """Print to stdout and append to ``gpu-check.log`` at once (no buffering)."""

    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1, encoding="utf-8")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def out_dir() -> Path:
    path = Path(
        os.environ.get("OUT") or os.environ.get("GPU_CHECK_OUT") or ROOT / "build" / "gpu-check"
    ).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def stages() -> list[str]:
    """The stages ``GPU_CHECK_STAGES`` asks for (all when unset), in their fixed order."""
    asked = {s.strip() for s in os.environ.get("GPU_CHECK_STAGES", "").split(",") if s.strip()}
    unknown = asked - set(STAGE_LIMITS)
    if unknown:
        raise SystemExit(
            f"gpu-check: unknown GPU_CHECK_STAGES {sorted(unknown)}; choose "
            f"from {','.join(STAGE_LIMITS)}"
        )
    return [s for s in STAGE_LIMITS if s in asked] if asked else list(STAGE_LIMITS)


def run_child(command: list[str], limit: float, log: Log, env: dict) -> dict:
    """Run ``command``, streaming its output line by line into ``log``; killed after
    ``limit`` seconds. Counts pytest's per-test verdicts as they pass by."""
    start = time.monotonic()
    cpu = _children_cpu()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    timer = threading.Timer(limit, proc.kill)
    timer.start()
    counts: dict[str, int] = {}
    last = ""
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            log(line)
            verdict = re.search(r" (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b", line)
            if verdict:
                counts[verdict.group(1).lower()] = counts.get(verdict.group(1).lower(), 0) + 1
            if line.strip():
                last = line.strip()
        proc.wait()
    finally:
        timer.cancel()
    timed_out = proc.returncode is not None and proc.returncode < 0
    # CPU seconds too: on a shared machine (a dry run) wall time says more about the load.
    return {
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - start, 1),
        "cpu_seconds": round(_children_cpu() - cpu, 1),
        "summary": last[-300:],
        **counts,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_env(scratch: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    )
    # CuPy's compiled kernels stay out of $OUT (and out of the home folder). The emulated
    # GPUs of a dry run keep the host harness's usual cache, so that a dry run measures the
    # plan rather than g++.
    env.setdefault("CUPY_CACHE_DIR", str(scratch / "cupy-cache"))
    return env


def stage_command(stage: str, rows: Path) -> list[str]:
    if stage == "tests":
        return [
            sys.executable,
            "-u",
            "-m",
            "pytest",
            "-m",
            "gpu",
            "tests",
            "-v",
            "--no-header",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
        ]
    return [sys.executable, "-u", str(Path(__file__).resolve()), "--child", stage, str(rows)]


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_table(rows: list[dict]) -> str:
    """The benchmark rows as Markdown: rates and gluonlite's speed ratio against each peer
    (> 1: gluonlite is faster). A row's ``work`` is in units of its rate times 1e9 per
    second: bytes for GB/s, thousands of FLOPs for TFLOP/s."""
    lines = [
        "| case | shape | dtype | gluonlite | cupy / copy | torch | vs cupy / copy | vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        times = r.get("seconds", {})

        def rate(impl):
            t = times.get(impl)
            return f"{r['work'] / t / 1e9:.4g} {r['unit']}" if t else "-"

        def ratio(impl):
            t, mine = times.get(impl), times.get("gluonlite")
            return f"{t / mine:.2f}x" if t and mine else "-"

        peer = next((p for p in ("cupy", "copy") if p in times), "cupy")
        lines.append(
            f"| {r['case']} | {r['shape']} | {r['dtype']} | {rate('gluonlite')} | "
            f"{rate(peer)} | {rate('torch')} | {ratio(peer)} | {ratio('torch')} |"
            + (f" {r['note']}" if r.get("note") else "")
        )
    return "\n".join(lines)


def write_report(out: Path, report: dict) -> None:
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    device = report.get("device") or {}
    lines = [
        f"# gpu-check on {device.get('name', 'no GPU')}"
        + (" (EMULATED: a dry run, timings mean nothing)" if report.get("emulated") else ""),
        "",
        f"- started {report['started']}, {report.get('seconds', 0)} s so far",
    ]
    for stage, result in report["stages"].items():
        counts = ", ".join(
            f"{v} {k}"
            for k, v in result.items()
            if k in ("passed", "failed", "skipped", "error", "xfail", "xpass")
        )
        state = "TIMED OUT" if result.get("timed_out") else f"exit {result.get('returncode')}"
        lines.append(
            f"- {stage}: {state} in {result.get('seconds')} s "
            f"({result.get('cpu_seconds', '?')} s CPU)"
            + (f" ({counts})" if counts else "")
            + f": {result.get('summary', '')}"
        )
    sweep = report.get("sweep", [])
    if sweep:
        bad = [c for c in sweep if c["ok"] is False]
        ran = [c for c in sweep if c["ok"] is not None]
        lines.append(
            f"- kernel sweep: {len(ran) - len(bad)}/{len(ran)} cases match NumPy"
            + (f", {len(sweep) - len(ran)} skipped" if len(ran) < len(sweep) else "")
            + ("; FAILED: " + ", ".join(c["case"] for c in bad[:10]) if bad else "")
        )
    lines += ["", format_table(report.get("bench", [])), ""]
    (out / "gpu-check.md").write_text("\n".join(lines))


def device_info() -> dict:
    cupy = gluonlite._backend.cupy()
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    info = {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "gpus": gluonlite.num_gpus(),
        "python": sys.version.split()[0],
        "cupy": getattr(cupy, "__version__", "emulated"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def main() -> int:
    chosen = stages()
    out = out_dir()
    for name in OUT_FILES:
        (out / name).unlink(missing_ok=True)
    log = Log(out / "gpu-check.log")
    started = time.monotonic()
    report: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "emulated": gluonlite._cupy.emulated_gpus() is not None,
        "stage_limits": STAGE_LIMITS,
        "stages": {},
        "sweep": [],
        "bench": [],
    }
    if gluonlite.num_gpus() == 0:
        log(
            "gpu-check: NO GPU VISIBLE (CuPy missing, no driver, or no device): nothing to "
            "check. (make gpu-check-dry runs the plan on emulated GPUs.)"
        )
        report["device"] = None
        write_report(out, report)
        return 2
    report["device"] = device_info()
    log(f"gpu-check: {report['device']}; stages {chosen}; results in {out}")
    with tempfile.TemporaryDirectory(prefix="gluonlite-gpu-check-") as scratch:
        scratch = Path(scratch)
        env = child_env(scratch)
        for stage in chosen:
            left = TOTAL_LIMIT - (time.monotonic() - started) - 5
            limit = min(STAGE_LIMITS[stage], left)
            if limit < 10:
                report["stages"][stage] = {
                    "returncode": None,
                    "timed_out": True,
                    "seconds": 0,
                    "summary": "no time left",
                }
                continue
            log(f"=== stage {stage} (limit {limit:.0f} s)")
            rows = scratch / f"{stage}.jsonl"
            result = run_child(stage_command(stage, rows), limit, log, env)
            report["stages"][stage] = result
            if stage == "kernels":
                report["sweep"] = read_rows(rows)
                result["failed"] = sum(c["ok"] is False for c in report["sweep"])
            if stage == "bench":
                report["bench"] = read_rows(rows)
            report["seconds"] = round(time.monotonic() - started, 1)
            write_report(out, report)
            log(f"=== stage {stage}: {result['summary']} ({result['seconds']} s)")
    report["seconds"] = round(time.monotonic() - started, 1)
    write_report(out, report)
    log((out / "gpu-check.md").read_text())
    failed = any(r.get("returncode") != 0 or r.get("failed") for r in report["stages"].values())
    return 1 if failed else 0


# ------------------------------------------------------------------------- the children
def _emit(rows: Path, row: dict) -> None:
    with open(rows, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    print(json.dumps(row, default=str), flush=True)


def _host_dtype(name: str):
    return gluonlite._backend.dtype_of(name)


def sweep(rows: Path) -> None:
    """The kernel correctness sweep on gpu(0); one JSON row per case."""
    cp = gluonlite._backend.cupy()
    rng = numpy.random.default_rng(0)

    def check(case, got, want, rtol, atol=0.0):
        got = numpy.asarray(got, numpy.float64)
        want = numpy.asarray(want, numpy.float64)
        ok = got.shape == want.shape and bool(numpy.allclose(got, want, rtol=rtol, atol=atol))
        err = float(numpy.max(numpy.abs(got - want))) if ok and got.size else 0.0
        _emit(rows, {"case": case, "ok": ok, "max_abs_error": err})

    check.cp = cp
    check.skip = lambda case, why: _emit(rows, {"case": case, "ok": None, "skipped": why})
    with cp.cuda.Device(0):
        for case, run in _sweep_cases(cp, rng, check):
            try:
                run()
            except Exception as e:  # noqa: BLE001 - an error is this case's failure
                _emit(rows, {"case": case, "ok": False, "error": f"{type(e).__name__}: {e}"})


def _sweep_cases(cp, rng, check):
    """(name, thunk) per group of sweep checks; a thunk that raises fails its group."""
    for n, m, k in SWEEP_FC:
        x32, w32, b32, dy32 = (
            rng.standard_normal(s).astype(numpy.float32) for s in ((n, k), (m, k), (m,), (n, m))
        )
        for name in SWEEP_FC_DTYPES:
            for path in ("kernel", "cublas"):
                yield (
                    f"fc {path} {name} {n}x{m}x{k}",
                    lambda n=n, m=m, k=k, name=name, path=path, inputs=(x32, w32, b32, dy32): (
                        _sweep_fc(cp, check, n, m, k, name, path, inputs)
                    ),
                )
    yield "retain", lambda: _sweep_retain(cp, rng, check)
    yield "dropout", lambda: _sweep_dropout(cp, check)
    yield "fused optimizers", lambda: _sweep_optimizers(cp, rng, check)
    yield "norm and pool kernels", lambda: _sweep_norm_pool(cp, rng, check)


def _cupy_has(cp, dtype) -> bool:
    """Whether this CuPy makes arrays of ``dtype`` (bfloat16 needs a recent one)."""
    try:
        cp.zeros(1, dtype)
    except Exception:  # noqa: BLE001 - any refusal means no
        return False
    return True


def _skip(check, case, dtype) -> bool:
    if _cupy_has(check.cp, dtype):
        return False
    check.skip(case, f"this CuPy has no {dtype} arrays")
    return True


def _sweep_fc(cp, check, n, m, k, name, path, inputs):
    from gluonlite import _kernels

    dtype = _host_dtype(name)
    if _skip(check, f"fc {path} {name} {n}x{m}x{k}", dtype):
        return
    x, w, b, dy = (a.astype(dtype) for a in inputs)
    xd, wd, bd, dyd = (a.astype(numpy.float64) for a in (x, w, b, dy))
    tol = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 3e-2}[name]
    scale = max(1.0, numpy.sqrt(max(k, n, 1)))
    case = f"fc {path} {name} {n}x{m}x{k}"
    with _kernels.fc_path(path):
        y = _kernels.fc_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b))
        dx, dw, db = _kernels.fc_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w))
    check(case + " forward", cp.asnumpy(y), xd @ wd.T + bd, tol, tol * scale)
    check(case + " dx", cp.asnumpy(dx), dyd @ wd, tol, tol * scale)
    check(case + " dw", cp.asnumpy(dw), dyd.T @ xd, tol, tol * scale)
    check(case + " db", cp.asnumpy(db), dyd.sum(axis=0), tol, tol * scale)


def _sweep_retain(cp, rng, check):
    from gluonlite import _kernels

    for rows_n, width, kept in SWEEP_RETAIN:
        data = rng.standard_normal((rows_n, width)).astype(numpy.float32)
        indices = numpy.sort(rng.choice(4 * rows_n, rows_n, replace=False)).astype(numpy.int64)
        ids = rng.choice(indices, kept).astype(numpy.int64)
        out, out_ids = _kernels.retain(cp.asarray(data), cp.asarray(indices), cp.asarray(ids))
        keep = numpy.isin(indices, ids)
        check(f"retain {rows_n}x{width} keep {kept}", cp.asnumpy(out), data[keep], 0)
        check(f"retain {rows_n}x{width} ids", cp.asnumpy(out_ids), indices[keep], 0)


def _sweep_dropout(cp, check):
    from gluonlite import _dropout, _kernels

    for length in SWEEP_DROPOUT:
        for name in ("float32", "bfloat16"):
            dtype = _host_dtype(name)
            if _skip(check, f"dropout {name} {length}", dtype):
                continue
            threshold, scale = _dropout.threshold(0.3), _dropout.scale(0.3, dtype)
            got = _kernels.dropout_mask((length,), dtype, 12345, threshold, scale)
            want = _dropout.numpy_mask((length,), dtype, 12345, threshold, scale)
            check(
                f"dropout {name} {length}",
                cp.asnumpy(got).astype(numpy.float32),
                want.astype(numpy.float32),
                0,
            )


def _sweep_optimizers(cp, rng, check):
    from gluonlite import _kernels, optimizer

    weights = [rng.standard_normal(s).astype(numpy.float32) for s in SWEEP_OPTIMIZER]
    grads = [rng.standard_normal(s).astype(numpy.float32) for s in SWEEP_OPTIMIZER]
    for kind in ("sgd", "adam"):
        want_w = [w.copy() for w in weights]
        states = [numpy.zeros_like(w) for w in weights]
        states2 = [numpy.zeros_like(w) for w in weights]
        got_w = [cp.asarray(w) for w in weights]
        got_g = [cp.asarray(g) for g in grads]
        got_s = [cp.asarray(s) for s in states]
        got_s2 = [cp.asarray(s) for s in states2]
        lrs, wds = [0.1] * len(weights), [0.01] * len(weights)
        if kind == "sgd":
            for g, w, s in zip(grads, want_w, states):
                optimizer._sgd_math(
                    g, w, s, lr=0.1, wd=0.01, momentum=0.9, rescale_grad=1.0, clip_gradient=None
                )
            _kernels.multi_tensor_sgd(
                got_w, got_g, got_s, lrs, wds, momentum=0.9, rescale_grad=1.0, clip_gradient=None
            )
        else:
            for g, w, s, s2 in zip(grads, want_w, states, states2):
                optimizer._adam_math(
                    g,
                    w,
                    s,
                    s2,
                    lr=0.1,
                    wd=0.01,
                    beta1=0.9,
                    beta2=0.999,
                    epsilon=1e-8,
                    rescale_grad=1.0,
                    clip_gradient=None,
                )
            _kernels.multi_tensor_adam(
                got_w,
                got_g,
                got_s,
                got_s2,
                lrs,
                wds,
                beta1=0.9,
                beta2=0.999,
                epsilon=1e-8,
                rescale_grad=1.0,
                clip_gradient=None,
            )
        for shape, got, want in zip(SWEEP_OPTIMIZER, got_w, want_w):
            check(f"fused {kind} {shape}", cp.asnumpy(got), want, 1e-6, 1e-7)


def _sweep_norm_pool(cp, rng, check):
    """batch_norm, layer_norm, group_norm (kernels/norm.cu) and pooling's backward (kernels/pool.cu)
    against float64 NumPy on a ResNet-like activation, float32 and bfloat16."""
    from gluonlite import _kernels

    x32 = (rng.standard_normal((8, 16, 14, 14)) * 2 + 1).astype(numpy.float32)
    dy32 = rng.standard_normal(x32.shape).astype(numpy.float32)
    gamma, beta = (rng.standard_normal(16).astype(numpy.float32) for _ in range(2))
    g, b = cp.asarray(gamma), cp.asarray(beta)
    for name, tol in (("float32", 1e-4), ("bfloat16", 3e-2)):
        dtype = _host_dtype(name)
        if _skip(check, f"norm/pool {name}", dtype):
            continue
        x, dy = x32.astype(dtype), dy32.astype(dtype)
        xr, dyr = x.astype(numpy.float64), dy.astype(numpy.float64)
        mean, var = xr.mean(axis=(0, 2, 3)), xr.var(axis=(0, 2, 3))
        inv = 1 / numpy.sqrt(var + 1e-5)
        xhat = (xr - mean[:, None, None]) * inv[:, None, None]
        y, m, v, invstd = _kernels.batch_norm_forward(cp.asarray(x), 1, g, b, 1e-5)
        want = xhat * gamma[:, None, None] + beta[:, None, None]
        check(f"batch_norm {name} y", cp.asnumpy(y).astype(numpy.float32), want, tol, tol)
        check(f"batch_norm {name} var", cp.asnumpy(v), var, 1e-4, 1e-5)
        dx, dg, db = _kernels.batch_norm_backward(
            cp.asarray(x), cp.asarray(dy), 1, m, invstd, g, True
        )
        dxhat = dyr * gamma[:, None, None]
        want_dx = inv[:, None, None] * (
            dxhat
            - dxhat.mean(axis=(0, 2, 3))[:, None, None]
            - xhat * (dxhat * xhat).mean(axis=(0, 2, 3))[:, None, None]
        )
        check(f"batch_norm {name} dx", cp.asnumpy(dx).astype(numpy.float32), want_dx, tol, tol)
        check(
            f"batch_norm {name} dgamma",
            cp.asnumpy(dg),
            (dyr * xhat).sum(axis=(0, 2, 3)),
            1e-4,
            1e-3,
        )
        rows = x.reshape(-1, 14)
        y, m, v, invstd = _kernels.layer_norm_forward(cp.asarray(rows), None, None, 1e-5)
        rr = rows.astype(numpy.float64)
        want = (rr - rr.mean(axis=1, keepdims=True)) / numpy.sqrt(
            rr.var(axis=1, keepdims=True) + 1e-5
        )
        check(f"layer_norm {name} y", cp.asnumpy(y).astype(numpy.float32), want, tol, tol)
        # group norm in 4 groups of 4 channels; its backward with per-channel gamma
        grouped = xr.reshape(8, 4, -1)
        gmean, gvar = grouped.mean(axis=2, keepdims=True), grouped.var(axis=2, keepdims=True)
        ginv = 1 / numpy.sqrt(gvar + 1e-5)
        gxhat = ((grouped - gmean) * ginv).reshape(xr.shape)
        y, m, v, invstd = _kernels.group_norm_forward(cp.asarray(x), 4, g, b, 1e-5)
        want = gxhat * gamma[:, None, None] + beta[:, None, None]
        check(f"group_norm {name} y", cp.asnumpy(y).astype(numpy.float32), want, tol, tol)
        dx, dg, db = _kernels.group_norm_backward(cp.asarray(x), cp.asarray(dy), 4, m, invstd, g)
        gdxhat = (dyr * gamma[:, None, None]).reshape(8, 4, -1)
        gxh = gxhat.reshape(8, 4, -1)
        want_dx = ginv * (
            gdxhat
            - gdxhat.mean(axis=2, keepdims=True)
            - gxh * (gdxhat * gxh).mean(axis=2, keepdims=True)
        )
        check(
            f"group_norm {name} dx",
            cp.asnumpy(dx).astype(numpy.float32),
            want_dx.reshape(xr.shape),
            tol,
            tol,
        )
        check(
            f"group_norm {name} dgamma",
            cp.asnumpy(dg),
            (dyr * gxhat).sum(axis=(0, 2, 3)),
            1e-4,
            1e-3,
        )
        dx = _kernels.pool_backward(
            cp.asarray(x),
            cp.asarray(numpy.ascontiguousarray(dy[:, :, :7, :7])),
            "avg",
            (3, 3),
            (2, 2),
            (1, 1),
            False,
        )
        padded = numpy.zeros((8, 16, 16, 16))
        for i in range(7):
            for j in range(7):
                padded[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += (
                    dyr[:, :, i : i + 1, j : j + 1] / 9
                )
        want = padded[:, :, 1:15, 1:15]
        check(f"avg pool backward {name}", cp.asnumpy(dx).astype(numpy.float32), want, tol, tol)


def _timer(cp):
    """``time(fn)``: seconds per call of ``fn`` on the current stream (events), after one
    warm-up call, over as many calls as fit in about CASE_BUDGET_S (at least one)."""

    def time_it(fn):
        fn()
        stream = cp.cuda.get_current_stream()
        stream.synchronize()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        fn()
        stop.record(stream)
        stop.synchronize()
        once = max(cp.cuda.get_elapsed_time(start, stop) / 1e3, 1e-6)
        reps = int(max(1, min(50, CASE_BUDGET_S / once)))
        start.record(stream)
        for _ in range(reps):
            fn()
        stop.record(stream)
        stop.synchronize()
        return cp.cuda.get_elapsed_time(start, stop) / 1e3 / reps

    return time_it


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def bench(rows: Path) -> None:
    """The benchmark cases; one JSON row per case with each implementation's seconds."""
    from gluonlite import _backend, _kernels

    cp = _backend.cupy()
    torch = _torch_cuda()
    dry = gluonlite._cupy.emulated_gpus() is not None
    shrink = (
        (lambda *dims: tuple(max(1, d // DRY_SHRINK) for d in dims))
        if dry
        else (lambda *dims: dims)
    )
    time_it = _timer(cp)
    rng = numpy.random.default_rng(0)

    def attempt(seconds, impl, fn, notes):
        try:
            seconds[impl] = time_it(fn)
        except Exception as e:  # noqa: BLE001 - a peer lacking a dtype is a note, not a stop
            notes.append(f"{impl}: {type(e).__name__}: {str(e)[:80]}")

    with cp.cuda.Device(0):
        for shape in BENCH_FC:
            n, m, k = shrink(*shape)
            for name in BENCH_FC_DTYPES:
                dtype = _host_dtype(name)
                seconds, notes = {}, []
                try:
                    x, w, b = (
                        cp.asarray(rng.standard_normal(s).astype(numpy.float32).astype(dtype))
                        for s in ((n, k), (m, k), (m,))
                    )
                except Exception as e:  # noqa: BLE001 - e.g. a CuPy without bfloat16
                    x = w = b = None
                    notes.append(f"no {name} arrays in CuPy: {type(e).__name__}")
                if x is not None:
                    attempt(seconds, "gluonlite", lambda: _kernels.fc_forward(x, w, b), notes)
                    attempt(seconds, "cupy", lambda: cp.matmul(x, w.T) + b, notes)
                if torch is not None:
                    tdtype = getattr(torch, name)
                    tx, tw, tb = (
                        torch.randn(s, device="cuda:0", dtype=tdtype)
                        for s in ((n, k), (m, k), (m,))
                    )
                    attempt(seconds, "torch", lambda: torch.nn.functional.linear(tx, tw, tb), notes)
                _emit(
                    rows,
                    {
                        "case": "fc forward",
                        "shape": f"{n}x{m}x{k}",
                        "dtype": name,
                        "work": 2 * n * m * k / 1e3,
                        "unit": "TFLOP/s",
                        "seconds": seconds,
                        "note": "; ".join(notes),
                    },
                )
        for shape in BENCH_RETAIN:
            n, width, kept = shrink(*shape)
            data = cp.asarray(rng.standard_normal((n, width)).astype(numpy.float32))
            indices = cp.asarray(numpy.arange(n, dtype=numpy.int64) * 2)
            ids = cp.asarray(numpy.arange(kept, dtype=numpy.int64) * 4)
            out_bytes = kept * width * 4
            copy_src = cp.empty((kept, width), numpy.float32)
            copy_dst = cp.empty((kept, width), numpy.float32)
            seconds, notes = {}, []
            attempt(seconds, "gluonlite", lambda: _kernels.retain(data, indices, ids), notes)
            attempt(seconds, "copy", lambda: copy_dst.__setitem__(..., copy_src), notes)
            _emit(
                rows,
                {
                    "case": "retain",
                    "shape": f"{n}x{width} keep {kept}",
                    "dtype": "float32",
                    "work": 2 * out_bytes,
                    "unit": "GB/s",
                    "seconds": seconds,
                    "note": "; ".join(notes),
                },
            )
        for tensors, size in BENCH_OPTIMIZER:
            (size,) = shrink(size)
            # Adam reads weight, gradient, mean, variance and writes three: 28 bytes each.
            arrays = [
                [
                    cp.asarray(rng.standard_normal(size).astype(numpy.float32))
                    for _ in range(tensors)
                ]
                for _ in range(4)
            ]
            seconds, notes = {}, []
            attempt(
                seconds,
                "gluonlite",
                lambda: _kernels.multi_tensor_adam(
                    *arrays,
                    [1e-3] * tensors,
                    [0.0] * tensors,
                    beta1=0.9,
                    beta2=0.999,
                    epsilon=1e-8,
                    rescale_grad=1.0,
                    clip_gradient=None,
                ),
                notes,
            )
            if torch is not None:
                params = [
                    torch.randn(size, device="cuda:0", requires_grad=True) for _ in range(tensors)
                ]
                for p in params:
                    p.grad = torch.randn_like(p)
                adam = torch.optim.Adam(params, lr=1e-3, fused=True)
                attempt(seconds, "torch", adam.step, notes)
            _emit(
                rows,
                {
                    "case": "fused adam step",
                    "shape": f"{tensors}x{size}",
                    "dtype": "float32",
                    "work": 28 * tensors * size,
                    "unit": "GB/s",
                    "seconds": seconds,
                    "note": "; ".join(notes),
                },
            )
    if gluonlite.num_gpus() >= 2:
        for nbytes in BENCH_P2P_BYTES:
            (nbytes,) = shrink(nbytes)
            with cp.cuda.Device(0):
                src = cp.zeros(nbytes // 4, numpy.float32)
                seconds, notes = {}, []
                attempt(
                    seconds,
                    "gluonlite",
                    lambda: _backend.transfer(src, gluonlite.gpu(0), gluonlite.gpu(1)),
                    notes,
                )
                if torch is not None:
                    tsrc = torch.zeros(nbytes // 4, device="cuda:0")
                    attempt(seconds, "torch", lambda: tsrc.to("cuda:1"), notes)
            _emit(
                rows,
                {
                    "case": "peer copy gpu0->gpu1",
                    "shape": f"{nbytes >> 20} MiB",
                    "dtype": "float32",
                    "work": nbytes,
                    "unit": "GB/s",
                    "seconds": seconds,
                    "note": "; ".join(notes),
                },
            )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        {"kernels": sweep, "bench": bench}[sys.argv[2]](Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
