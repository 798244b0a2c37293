"""Metrics: pure functions over a document's samples, each declared once with what it reports.

``METRICS`` maps the name a task file uses to its :class:`MetricSpec` (evalkit.metrics.spec):
called as ``(completions, doc, answer_field)`` it returns a :class:`MetricResult` with
per-document values (averaged over documents into the task's metrics) and optional per-sample
scores (written beside each sample in samples.jsonl).
"""

from __future__ import annotations

from evalkit.metrics import task_metrics as _declarations  # noqa: F401 - declares every metric
from evalkit.metrics.aggregation import Aggregate, aggregate
from evalkit.metrics.spec import METRICS, MetricResult, MetricSpec, Output

__all__ = ["METRICS", "Aggregate", "MetricResult", "MetricSpec", "Output", "aggregate"]
