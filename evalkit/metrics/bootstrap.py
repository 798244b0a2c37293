"""Paired bootstrap over documents: is the difference between two runs real?

Both runs scored the same documents, so the statistic is the mean of the per-document
differences and the resampling unit is the document (resampling documents keeps each
document's pair together). The interval comes from scipy's BCa bootstrap, which corrects the
plain percentile interval's bias and skew (it under-covers on the skewed 0/1 data of accuracy).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["higher", "lower", "no significant difference", "n/a"]


@dataclass(frozen=True)
class PairedInterval:
    delta: float  # mean of b - a over the paired documents
    low: float | None
    high: float | None
    n_pairs: int

    @property
    def verdict(self) -> Verdict:
        if self.low is None or self.high is None:
            return "n/a"
        if self.low > 0:
            return "higher"
        if self.high < 0:
            return "lower"
        return "no significant difference"


def _weighted_mean(diff: np.ndarray, weight: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(diff * weight, axis=axis) / np.sum(weight, axis=axis)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> PairedInterval:
    """Confidence interval of the (weighted) mean of b - a; pairs with a missing (NaN) side are
    left out. Weights are the documents' weights in the task metric (e.g. instruction counts)."""
    from scipy.stats import bootstrap  # heavy (half a second): only when intervals are computed

    if len(a) != len(b) or (weights is not None and len(weights) != len(a)):
        raise ValueError(f"paired samples differ in length: {len(a)}, {len(b)}")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    weight = np.ones_like(diff) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(diff) & (weight > 0)
    diff, weight = diff[keep], weight[keep]
    if diff.size == 0:
        return PairedInterval(math.nan, None, None, 0)
    delta = float(_weighted_mean(diff, weight))
    if diff.size < 2:
        return PairedInterval(delta, None, None, int(diff.size))
    if np.ptp(diff) == 0:  # every pair differs by the same amount: no sampling variability at all
        return PairedInterval(delta, delta, delta, int(diff.size))
    rng = np.random.default_rng(seed)
    for method in ("BCa", "percentile"):  # BCa is undefined on some near-degenerate samples
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = bootstrap(
                (diff, weight),
                _weighted_mean,
                paired=True,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                rng=rng,
            ).confidence_interval
        if math.isfinite(ci.low) and math.isfinite(ci.high):
            return PairedInterval(delta, float(ci.low), float(ci.high), int(diff.size))
    return PairedInterval(delta, None, None, int(diff.size))
