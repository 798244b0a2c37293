"""`evalkit report`: one self-contained HTML page for one or more runs.

Run metadata, then one section per task: its metric table (with paired-bootstrap verdicts against
the first run), a diversity-vs-quality plot when the task reports both kinds of metric, bar charts
of every metric, test-time scaling curves (every ``family@k`` with two or more k), and a few
sample outputs side by side. Values are drawn with 95% intervals (1.96 standard errors, from
results.json or, where it records none, from the per-document values of documents.jsonl).
What a metric measures, which way is better and which values form a curve come from the metrics'
declarations (evalkit.metrics.directions); tasks are never averaged together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from evalkit import __version__
from evalkit.comparison import Difference, compare_runs
from evalkit.errors import EvalkitError
from evalkit.metrics.aggregation import aggregate
from evalkit.metrics.directions import direction, family, kind, split_k
from evalkit.report.cards import describe_scores, gold
from evalkit.report.plots import Bars, Estimate, Point, Series, bars_svg, curve_svg, scatter_svg
from evalkit.results import RunResult

Z95 = 1.959964  # a 95% normal interval is the value ± 1.96 standard errors
# The axes a task's diversity-vs-quality plot prefers, first found first; otherwise the task's
# first declared diversity (quality) metric.
DIVERSITY_PREFERENCE = ("ngram_diversity", "self_bleu_diversity", "sbert_diversity", "distinct", "distinct_2")
QUALITY_PREFERENCE = ("accuracy", "pass@1", "prompt_strict", "maj@1", "win_rate@1", "quality")


@dataclass
class MetricLine:
    metric: str
    direction: str
    values: list[str]
    differences: list[Difference | None]


@dataclass
class Figure:
    svg: str
    caption: str


@dataclass
class TaskSection:
    task: str
    runs: list[RunResult]  # the runs that scored the task, in the report's order
    has_baseline: bool  # the first run of the report scored it: differences are against it
    missing: list[str] = field(default_factory=list)  # runs of the report that did not score it
    metrics: list[MetricLine] = field(default_factory=list)
    tradeoff: Figure | None = None
    tradeoff_note: str = ""
    bars: Figure | None = None
    curves: list[Figure] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)


class Estimates:
    """Every run's values with their 95% interval half widths, by task and metric."""

    def __init__(self, runs: Sequence[RunResult]) -> None:
        self._runs = {run.run_id: run for run in runs}
        self._from_documents: dict[str, dict[str, dict[str, float]]] = {}

    def _document_stderr(self, run: RunResult, task: str) -> dict[str, float]:
        if run.run_id not in self._from_documents:
            by_task: dict[str, tuple[list, list]] = {}
            for row in run.documents():
                values, weights = by_task.setdefault(row["task"], ([], []))
                values.append({k: float("nan") if v is None else v for k, v in row["metrics"].items()})
                weights.append(row.get("weights") or {})
            self._from_documents[run.run_id] = {t: aggregate(v, w).stderr for t, (v, w) in by_task.items()}
        return self._from_documents[run.run_id].get(task, {})

    def get(self, run: RunResult, task: str, metric: str) -> Estimate | None:
        value = run.value(task, metric)
        if value is None:
            return None
        stderr = run.tasks[task].stderr.get(metric)
        if stderr is None:
            stderr = self._document_stderr(run, task).get(metric)
        return Estimate(value, None if stderr is None else Z95 * stderr)


def _format(estimate: Estimate | None) -> str:
    if estimate is None:
        return "—"
    return f"{estimate.value:.2f}" + (f" ± {estimate.half_width:.2f}" if estimate.half_width else "")


