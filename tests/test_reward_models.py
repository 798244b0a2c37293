"""Reward-model scoring (evalkit.judges.reward_model) on a tiny random Llama reward model."""

from __future__ import annotations

import pytest
import torch

from evalkit.cache import GenerationCache
from evalkit.config import JudgeConfig
from evalkit.errors import DataUnavailable, ModelError
from evalkit.judges import ModelPool, build_judges
from evalkit.judges import reward_model as rm
from evalkit.models import REWARD_MODEL, resolve_model
from tests.reward_model_fixture import build_tiny_reward_model

PROMPTS = [
    "Write a haiku about autumn.",
    "What is 2 + 2?",
    "Explain photosynthesis to a child in three sentences, please.",
    "Name a colour.",
]
RESPONSES = [
    "Leaves drift slowly down",
    "4",
    "Plants eat sunlight. They turn light, water and air into food. That food helps them grow tall.",
    "Blue",
    "Crimson maples burn / quiet rivers carry them / the year exhales cold",
    "The answer is four.",
    "It is how plants make food from light.",
    "I would say green, because it is calm.",
    "",
    "<|im_end|>",
]


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny-rm"))


def loaded(folder, **options) -> rm.RewardModel:
    """The reward model in the folder, resolved and loaded as the reward judge does."""
    return rm.RewardModel(resolve_model(str(folder), REWARD_MODEL), **options)


def pairs():
    chats = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(len(RESPONSES))]
    return chats, RESPONSES


def oracle_rewards(folder, chats, responses):
    """transformers' own forward on each unpadded sequence, pooled at its last token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    model.config.pad_token_id = None  # batch of one: transformers pools the last position
    out = []
    for chat, response in zip(chats, responses):
        text = tok.apply_chat_template([*chat, {"role": "assistant", "content": response}], tokenize=False)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out.append(model(input_ids=ids).logits[0, 0].item())
    return out


def test_rewards_match_unpadded_forward_for_any_batch_and_padding_side(tiny_rm):
    chats, responses = pairs()
    expected = oracle_rewards(tiny_rm, chats, responses)
    assert len(set(round(r, 6) for r in expected)) == len(expected)  # the texts get distinct rewards
    results = {}
    for side in ("left", "right"):
        for batch in (1, 8):
            model = loaded(tiny_rm, device="cpu", batch_size=batch, padding_side=side)
            results[side, batch] = model.score(chats, responses)
    for key, got in results.items():
        assert got == pytest.approx(expected, abs=1e-5), key
    assert results["left", 1] == pytest.approx(results["left", 8], abs=1e-5)
    assert results["left", 8] == pytest.approx(results["right", 8], abs=1e-5)


def test_pooling_uses_the_last_real_token_even_when_it_is_the_pad_token(tiny_rm):
    """The template ends with <|im_end|> = pad token: transformers' pad-id rule would pool an earlier token."""
    from transformers import AutoModelForSequenceClassification

    chats, responses = pairs()
    model = loaded(tiny_rm, device="cpu", batch_size=4)
    ids = model.token_ids(chats[0], responses[0])
    assert ids[-1] == model.pad_id  # the case under test
    naive = AutoModelForSequenceClassification.from_pretrained(tiny_rm, dtype=torch.float32).eval()
    with torch.no_grad():
        pad_rule = naive(input_ids=torch.tensor([ids])).logits[0, 0].item()
    ours = model.score(chats[:1], responses[:1])[0]
    assert ours == pytest.approx(oracle_rewards(tiny_rm, chats[:1], responses[:1])[0], abs=1e-5)
    assert abs(ours - pad_rule) > 1e-4


def test_rewards_are_deterministic_across_loads(tiny_rm):
    chats, responses = pairs()
    first = loaded(tiny_rm, device="cpu").score(chats, responses)
    second = loaded(tiny_rm, device="cpu").score(chats, responses)
    assert first == second


def test_judge_caches_rewards_and_scores_the_reference(tiny_rm, tmp_path, monkeypatch):
    chats = [[{"role": "user", "content": p}] for p in PROMPTS[:2]]
    docs = [{"output": "Reference one."}, {"output": "Reference two."}]
    completions = [RESPONSES[:3], RESPONSES[3:6]]
    config = JudgeConfig(reward_model=str(tiny_rm))
    cache = GenerationCache(tmp_path / "cache.sqlite")
    (judge,) = build_judges("t", {"reward_model": {"reference": "output"}}, config, ModelPool(device="cpu"))
    fields = judge.annotate(chats, docs, completions, cache)
    direct = loaded(tiny_rm, device="cpu")
    assert fields[1]["_rewards"] == pytest.approx(direct.score([chats[1]] * 3, completions[1]), abs=1e-5)
    assert fields[0]["_reference_reward"] == pytest.approx(direct.score(chats[:1], ["Reference one."])[0], abs=1e-5)
    assert cache.count("scores") == 8

    def no_model(*args, **kwargs):
        raise AssertionError("the reward model was loaded although every score is cached")

    monkeypatch.setattr(rm, "RewardModel", no_model)
    (again,) = build_judges("t", {"reward_model": {"reference": "output"}}, config, ModelPool(device="cpu"))
    assert again.annotate(chats, docs, completions, cache) == fields
    cache.close()


def test_missing_reward_model_is_unavailable_offline_and_bad_paths_fail(tmp_path):
    with pytest.raises(DataUnavailable, match="task alpaca_eval_bon: reward model nobody/no-such-rm"):
        build_judges("alpaca_eval_bon", {"reward_model": {"model": "nobody/no-such-rm"}}, JudgeConfig(), ModelPool())
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path), REWARD_MODEL)
    with pytest.raises(ModelError, match="not found"):
        resolve_model("./no/such/folder", REWARD_MODEL)


def test_a_chat_template_that_refuses_the_chat_is_one_clear_error(tiny_rm):
    model = loaded(tiny_rm, device="cpu")
    model.tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + model.tokenizer.chat_template
    )
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(ModelError, match="chat template refuses this chat: System role not supported"):
        model.score([chat], ["Hello"])
    assert len(model.score([chat[1:]], ["Hello"])) == 1


def test_a_run_keeps_one_reward_model_loaded(tiny_rm, tmp_path):
    other = build_tiny_reward_model(tmp_path / "other", seed=1)
    config = JudgeConfig()
    pool = ModelPool(device="cpu")
    (first,) = build_judges("a", {"reward_model": {"model": str(tiny_rm)}}, config, pool)
    (shared,) = build_judges("b", {"reward_model": {"model": str(tiny_rm)}}, config, pool)
    (second,) = build_judges("c", {"reward_model": {"model": str(other)}}, config, pool)
    assert shared is first and second is not first
    chat = [[{"role": "user", "content": "Hi"}]]
    a = first.annotate(chat, [{}], [["Hello"]], None)
    b = second.annotate(chat, [{}], [["Hello"]], None)
    assert a != b  # different weights, different rewards
    assert pool.loaded("reward_model") == [second.fingerprint]  # the first was released
