"""The type stubs of the table-made ``mx.np`` functions match the tables (ci/np_stubs.py),
and every operator and method that ``install_ops`` puts on ``ndarray`` is declared for type
checkers in the class body."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gluonlite.ndarray as nd

ROOT = Path(__file__).resolve().parents[2]


def test_np_stubs_match_the_tables():
    done = subprocess.run(
        [sys.executable, "ci/np_stubs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_installed_ndarray_methods_are_declared():
    tree = ast.parse((ROOT / "gluonlite" / "ndarray.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ndarray")
    declared = {
        f.name
        for block in cls.body
        if isinstance(block, ast.If)
        for f in block.body
        if isinstance(f, ast.FunctionDef)
    }
    installed = set(nd._METHODS)
    for dunder in nd._BINARY_DUNDERS:
        installed |= {f"__{dunder}__", f"__r{dunder}__"}
    installed |= {
        f"__{d}__" for d in (*nd._COMPARE_DUNDERS, *nd._UNARY_DUNDERS, *nd._INPLACE_DUNDERS)
    }
    assert installed - declared == set()
