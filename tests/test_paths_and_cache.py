"""Where a run writes, which task files it reads, and a damaged cache: each a clear `error:` line
(exit 2) before any model loads, with nothing written outside --output-dir and nothing of the
user's deleted or rewritten."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evalkit.cache import CorruptCache, GenerationCache
from evalkit.config import RunConfig
from evalkit.errors import ConfigError, EvalkitError
from evalkit.results import ensure_writable
from evalkit.tasks import task_registry

NO_MODEL = ("--model", "./no/such/model")  # a run that got past the check would fail on the model instead


def _one_error_line(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# Run ids stay inside --output-dir -------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_id",
    ["../../x", "..", "../x", "a/../../b", "/abs/path", "/tmp/evalkit-run", "a/b", "a\\b", "x..y", ".hidden", "a\x00b"]
    + ["", " ", "tab\there", "x" * 201],
)
def test_run_ids_that_leave_the_output_dir_are_refused(run_id):
    with pytest.raises(ConfigError, match="run id"):
        RunConfig(model=None, tasks=("smoke_arithmetic",), run_id=run_id)


@pytest.mark.parametrize("run_id", ["run-1", "gem_b0.7", "2026-11-27.ce", "Run A"])
def test_ordinary_run_ids_are_accepted(run_id):
    assert RunConfig(model=None, tasks=("smoke_arithmetic",), run_id=run_id).run_id == run_id


@pytest.mark.parametrize("run_id", ["../../x", "{tmp}/abs", "sub/run"])
def test_cli_run_id_outside_the_output_dir_is_one_error_line(cli, tmp_path, run_id):
    out = tmp_path / "a" / "b" / "out"
    result = cli(
        "run", "--tasks", "smoke_arithmetic", "--output-dir", str(out), "--run-id", run_id.format(tmp=tmp_path),
        *NO_MODEL, "--no-cache", cwd=tmp_path,
    )  # fmt: skip
    line = _one_error_line(result)
    assert "run id" in line and "inside --output-dir" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], "nothing is written anywhere"


# The output folder is written to before anything runs ------------------------------------------------


@pytest.mark.parametrize("folder", ["/proc/x", "/proc/self/evalkit", "/sys/evalkit-out", "{file}/out", "{file}"])
def test_an_output_dir_that_cannot_be_written_fails_before_the_model_loads(cli, tmp_path, folder):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli(
        "run", "--tasks", "smoke_arithmetic", "--output-dir", folder.format(file=blocker), *NO_MODEL, "--no-cache",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    line = _one_error_line(result)
    assert "is not writable" in line and "model path not found" not in line, line


def test_the_probe_writes_and_leaves_nothing(tmp_path):
    ensure_writable(tmp_path / "new" / "deeper", "run-1")
    assert list(tmp_path.iterdir()) == []  # the folders it made for the probe are gone again
    (tmp_path / "kept").mkdir()
    ensure_writable(tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []
    with pytest.raises(EvalkitError, match="output dir /proc/x is not writable"):
        ensure_writable(Path("/proc/x"))


# A --task-dir file named like a built-in task ---------------------------------------------------------


def _shadowing_task(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    data = folder / "mine.jsonl"
    data.write_text('{"question": "2+2?", "answer": "4"}\n')
    path = folder / "smoke_arithmetic.yaml"
    path.write_text(
        f"description: my own arithmetic\ndata: {{path: {data}}}\nanswer_field: answer\n"
        "prompt: {template: '{{ question }}'}\nmetrics: [numeric_exact_match]\n"
    )
    return path


def test_a_task_dir_file_named_like_a_built_in_task_is_an_error_naming_both(tmp_path):
    mine = _shadowing_task(tmp_path / "tasks")
    with pytest.raises(ConfigError) as caught:
        task_registry(tmp_path / "tasks")
    message = str(caught.value)
    assert str(mine) in message and "tasks/smoke_arithmetic.yaml" in message and "--override-tasks" in message
    registry = task_registry(tmp_path / "tasks", override=True)
    assert registry.get("smoke_arithmetic").source_file == mine
    assert registry.get("smoke_arithmetic").description == "my own arithmetic"


def test_two_task_dirs_with_the_same_task_are_an_error_unless_overridden(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.yaml").write_text(
            f"description: {name}\ndata: {{path: x.jsonl}}\nprompt: {{template: 'x'}}\nmetrics: [ngram_diversity]\n"
        )
    with pytest.raises(ConfigError, match=r"one/mine.yaml"):
        task_registry(tmp_path / "one", tmp_path / "two")
    assert task_registry(tmp_path / "one", tmp_path / "two", override=True).get("mine").description == "two"
    assert task_registry(tmp_path / "one", tmp_path / "one").get("mine").description == "one"  # the same file


def test_cli_task_dir_shadowing_a_built_in_task(cli, tmp_path):
    mine = _shadowing_task(tmp_path / "tasks")
    args = ("--tasks", "smoke_arithmetic", "--task-dir", str(tmp_path / "tasks"), "--output-dir", str(tmp_path / "o"))
    line = _one_error_line(cli("run", *args, *NO_MODEL, "--no-cache"))
    assert str(mine) in line and "smoke_arithmetic.yaml" in line.replace(str(mine), "") and "--override-tasks" in line
    # With the opt-in the user's file is the task: the run goes on to the model (which is missing here).
    line = _one_error_line(cli("run", *args, "--override-tasks", *NO_MODEL, "--no-cache"))
    assert "model path not found" in line
    listed = cli("list", "--task-dir", str(tmp_path / "tasks"), "--override-tasks", env={"COLUMNS": "300"})
    assert listed.returncode == 0 and "my own arithmetic" in listed.stdout


# A damaged generation cache -------------------------------------------------------------------------


def _real_cache(folder: Path) -> Path:
    path = folder / "generations.sqlite"
    cache = GenerationCache(path)
    cache.put_many((f"sample-{i}", f"completion {i} " * 20) for i in range(3000))
    cache.put_many(((f"prompt-{i}", f"prompt {i}") for i in range(300)), table="prompts")
    cache.close()
    return path


def _damage(path: Path, at: int = 4096) -> str:
    data = bytearray(path.read_bytes())
    data[at : at + 512] = b"garbage!" * 64
    path.write_bytes(bytes(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("at", [0, 4096])
def test_a_damaged_cache_is_named_and_left_as_it_is(tmp_path, at):
    path = _real_cache(tmp_path)
    digest = _damage(path, at)
    with pytest.raises(CorruptCache) as caught:
        GenerationCache(path)
    message = str(caught.value)
    assert str(path) in message and "--no-cache" in message and "move it aside" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generations.sqlite"]


def test_damage_anywhere_is_the_same_error_or_goes_unnoticed_never_a_traceback(tmp_path):
    """SQLite finds damage to the file's structure; garbage inside a row's text it cannot see."""
    pristine = _real_cache(tmp_path / "pristine").read_bytes()
    keys = [f"sample-{i}" for i in range(3000)]
    found = 0
    for at in range(0, len(pristine) - 512, len(pristine) // 23):
        folder = tmp_path / f"at-{at}"
        folder.mkdir()
        path = folder / "generations.sqlite"
        path.write_bytes(pristine)
        digest = _damage(path, at)
        try:
            cache = GenerationCache(path)
            try:
                cache.get_many(keys)
                cache.get_many([f"prompt-{i}" for i in range(300)], table="prompts")
            finally:
                cache.close()
        except CorruptCache as exc:
            assert str(path) in str(exc)
            found += 1
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert found >= 2


def test_cli_damaged_cache_is_one_error_line_before_generation(cli, tmp_path):
    path = _real_cache(tmp_path / "cache")
    digest = _damage(path)
    result = cli(
        "run", "--tasks", "smoke_arithmetic", "--limit", "1", "--n", "1", "--max-tokens", "4",
        "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"), "--quiet",
    )  # fmt: skip
    line = _one_error_line(result)
    assert str(path) in line and "--no-cache" in line and "damaged" in line, line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "out").exists()
