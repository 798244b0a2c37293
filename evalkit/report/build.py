"""`evalkit report`: one self-contained HTML page for one or more runs.

Run metadata, metric tables (with paired-bootstrap verdicts against the first run), test-time
scaling curves (every ``family@k`` metric with two or more k), a diversity-vs-quality scatter
with one point per run, and a few sample outputs per task side by side.
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
from evalkit.metrics.directions import direction, family, kind, split_k
from evalkit.report.plots import Series, curve_svg, scatter_svg
from evalkit.results import RunResult

# The metrics the diversity-vs-quality scatter prefers for its axes, first found first.
DIVERSITY_PREFERENCE = ("ngram_diversity", "self_bleu_diversity", "sbert_diversity", "distinct", "distinct_2")
QUALITY_PREFERENCE = ("accuracy", "pass@1", "prompt_strict", "maj@1")


@dataclass
class MetricLine:
    metric: str
    direction: str
    values: list[str]
    differences: list[Difference | None]


@dataclass
class TaskSection:
    task: str
    metrics: list[MetricLine] = field(default_factory=list)
    curves: list[tuple[str, str]] = field(default_factory=list)  # (family, svg)
    examples: list[dict[str, Any]] = field(default_factory=list)


def _number(run: RunResult, task: str, metric: str) -> float | None:
    return run.value(task, metric)


def _format(run: RunResult, task: str, metric: str) -> str:
    value = _number(run, task, metric)
    if value is None:
        return "—" if task in run.tasks else ""
    stderr = run.tasks[task].stderr.get(metric)
    return f"{value:.2f}" + (f" ± {stderr:.2f}" if stderr else "")


def _ordered_union(items: Sequence[Sequence[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in items:
        seen.update(dict.fromkeys(group))
    return list(seen)


def _curves(runs: Sequence[RunResult], task: str, metrics: list[str]) -> list[tuple[str, str]]:
    families: dict[str, list[str]] = {}
    for metric in metrics:
        if family(metric) != metric:
            families.setdefault(family(metric), []).append(metric)
    out = []
    for fam, members in families.items():
        if len(members) < 2:
            continue
        series = []
        for run in runs:
            points = sorted((split_k(m)[1], v) for m in members if (v := _number(run, task, m)) is not None)
            if points:
                series.append(Series(run.run_id, [k for k, _ in points], [v for _, v in points]))
        if series:
            svg = curve_svg(f"{task}: {fam}@k", f"{fam}@k", series, salt=f"curve-{task}-{fam}")
            out.append((fam, svg))
    return out


def _pick(runs: Sequence[RunResult], wanted: str, preference: Sequence[str]) -> str | None:
    names = {m for run in runs for entry in run.tasks.values() for m in entry.metrics}
    for name in preference:
        if name in names:
            return name
    candidates = sorted(n for n in names if kind(n) == wanted and direction(n) != "none")
    return candidates[0] if candidates else None


def _run_mean(run: RunResult, metric: str) -> float | None:
    values = [v for task in run.tasks if (v := _number(run, task, metric)) is not None]
    return sum(values) / len(values) if values else None


def diversity_quality_scatter(
    runs: Sequence[RunResult], diversity_metric: str | None = None, quality_metric: str | None = None
) -> tuple[str | None, str]:
    """The scatter's SVG (None when no run has both kinds of metric) and a caption."""
    x_name = diversity_metric or _pick(runs, "diversity", DIVERSITY_PREFERENCE)
    y_name = quality_metric or _pick(runs, "quality", QUALITY_PREFERENCE)
    if x_name is None or y_name is None:
        return None, "No run reports both a diversity metric and a quality metric."
    points = [
        (run.run_id, x, y)
        for run in runs
        if (x := _run_mean(run, x_name)) is not None and (y := _run_mean(run, y_name)) is not None
    ]
    if not points:
        return None, f"No run reports both {x_name} and {y_name}."
    caption = f"x: {x_name}, y: {y_name}, each the mean over the run's tasks that report it."
    return scatter_svg("diversity vs quality", x_name, y_name, points, salt="scatter"), caption


def _doc_key(row: dict[str, Any]) -> str:
    return str(row.get("doc_id", row.get("doc_index")))


def _examples(runs: Sequence[RunResult], samples: list[list[dict]], task: str, per_task: int, per_doc: int):
    """The first documents every run of the task scored, with each run's first samples."""
    having = [(run, rows) for run, rows in zip(runs, samples) if task in run.tasks]
    by_run: list[dict[str, list[dict]]] = []
    for _, rows in having:
        docs: dict[str, list[dict]] = {}
        for row in rows:
            if row["task"] == task:
                docs.setdefault(_doc_key(row), []).append(row)
        by_run.append(docs)
    if not by_run:
        return []
    shared = [key for key in by_run[0] if all(key in docs for docs in by_run[1:])]
    examples = []
    for key in shared[:per_task]:
        first = by_run[0][key][0]
        columns = [
            {"run": run.run_id, "samples": sorted(docs[key], key=lambda r: r["sample_index"])[:per_doc]}
            for (run, _), docs in zip(having, by_run)
        ]
        examples.append({"prompt": first["prompt"], "target": first.get("target"), "columns": columns})
    return examples


def build_sections(runs: Sequence[RunResult], samples_per_task: int, samples_per_doc: int) -> list[TaskSection]:
    comparison = {(r.task, r.metric): r.differences for r in compare_runs(runs)} if len(runs) > 1 else {}
    samples = [run.samples() for run in runs]
    sections = []
    for task in _ordered_union([list(run.tasks) for run in runs]):
        metrics = _ordered_union([list(run.tasks[task].metrics) if task in run.tasks else [] for run in runs])
        section = TaskSection(task)
        for metric in metrics:
            differences = comparison.get((task, metric)) or [None] * (len(runs) - 1)
            values = [_format(run, task, metric) for run in runs]
            section.metrics.append(MetricLine(metric, direction(metric), values, list(differences)))
        section.curves = _curves(runs, task, metrics)
        section.examples = _examples(runs, samples, task, samples_per_task, samples_per_doc)
        sections.append(section)
    return sections


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
    scatter, caption = diversity_quality_scatter(runs, diversity_metric, quality_metric)
    return env.get_template("page.html.j2").render(
        runs=runs,
        sections=build_sections(runs, samples_per_task, samples_per_doc),
        scatter=scatter,
        scatter_caption=caption,
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
