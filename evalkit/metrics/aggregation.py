"""Per-document metric values -> a task's metrics: (weighted) means and their standard errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from evalkit.metrics.spec import split_k


@dataclass
class Aggregate:
    metrics: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)


def _natural(name: str) -> tuple[str, int]:
    """``maj@2`` before ``maj@16``: curves keep their k order."""
    head, k = split_k(name)
    return head, -1 if k is None else k


def aggregate(per_doc: Sequence[dict[str, float]], weights: Sequence[dict[str, float]] | None = None) -> Aggregate:
    """(Weighted) mean over documents of every per-document value, with its standard error.

    With weights the standard error is the usual one of a ratio estimator,
    sqrt(n / (n - 1) * sum(w_i^2 (v_i - mean)^2)) / sum(w_i); with unit weights it is s / sqrt(n)."""
    out = Aggregate()
    names = sorted({k for d in per_doc for k in d}, key=_natural)
    doc_weights = weights or [{} for _ in per_doc]
    for name in names:
        pairs = [
            (d[name], w.get(name, 1.0))
            for d, w in zip(per_doc, doc_weights)
            if name in d and not math.isnan(d[name]) and w.get(name, 1.0) > 0
        ]
        if not pairs:
            out.metrics[name] = float("nan")
            continue
        total = math.fsum(w for _, w in pairs)
        mean = math.fsum(v * w for v, w in pairs) / total
        out.metrics[name] = mean
        n = len(pairs)
        if n > 1:
            spread = math.fsum((w * (v - mean)) ** 2 for v, w in pairs)
            out.stderr[name] = math.sqrt(n / (n - 1) * spread) / total
    return out
