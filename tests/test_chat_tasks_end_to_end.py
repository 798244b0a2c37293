"""alpaca_eval_bon and noveltybench_curated end to end: the embedded model generates, a tiny random
reward model and the ROUGE-1 equivalence test score, metrics come out; judges' scores are cached."""

from __future__ import annotations

import bisect
import itertools
import json
import math

import pytest

from evalkit.config import RunConfig
from evalkit.runner import prepare
from tests.oracles import by_document, mean
from tests.reward_model_fixture import build_tiny_reward_model


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory, shared_data_dir):
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("chat-run")
    rm = build_tiny_reward_model(root / "rm")
    args = [
        "run", "--tasks", "alpaca_eval_bon,noveltybench_curated", "--limit", "5", "--n", "4",
        "--max-tokens", "8", "--reward-model", str(rm), "--equivalence", "rouge1",
        "--data-dir", str(shared_data_dir), "--cache-dir", str(root / "cache"), "--output-dir", str(root / "out"),
        "--quiet",
    ]  # fmt: skip
    first = run_cli(*args, "--run-id", "first")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(*args, "--run-id", "second")
    assert second.returncode == 0, second.stderr[-3000:]
    return root / "out"


@pytest.fixture(scope="module")
def shared_data_dir():
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "alpaca_eval").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


def test_metrics_judges_and_sample_scores(chat_run):
    results = json.loads((chat_run / "first" / "results.json").read_text())
    bon, novelty = results["tasks"]["alpaca_eval_bon"], results["tasks"]["noveltybench_curated"]
    assert bon["n_docs"] == novelty["n_docs"] == 5
    assert {"win_rate@1", "win_rate@2", "win_rate@4", "mean_reward", "reference_reward"} <= set(bon["metrics"])
    _assert_recomputed_from_samples(chat_run / "first", bon["metrics"], novelty["metrics"])
    assert bon["judges"]["reward_model"].endswith("rm")
    assert novelty["judges"]["equivalence"] == "rouge1:0.458"
    assert results["config"]["equivalence"] == "rouge1"
    rows = [json.loads(line) for line in (chat_run / "first" / "samples.jsonl").open()]
    assert len(rows) == 40
    for row in rows:
        expected = (
            {"reward", "win_probability"} if row["task"] == "alpaca_eval_bon" else {"reward", "equivalence_class"}
        )
        assert expected <= set(row["scores"])


# NoveltyBench's reward thresholds (Skywork-Reward-Gemma-2-27B-v0.2), copied from its src/score.py.
THRESHOLDS = [-7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875]


def _assert_recomputed_from_samples(run_dir, bon, novelty):
    """Every value from the per-sample rewards and classes, with the papers' formulas written out:
    best-of-k win rate over all k-subsets (ties split), NoveltyBench's distinct and utility."""
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    references = {
        r["doc_index"]: r["metrics"]["reference_reward"]
        for r in map(json.loads, (run_dir / "documents.jsonl").open())
        if r["task"] == "alpaca_eval_bon"
    }
    bon_docs = by_document(samples, "alpaca_eval_bon")
    for k in (1, 2, 4):
        values = []
        for d in bon_docs:
            rewards, ref = [s["scores"]["reward"] for s in d], references[d[0]["doc_index"]]
            total = 0.0
            subsets = list(itertools.combinations(rewards, k))
            for subset in subsets:
                best = max(subset)
                total += mean(1 / (1 + math.exp(ref - r)) for r in subset if r == best)
            values.append(100 * total / len(subsets))
        assert bon[f"win_rate@{k}"] == pytest.approx(mean(values), abs=1e-9)
    assert bon["mean_reward"] == pytest.approx(mean(mean(s["scores"]["reward"] for s in d) for d in bon_docs))
    assert bon["reference_reward"] == pytest.approx(mean(references.values()))
    distinct, utility = [], []
    for d in by_document(samples, "noveltybench_curated"):
        classes = [s["scores"]["equivalence_class"] for s in d]
        assert classes[0] == 0 and all(c <= max(classes[:i], default=-1) + 1 for i, c in enumerate(classes))
        distinct.append(len(set(classes)))
        gains = [bisect.bisect_left(THRESHOLDS, s["scores"]["reward"]) + 1 if c not in classes[:i] else 0
                 for i, (s, c) in enumerate(zip(d, classes))]  # fmt: skip
        utility.append(sum(0.8**i * g for i, g in enumerate(gains)) / sum(0.8**i for i in range(len(gains))))
    assert novelty["distinct"] == pytest.approx(mean(distinct)) and novelty["utility"] == pytest.approx(mean(utility))


def test_rerun_reuses_samples_and_judged_scores(chat_run):
    first = json.loads((chat_run / "first" / "results.json").read_text())
    second = json.loads((chat_run / "second" / "results.json").read_text())
    assert second["cache"] == {"hits": 40, "generated": 0}
    for task in first["tasks"]:
        assert second["tasks"][task]["metrics"] == first["tasks"][task]["metrics"]


def test_missing_reward_model_offline_fails_named_task_and_skips_suite_task(cli, shared_data_dir, tmp_path):
    result = cli("run", "--tasks", "alpaca_eval_bon", "--limit", "1", "--data-dir", str(shared_data_dir),
                 "--output-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: task alpaca_eval_bon: reward model sfairXC/FsfairX-LLaMA3-RM-v0.1 is not in the local hub cache "
        "and the hub is offline; pass --reward-model PATH"
    ]
    skipped: dict[str, str] = {}
    tasks = prepare(RunConfig(model=None, tasks=(), suite="diversity", data_dir=shared_data_dir, limit=1), skipped)
    assert "noveltybench_curated" in skipped and "equivalence classifier" in skipped["noveltybench_curated"]
    assert "noveltybench_curated" not in [t.spec.name for t in tasks]
