"""Embedding diversity and the n-gram diversity over many prompts, against direct computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from nltk.util import ngrams

from evalkit.metrics.diversity import (
    embedding_distance,
    load_sbert,
    ngram_diversity,
    per_prompt,
    sbert_diversity,
)
from evalkit.nltk_data import word_tokenize

STORIES = [
    "The lighthouse keeper counted the ships that never came. Each night he lit the lamp anyway.",
    "A girl found a key in the snow; it opened nothing in the village, so she kept it for luck.",
    "The lighthouse keeper counted the ships that never came. Each night the lamp burned alone.",
    "Rain fell on the tin roof while the old dog slept, dreaming of rabbits and summer fields.",
    "Der Bäcker öffnete früh am Morgen, und der Duft von frischem Brot füllte die Straße.",
    "月光洒在安静的湖面上，一只小船慢慢地漂向远方。",
]


def _gem_sbert(texts):
    """The GEM repository's SentBertDiversity: 1 - mean cosine over pairs (i, j < i)."""
    model = load_sbert()
    emb = [model.encode(t) for t in texts]
    sims = [
        float(np.dot(emb[i], emb[j]) / (np.linalg.norm(emb[i]) * np.linalg.norm(emb[j])))
        for i in range(len(texts))
        for j in range(i)
    ]
    return 100 * (1 - np.mean(sims))


def test_sbert_diversity_matches_the_gem_formula():
    assert sbert_diversity(STORIES) == pytest.approx(_gem_sbert(STORIES), abs=1e-4)
    assert sbert_diversity(STORIES[:2]) == pytest.approx(_gem_sbert(STORIES[:2]), abs=1e-4)


def test_embedding_distance_matches_the_mean_over_pairs(capfd):
    emb = load_sbert().encode(STORIES, show_progress_bar=False).astype(np.float64)
    distances = [np.linalg.norm(a - b) for a, b in itertools.combinations(emb, 2)]
    capfd.readouterr()
    assert embedding_distance(STORIES) == pytest.approx(np.mean(distances), abs=1e-5)
    # Two samples are one pair: defined, and equal to that pair's distance.
    assert embedding_distance(STORIES[:2]) == pytest.approx(np.linalg.norm(emb[0] - emb[1]), abs=1e-5)
    assert capfd.readouterr().err == ""  # no encoder progress bar in evalkit's output


def test_embedding_metrics_edge_cases():
    same = ["The same sentence, again."] * 4
    assert sbert_diversity(same) == pytest.approx(0.0, abs=1e-4)
    assert embedding_distance(same) == pytest.approx(0.0, abs=1e-3)
    assert math.isnan(sbert_diversity(["alone"])) and math.isnan(embedding_distance([]))
    assert 0 <= sbert_diversity(["", "", "text"]) <= 200
    model = load_sbert()
    assert sbert_diversity(STORIES, model=model) == sbert_diversity(STORIES)  # an instance is accepted too


def _gem_averaged_ngram(groups, n_max=3):
    """The GEM repository's AveragedNgramDiversityMetric: mean over (prompt, n) of distinct/total."""
    values = []
    for texts in groups:
        for n in range(1, n_max + 1):
            grams = [g for t in texts for g in ngrams(word_tokenize(t), n)]
            values.append(len(set(grams)) / len(grams) if grams else 0)
    return 100 * float(np.mean(values))


def test_ngram_diversity_over_prompts_matches_the_gem_formula():
    groups = [STORIES[:3], STORIES[3:], ["short", "short"], ["", "one two"], [STORIES[0] * 20, STORIES[1]]]
    scores = per_prompt(ngram_diversity, groups)
    assert scores.mean == pytest.approx(_gem_averaged_ngram(groups), abs=1e-9)
    assert scores.per_prompt == pytest.approx([_gem_averaged_ngram([g]) for g in groups], abs=1e-9)
    # Non-English text: German splits into words and punctuation; NLTK does not segment Chinese,
    # so a sentence without spaces is one token (its unigram counts once).
    german = word_tokenize(STORIES[4])
    assert len(german) == 17 and german[:3] == ["Der", "Bäcker", "öffnete"] and german[-1] == "."
    assert word_tokenize(STORIES[5]) == [STORIES[5]]
    assert scores.per_prompt[2] == pytest.approx(100 * (1 / 2) / 3)  # unigrams 1/2, no bigrams/trigrams


def test_per_prompt_skips_undefined_values_in_the_mean():
    scores = per_prompt(sbert_diversity, [STORIES[:2], ["alone"]])
    assert math.isnan(scores.per_prompt[1]) and scores.mean == pytest.approx(scores.per_prompt[0])


def test_gem_wrap_renders_prompt_and_response_with_the_chat_template():
    from transformers import AutoTokenizer

    from evalkit.embedded import default_model_dir
    from evalkit.metrics.diversity import gem_wrap, self_bleu

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    wrap = gem_wrap("Write a poem titled 'Rain'.", tokenizer)
    text = wrap("Drops on the roof.")
    expected = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Write a poem titled 'Rain'."},
            {"role": "assistant", "content": "Drops on the roof."},
        ],
        tokenize=False,
    )
    assert text == expected and "<|im_start|>assistant" in text and "Write a poem titled 'Rain'." in text
    samples = ["Drops on the roof.", "Grey skies weep softly.", "The storm sings tonight."]
    assert self_bleu(samples, "gem", wrap=wrap) == self_bleu([wrap(s) for s in samples], "gem")
    assert self_bleu(samples, "gem", wrap=wrap) > self_bleu(samples, "gem")  # the shared prompt raises overlap
