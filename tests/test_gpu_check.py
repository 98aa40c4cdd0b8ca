"""ci/gpu_check.py's logic without a GPU: its steps are faked, its report is real. The command
itself only ever runs on GPU machines, where a bug in the table would waste the GPU time."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "ci" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(group, kind, impl, median, **info):
    work = {"flops": 2e12} if kind == "fc" else {"bytes": 1e9}
    return {"group": group, "stats": {"median": median},
            "extra_info": {"kind": kind, "impl": impl, "dtype": "float32", "shape": [8, 4, 4],
                           **work, **info}}


BENCHMARKS = {"benchmarks": [
    bench("fc-fwd", "fc", "gluonlite", 1.0, op="forward"),
    bench("fc-fwd", "fc", "cupy", 2.0, op="forward"),
    bench("fc-fwd", "fc", "torch", 0.5, op="forward"),
    bench("retain", "retain", "gluonlite", 0.01),
    bench("retain", "retain", "copy", 0.009),
    bench("fc-alone", "fc", "gluonlite", 1.0, op="backward"),
]}


def test_benchmark_rows_rates_ratios_and_targets(gpu_check, tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(BENCHMARKS))
    rows = {(r["kind"], r["op"]): r for r in gpu_check.benchmark_rows(path)}
    fwd = rows[("fc", "forward")]
    assert fwd["impls"]["gluonlite"]["rate"] == pytest.approx(2.0)  # TFLOP/s
    assert fwd["ratios"] == {"cupy": pytest.approx(2.0), "torch": pytest.approx(0.5)}
    assert fwd["meets_target"] is False  # slower than torch
    retain = rows[("retain", "retain")]
    assert retain["impls"]["copy"]["rate"] == pytest.approx(1e9 / 0.009 / 1e9)  # GB/s
    assert retain["ratios"]["copy"] == pytest.approx(0.9) and retain["meets_target"] is True
    assert rows[("fc", "backward")]["meets_target"] is None
    table = gpu_check.format_table(list(rows.values()))
    assert "| fc forward float32 | 8x4x4 | 2 TFLOP/s | 1 TFLOP/s | 4 TFLOP/s | 2.00x | 0.50x " \
           "| MISS (>= 1.0) |" in table
    assert "| retain float32 | 8x4x4 | 100 GB/s | 111 GB/s | - | 0.90x | - | ok |" in table
    assert "| no peer |" in table


def test_main_without_gpu_says_so_and_exits_2(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GPU_CHECK_OUT", str(tmp_path))
    monkeypatch.setattr(gpu_check.gluonlite, "num_gpus", lambda: 0)
    calls = []
    monkeypatch.setattr(gpu_check, "run_pytest", lambda args, out, name: calls.append(name) or {
        "returncode": 0, "summary": "3 passed", "seconds": 1})
    assert gpu_check.main() == 2
    assert calls == ["suite"]
    assert "NO GPU VISIBLE" in capsys.readouterr().out
    assert json.loads((tmp_path / "gpu_check.json").read_text())["device"] is None


def test_main_with_a_gpu_writes_json_and_table(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GPU_CHECK_OUT", str(tmp_path))
    monkeypatch.setattr(gpu_check.gluonlite, "num_gpus", lambda: 1)
    monkeypatch.setattr(gpu_check, "device_info", lambda: {
        "name": "Fake GPU", "compute_capability": "9.0", "driver": 13000, "cupy": "14",
        "torch": None})
    monkeypatch.setattr(gpu_check, "kernel_resources", lambda out: [
        {"registers": 64, "spill_stores": 0, "spill_loads": 0},
        {"registers": 40, "spill_stores": 0, "spill_loads": 0}])

    def fake_pytest(args, out, name):
        if name == "benchmarks":
            (out / "bench.json").write_text(json.dumps(BENCHMARKS))
        return {"returncode": 1 if name == "kernel_checks" else 0, "summary": f"{name} ran",
                "seconds": 1}
    monkeypatch.setattr(gpu_check, "run_pytest", fake_pytest)
    assert gpu_check.main() == 1  # a failing kernel check fails the command
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"]["name"] == "Fake GPU" and len(report["benchmarks"]) == 3
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("# gpu-check on Fake GPU (cc 9.0")
    assert "- kernel checks: kernel_checks ran" in table and "1/3 meet their target" in table
    assert "- kernel resources: 2 kernels for sm_90, at most 64 registers, 0 bytes" in table
    assert "| fc forward float32 |" in capsys.readouterr().out


def test_bench_cli_step_keeps_its_tables_and_status(gpu_check, tmp_path, monkeypatch):
    # Without a GPU `gluonlite-bench --device gpu` refuses with status 2 and says why; on a
    # GPU machine the same call writes the tables. Either way the output is kept.
    monkeypatch.setenv("GPU_CHECK_BENCH_ARGS", "--quick param")
    result = gpu_check.run_bench_cli(tmp_path)
    text = (tmp_path / "bench_cli.txt").read_text()
    if gpu_check.gluonlite.num_gpus() == 0:
        assert result["returncode"] == 2
        assert "GPU" in text or "CuPy" in text
    else:
        assert result["returncode"] == 0, text[-2000:]
        assert (tmp_path / "bench_cli.json").exists()


def test_stages_run_only_what_is_asked(gpu_check, monkeypatch, tmp_path, capsys):
    # GPU_CHECK_STAGES splits the work over several calls of a time-limited GPU machine.
    monkeypatch.setenv("GPU_CHECK_OUT", str(tmp_path))
    monkeypatch.setenv("GPU_CHECK_STAGES", "bench, kernels")
    monkeypatch.setattr(gpu_check.gluonlite, "num_gpus", lambda: 1)
    monkeypatch.setattr(gpu_check, "device_info", lambda: {
        "name": "Fake GPU", "compute_capability": "9.0", "driver": 13000, "cupy": "14",
        "torch": None})
    monkeypatch.setattr(gpu_check, "kernel_resources", lambda out: [])
    monkeypatch.setattr(gpu_check, "run_bench_cli", lambda out: pytest.fail("cli not asked"))
    calls = []

    def fake_pytest(args, out, name):
        calls.append(name)
        if name == "benchmarks":
            (out / "bench.json").write_text(json.dumps(BENCHMARKS))
        return {"returncode": 0, "summary": f"{name} ran", "seconds": 1}
    monkeypatch.setattr(gpu_check, "run_pytest", fake_pytest)
    assert gpu_check.main() == 0
    assert calls == ["kernel_checks", "benchmarks"]  # in the fixed order, suite skipped
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["stages"] == ["kernels", "bench"]
    assert report["suite"]["summary"] == "not run (GPU_CHECK_STAGES)"
    assert len(report["benchmarks"]) == 3
    monkeypatch.setenv("GPU_CHECK_STAGES", "suite,warp")
    with pytest.raises(SystemExit, match="unknown GPU_CHECK_STAGES"):
        gpu_check.main()
