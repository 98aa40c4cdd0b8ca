"""ruff (pyflakes + pycodestyle, and the formatter's check) and mypy --strict pass, with the
settings in pyproject.toml; every public name is visible to type checkers."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_NAMES = ROOT / "tests" / "typing_public_names.py"


def test_ruff_check_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extra"
    done = subprocess.run(
        [ruff, "check", "--no-cache", "gluonlite", "tests", "benchmarks", "examples", "ci", "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_check_passes():
    # The code is as `ruff format` writes it: `ruff format` fixes a failure here.
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extra"
    done = subprocess.run(
        [ruff, "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_strict_passes():
    # The modules and the settings are [tool.mypy]'s in pyproject.toml (strict); the cache in
    # build/ keeps a rerun to seconds.
    pytest.importorskip("mypy", reason="mypy comes with the test extra")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _public_names_source() -> str:
    """``tests/typing_public_names.py`` as it should read: every name of every public
    module's ``__all__``, reached as user code reaches it."""
    import gluonlite

    modules = ["gluonlite"] + sorted(
        m.name
        for m in pkgutil.walk_packages(gluonlite.__path__, "gluonlite.")
        if not any(part.startswith("_") for part in m.name.split(".")[1:])
        and not m.name.startswith(("gluonlite.bench", "gluonlite.distributed"))
    )
    lines = [
        '"""Every public name of gluonlite as user code reaches it, for mypy --strict',
        "(pyproject.toml lists this file): a name type checkers cannot see (made by a table",
        "at import time, or re-exported through a computed __all__) fails make test.",
        'Written by `python tests/test_lint.py`; test_lint.py checks that it is current."""',
        "",
    ]
    lines += [f"import {m}" for m in modules] + [""]
    for m in modules:
        lines += [f"{m}.{name}" for name in getattr(importlib.import_module(m), "__all__", ())]
    return "\n".join(lines) + "\n"


def test_typing_public_names_is_current():
    # test_mypy_strict_passes checks the file; this, that it lists today's names.
    assert PUBLIC_NAMES.read_text() == _public_names_source(), (
        "tests/typing_public_names.py is stale: run `python tests/test_lint.py`"
    )


if __name__ == "__main__":
    PUBLIC_NAMES.write_text(_public_names_source())
