"""The OpenAI-compatible backend against real servers on 127.0.0.1: `evalkit serve` (the same
samples as in-process generation) and scripted servers that fail, hang or garble."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from evalkit.backends.base import Sample
from evalkit.backends.openai import OpenAIBackend, choice_samples, choice_texts, request_body
from evalkit.config import BackendOptions, RunConfig, SamplingConfig
from evalkit.errors import ConfigError, EvalkitError
from evalkit.runner import run
from tests.conftest import SMOKE_ARGS
from tests.http_servers import ScriptedServer, canned_text
from tests.test_compare_trust import measured

SMOKE = [*SMOKE_ARGS, "--seed", "7"]  # the session's smoke run (smoke_run)


def _load(run_dir: Path) -> tuple[dict, list[dict]]:
    results = json.loads((run_dir / "results.json").read_text())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return results, samples


@pytest.fixture(scope="module")
def served(evalkit_server):
    return evalkit_server


def test_http_run_reproduces_in_process_samples_and_compares(cli, served, smoke_run, tmp_path):
    """The session's in-process smoke run (seed 7), run again through `evalkit serve`."""
    out = tmp_path / "out"
    http = cli(
        "run", *SMOKE, "--output-dir", str(out), "--run-id", "http", "--cache-dir", str(tmp_path / "c2"),
        "--backend", "openai", "--base-url", served.url, "--concurrency", "3",
    )  # fmt: skip
    assert http.returncode == 0, http.stderr
    local_results, local_samples = _load(smoke_run.run_dir)
    http_results, http_samples = _load(out / "http")
    assert http_results["backend"] == "openai" and http_results["model"] == "SmolLM2-135M-Instruct"
    key = [(s["task"], s["doc_index"], s["sample_index"]) for s in local_samples]
    assert key == [(s["task"], s["doc_index"], s["sample_index"]) for s in http_samples]
    # Sampled (T > 0), not only greedy: the server draws sample i with the same per-sample seed.
    assert [s["completion"] for s in http_samples] == [s["completion"] for s in local_samples]
    assert measured(http_results["tasks"]) == measured(local_results["tasks"])  # the same, measured another way
    compared = cli("compare", str(smoke_run.run_dir), str(out / "http"), "--json")
    assert compared.returncode == 0, compared.stderr
    shown = json.loads(compared.stdout)
    rows = shown["rows"]
    assert rows and all(d == 0 for r in rows for d in r["deltas"] if d is not None)
    assert {v for r in rows for v in r["verdicts"]} == {"n/a"}  # 3 paired documents: too few for a verdict
    assert all('backend "hf" vs "openai"' in c["how"] for c in shown["comparability"])


def test_greedy_over_http_equals_in_process(served, tmp_path):
    def config(backend: str, cache: str) -> RunConfig:
        return RunConfig(
            model=None, tasks=("smoke_arithmetic",), backend=backend, limit=2, output_dir=tmp_path,
            run_id=backend, cache_dir=tmp_path / cache, sampling_overrides={"temperature": 0, "n": 3, "max_tokens": 24},
            backend_options=BackendOptions(base_url=served.url),
        )  # fmt: skip

    local = run(config("hf", "a"), progress=False).to_json()
    http = run(config("openai", "b"), progress=False).to_json()
    assert measured(http["tasks"]) == measured(local["tasks"])
    _, http_samples = _load(tmp_path / "openai")
    _, local_samples = _load(tmp_path / "hf")
    assert [s["completion"] for s in http_samples] == [s["completion"] for s in local_samples]


def test_serve_rejects_bad_requests_with_400(served):
    import requests

    bad = [
        {"messages": []},
        {"messages": [{"role": "user", "content": "hi"}], "temperature": -1},
        {"messages": [{"role": "user", "content": "hi"}], "model": "another-model"},
    ]
    for body in bad:
        response = requests.post(served.url + "/chat/completions", json=body, timeout=60)
        assert response.status_code == 400 and response.json()["error"]["message"]
    response = requests.post(served.url + "/chat/completions", data=b"{not json", timeout=60)
    assert response.status_code == 400


