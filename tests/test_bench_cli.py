"""``gluonlite-bench``: the CLI's output and JSON, device errors, and the timing method.

Runs are ``--quick`` on CPU and together stay well under a minute.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys

import pytest

import gluonlite as mx
from gluonlite.bench import _mxnet_runner, cli, mxnet, report, targets, timing
from gluonlite.bench.timing import Timing

RATIO = re.compile(r"\d+\.\d\dx")


def _cpu():
    return targets.resolve("cpu")[0]


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_quick_cpu_run_prints_tables_and_writes_every_timing(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc, out, err = _run(
        capsys, "param", "retain", "--quick", "--device", "cpu", "--json", str(path)
    )
    assert rc == 0, out + err
    # Header names the machine and the library versions.
    assert "CPU " in out and "NumPy" in out and "CuPy" in out and "torch" in out
    for name, peer in (("param", "dict"), ("retain", "copy")):
        table = out.split(f"== {name}:")[1].split("==")[0]
        assert f"vs {peer}" in table
        # One ratio per case and peer (param's MXNet peer is there where .venv-mxnet is).
        peers = len(re.findall(r" vs \S+", table.splitlines()[1]))
        assert len(RATIO.findall(table)) == peers * len(cli.SUITES[name].specs(_cpu(), True))
    assert "done:" in err  # the progress report goes to stderr, not into the tables

    doc = json.loads(path.read_text())
    assert doc["schema"] == "gluonlite-bench/1"
    assert doc["args"]["quick"] is True and doc["args"]["device"] == "cpu"
    assert doc["args"]["settings"]["repeats"] == timing.QUICK.repeats
    for key in ("cpu", "cpu_count", "python", "numpy", "cupy", "cuda_runtime", "torch", "gpus"):
        assert key in doc["machine"]
    assert [s["name"] for s in doc["suites"]] == ["param", "retain"]
    for suite in doc["suites"]:
        assert suite["status"] == "ok" and suite["reason"] is None
        assert suite["rows"], suite["name"]
        for row in suite["rows"]:
            assert row["device"] == "cpu(0)" and row["case"] and row["size"] > 0
            results = row["results"]
            assert "gluonlite" in results and len(results) >= 2
            for r in results.values():
                assert r["error"] is None
                assert len(r["times_s"]) == timing.QUICK.repeats
                assert r["median_s"] == statistics.median(r["times_s"])
                assert r["number"] >= 1 and r["work"] > 0
            gl = results["gluonlite"]
            for peer, ratio in row["ratios"].items():
                p = results[peer]
                expected = (p["median_s"] / p["work"]) / (gl["median_s"] / gl["work"])
                assert ratio == pytest.approx(expected)


@pytest.mark.slow
def test_every_suite_runs_quick_on_cpu_without_errors(tmp_path, capsys, monkeypatch):
    # Without the MXNet environment the mxnet suite must skip, not fail.
    monkeypatch.setattr(_mxnet_runner, "_roots", lambda: [tmp_path])
    monkeypatch.delenv("GLUONLITE_MXNET_PYTHON", raising=False)
    path = tmp_path / "all.json"
    rc, out, err = _run(capsys, "--quick", "--device", "cpu", "--json", str(path))
    assert rc == 0, out + err
    assert "error" not in out
    doc = json.loads(path.read_text())
    status = {s["name"]: s["status"] for s in doc["suites"]}
    assert status == {
        "fc": "ok",
        "retain": "ok",
        "replicate": "ok",
        "param": "ok",
        "step": "ok",
        "conv": "ok",
        "mxnet": "skipped",
        "ops": "ok",
    }
    reason = next(s["reason"] for s in doc["suites"] if s["name"] == "mxnet")
    assert "benchmarks/mxnet_workloads.py not found" in reason
    assert "mxnet: the same workloads" in out and "skipped:" in out


def test_mxnet_suite_without_environment_says_how_to_create_it(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "mxnet_workloads.py").write_text("")
    monkeypatch.setattr(_mxnet_runner, "_roots", lambda: [tmp_path])
    monkeypatch.delenv("GLUONLITE_MXNET_PYTHON", raising=False)
    with pytest.raises(mxnet.Skip, match="make bench-mxnet"):
        mxnet.specs(_cpu(), quick=True)


@pytest.mark.slow
def test_mxnet_suite_against_mxnet_1_9_1(tmp_path, capsys):
    try:
        mxnet.locate()
    except mxnet.Skip as e:
        pytest.skip(str(e))
    path = tmp_path / "mx.json"
    rc, out, err = _run(capsys, "mxnet", "--quick", "--device", "cpu", "--json", str(path))
    assert rc == 0, out + err
    rows = json.loads(path.read_text())["suites"][0]["rows"]
    assert {r["case"]["suite"] for r in rows} == {"param", "fc", "replicate", "step"}
    for row in rows:
        peer = row["results"][mxnet.PEER]
        assert peer["error"] is None and peer["info"]["mxnet"] == "1.9.1"
        assert row["ratios"][mxnet.PEER] > 0
    assert len(RATIO.findall(out)) == len(rows)


def test_mxnet_runner_failure_shows_in_the_cells_and_the_exit_status(capsys, monkeypatch):
    # This interpreter has no mxnet: the runner starts, fails to import it and exits.
    monkeypatch.setenv("GLUONLITE_MXNET_PYTHON", sys.executable)
    monkeypatch.setattr(_mxnet_runner, "_runner", None)
    rc, out, err = _run(capsys, "mxnet", "--quick", "--device", "cpu")
    assert rc == 1, out + err
    assert "the MXNet runner exited (status 1)" in out
    assert "No module named 'mxnet'" in out
    # gluonlite's side still ran: its column holds numbers, the peer's says error.
    cells = next(line for line in out.splitlines() if "zero_grad()" in line).split()
    assert cells[-2:] == ["error", "-"]  # MXNet's cell and the ratio
    assert float(cells[-3]) > 0  # gluonlite's time


def _bench(*argv):
    return subprocess.run(
        [sys.executable, "-m", "gluonlite.bench", *argv], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(mx.num_gpus() > 0, reason="checks the message on a machine without GPU")
def test_device_gpu_without_gpu_exits_with_a_clear_message():
    proc = _bench("param", "--device", "gpu", "--quick")
    assert proc.returncode == 2
    assert "--device gpu: no GPU to benchmark" in proc.stderr
    assert "Use --device cpu" in proc.stderr
    assert proc.stdout == ""  # refused before measuring anything


def test_device_beyond_visible_gpus_and_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["param", "--device", f"gpu({mx.num_gpus() + 3})"])
    assert e.value.code == 2
    assert f"gpu({mx.num_gpus() + 3}) is not available" in capsys.readouterr().err
    for argv, message in (
        (["nosuch"], "unknown suite(s) nosuch"),
        (["--device", "tpu"], "expected cpu, gpu, all"),
    ):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


def test_plot_is_written_or_refused_with_the_extra_to_install(tmp_path, capsys):
    path = tmp_path / "bench.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit) as e:
            cli.main(["param", "--quick", "--device", "cpu", "--plot", str(path)])
        assert e.value.code == 2
        assert "gluonlite[plot]" in capsys.readouterr().err
        return
    rc, out, _ = _run(capsys, "param", "--quick", "--device", "cpu", "--plot", str(path))
    assert rc == 0 and "plot written" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _FakeClock:
    """Every timed span lasts ``span`` seconds; counts the spans."""

    def __init__(self, span):
        self.span, self.spans = span, 0

    def start(self):
        return None

    def stop(self, started):
        self.spans += 1
        return self.span


def test_measure_rotates_inputs_sizes_repeats_and_reports_per_call_time():
    seen = []
    clock = _FakeClock(0.001)
    t = timing.measure(
        seen.append, [(0,), (1,), (2,)], repeats=4, warmup=2, min_time=0.01, clock=clock
    )
    # Three single warm-up calls estimate 1 ms; 10 calls make a 10 ms repeat.
    assert t.number == 10
    assert seen == [i % 3 for i in range(3 + 4 * 10)]
    # A fake repeat lasts 1 ms whatever its calls, so per call: 1 ms / 10.
    assert t.times == [pytest.approx(0.0001)] * 4 and clock.spans == 3 + 4


def test_measure_with_prepare_times_single_calls_after_each_preparation():
    events = []
    t = timing.measure(
        lambda: events.append("call"),
        repeats=3,
        warmup=1,
        min_time=1.0,
        clock=_FakeClock(0.5),
        prepare=lambda: events.append("prepare"),
    )
    assert t.number == 1 and t.times == [0.5] * 3
    assert events == ["prepare", "call"] * (2 + 3)


def test_ratio_is_peer_time_over_gluonlite_time_for_the_same_work():
    row = report.Row(
        "case",
        "cpu(0)",
        "s",
        1.0,
        {},
        [
            report.Result("gluonlite", 10.0, Timing([1.0, 2.0, 9.0], 1)),
            report.Result("slow", 5.0, Timing([2.0], 1)),
            report.Result("broken", 1.0, error="boom"),
        ],
    )
    assert row.ratios() == {"slow": pytest.approx(2.0), "broken": None}
    suite = report.SuiteResult("s", "title", report.Metric("x/s", 1.0), "size", [row])
    text = report.render(suite)
    assert "2.00x" in text and "error in case (broken): boom" in text
    assert "5.00" in text  # gluonlite's rate: 10 units in a median of 2 s


def test_interleave_takes_the_repeats_of_each_implementation_in_turn():
    order = []
    timers = [
        timing.Timer(
            lambda name=name: order.append(name), warmup=1, min_time=0.0, clock=_FakeClock(0.25)
        )
        for name in "ab"
    ]
    assert order == ["a", "a", "b", "b"]  # warm-up and calibration, one timer after the other
    order.clear()
    got = timing.interleave(timers, 3)
    assert order == ["a", "b"] * 3
    assert [t.times for t in got] == [[0.25] * 3] * 2 and [t.number for t in got] == [1, 1]


def test_retain_workload_keeps_exactly_the_rows_its_bandwidth_counts():
    from gluonlite.bench import retain

    target = _cpu()
    spec = retain.specs(target, quick=True)[0]
    work = retain.implementations(spec, target)["gluonlite"]()
    kept = spec["stored"] // 2
    assert work.work == 2 * kept * spec["width"] * 4  # kept rows, read and written
    for (ids,) in work.inputs:
        out = work.fn(ids)
        assert out.indices.shape == (kept,)
        # Every kept id was requested, and is a stored (even) row.
        assert set(out.indices.asnumpy()) <= set(ids.asnumpy())
        assert (out.indices.asnumpy() % 2 == 0).all()
