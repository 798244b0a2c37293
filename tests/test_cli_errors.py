"""Bad inputs end in one line on stderr, exit code 2, no traceback, no result files, cache intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evalkit.cache import GenerationCache


@pytest.fixture
def workspace(tmp_path):
    """An output folder, a generation cache with one entry, and a folder of user task files."""
    cache_dir = tmp_path / "cache"
    cache = GenerationCache(cache_dir / "generations.sqlite")
    cache.put_many([("key", "a finished sample")])
    cache.close()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "latin1.jsonl").write_bytes('{"title": "café"}\n'.encode("latin-1"))
    (tasks / "needs_local.yaml").write_text(
        "data: {local: titles.jsonl}\nprompt: {template: '{{ title }}'}\nmetrics: [ngram_diversity]\n"
    )
    (tasks / "latin1.yaml").write_text(
        "data: {local: latin1.jsonl}\nprompt: {template: '{{ title }}'}\nmetrics: [ngram_diversity]\n"
    )
    (tasks / "missing_file.yaml").write_text(
        "data: {path: nowhere.jsonl}\nprompt: {template: '{{ title }}'}\nmetrics: [ngram_diversity]\n"
    )
    return tmp_path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


BAD_INPUTS = {
    "missing model path": (["--model", "./no/such/model", "--tasks", "smoke_writing"], "model path not found"),
    "hub id while offline": (["--model", "someorg/somemodel", "--tasks", "smoke_writing"], "hub is offline"),
    "unknown task": (["--tasks", "smoke_writting"], "unknown task 'smoke_writting'; did you mean 'smoke_writing'?"),
    "unknown suite": (["--suite", "smokey"], "unknown suite 'smokey'; did you mean 'smoke'?"),
    "negative n": (["--suite", "smoke", "--n", "-1"], "n must be >= 1"),
    "negative temperature": (["--suite", "smoke", "--temperature", "-0.5"], "temperature must be >= 0"),
    "top-p above one": (["--suite", "smoke", "--top-p", "1.5"], "top_p must be in (0, 1]"),
    "zero max tokens": (["--suite", "smoke", "--max-tokens", "0"], "max_tokens must be >= 1"),
    "non-numeric n": (["--suite", "smoke", "--n", "many"], "'many' is not a valid integer"),
    "zero limit": (["--suite", "smoke", "--limit", "0"], "limit must be >= 1"),
    "unknown backend": (["--suite", "smoke", "--backend", "hff"], "unknown backend 'hff'; did you mean 'hf'?"),
    "missing data dir file": (["--tasks", "needs_local", "--data-dir", "{data}"], "data file not found"),
    "no data offline": (["--tasks", "needs_local"], "no data available offline"),
    "missing shipped file": (["--tasks", "missing_file"], "data file not found"),
    "non-UTF-8 data": (["--tasks", "latin1", "--data-dir", "{data}"], "not valid UTF-8"),
    "malformed task YAML": (["--tasks", "broken"], "not valid YAML"),
    "prompt style of no task": (["--suite", "smoke", "--prompt-style", "boxed"], "none of the tasks has prompt styles"),
    "unknown prompt style": (
        ["--tasks", "gsm8k", "--prompt-style", "boxd", "--data-dir", "{data}"],
        "unknown prompt style 'boxd'; did you mean 'boxed'?",
    ),
    "output dir is a file": (["--suite", "smoke", "--output-dir", "{blocker}/out"], "is not writable"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(cli, workspace, case):
    args, message = BAD_INPUTS[case]
    (workspace / "blocker").write_text("a file, not a folder")
    if case == "malformed task YAML":
        (workspace / "tasks" / "broken.yaml").write_text("data: {path: x.jsonl\nprompt: [\n")
    args = [a.format(data=workspace / "data", blocker=workspace / "blocker") for a in args]
    before = _digest(workspace / "cache")
    out = workspace / "results"
    if "--output-dir" not in args:
        args += ["--output-dir", str(out)]
    result = cli(
        "run", *args, "--cache-dir", str(workspace / "cache"), "--task-dir", str(workspace / "tasks"), "--quiet"
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists() or not any(out.rglob("*.json*"))
    assert _digest(workspace / "cache") == before


def test_other_verbs_exist_with_help(cli):
    for verb in ("run", "list", "compare", "check", "report", "train"):
        result = cli(verb, "--help")
        assert result.returncode == 0 and "Usage: evalkit " + verb in result.stdout


def test_compare_of_missing_runs_is_a_clear_error(cli, tmp_path):
    result = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 2 and result.stderr.startswith("error: no results found")


def test_list_shows_tasks_and_suites(cli):
    result = cli("list")
    assert result.returncode == 0
    assert "smoke_writing" in result.stdout and "smoke_arithmetic" in result.stdout and "smoke" in result.stdout
