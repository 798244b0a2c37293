"""Task, policy and results files that would blow up when read or quoted: a YAML alias bomb
("billion laughs"), a recursive alias, nesting too deep for the parser, a huge value in a field
that is checked. Each is one bounded `error:` line with exit 2 (issue 17, item 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalkit.errors import MESSAGE_LIMIT, EvalkitError, shown
from evalkit.yaml_files import ALIAS_BUDGET, YAMLTooLarge, load_yaml

TASK = """\
name: {name}
description: a task file with something hostile in it
data: {{path: data/smoke_arithmetic.jsonl}}
prompt: {{template: "{{{{ question }}}}"}}
metrics: [numeric_exact_match]
answer_field: answer
"""


def _bomb(levels: int) -> str:
    """A YAML flow list that defines its anchors inside itself: 9**levels strings from a few
    hundred bytes ("billion laughs"), placed in any field."""
    items = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    items += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def _task_file(folder: Path, name: str, extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(TASK.format(name=name) + extra)
    return path


def _one_bounded_line(result) -> str:  # noqa: ANN001 - a CliResult
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert len(lines[0]) <= MESSAGE_LIMIT + 100
    return lines[0]


def _hostile_tasks() -> dict[str, str]:
    bomb = _bomb(7)  # 9**7 = 4.8 million strings: a 5.2 MB error line before
    return {
        "stop_bomb": f"sampling: {{stop: {bomb}}}\n",
        "seed_bomb": f"sampling: {{seed: {bomb}}}\n",
        "suites_bomb": f"suites: {bomb}\n",
        "judges_bomb": f"judges: {{quality: {bomb}}}\n",
        "recursive": "sampling: {stop: &loop [*loop]}\n",
        "deep": "sampling: {stop: " + "[" * 20000 + "]" * 20000 + "}\n",
        "huge_value": "sampling: {temperature: '" + "x" * 2_000_000 + "'}\n",
        "huge_integer": "sampling: {n: " + "9" * 4000 + "}\n",
    }


@pytest.mark.parametrize("case", sorted(_hostile_tasks()))
def test_a_hostile_task_file_is_one_bounded_line(cli, tmp_path, case):
    _task_file(tmp_path / "tasks", case, _hostile_tasks()[case])
    result = cli("run", "--tasks", case, "--task-dir", str(tmp_path / "tasks"), "--limit", "1", timeout=300)
    line = _one_bounded_line(result)
    assert case in line  # it names the file


def test_a_policy_file_alias_bomb_is_one_bounded_line(cli, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"default: {_bomb(7)}\n")
    result = cli("check", str(tmp_path), "--baseline", str(tmp_path), "--policy", str(policy), timeout=300)
    assert "policy" in _one_bounded_line(result)


def test_a_results_yaml_alias_bomb_is_one_bounded_line(cli, tmp_path):
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(f"tasks: {{t: {{metrics: {{accuracy: {_bomb(7)}}}}}}}\n")
    result = cli("compare", str(baseline), str(baseline), timeout=300)
    assert "baseline.yaml" in _one_bounded_line(result)


def test_load_yaml_reads_what_safe_load_reads_and_refuses_expansion():
    ordinary = "defaults: &d {max_drop: 1.0}\nmetrics:\n  accuracy: *d\n  pass@1: *d\nlist: [1, 2, {a: b}]\n"
    assert load_yaml(ordinary) == yaml.safe_load(ordinary)
    assert load_yaml("") is None and load_yaml("just text") == "just text"
    with pytest.raises(YAMLTooLarge, match="alias"):
        load_yaml(f"stop: {_bomb(12)}\n")  # 9**12 strings: refused at once, nothing is built
    # Aliases may add up to ALIAS_BUDGET values: a file just within it still loads.
    within = "base: &b [" + ", ".join(["1"] * 100) + "]\nuses: [" + ", ".join(["*b"] * (ALIAS_BUDGET // 101)) + "]\n"
    assert len(load_yaml(within)["uses"]) == ALIAS_BUDGET // 101
    with pytest.raises(YAMLTooLarge, match="recursive"):
        load_yaml("a: &x [1, *x]\n")
    with pytest.raises(YAMLTooLarge, match="deep"):
        load_yaml("[" * 50000 + "]" * 50000)
    assert isinstance(YAMLTooLarge("x"), yaml.YAMLError)  # the loaders' own handlers report it


def test_error_messages_quote_values_cut_short():
    shared = ["lol"] * 9
    for _ in range(10):
        shared = [shared] * 9  # 9**11 strings through shared references
    for value in [shared, "x" * 10**6, 10**5000, {str(i): i for i in range(10**5)}, b"\x00" * 10**6]:
        assert len(shown(value)) <= 80
    assert len(str(EvalkitError("y" * 10**7))) <= MESSAGE_LIMIT + 20
    assert str(EvalkitError("two\nlines")) == "two lines"
