"""ci/gpu_check.py's logic without a GPU: stage selection, limits, streaming, the report.
The command itself runs on lent GPU machines, where a bug would waste the GPU time; its
whole plan runs on the emulated GPUs with ``make gpu-check-dry``."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gpu_check(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.delenv("GPU_CHECK_STAGES", raising=False)
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "ci" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_limits_fit_one_five_minute_call(gpu_check):
    assert sum(gpu_check.STAGE_LIMITS.values()) + 20 <= gpu_check.TOTAL_LIMIT <= 300
    assert len(gpu_check.OUT_FILES) <= 5


def test_stages_run_only_what_is_asked(gpu_check, monkeypatch):
    assert gpu_check.stages() == ["kernels", "bench", "tests"]
    monkeypatch.setenv("GPU_CHECK_STAGES", "tests, bench")
    assert gpu_check.stages() == ["bench", "tests"]
    monkeypatch.setenv("GPU_CHECK_STAGES", "tests,warp")
    with pytest.raises(SystemExit, match="unknown GPU_CHECK_STAGES"):
        gpu_check.stages()


def test_child_output_is_streamed_and_a_slow_child_is_killed(gpu_check, tmp_path):
    log = gpu_check.Log(tmp_path / "gpu-check.log")
    code = "import time; print('t::a PASSED', flush=True); time.sleep(30)"
    result = gpu_check.run_child([sys.executable, "-c", code], 1.0, log, {})
    assert result["timed_out"] and result["passed"] == 1 and result["seconds"] < 20
    assert "t::a PASSED" in (tmp_path / "gpu-check.log").read_text()


ROWS = [
    {
        "case": "fc forward",
        "shape": "8x4x4",
        "dtype": "float32",
        "work": 2e9,
        "unit": "TFLOP/s",
        "seconds": {"gluonlite": 1.0, "cupy": 2.0, "torch": 0.5},
    },
    {
        "case": "retain",
        "shape": "8x4 keep 2",
        "dtype": "float32",
        "work": 1e9,
        "unit": "GB/s",
        "seconds": {"gluonlite": 0.01, "copy": 0.009},
        "note": "",
    },
]


def test_table_rates_and_ratios(gpu_check):
    table = gpu_check.format_table(ROWS)
    assert (
        "| fc forward | 8x4x4 | float32 | 2 TFLOP/s | 1 TFLOP/s | 4 TFLOP/s | 2.00x | "
        "0.50x |" in table
    )
    assert "| retain | 8x4 keep 2 | float32 | 100 GB/s | 111.1 GB/s | - | 0.90x | - |" in table


def test_main_writes_the_report_after_every_stage(gpu_check, monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check.gluonlite, "num_gpus", lambda: 2)
    monkeypatch.setattr(gpu_check, "device_info", lambda: {"name": "Fake H200"})
    seen = []

    def fake_child(command, limit, log, env):
        stage = "tests" if "pytest" in command else command[-2]
        seen.append((stage, limit, sorted(p.name for p in tmp_path.iterdir())))
        if stage == "bench":
            Path(command[-1]).write_text("".join(json.dumps(r) + "\n" for r in ROWS))
            return {"returncode": -9, "timed_out": True, "seconds": limit, "summary": ""}
        if stage == "kernels":
            Path(command[-1]).write_text(json.dumps({"case": "fc", "ok": True}) + "\n")
        log(f"{stage} ran")
        return {"returncode": 0, "timed_out": False, "seconds": 1, "summary": "ok", "passed": 3}

    monkeypatch.setattr(gpu_check, "run_child", fake_child)
    assert gpu_check.main() == 1  # the bench stage ran out of time
    assert [s for s, _, _ in seen] == ["kernels", "bench", "tests"]
    assert [limit for _, limit, _ in seen] == list(gpu_check.STAGE_LIMITS.values())
    # After the first stage the JSON and the table are already there.
    assert {"gpu-check.json", "gpu-check.md"} <= set(seen[1][2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(gpu_check.OUT_FILES)
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["stages"]["bench"]["timed_out"] and len(report["bench"]) == 2
    table = (tmp_path / "gpu-check.md").read_text()
    assert "- bench: TIMED OUT" in table and "- kernel sweep: 1/1 cases match" in table
    assert "| fc forward | 8x4x4 |" in table
    assert "kernels ran" in (tmp_path / "gpu-check.log").read_text()


def test_main_without_gpu_says_so_and_exits_2(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu_check.gluonlite, "num_gpus", lambda: 0)
    assert gpu_check.main() == 2
    assert "NO GPU VISIBLE" in capsys.readouterr().out
    assert json.loads((tmp_path / "gpu-check.json").read_text())["device"] is None
