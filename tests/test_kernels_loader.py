"""The pure-Python parts of gluonlite._kernels that need neither a compiler nor a GPU:
finding the kernel sources, and forcing the fully-connected path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gluonlite import _kernels


def test_kernel_sources_are_found_without_an_install():
    folder = _kernels._kernel_dir_fallback()
    for name in _kernels.KERNEL_SOURCES:
        text = _kernels.kernel_source(name)
        assert "__global__" in text
        raw = (folder / name).read_text()
        # Local includes pasted in (NVRTC gets one text), everything else unchanged.
        expected = _kernels._LOCAL_INCLUDE.sub(
            lambda m: (folder / m.group(1)).read_text().rstrip("\n"), raw
        )
        assert text == expected and _kernels._LOCAL_INCLUDE.search(text) is None


def test_local_includes_are_pasted_in():
    raw = (_kernels._kernel_dir_fallback() / "norm.cu").read_text()
    assert '#include "gl_convert.cuh"' in raw
    text = _kernels.kernel_source("norm.cu")
    assert text.count("struct gl_bf16 {") == 1 and text.index("struct gl_bf16") < text.index(
        "__global__ void bn_forward"
    )


def _never_measured(path):
    raise AssertionError("a forced path must not be measured")


def test_forced_fc_path_skips_measurement(monkeypatch):
    monkeypatch.delenv(_kernels.FC_PATH_ENV, raising=False)
    with _kernels.fc_path("cublas"):
        assert _kernels._choose(("fwd", 1, 2, 3), _never_measured) == "cublas"
        with _kernels.fc_path("kernel"):
            assert _kernels._choose(("fwd", 1, 2, 3), _never_measured) == "kernel"
        assert _kernels._requested_path() == "cublas"
    assert _kernels._requested_path() == "auto"


def test_fc_path_from_environment(monkeypatch):
    monkeypatch.setenv(_kernels.FC_PATH_ENV, "kernel")
    assert _kernels._choose(("fwd", 1, 2, 3), _never_measured) == "kernel"
    with _kernels.fc_path("cublas"):  # an explicit setting wins over the environment
        assert _kernels._requested_path() == "cublas"
    monkeypatch.setenv(_kernels.FC_PATH_ENV, "fastest")
    with pytest.raises(ValueError, match="GLUONLITE_FC_PATH='fastest'"):
        _kernels._requested_path()
    with pytest.raises(ValueError, match="expected one of"):
        _kernels.set_fc_path("cuda")


@pytest.mark.parametrize(
    "row_bytes, pointers, unit",
    [
        (48, (0, 256), "uint4"),
        (40, (0, 256), "unsigned long long"),
        (48, (8, 256), "unsigned long long"),
        (12, (0, 0), "unsigned int"),
        (10, (0, 0), "unsigned short"),
        (48, (0, 3), "unsigned char"),
        (3, (0, 0), "unsigned char"),
    ],
)
def test_retain_copy_unit(row_bytes, pointers, unit):
    assert _kernels._retain_unit(row_bytes, *pointers)[1] == unit


def test_size_limits_are_errors_not_wraparounds():
    with pytest.raises(ValueError, match="rows=2147483648 does not fit"):
        _kernels._i32("rows", 2**31)
    with pytest.raises(ValueError, match="output columns exceed the kernel's grid limit"):
        # Refused before any kernel is looked up, so no runtime is needed.
        _kernels._gemm(
            None, "float", "fwd", None, 1, None, 1, None, None, 1, 1, 65535 * 64 + 1, 1, False
        )
    with pytest.raises(ValueError, match="unknown kernel source 'nope.cu'"):
        _kernels.name_expressions("nope.cu", "float")


def test_every_instantiation_has_a_distinct_name():
    for source, entries in _kernels.instantiations().items():
        # Type-free kernels (retain_mark, norm.cu's finishing steps) are in every module of
        # their source; each template instantiation belongs to one.
        names = [e for _, exprs in entries for e in exprs if "<" in e]
        assert len(names) == len(set(names)), source


def test_import_neither_imports_cupy_nor_compiles():
    # A fresh interpreter: this process may have imported CuPy through other tests.
    code = (
        "import sys, gluonlite._kernels as k; "
        "assert 'cupy' not in sys.modules, 'cupy imported'; "
        "assert k._load_module.cache_info().currsize == 0"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stderr
