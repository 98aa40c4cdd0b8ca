"""Compile kernels/*.cu with nvcc for the GPUs gluonlite targets and read ptxas's report.

Used by tests/test_kernels_compile.py and ci/gpu_check.py. Every instantiation gluonlite
launches (``gluonlite._kernels.instantiations()``) is forced by taking its address in a
small wrapper file, since an uninstantiated template produces no code to check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from gluonlite import _kernels

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
# (arch, output kind): sm_80 as PTX (what the driver JITs for Ampere), sm_90 as a cubin.
TARGETS = (("sm_80", "ptx"), ("sm_90", "cubin"))

_ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(sm_\d+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used \d+ barriers)?(?:, (\d+) bytes smem)?")


def find_nvcc() -> str | None:
    return shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc") if os.access(p, os.X_OK)),
        None,
    )


def wrapper_source(source: str) -> str:
    expressions = []
    for _, names in _kernels.instantiations()[source]:
        expressions += [e for e in names if e not in expressions]
    keep = ",\n".join(f"    (void*)&{e}" for e in expressions)
    return (
        f'#include "{KERNELS_DIR / source}"\n'
        f"__attribute__((used)) static void* const gl_instantiate[] = {{\n{keep}\n}};\n"
    )


def _demangle(names: list[str]) -> list[str]:
    filt = shutil.which("c++filt")
    if not filt or not names:
        return names
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True)
    lines = out.stdout.splitlines()
    return lines if out.returncode == 0 and len(lines) == len(names) else names


def parse_ptxas(log: str) -> list[dict]:
    """Per entry function: registers, static shared memory, stack frame and spills."""
    entries, current = [], None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            current = {
                "kernel": m.group(1),
                "arch": m.group(2),
                "registers": None,
                "smem_bytes": 0,
                "stack_bytes": 0,
                "spill_stores": 0,
                "spill_loads": 0,
            }
            entries.append(current)
        elif current is not None and (m := _FRAME.search(line)):
            current.update(
                stack_bytes=int(m.group(1)),
                spill_stores=int(m.group(2)),
                spill_loads=int(m.group(3)),
            )
        elif current is not None and (m := _USED.search(line)):
            current.update(registers=int(m.group(1)), smem_bytes=int(m.group(2) or 0))
    for entry, name in zip(entries, _demangle([e["kernel"] for e in entries])):
        entry["kernel"] = name
    return entries


def compile_source(
    nvcc: str, source: str, arch: str, kind: str, workdir: Path, defines: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess, Path]:
    """nvcc -arch=<arch> -<kind> -Xptxas -v on the instantiation wrapper of ``source``."""
    tag = "-".join([Path(source).stem, arch, kind] + [d.lstrip("-D") for d in defines])
    wrapper = workdir / f"{tag}.cu"
    wrapper.write_text(wrapper_source(source))
    out = workdir / f"{tag}.{kind}"
    cmd = [
        nvcc,
        "-std=c++17",
        f"-arch={arch}",
        f"-{kind}",
        "-Xptxas",
        "-v",
        "-Werror",
        "all-warnings",
        *defines,
        "-o",
        str(out),
        str(wrapper),
    ]
    return subprocess.run(cmd, capture_output=True, text=True), out


def format_table(entries: list[dict]) -> str:
    rows = [f"{'kernel':58} {'arch':6} {'regs':>4} {'smem':>6} {'stack':>5} {'spill st/ld':>11}"]
    for e in entries:
        rows.append(
            f"{e['kernel'][:58]:58} {e['arch']:6} {e['registers']!s:>4} "
            f"{e['smem_bytes']:>6} {e['stack_bytes']:>5} "
            f"{e['spill_stores']:>5}/{e['spill_loads']:<5}"
        )
    return "\n".join(rows)
