"""Test-time scaling metrics from one pool of n samples per problem: pass@k, maj@k, BoN@k.

Every value is the exact expectation over all k-subsets of the n samples (never one random
draw), so a curve k = 1, 2, 4, ..., n computed from the same pool is smooth and reproducible.
maj@k and BoN@k are written here because no kept library computes their exact expectations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) (Chen et al. 2021), as the numerically stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def curve_ks(n: int, extra: Sequence[int] = ()) -> list[int]:
    """k = 1, 2, 4, ... up to n, with n itself when it is not a power of two, plus any ``extra``
    k (such as code's 10 and 100) that is not above n."""
    ks = {1 << i for i in range(n.bit_length())} | {n} | {k for k in extra if 1 <= k <= n}
    return sorted(ks)


def best_of_n_at_k(rewards: Sequence[float], scores: Sequence[float], k: int) -> float:
    """Expected score of the highest-reward sample among k drawn without replacement.

    Samples that tie on reward split the choice uniformly. Grouped by reward value, the best of
    a k-subset lies in group g with probability (C(L_g + s_g, k) - C(L_g, k)) / C(n, k), where
    s_g is the group's size and L_g the number of samples with lower reward; given that, by
    symmetry the chosen sample is any member of the group with equal probability."""
    n = len(rewards)
    if len(scores) != n or not 1 <= k <= n:
        raise ValueError(f"need as many scores as rewards and 1 <= k <= n, got {len(scores)}, {n}, k={k}")
    order = sorted(range(n), key=lambda i: rewards[i])
    total, below, i = 0.0, 0, 0
    while i < n:
        j = i
        while j < n and rewards[order[j]] == rewards[order[i]]:
            j += 1
        size = j - i
        mean_score = sum(scores[order[t]] for t in range(i, j)) / size
        total += mean_score * (comb(below + size, k) - comb(below, k))
        below += size
        i = j
    return total / comb(n, k)


def group_answers(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> list[int | None]:
    """Class index of each answer: an answer joins the class of the first earlier representative
    it is the same as, else opens a new class. No answer (None) belongs to no class."""
    representatives: list[str] = []
    labels: list[int | None] = []
    for answer in answers:
        if answer is None:
            labels.append(None)
            continue
        for index, rep in enumerate(representatives):
            if answer == rep or same(rep, answer):
                labels.append(index)
                break
        else:
            representatives.append(answer)
            labels.append(len(representatives) - 1)
    return labels


def maj_at_k(labels: Sequence[Hashable | None], correct_labels: set[Hashable], k: int) -> float:
    """Expected correctness of a majority vote over k of the samples, over all k-subsets.

    ``labels`` are the samples' answer classes (None: no answer, which does not vote);
    ``correct_labels`` the classes equal to the gold answer. Tied classes split the vote
    uniformly; a subset with no vote at all scores 0.

    For a correct class c holding t of the k votes, the rest of the subset is counted with a
    generating function over the other classes: each takes x <= t samples (C(m_j, x) ways) and
    counts as tied when x == t; the subset scores 1 / (1 + ties)."""
    n = len(labels)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    counts: dict[Hashable, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    abstain = n - sum(counts.values())
    total = 0.0
    for c in correct_labels:
        m_c = counts.get(c, 0)
        others = [m for label, m in counts.items() if label != c]
        for t in range(1, min(k, m_c) + 1):
            rest = k - t
            # ways[x, r]: subsets of the other samples of size x with r classes tied at t votes
            ways = np.zeros((rest + 1, len(others) + 1))
            ways[: min(rest, abstain) + 1, 0] = [comb(abstain, x) for x in range(min(rest, abstain) + 1)]
            for m in others:
                new = np.zeros_like(ways)
                for x in range(min(m, t, rest) + 1):
                    w = comb(m, x)
                    if x == t:
                        new[x:, 1:] += w * ways[: rest + 1 - x, :-1]
                    else:
                        new[x:, :] += w * ways[: rest + 1 - x, :]
                ways = new
            ties = np.arange(len(others) + 1)
            total += comb(m_c, t) * float(np.sum(ways[rest] / (1 + ties)))
    return total / comb(n, k)
