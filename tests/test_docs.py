"""The documentation site builds without a warning and every example in its pages runs
(``make docs`` builds the same site)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _sphinx(builder: str, tmp_path: Path, *fresh: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            *fresh,
            "-W",
            "--keep-going",
            "-q",
            "-b",
            builder,
            "-d",
            str(tmp_path / "doctrees"),
            str(ROOT / "docs"),
            str(tmp_path / builder),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_docs_build_cleanly_and_their_examples_run(tmp_path):
    """The html site from a fresh environment (``-E``), then the doctest builder on the same
    doctrees: Sphinx reads and autodocs the sources once, for both builders."""
    pytest.importorskip("sphinx", reason="sphinx comes with the test extra")
    for builder, fresh in (("html", ("-E",)), ("doctest", ())):
        done = _sphinx(builder, tmp_path, *fresh)
        assert done.returncode == 0, f"sphinx -b {builder}:\n" + done.stdout + done.stderr
