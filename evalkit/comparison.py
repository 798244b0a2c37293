"""`evalkit compare`: every shared task and metric of several runs against the first, with a
paired bootstrap confidence interval over the documents both runs scored, and a verdict per
difference corrected for the number of metrics compared (evalkit.metrics.multiple).

Before any number is computed, each shared task's ``comparable`` record (evalkit.comparability)
is checked: runs that measured different things are refused unless mismatches are allowed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.comparability import TaskComparability, compare_records
from evalkit.errors import EvalkitError
from evalkit.metrics.bootstrap import PairedInterval, paired_bootstrap
from evalkit.metrics.directions import direction
from evalkit.metrics.multiple import DESCRIPTIONS, Correction, adjust, check_correction
from evalkit.results import RunResult

DocValues = dict[str, dict[str, dict[str, float]]]  # task -> document key -> metric values
DocWeights = dict[str, dict[str, dict[str, float]]]  # task -> document key -> metric weights (when not 1)


class ComparisonMismatch(EvalkitError):
    """Runs that measured different things on a task (other documents, sampling or prompt)."""


@dataclass(frozen=True)
class Difference:
    """One run against the baseline run on one metric."""

    # Mean of the per-document differences over the documents both runs scored (the difference of
    # the task metrics when either run has no per-document values); always inside ``interval``.
    delta: float | None
    interval: PairedInterval | None  # over the documents both runs scored; None without per-document values
    verdict: str  # better, worse, no significant difference, higher, lower (neutral metrics) or n/a
    p_value: float | None = None  # of "no difference", adjusted for the metrics compared (the correction)

    @property
    def paired(self) -> int:
        return 0 if self.interval is None else self.interval.n_pairs


@dataclass
class ComparisonRow:
    task: str
    metric: str
    direction: str
    values: list[float | None]
    differences: list[Difference] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "direction": self.direction,
            "values": self.values,
            "deltas": [d.delta for d in self.differences],
            "ci95": [_span(d.interval) for d in self.differences],
            "paired_docs": [d.paired for d in self.differences],
            "p_values": [d.p_value for d in self.differences],
            "verdicts": [d.verdict for d in self.differences],
        }


def _span(interval: PairedInterval | None) -> list[float] | None:
    return None if interval is None or interval.low is None else [interval.low, interval.high]  # type: ignore[list-item]


@dataclass(frozen=True)
class Comparison:
    """Runs compared with the first: one row per task and metric they share."""

    runs: list[RunResult]
    rows: list[ComparisonRow]
    confidence: float
    correction: Correction = "holm"
    comparability: list[TaskComparability] = field(default_factory=list)

    @property
    def family_sizes(self) -> list[int]:
        """Metrics with a p-value in each comparison (run after the first): the correction's m."""
        return [sum(r.differences[i].p_value is not None for r in self.rows) for i in range(len(self.runs) - 1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [r.run_id for r in self.runs],
            "confidence": self.confidence,
            "correction": {
                "method": self.correction,
                "description": DESCRIPTIONS[self.correction],
                "metrics_per_comparison": self.family_sizes,
            },
            "comparability": [c.to_json() for c in self.comparability],
            "rows": [r.to_json() for r in self.rows],
        }


def document_values(run: RunResult) -> tuple[DocValues, DocWeights]:
    """Per-document metric values and weights by task and document id (older files: by position);
    RunResult.documents checks the rows."""
    values: DocValues = {}
    weights: DocWeights = {}
    for row in run.documents():
        metrics, row_weights = row["metrics"], row.get("weights") or {}
        key = str(row.get("doc_id", row.get("doc_index")))
        values.setdefault(row["task"], {})[key] = {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}
        weights.setdefault(row["task"], {})[key] = {k: float(v) for k, v in row_weights.items() if v is not None}
    return values, weights


def shared_tasks(runs: Sequence[RunResult]) -> list[str]:
    """The first run's tasks that every other run has too; none is an error (nothing to compare)."""
    shared = [t for t in runs[0].tasks if all(t in r.tasks for r in runs[1:])]
    if not shared:
        listed = "; ".join(f"{r.run_id}: {', '.join(r.tasks) or 'no tasks'}" for r in runs)
        raise EvalkitError(f"the runs have no task in common, so there is nothing to compare ({listed})")
    return shared


def check_comparable(runs: Sequence[RunResult], allow_mismatch: bool = False) -> list[TaskComparability]:
    """Each shared task of each run against the first's: what differs in what was measured (an
    error unless ``allow_mismatch``), in how (shown), and what cannot be told (older files)."""
    base = runs[0]
    found = [
        compare_records(task, base.tasks[task].comparable, run.tasks[task].comparable, base.run_id, run.run_id)
        for run in runs[1:]
        for task in shared_tasks(runs)
    ]
    differing = [c for c in found if c.measured]
    if differing and not allow_mismatch:
        what = "; ".join(f"task {c.task} ({base.run_id} vs {c.run}): {', '.join(c.measured)}" for c in differing)
        raise ComparisonMismatch(
            f"the runs did not measure the same thing: {what}; rerun with the same settings, "
            "or pass --allow-mismatch to compare the documents they share anyway"
        )
    return found


def _paired(base: dict[str, dict[str, float]], other: dict[str, dict[str, float]], weights, metric: str):
    """Values of the documents both runs scored, with the baseline's weights."""
    keys = [k for k, v in base.items() if metric in v and metric in other.get(k, {})]
    w = [weights.get(k, {}).get(metric, 1.0) for k in keys]
    return [base[k][metric] for k in keys], [other[k][metric] for k in keys], w


def _directed(metric: str, raw: str) -> str:
    d = direction(metric)
    if raw not in ("higher", "lower") or d == "none":
        return raw
    return "better" if (raw == "higher") == (d == "higher") else "worse"


def judge_family(
    metrics: Sequence[str],
    intervals: Sequence[PairedInterval | None],
    confidence: float = 0.95,
    correction: Correction = "holm",
) -> list[tuple[str, float | None]]:
    """(verdict, adjusted p-value) of each metric of one comparison, corrected over all of them.
    A change is significant when its interval leaves out 0 and, with a correction, its adjusted
    p-value is below 1 - confidence."""
    tested = [i for i, ci in enumerate(intervals) if ci is not None and ci.p_value is not None]
    adjusted = dict(zip(tested, adjust([intervals[i].p_value for i in tested], correction)))  # type: ignore[union-attr,misc]
    out: list[tuple[str, float | None]] = []
    for i, (metric, ci) in enumerate(zip(metrics, intervals)):
        raw = "n/a" if ci is None else ci.verdict
        p = adjusted.get(i)
        if raw in ("higher", "lower") and correction != "none" and (p is None or p >= 1 - confidence):
            raw = "no significant difference"
        out.append((_directed(metric, raw), p))
    return out


def compare_runs(
    runs: Sequence[RunResult],
    confidence: float = 0.95,
    seed: int = 0,
    correction: Correction = "holm",
    tested: Callable[[str], bool] | None = None,
) -> list[ComparisonRow]:
    """One row per (task, metric) of the first run that every other run has too. ``tested``: the
    metrics that form the family the correction is over (default: all compared)."""
    check_correction(correction)
    loaded = [document_values(r) for r in runs]
    doc_values = [values for values, _ in loaded]
    base_weights = loaded[0][1]
    rows: list[ComparisonRow] = []
    intervals: list[list[PairedInterval | None]] = []  # per row, per run after the first
    for task, entry in runs[0].tasks.items():
        if not all(task in r.tasks for r in runs[1:]):
            continue
        for metric in entry.metrics:
            row = ComparisonRow(task, metric, direction(metric), [entry.value(metric)])
            cis: list[PairedInterval | None] = []
            for run, values in zip(runs[1:], doc_values[1:]):
                row.values.append(run.value(task, metric))
                a, b, w = _paired(doc_values[0].get(task, {}), values.get(task, {}), base_weights.get(task, {}), metric)
                ci = paired_bootstrap(a, b, confidence, seed=seed, weights=w) if a else None
                cis.append(ci if ci is None or ci.n_pairs else None)
            rows.append(row)
            intervals.append(cis)
    for j in range(len(runs) - 1):
        family = [i for i, row in enumerate(rows) if tested is None or tested(row.metric)]
        metrics, cis = [rows[i].metric for i in family], [intervals[i][j] for i in family]
        judged = dict(zip(family, judge_family(metrics, cis, confidence, correction)))
        for i, row in enumerate(rows):
            ci = intervals[i][j]
            base, value = row.values[0], row.values[j + 1]
            delta = ci.delta if ci is not None else None if value is None or base is None else value - base
            verdict, p = judged.get(i, (_directed(row.metric, "n/a" if ci is None else ci.verdict), None))
            row.differences.append(Difference(delta, ci, verdict, p))
    return rows
