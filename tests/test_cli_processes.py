"""The tests' forked `evalkit` commands (tests/cli_processes.py) behave as `python -m evalkit` does."""

from __future__ import annotations

import os

import pytest

from tests import cli_processes
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("EVALKIT_TEST_CLI_SUBPROCESS") or os.environ.get("EVALKIT_TEST_CLI_IN_PROCESS")),
    reason="commands run another way in this session",
)


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("--version",),
        ("run", "--suite", "smokey"),  # one error line, exit 2
        ("check",),  # click's usage error
        ("compare", "/nonexistent/a", "/nonexistent/b"),
    ],
)
def test_a_forked_command_equals_a_new_interpreter(args):
    forked, fresh = run_cli(*args), run_cli(*args, fresh=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_another_environment_gets_a_new_interpreter():
    assert cli_processes.can_fork(None) and cli_processes.can_fork({"HF_HUB_OFFLINE": "1"})
    assert not cli_processes.can_fork({"COLUMNS": "300"})


def test_the_working_directory_is_the_commands(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text("name: mine\nkind: generate\ndata: none.jsonl\nprompt: '{{x}}'\n")
    forked = run_cli("list", "--task-dir", "tasks", cwd=tmp_path)
    fresh = run_cli("list", "--task-dir", "tasks", cwd=tmp_path, fresh=True)
    assert forked.returncode == fresh.returncode == 2 and "tasks/mine.yaml" in forked.stderr  # found from there
    assert forked.stdout == fresh.stdout and forked.stderr == fresh.stderr


def test_a_command_runs_in_the_tests_working_directory(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text("name: mine\nkind: generate\ndata: none.jsonl\nprompt: '{{x}}'\n")
    monkeypatch.chdir(tmp_path)
    forked = run_cli("list", "--task-dir", "tasks")
    assert forked.returncode == 2 and "tasks/mine.yaml" in forked.stderr
