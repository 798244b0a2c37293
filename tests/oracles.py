"""Hand-written oracles for end-to-end tests: the textbook formulas, written out without evalkit's
code, to recompute a run's metrics from the samples it wrote."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(answers: list[Any], correct: Callable[[Any], bool], k: int) -> float:
    """Majority vote over every k-subset of the answers (None does not vote), ties split evenly,
    a subset with no vote scores 0."""
    subsets = list(itertools.combinations(answers, k))
    total = 0.0
    for subset in subsets:
        votes: dict[Any, int] = {}
        for answer in subset:
            if answer is not None:
                votes[answer] = votes.get(answer, 0) + 1
        if votes:
            top = max(votes.values())
            winners = [a for a, v in votes.items() if v == top]
            total += sum(map(correct, winners)) / len(winners)
    return total / len(subsets)


def by_document(samples: Iterable[dict], task: str) -> list[list[dict]]:
    """A task's samples grouped by document, in document and sample order."""
    docs: dict[int, list[dict]] = {}
    for s in samples:
        if s["task"] == task:
            docs.setdefault(s["doc_index"], []).append(s)
    return [sorted(docs[d], key=lambda s: s["sample_index"]) for d in sorted(docs)]


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return math.fsum(values) / len(values)
