"""Task and rubric templates render in Jinja's sandbox: no way out to Python's internals, no
other template read, and every failure one `error:` line naming the task, before a model loads."""

from __future__ import annotations

import json
import re

import pytest

from evalkit.errors import ConfigError
from evalkit.judges.rubrics import load_rubric
from evalkit.templates import check_template, render

FIELDS = {"title": "Ab. Cd.", "n": 3}

UNSAFE = [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.system('id') }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ title.__class__ }}",
    "{{ title.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ n.__class__.__subclasses__() }}",
    "{{ title.format.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ title|attr('__class__') }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ namespace.__init__.__globals__ }}",
]


@pytest.mark.parametrize("template", UNSAFE)
def test_unsafe_expressions_are_one_config_error(template):
    check_template("task t", template)  # parses; refused when rendered
    with pytest.raises(ConfigError, match="^task t: prompt template"):
        render(template, FIELDS, "task t: prompt template")


@pytest.mark.parametrize(
    "template, tag",
    [
        ("{% include '/etc/passwd' %}", "include"),
        ("{% include 'x.j2' ignore missing %}", "include"),
        ("{% import '/etc/passwd' as p %}{{ p }}", "import"),
        ("{% from 'os' import system %}", "import"),
        ("{% extends '/etc/passwd' %}", "extends"),
        ("{% if n %}{% include '/etc/hostname' %}{% endif %}", "include"),
    ],
)
def test_templates_cannot_read_other_templates(template, tag):
    with pytest.raises(ConfigError, match=rf"task file t: prompt.template line 1: '{{% {tag} %}}' is not allowed"):
        check_template("task file t", template, "prompt.template")


@pytest.mark.parametrize(
    "template, what",
    [
        ("{{1/0}}", "ZeroDivisionError"),
        ("{{title+1}}", "TypeError"),
        ("{{ title[99] }}", "uses a field the data lacks"),
        ("{{ missing }}", "uses a field the data lacks"),
        ("{{ n.bit_length(1) }}", "TypeError"),
        ("{{ 'x' ~ (title|int + []) }}", "cannot be rendered"),
    ],
)
def test_expression_errors_are_one_config_error(template, what):
    with pytest.raises(ConfigError, match=what):
        render(template, FIELDS, "task t: prompt template")


def test_ordinary_templates_still_render():
    assert render("Write about {{ title }} ({{ n + 1 }}).", FIELDS, "w") == "Write about Ab. Cd. (4)."
    assert render("{{ title.upper() }} {{ title|sentences|length }}", FIELDS, "w") == "AB. CD. 2"
    assert render("{% for s in title|sentences %}[{{ loop.index }}:{{ s }}]{% endfor %}", FIELDS, "w") == (
        "[1:Ab.][2:Cd.]"
    )


def test_a_rubric_with_an_include_fails_when_read(tmp_path):
    rubric = tmp_path / "evil.yaml"
    rubric.write_text(
        "answer: {type: score, min: 1, max: 10}\nmetric: quality\ntemplate: \"{% include '/etc/passwd' %}\"\n"
    )
    with pytest.raises(ConfigError, match="judge rubric .*evil.yaml: template line 1: '{% include %}'"):
        load_rubric(rubric)


def test_a_rubric_template_renders_in_the_sandbox(tmp_path):
    rubric = tmp_path / "evil.yaml"
    rubric.write_text(
        "answer: {type: score, min: 1, max: 10}\nmetric: quality\n"
        'template: "{{ response.__class__.__mro__[1].__subclasses__() }}"\n'
    )
    with pytest.raises(ConfigError, match="judge rubric evil is unsafe"):
        load_rubric(rubric).messages(response="hi")


def _task(folder, name, template):
    data = folder / f"{name}.jsonl"
    data.write_text(json.dumps({"title": "Rain", "question": "1+1?", "answer": "2"}) + "\n")
    (folder / f"{name}.yaml").write_text(
        f"data: {{path: {data}}}\nprompt:\n  template: {json.dumps(template)}\nmetrics: [ngram_diversity]\n"
    )


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}", "is unsafe and was not rendered"),
        ("{% include '/etc/passwd' %}", "'{% include %}' is not allowed"),
        ("{{1/0}}", "ZeroDivisionError: division by zero"),
        ("{{title+1}}", 'TypeError: can only concatenate str \\(not "int"\\) to str'),
    ],
)
def test_a_hostile_task_dir_task_is_one_error_line_before_any_model_loads(cli, tmp_path, template, message):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    _task(tasks, "evil", template)
    result = cli(
        "run", "--tasks", "evil", "--task-dir", str(tasks), "--model", str(tmp_path / "no-such-model"),
        "--output-dir", str(tmp_path / "out"), "--no-cache", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "evil" in lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out").exists()
