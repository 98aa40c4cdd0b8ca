"""ruff (pyflakes + pycodestyle, the settings in pyproject.toml) passes on the whole tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extra"
    done = subprocess.run([ruff, "check", "--no-cache", "gluonlite", "tests", "benchmarks",
                           "examples", "ci", "docs"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
