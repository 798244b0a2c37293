"""The paired bootstrap's parts against independent oracles: the jackknife acceleration written as
a leave-one-out loop, the paired t-test of scipy.stats, the p-value as the level at which the BCa
interval's end reaches zero, and the edges the docs state (6 pairs at 95%, 2,000 resamples)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics import bootstrap
from evalkit.metrics.bootstrap import paired_bootstrap

RNG = np.random.default_rng(11)
A = RNG.binomial(1, 0.55, 40).astype(float)
B = np.clip(A + RNG.choice([-1.0, 0.0, 0.0, 1.0, 1.0], 40), 0, 1)


def _jackknife_acceleration(diff: np.ndarray, weight: np.ndarray) -> float:
    """Efron's acceleration from the leave-one-out weighted means, one document at a time."""
    loo = []
    for i in range(diff.size):
        keep = np.arange(diff.size) != i
        loo.append(np.sum(diff[keep] * weight[keep]) / np.sum(weight[keep]))
    loo = np.array(loo)
    d = loo.mean() - loo
    return float(np.sum(d**3) / (6 * np.sum(d**2) ** 1.5))


@pytest.mark.parametrize("weighted", [False, True])
def test_bias_and_acceleration_are_efrons(weighted):
    diff = np.array([0.0, 1.0, 1.0, -1.0, 3.0, 0.5, 2.0, 0.0, 7.0])
    weight = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0, 5.0, 1.0]) if weighted else np.ones_like(diff)
    delta = float(np.sum(diff * weight) / np.sum(weight))
    replicates = np.array([delta - 1, delta - 0.5, delta, delta, delta + 0.2, delta + 1, delta + 2, delta + 3])
    z0, accel = bootstrap._bias_and_acceleration(diff, weight, delta, replicates)
    # 2 of 8 below the estimate, 2 tied (each counts half): Phi^-1(3/8).
    assert z0 == pytest.approx(NormalDist().inv_cdf(3 / 8), abs=1e-12)
    assert accel == pytest.approx(_jackknife_acceleration(diff, weight), rel=1e-12)
    assert abs(accel) > 0.01  # skewed differences: an acceleration clearly away from 0


def test_the_t_test_is_scipys_paired_t_test():
    n = A.size
    levels = bootstrap._Levels(n)
    diff = B - A
    got = bootstrap._t_test(diff, np.ones_like(diff), float(diff.mean()), levels)
    assert got == pytest.approx(stats.ttest_rel(B, A).pvalue, rel=1e-9)
    assert bootstrap._t_test(np.full(5, 2.0), np.ones(5), 2.0, bootstrap._Levels(5)) == 0.0
    assert bootstrap._t_test(np.zeros(5), np.ones(5), 0.0, bootstrap._Levels(5)) == 1.0


def test_the_normal_quantile_is_infinite_at_the_ends():
    assert bootstrap._ndtri(0.0) == -math.inf and bootstrap._ndtri(1.0) == math.inf
    assert bootstrap._ndtri(0.975) == pytest.approx(1.959963984540054, abs=1e-12)


def test_the_p_value_is_the_level_at_which_an_end_of_the_interval_reaches_zero():
    """p solves "the BCa interval at confidence 1 - p has an end at 0": slightly narrower
    intervals leave 0 out, slightly wider ones contain it."""
    rng = np.random.default_rng(3)
    diff = rng.normal(0.45, 1.0, 30) ** 3  # skewed, so that z0 and the acceleration matter
    weight = np.ones_like(diff)
    delta = float(diff.mean())
    index = np.random.default_rng(0).integers(0, diff.size, size=(20000, diff.size))
    replicates = diff[index].mean(axis=1)
    z0, accel = bootstrap._bias_and_acceleration(diff, weight, delta, replicates)
    assert abs(z0) > 0.01 and abs(accel) > 0.01
    levels = bootstrap._Levels(diff.size)
    p = bootstrap._p_value(replicates, z0, accel, levels)
    assert 0.001 < p < 0.5

    def lower_end(q: float) -> float:
        return bootstrap._quantile(replicates, z0, accel, levels.z(q))

    assert delta > 0 and lower_end(p / 2 * 0.9) < 0 < lower_end(p / 2 * 1.1)


def test_too_few_pairs_give_no_interval_exactly_below_the_sign_flip_bound():
    """No test of n pairs can reach a p-value below 2^(1-n): at 95% that needs 6 pairs; at 75%,
    3 pairs give exactly 2^-2 = 0.25 = 1 - 0.75, which is not below it."""
    up = [0.0] * 8
    more = [1.0, 2.0, 1.5, 3.0, 2.5, 1.0, 2.0, 4.0]
    assert paired_bootstrap(up[:5], more[:5]).verdict == "n/a"
    assert paired_bootstrap(up[:6], more[:6]).verdict == "higher"
    assert paired_bootstrap(up[:3], more[:3], confidence=0.75).verdict == "n/a"
    assert paired_bootstrap(up[:4], more[:4], confidence=0.75).verdict == "higher"


def test_defaults_are_the_documented_2000_resamples_with_seed_0():
    """docs/compare_check_report.md: 2,000 resamples; compare and check give the same interval
    on every machine, from seed 0."""
    default = paired_bootstrap(A, B)
    assert default == paired_bootstrap(A, B, n_resamples=2000, seed=0)
    assert default != paired_bootstrap(A, B, n_resamples=2001, seed=0)
    assert default != paired_bootstrap(A, B, n_resamples=2000, seed=1)


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length: 3, 2"):
        paired_bootstrap([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], weights=[1.0])
