"""Best-of-k Bradley-Terry win rate against a reference: exact expectation vs brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from evalkit.metrics import METRICS
from evalkit.metrics.bradley_terry import bt_win_rate_at_k, win_probability


def brute_force(rewards, reference, k):
    """Mean over every k-subset of P(best sample beats the reference); reward ties split uniformly."""
    total = 0.0
    subsets = list(itertools.combinations(range(len(rewards)), k))
    for subset in subsets:
        best = max(rewards[i] for i in subset)
        winners = [i for i in subset if rewards[i] == best]
        total += sum(1 / (1 + math.exp(reference - rewards[i])) for i in winners) / len(winners)
    return total / len(subsets)


@pytest.mark.parametrize("seed", range(12))
def test_curve_equals_enumeration_on_random_pools(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    # Some pools draw from few values, so several samples tie on reward.
    values = [rng.gauss(0, 2) for _ in range(rng.choice([2, 3, n]))]
    rewards = [rng.choice(values) for _ in range(n)]
    reference = rng.gauss(0, 2)
    for k in range(1, n + 1):
        assert bt_win_rate_at_k(rewards, reference, k) == pytest.approx(brute_force(rewards, reference, k), abs=1e-12)


def test_win_probability_is_the_bradley_terry_formula_and_stable():
    for r, ref in [(0.0, 0.0), (1.5, -0.5), (-3.0, 2.0)]:
        assert win_probability(r, ref) == pytest.approx(math.exp(r) / (math.exp(r) + math.exp(ref)))
    assert win_probability(1000.0, -1000.0) == 1.0
    assert win_probability(-1000.0, 1000.0) == 0.0


def test_metric_reports_the_curve_mean_reward_and_reference():
    rewards = [0.3, -1.0, 2.0, 0.5]
    doc = {"_rewards": rewards, "_reference_reward": 0.4}
    result = METRICS.get("bt_win_rate")(["a", "b", "c", "d"], doc, None)
    assert sorted(result.per_doc) == ["mean_reward", "reference_reward", "win_rate@1", "win_rate@2", "win_rate@4"]
    assert result.per_doc["win_rate@4"] == pytest.approx(100 * win_probability(2.0, 0.4))
    assert result.per_doc["win_rate@1"] == pytest.approx(100 * sum(win_probability(r, 0.4) for r in rewards) / 4)
    assert result.per_doc["win_rate@2"] == pytest.approx(100 * brute_force(rewards, 0.4, 2))
    assert result.per_doc["mean_reward"] == pytest.approx(0.45)
    assert [s["reward"] for s in result.per_sample] == rewards
    # Best-of-k never gets worse with more samples.
    curve = [result.per_doc[f"win_rate@{k}"] for k in (1, 2, 4)]
    assert curve == sorted(curve)


def test_directions_of_the_chat_metrics():
    from evalkit.metrics.directions import direction, kind

    assert direction("win_rate@4") == "higher" and kind("win_rate@4") == "quality"
    assert direction("reference_reward") == "none"  # the reference's reward does not depend on the model
    assert kind("distinct") == "diversity" and kind("utility") == "quality"
