"""The diversity tasks: their data sources, prompts, and a real run of the suite."""

from __future__ import annotations

import json

import pytest

from evalkit import data as data_module
from evalkit import hub
from evalkit.config import RunConfig
from evalkit.data import load_documents
from evalkit.errors import DataError, DataUnavailable
from evalkit.runner import prepare
from evalkit.tasks import render_messages, task_registry

REGISTRY = task_registry()


def test_shipped_title_lists_render_the_seed_prompt():
    for task, word in (("poem_writing", "poem"), ("story_writing", "story")):
        spec = REGISTRY.get(task)
        docs = load_documents(spec)
        titles = [d["title"] for d in docs]
        assert len(titles) >= 100 and len(set(titles)) == len(titles)
        prompt = render_messages(spec, docs[0])[-1]["content"]
        assert prompt == f"Write a {word} titled '{titles[0]}' with no more than 200 words."
        assert (spec.sampling.n, spec.sampling.temperature, spec.sampling.top_k, spec.sampling.top_p) == (
            16,
            1.0,
            50,
            0.9,
        )


def test_small_prompts_are_the_129_helpful_base_instructions(shared_data):
    spec = REGISTRY.get("small_prompts")
    docs = load_documents(spec, shared_data)
    assert len(docs) == 129 and {d["dataset"] for d in docs} == {"helpful_base"}
    assert render_messages(spec, docs[0])[-1]["content"] == docs[0]["instruction"]
    assert spec.sampling.n == 10


def test_short_stories_prompt_keeps_the_first_four_sentences():
    spec = REGISTRY.get("short_stories")
    story = (
        "Mr. Lee bought a kite. He flew it at 5 p.m. on the hill. The wind was strong. "
        "The kite broke free. He laughed and went home."
    )
    prompt = render_messages(spec, {"text": story})[-1]["content"]
    assert prompt == (
        "Continue the following story.\n\nMr. Lee bought a kite. He flew it at 5 p.m. on the hill. "
        "The wind was strong. The kite broke free."
    )
    columns = {f"sentence{i}": f"S{i}." for i in range(1, 6)}
    assert render_messages(spec, columns)[-1]["content"].endswith("S1. S2. S3. S4.")


def test_hub_only_task_is_an_error_when_named_and_skipped_in_a_suite():
    with pytest.raises(DataUnavailable, match="short_stories"):
        prepare(RunConfig(model=None, tasks=("short_stories",)))
    skipped: dict[str, str] = {}
    names = [t.spec.name for t in prepare(RunConfig(model=None, tasks=(), suite="diversity", limit=2), skipped)]
    # No --data-dir either; NoveltyBench also lacks its reward model and classifier offline.
    assert set(skipped) == {"short_stories", "small_prompts", "noveltybench_curated", "noveltybench_wildchat"}
    assert names == ["poem_writing", "story_writing"]


def test_hub_rows_are_renamed_and_a_failing_hub_falls_back_to_the_shipped_file(monkeypatch, capsys):
    spec = REGISTRY.get("poem_writing")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(hub, "unreachable_reason", lambda: None)  # a reachable hub, wherever the test runs
    monkeypatch.setattr(data_module, "_load_hub", lambda task, source: [{"poem name": "Ode", "content": "..."}])
    assert load_documents(spec)[0]["title"] == "Ode"

    def unreachable(task, source):
        raise DataError(f"task {task}: cannot load {source.hub} from the hub: ConnectionError")

    monkeypatch.setattr(data_module, "_load_hub", unreachable)
    docs = load_documents(spec)
    assert len(docs) >= 100 and "using the shipped data/poem_titles.jsonl" in capsys.readouterr().err
    monkeypatch.setattr(data_module, "_load_hub", lambda task, source: [{"author": "x"}])
    with pytest.raises(DataError, match="poem name"):
        load_documents(spec)


def test_diversity_suite_end_to_end(cli, tmp_path, shared_data):
    out = tmp_path / "out"
    args = ["--suite", "diversity", "--limit", "2", "--n", "3", "--max-tokens", "24", "--quiet"]
    result = cli(
        "run",
        *args,
        "--data-dir",
        str(shared_data),
        "--output-dir",
        str(out),
        "--run-id",
        "div",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr
    assert "skipping task short_stories" in result.stderr
    results = json.loads((out / "div" / "results.json").read_text())
    assert set(results["tasks"]) == {"poem_writing", "story_writing", "small_prompts"}
    # short_stories is hub only; NoveltyBench needs its classifier and reward model, not here offline.
    assert set(results["skipped"]) == {"short_stories", "noveltybench_curated", "noveltybench_wildchat"}
    assert "is not in the local hub cache" in results["skipped"]["noveltybench_curated"]
    expected = {
        "ngram_diversity",
        "self_bleu",
        "self_bleu_diversity",
        "sbert_diversity",
        "embedding_distance",
        "distinct_1",
        "distinct_2",
        "distinct_3",
        "mean_words",
    }
    for task in results["tasks"].values():
        assert set(task["metrics"]) == expected
        m = task["metrics"]
        assert 0 < m["ngram_diversity"] <= 100 and 0 <= m["self_bleu"] <= 100 and m["mean_words"] > 0
        assert m["self_bleu_diversity"] == pytest.approx(100 - m["self_bleu"])
    documents = [json.loads(line) for line in (out / "div" / "documents.jsonl").read_text().splitlines()]
    assert len(documents) == 6 and all(set(d["metrics"]) == expected for d in documents)
    mean = sum(d["metrics"]["self_bleu"] for d in documents if d["task"] == "poem_writing") / 2
    assert results["tasks"]["poem_writing"]["metrics"]["self_bleu"] == pytest.approx(mean)
