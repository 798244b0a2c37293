"""Sampling validation, task files, the registry's lookups and suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.config import SamplingConfig
from evalkit.errors import ConfigError, EvalkitError
from evalkit.registry import Registry
from evalkit.tasks import load_task_file, render_messages, resolve_tasks, suites, task_registry


@pytest.mark.parametrize(
    "field, value",
    [
        ("n", 0),
        ("n", -3),
        ("n", 2.5),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("max_tokens", 0),
        ("seed", -1),
        ("stop", ("",)),
        ("n", True),
    ],
)
def test_invalid_sampling_values_are_rejected(field, value):
    with pytest.raises(ConfigError, match=field):
        SamplingConfig(**{field: value})


def test_sampling_cache_fields_ignore_n_and_greedy_knobs():
    a = SamplingConfig(n=4, temperature=0.7, seed=1)
    assert a.cache_fields() == SamplingConfig(n=16, temperature=0.7, seed=1).cache_fields()
    assert a.cache_fields() != SamplingConfig(n=4, temperature=0.7, seed=2).cache_fields()
    greedy_a = SamplingConfig(temperature=0, top_p=0.5, seed=1).cache_fields()
    assert greedy_a == SamplingConfig(temperature=0, top_k=7, seed=9).cache_fields()


def test_shipped_tasks_load_and_smoke_suite_resolves():
    registry = task_registry()
    assert {"smoke_writing", "smoke_arithmetic"} <= set(registry.names())
    members = suites(registry)
    assert set(members["smoke"]) == {"smoke_writing", "smoke_arithmetic"}
    assert set(members["all"]) == set(registry.names())
    assert resolve_tasks(registry, "smoke", ["smoke_writing"]) == members["smoke"]


def test_unknown_names_suggest_the_closest():
    registry = task_registry()
    with pytest.raises(EvalkitError, match="did you mean 'smoke_writing'"):
        registry.get("smoke_writting")
    with pytest.raises(EvalkitError, match="unknown suite 'smoek'; did you mean 'smoke'"):
        resolve_tasks(registry, "smoek", [])
    with pytest.raises(ConfigError, match="nothing to run"):
        resolve_tasks(registry, None, [])


def test_registry_is_lazy_and_rejects_duplicates():
    calls = []
    reg: Registry[int] = Registry("thing")
    reg.add_lazy("a", lambda: calls.append(1) or 42)
    assert calls == [] and "a" in reg
    assert reg.get("a") == 42 and reg.get("a") == 42 and calls == [1]
    reg.register("b")(7)
    with pytest.raises(ValueError):
        reg.register("b")(8)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
name: mytask
data: {path: docs.jsonl}
prompt: {template: "Say {{ word }}", system: "Be brief."}
sampling: {n: 2, temperature: 0.5}
metrics: [ngram_diversity]
"""


STYLED = """\
name: mytask
data: {path: docs.jsonl}
prompt:
  style: b
  styles:
    a: {template: "A {{ word }}"}
    b: {template: "B {{ word }}", system: "sys"}
metrics: [ngram_diversity]
"""


def test_prompt_styles_choose_the_template(tmp_path):
    spec = load_task_file(_write(tmp_path, "mytask", STYLED))
    assert spec.prompt_style == "b" and set(spec.prompt_styles) == {"a", "b"}
    assert render_messages(spec, {"word": "x"})[-1]["content"] == "B x"
    other = spec.with_prompt_style("a")
    assert render_messages(other, {"word": "x"}) == [{"role": "user", "content": "A x"}]
    with pytest.raises(EvalkitError, match="did you mean 'a'"):
        spec.with_prompt_style("aa")


def test_shipped_math_tasks_offer_both_prompt_styles():
    registry = task_registry()
    for name in ("gsm8k", "math500", "minerva_math"):
        spec = registry.get(name)
        assert set(spec.prompt_styles) == {"answer_is", "boxed"} and spec.sampling.n == 16
        assert "boxed" in spec.prompt_styles["boxed"].template
    assert registry.get("gsm8k").prompt_style == "answer_is" and registry.get("math500").prompt_style == "boxed"
    assert set(suites(registry)["reasoning"]) == {"gsm8k", "math500", "minerva_math"}
    assert {"ifeval", "alpaca_eval_bon"} <= set(suites(registry)["chat"])


def test_task_file_parses_and_renders(tmp_path):
    spec = load_task_file(_write(tmp_path, "mytask", GOOD))
    assert spec.sampling == SamplingConfig(n=2, temperature=0.5)
    assert render_messages(spec, {"word": "hi"}) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
    ]
    with pytest.raises(ConfigError, match="field the data lacks"):
        render_messages(spec, {"other": 1})


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: mytask\ndata: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping"),
        (GOOD.replace("metrics: [ngram_diversity]", "metrics: [ngram_diversty]"), "did you mean 'ngram_diversity'"),
        (GOOD.replace("sampling: {n: 2, temperature: 0.5}", "sampling: {n: -2}"), "n must be >= 1"),
        (GOOD.replace("sampling: {n: 2, temperature: 0.5}", "sampling: {temp: 1}"), "unknown sampling field"),
        (GOOD.replace("data: {path: docs.jsonl}", "data: {}"), "data needs one of"),
        (GOOD.replace('"Say {{ word }}"', '"Say {{ word "'), "prompt.template"),
        (GOOD + "colour: blue\n", "unknown field"),
        (GOOD.replace("[ngram_diversity]", "[numeric_exact_match]"), "needs 'answer_field'"),
        (GOOD.replace("name: mytask", "name: other"), "must equal the file name"),
        (
            GOOD.replace('prompt: {template: "Say {{ word }}", system: "Be brief."}', "prompt: {styles: {}}"),
            "prompt.styles",
        ),
        (STYLED.replace("style: b", "style: c"), "is not one of prompt.styles"),
        (STYLED.replace("  styles:", "  template: x\n  styles:"), "inside each style"),
    ],
)
def test_malformed_task_files_fail_with_one_clear_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_task_file(_write(tmp_path, "mytask", text))
    assert "\n" not in str(info.value)


def test_task_judges_are_parsed_and_checked(tmp_path):
    good = (
        GOOD.replace("mytask", "judged")
        + "judges:\n  reward_model: {model: some/rm, reference: output}\n  equivalence:\n"
    )
    spec = load_task_file(_write(tmp_path, "judged", good))
    assert spec.judges == {"reward_model": {"model": "some/rm", "reference": "output"}, "equivalence": {}}
    with pytest.raises(EvalkitError, match="unknown judge 'reward_modle'; did you mean 'reward_model'"):
        load_task_file(_write(tmp_path, "typo", GOOD.replace("mytask", "typo") + "judges:\n  reward_modle: {}\n"))
    with pytest.raises(EvalkitError, match="judges must be a mapping"):
        load_task_file(_write(tmp_path, "bad", GOOD.replace("mytask", "bad") + "judges: [reward_model]\n"))


def test_metric_without_its_judge_is_rejected_when_the_task_is_parsed(tmp_path):
    text = GOOD.replace("mytask", "nojudge").replace("[ngram_diversity]", "[bt_win_rate]")
    with pytest.raises(EvalkitError, match=r"metric 'bt_win_rate' needs the judge\(s\) \['reward_model'\]"):
        load_task_file(_write(tmp_path, "nojudge", text))


def test_bad_equivalence_option_fails_before_anything_runs(cli):
    result = cli("run", "--tasks", "smoke_writing", "--equivalence", "rouge", "--limit", "1")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown equivalence method 'rouge'; did you mean 'rouge1'?"
