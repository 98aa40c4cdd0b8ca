"""``gluonlite-bench ops``: the suite's wiring in the CLI (quick runs, tiny repeat counts)."""

from __future__ import annotations

import json

import pytest

from gluonlite.bench import _mxnet_runner, cli, mxnet, ops, targets
from gluonlite.bench.workload import Skip


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_ops_suite_runs_quick_with_numpy_ratios(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_mxnet_runner, "_roots", lambda: [tmp_path])  # no MXNet column here
    monkeypatch.delenv("GLUONLITE_MXNET_PYTHON", raising=False)
    path = tmp_path / "ops.json"
    rc, out, err = _run(capsys, "ops", "--quick", "--device", "cpu", "--json", str(path))
    assert rc == 0, out + err
    assert "== ops: per-call time of small-array ops" in out and "vs numpy" in out
    suite = json.loads(path.read_text())["suites"][0]
    assert suite["name"] == "ops" and suite["status"] == "ok"
    rows = suite["rows"]
    quick = ops.specs(targets.resolve("cpu")[0], quick=True)
    assert [(r["case"]["op"], r["case"]["mode"]) for r in rows] == [
        (s["op"], s["mode"]) for s in quick
    ]
    for row in rows:
        assert row["results"]["gluonlite"]["error"] is None
        peers = set(row["ratios"])
        # NumPy has no tape: only fully_connected's backward is written out by hand.
        if row["case"]["mode"] == "call" or row["case"]["op"] == "fully_connected 1x64":
            assert peers == {"numpy"} and row["ratios"]["numpy"] > 0
        else:
            assert peers == set()


def test_every_op_expression_runs_in_both_modes():
    # The table's expressions are code: each must run on gluonlite and on NumPy, and its
    # backward must work (the full table is only timed by the non-quick run).
    target = targets.resolve("cpu")[0]
    for spec in ops.specs(target, quick=False):
        for impl, build in ops.implementations(spec, target).items():
            if impl == mxnet.PEER:
                continue
            try:
                work = build()
            except Skip:
                continue
            work.fn(*work.inputs[0])


def test_ops_suite_against_mxnet_1_9_1(tmp_path, capsys):
    try:
        mxnet.locate()
    except mxnet.Skip as e:
        pytest.skip(str(e))
    path = tmp_path / "mx.json"
    rc, out, err = _run(capsys, "ops", "--quick", "--device", "cpu", "--json", str(path))
    assert rc == 0, out + err
    for row in json.loads(path.read_text())["suites"][0]["rows"]:
        peer = row["results"][mxnet.PEER]
        assert peer["error"] is None and peer["info"]["mxnet"] == "1.9.1"
        assert row["ratios"][mxnet.PEER] > 0
