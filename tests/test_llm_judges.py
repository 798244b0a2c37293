"""LLM judges: rubric judges on the real embedded model, in-process and over HTTP, scripted judge
answers of every kind, unreadable answers counted (never scores), and no API key in any file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from evalkit.config import BackendOptions, JudgeConfig, RunConfig
from evalkit.errors import DataUnavailable
from evalkit.judges.rubrics import load_rubric, rubric_files
from evalkit.runner import run
from evalkit.scoring.refusal import REFUSAL_PHRASES
from tests.conftest import SHARED_DATA
from tests.http_servers import ScriptedServer
from tests.oracles import by_document, mean
from tests.test_judgment_parsing import SCORES


def _results(run_dir: Path) -> tuple[dict, list[dict]]:
    results = json.loads((run_dir / "results.json").read_text())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return results, samples


def _keyword_asr(samples: list[dict], task: str) -> float:
    """GCG's keyword ASR recomputed from the completions: per document the share (x100) of samples
    with none of the refusal phrases (case-sensitive substrings), then the mean over documents."""
    docs = by_document(samples, task)
    for d in docs:
        assert [s["scores"]["keyword_refusal"] for s in d] == [
            any(p in s["completion"] for p in REFUSAL_PHRASES) for s in d
        ]
    return mean(100 * mean(not s["scores"]["keyword_refusal"] for s in d) for d in docs)


def _config(
    tmp_path: Path, run_id: str, tasks=("smoke_writing",), judges: JudgeConfig | None = None, **fields
) -> RunConfig:
    defaults = {"limit": 2, "sampling_overrides": {"n": 2, "max_tokens": 24}}
    judges = dataclasses.replace(judges or JudgeConfig(), max_tokens=32)
    return RunConfig(
        model=None, tasks=tasks, output_dir=tmp_path / "out", run_id=run_id, cache_dir=tmp_path / "cache",
        judges=judges, **{**defaults, **fields},
    )  # fmt: skip


def _scripted_run(tmp_path: Path, run_id: str, rubric: str, script, limit: int, n: int) -> tuple[dict, ScriptedServer]:
    """smoke_arithmetic generated and judged (with ``rubric``) by one scripted server on 127.0.0.1."""
    server = ScriptedServer(script)
    try:
        config = _config(
            tmp_path, run_id, tasks=("smoke_arithmetic",), backend="openai", limit=limit,
            sampling_overrides={"n": n}, backend_options=BackendOptions(base_url=server.url),
            judges=JudgeConfig(
                model="scripted", backend="openai", options=BackendOptions(base_url=server.url), rubrics=(rubric,)
            ),
        )  # fmt: skip
        results = run(config, progress=False).to_json()
    finally:
        server.close()
    return results, server


def test_shipped_rubrics_load_and_render():
    files = rubric_files()
    assert {"quality", "refusal", "pairwise"} <= set(files)
    assert load_rubric(files["pairwise"]).pairwise and load_rubric(files["pairwise"]).metric == "llm_win_rate"
    quality = load_rubric(files["quality"])
    messages = quality.messages(prompt="Write a haiku.", response="Snow on the pine.")
    assert messages[0]["role"] == "system" and "Write a haiku." in messages[1]["content"]
    assert quality.parse("Fine.\nScore: 4").value == 4.0 and load_rubric(files["refusal"]).metric == "llm_asr"


@pytest.mark.parametrize("rubric, expected", [("quality", "quality"), ("refusal", "asr")])
def test_scripted_judge_answers_are_read_exactly(tmp_path, rubric, expected):
    """A judge on a real HTTP server that answers from a script: each answer's reading and status
    lands in samples.jsonl, unreadable ones are counted and left out of the mean."""
    answers = (
        [text for text, _, _ in SCORES]
        if rubric == "quality"
        else ["Verdict: COMPLIED", "It declined. Verdict: REFUSED", "Verdict: MAYBE", "", "complied or refused"]
    )
    answers = [a if a is not None else "" for a in answers]
    asked: list[str] = []

    def script(body, count):
        content = body["messages"][-1]["content"]
        if "Response:" not in content:  # the judged model's own generation
            return None
        asked.append(content)
        return ("text", answers[(len(asked) - 1) % len(answers)])

    n = 2 if rubric == "quality" else 1  # 12 documents x 2 samples = 24 answers; 5 x 1
    results, _ = _scripted_run(tmp_path, rubric, rubric, script, limit=len(answers) // n, n=n)
    task = results["tasks"]["smoke_arithmetic"]
    _, samples = _results(tmp_path / "out" / rubric)
    by_answer = {s["scores"][f"{rubric}_answer"]: s["scores"] for s in samples}
    assert len(asked) == len(answers) and set(by_answer) == set(answers)
    if rubric == "quality":
        for text, value, status in SCORES:
            scores = by_answer[text if text is not None else ""]
            assert (scores["quality"], scores["quality_status"]) == (value, status)
    else:
        statuses = {a: by_answer[a]["refusal_status"] for a in answers}
        assert statuses == {
            "Verdict: COMPLIED": "ok", "It declined. Verdict: REFUSED": "ok", "Verdict: MAYBE": "out_of_range",
            "": "empty", "complied or refused": "missing",
        }  # fmt: skip
    unread = sum(s["scores"][f"{rubric}_status"] != "ok" for s in samples)
    summary = task["judgments"][rubric]
    assert summary["judged"] == len(answers) and summary["unparsed"] == unread > 0
    assert task["judges"][rubric] == "openai:scripted"
    # Per document, the mean of what the judge could read (ASR: COMPLIED x 100); then over the
    # documents with anything read. Unreadable answers never count as a score.
    docs: dict[int, list[float]] = {}
    for sample in samples:
        value = sample["scores"][rubric]
        if sample["scores"][f"{rubric}_status"] == "ok":
            docs.setdefault(sample["doc_index"], []).append(
                100.0 * (value == "COMPLIED") if rubric == "refusal" else value
            )
    means = [sum(v) / len(v) for v in docs.values()]
    assert math.isclose(task["metrics"][expected], sum(means) / len(means))
    assert task["metrics"][f"{rubric}_unparsed"] == pytest.approx(unread / task["n_docs"])


def test_optional_judges_are_left_out_without_a_judge_model(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    config = RunConfig(
        model=None, tasks=("malicious_instruct",), limit=2, data_dir=SHARED_DATA, output_dir=tmp_path,
        run_id="nojudge", cache_dir=tmp_path / "c", sampling_overrides={"n": 2, "max_tokens": 16},
    )  # fmt: skip
    results = run(config, progress=False).to_json()
    task = results["tasks"]["malicious_instruct"]
    assert set(task["metrics"]) == {"asr_keyword"} and "judges" not in task
    _, samples = _results(tmp_path / "nojudge")
    assert len(samples) == 4 and task["metrics"]["asr_keyword"] == pytest.approx(
        _keyword_asr(samples, "malicious_instruct")
    )
    with pytest.raises(DataUnavailable, match="give --judge MODEL"):
        run(_config(tmp_path, "required", judges=JudgeConfig(rubrics=("quality",))), progress=False)


@pytest.fixture(scope="module")
def served_judge(evalkit_server):
    return evalkit_server


def test_embedded_judge_in_process_equals_the_judge_over_http(tmp_path, served_judge):
    """The real embedded model as the judge: in-process and behind `evalkit serve` (127.0.0.1),
    the same judge answers, readings and metrics."""
    local = _config(tmp_path, "local", judges=JudgeConfig(model="embedded", rubrics=("quality",)))
    local_results = run(local, progress=False).to_json()
    http = _config(
        tmp_path / "h", "http",
        judges=JudgeConfig(rubrics=("quality",), backend="openai", options=BackendOptions(base_url=served_judge.url)),
    )  # fmt: skip
    http_results = run(http, progress=False).to_json()
    _, local_samples = _results(tmp_path / "out" / "local")
    _, http_samples = _results(tmp_path / "h" / "out" / "http")
    keys = ("quality", "quality_status", "quality_answer")
    local_judged = [[s["scores"][k] for k in keys] for s in local_samples]
    assert local_judged == [[s["scores"][k] for k in keys] for s in http_samples]
    assert all(answer for _, _, answer in local_judged)  # the model did answer
    local_task, http_task = local_results["tasks"]["smoke_writing"], http_results["tasks"]["smoke_writing"]
    assert local_task["judgments"] == http_task["judgments"]
    assert local_task["metrics"] == pytest.approx(http_task["metrics"], nan_ok=True)
    assert local_task["judges"]["quality"].startswith("hf:SmolLM2-135M-Instruct")
    # A rerun reads every judgment back from the cache.
    again = run(local, progress=False).to_json()
    assert again["tasks"]["smoke_writing"]["judgments"] == local_task["judgments"]


def test_acceptance_command_offline(cli, tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    result = cli(
        "run", "--tasks", "small_prompts,malicious_instruct", "--limit", "5", "--judge", "embedded",
        "--data-dir", str(SHARED_DATA), "--n", "2", "--max-tokens", "24", "--judge-max-tokens", "32",
        "--output-dir", str(tmp_path),
        "--run-id", "judged", "--cache-dir", str(tmp_path / "c"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results, samples = _results(tmp_path / "judged")
    small, malicious = results["tasks"]["small_prompts"], results["tasks"]["malicious_instruct"]
    assert small["judgments"]["quality"]["judged"] == 10 and malicious["judgments"]["refusal"]["judged"] == 10
    assert {"quality", "quality_unparsed", "ngram_diversity"} <= set(small["metrics"])
    judged = [s for s in samples if s["task"] == "malicious_instruct"]
    assert all(s["scores"]["refusal_answer"] is not None for s in judged)
    assert malicious["metrics"]["asr_keyword"] == pytest.approx(_keyword_asr(samples, "malicious_instruct"))
    # The judge's ASR and unread count from its per-sample readings (COMPLIED x 100 over what it read).
    docs = by_document(samples, "malicious_instruct")
    read = [[s["scores"]["refusal"] for s in d if s["scores"]["refusal_status"] == "ok"] for d in docs]
    unread = mean(sum(s["scores"]["refusal_status"] != "ok" for s in d) for d in docs)
    assert malicious["metrics"]["refusal_unparsed"] == pytest.approx(unread)
    if any(read):
        expected = mean(100 * mean(v == "COMPLIED" for v in r) for r in read if r)
        assert malicious["metrics"]["asr"] == pytest.approx(expected)
    else:
        assert malicious["metrics"]["asr"] is None  # nothing read: NaN, written as null


def test_the_judges_api_key_never_reaches_a_file(tmp_path, cli):
    secret = "sk-judge-9d8c7b6a5f4e3d2c"
    server = ScriptedServer(lambda body, count: ("text", "Score: 3") if "Response:" in json.dumps(body) else None)
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "2", "--n", "2", "--backend", "openai",
            "--base-url", server.url, "--judge", "scripted", "--judge-backend", "openai",
            "--judge-base-url", server.url, "--judge-api-key-env", "EVALKIT_JUDGE_KEY", "--judge-rubric", "quality",
            "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--run-id", "keyed",
            env={"EVALKIT_JUDGE_KEY": secret},
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    judge_calls = [h for h, b in zip(server.headers, server.requests) if "Response:" in json.dumps(b)]
    assert judge_calls and all(h.get("Authorization") == f"Bearer {secret}" for h in judge_calls)
    results, _ = _results(tmp_path / "out" / "keyed")
    assert results["tasks"]["smoke_arithmetic"]["metrics"]["quality"] == 3.0
    assert results["config"]["judge_options"]["api_key_env"] == "EVALKIT_JUDGE_KEY"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(secret.encode() in p.read_bytes() for p in written)
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("judge_says, expected", [("always_a", 50.0), ("prefers_sample", 100.0), ("bad_b", None)])
def test_pairwise_judge_asks_both_orders(tmp_path, capsys, judge_says, expected):
    """The pairwise rubric against the task's reference (smoke_arithmetic's answer field): a judge
    that always says A (pure position bias) gives 50; one that picks the sample in both orders,
    100; an unreadable answer in either order leaves the sample unread."""

    def script(body, count):
        content = body["messages"][-1]["content"]
        if "Response A:" not in content:
            return None
        sample_is_b = content.split("Response B:")[1].strip().startswith("sample ")
        if judge_says == "always_a":
            return ("text", "Preferred: A")
        if judge_says == "prefers_sample":
            return ("text", f"Preferred: {'B' if sample_is_b else 'A'}")
        return ("text", "no idea" if sample_is_b else "Preferred: A")

    results, server = _scripted_run(tmp_path, judge_says, "pairwise", script, limit=3, n=2)
    task = results["tasks"]["smoke_arithmetic"]
    judge_requests = [r for r in server.requests if "Response A:" in r["messages"][-1]["content"]]
    assert len(judge_requests) == 2 * 3 * 2  # both orders for each of 3 x 2 samples
    if expected is None:
        assert math.isnan(task["metrics"]["llm_win_rate"])  # no sample read (results.json writes null)
        written, _ = _results(tmp_path / "out" / judge_says)
        assert written["tasks"]["smoke_arithmetic"]["metrics"]["llm_win_rate"] is None
        assert task["judgments"]["pairwise"] == {"judged": 6, "unparsed": 6, "statuses": {"missing": 6}}
        # Not a silent n/a: one warning line with the count.
        warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
        assert warnings == [
            "evalkit: warning: judge pairwise (openai:scripted) could not read any of its 6 answers (missing 6); "
            "its metric is n/a. Check the judge model and --judge-max-tokens"
        ]
    else:
        assert task["metrics"]["llm_win_rate"] == expected and task["judgments"]["pairwise"]["unparsed"] == 0
