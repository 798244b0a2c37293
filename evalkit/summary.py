"""Terminal output: the run summary, the task list and run comparisons (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from evalkit.comparability import TaskComparability
from evalkit.comparison import Comparison
from evalkit.gate import CheckOutcome
from evalkit.metrics.multiple import DESCRIPTIONS
from evalkit.results import RESULTS_FILE, RunResult
from evalkit.tasks import TaskSpec


def _fmt(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


def print_summary(result: RunResult) -> None:
    console = Console()
    table = Table(title=f"{result.model} · {result.backend} · seed {result.seed}")
    for column in ("task", "metric", "value", "± stderr", "docs", "samples"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, entry in result.tasks.items():
        for i, (metric, value) in enumerate(entry.metrics.items()):
            first = i == 0
            table.add_row(
                task if first else "",
                metric,
                _fmt(value),
                _fmt(entry.stderr.get(metric)),
                str(entry.n_docs) if first else "",
                str(entry.n_samples) if first else "",
            )
    console.print(table)
    where = result.path / RESULTS_FILE if result.path else "not written"
    console.print(
        f"cache: {result.cache['hits']} samples reused, {result.cache['generated']} generated · "
        f"{result.timing['total_s']:.1f}s · results: {where}"
    )


def print_task_list(specs: list[TaskSpec], suites: dict[str, list[str]]) -> None:
    console = Console()
    tasks = Table(title="tasks")
    for column in ("task", "suites", "samples", "metrics", "description"):
        tasks.add_column(column)
    for spec in specs:
        tasks.add_row(
            spec.name,
            ", ".join(spec.suites),
            str(spec.samples_per_document),
            ", ".join(spec.metrics),
            _first_sentence(spec),
        )
    console.print(tasks)
    table = Table(title="suites")
    table.add_column("suite")
    table.add_column("tasks")
    for suite, members in sorted(suites.items()):
        table.add_row(suite, ", ".join(members))
    console.print(table)


def _first_sentence(spec: TaskSpec) -> str:
    head, _, _ = spec.description.partition(". ")
    return head.rstrip(".")


_VERDICT_STYLE = {"better": "green", "worse": "red"}


def print_comparison(comparison: Comparison) -> None:
    console = Console()
    runs, rows, confidence = comparison.runs, comparison.rows, comparison.confidence
    title = f"comparison against the first run (Δ with paired-bootstrap {confidence:.0%} CI over paired documents)"
    table = Table(title=title)
    table.add_column("task")
    table.add_column("metric")
    for run in runs:
        table.add_column(f"{run.run_id}\n{run.model}", justify="right")
    for run in runs[1:]:
        table.add_column(f"Δ {run.run_id}", justify="right")
        table.add_column("paired", justify="right")
        table.add_column("verdict")
    for row in rows:
        cells = [row.task, row.metric + ("" if row.direction == "higher" else f" ({row.direction})")]
        cells += [_fmt(v) for v in row.values]
        for diff in row.differences:
            ci = diff.interval
            span = "" if ci is None or ci.low is None else f" [{ci.low:+.2f}, {ci.high:+.2f}]"
            style = _VERDICT_STYLE.get(diff.verdict)
            verdict = "n.s." if diff.verdict == "no significant difference" else diff.verdict
            verdict = f"[{style}]{verdict}[/]" if style else verdict
            p = "" if diff.p_value is None else f" (p={diff.p_value:.2g})"
            cells += [_signed(diff.delta) + span, str(diff.paired), verdict + p]
        table.add_row(*cells)
    console.print(table)
    sizes = ", ".join(str(m) for m in comparison.family_sizes)
    console.print(
        f"verdicts: {DESCRIPTIONS[comparison.correction]} at {1 - confidence:.0%}, over the metrics tested "
        f"in each comparison ({sizes}); p: adjusted p-value; intervals are per metric"
    )
    console.print("n.s.: no significant difference; higher/lower: a significant change of a neutral metric")
    console.print("Δ: mean difference over the documents both runs scored (paired); without them, of the task values")
    _print_comparability(console, comparison.comparability)


def _print_comparability(console: Console, found: list[TaskComparability]) -> None:
    """What differs between the runs' tasks: allowed mismatches, how they ran, what is unknown."""
    for c in found:
        if c.measured:
            console.print(f"[red]measured differently[/] {c.task} ({c.run}): {', '.join(c.measured)}")
        if c.how:
            console.print(f"[yellow]ran differently[/] {c.task} ({c.run}): {', '.join(c.how)}")
        if c.unknown:
            console.print(f"comparability unknown for {c.task} ({c.run}): {', '.join(c.unknown)}")


def _signed(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:+.2f}"


def print_findings(outcome: CheckOutcome) -> None:
    console = Console()
    findings = outcome.findings
    table = Table(title=f"check {outcome.run.run_id} against baseline {outcome.baseline.run_id}")
    for column in ("task", "metric", "baseline", "run", "status", "why"):
        table.add_column(column, justify="right" if column in ("baseline", "run") else "left")
    for f in findings:
        status = "[green]ok[/]" if f.status == "ok" else f"[red]{f.status}[/]"
        table.add_row(f.task, f.metric, _fmt(f.baseline), _fmt(f.value), status, f.reason)
    console.print(table)
    if outcome.policy.require_significance:
        console.print(f"significance: {DESCRIPTIONS[outcome.policy.correction]} over the gated metrics")
    _print_comparability(console, outcome.comparability)
    failed = [f for f in findings if f.status != "ok"]
    if not findings:
        console.print("[yellow]check: no gated metric is shared with the baseline[/]")
    elif failed:
        console.print(f"[red]check failed[/]: {len(failed)} of {len(findings)} metrics regressed")
        for f in failed:
            console.print(f"  {f.task}/{f.metric}: {f.status}, {f.reason}")
    else:
        console.print(f"[green]check passed[/]: {len(findings)} metrics within bounds")
