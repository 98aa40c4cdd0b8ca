"""mx.runtime and ``python -m gluonlite``: the installation report never raises."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gluonlite as mx
from gluonlite import _kernels, runtime


def test_features_behave_as_mxnet():
    features = mx.runtime.Features()
    assert list(features) == [f.name for f in mx.runtime.feature_list()]
    assert features.is_enabled("int64_tensor_size")
    assert not features.is_enabled("CUDNN")
    assert features.is_enabled("GPU_VISIBLE") == (mx.num_gpus() > 0)
    assert repr(features["LAPACK"]) == "✔ LAPACK"
    assert repr(features["DEBUG"]) == "✖ DEBUG"
    with pytest.raises(RuntimeError, match="Feature 'TENSORRT' is unknown"):
        features.is_enabled("TENSORRT")


def test_report_survives_a_missing_cupy(monkeypatch):
    def no_cupy():
        raise ImportError("No module named 'cupy'")

    monkeypatch.setattr(runtime, "_cupy", no_cupy)
    text = runtime.report()
    assert f"gluonlite {mx.__version__}" in text
    assert "CuPy not installed" in text
    assert "✖ CUDA" in text


def test_report_survives_a_failing_gpu_query(monkeypatch):
    monkeypatch.setattr(runtime, "num_gpus", lambda: 2)
    monkeypatch.setattr(runtime, "_cupy", lambda: (_ for _ in ()).throw(OSError("no driver")))
    text = runtime.report()
    assert "GPUs: could not be listed" in text


def test_python_dash_m_gluonlite_prints_the_report():
    done = subprocess.run(
        [sys.executable, "-m", "gluonlite"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"gluonlite {mx.__version__}"
    assert any(line.startswith("NumPy ") for line in lines)
    n = len(_kernels.KERNEL_SOURCES)
    assert any(line.startswith(f"kernel sources: {n} of {n} found") for line in lines)
    assert lines[-1].startswith("features: ")
