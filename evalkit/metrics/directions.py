"""Which way is better for a reported value, and whether it measures quality or diversity.

`compare`, `check` and `report` ask here; the answers come from the metrics' declarations
(evalkit/metrics/task_metrics.py): Self-BLEU and perplexity are better when lower, output length
is neither better nor worse, and the report's diversity-vs-quality plots put each value on
its axis. A name no declaration knows (a hand-written baseline's own metric, a user's lm-eval
task) counts as a quality value where higher is better, and ``name@k`` as a curve over k.
"""

from __future__ import annotations

from evalkit.metrics import task_metrics as _declarations  # noqa: F401 - declares every metric
from evalkit.metrics.spec import METRICS, Aspect, Direction, Output, split_k

__all__ = ["Direction", "declared_output", "direction", "family", "kind", "signed_gain", "split_k"]


def declared_output(name: str) -> Output | None:
    """The declared output a reported value belongs to (``pass@8`` -> ``pass@{k}``), if any."""
    for metric_name in METRICS.names():
        found = METRICS.get(metric_name).output(name)
        if found is not None:
            return found
    return None


def family(name: str) -> str:
    """``maj@4`` -> ``maj``; a value that is not a point of a curve is its own family."""
    output = declared_output(name)
    if output is None:
        return split_k(name)[0]
    return output.family if output.is_curve else name


def direction(name: str) -> Direction:
    output = declared_output(name)
    return "higher" if output is None else output.direction


def kind(name: str) -> Aspect:
    output = declared_output(name)
    return "quality" if output is None else output.aspect


def signed_gain(name: str, delta: float) -> float:
    """The delta with its sign turned so that positive means better (0 for neutral metrics)."""
    d = direction(name)
    return delta if d == "higher" else -delta if d == "lower" else 0.0
