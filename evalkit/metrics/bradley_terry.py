"""Best-of-k win rate against a reference answer under the Bradley-Terry model ("Preserving Diversity in SFT", E.1).

P(y beats y') = exp(r(x, y)) / (exp(r(x, y)) + exp(r(x, y'))) = sigmoid(r(x, y) - r(x, y')),
with r a reward model and y' the reference answer. Best-of-k keeps the sample with the highest
reward among k; the win rate at k is the exact expectation over all k-subsets of the n samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalkit.metrics.sampling import best_of_n_at_k


def win_probability(reward: float, reference_reward: float) -> float:
    """sigmoid(reward - reference_reward), written so that neither branch overflows."""
    d = reward - reference_reward
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    e = math.exp(d)
    return e / (1.0 + e)


def bt_win_rate_at_k(rewards: Sequence[float], reference_reward: float, k: int) -> float:
    """Expected P(best of k samples beats the reference), over all k-subsets of the samples."""
    wins = [win_probability(r, reference_reward) for r in rewards]
    return best_of_n_at_k(rewards, wins, k)
