"""The public Python API (evalkit.evaluate, compare, check, load_results, train) and the results
files it reads and writes: schema_version, files written before it, hand-written baselines."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import evalkit
from evalkit.errors import ConfigError, EvalkitError
from evalkit.results import json_safe
from tests.test_compare_trust import measured


def test_import_evalkit_is_light():
    code = (
        "import sys, evalkit, evalkit.metrics.sampling; "
        "print([m for m in ('torch', 'transformers', 'nltk', 'evalkit.api', 'evalkit.runner') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert callable(evalkit.evaluate) and "evaluate" in dir(evalkit)
    with pytest.raises(AttributeError):
        evalkit.no_such_function  # noqa: B018


def test_evaluate_takes_the_options_of_evalkit_run_with_the_same_defaults():
    from evalkit.cli import run as run_command

    cli_defaults = run_command.make_context("run", []).params
    api_defaults = {n: p.default for n, p in inspect.signature(evalkit.run_config).parameters.items()}
    for name in ("quiet", "report_to"):  # options of evaluate itself, not of the run's configuration
        api_defaults[name] = inspect.signature(evalkit.evaluate).parameters[name].default
    assert set(cli_defaults) == set(api_defaults)
    for name, default in cli_defaults.items():
        assert default == api_defaults[name] or (not default and not api_defaults[name]), name


def test_evaluate_gives_what_evalkit_run_wrote_as_a_typed_result(smoke_run, tmp_path):
    """The session's `evalkit run` repeated through the Python API, from its cache."""
    result = evalkit.evaluate(
        suite="smoke", limit=3, n=2, max_tokens=32, seed=7, output_dir=tmp_path, run_id="api",
        cache_dir=smoke_run.cache_dir, quiet=True,
    )  # fmt: skip
    assert isinstance(result, evalkit.RunResult) and result.path == tmp_path / "api"
    assert result.cache == {"hits": 12, "generated": 0}
    tasks = json_safe(result.to_json())["tasks"]
    assert measured(tasks) == measured(smoke_run.results["tasks"])
    # Served from the cache, the run still knows the precision its samples were drawn in.
    dtypes = {t["comparable"]["how"]["dtype"] for t in tasks.values()}
    assert dtypes == {t["comparable"]["how"]["dtype"] for t in smoke_run.results["tasks"].values()}
    assert dtypes <= {"float32", "bfloat16"}
    task = result.tasks["smoke_arithmetic"]
    assert (task.n_docs, task.n_samples, task.sampling["n"]) == (3, 6, 2) and 0 <= task.value("accuracy") <= 100
    on_disk = json.loads((result.path / "results.json").read_text())
    assert on_disk["schema_version"] == evalkit.SCHEMA_VERSION and on_disk == json_safe(result.to_json())
    assert evalkit.load_results(result.path).to_json() == on_disk
    assert result.samples() == smoke_run.samples and len(result.documents()) == 6

    comparison = evalkit.compare(smoke_run.run_dir, result)
    assert {row.metric for row in comparison.rows} >= set(task.metrics)
    assert all(d.delta == 0 for row in comparison.rows for d in row.differences if d.delta is not None)
    outcome = evalkit.check(str(result.path), smoke_run.run_dir, max_drop=0)
    assert outcome.passed and outcome.findings and not outcome.failures


def test_results_written_before_schema_version_and_hand_written_baselines_load(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    entry = {"metrics": {"accuracy": 50.0, "quality": None}, "stderr": {}, "n_docs": 2, "n_samples": 4, "extra": 1}
    written = {"run_id": "old", "model": "m", "backend": "hf", "seed": 1, "tasks": {"math": entry}, "skipped": {}}
    (old / "results.json").write_text(json.dumps(written))
    loaded = evalkit.load_results(old)
    assert loaded.schema_version == 0 and loaded.run_id == "old" and loaded.seed == 1
    assert loaded.value("math", "accuracy") == 50.0 and loaded.value("math", "quality") is None
    assert loaded.tasks["math"].to_json() == entry and loaded.documents() == []

    floor = tmp_path / "floor.yaml"
    floor.write_text("tasks:\n  math:\n    metrics: {accuracy: 40}\n")
    baseline = evalkit.load_results(floor)
    assert (baseline.run_id, baseline.model, baseline.value("math", "accuracy")) == ("floor", "?", 40.0)
    assert not evalkit.check(loaded, floor).failures

    for data, message in [
        ({"schema_version": 99, "tasks": {}}, "newer than this evalkit reads"),
        ({"tasks": {"math": {"n_docs": 1}}}, "task 'math' has no 'metrics' mapping"),
        ({"runs": []}, "not an evalkit results file"),
        ({"schema_version": "1", "tasks": {}}, "schema_version must be an integer"),
        ({"tasks": {"math": {"metrics": {"accuracy": "high"}}}}, "metric 'accuracy' is 'high', not a number"),
    ]:
        (old / "results.json").write_text(json.dumps(data))
        with pytest.raises(EvalkitError, match=message):
            evalkit.load_results(old)


def test_train_is_the_callable_package_of_the_training_modules(tmp_path):
    import evalkit.train.losses

    assert callable(evalkit.train) and callable(evalkit.train.losses.gem_loss)
    with pytest.raises(ConfigError, match="did you mean 'gem'"):
        evalkit.train(data=str(tmp_path / "x.json"), output_dir=tmp_path / "out", loss="gme")
