"""The pure-Python parts of gluonlite._kernels that need neither a compiler nor a GPU:
finding the kernel sources, and forcing the fully-connected path."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gluonlite import _kernels


def test_kernel_sources_are_found_without_an_install():
    for name in _kernels.KERNEL_SOURCES:
        assert "__global__" in _kernels.kernel_source(name)
        assert _kernels.kernel_source(name) == \
            (_kernels._kernel_dir_fallback() / name).read_text()


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


@pytest.mark.parametrize("row_bytes, pointers, unit", [
    (48, (0, 256), "uint4"), (40, (0, 256), "unsigned long long"),
    (48, (8, 256), "unsigned long long"), (12, (0, 0), "unsigned int"),
    (10, (0, 0), "unsigned short"), (48, (0, 3), "unsigned char"), (3, (0, 0), "unsigned char"),
])
def test_retain_copy_unit(row_bytes, pointers, unit):
    assert _kernels._retain_unit(row_bytes, *pointers)[1] == unit


def test_size_limits_are_errors_not_wraparounds():
    with pytest.raises(ValueError, match="rows=2147483648 does not fit"):
        _kernels._i32("rows", 2**31)
    with pytest.raises(ValueError, match="output columns exceed the kernel's grid limit"):
        # Refused before any kernel is looked up, so no runtime is needed.
        _kernels._gemm(None, "float", "fwd", None, 1, None, 1, None, None, 1, 1,
                       65535 * 64 + 1, 1, False)
    with pytest.raises(ValueError, match="unknown kernel source 'nope.cu'"):
        _kernels.name_expressions("nope.cu", "float")


def test_every_instantiation_has_a_distinct_name():
    for source, entries in _kernels.instantiations().items():
        names = [e for _, exprs in entries for e in exprs if e != "retain_mark"]
        assert len(names) == len(set(names)), source


def test_import_neither_imports_cupy_nor_compiles():
    # A fresh interpreter: this process may have imported CuPy through other tests.
    code = ("import sys, gluonlite._kernels as k; "
            "assert 'cupy' not in sys.modules, 'cupy imported'; "
            "assert k._load_module.cache_info().currsize == 0")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