def _ordered_union(items: Sequence[Sequence[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in items:
        seen.update(dict.fromkeys(group))
    return list(seen)


def _title(metric: str) -> str:
    d = direction(metric)
    return metric + (" (lower is better)" if d == "lower" else " (neutral)" if d == "none" else "")


def _curve_families(metrics: list[str]) -> dict[str, list[str]]:
    """Families reported at two or more k (``pass`` -> [``pass@1``, ``pass@2``, ...])."""
    families: dict[str, list[str]] = {}
    for metric in metrics:
        if family(metric) != metric:
            families.setdefault(family(metric), []).append(metric)
    return {fam: members for fam, members in families.items() if len(members) >= 2}


def _curves(section: TaskSection, colors: dict[str, int], est: Estimates, metrics: list[str]) -> list[Figure]:
    out = []
    for fam, members in _curve_families(metrics).items():
        series = []
        for run in section.runs:
            points = sorted(
                (split_k(m)[1] or 0, e) for m in members if (e := est.get(run, section.task, m)) is not None
            )
            if points:
                series.append(Series(run.run_id, colors[run.run_id], [k for k, _ in points], [e for _, e in points]))
        if series:
            salt = f"curve-{section.task}-{fam}"
            svg = curve_svg(f"{section.task}: {fam}@k", f"{fam}@k", series, salt=salt)
            caption = f"{fam}@k for k = 1, 2, 4, … from one pool of samples per prompt; bands: 95% intervals."
            out.append(Figure(svg, caption))
    return out


def _bars(section: TaskSection, colors: dict[str, int], est: Estimates, metrics: list[str]) -> Figure | None:
    in_curves = {m for members in _curve_families(metrics).values() for m in members}
    panels = []
    for metric in metrics:
        if metric in in_curves:
            continue
        values = [(r.run_id, colors[r.run_id], e) for r in section.runs if (e := est.get(r, section.task, metric))]
        if values:
            panels.append(Bars(metric, _title(metric), values))
    if not panels:
        return None
    svg = bars_svg(panels, salt=f"bars-{section.task}")
    caption = "Each metric on its own scale from zero, one bar per run; whiskers: 95% intervals."
    return Figure(svg, caption)


def _axis(metrics: list[str], wanted: str, chosen: str | None, preference: Sequence[str]) -> str | None:
    """The task's metric for one axis of its diversity-vs-quality plot, None when it reports none."""
    fits = [m for m in metrics if kind(m) == wanted and direction(m) != "none" and split_k(m)[1] in (None, 1)]
    for name in (chosen, *preference):
        if name in fits:
            return name
    return fits[0] if fits else None


def _tradeoff(
    section: TaskSection, colors: dict[str, int], est: Estimates, metrics: list[str], x_wanted, y_wanted
) -> tuple[Figure | None, str]:
    x_name = _axis(metrics, "diversity", x_wanted, DIVERSITY_PREFERENCE)
    y_name = _axis(metrics, "quality", y_wanted, QUALITY_PREFERENCE)
    if x_name is None or y_name is None:
        return None, ""
    points = []
    for run in section.runs:
        x, y = est.get(run, section.task, x_name), est.get(run, section.task, y_name)
        if x is not None and y is not None:
            points.append(Point(run.run_id, colors[run.run_id], x, y))
    if not points:
        return None, f"No run has values of both {x_name} and {y_name} on this task."
    title = f"{section.task}: diversity vs quality"
    svg = scatter_svg(title, _title(x_name), _title(y_name), points, salt=f"tradeoff-{section.task}")
    caption = (
        f"One point per run on this task: x {x_name}, y {y_name}; whiskers: 95% intervals. "
        "Both axes start at zero, so a gap smaller than the whiskers is noise, not a trade-off."
    )
    return Figure(svg, caption), ""


def _doc_key(row: dict[str, Any]) -> str:
    return str(row.get("doc_id", row.get("doc_index")))


def _card(samples: list[dict]) -> list[dict[str, Any]]:
    return [{"completion": s["completion"], "phrases": describe_scores(s.get("scores") or {})} for s in samples]


def _examples(section: TaskSection, samples: dict[str, list[dict]], per_task: int, per_doc: int):
    """The first documents every run of the task scored, with each run's first samples."""
    by_run: list[dict[str, list[dict]]] = []
    for run in section.runs:
        docs: dict[str, list[dict]] = {}
        for row in samples[run.run_id]:
            if row["task"] == section.task:
                docs.setdefault(_doc_key(row), []).append(row)
        by_run.append(docs)
    if not by_run:
        return []
    shared = [key for key in by_run[0] if all(key in docs for docs in by_run[1:])]
    examples = []
    for key in shared[:per_task]:
        rows = by_run[0][key]
        answer, reference = gold(rows[0].get("target"), rows)
        columns = [
            {"run": run.run_id, "samples": _card(sorted(docs[key], key=lambda r: r["sample_index"])[:per_doc])}
            for run, docs in zip(section.runs, by_run)
        ]
        examples.append({"prompt": rows[0]["prompt"], "gold": answer, "reference": reference, "columns": columns})
    return examples


def build_sections(
    runs: Sequence[RunResult],
    samples_per_task: int,
    samples_per_doc: int,
    diversity_metric: str | None = None,
    quality_metric: str | None = None,
) -> list[TaskSection]:
    # Each run against the first, pair by pair: a task the first run shares with only some runs is still compared.
    against_first = {
        run.run_id: {(row.task, row.metric): row.differences[0] for row in compare_runs([runs[0], run])}
        for run in runs[1:]
    }
    samples = {run.run_id: run.samples() for run in runs}
    colors = {run.run_id: i for i, run in enumerate(runs)}
    est = Estimates(runs)
    sections = []
    for task in _ordered_union([list(run.tasks) for run in runs]):
        having = [run for run in runs if task in run.tasks]
        section = TaskSection(task, having, task in runs[0].tasks, [r.run_id for r in runs if task not in r.tasks])
        metrics = _ordered_union([list(run.tasks[task].metrics) for run in having])
        others = having[1:] if section.has_baseline else []
        for metric in metrics:
            differences = [against_first[r.run_id].get((task, metric)) for r in others]
            values = [_format(est.get(run, task, metric)) for run in having]
            section.metrics.append(MetricLine(metric, direction(metric), values, differences))
        section.tradeoff, section.tradeoff_note = _tradeoff(
            section, colors, est, metrics, diversity_metric, quality_metric
        )
        section.bars = _bars(section, colors, est, metrics)
        section.curves = _curves(section, colors, est, metrics)
        section.examples = _examples(section, samples, samples_per_task, samples_per_doc)
        sections.append(section)
    return sections


def shared_tasks_note(runs: Sequence[RunResult]) -> str:
    """A sentence when the runs do not all score the same tasks ("" when they do, or for one run)."""
    if len(runs) < 2:
        return ""
    task_sets = [set(run.tasks) for run in runs]
    if all(tasks == task_sets[0] for tasks in task_sets):
        return ""
    scored = "; ".join(f"{run.run_id} scored {', '.join(run.tasks) or 'no task'}" for run in runs)
    if not set.intersection(*task_sets):
        return f"These runs share no task, so no value is compared: {scored}. Each task shows the runs that scored it."
    return f"These runs do not all score the same tasks ({scored}). Each task shows the runs that scored it."


def render_report(
    runs: Sequence[RunResult],
    samples_per_task: int = 3,
    samples_per_doc: int = 2,
    diversity_metric: str | None = None,
    quality_metric: str | None = None,
) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.report", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    runs = list(runs)
    reported = {m for run in runs for entry in run.tasks.values() for m in entry.metrics}
    for option, name in (("--diversity-metric", diversity_metric), ("--quality-metric", quality_metric)):
        if name is not None and name not in reported:
            raise EvalkitError(f"{option} {name}: no run reports it (they report {', '.join(sorted(reported))})")
    sections = build_sections(runs, samples_per_task, samples_per_doc, diversity_metric, quality_metric)
    return env.get_template("page.html.j2").render(
        runs=runs,
        sections=sections,
        shared_note=shared_tasks_note(runs),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=__version__,
    )


def write_report(output: Path, html: str) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        raise EvalkitError(f"cannot write report {output}: {exc.strerror or exc}") from None
