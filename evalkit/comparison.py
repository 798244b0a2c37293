"""`evalkit compare`: every shared task and metric of several runs against the first, with a
paired bootstrap confidence interval over documents and a verdict per difference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.metrics.bootstrap import PairedInterval, paired_bootstrap
from evalkit.metrics.directions import direction
from evalkit.results import RunResult

DocValues = dict[str, dict[str, dict[str, float]]]  # task -> document key -> metric values
DocWeights = dict[str, dict[str, dict[str, float]]]  # task -> document key -> metric weights (when not 1)


@dataclass(frozen=True)
class Difference:
    """One run against the baseline run on one metric."""

    delta: float | None  # difference of the reported task metrics (run minus baseline)
    interval: PairedInterval | None  # over the documents both runs scored; None without per-document values
    verdict: str  # better, worse, no significant difference, higher, lower (neutral metrics) or n/a


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
            "ci95": [None if d.interval is None else [d.interval.low, d.interval.high] for d in self.differences],
            "paired_docs": [0 if d.interval is None else d.interval.n_pairs for d in self.differences],
            "verdicts": [d.verdict for d in self.differences],
        }


@dataclass(frozen=True)
class Comparison:
    """Runs compared with the first: one row per task and metric they share."""

    runs: list[RunResult]
    rows: list[ComparisonRow]
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [r.run_id for r in self.runs],
            "confidence": self.confidence,
            "rows": [r.to_json() for r in self.rows],
        }


def document_values(run: RunResult) -> tuple[DocValues, DocWeights]:
    """Per-document metric values and weights by task and document id (older files: by position)."""
    values: DocValues = {}
    weights: DocWeights = {}
    for row in run.documents():
        key = str(row.get("doc_id", row.get("doc_index")))
        values.setdefault(row["task"], {})[key] = {k: (math.nan if v is None else v) for k, v in row["metrics"].items()}
        weights.setdefault(row["task"], {})[key] = row.get("weights", {})
    return values, weights


def _paired(base: dict[str, dict[str, float]], other: dict[str, dict[str, float]], weights, metric: str):
    """Values of the documents both runs scored, with the baseline's weights."""
    keys = [k for k, v in base.items() if metric in v and metric in other.get(k, {})]
    w = [weights.get(k, {}).get(metric, 1.0) for k in keys]
    return [base[k][metric] for k in keys], [other[k][metric] for k in keys], w


def _verdict(metric: str, interval: PairedInterval | None) -> str:
    raw = "n/a" if interval is None else interval.verdict
    d = direction(metric)
    if raw not in ("higher", "lower") or d == "none":
        return raw
    return "better" if (raw == "higher") == (d == "higher") else "worse"


def compare_runs(runs: Sequence[RunResult], confidence: float = 0.95, seed: int = 0) -> list[ComparisonRow]:
    """One row per (task, metric) of the first run that every other run has too."""
    loaded = [document_values(r) for r in runs]
    doc_values = [values for values, _ in loaded]
    base_weights = loaded[0][1]
    rows = []
    for task, entry in runs[0].tasks.items():
        if not all(task in r.tasks for r in runs[1:]):
            continue
        for metric in entry.metrics:
            base = entry.value(metric)
            row = ComparisonRow(task, metric, direction(metric), [base])
            for run, values in zip(runs[1:], doc_values[1:]):
                value = run.value(task, metric)
                row.values.append(value)
                a, b, w = _paired(doc_values[0].get(task, {}), values.get(task, {}), base_weights.get(task, {}), metric)
                interval = paired_bootstrap(a, b, confidence, seed=seed, weights=w) if a else None
                delta = None if value is None or base is None else value - base
                row.differences.append(Difference(delta, interval, _verdict(metric, interval)))
            rows.append(row)
    return rows
