"""Paired bootstrap, `evalkit compare` verdicts and `evalkit check` gating on constructed runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.metrics.bootstrap import paired_bootstrap
from evalkit.metrics.directions import direction, family, kind


def write_run(folder: Path, run_id: str, tasks: dict[str, dict[str, list[float]]]) -> Path:
    """A run folder as `evalkit run` writes it: results.json (means) and documents.jsonl (per document)."""
    run_dir = folder / run_id
    run_dir.mkdir(parents=True)
    results = {"run_id": run_id, "model": "m", "backend": "hf", "seed": 0, "tasks": {}}
    documents = []
    for task, metrics in tasks.items():
        n_docs = len(next(iter(metrics.values())))
        results["tasks"][task] = {
            "metrics": {m: float(np.mean(v)) for m, v in metrics.items()},
            "stderr": {},
            "n_docs": n_docs,
            "n_samples": n_docs,
        }
        for d in range(n_docs):
            documents.append({"task": task, "doc_index": d, "doc_id": f"{task}-{d}", "metrics": {}})
            documents[-1]["metrics"] = {m: float(v[d]) for m, v in metrics.items()}
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents))
    return run_dir


@pytest.mark.parametrize("kind_of_data", ["gaussian", "bernoulli"])
def test_bootstrap_interval_covers_the_true_difference_at_the_nominal_rate(kind_of_data):
    rng = np.random.default_rng(2024)
    trials, n_docs, effect, covered = 300, 80, 0.1, 0
    for trial in range(trials):
        if kind_of_data == "gaussian":
            shared = rng.normal(0, 1, n_docs)  # document difficulty, shared by both runs
            a = shared + rng.normal(0, 0.5, n_docs)
            b = shared + effect + rng.normal(0, 0.5, n_docs)
        else:  # accuracy-like 0/1 per document: p = 0.5 against 0.6
            u = rng.random(n_docs)
            a, b = (u < 0.5).astype(float), (rng.random(n_docs) < 0.5 + effect).astype(float)
        ci = paired_bootstrap(a, b, seed=trial, n_resamples=1000)
        covered += ci.low <= effect <= ci.high
    assert 0.92 <= covered / trials <= 0.98


def test_bootstrap_detects_a_real_effect_and_not_a_null_one():
    rng = np.random.default_rng(7)
    a = rng.normal(50, 10, 200)
    assert paired_bootstrap(a, a + 2 + rng.normal(0, 1, 200)).verdict == "higher"
    assert paired_bootstrap(a, a - 2 + rng.normal(0, 1, 200)).verdict == "lower"
    assert paired_bootstrap(a, a + rng.normal(0, 1, 200)).verdict in ("no significant difference",)
    same = paired_bootstrap(a, a)
    assert (same.delta, same.low, same.high, same.verdict) == (0.0, 0.0, 0.0, "no significant difference")
    # Missing values on either side drop the pair; one pair alone has no interval.
    partial = paired_bootstrap([1.0, float("nan"), 3.0], [2.0, 5.0, float("nan")])
    assert partial.n_pairs == 1 and partial.verdict == "n/a"


def test_paired_interval_is_narrower_than_the_unpaired_one_on_correlated_documents():
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 10, 150)
    a, b = difficulty + rng.normal(0, 1, 150), difficulty + 0.5 + rng.normal(0, 1, 150)
    paired = paired_bootstrap(a, b)
    shuffled = paired_bootstrap(a, rng.permutation(b))  # pairing destroyed
    assert (paired.high - paired.low) < (shuffled.high - shuffled.low) / 5
    assert paired.verdict == "higher" and shuffled.verdict == "no significant difference"


def test_metric_directions():
    assert direction("accuracy") == "higher" and direction("self_bleu") == "lower"
    assert direction("mean_words") == "none" and direction("maj@8") == "higher"
    assert family("pass@16") == "pass" and family("distinct_1") == "distinct_1"
    assert kind("self_bleu_diversity") == "diversity" and kind("pass@4") == "quality"


def _two_runs(tmp_path: Path, shift: dict[str, float], n_docs: int = 40):
    rng = np.random.default_rng(11)
    base = {
        "math": {"accuracy": list((rng.random(n_docs) < 0.5) * 100.0)},
        "writing": {
            "self_bleu": list(rng.normal(40, 5, n_docs)),
            "ngram_diversity": list(rng.normal(60, 5, n_docs)),
            "mean_words": list(rng.normal(80, 10, n_docs)),
        },
    }
    other = {t: {m: [v + shift.get(m, 0.0) for v in vals] for m, vals in ms.items()} for t, ms in base.items()}
    return write_run(tmp_path, "base", base), write_run(tmp_path, "new", other)


def test_compare_verdicts_follow_each_metric_direction(cli, tmp_path):
    a, b = _two_runs(tmp_path, {"accuracy": -10.0, "self_bleu": 3.0, "ngram_diversity": 2.0, "mean_words": 5.0})
    shown = cli("compare", str(a), str(b), "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {r["metric"]: r for r in json.loads(shown.stdout)["rows"]}
    assert rows["accuracy"]["verdicts"] == ["worse"] and rows["accuracy"]["deltas"] == [pytest.approx(-10.0)]
    assert rows["self_bleu"]["verdicts"] == ["worse"] and rows["self_bleu"]["direction"] == "lower"
    assert rows["ngram_diversity"]["verdicts"] == ["better"]
    assert rows["mean_words"]["verdicts"] == ["higher"]  # neutral: no better or worse
    for row in rows.values():
        low, high = row["ci95"][0]
        assert low <= row["deltas"][0] <= high and row["paired_docs"] == [40]
    table = cli("compare", str(a), str(b))
    assert table.returncode == 0 and "worse" in table.stdout and "better" in table.stdout


def test_check_passes_identical_runs(cli, tmp_path):
    a, _ = _two_runs(tmp_path, {})
    result = cli("check", str(a), "--baseline", str(a))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check passed" in result.stdout


@pytest.mark.parametrize(
    ("shift", "regressed"),
    [
        ({"accuracy": -5.0}, "accuracy"),  # higher is better, went down
        ({"ngram_diversity": -1.0}, "ngram_diversity"),
        ({"self_bleu": 1.0}, "self_bleu"),  # lower is better, went up
    ],
)
def test_check_fails_on_a_regression_in_either_direction(cli, tmp_path, shift, regressed):
    baseline, run = _two_runs(tmp_path, shift)
    result = cli("check", str(run), "--baseline", str(baseline), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    findings = {f["metric"]: f for f in json.loads(result.stdout)}
    assert [m for m, f in findings.items() if f["status"] != "ok"] == [regressed]
    assert "mean_words" not in findings  # neutral metrics are not gated


def test_check_improvements_and_tolerances_pass(cli, tmp_path):
    baseline, run = _two_runs(tmp_path, {"accuracy": 5.0, "self_bleu": -2.0, "ngram_diversity": -0.4})
    assert cli("check", str(run), "--baseline", str(baseline)).returncode == 1  # any drop, by default
    assert cli("check", str(run), "--baseline", str(baseline), "--max-drop", "0.5").returncode == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: {max_drop: 0}\nmetrics:\n  ngram_diversity: {max_relative_drop: 0.01}\n")
    assert cli("check", str(run), "--baseline", str(baseline), "--policy", str(policy)).returncode == 0
    policy.write_text("tasks:\n  writing:\n    ngram_diversity: {max_drop: 0.1}\n")
    failed = cli("check", str(run), "--baseline", str(baseline), "--policy", str(policy))
    assert failed.returncode == 1 and "writing/ngram_diversity" in failed.stdout


def test_check_significance_ignores_noise_but_not_real_drops(cli, tmp_path):
    rng = np.random.default_rng(5)
    values = (rng.random(50) < 0.5) * 100.0
    noisy = values.copy()
    noisy[np.flatnonzero(values == 100.0)[:2]] = 0.0  # two of 50 documents flip: a 4-point drop
    base = write_run(tmp_path, "base", {"math": {"accuracy": list(values)}})
    flipped = write_run(tmp_path, "noisy", {"math": {"accuracy": list(noisy)}})
    bad = write_run(tmp_path, "bad", {"math": {"accuracy": [0.0] * 50}})
    significant = ("--baseline", str(base), "--require-significance")
    assert cli("check", str(flipped), "--baseline", str(base)).returncode == 1
    assert cli("check", str(flipped), *significant).returncode == 0
    assert cli("check", str(bad), *significant).returncode == 1


def test_check_reports_a_missing_task_and_rejects_bad_input(cli, tmp_path):
    baseline, _ = _two_runs(tmp_path, {})
    partial = write_run(tmp_path, "partial", {"math": {"accuracy": [100.0] * 40}})
    missing = cli("check", str(partial), "--baseline", str(baseline), "--json")
    assert missing.returncode == 1
    assert {f["task"] for f in json.loads(missing.stdout) if f["status"] == "missing"} == {"writing"}
    policy = tmp_path / "bad.yaml"
    for text, message in [
        ("metrics:\n  acuracy: {max_drop: 1}\n", "did you mean 'accuracy'"),
        ("default: {max_drop: -1}\n", "must be a finite number >= 0"),
        ("default: {max_dorp: 1}\n", "did you mean 'max_drop'"),
        ("tolerance: 3\n", "unknown key"),
        ("default: [\n", "cannot read policy"),
    ]:
        policy.write_text(text)
        result = cli("check", str(baseline), "--baseline", str(baseline), "--policy", str(policy))
        assert result.returncode == 2 and message in result.stderr, (text, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    nothing = cli("check", str(tmp_path / "nope"), "--baseline", str(baseline))
    assert nothing.returncode == 2 and "no results found" in nothing.stderr


def test_check_accepts_a_hand_written_baseline_file(cli, tmp_path):
    _, run = _two_runs(tmp_path, {})
    accuracy = json.loads((run / "results.json").read_text())["tasks"]["math"]["metrics"]["accuracy"]
    floor = tmp_path / "floor.yaml"
    floor.write_text(f"tasks:\n  math:\n    metrics: {{accuracy: {accuracy + 1}}}\n")
    assert cli("check", str(run), "--baseline", str(floor), "--max-drop", "2").returncode == 0
    result = cli("check", str(run), "--baseline", str(floor), "--max-drop", "0.5")
    assert result.returncode == 1 and "math/accuracy" in result.stdout


def test_weighted_aggregate_and_bootstrap_count_every_unit_once():
    from evalkit.metrics import aggregate

    # Three documents with 1, 2 and 5 instructions: per-document shares and their weights.
    followed, counts = [1, 1, 4], [1, 2, 5]
    per_doc = [{"inst": 100.0 * f / c} for f, c in zip(followed, counts)]
    weights = [{"inst": float(c)} for c in counts]
    agg = aggregate(per_doc, weights)
    assert agg.metrics["inst"] == pytest.approx(100.0 * sum(followed) / sum(counts))
    unweighted = aggregate(per_doc)
    assert unweighted.metrics["inst"] == pytest.approx(sum(d["inst"] for d in per_doc) / 3)
    assert unweighted.stderr["inst"] == pytest.approx(np.std([d["inst"] for d in per_doc], ddof=1) / np.sqrt(3))

    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 60), rng.normal(0.2, 1, 60)
    w = rng.integers(1, 6, 60).astype(float)
    weighted = paired_bootstrap(a, b, weights=w)
    assert weighted.delta == pytest.approx(float(np.sum((b - a) * w) / np.sum(w)))
    ones = paired_bootstrap(a, b, weights=np.ones(60))
    plain = paired_bootstrap(a, b)
    assert (ones.delta, ones.low, ones.high) == pytest.approx((plain.delta, plain.low, plain.high))
