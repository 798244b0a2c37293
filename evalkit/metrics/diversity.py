"""Diversity of the samples drawn for one prompt (DESIGN.md section 3).

Every function takes the samples of ONE prompt and returns one value; `per_prompt` applies a
metric to many prompts and returns the mean with the per-prompt values. The n-gram metrics are
pure; the embedding metrics load a sentence-transformers model once per process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.metrics.self_bleu import self_bleu, self_bleu_per_sample
from evalkit.models import default_sentence_encoder, load_sentence_encoder
from evalkit.nltk_data import word_tokenize as _nltk_word_tokenize

__all__ = [
    "PromptScores",
    "distinct_n",
    "embedding_distance",
    "gem_wrap",
    "ngram_diversity",
    "per_prompt",
    "sbert_diversity",
    "self_bleu",
    "self_bleu_per_sample",
    "word_tokenize",
]


@functools.lru_cache(maxsize=1 << 16)
def word_tokenize(text: str) -> tuple[str, ...]:
    """NLTK word tokens, cached: several metrics tokenize the same samples."""
    return tuple(_nltk_word_tokenize(text))


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over the pooled samples (n-grams never cross samples), x100.

    0 when the samples hold no n-gram of that order, as in the GEM repository's evaluation code.
    """
    tokens = [word_tokenize(t) for t in texts]
    grams = [g for toks in tokens for g in _ngrams(toks, n)]
    return 100.0 * len(set(grams)) / len(grams) if grams else 0.0


def ngram_diversity(texts: Sequence[str], n_max: int = 3) -> float:
    """Mean of distinct-n for n = 1..n_max over the pooled samples (NLTK word tokens), 0-100.

    An order with no n-gram (every sample shorter than n tokens) counts as 0, as in the GEM
    repository's evaluation code.
    """
    return sum(distinct_n(texts, n) for n in range(1, n_max + 1)) / n_max


def gem_wrap(prompt: str, tokenizer: Any) -> Callable[[str], str]:
    """The GEM repository's text preparation, as a function for `self_bleu(..., wrap=)` or for
    wrapping texts before any metric: each response becomes the chat template's rendering of
    [user: prompt, assistant: response] (``tokenize=False``, no generation prompt), so every
    text carries the template's special tokens and the shared prompt, as GEM scores them."""

    def wrap(response: str) -> str:
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(chat, tokenize=False)

    return wrap


# --- embeddings ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def load_sbert(model: str | None = None) -> Any:
    """A SentenceTransformer by hub name or local path, loaded once per process, on the CPU."""
    return load_sentence_encoder(model or default_sentence_encoder(), device="cpu")


def _embed(texts: Sequence[str], model: Any) -> Any:
    encoder = model if model is not None and not isinstance(model, str) else load_sbert(model)
    return encoder.encode(list(texts), convert_to_tensor=True, show_progress_bar=False).float()


def _pairs_mean(matrix: Any) -> float:
    """Mean of the strictly upper triangle of a square matrix (all unordered pairs)."""
    import torch  # heavy: only for the embedding metrics

    n = matrix.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1)
    return matrix[rows, cols].double().mean().item()


def sbert_diversity(texts: Sequence[str], model: Any = None) -> float:
    """100 x (1 - mean cosine similarity over all pairs of samples); NaN for fewer than 2."""
    if len(texts) < 2:
        return float("nan")
    import torch  # heavy: only for the embedding metrics

    emb = torch.nn.functional.normalize(_embed(texts, model), dim=-1)
    return 100.0 * (1.0 - _pairs_mean(emb @ emb.T))


def embedding_distance(texts: Sequence[str], model: Any = None) -> float:
    """Mean Euclidean distance between the embeddings of all pairs of samples; NaN for fewer than 2."""
    if len(texts) < 2:
        return float("nan")
    import torch  # heavy: only for the embedding metrics

    emb = _embed(texts, model)
    return _pairs_mean(torch.cdist(emb.double(), emb.double()))


# --- many prompts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptScores:
    mean: float  # over prompts with a defined value
    per_prompt: list[float]


def per_prompt(metric: Callable[..., float], groups: Sequence[Sequence[str]], **kwargs: Any) -> PromptScores:
    """Apply a one-prompt metric to the samples of every prompt: the mean and each prompt's value."""
    values = [metric(texts, **kwargs) for texts in groups]
    defined = [v for v in values if not math.isnan(v)]
    return PromptScores(math.fsum(defined) / len(defined) if defined else float("nan"), values)
