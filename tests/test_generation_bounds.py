"""The transformers backend's memory follows --batch-size and the real output length, never n or
the requested max_tokens; every sample records why it ended (finish_reason) and how many tokens
it took; results.json records each task's generated tokens and tokens/s; cache files written
before finish_reason existed still open."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest

from evalkit.backends.base import PromptBatch, Sample
from evalkit.backends.hf import HFBackend, context_length, finished_sample, rows_that_fit
from evalkit.cache import GenerationCache
from evalkit.config import SamplingConfig
from tests.conftest import run_and_load


@pytest.fixture(scope="module")
def backend():
    return HFBackend(None, device="cpu", batch_size=3)


def _record_calls(backend, monkeypatch) -> list[int]:
    """The rows (sequences) of every model.generate call."""
    rows: list[int] = []
    generate = backend.model.generate

    def counting(*args, **kwargs):
        rows.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    monkeypatch.setattr(backend.model, "generate", counting)
    return rows


def test_n_larger_than_the_batch_size_is_split_across_calls(backend, monkeypatch):
    """n = 20 with --batch-size 3 never puts more than 3 sequences in one call (issue 17: n = 2000
    with --batch-size 1 held 2000 sequences at once), and each sample keeps its own seed."""
    rows = _record_calls(backend, monkeypatch)
    prompt = backend.render([{"role": "user", "content": "Name a fruit."}])
    sampling = SamplingConfig(n=20, temperature=1.0, max_tokens=1, seed=4)
    samples = backend.generate_samples(PromptBatch([prompt, prompt + " "], sampling))
    assert rows and max(rows) <= 3 and sum(rows) == 40
    assert [len(s) for s in samples] == [20, 20]
    assert all(s.tokens == 1 for row in samples for s in row)
    wide = HFBackend(None, device="cpu", batch_size=64)
    wide._model, wide._tokenizer = backend.model, backend.tokenizer
    together = wide.generate_samples(PromptBatch([prompt], sampling))[0]
    # Sample i is drawn with its own seed whatever the call: the same first tokens, up to the rare
    # token whose choice flips on float rounding in a differently shaped batch.
    assert sum(a.text == b.text for a, b in zip(samples[0], together)) >= 18


def test_greedy_n_decodes_once(backend, monkeypatch):
    rows = _record_calls(backend, monkeypatch)
    prompt = backend.render([{"role": "user", "content": "Say hi."}])
    samples = backend.generate_samples(PromptBatch([prompt], SamplingConfig(n=500, temperature=0, max_tokens=2)))
    assert rows == [1] and len(samples[0]) == 500 and len({s.text for s in samples[0]}) == 1


def test_max_tokens_is_clamped_to_the_context_with_a_note(backend, capsys):
    context = context_length(backend.model.config)
    assert context == 8192  # SmolLM2-135M-Instruct's config
    assert backend.clamp_max_tokens(100, 50, ["p"], None) == 100
    assert backend.clamp_max_tokens(10**12, 50, ["p"], None) == context - 50
    assert "max_tokens 1000000000000 is more than the model's context of 8192" in capsys.readouterr().err


def test_a_prompt_that_fills_the_context_is_too_long(backend):
    import torch

    from evalkit.errors import PromptTooLong

    with pytest.raises(PromptTooLong, match="context of 8192"):
        backend.clamp_max_tokens(10, 8192, ["long", "short"], torch.tensor([[1] * 8192, [0] * 8000 + [1] * 192]))


def test_finish_reasons_of_generated_rows():
    ends = {2}  # EOS, also the pad token
    assert finished_sample("a b", [5, 6, 2, 2], ends, (), 4) == Sample("a b", "stop", 3)
    assert finished_sample("a b c d", [5, 6, 7, 8], ends, (), 4) == Sample("a b c d", "length", 4)
    # A stop string ended the row; generate padded it after the token that completed the stop string.
    assert finished_sample("one\ntwo", [5, 9, 2, 2], ends, ("\n",), 4) == Sample("one", "stop", 2)
    assert finished_sample("one\n", [5, 9], ends, ("\n",), 2) == Sample("one", "stop", 2)


def test_rows_that_fit_follow_free_memory_and_sequence_length():
    import torch

    config = SimpleNamespace(
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, hidden_size=576, num_hidden_layers=30,
        intermediate_size=1536, vocab_size=49152,
    )  # fmt: skip
    model = SimpleNamespace(config=config, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    gib = 1 << 30
    rows = rows_that_fit(model, 1024, 40 * gib, cap=100_000)
    kv_per_row = 2 * 30 * 3 * 64 * 2 * 1024  # K and V, every layer, bf16, 1024 tokens: 22.5 MiB
    assert 0.5 * 40 * gib / kv_per_row < rows < 40 * gib / kv_per_row
    assert rows_that_fit(model, 2048, 40 * gib, cap=100_000) < rows  # longer sequences: fewer rows
    assert rows_that_fit(model, 1024, 80 * gib, cap=100_000) > rows  # more memory: more rows
    assert rows_that_fit(model, 1024, 80 * gib, cap=64) == 64
    assert rows_that_fit(model, 1024, 1, cap=64) == 1


def test_cpu_batch_size_defaults_to_64_without_touching_torch():
    backend = HFBackend(None, device="cpu")
    assert backend.max_rows() == 64 and backend.prompts_per_call(SamplingConfig(n=4)) == 16
    assert HFBackend(None, device="cpu", batch_size=8).prompts_per_call(SamplingConfig(n=20)) == 1


def test_an_old_cache_file_opens_and_keeps_its_samples(tmp_path):
    path = tmp_path / "generations.sqlite"
    with sqlite3.connect(path) as db:  # the schema before finish_reason
        db.execute("CREATE TABLE samples (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO samples VALUES ('old', 'an old completion')")
    cache = GenerationCache(path)
    assert cache.get_samples(["old"]) == {"old": ("an old completion", None)}
    assert cache.get_many(["old"]) == {"old": "an old completion"}
    cache.put_samples([("new", "cut short", "length")])
    assert cache.get_samples(["new", "old"])["new"] == ("cut short", "length")
    cache.close()
    again = GenerationCache(path)  # the column is there once: opening twice is fine
    assert again.get_samples(["new"]) == {"new": ("cut short", "length")}
    again.close()
    with sqlite3.connect(path) as db:  # a reader that knows only (key, value) still reads it
        assert dict(db.execute("SELECT key, value FROM samples")) == {"old": "an old completion", "new": "cut short"}


def test_a_run_records_finish_reasons_and_tokens_per_second(tmp_path):
    args = ["--tasks", "smoke_writing", "--limit", "2", "--n", "2", "--max-tokens", "3", "--seed", "5", "--quiet"]
    results, samples = run_and_load(tmp_path, "first", *args)
    assert len(samples) == 4 and all(s["finish_reason"] in ("stop", "length") for s in samples)
    assert sum(s["finish_reason"] == "length" for s in samples) >= 3  # a story does not end in 3 tokens
    counts = results["tasks"]["smoke_writing"]["finish_reasons"]
    assert counts["length"] == sum(s["finish_reason"] == "length" for s in samples)
    assert counts["stop"] + counts["length"] == 4
    timing = results["timing"]["tasks"]["smoke_writing"]
    assert timing["generated_samples"] == 4 and 4 <= timing["generated_tokens"] <= 12 and timing["tokens_per_s"] > 0
    repeat, repeat_samples = run_and_load(tmp_path, "repeat", *args, cache="first")
    assert repeat["cache"]["hits"] == 4  # served from the cache, finish reasons kept
    assert [s["finish_reason"] for s in repeat_samples] == [s["finish_reason"] for s in samples]
    assert repeat["tasks"]["smoke_writing"]["finish_reasons"] == counts
    assert repeat["timing"]["tasks"]["smoke_writing"]["generated_tokens"] is None  # nothing generated


def test_a_huge_max_tokens_is_clamped_not_a_traceback(cli, tmp_path):
    """--max-tokens 10**12 (a traceback before): clamped to the model's context with a note;
    a stop string at the first space keeps the run short."""
    result = cli(
        "run", "--tasks", "smoke_arithmetic", "--limit", "1", "--n", "1", "--max-tokens", "1000000000000",
        "--stop", " ", "--quiet", "--output-dir", str(tmp_path), "--run-id", "huge", "--no-cache",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "generating at most" in result.stderr
    samples = [json.loads(line) for line in (tmp_path / "huge" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 1 and samples[0]["finish_reason"] == "stop"
