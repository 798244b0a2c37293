"""IFEval verdicts against the official scorer's stored outputs (../shared/data/ifeval)."""

from __future__ import annotations

import json

import pytest

from evalkit.metrics import METRICS, aggregate
from evalkit.scoring.ifeval import RANDOMISED, follow_instructions
from tests.oracles import by_document, mean

REFERENCES = {  # response set -> (official results file stem, prompts scored)
    "gpt4": ("gpt4_podtech", 540),
    "llama": ("llama31_8b_jacklingjie", 541),
}
# The prompts whose verdicts differ from the official files at evalkit's default seed (0), as
# docs/ifeval.md lists them: every one on a randomised instruction (checked below).
DOCUMENTED_DIFFERENCES = {
    ("gpt4", "strict"): {1122, 1129},
    ("gpt4", "loose"): set(),
    ("llama", "strict"): {1122, 1813, 279},
    ("llama", "loose"): {1813, 3617},
}


def _load(data, model: str, mode: str):
    stem, size = REFERENCES[model]
    inputs = {}
    for line in (data / "ifeval" / "input_data.jsonl").read_text().splitlines():
        record = json.loads(line)
        inputs[record["prompt"]] = record
    official = [
        json.loads(line) for line in (data / "ifeval" / f"eval_results_{mode}_{stem}.jsonl").read_text().splitlines()
    ]
    assert len(official) == size
    return [(inputs[o["prompt"]], o) for o in official]


@pytest.mark.parametrize("model", sorted(REFERENCES))
@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_verdicts_equal_the_official_ones_wherever_the_official_scorer_is_deterministic(shared_data, model, mode):
    loose = mode == "loose"
    differing = []
    for record, official in _load(shared_data, model, mode):
        ours = follow_instructions(record, official["response"], loose=loose)
        assert len(ours) == len(official["follow_instruction_list"])
        for i, (mine, theirs) in enumerate(zip(ours, official["follow_instruction_list"])):
            if mine != theirs:
                differing.append((record, official["response"], i, theirs))
    for record, response, i, theirs in differing:
        # Only where the official checker draws at random (a letter, or langdetect's sampling)...
        assert record["instruction_id_list"][i] in RANDOMISED, (record["key"], record["instruction_id_list"][i])
        # ...and the official verdict is one that checker really produces under another draw.
        outcomes = {follow_instructions(record, response, loose=loose, seed=s)[i] for s in range(64)}
        assert theirs in outcomes and len(outcomes) == 2, (record["key"], outcomes)
    assert {record["key"] for record, *_ in differing} == DOCUMENTED_DIFFERENCES[(model, mode)]


def test_seeded_verdicts_are_stable_and_leave_the_callers_random_state_alone(shared_data):
    import random

    record, official = _load(shared_data, "llama", "strict")[0]
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    first = follow_instructions(record, official["response"])
    assert random.random() == expected_next
    assert all(follow_instructions(record, official["response"]) == first for _ in range(3))


def test_instruction_level_accuracy_counts_every_instruction_once(shared_data):
    """The task metric (with document weights) equals the micro-average over all 834 instructions."""
    pairs = _load(shared_data, "llama", "strict")
    metric = METRICS.get("ifeval")
    results = [metric([o["response"]], record, None) for record, o in pairs]
    agg = aggregate([r.per_doc for r in results], [r.weights for r in results])
    verdicts = [follow_instructions(record, o["response"]) for record, o in pairs]
    loose = [follow_instructions(record, o["response"], loose=True) for record, o in pairs]
    total = sum(len(v) for v in verdicts)
    assert total == 834
    assert agg.metrics["inst_strict"] == pytest.approx(100 * sum(map(sum, verdicts)) / total, abs=1e-9)
    assert agg.metrics["prompt_strict"] == pytest.approx(100 * sum(map(all, verdicts)) / len(verdicts), abs=1e-9)
    assert agg.metrics["inst_loose"] == pytest.approx(100 * sum(map(sum, loose)) / total, abs=1e-9)
    # The official file's own aggregates (what papers quote) and ours differ only by the
    # randomised verdicts of the test above: at most 3 prompts and 3 instructions.
    official = [o["follow_instruction_list"] for _, o in pairs]
    assert 100 * sum(map(all, official)) / 541 == pytest.approx(71.16, abs=0.005)
    assert 100 * sum(map(sum, official)) / 834 == pytest.approx(79.50, abs=0.005)
    assert abs(agg.metrics["prompt_strict"] - 71.16) <= 100 * 3 / 541
    assert abs(agg.metrics["inst_strict"] - 79.50) <= 100 * 3 / 834


def test_bad_records_are_data_errors():
    from evalkit.errors import DataError

    with pytest.raises(DataError, match="not an IFEval record"):
        follow_instructions({"prompt": "x"}, "y")
    with pytest.raises(DataError, match="unknown instruction"):
        follow_instructions({"prompt": "x", "instruction_id_list": ["no:such"], "kwargs": [{}]}, "y")
    # The error names the record's key, 0 for a record without one.
    with pytest.raises(DataError, match=r"^IFEval record 0: unknown instruction 'no:such'"):
        follow_instructions({"prompt": "x", "instruction_id_list": ["no:such"], "kwargs": [{}]}, "y")
    with pytest.raises(DataError, match=r"^IFEval record 7: "):
        follow_instructions({"key": 7, "prompt": "x", "instruction_id_list": ["no:such"], "kwargs": [{}]}, "y")


def test_ifeval_task_runs_offline_on_the_embedded_model(cli, shared_data, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "run",
        "--tasks",
        "ifeval",
        "--limit",
        "4",
        "--max-tokens",
        "48",
        "--data-dir",
        str(shared_data),
        "--output-dir",
        str(out),
        "--run-id",
        "ifeval",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "ifeval" / "results.json").read_text())
    metrics = results["tasks"]["ifeval"]["metrics"]
    assert set(metrics) == {"prompt_strict", "inst_strict", "prompt_loose", "inst_loose"}
    samples = [json.loads(line) for line in (out / "ifeval" / "samples.jsonl").read_text().splitlines()]
    docs = by_document(samples, "ifeval")
    for mode in ("strict", "loose"):
        verdicts = [[s["scores"][mode] for s in d] for d in docs]
        # prompt level: per document the share of samples that follow every instruction
        assert metrics[f"prompt_{mode}"] == pytest.approx(mean(100 * mean(map(all, v)) for v in verdicts), abs=1e-9)
        # instruction level: every instruction of every sample counts once
        followed = sum(sum(map(sum, v)) for v in verdicts)
        assert metrics[f"inst_{mode}"] == pytest.approx(100 * followed / sum(len(x) for v in verdicts for x in v))
    rows = [json.loads(line) for line in (out / "ifeval" / "documents.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (shared_data / "ifeval" / "input_data.jsonl").read_text().splitlines()[:4]]
    assert [r["weights"]["inst_strict"] for r in rows] == [len(r["instruction_id_list"]) for r in records]
    assert [len(s["scores"]["strict"]) for s in samples] == [len(r["instruction_id_list"]) for r in records]
