"""Terminal output: the run summary, the task list and run comparisons (rich tables).

Task and metric names are never cut or wrapped: users type them. Their columns do not wrap, and
when output is piped (CI, ``| less``: no terminal, so rich assumes 80 columns or $COLUMNS) a
table is printed at its natural width, free-text columns wrapped at a fixed width.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from evalkit.comparability import TaskComparability
from evalkit.comparison import Comparison
from evalkit.gate import CheckOutcome
from evalkit.metrics.multiple import DESCRIPTIONS
from evalkit.results import RESULTS_FILE, RunResult
from evalkit.tasks import TaskSpec


def _fmt(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


_NAMES = ("task", "metric", "suite")  # columns of names users type: never wrapped
_TEXT = {"metrics": 40, "description": 60, "why": 60}  # free text: wrapped at this width


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right else "left",
            no_wrap=column in _NAMES,
            max_width=_TEXT.get(column),
        )
    return table


def _print(console: Console, table: Table) -> None:
    """Print the table; without a terminal, on a console as wide as the table is at its natural width."""
    if not console.is_terminal:
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        if needed > console.width:
            console = Console(width=needed, file=console.file)
    console.print(table)


def print_summary(result: RunResult) -> None:
    console = Console()
    columns = ("task", "metric", "value", "± stderr", "docs", "samples")
    table = _table(f"{result.model} · {result.backend} · seed {result.seed}", *columns, right=columns[2:])
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
    _print(console, table)
    where = result.path / RESULTS_FILE if result.path else "not written"
    console.print(
        f"cache: {result.cache['hits']} samples reused, {result.cache['generated']} generated · "
        f"{result.timing['total_s']:.1f}s · results: {where}",
        soft_wrap=True,  # a path is never broken across lines
    )


def print_task_list(specs: list[TaskSpec], suites: dict[str, list[str]]) -> None:
    console = Console()
    tasks = _table("tasks", "task", "suites", "samples", "metrics", "description")
    for spec in specs:
        tasks.add_row(
            spec.name,
            ", ".join(spec.suites),
            str(spec.samples_per_document),
            ", ".join(spec.reported_metrics()) or "all that lm-eval reports",
            _first_sentence(spec),
        )
    _print(console, tasks)
    table = _table("suites", "suite", "tasks")
    for suite, members in sorted(suites.items()):
        table.add_row(suite, ", ".join(members))
    _print(console, table)


def _first_sentence(spec: TaskSpec) -> str:
    head, _, _ = spec.description.partition(". ")
    return head.rstrip(".")


_VERDICT_STYLE = {"better": "green", "worse": "red"}


def print_comparison(comparison: Comparison) -> None:
    console = Console()
    runs, rows, confidence = comparison.runs, comparison.rows, comparison.confidence
    title = f"comparison against the first run (Δ with paired-bootstrap {confidence:.0%} CI over paired documents)"
    table = _table(title, "task", "metric")
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
    _print(console, table)
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
    columns = ("task", "metric", "baseline", "run", "status", "why")
    table = _table(
        f"check {outcome.run.run_id} against baseline {outcome.baseline.run_id}", *columns, right=columns[2:4]
    )
    for f in findings:
        status = "[green]ok[/]" if f.status == "ok" else f"[red]{f.status}[/]"
        table.add_row(f.task, f.metric, _fmt(f.baseline), _fmt(f.value), status, f.reason)
    _print(console, table)
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
