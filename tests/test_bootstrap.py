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


def _normal_levels(monkeypatch) -> None:
    """Phi^-1(q) for the BCa formula's levels, as scipy uses (evalkit expands them for n)."""
    monkeypatch.setattr(bootstrap._Levels, "z", lambda self, q: NormalDist().inv_cdf(q))


@pytest.mark.parametrize("seed", range(4))
def test_bca_interval_equals_scipys_with_the_same_resamples_and_normal_levels(seed, monkeypatch):
    """scipy.stats.bootstrap(method="BCa") draws its resamples as evalkit does (one
    Generator.integers(0, n, (n_resamples, n)) call): with normal levels the intervals agree."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, 30)
    b = a + rng.normal(0.2, 1, 30) ** 3  # skewed differences: z0 and the acceleration matter
    _normal_levels(monkeypatch)
    ours = paired_bootstrap(a, b, confidence=0.9)
    theirs = stats.bootstrap(
        (b - a,), np.mean, confidence_level=0.9, n_resamples=2000, method="BCa",
        random_state=np.random.default_rng(0), vectorized=True,
    ).confidence_interval  # fmt: skip
    assert ours.low == pytest.approx(theirs.low, abs=1e-9) and ours.high == pytest.approx(theirs.high, abs=1e-9)


def test_levels_are_hesterbergs_expansion_of_the_t_quantile():
    levels = bootstrap._Levels(12)
    scale = math.sqrt(12 / 11)
    assert levels.z(0.025) == pytest.approx(scale * stats.t.ppf(0.025, 11), rel=1e-12)
    assert levels.level(-2.0) == pytest.approx(stats.t.cdf(-2.0 / scale, 11), rel=1e-12)
    assert levels.t_tail(-2.0) == pytest.approx(stats.t.cdf(-2.0, 11), rel=1e-12)


def test_edges_of_the_p_value_and_the_interval():
    # No difference at all, many replicates exactly 0 (counted against the difference on both
    # sides): p is 1, never above.
    same = paired_bootstrap([0.0] * 20 + [1.0, 0.0], [0.0] * 20 + [0.0, 1.0])
    assert same.delta == 0 and same.p_value == 1.0 and same.verdict == "no significant difference"
    assert paired_bootstrap([1.0] * 8, [1.0] * 8) == bootstrap.PairedInterval(0.0, 0.0, 0.0, 8, 1.0)
    assert paired_bootstrap([1.0] * 8, [3.0] * 8) == bootstrap.PairedInterval(2.0, 2.0, 2.0, 8, 0.0)
    alternating = paired_bootstrap([0.0] * 12, [0.0, 1.0] * 6)  # differences spread by exactly 1
    assert alternating.low < 0.5 < alternating.high and 0 < alternating.p_value < 1
    assert math.isnan(paired_bootstrap([], []).delta) and paired_bootstrap([], []).n_pairs == 0
    assert bootstrap.PairedInterval(0.5, 0.1, None, 9).verdict == "n/a"
    assert bootstrap.PairedInterval(0.5, None, 0.9, 9).verdict == "n/a"


def test_documents_of_weight_zero_are_left_out():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 20), rng.normal(0.3, 1, 20)
    weights = rng.integers(1, 4, 20).astype(float)
    weights[[2, 7, 11]] = 0.0
    kept = weights > 0
    with_zeros = paired_bootstrap(a, b, weights=weights)
    assert with_zeros == paired_bootstrap(a[kept], b[kept], weights=weights[kept]) and with_zeros.n_pairs == 17


def test_p_value_ties_at_zero_and_the_resolution_of_the_resamples():
    levels = bootstrap._Levels(20)
    # 3 of 10 replicates at or below 0 (two exactly 0), 8 at or above: the lower end reaches 0 at
    # the level of the 3/10 quantile.
    replicates = np.array([-1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    expected = 2 * levels.level(NormalDist().inv_cdf(0.3))
    assert bootstrap._p_value(replicates, 0.0, 0.0, levels) == pytest.approx(expected, rel=1e-12)
    # All above 0: no better than half a resample of 2,000 on one side.
    above = np.linspace(0.1, 2.0, 2000)
    floor = 2 * levels.level(NormalDist().inv_cdf(0.5 / 2000))
    assert bootstrap._p_value(above, 0.0, 0.0, levels) == pytest.approx(floor, rel=1e-12)
    assert bootstrap._p_value(-above, 0.0, 0.0, levels) == pytest.approx(floor, rel=1e-12)


def test_constant_differences_have_no_acceleration():
    z0, accel = bootstrap._bias_and_acceleration(np.full(6, 2.0), np.ones(6), 2.0, np.full(50, 2.0))
    assert accel == 0.0 and z0 == 0.0
