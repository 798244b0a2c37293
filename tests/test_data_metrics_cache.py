"""Data files, the smoke metrics, answer extraction, aggregation and the generation cache."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter

import pytest
from nltk.util import ngrams

from evalkit.cache import GenerationCache, sample_key
from evalkit.config import SamplingConfig
from evalkit.data import read_records
from evalkit.errors import DataError, EvalkitError
from evalkit.metrics import METRICS, aggregate
from evalkit.metrics.diversity import distinct_n, ngram_diversity
from evalkit.nltk_data import word_tokenize
from evalkit.scoring.numeric import extract_number, numbers_equal

# --- data -------------------------------------------------------------------------------------


def test_reads_jsonl_json_csv_and_gzip(tmp_path):
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "ü"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps({"a": [1, 2], "b": ["x", "ü"]}), encoding="utf-8")
    (tmp_path / "d.csv").write_text("a,b\n1,x\n2,ü\n", encoding="utf-8")
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress((tmp_path / "d.jsonl").read_bytes()))
    assert read_records(tmp_path / "d.jsonl") == rows
    assert read_records(tmp_path / "d.json") == rows
    assert read_records(tmp_path / "d.csv") == [{"a": "1", "b": "x"}, {"a": "2", "b": "ü"}]
    assert read_records(tmp_path / "d.jsonl.gz") == rows


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", "café".encode("latin-1"), "not valid UTF-8"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', r"bad.jsonl:2: corrupt JSON line"),
        ("bad.json", b'{"a": [1], "b": [1, 2]}', "equal-length columns"),
        ("bad.jsonl", b"[1, 2]\n", "JSON object"),
        ("bad.xml", b"<a/>", "unsupported data format"),
        ("bad.jsonl.gz", b"not gzip", "cannot read"),
    ],
)
def test_corrupt_data_fails_with_the_file_named(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_records(tmp_path / name)


# --- diversity ---------------------------------------------------------------------------------


def _reference_distinct(texts, n):
    grams = Counter(g for t in texts for g in ngrams(word_tokenize(t), n))
    return 100 * len(grams) / sum(grams.values())


def test_distinct_n_matches_nltk_ngram_counts():
    texts = ["The cat sat on the mat.", "The cat sat on a hat!", "A dog ran, and the cat sat."]
    for n in (1, 2, 3):
        assert distinct_n(texts, n) == pytest.approx(_reference_distinct(texts, n))
    expected = sum(_reference_distinct(texts, n) for n in (1, 2, 3)) / 3
    assert ngram_diversity(texts) == pytest.approx(expected)


def test_ngram_diversity_extremes():
    assert ngram_diversity(["same words here"] * 4) == pytest.approx(25.0)  # every n-gram seen 4 times
    assert ngram_diversity(["alpha beta gamma", "delta epsilon zeta"]) == pytest.approx(100.0)
    assert ngram_diversity(["", ""]) == 0.0
    assert ngram_diversity(["one", "two"]) == pytest.approx(100.0 / 3)  # no bigrams or trigrams: 0 each
    assert distinct_n(["one"], 2) == 0.0


def test_ngrams_never_cross_samples():
    # Pooled as one text, "b c" would appear; per sample it cannot.
    assert distinct_n(["a b", "c d"], 2) == pytest.approx(100.0)
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(50.0)


# --- numeric answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3 + 4 = 7. The answer is: 7", "7"),
        ("The answer is: 1,250 dollars", "1250"),
        ("First 12, then 15, so 27", "27"),
        ("#### -3.5", "-3.5"),
        ("The answer is 12. Then I counted 13 more things.", "12"),
        ("no numbers here", None),
        ("The answer is: seven", None),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_numbers_equal():
    assert numbers_equal("7", "7") and numbers_equal("7.0", "7") and numbers_equal("1250", "1,250")
    assert not numbers_equal("7", "8") and not numbers_equal(None, "7") and not numbers_equal("7", "seven")


def test_numeric_exact_match_metric():
    result = METRICS.get("numeric_exact_match")(["The answer is: 7", "It is 8", "7", "none"], {"answer": "7"}, "answer")
    assert result.per_doc == {"accuracy": 50.0, "any_correct": 100.0}
    assert [s["correct"] for s in result.per_sample] == [1.0, 0.0, 1.0, 0.0]


def test_aggregate_means_and_standard_errors():
    agg = aggregate([{"m": 1.0}, {"m": 2.0}, {"m": 3.0}, {"m": float("nan")}])
    assert agg.metrics["m"] == pytest.approx(2.0)
    assert agg.stderr["m"] == pytest.approx(math.sqrt(1.0 / 3))


# --- cache -------------------------------------------------------------------------------------


def test_cache_keys_and_round_trip(tmp_path):
    s = SamplingConfig(temperature=0.7, seed=1)
    key = sample_key("model@abc", "prompt", s, 0)
    assert key == sample_key("model@abc", "prompt", s.replace(n=9), 0)  # n does not change sample 0
    distinct = {
        key,
        sample_key("model@abd", "prompt", s, 0),
        sample_key("model@abc", "prompt!", s, 0),
        sample_key("model@abc", "prompt", s, 1),
        sample_key("model@abc", "prompt", s.replace(seed=2), 0),
        sample_key("model@abc", "prompt", s.replace(max_tokens=9), 0),
    }
    assert len(distinct) == 6
    cache = GenerationCache(tmp_path / "c" / "g.sqlite")
    cache.put_many([(key, "hello"), ("k2", "")])
    cache.close()
    reopened = GenerationCache(tmp_path / "c" / "g.sqlite")
    assert reopened.get_many([key, "k2", "missing"]) == {key: "hello", "k2": ""}
    assert reopened.count() == 2


def test_cache_in_an_unusable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EvalkitError, match="cannot open the generation cache"):
        GenerationCache(blocker / "g.sqlite")
