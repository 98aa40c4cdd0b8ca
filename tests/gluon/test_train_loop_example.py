"""examples/train_loop.py: DataLoader workers, a schedule, metrics and two devices together."""

from __future__ import annotations

import importlib.util
import multiprocessing
import pathlib
import re

import gluonlite as mx

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "train_loop.py"


def test_train_loop_example_learns(capsys):
    spec = importlib.util.spec_from_file_location("train_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--epochs", "2", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "on cpu(0), cpu(1)" in out or mx.num_gpus()
    rates = [float(r) for r in re.findall(r"lr (\d+\.\d+)", out)]
    assert len(rates) == 2
    if hasattr(mx, "lr_scheduler"):
        assert rates[1] < rates[0], out  # FactorScheduler halves the rate per epoch
    assert multiprocessing.active_children() == []
