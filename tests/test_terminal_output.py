"""Piped output (CI, `| less`): tables never cut a task or metric name users must type."""

from __future__ import annotations

import re

import pytest

from evalkit.tasks import task_registry
from tests.test_compare_check import write_run


def _rows(table_text: str) -> list[list[str]]:
    """Cells of a rich table's rows; a wrapped cell's lines are joined with a space."""
    rows: list[list[str]] = []
    for line in table_text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
    return rows


@pytest.mark.parametrize("columns", [None, "60"])
def test_list_piped_keeps_every_task_and_metric_name_whole(cli, columns):
    result = cli("list", env={"COLUMNS": columns} if columns else {})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    tasks_table = re.split(r"\n *suites *\n", result.stdout)[0]
    rows = {row[0]: row for row in _rows(tasks_table)}
    registry = task_registry()
    for name in registry.names():
        assert name in rows, f"{name} cut or missing in:\n{result.stdout}"
    # Metric names as the task reports them, not the metric functions' names.
    metrics = {task: set(row[3].split(", ")) for task, row in rows.items()}
    assert metrics["humaneval"] == {"accuracy", "pass@k"}
    assert {"accuracy", "pass@k", "maj@k"} <= metrics["gsm8k"]
    assert metrics["heldout_perplexity"] == {"perplexity", "nll", "entropy"}
    assert metrics["arc_challenge"] == {"acc", "acc_norm"}  # lm-eval's names
    assert metrics["gsm8k_openllm"] == {"exact_match_strict-match", "exact_match_flexible-extract"}
    assert not re.search(r"humaneval_exec|numeric_exact_match|math_sampling", tasks_table)


def test_compare_and_check_piped_keep_long_task_and_metric_names(cli, tmp_path):
    task = "heldout_perplexity_of_a_long_named_custom_task"
    values = {"self_bleu_diversity": [50.0, 52.0, 51.0], "exact_match_flexible-extract": [40.0, 45.0, 50.0]}
    a = write_run(tmp_path, "a_run_with_a_long_identifier", {task: values})
    b = write_run(
        tmp_path, "b_run_with_a_long_identifier", {task: {k: [v + 1 for v in vs] for k, vs in values.items()}}
    )
    shown = cli("compare", str(a), str(b), env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    checked = cli("check", str(b), "--baseline", str(a), env={"COLUMNS": "80"})
    assert checked.returncode == 0, checked.stderr
    for out in (shown.stdout, checked.stdout):
        assert "…" not in out
        names = {(row[0], row[1].split(" (")[0]) for row in _rows(out)}
        assert {(task, "self_bleu_diversity"), (task, "exact_match_flexible-extract")} <= names, out