def test_serve_says_why_each_sample_ended(served):
    """finish_reason: "length" when max_tokens cut the sample, "stop" when EOS or a stop string
    ended it (the generated tokens, not a re-tokenized count, decide)."""
    import requests

    def ask(**sampling) -> list[dict]:
        body = {"messages": [{"role": "user", "content": "Count from 1 to 20."}], "n": 2, "seed": 3, **sampling}
        response = requests.post(served.url + "/chat/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return response.json()["choices"]

    assert [c["finish_reason"] for c in ask(max_tokens=2)] == ["length", "length"]
    stopped = ask(max_tokens=64, stop=["1"], temperature=0)
    assert [c["finish_reason"] for c in stopped] == ["stop", "stop"] and "1" not in stopped[0]["message"]["content"]


def test_finish_reasons_come_from_the_choices():
    payload = {
        "choices": [
            {"index": 1, "text": "b", "finish_reason": "length"},
            {"index": 0, "text": "a", "finish_reason": "stop"},
        ],
        "usage": {"completion_tokens": 9},
    }
    assert choice_samples("completions", payload) == [Sample("a", "stop"), Sample("b", "length")]
    one = {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 4}}
    assert choice_samples("chat", one) == [Sample("x", "stop", 4)]
    assert choice_samples("chat", {"choices": [{"message": {"content": "x"}}]}) == [Sample("x", None)]


def test_an_http_run_records_the_servers_finish_reasons(served, tmp_path):
    config = RunConfig(
        model=None, tasks=("smoke_arithmetic",), backend="openai", limit=2, output_dir=tmp_path, run_id="r",
        cache_dir=tmp_path / "c", sampling_overrides={"n": 2, "max_tokens": 2},
        backend_options=BackendOptions(base_url=served.url),
    )  # fmt: skip
    result = run(config, progress=False).to_json()
    _, samples = _load(tmp_path / "r")
    assert [s["finish_reason"] for s in samples] == ["length"] * 4
    assert result["tasks"]["smoke_arithmetic"]["finish_reasons"] == {"stop": 0, "length": 4}


def _config(tmp_path: Path, url: str, run_id: str, **options) -> RunConfig:
    return RunConfig(
        model=None, tasks=("smoke_arithmetic",), backend="openai", limit=6, output_dir=tmp_path / "out",
        run_id=run_id, cache_dir=tmp_path / "cache", sampling_overrides={"n": 3, "max_tokens": 16},
        backend_options=BackendOptions(base_url=url, retry_backoff=0.01, **options),
    )  # fmt: skip


def test_server_errors_are_retried_until_it_recovers(tmp_path):
    server = ScriptedServer(lambda body, count: ("status", 503 if count % 2 else 500) if count <= 4 else None)
    try:
        results = run(_config(tmp_path, server.url, "flaky", concurrency=2), progress=False).to_json()
    finally:
        server.close()
    assert results["tasks"]["smoke_arithmetic"]["n_docs"] == 6 and results["cache"]["generated"] == 18
    # 6 prompts, one request each carrying n = 3, plus the 4 failed attempts.
    assert len(server.requests) == 10 and all(r["n"] == 3 for r in server.requests)
    _, samples = _load(tmp_path / "out" / "flaky")
    assert len({s["completion"] for s in samples}) == 18
    assert all(s["scores"]["extracted"] == "7" for s in samples)  # every canned text answers 7


