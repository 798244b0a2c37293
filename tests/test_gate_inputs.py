"""`check`'s tolerance policy pinned (issue 24: "most specific wins", a drop equal to its tolerance
passes) and every bad input to compare, check and report one `error:` line with exit 2, since
check's exit 1 means "regression" and nothing else (issue 17 item 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import ConfigError
from evalkit.gate import CheckPolicy, Tolerance, check_run, load_policy
from evalkit.results import RunResult, TaskResult
from tests.test_compare_check import write_run


def _run(run_id: str, **tasks: dict[str, float]) -> RunResult:
    return RunResult(run_id, "m", {t: TaskResult(metrics=dict(m)) for t, m in tasks.items()})


def _status(run: RunResult, baseline: RunResult, policy: CheckPolicy) -> dict[str, str]:
    return {f"{f.task}/{f.metric}": f.status for f in check_run(run, baseline, policy)}


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


# --- the tolerance policy (issue 24) ------------------------------------------------------------


def test_the_task_and_metric_tolerance_wins_over_the_metric_one_which_wins_over_the_default():
    baseline = _run("base", math={"accuracy": 50.0}, code={"accuracy": 50.0})
    run = _run("new", math={"accuracy": 45.0}, code={"accuracy": 45.0})  # both down 5 points
    tight_task = CheckPolicy(
        default=Tolerance(max_drop=100.0),
        metrics={"accuracy": Tolerance(max_drop=10.0)},
        tasks={"math": {"accuracy": Tolerance(max_drop=1.0)}},
    )
    assert _status(run, baseline, tight_task) == {"math/accuracy": "regression", "code/accuracy": "ok"}
    loose_task = CheckPolicy(
        default=Tolerance(max_drop=0.0),
        metrics={"accuracy": Tolerance(max_drop=1.0)},
        tasks={"math": {"accuracy": Tolerance(max_drop=10.0)}},
    )
    assert _status(run, baseline, loose_task) == {"math/accuracy": "ok", "code/accuracy": "regression"}
    metric_over_default = CheckPolicy(default=Tolerance(max_drop=10.0), metrics={"accuracy": Tolerance(max_drop=1.0)})
    assert set(_status(run, baseline, metric_over_default).values()) == {"regression"}


def test_the_same_order_holds_when_the_policy_comes_from_a_file(tmp_path):
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "default: {max_drop: 0}\nmetrics:\n  accuracy: {max_drop: 1}\ntasks:\n  math:\n    accuracy: {max_drop: 10}\n"
    )
    baseline = _run("base", math={"accuracy": 50.0}, code={"accuracy": 50.0})
    run = _run("new", math={"accuracy": 45.0}, code={"accuracy": 45.0})
    assert _status(run, baseline, load_policy(policy)) == {"math/accuracy": "ok", "code/accuracy": "regression"}


@pytest.mark.parametrize(
    ("tolerance", "value", "status"),
    [
        (Tolerance(max_drop=2.0), 48.0, "ok"),  # a drop of exactly 2: within
        (Tolerance(max_drop=2.0), 47.75, "regression"),
        (Tolerance(max_relative_drop=0.1), 45.0, "ok"),  # 5 / 50 = 0.1 exactly: within
        (Tolerance(max_relative_drop=0.1), 44.75, "regression"),
        (Tolerance(), 50.0, "ok"),  # no drop at all passes even with no tolerance
        (Tolerance(), 49.75, "regression"),
    ],
)
def test_a_drop_equal_to_its_tolerance_passes(tolerance, value, status):
    baseline, run = _run("base", math={"accuracy": 50.0}), _run("new", math={"accuracy": value})
    assert _status(run, baseline, CheckPolicy(default=tolerance)) == {"math/accuracy": status}
    # The same boundary for a metric that is better when lower: Self-BLEU up by exactly the tolerance.
    up = 50.0 + (50.0 - value)
    assert _status(
        _run("new", w={"self_bleu": up}), _run("base", w={"self_bleu": 50.0}), CheckPolicy(default=tolerance)
    ) == {"w/self_bleu": status}


# --- bad input: one line, exit 2 ----------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--max-drop", "--max-relative-drop"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "x"])
def test_a_tolerance_that_is_not_a_finite_number_at_least_zero_is_refused(cli, tmp_path, flag, value):
    base = write_run(tmp_path, "base", {"math": {"accuracy": [100.0] * 10}})
    worse = write_run(tmp_path, "worse", {"math": {"accuracy": [60.0] * 10}})  # a 40-point drop
    message = one_error_line(cli("check", str(worse), "--baseline", str(base), f"{flag}={value}"))
    assert flag in message


def test_the_python_api_refuses_the_same_tolerances(tmp_path):
    import evalkit
    from evalkit.errors import EvalkitError

    base = write_run(tmp_path, "base", {"math": {"accuracy": [100.0] * 10}})
    for kwargs in ({"max_drop": float("nan")}, {"max_relative_drop": float("inf")}, {"max_drop": -1.0}):
        with pytest.raises(EvalkitError, match="finite number >= 0"):
            evalkit.check(base, base, **kwargs)
    with pytest.raises(EvalkitError, match="correction"):
        evalkit.compare(base, base, correction="bonferroni")
    with pytest.raises(EvalkitError, match="finite number >= 0"):
        Tolerance(max_drop=float("nan"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('confidence: "x"\n', "policy confidence must be a number in [0.5, 1)"),
        ("confidence: 1.5\n", "policy confidence must be a number in [0.5, 1)"),
        ("confidence: true\n", "policy confidence"),
        ("require_significance: maybe\n", "require_significance must be true or false"),
        ("correction: sidak\n", "correction must be one of none, holm, bh"),
        ("default: {max_drop: .nan}\n", "finite number >= 0"),
        ("default: {max_drop: .inf}\n", "finite number >= 0"),
        ("default: {max_relative_drop: '0.1'}\n", "finite number >= 0"),
        ("default: 3\n", "expected a mapping"),
        ("metrics: [accuracy]\n", "metrics must be a mapping"),
        ("metrics:\n  1: {max_drop: 1}\n", "names must be strings"),
        ("tasks:\n  math: [accuracy]\n", "must be a mapping"),
        ("tasks:\n  math:\n    accuracy: 2\n", "expected a mapping"),
        ("only: [1, 2]\n", "only must be a list of metric names"),
        ("ignore: {a: 1}\n", "ignore must be a list of metric names"),
        ("- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_a_malformed_policy_is_one_line(cli, tmp_path, text, message):
    base = write_run(tmp_path, "base", {"math": {"accuracy": [100.0] * 10}})
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    assert message in one_error_line(cli("check", str(base), "--baseline", str(base), "--policy", str(policy)))


def _corrupt(run_dir: Path, how: str) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    entry = results["tasks"]["math"]
    documents = run_dir / "documents.jsonl"
    if how == "metric is a string":
        entry["metrics"]["accuracy"] = "high"
    elif how == "metric is a list":
        entry["metrics"]["accuracy"] = [1]
    elif how == "metrics is a list":
        entry["metrics"] = [1]
    elif how == "stderr is a string":
        entry["stderr"] = "x"
    elif how == "n_docs is a string":
        entry["n_docs"] = "ten"
    elif how == "comparable is a string":
        entry["comparable"] = "yes"
    elif how == "tasks is a list":
        results["tasks"] = ["math"]
    elif how == "versions is a list":
        results["versions"] = [1]
    elif how == "not JSON":
        (run_dir / "results.json").write_text("{not json")
        return
    elif how == "document value is a string":
        documents.write_text(json.dumps({"task": "math", "doc_id": "a", "metrics": {"accuracy": "1"}}) + "\n")
    elif how == "document row is a list":
        documents.write_text("[1, 2]\n")
    elif how == "document line is not JSON":
        documents.write_text('{"task": "math"\n')
    (run_dir / "results.json").write_text(json.dumps(results))


CORRUPTIONS = [
    "metric is a string",
    "metric is a list",
    "metrics is a list",
    "stderr is a string",
    "n_docs is a string",
    "comparable is a string",
    "tasks is a list",
    "versions is a list",
    "not JSON",
    "document value is a string",
    "document row is a list",
    "document line is not JSON",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_corrupt_results_folder_is_one_line_for_compare_check_and_report(cli, tmp_path, how):
    good = write_run(tmp_path, "good", {"math": {"accuracy": [100.0, 0.0] * 5}})
    bad = write_run(tmp_path, "bad", {"math": {"accuracy": [100.0, 0.0] * 5}})
    _corrupt(bad, how)
    one_error_line(cli("compare", str(good), str(bad)))
    significance = ("--require-significance",)  # so that check reads documents.jsonl too
    one_error_line(cli("check", str(bad), "--baseline", str(good), *significance))
    one_error_line(cli("check", str(good), "--baseline", str(bad), *significance))
    one_error_line(cli("report", str(good), str(bad), "-o", str(tmp_path / "report.html")))


def test_a_corrupt_samples_file_is_one_line_for_report(cli, tmp_path):
    good = write_run(tmp_path, "good", {"math": {"accuracy": [100.0, 0.0] * 5}})
    (good / "samples.jsonl").write_text(json.dumps({"task": "math", "sample_index": "first"}) + "\n")
    assert "sample_index" in one_error_line(cli("report", str(good), "-o", str(tmp_path / "r.html")))


def test_runs_with_no_task_in_common_are_refused(cli, tmp_path):
    a = write_run(tmp_path, "a", {"math": {"accuracy": [100.0] * 10}})
    b = write_run(tmp_path, "b", {"code": {"pass@1": [100.0] * 10}})
    for args in (
        ("compare", str(a), str(b)),
        ("compare", str(a), str(b), "--json"),
        ("check", str(b), "--baseline", str(a)),
    ):
        message = one_error_line(cli(*args))
        assert "no task in common" in message and "a: math" in message and "b: code" in message


def test_a_policy_file_keeps_its_own_tolerance_and_significance_unless_a_flag_is_given(tmp_path):
    """Flags override a policy file only when given: a file's default tolerance survives a command
    line without --max-drop, and significance is off unless the file or the flag asks for it."""
    from evalkit.gate import make_policy

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("default: {max_drop: 5}\n")
    kept = make_policy(policy_file)
    assert kept.default == Tolerance(5, None) and kept.require_significance is False
    assert make_policy(policy_file, max_drop=1).default == Tolerance(1, None)
    assert make_policy(policy_file, max_relative_drop=0.1).default == Tolerance(None, 0.1)
    assert make_policy().require_significance is False and make_policy(require_significance=True).require_significance
    policy_file.write_text("require_significance: true\n")
    assert make_policy(policy_file).require_significance is True


def test_a_tolerance_says_what_it_allows():
    assert Tolerance().describe() == "no drop allowed"
    assert Tolerance(2).describe() == "max drop 2"
    assert Tolerance(2, 0.05).describe() == "max drop 2, max relative drop 5.0%"


def test_only_the_chosen_metrics_are_gated_and_a_valueless_baseline_metric_skips_only_itself():
    base = _run("base", math={"accuracy": 50.0, "distinct_2": 80.0, "pass@1": None, "maj@1": 40.0})
    worse = _run("new", math={"accuracy": 40.0, "distinct_2": 70.0, "pass@1": 10.0, "maj@1": 30.0})
    everything = _status(worse, base, CheckPolicy(default=Tolerance(1)))
    # pass@1 has no baseline value: nothing to gate; the metrics after it are still gated.
    assert everything == {"math/accuracy": "regression", "math/distinct_2": "regression", "math/maj@1": "regression"}
    assert _status(worse, base, CheckPolicy(default=Tolerance(1), only=("accuracy",))) == {
        "math/accuracy": "regression"
    }


@pytest.mark.parametrize(("confidence", "accepted"), [(0.5, True), (0.95, True), (0.4999, False), (1, False)])
def test_policy_confidence_is_at_least_one_half_and_below_one(tmp_path, confidence, accepted):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f"confidence: {confidence}\n")
    if accepted:
        assert load_policy(policy_file).confidence == confidence
    else:
        with pytest.raises(ConfigError, match="confidence must be a number in"):
            load_policy(policy_file)


def test_a_finding_within_its_tolerance_says_how_far_it_fell():
    assert Tolerance(2).within(0) == "no drop" and Tolerance(2).within(-1) == "no drop"
    assert Tolerance(2).within(1.5) == "1.5 within max drop 2"


def test_a_neutral_or_missing_metric_does_not_stop_the_ones_after_it():
    base = _run("base", math={"mean_words": 9.0, "accuracy": 50.0, "maj@1": 40.0, "distinct_2": 80.0})
    new = _run("new", math={"mean_words": 3.0, "accuracy": 40.0, "distinct_2": 70.0})
    assert _status(new, base, CheckPolicy(default=Tolerance(1))) == {
        "math/accuracy": "regression",
        "math/maj@1": "missing",
        "math/distinct_2": "regression",
    }


def test_relative_tolerance_of_a_zero_baseline_and_the_reason_a_value_is_missing():
    # Any drop from 0 is infinitely large relatively; 1.0 is an ordinary baseline.
    assert Tolerance(None, 0.5).exceeded_by(0.1, 0.0) and not Tolerance(None, 0.5).exceeded_by(0.1, 1.0)
    base = _run("base", math={"accuracy": 50.0, "maj@1": 40.0}, poems={"distinct_2": 80.0})
    new = _run("new", math={"accuracy": 50.0})
    reasons = {f"{f.task}/{f.metric}": f.reason for f in check_run(new, base, CheckPolicy())}
    assert reasons["math/maj@1"] == "the run has no value for it"
    assert reasons["poems/distinct_2"] == "the run does not have this task"
