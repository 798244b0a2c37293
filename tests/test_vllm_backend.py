"""The vLLM backend without vLLM: its import is lazy, and a stand-in module with vLLM's offline
API (tests/fake_vllm) records the requests, the engines and the data-parallel routing."""

from __future__ import annotations

import json
import os
import sys

import pytest

from evalkit.backends.hf import HFBackend
from evalkit.backends.vllm import VLLMBackend, engine_kwargs, gpu_groups, sampling_params_kwargs, shards
from evalkit.config import BackendOptions, SamplingConfig
from evalkit.errors import ModelError
from tests.conftest import REPO

FAKE = REPO / "tests" / "fake_vllm"


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """The stand-in vllm on the path of this process and of spawned workers; returns its log."""
    log = tmp_path / "vllm_log.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)

    def events(kind: str) -> list[dict]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    return events


def test_the_import_is_lazy_and_missing_vllm_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    backend = VLLMBackend(None, BackendOptions())  # builds without vLLM
    assert backend.render([{"role": "user", "content": "hi"}])
    with pytest.raises(ModelError, match=r"pip install 'evalkit\[vllm\]'"):
        backend.generate(_batch(["x"], SamplingConfig()))


def _batch(prompts, sampling):
    from evalkit.backends.base import PromptBatch

    return PromptBatch(prompts, sampling)


def test_one_request_per_prompt_carries_n_seed_and_sampling_values(fake_vllm):
    backend = VLLMBackend(None, BackendOptions(gpu_memory_utilization=0.8, max_model_len=4096))
    hf = HFBackend(None)
    chats = [[{"role": "user", "content": f"Write about {t}."}] for t in ("rain", "snow", "fog")]
    prompts = [backend.render(c) for c in chats]
    assert prompts == [hf.render(c) for c in chats]  # the same chat template as the transformers backend
    sampling = SamplingConfig(n=5, temperature=0.9, top_p=0.95, top_k=40, max_tokens=32, stop=("\n\n",), seed=3)
    texts = backend.generate(_batch(prompts, sampling))
    requests = fake_vllm("request")
    assert len(requests) == 3  # n samples in one request, not n requests
    for prompt, request, samples in zip(prompts, requests, texts):
        assert request["params"] == sampling_params_kwargs(sampling, prompt)
        assert request["params"]["n"] == 5 and request["params"]["stop"] == ["\n\n"]
        assert (request["params"]["temperature"], request["params"]["top_p"], request["params"]["top_k"]) == (
            0.9,
            0.95,
            40,
        )
        # The same token ids the transformers backend feeds its model.
        assert request["ids"] == hf.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert [s.split(" sample ")[1][0] for s in samples] == ["0", "1", "2", "3", "4"]  # sorted by index
    seeds = [r["params"]["seed"] for r in requests]
    assert len(set(seeds)) == 3  # each prompt its own seed ...
    again = VLLMBackend(None, BackendOptions())
    again.generate(_batch(prompts[::-1], sampling))
    assert [r["params"]["seed"] for r in fake_vllm("request")[3:]] == seeds[::-1]  # ... whatever the order
    (engine,) = fake_vllm("engine")[:1]
    assert engine["kwargs"]["enable_prefix_caching"] is True
    assert engine["kwargs"]["gpu_memory_utilization"] == 0.8 and engine["kwargs"]["max_model_len"] == 4096


def test_greedy_decodes_once_and_copies(fake_vllm):
    backend = VLLMBackend(None, BackendOptions())
    texts = backend.generate(_batch(["a", "b"], SamplingConfig(n=3, temperature=0)))
    assert all(len(set(t)) == 1 and len(t) == 3 for t in texts)
    params = [r["params"] for r in fake_vllm("request")]
    assert all(p["n"] == 1 and p["temperature"] == 0.0 and "seed" not in p for p in params)


def test_data_parallel_workers_keep_document_order(fake_vllm, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    options = BackendOptions(data_parallel_size=2, tensor_parallel_size=2)
    backend = VLLMBackend(None, options)
    prompts = [f"prompt number {i}" for i in range(7)]
    sampling = SamplingConfig(n=2, seed=9)
    single = VLLMBackend(None, BackendOptions()).generate(_batch(prompts, sampling))
    parallel = backend.generate(_batch(prompts, sampling))
    backend._pool.close()
    assert parallel == single  # same answers, in document order
    engines = fake_vllm("engine")
    workers = [e for e in engines if e["pid"] != os.getpid()]
    assert sorted(e["gpus"] for e in workers) == ["4,5", "6,7"]
    assert all(e["kwargs"]["tensor_parallel_size"] == 2 for e in workers)
    by_pid = {}
    for r in fake_vllm("request"):
        if r["pid"] != os.getpid():
            by_pid.setdefault(r["pid"], []).append(r["ids"])
    assert sorted(len(v) for v in by_pid.values()) == [3, 4]  # two contiguous shards


def test_sharding_and_gpu_groups():
    assert [list(r) for r in shards(7, 3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [list(r) for r in shards(1, 3)] == [[0], [], []]
    assert sum(len(r) for r in shards(1000, 8)) == 1000
    assert gpu_groups(2, 1, None) == ["0", "1"]
    assert gpu_groups(2, 2, "3,1,2,0") == ["3,1", "2,0"]
    with pytest.raises(ModelError, match="needs 4 GPUs"):
        gpu_groups(2, 2, "0,1")
    kwargs = engine_kwargs("/models/m", BackendOptions(tensor_parallel_size=4), seed=1)
    assert kwargs["tensor_parallel_size"] == 4 and "max_model_len" not in kwargs


def test_run_through_vllm_and_transformers_compare(cli, fake_vllm, tmp_path):
    out = tmp_path / "out"
    args = ["--tasks", "smoke_arithmetic", "--limit", "4", "--n", "2", "--max-tokens", "16", "--quiet"]
    vllm_run = cli(
        "run",
        *args,
        "--backend",
        "vllm",
        "--data-parallel-size",
        "2",
        "--output-dir",
        str(out),
        "--run-id",
        "vllm",
        "--cache-dir",
        str(tmp_path / "c1"),
        env={"CUDA_VISIBLE_DEVICES": "0,1"},
    )
    assert vllm_run.returncode == 0, vllm_run.stderr
    hf_run = cli("run", *args, "--output-dir", str(out), "--run-id", "hf", "--cache-dir", str(tmp_path / "c2"))
    assert hf_run.returncode == 0, hf_run.stderr
    results = json.loads((out / "vllm" / "results.json").read_text())
    assert results["backend"] == "vllm" and results["config"]["backend_options"]["data_parallel_size"] == 2
    assert results["tasks"]["smoke_arithmetic"]["n_docs"] == 4
    compared = cli("compare", str(out / "hf"), str(out / "vllm"), "--json")
    assert compared.returncode == 0, compared.stderr
    assert {r["metric"] for r in json.loads(compared.stdout)["rows"]} >= {"accuracy"}
    assert len(fake_vllm("engine")) == 2
