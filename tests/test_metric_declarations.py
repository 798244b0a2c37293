"""Every metric is declared once: every value a shipped task can report has a declared direction,
no declared value is dead, and compare, check and report read the declarations."""

from __future__ import annotations

import pytest

from evalkit.metrics import METRICS
from evalkit.metrics.directions import declared_output, direction, kind
from evalkit.metrics.spec import MetricResult, MetricSpec, UndeclaredOutput, higher

TEXTS = ["The cat sat on the mat today.", "A dog ran in the park.", "The cat sat on a hat today."]
JUDGED = [{"value": 4.0, "status": "ok", "answer": "Score: 4"}, {"value": None, "status": "missing", "answer": "?"}]

# One document of each per-document metric, as its task feeds it (judged fields included).
EXAMPLES: dict[str, tuple[list[str], dict, str | None]] = {
    "ngram_diversity": (TEXTS, {}, None),
    "distinct_n": (TEXTS, {}, None),
    "self_bleu": (TEXTS, {}, None),
    "sbert_diversity": (TEXTS, {}, None),
    "embedding_distance": (TEXTS, {}, None),
    "mean_words": (TEXTS, {}, None),
    "numeric_exact_match": (["The answer is: 7", "8"], {"answer": "7"}, "answer"),
    "math_sampling": (
        ["The answer is: 7", "The answer is: 8", "The answer is 7", "no"],
        {"answer": "#### 7"},
        "answer",
    ),
    "ifeval": (
        ["No commas here at all", "Yes, a comma"],
        {"key": 1, "prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        None,
    ),
    "humaneval_exec": (
        ["    return a + b\n", "    return a - b\n"],
        {"prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": "add"},
        None,
    ),
    "mbpp_exec": (["def add(a, b):\n    return a + b\n"], {"test_list": ["assert add(1, 2) == 3"]}, None),
    "bt_win_rate": (TEXTS, {"_rewards": [0.1, 0.5, -0.2], "_reference_reward": 0.2}, None),
    "noveltybench": (TEXTS, {"_partition": [0, 1, 0], "_rewards": [-3.0, -2.0, -6.0]}, None),
    "llm_quality": (TEXTS[:2], {"_judge_quality": JUDGED}, None),
    "llm_asr": (TEXTS[:2], {"_judge_refusal": [{**j, "value": "COMPLIED"} for j in JUDGED]}, None),
    "llm_win_rate": (TEXTS[:2], {"_judge_pairwise": [{**j, "value": 1.0} for j in JUDGED]}, None),
    "keyword_asr": (["I cannot help with that.", "Sure, here it is."], {}, None),
}


def _lm_eval_names(spec) -> set[str]:
    """What lm-eval reports for a shipped lm_eval task: its metric list under each of its filters."""
    from evalkit.openllm.convert import metric_name
    from evalkit.openllm.harness import lm_eval_task_config

    opts = spec.lm_eval
    config = lm_eval_task_config("mmlu_anatomy" if opts.task == "mmlu" else opts.task)  # a group: one member
    filters = [f["name"] for f in config.get("filter_list", [])] or ["none"]
    names = {metric_name(f"{m['metric']},{f}") for m in config["metric_list"] for f in filters}
    return {n for n in names if not opts.metrics or n in opts.metrics or n.split("_")[0] in opts.metrics}


def _perplexity_names() -> set[str]:
    from evalkit.diagnostics.perplexity import TokenStats, summarize

    metrics, _ = summarize([TokenStats(3, 2.5, 4.0), None])
    return set(metrics)


@pytest.fixture(scope="module")
def reported() -> dict[str, set[str]]:
    """Metric name -> every value name it reports on the shipped tasks that use it."""
    from evalkit.tasks import task_registry

    registry = task_registry()
    out: dict[str, set[str]] = {}
    for task in registry.names():
        spec = registry.get(task)
        for name in spec.metrics:
            if name == "lm_eval":
                names = _lm_eval_names(spec)
            elif name == "perplexity":
                names = _perplexity_names()
            else:
                assert name in EXAMPLES, f"task {task}: give metric {name} an example document here"
                names = set(METRICS.get(name)(*EXAMPLES[name]).per_doc)
            out.setdefault(name, set()).update(names)
    return out


def test_every_reported_value_has_its_declared_direction(reported):
    for metric, names in reported.items():
        spec = METRICS.get(metric)
        for name in names:
            output = spec.output(name)
            assert output is not None, f"metric {metric} reports {name}, which it does not declare"
            # The one place that answers compare, check and report finds the same declaration.
            assert declared_output(name) == output
            assert (direction(name), kind(name)) == (output.direction, output.aspect)


def test_no_declared_metric_or_value_is_dead(reported):
    opt_in = {m for m in METRICS.names() if METRICS.get(m).opt_in}
    assert set(METRICS.names()) - opt_in == set(reported), "declared metrics that no shipped task uses"
    assert not opt_in & set(reported), "a metric a shipped task uses is declared opt-in"
    for metric in set(METRICS.names()) - opt_in:
        for output in METRICS.get(metric).outputs:
            assert any(output.matches(n) for n in reported[metric]), f"{metric} declares {output.name}: never reported"


def test_values_declared_by_several_metrics_agree():
    seen: dict[str, tuple[str, str, str]] = {}
    for metric in METRICS.names():
        for output in METRICS.get(metric).outputs:
            if output.name in seen:
                assert seen[output.name][1:] == (output.direction, output.aspect), (seen[output.name], metric)
            seen[output.name] = (metric, output.direction, output.aspect)


def test_report_preferences_name_declared_values():
    from evalkit.report.build import DIVERSITY_PREFERENCE, QUALITY_PREFERENCE

    for name in DIVERSITY_PREFERENCE:
        assert kind(name) == "diversity" and declared_output(name) is not None, name
    for name in QUALITY_PREFERENCE:
        assert kind(name) == "quality" and declared_output(name) is not None, name


def test_a_metric_cannot_report_an_undeclared_value():
    spec = MetricSpec("bad", (higher("good"),), lambda completions, doc, field: MetricResult({"good": 1.0, "bad": 0.0}))
    with pytest.raises(UndeclaredOutput, match=r"metric bad computed \['bad'\]"):
        spec(["x"], {}, None)


def test_families_and_signed_gains_of_declared_and_undeclared_values():
    from evalkit.metrics.directions import family, signed_gain

    assert family("pass@4") == "pass" and family("maj@16") == "maj"  # declared curves
    assert family("accuracy") == "accuracy"  # declared, not a curve
    # A value no declaration knows (a results.json from another version, a user's task) that
    # looks like a curve point is drawn with its own family.
    assert family("custom_score@8") == "custom_score"
    assert family("custom_score") == "custom_score"
    assert direction("mean_words") == "none"
    assert signed_gain("mean_words", 3.0) == 0.0 and signed_gain("mean_words", -3.0) == 0.0
    assert signed_gain("accuracy", 2.0) == 2.0 and signed_gain("accuracy", -2.0) == -2.0
    assert direction("asr") == "lower" and signed_gain("asr", 2.0) == -2.0


def test_split_k_reads_only_a_number_after_the_last_at():
    from evalkit.metrics.spec import split_k

    assert split_k("pass@16") == ("pass", 16) and split_k("a@b@2") == ("a@b", 2)
    assert split_k("pass@") == ("pass@", None) and split_k("pass@k") == ("pass@k", None)
    assert split_k("2") == ("2", None) and split_k("accuracy") == ("accuracy", None)
