"""Which way is better for each metric, and whether it measures quality or diversity.

`compare`, `check` and `report` need this: Self-BLEU and perplexity are better when lower, output
length is neither better nor worse, and the report's diversity-vs-quality scatter needs to know
which axis a metric belongs on. Names not listed are quality metrics where higher is better;
sampling curves (``maj@4``, ``pass@8``) take the direction of their family.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["higher", "lower", "none"]
Kind = Literal["quality", "diversity", "other"]

_LOWER_IS_BETTER = frozenset(
    {"self_bleu", "perplexity", "nll", "asr", "asr_keyword", "refusal_rate_harmful", "drift_kl", "hack_flagged"}
)
# reference_reward scores the fixed reference answer: it says nothing about the model under test.
# *_unparsed count the judge's unreadable answers: about the judge, not the model under test.
_NEUTRAL = frozenset(
    {
        "mean_words",
        "mean_tokens",
        "entropy",
        "reference_reward",
        "quality_unparsed",
        "refusal_unparsed",
        "pairwise_unparsed",
    }
)
_DIVERSITY = frozenset(
    {
        "ngram_diversity",
        "self_bleu",
        "self_bleu_diversity",
        "sbert_diversity",
        "embedding_distance",
        "distinct_1",
        "distinct_2",
        "distinct_3",
        "distinct",
        "novelty_distinct",
    }
)
# The diversity metric the report's scatter prefers, first found first.
DIVERSITY_PREFERENCE = ("ngram_diversity", "self_bleu_diversity", "sbert_diversity", "distinct", "distinct_2")


def split_k(name: str) -> tuple[str, int | None]:
    """``maj@4`` -> (``maj``, 4); a name without ``@k`` -> (name, None)."""
    head, at, k = name.rpartition("@")
    return (head, int(k)) if at and k.isdigit() else (name, None)


def family(name: str) -> str:
    """``maj@4`` -> ``maj``; a name without ``@k`` is its own family."""
    return split_k(name)[0]


def direction(name: str) -> Direction:
    base = family(name)
    if base in _LOWER_IS_BETTER:
        return "lower"
    if base in _NEUTRAL:
        return "none"
    return "higher"


def kind(name: str) -> Kind:
    base = family(name)
    if base in _DIVERSITY:
        return "diversity"
    if base in _NEUTRAL:
        return "other"
    return "quality"


def signed_gain(name: str, delta: float) -> float:
    """The delta with its sign turned so that positive means better (0 for neutral metrics)."""
    d = direction(name)
    return delta if d == "higher" else -delta if d == "lower" else 0.0
