"""examples/train_cnn.py, shortened: the small ResNet reaches its --quick target on
cpu(0), cpu(1) with bit-identical trained replicas and per-device BatchNorm statistics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_train_cnn_quick_run_reaches_its_target():
    pytest.importorskip("sklearn", reason="the example needs scikit-learn")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "train_cnn.py"),
            "--quick",
            "--devices",
            "cpu0,cpu1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "trained weights bit-identical on every device: True" in result.stdout
    assert "BatchNorm running statistics per device (differ between devices): True" in result.stdout
