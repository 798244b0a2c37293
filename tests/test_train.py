"""SFT data formatting and `evalkit train` end to end on the embedded SmolLM2 (CPU)."""

from __future__ import annotations

import json

import pytest

from evalkit.errors import ConfigError, DataError
from evalkit.train.config import TrainConfig
from evalkit.train.sft_data import IGNORE_INDEX, collate, to_messages, tokenize


@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


def test_formats_become_chats():
    alpaca = to_messages({"instruction": "Add.", "input": "2 and 3", "output": "5"})
    assert alpaca == [{"role": "user", "content": "Add.\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert to_messages({"instruction": "Hi", "input": "", "output": "Hello"})[0]["content"] == "Hi"
    chosen = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert to_messages({"prompt": "q", "chosen": chosen, "rejected": []}) == chosen  # UltraFeedback binarized
    assert to_messages({"messages": chosen}) == chosen
    with pytest.raises(DataError, match="unrecognised SFT record"):
        to_messages({"text": "plain"})


def test_prompt_tokens_are_masked_and_the_response_is_learned(tokenizer):
    messages = to_messages({"instruction": "Name a colour.", "input": "", "output": "Blue is a colour."})
    example = tokenize(messages, tokenizer, max_length=512)
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    learned = tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])
    assert learned.startswith("Blue is a colour.") and "<|im_end|>" in learned  # the end of turn is learned too
    assert example.input_ids[n_prompt:] == example.labels[n_prompt:]
    assert tokenize(messages, tokenizer, max_length=n_prompt) is None  # no room for the response
    short = tokenize(messages, tokenizer, max_length=n_prompt + 2)
    assert len(short.input_ids) == n_prompt + 2 and sum(t != IGNORE_INDEX for t in short.labels) == 2
    batch = collate([example, short], pad_id=0)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert (
        batch["labels"][1, n_prompt + 2 :].eq(IGNORE_INDEX).all() and batch["attention_mask"][1].sum() == n_prompt + 2
    )


def test_config_validation():
    config = TrainConfig(model=None, data="x.json", output_dir="o", loss="tofu")
    assert (config.beta, config.gamma) == (0.8, 3.0)
    assert TrainConfig(model=None, data="x", output_dir="o").beta == 0.7
    for bad, message in [
        ({"loss": "gme"}, "did you mean 'gem'"),
        ({"beta": 0}, "beta must be > 0"),
        ({"h": "tanh"}, "h must be"),
        ({"learning_rate": -1}, "learning rate"),
        ({"fixed_set": 0}, "fixed set must be >= 1 example, got 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(model=None, data="x", output_dir="o", **bad)


def test_train_errors_are_one_line(cli, tmp_path):
    missing = cli(
        "train", "--data", str(tmp_path / "none.json"), "--output-dir", str(tmp_path / "o"), "--max-steps", "1"
    )
    assert missing.returncode == 2 and "training data file not found" in missing.stderr
    bad = cli("train", "--data", "x.json", "--output-dir", str(tmp_path / "o"), "--loss", "gme")
    assert bad.returncode == 2 and "did you mean 'gem'" in bad.stderr and bad.stderr.count("\n") == 1


def test_gem_and_ce_training_lower_the_loss_and_the_checkpoint_scores(cli, shared_data, tmp_path):
    alpaca = shared_data / "alpaca" / "alpaca_data.json"
    common = [
        "--data",
        str(alpaca),
        "--limit",
        "120",
        "--max-steps",
        "8",
        "--batch-size",
        "2",
        "--max-length",
        "64",
        "--lr",
        "1e-4",
        "--warmup-ratio",
        "0",
        "--logging-steps",
        "2",
        "--fixed-set",
        "8",
        "--seed",
        "1",
    ]
    for loss in ("gem", "ce"):
        out = tmp_path / loss
        result = cli("train", *common, "--loss", loss, "--output-dir", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        info = json.loads((out / "evalkit_train.json").read_text())
        assert info["steps"] == 8 and info["config"]["loss"] == loss and info["fixed_set_examples"] == 8
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        losses = [row["loss"] for row in log if "loss" in row]
        assert len(losses) == 4 and all("token_entropy" in row for row in log if "loss" in row)
        # Training lowered the loss, measured on the same examples before and after.
        assert info["fixed_set_loss_after"] < info["fixed_set_loss_before"], info
        assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    run = cli(
        "run",
        "--model",
        str(tmp_path / "gem"),
        "--suite",
        "smoke",
        "--limit",
        "1",
        "--n",
        "1",
        "--max-tokens",
        "8",
        "--output-dir",
        str(tmp_path / "runs"),
        "--run-id",
        "gem",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "gem" / "results.json").read_text())
    assert set(results["tasks"]) == {"smoke_writing", "smoke_arithmetic"} and results["model"] == str(tmp_path / "gem")


def test_lora_training_saves_a_merged_checkpoint(cli, shared_data, tmp_path):
    pytest.importorskip("peft", reason="LoRA needs peft (pip install 'evalkit[train]')")
    out = tmp_path / "lora"
    result = cli(
        "train",
        "--data",
        str(shared_data / "alpaca" / "alpaca_data.json"),
        "--limit",
        "8",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "128",
        "--loss",
        "tofu",
        "--lora",
        "--lora-r",
        "4",
        "--output-dir",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()  # merged, plain checkpoint
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert json.loads((out / "evalkit_train.json").read_text())["config"]["lora"] is True
