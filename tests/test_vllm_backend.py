"""The vLLM backend without vLLM: its import is lazy, and a stand-in module with the signatures
and checks of vLLM 0.8.0 and 0.33.0 (tests/fake_vllm) records the engines and the requests.

What evalkit sends is checked against vLLM's semantics written out here (the seed of sample i is
the request's seed + i, top_k "off" is -1 in 0.8.0 and 0 in 0.33.0, greedy is n = 1 at
temperature 0, ...), never against the function that builds the requests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from evalkit.backends.base import PromptBatch, sample_seed
from evalkit.backends.hf import HFBackend
from evalkit.backends.vllm import VLLMBackend, engine_kwargs, gpu_groups, samples_depend_on_n_in, shards
from evalkit.config import BackendOptions, ModelOptions, SamplingConfig
from evalkit.errors import ConfigError, ModelError, PromptTooLong
from evalkit.results import document_id
from tests.conftest import REPO
from tests.oracles import by_document, mean

FAKE = REPO / "tests" / "fake_vllm"
RELEASES = ("0.8.0", "0.33.0")
TOP_K_OFF = {"0.8.0": -1, "0.33.0": 0}  # vLLM 0.8.0 sampling_params.py:202, 0.33.0 :318


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """Puts the stand-in vllm, playing the given release, on the path of this process and of
    spawned workers; returns a reader of its log."""
    log = tmp_path / "vllm_log.jsonl"

    def events(kind: str) -> list[dict]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    def use(version: str = "0.33.0"):
        monkeypatch.setenv("FAKE_VLLM_VERSION", version)
        monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
        monkeypatch.delenv("VLLM_USE_V1", raising=False)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), str(REPO), os.environ.get("PYTHONPATH", "")]))
        monkeypatch.syspath_prepend(str(FAKE))
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            monkeypatch.delitem(sys.modules, name)
        return events

    return use


def _batch(prompts, sampling):
    return PromptBatch(prompts, sampling)


def _documented_seed(seed: int, prompt: str, index: int) -> int:
    """The per-sample seed as docs/backends.md defines it, computed here without evalkit: the
    first 8 bytes (little-endian) of SHA-256("{seed}\\0{index}\\0{prompt}"), cut to 63 bits."""
    digest = hashlib.sha256(f"{seed}\0{index}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


def test_documented_seed_is_the_backends_seed():
    assert _documented_seed(7, "Write about rain.", 2) == 7838320676543003023  # computed once, by hand
    for seed, prompt, index in [(7, "Write about rain.", 2), (0, "", 0), (3, "é\n", 41), (2**40, "x" * 999, 5)]:
        assert sample_seed(seed, prompt, index) == _documented_seed(seed, prompt, index)


def _model_dir() -> str:
    from evalkit.embedded import default_model_dir

    return str(default_model_dir())


# The stand-in refuses what vLLM refuses (item 5 of issue 23) ------------------------------------


@pytest.mark.parametrize("version", RELEASES)
def test_the_stand_in_has_vllms_signatures_and_checks(fake_vllm, version):
    fake_vllm(version)
    import vllm
    from vllm.exceptions import VLLMValidationError

    rejected = ValueError if version == "0.8.0" else VLLMValidationError
    assert vllm.__version__ == version
    with pytest.raises(TypeError):
        vllm.SamplingParams(temprature=0.5)  # a misspelt field
    with pytest.raises(rejected, match="n must be 1 when using greedy sampling"):
        vllm.SamplingParams(n=2, temperature=0.0)
    assert vllm.SamplingParams(temperature=0.005).temperature == 0.01  # vLLM raises it to 0.01
    assert vllm.SamplingParams(temperature=0.0, top_k=5).top_k == TOP_K_OFF[version]  # greedy turns top-k off
    if version == "0.8.0":
        assert vllm.SamplingParams(temperature=2.5).temperature == 2.5  # no upper bound before 0.33
        with pytest.raises(ValueError, match="top_k must be -1"):
            vllm.SamplingParams(top_k=0)
    else:
        with pytest.raises(VLLMValidationError, match=r"temperature must be in \[0, 2\]") as caught:
            vllm.SamplingParams(temperature=2.5)
        assert not isinstance(caught.value, ValueError)  # 0.33's validation error is not a ValueError
        assert vllm.SamplingParams(top_k=0).top_k == 0
    with pytest.raises(TypeError):
        vllm.LLM(model=_model_dir(), tensor_parralel_size=2)  # EngineArgs has no such field
    with pytest.raises(ValueError, match="dtype"):
        vllm.LLM(model=_model_dir(), dtype="bf16")
    with pytest.raises(ValueError, match="greater than the derived"):
        vllm.LLM(model=_model_dir(), max_model_len=100_000)  # the embedded model's config says 8192


def test_the_stand_in_fails_a_whole_call_for_one_long_prompt_and_keeps_request_order(fake_vllm):
    fake_vllm()
    import vllm

    llm = vllm.LLM(model=_model_dir(), max_model_len=8)
    assert llm.llm_engine.model_config.max_model_len == 8
    params = vllm.SamplingParams(n=3, seed=10)
    with pytest.raises(Exception, match=r"prompt \(length 8\) is longer than the maximum model length of 8"):
        llm.generate([{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": list(range(8))}], [params, params])
    out = llm.generate([{"prompt_token_ids": [1]}, {"prompt_token_ids": [2]}], [params, params], use_tqdm=False)
    assert [o.request_id for o in out] == ["0", "1"] and [o.prompt_token_ids for o in out] == [[1], [2]]
    assert [c.index for c in out[0].outputs] == [0, 1, 2]
    assert llm.generate({"prompt_token_ids": [3]}, params)[0].request_id == "2"  # counted over the engine's life
    with pytest.raises(Exception, match="must be the same"):
        llm.generate([{"prompt_token_ids": [1]}], [params, params])


# What evalkit sends --------------------------------------------------------------------------------


def test_the_import_is_lazy_and_missing_vllm_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    backend = VLLMBackend(None, BackendOptions())  # builds without vLLM
    assert backend.render([{"role": "user", "content": "hi"}])
    with pytest.raises(ModelError, match=r"pip install 'evalkit\[vllm\]'"):
        backend.generate(_batch(["x"], SamplingConfig()))


@pytest.mark.parametrize("version", RELEASES)
def test_one_request_per_prompt_with_vllms_seeds_and_sampling_values(fake_vllm, version):
    events = fake_vllm(version)
    backend = VLLMBackend(None, BackendOptions(gpu_memory_utilization=0.8, max_model_len=4096))
    hf = HFBackend(None)
    chats = [[{"role": "user", "content": f"Write about {t}."}] for t in ("rain", "snow", "fog")]
    prompts = [backend.render(c) for c in chats]
    assert prompts == [hf.render(c) for c in chats]  # the same chat template as the transformers backend
    sampling = SamplingConfig(n=5, temperature=0.9, top_p=0.95, top_k=40, max_tokens=32, stop=("\n\n",), seed=3)
    texts = backend.generate(_batch(prompts, sampling))
    requests = events("request")
    assert [r["request_id"] for r in requests] == ["0", "1", "2"]  # n samples in one request, not n requests
    for prompt, request, samples in zip(prompts, requests, texts):
        seed = _documented_seed(3, prompt, 0)  # evalkit's request seed, written out here
        expected = {"n": 5, "temperature": 0.9, "top_p": 0.95, "top_k": 40, "max_tokens": 32, "stop": ["\n\n"]}
        assert request["params"] == {**expected, "seed": seed}
        assert request["child_seeds"] == [seed, seed + 1, seed + 2, seed + 3, seed + 4]  # vLLM's seed + i
        # The same token ids the transformers backend feeds its model.
        assert request["ids"] == hf.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert [s.split(" sample ")[1][0] for s in samples] == ["0", "1", "2", "3", "4"]  # in sample order
    off = backend.generate(_batch(prompts[:1], SamplingConfig(n=2, top_k=0, seed=3)))
    assert len(off[0]) == 2 and events("request")[-1]["params"]["top_k"] == TOP_K_OFF[version]
    again = VLLMBackend(None, BackendOptions())
    again.generate(_batch(prompts[::-1], sampling))
    seeds = [r["params"]["seed"] for r in events("request")]
    assert seeds[4:] == seeds[:3][::-1]  # a prompt's seed does not depend on the order of the run
    engine = events("engine_ready")[0]["kwargs"]
    assert engine["enable_prefix_caching"] is True and engine["dtype"] == "bfloat16"
    assert engine["gpu_memory_utilization"] == 0.8 and engine["max_model_len"] == 4096


@pytest.mark.parametrize("version", RELEASES)
def test_greedy_is_one_sample_at_temperature_zero_copied_to_n(fake_vllm, version):
    events = fake_vllm(version)
    backend = VLLMBackend(None, BackendOptions())
    texts = backend.generate(_batch(["a", "b"], SamplingConfig(n=3, temperature=0, top_k=20)))
    assert all(len(set(t)) == 1 and len(t) == 3 for t in texts)
    for request in events("request"):
        assert request["params"]["n"] == 1 and request["params"]["temperature"] == 0.0
        assert request["params"]["seed"] is None and request["params"]["top_k"] == TOP_K_OFF[version]


def test_sample_i_does_not_depend_on_n_where_vllm_runs_the_v1_engine(fake_vllm, monkeypatch):
    fake_vllm("0.33.0")
    backend = VLLMBackend(None, BackendOptions())
    two = backend.generate(_batch(["p"], SamplingConfig(n=2, seed=5)))[0]
    four = backend.generate(_batch(["p"], SamplingConfig(n=4, seed=5)))[0]
    assert four[:2] == two and len(set(four)) == 4
    assert backend.samples_depend_on_n is False
    fake_vllm("0.8.0")  # V1 by default, but V0 as a fallback unless VLLM_USE_V1=1
    assert backend.samples_depend_on_n is True
    monkeypatch.setenv("VLLM_USE_V1", "1")
    assert backend.samples_depend_on_n is False


@pytest.mark.parametrize(
    ("version", "use_v1", "depends"),
    [
        ("0.7.3", None, True),  # V0 only
        ("0.8.0", None, True),  # V1 by default, V0 as fallback (engine/arg_utils.py:1214-1223)
        ("0.8.5.post1", "1", False),  # V1 or no engine (arg_utils.py:1745-1748)
        ("0.10.2", "0", True),
        ("0.11.0", None, False),  # V0 removed
        ("0.33.0", "0", False),
        ("0.11.0rc2", None, False),
        (None, None, True),  # not installed: n stays in the cache key
        ("unknown", None, True),
    ],
)
def test_whether_samples_depend_on_n_follows_the_installed_version(version, use_v1, depends):
    assert samples_depend_on_n_in(version, use_v1) is depends


def test_dtype_follows_the_transformers_backend_or_the_users_choice():
    assert engine_kwargs("/m", BackendOptions(), seed=1)["dtype"] == "bfloat16"
    assert engine_kwargs("/m", BackendOptions(), 1, ModelOptions(dtype="float16"))["dtype"] == "float16"
    assert engine_kwargs("/m", BackendOptions(), 1, ModelOptions(dtype="auto"))["dtype"] == "bfloat16"
    backend = VLLMBackend(None, BackendOptions(), ModelOptions(dtype="float32"))
    assert backend.precision == "float32" and "backend=vllm|dtype=float32" in backend.sample_identity


# Temperature above 2 (item 1) -----------------------------------------------------------------------


def test_temperature_above_two_is_refused_before_any_engine_starts(cli, fake_vllm, tmp_path):
    events = fake_vllm()
    args = ["run", "--backend", "vllm", "--tasks", "smoke_arithmetic", "--limit", "2", "--quiet"]
    result = cli(*args, "--temperature", "2.5", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: task smoke_arithmetic: temperature 2.5 is above 2, which vLLM refuses (SamplingParams takes 0 to 2); "
        "use a lower --temperature or --backend hf"
    ]
    assert events("engine_start") == [] and not (tmp_path / "out").exists()
    # A caller that skips the runner's check (an LLM judge on vLLM) is stopped by the backend.
    backend = VLLMBackend(None, BackendOptions())
    with pytest.raises(ConfigError, match="temperature 2.5 is above 2"):
        backend.generate(_batch(["x"], SamplingConfig(temperature=2.5)))
    assert events("engine_start") == []
    assert backend.generate(_batch(["x"], SamplingConfig(temperature=2.0)))  # 2 itself is allowed


# Prompts longer than max_model_len (item 2) ---------------------------------------------------------


def test_a_prompt_longer_than_the_given_max_model_len_fails_before_the_engine_starts(fake_vllm):
    events = fake_vllm()
    backend = VLLMBackend(None, BackendOptions(max_model_len=40))
    long = "a long prompt " * 20
    length = len(backend.tokenizer(long, add_special_tokens=False)["input_ids"])
    with pytest.raises(PromptTooLong) as caught:
        backend.generate(_batch(["short", long], SamplingConfig(n=2)))
    assert caught.value.lengths == {long: length} and length >= 40
    assert f"1 prompt(s) of {length} tokens: not shorter than vLLM's max_model_len of 40 tokens" in str(caught.value)
    assert events("engine_start") == [] and events("request") == []


@pytest.mark.parametrize("data_parallel", [1, 2])
def test_the_engines_max_model_len_is_checked_before_any_request(fake_vllm, monkeypatch, data_parallel):
    events = fake_vllm()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    backend = VLLMBackend(None, BackendOptions(data_parallel_size=data_parallel))
    long = "word " * 9000  # the embedded model's config allows 8192 tokens
    try:
        with pytest.raises(PromptTooLong, match="max_model_len of 8192 tokens"):
            backend.generate(_batch(["short", long], SamplingConfig()))
    finally:
        if backend._pool is not None:
            backend._pool.close()
    assert len(events("engine_ready")) == data_parallel and events("request") == []


def test_a_run_names_the_task_and_documents_whose_prompts_are_too_long(cli, fake_vllm, tmp_path):
    events = fake_vllm()
    args = ["run", "--backend", "vllm", "--tasks", "smoke_arithmetic", "--limit", "2", "--quiet"]
    result = cli(*args, "--max-model-len", "30", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    rows = [json.loads(r) for r in (REPO / "tasks" / "data" / "smoke_arithmetic.jsonl").read_text().splitlines()]
    assert line.startswith(f"error: task smoke_arithmetic: document 0 ({document_id(rows[0])}, ")
    assert f"document 1 ({document_id(rows[1])}, " in line
    assert "not shorter than vLLM's max_model_len of 30 tokens" in line and "--max-model-len" in line
    assert events("engine_start") == [] and not (tmp_path / "out").exists()


# Data-parallel engines (item 4) ---------------------------------------------------------------------


def test_data_parallel_engines_start_one_after_another_and_keep_document_order(fake_vllm, monkeypatch):
    events = fake_vllm()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setenv("FAKE_VLLM_START_SECONDS", "1.0")  # engines that start together would overlap
    prompts = [f"prompt number {i}" for i in range(7)]
    sampling = SamplingConfig(n=2, seed=9)
    single = VLLMBackend(None, BackendOptions()).generate(_batch(prompts, sampling))
    backend = VLLMBackend(None, BackendOptions(data_parallel_size=2, tensor_parallel_size=2))
    parallel = backend.generate(_batch(prompts, sampling))
    backend._pool.close()
    assert parallel == single  # same answers, in document order
    starts = [e for e in events("engine_start") if e["pid"] != os.getpid()]
    readies = {e["pid"]: e for e in events("engine_ready") if e["pid"] != os.getpid()}
    assert [e["gpus"] for e in starts] == ["4,5", "6,7"]  # in rank order
    assert starts[1]["t"] >= readies[starts[0]["pid"]]["t"]  # the second starts once the first is ready
    assert all(e["kwargs"]["tensor_parallel_size"] == 2 for e in starts)
    by_pid: dict[int, list] = {}
    for r in events("request"):
        if r["pid"] != os.getpid():
            by_pid.setdefault(r["pid"], []).append(r["ids"])
    assert sorted(len(v) for v in by_pid.values()) == [3, 4]  # two contiguous shards


def test_an_engine_that_fails_to_start_stops_the_pool_and_no_further_engine_starts(fake_vllm, monkeypatch):
    events = fake_vllm()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    monkeypatch.setenv("FAKE_VLLM_FAIL_ON_GPUS", "1")
    backend = VLLMBackend(None, BackendOptions(data_parallel_size=3))
    with pytest.raises(ModelError, match="the engine on GPUs 1 could not start: RuntimeError: Address already in use"):
        backend.generate(_batch(["x"], SamplingConfig()))
    assert [e["gpus"] for e in events("engine_start")] == ["0", "1"]  # rank 2 never started
    assert [e["gpus"] for e in events("engine_ready")] == ["0"]


# lm-eval tasks on vLLM: Ray for data parallelism (item 3) -----------------------------------------


def test_lm_eval_tasks_with_data_parallel_need_ray_and_say_so_before_anything_loads(fake_vllm, tmp_path):
    events = fake_vllm()  # vLLM (the stand-in) is there; Ray is made absent in the child process
    code = "import sys; sys.modules['ray'] = None; from evalkit.cli import main; main()"
    args = ["run", "--backend", "vllm", "--data-parallel-size", "2", "--tasks", "arc_challenge"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: lm-eval tasks with --data-parallel-size > 1 need Ray") and "pip install ray" in line
    assert events("engine_start") == [] and not (tmp_path / "out").exists()


def test_lm_eval_on_vllm_without_ray_or_vllm_is_one_clear_error(monkeypatch):
    from evalkit.config import RunConfig
    from evalkit.openllm import harness

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "vllm", None)
    one_engine = RunConfig(model=None, tasks=("arc_challenge",), backend="vllm")
    with pytest.raises(ModelError, match=r"need vLLM on a CUDA machine: pip install 'evalkit\[vllm\]'"):
        harness.check_lm_eval_runtime(one_engine)
    harness.check_lm_eval_runtime(RunConfig(model=None, tasks=("arc_challenge",)))  # hf: neither needed
    # Should the check be skipped, lm-eval's ImportError still ends as one line, not a traceback.
    harness._load_lm.cache_clear()
    with pytest.raises(ModelError, match="lm-eval's vllm model cannot be loaded here"):
        harness.evaluate(harness.LmEvalPlan(["arc_challenge"], 25, "hub"), ("vllm", {"pretrained": "m"}), None, 0)


def test_lm_eval_on_vllm_gets_the_dtype_and_settings_of_evalkits_vllm_backend():
    from evalkit.openllm.harness import lm_eval_model

    options = BackendOptions(tensor_parallel_size=2, data_parallel_size=1, max_model_len=4096)
    name, args = lm_eval_model(VLLMBackend(None, options), batch_size=8, seed=0)
    assert name == "vllm" and args["dtype"] == "bfloat16" and args["tensor_parallel_size"] == 2
    assert args["data_parallel_size"] == 1 and args["max_model_len"] == 4096
    _, args = lm_eval_model(VLLMBackend(None, options, ModelOptions(dtype="float16")), batch_size=8, seed=0)
    assert args["dtype"] == "float16"


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
    events = fake_vllm()
    out = tmp_path / "out"
    args = ["--tasks", "smoke_arithmetic", "--limit", "4", "--n", "2", "--max-tokens", "16", "--quiet"]
    vllm_args = ["--backend", "vllm", "--data-parallel-size", "2", "--run-id", "vllm"]
    vllm_run = cli(
        "run", *args, *vllm_args, "--output-dir", str(out), "--cache-dir", str(tmp_path / "c1"),
        env={"CUDA_VISIBLE_DEVICES": "0,1"},
    )  # fmt: skip
    assert vllm_run.returncode == 0, vllm_run.stderr
    hf_run = cli("run", *args, "--output-dir", str(out), "--run-id", "hf", "--cache-dir", str(tmp_path / "c2"))
    assert hf_run.returncode == 0, hf_run.stderr
    results = json.loads((out / "vllm" / "results.json").read_text())
    assert results["backend"] == "vllm" and results["config"]["backend_options"]["data_parallel_size"] == 2
    assert results["tasks"]["smoke_arithmetic"]["n_docs"] == 4
    compared = cli("compare", str(out / "hf"), str(out / "vllm"), "--json")
    assert compared.returncode == 0, compared.stderr
    rows = {r["metric"]: r for r in json.loads(compared.stdout)["rows"]}
    assert set(rows) == {"accuracy", "any_correct", "ngram_diversity"}
    # accuracy of each run from its own samples: the extracted number against the shipped gold.
    golds = [json.loads(line)["answer"] for line in (REPO / "tasks/data/smoke_arithmetic.jsonl").open()]
    accuracy = {}
    for run in ("hf", "vllm"):
        samples = [json.loads(line) for line in (out / run / "samples.jsonl").read_text().splitlines()]
        per_doc = [
            [s["scores"]["extracted"] is not None and Decimal(s["scores"]["extracted"]) == Decimal(golds[i]) for s in d]
            for i, d in enumerate(by_document(samples, "smoke_arithmetic"))
        ]
        accuracy[run] = mean(100 * mean(d) for d in per_doc)
    assert rows["accuracy"]["values"] == pytest.approx([accuracy["hf"], accuracy["vllm"]], abs=1e-9)
    assert rows["accuracy"]["deltas"] == pytest.approx([accuracy["vllm"] - accuracy["hf"]], abs=1e-9)
    assert len(events("engine_ready")) == 2


def test_each_sample_keeps_vllms_finish_reason_and_token_count(fake_vllm, monkeypatch):
    """CompletionOutput.finish_reason ("stop", "length", "abort") and len(token_ids) reach the
    samples; the stand-in cuts its 7-word answers at max_tokens as vLLM does."""
    fake_vllm()
    prompt = VLLMBackend(None, BackendOptions()).render([{"role": "user", "content": "Add 3 and 4."}])
    whole = VLLMBackend(None, BackendOptions()).generate_samples(_batch([prompt], SamplingConfig(n=2, seed=1)))[0]
    assert [(s.finish_reason, s.tokens) for s in whole] == [("stop", 7), ("stop", 7)]
    cut = VLLMBackend(None, BackendOptions()).generate_samples(_batch([prompt], SamplingConfig(n=2, max_tokens=3)))
    assert [(s.finish_reason, s.tokens, len(s.text.split())) for s in cut[0]] == [("length", 3, 3)] * 2
    seed = sample_seed(1, prompt, 0)
    monkeypatch.setenv("FAKE_VLLM_ABORT_SEEDS", str(seed + 1))  # vLLM aborted sample 1 midway
    aborted = VLLMBackend(None, BackendOptions()).generate_samples(_batch([prompt], SamplingConfig(n=2, seed=1)))
    assert [s.finish_reason for s in aborted[0]] == ["stop", "abort"]


def test_max_tokens_is_clamped_to_what_max_model_len_leaves(fake_vllm, capsys):
    events = fake_vllm()
    backend = VLLMBackend(None, BackendOptions(max_model_len=64))
    prompt = "a short prompt"
    length = len(backend.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    backend.generate(_batch([prompt], SamplingConfig(max_tokens=10**12)))
    assert events("request")[0]["params"]["max_tokens"] == 64 - length
    assert "max_tokens 1000000000000 is more than vLLM's max_model_len of 64" in capsys.readouterr().err


def test_a_vllm_run_writes_finish_reasons(cli, fake_vllm, tmp_path):
    fake_vllm()
    args = ["--tasks", "smoke_arithmetic", "--limit", "2", "--n", "2", "--max-tokens", "4", "--quiet"]
    done = cli("run", *args, "--backend", "vllm", "--output-dir", str(tmp_path), "--run-id", "v", "--no-cache")
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in (tmp_path / "v" / "samples.jsonl").read_text().splitlines()]
    assert [s["finish_reason"] for s in samples] == ["length"] * 4
    results = json.loads((tmp_path / "v" / "results.json").read_text())
    assert results["tasks"]["smoke_arithmetic"]["finish_reasons"] == {"stop": 0, "length": 4}
    assert results["timing"]["tasks"]["smoke_arithmetic"]["generated_tokens"] == 16
