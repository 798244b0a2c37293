"""`--report-to tensorboard|wandb` for `run` and `train`: event files written and read back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalkit import loggers
from evalkit.results import load_results
from tests.test_compare_check import write_run


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under FOLDER, read back by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_run_is_logged_to_tensorboard(tmp_path):
    run = load_results(write_run(tmp_path, "ce", {"smoke_arithmetic": {"accuracy": [50.0, 100.0, 0.0, 50.0]}}))
    run.tasks["smoke_arithmetic"].stderr["accuracy"] = 20.41
    loggers.log_run(run, loggers.available(["tensorboard"]))
    scalars = _scalars(tmp_path / "ce" / "tensorboard")
    assert scalars["smoke_arithmetic/accuracy"] == [(0, pytest.approx(50.0))]
    assert scalars["smoke_arithmetic/accuracy_stderr"] == [(0, pytest.approx(20.41))]


def test_a_missing_logger_is_one_warning_and_the_rest_goes_on(monkeypatch, capsys):
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    assert loggers.available(["wandb", "tensorboard"]) == ("tensorboard",)
    err = capsys.readouterr().err
    assert err == "evalkit: --report-to wandb skipped: wandb is not installed (pip install wandb)\n"


def test_run_report_to_tensorboard_from_the_command_line(cli, tmp_path):
    result = cli(
        "run",
        *("--tasks", "smoke_arithmetic", "--limit", "2", "--n", "1", "--max-tokens", "8", "--quiet"),
        *("--output-dir", str(tmp_path / "out"), "--run-id", "r", "--cache-dir", str(tmp_path / "cache")),
        *("--report-to", "tensorboard"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = _scalars(tmp_path / "out" / "r" / "tensorboard")
    results = load_results(tmp_path / "out" / "r")
    for metric, value in results.tasks["smoke_arithmetic"].metrics.items():
        assert scalars[f"smoke_arithmetic/{metric}"] == [(0, pytest.approx(value))]


def test_train_reports_to_tensorboard_without_warnings_and_saves_a_readable_model(cli, shared_data, tmp_path):
    out = tmp_path / "ckpt"
    result = cli(
        "train",
        *("--data", str(shared_data / "alpaca" / "alpaca_data.json"), "--limit", "6", "--max-steps", "2"),
        *("--batch-size", "3", "--max-length", "64", "--logging-steps", "1", "--warmup-ratio", "0"),
        *("--output-dir", str(out), "--report-to", "tensorboard"),
        fresh=True,  # a new interpreter: a warning raised while a library is imported must show here too
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr  # no FutureWarning or other library warning leaks
    assert "loss on the first 6 examples" in result.stdout  # the real N, not a fixed 32
    scalars = _scalars(out / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
