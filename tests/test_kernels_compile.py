"""Every kernels/*.cu instantiation compiles with nvcc for sm_80 (PTX) and sm_90 (cubin,
ptxas report), with warnings as errors and no register spills.

Skips where nvcc is missing, except under CI (env ``CI`` set), where that is a failure: CI is
meant to have nvcc, and a silently skipped compile check would let broken kernels land.
Run with ``-s`` to see the registers / shared memory / spills table.
"""

import os
import subprocess

import pytest

from tests.cuda_host import nvcc as nv
from gluonlite import _kernels

NVCC = nv.find_nvcc()


@pytest.fixture(scope="module")
def nvcc():
    if NVCC is None:
        if os.environ.get("CI"):
            pytest.fail(
                "nvcc not found (PATH, /usr/local/cuda/bin) but CI is set: the kernel "
                "compile check must run in CI"
            )
        pytest.skip("nvcc not found (PATH, /usr/local/cuda/bin): kernel compile check skipped")
    return NVCC


CASES = [
    (source, arch, kind, ()) for source in _kernels.KERNEL_SOURCES for arch, kind in nv.TARGETS
]
# The portable-conversion build is what the GPU tests compare the PTX fast path against.
CASES.append(("fully_connected.cu", "sm_90", "cubin", ("-DGL_PORTABLE_CONVERT",)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, arch, kind, defines",
    CASES,
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_kernel_compiles(nvcc, tmp_path, source, arch, kind, defines):
    proc, out = nv.compile_source(nvcc, source, arch, kind, tmp_path, defines)
    assert proc.returncode == 0, f"nvcc failed for {source} ({arch}, {kind}):\n{proc.stderr}"
    expressions = {e for _, names in _kernels.instantiations()[source] for e in names}
    if kind == "ptx":
        # ptxas does not run for -ptx; check that every instantiation became an entry.
        assert out.read_text().count(".entry ") == len(expressions)
        return
    entries = nv.parse_ptxas(proc.stderr + proc.stdout)
    print(f"\n{source} {arch} {' '.join(defines)}\n{nv.format_table(entries)}")
    assert len(entries) == len(expressions), proc.stderr
    for e in entries:
        assert e["registers"] is not None, e
        assert e["spill_stores"] == 0 and e["spill_loads"] == 0, f"register spills: {e}"
        assert e["smem_bytes"] <= 48 * 1024, f"static shared memory over 48 KiB: {e}"


def test_ptxas_report_parser():
    log = """ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 8320 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function '_Z3barv' for 'sm_90'
ptxas info    : Function properties for _Z3barv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
"""
    entries = nv.parse_ptxas(log)
    assert [
        (e["registers"], e["smem_bytes"], e["stack_bytes"], e["spill_stores"], e["spill_loads"])
        for e in entries
    ] == [(40, 8320, 16, 8, 4), (8, 0, 0, 0, 0)]
    assert entries[0]["kernel"] in ("foo(float*)", "_Z3fooPf")


def test_compile_error_names_options_and_quotes_source(nvcc, tmp_path):
    # A real compiler log (nvcc and NVRTC print "file(line): error: ...") turned into the
    # message KernelCompileError carries on a GPU.
    source = _kernels.kernel_source("retain.cu")
    lines = source.splitlines()
    at = next(i for i, line in enumerate(lines) if "found[lo] = 1;" in line)
    lines[at] = lines[at].replace("found[lo] = 1;", "found[lo] = undefined_name;")
    broken = tmp_path / "retain.cu"
    broken.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [nvcc, "-std=c++17", "-arch=sm_90", "-ptx", "-o", str(tmp_path / "x.ptx"), str(broken)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    message = _kernels._compile_error_message(
        "retain.cu", broken.read_text(), ("-std=c++17",), ("retain_mark",), proc.stderr
    )
    assert "kernels retain_mark of retain.cu with options ('-std=c++17',) failed" in message
    assert f"around line {at + 1}:" in message
    assert (
        f">>{at + 1:5d}|     if (lo < k && indices[lo] == id) found[lo] = undefined_name;"
        in message
    )
    assert f"  {at:5d}| " in message and f"  {at + 2:5d}| " in message
