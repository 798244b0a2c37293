"""Metrics: pure functions over a document's samples, each declared once with what it reports.

``METRICS`` maps the name a task file uses to its :class:`MetricSpec` (evalkit.metrics.spec):
called as ``(completions, doc, answer_field)`` it returns a :class:`MetricResult` with
per-document values (averaged over documents into the task's metrics) and optional per-sample
scores (written beside each sample in samples.jsonl). The names below load on first access, so
importing one metric module (``evalkit.metrics.sampling``) does not import them all.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "METRICS": "evalkit.metrics.spec",
    "MetricSpec": "evalkit.metrics.spec",
    "MetricResult": "evalkit.metrics.spec",
    "Output": "evalkit.metrics.spec",
    "Aggregate": "evalkit.metrics.aggregation",
    "aggregate": "evalkit.metrics.aggregation",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'evalkit.metrics' has no attribute {name!r}")
    if name == "METRICS":
        importlib.import_module("evalkit.metrics.task_metrics")  # the declarations fill the registry
    return getattr(importlib.import_module(_LAZY[name]), name)
