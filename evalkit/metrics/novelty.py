"""NoveltyBench (Zhang et al. 2025): greedy partition into equivalence classes, distinct, utility.

Written to match the official novelty-bench/novelty-bench code (src/partition.py, src/score.py):
- partition: sample i joins the class of the first earlier class whose representative (its
  first member) is equivalent to it, ``equivalent(representative, sample)``, else opens a class;
- two texts of at most 5 whitespace words (lower-cased) are equivalent iff
  2 x |shared unigram set| >= the longer word count; longer pairs go to the model-based test;
- reward -> score 1..10 by ``bisect_left(thresholds, reward) + 1`` (thresholds calibrated on
  Skywork-Reward-Gemma-2-27B-v0.2);
- utility = sum_i p^i s_i / sum_i p^i over all samples, s_i the score of sample i when it opens
  a new class, else 0 (patience p = 0.8); distinct = number of classes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

REWARD_THRESHOLDS = (-7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875)
PATIENCE = 0.8
SHORT_WORDS = 5

Equivalent = Callable[[str, str], bool]


def short_text_equality(a: str, b: str, max_words: int = SHORT_WORDS) -> bool | None:
    """The unigram rule for short texts: a verdict when both have <= ``max_words`` words, else None."""
    words_a, words_b = a.strip().lower().split(), b.strip().lower().split()
    longer = max(len(words_a), len(words_b))
    if longer > max_words:
        return None
    return 2 * len(set(words_a) & set(words_b)) >= longer


def partition(
    samples: Sequence[str],
    equivalent: Equivalent | None = None,
    same_many: Callable[[Sequence[str], str], Sequence[bool]] | None = None,
) -> list[int]:
    """Class index of every sample (classes numbered in order of first appearance).

    ``equivalent(representative, sample)`` tests one pair; a model-backed test may instead give
    ``same_many(representatives, sample)``, one verdict per representative in one batch (the
    first True wins, so the result is the same as testing the pairs one by one)."""
    if (equivalent is None) == (same_many is None):
        raise ValueError("give exactly one of equivalent and same_many")
    if same_many is None:
        same_many = lambda reps, sample: [equivalent(rep, sample) for rep in reps]  # noqa: E731
    representatives: list[str] = []
    labels: list[int] = []
    for sample in samples:
        verdicts = list(same_many(representatives, sample)) if representatives else []
        if True in verdicts:
            labels.append(verdicts.index(True))
        else:
            representatives.append(sample)
            labels.append(len(representatives) - 1)
    return labels


def reward_to_score(reward: float, thresholds: Sequence[float] = REWARD_THRESHOLDS) -> int:
    """A raw reward mapped to NoveltyBench's 1..10 scale."""
    return bisect.bisect_left(list(thresholds), reward) + 1


def generation_scores(labels: Sequence[int], scores: Sequence[float]) -> list[float]:
    """Each sample's score if it opens a new class, else 0."""
    seen: set[int] = set()
    out = []
    for label, score in zip(labels, scores, strict=True):
        out.append(score if label not in seen else 0)
        seen.add(label)
    return out


def utility(labels: Sequence[int], scores: Sequence[float], patience: float = PATIENCE) -> float:
    """sum_i p^i g_i / sum_i p^i with g the generation scores (novel samples' scores, else 0)."""
    gains = generation_scores(labels, scores)
    weights = [patience**i for i in range(len(gains))]
    return sum(w * g for w, g in zip(weights, gains)) / sum(weights)


def distinct(labels: Sequence[int]) -> int:
    """The number of equivalence classes."""
    return len(set(labels))
