"""The distribution as users get it: sdist and wheel built, the wheel installed into a fresh
virtual environment (not editable, not from the source tree) and smoke-tested there."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, **kw):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_the_installed_wheel_works(tmp_path):
    dist = tmp_path / "dist"
    # python -m build makes the sdist, then the wheel FROM the sdist: a file the sdist
    # lacks (setup.py, a kernel) fails the wheel too.
    _run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)],
        cwd=tmp_path,
    )
    wheels = list(dist.glob("gluonlite-*.whl"))
    assert len(wheels) == 1 and list(dist.glob("gluonlite-*.tar.gz"))
    names = zipfile.ZipFile(wheels[0]).namelist()
    # The C extension: its source in the sdist, built into the wheel (this machine has a
    # compiler: the suite's own extension, tests/test_cext.py, is built by it too).
    sdist = next(dist.glob("gluonlite-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/gluonlite/_cndarray.c") for n in tar.getnames())
    assert any(n.startswith("gluonlite/_cndarray.") and n.endswith(".so") for n in names)
    assert "gluonlite/_cndarray.pyi" in names
    sources = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
    assert all(f"gluonlite/kernels/{s}" in names for s in sources)
    assert not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(env_dir)])
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheels[0])])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = _run([str(python), str(ROOT / "ci" / "wheel_smoke.py"), *sources], cwd=tmp_path, env=env)
    assert "wheel smoke:" in done.stdout and ": ok" in done.stdout
    assert "C extension in" in done.stdout
