"""The C extension (gluonlite/_cndarray.c) changes speed only: the same table of cases
(tests/cext_cases.py: every binary operator over arrays, scalars and foreign operands,
indexing, ``.T``, ``reshape``, errors and their words, warnings, devices, pickling, in-place
ops, gradients while recording) gives the same results with it and with the pure-Python
class (GLUONLITE_NO_CEXT=1), each in a process of its own (the choice is made at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gluonlite import ndarray as _nd

ROOT = Path(__file__).resolve().parent.parent


def _cases(device_name: str, no_cext: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GLUONLITE_NO_CEXT="1" if no_cext else "0")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cext_cases.py"), device_name],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(_nd._C is None, reason="gluonlite._cndarray is not built (no C compiler)")
def test_c_extension_and_pure_python_agree(device):
    if device.device_id > 0:
        pytest.skip("the device's kind is what the C paths test; id 0 covers it")
    name = f"{device.device_type}{device.device_id}"
    with ThreadPoolExecutor(2) as pool:
        with_c, without = pool.map(lambda no: _cases(name, no), (False, True))
    assert with_c["cext"] and not without["cext"]
    a, b = with_c["cases"], without["cases"]
    assert a.keys() == b.keys()
    differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ, f"{len(differ)} of {len(a)} cases differ: {differ}"
    # The table exercises what it means to: results, errors of both kinds, warnings.
    outcomes = [v[0] for v in a.values()]
    assert sum(o[0] == "error" for o in outcomes) >= 20
    assert sum(o[0] == "ndarray" for o in outcomes if isinstance(o[0], str)) >= 200
    assert any(v[1] for v in a.values())  # a warning (division by zero) was seen


def test_gluonlite_no_cext_runs_the_pure_python_class():
    code = "from gluonlite import ndarray as n; print(n._C is None, n.ndarray.__mro__[1])"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GLUONLITE_NO_CEXT="1")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.stdout.split() == ["True", "<class", "'object'>"], done.stdout + done.stderr
