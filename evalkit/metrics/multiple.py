"""Family-wise corrections for comparing many metrics at once.

Comparing 8 metrics at 95% confidence calls at least one of them better or worse by chance in
about a third of comparisons of two seeds of the same model. `compare` and `check` therefore
adjust the p-values of the metrics compared in one comparison (one run against the baseline):

- ``holm`` (default): Holm's step-down procedure. Controls the family-wise error rate (the
  chance of any false verdict) at 1 - confidence, under any dependence between the metrics.
- ``bh``: Benjamini-Hochberg. Controls the false discovery rate (the expected share of false
  verdicts among the verdicts given) under independence or positive dependence; more verdicts.
- ``none``: each metric on its own, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from evalkit.errors import ConfigError, shown

Correction = Literal["none", "holm", "bh"]
CORRECTIONS: tuple[Correction, ...] = ("none", "holm", "bh")
DESCRIPTIONS = {
    "none": "no correction for multiple comparisons",
    "holm": "Holm-corrected (family-wise error rate)",
    "bh": "Benjamini-Hochberg-corrected (false discovery rate)",
}


def check_correction(value: object) -> Correction:
    if value not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {', '.join(CORRECTIONS)}, got {shown(value)}")
    return value  # type: ignore[return-value]


def adjust(p_values: Sequence[float], correction: Correction) -> list[float]:
    """The adjusted p-values, in the order given: a hypothesis is rejected at level alpha when its
    adjusted p-value is below alpha."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0 or correction == "none":
        return [float(v) for v in p]
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if correction == "holm":  # (m - i) p_(i) for i = 0..m-1, made non-decreasing
        scaled = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif correction == "bh":  # m / (i + 1) p_(i), made non-increasing from the largest
        scaled = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    else:
        check_correction(correction)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(scaled, 1.0)
    return [float(v) for v in adjusted]