@pytest.mark.parametrize("failure", [("hang", 3.0), ("garble",), ("status", 502)])
def test_a_failing_prompt_keeps_the_finished_samples(tmp_path, cli, failure):
    """One prompt's requests keep failing: the run ends with one line and exit 2, the other
    prompts' samples are in the cache, and a rerun against a healthy server asks only for it."""
    poisoned = "Tom has 3 apples"  # the first document of smoke_arithmetic

    def script(body, count):
        return failure if poisoned in json.dumps(body) else None

    server = ScriptedServer(script)
    args = [
        "run", "--tasks", "smoke_arithmetic", "--limit", "6", "--n", "3", "--quiet", "--backend", "openai",
        "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--request-timeout", "0.5", "--max-retries", "1",
    ]  # fmt: skip
    try:
        failed = cli(*args, "--base-url", server.url, "--run-id", "failed")
    finally:
        server.close()
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and len(failed.stderr.strip().splitlines()) == 1
    assert "failed 2 times" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "out" / "failed").exists()
    with sqlite3.connect(tmp_path / "cache" / "generations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 15  # 5 prompts x 3

    healthy = ScriptedServer()
    try:
        again = cli(*args, "--base-url", healthy.url, "--run-id", "again")
    finally:
        healthy.close()
    assert again.returncode == 0, again.stderr
    results, _ = _load(tmp_path / "out" / "again")
    assert results["cache"] == {"hits": 15, "generated": 3}
    assert len(healthy.requests) == 1 and poisoned in json.dumps(healthy.requests[0])


def test_client_errors_fail_at_once_with_the_servers_message(tmp_path):
    server = ScriptedServer(lambda body, count: ("status", 400))
    try:
        with pytest.raises(EvalkitError, match="HTTP 400: scripted failure"):
            run(_config(tmp_path, server.url, "bad", max_retries=5), progress=False)
    finally:
        server.close()
    assert len(server.requests) <= 8  # no retries: at most the requests already in flight
    # The failed run closed its cache: SQLite removes the write-ahead log with the last connection.
    (cache,) = tmp_path.rglob("generations.sqlite")
    assert not cache.with_name(cache.name + "-wal").exists()


def test_a_server_that_ignores_n_is_asked_once_per_sample(tmp_path):
    server = ScriptedServer(lambda body, count: ("one_choice",))
    try:
        results = run(_config(tmp_path, server.url, "one", concurrency=1), progress=False).to_json()
    finally:
        server.close()
    assert results["cache"]["generated"] == 18
    per_sample = [r for r in server.requests if r["n"] == 1]
    assert len(per_sample) == 18 and len({r["seed"] for r in per_sample}) == 18


def test_the_api_key_never_leaves_the_header(tmp_path, cli):
    secret = "sk-test-4f1c2d9e8b7a6c5d"
    server = ScriptedServer()
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "2", "--n", "2", "--backend", "openai",
            "--base-url", server.url, "--api-key-env", "EVALKIT_TEST_KEY", "--output-dir", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--run-id", "keyed",
            env={"EVALKIT_TEST_KEY": secret},
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert all(h.get("Authorization") == f"Bearer {secret}" for h in server.headers)
    results, _ = _load(tmp_path / "out" / "keyed")
    assert results["config"]["backend_options"]["api_key_env"] == "EVALKIT_TEST_KEY"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(secret.encode() in p.read_bytes() for p in written)
    assert secret not in result.stdout + result.stderr
    missing = cli("run", "--tasks", "smoke_arithmetic", "--backend", "openai", "--base-url", server.url,
                  "--api-key-env", "EVALKIT_UNSET_KEY")  # fmt: skip
    assert missing.returncode == 2 and "EVALKIT_UNSET_KEY" in missing.stderr


def test_request_building():
    sampling = SamplingConfig(n=4, temperature=0.7, top_p=0.9, top_k=50, max_tokens=64, stop=("\n\n",), seed=5)
    chat = request_body("chat", "m", json.dumps([{"role": "user", "content": "hi"}]), sampling, 4, 5)
    assert chat == {
        "model": "m", "max_tokens": 64, "n": 4, "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.7, "top_p": 0.9, "seed": 5, "top_k": 50, "stop": ["\n\n"],
    }  # fmt: skip
    greedy = request_body("completions", "m", "2+2=", sampling.replace(temperature=0, top_k=0), 1, 0)
    assert greedy == {"model": "m", "max_tokens": 64, "n": 1, "prompt": "2+2=", "temperature": 0.0, "stop": ["\n\n"]}
    payload = {"choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}]}
    assert choice_texts("completions", payload) == ["a", "b"]
    assert canned_text("p", 1, 0) != canned_text("p", 2, 0)


def test_bad_backend_settings_are_one_line_errors(cli):
    with pytest.raises(ConfigError, match="needs --base-url"):
        OpenAIBackend(None, BackendOptions())
    for args, message in [
        (["--backend", "openai", "--base-url", "localhost:8000"], "must start with http"),
        (["--backend", "vlm"], "did you mean 'vllm'"),
        (
            ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"],
            "cannot list the models",
        ),
    ]:
        result = cli("run", "--tasks", "smoke_arithmetic", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_several_servers_share_the_requests_and_a_dead_one_is_routed_around(tmp_path):
    healthy, other = ScriptedServer(), ScriptedServer()
    try:
        results = run(_config(tmp_path, f"{healthy.url},{other.url}", "two", concurrency=2), progress=False).to_json()
        assert results["cache"]["generated"] == 18
        assert len(healthy.requests) == len(other.requests) == 3  # round-robin over 6 prompts
    finally:
        other.close()
    dead = ScriptedServer(lambda body, count: ("status", 503))
    try:
        results = run(
            _config(tmp_path / "b", f"{dead.url},{healthy.url}", "failover", concurrency=2), progress=False
        ).to_json()
    finally:
        dead.close()
        healthy.close()
    assert results["cache"]["generated"] == 18  # every request that hit the dead server was retried on the other
    assert len(dead.requests) >= 1 and len(healthy.requests) == 3 + 6
