"""Held-out perplexity and entropy against an independent computation; parameter distance;
the next-token plot."""

from __future__ import annotations

import json
import math

import pytest

from evalkit.config import RunConfig


def _reference(records, model, tokenizer):
    """Per-token CE and entropy with torch's own cross_entropy and Categorical, one unpadded
    sequence at a time, the prompt (chat template up to the assistant turn) masked."""
    import torch
    import torch.nn.functional as F

    ce, ent = [], []
    for r in records:
        user = r["instruction"] + ("\n\n" + r["input"] if r["input"].strip() else "")
        chat = [{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}]
        prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(chat, tokenize=False)
        ids = tokenizer(full, add_special_tokens=False, return_tensors="pt")["input_ids"]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].double()
        pred, target = logits[n_prompt - 1 : -1], ids[0, n_prompt:]
        ce.extend(F.cross_entropy(pred, target, reduction="none").tolist())
        ent.extend(torch.distributions.Categorical(logits=pred).entropy().tolist())
    return ce, ent


def test_heldout_perplexity_and_entropy_match_a_direct_computation(
    shared_data, tmp_path, embedded_model, embedded_tokenizer
):
    from evalkit.data import read_records
    from evalkit.runner import run

    limit = 4
    results = run(
        RunConfig(
            model=None,
            tasks=("heldout_perplexity",),
            limit=limit,
            data_dir=shared_data,
            output_dir=tmp_path,
            run_id="ppl",
            device="cpu",
            use_cache=False,
        ),
        progress=False,
    ).to_json()
    entry = results["tasks"]["heldout_perplexity"]
    records = read_records(shared_data / "alpaca/alpaca_data.json")[-1000:][:limit]
    ce, ent = _reference(records, embedded_model, embedded_tokenizer)
    assert entry["n_tokens"] == len(ce) and entry["n_docs"] == limit
    assert entry["metrics"]["perplexity"] == pytest.approx(math.exp(sum(ce) / len(ce)), rel=1e-4)
    assert entry["metrics"]["entropy"] == pytest.approx(sum(ent) / len(ent), rel=1e-4)
    assert 1 < entry["metrics"]["perplexity"] < 1000 and entry["metrics"]["entropy"] > 0


def test_distance_is_zero_to_itself_and_matches_a_hand_perturbed_copy(tmp_path, embedded_model):
    import torch
    from transformers import AutoModelForCausalLM

    from evalkit.diagnostics.distance import checkpoint_distance, parameter_distance
    from evalkit.models import resolve_model

    folder = resolve_model(None).source
    assert checkpoint_distance(str(folder), None).l2 == 0.0

    base = embedded_model
    copy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    params = dict(copy.named_parameters())
    names = [n for n in params if n.endswith("mlp.down_proj.weight")][:2]
    generator = torch.Generator().manual_seed(0)
    expected_sq = 0.0
    with torch.no_grad():
        for name in names:
            delta = torch.randn(params[name].shape, generator=generator) * 1e-2
            params[name].add_(delta)
            expected_sq += float((params[name].double() - dict(base.named_parameters())[name].double()).pow(2).sum())
    copy.save_pretrained(tmp_path / "perturbed")
    d = checkpoint_distance(str(tmp_path / "perturbed"), None)
    assert d.l2 == pytest.approx(math.sqrt(expected_sq), rel=1e-9)
    assert d.l2 == pytest.approx(math.sqrt(sum(d.per_tensor[n] ** 2 for n in names)), rel=1e-9)
    assert d.l2 == pytest.approx(parameter_distance(copy, base).l2, rel=1e-12)
    assert 0 < d.relative < 1


def test_distance_of_a_lora_adapter_is_that_of_its_merged_weights(tmp_path, embedded_model):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evalkit.diagnostics.distance import checkpoint_distance
    from evalkit.models import resolve_model

    folder = resolve_model(None).source
    base = embedded_model
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = peft_model.merge_and_unload()
    expected = math.sqrt(
        sum(
            float((p.double() - q.double()).pow(2).sum())
            for (_, p), (_, q) in zip(merged.named_parameters(), base.named_parameters())
        )
    )
    assert expected > 0
    assert checkpoint_distance(str(tmp_path / "adapter"), None).l2 == pytest.approx(expected, rel=1e-6)


def test_next_token_plot_is_a_png_with_the_top_tokens(tmp_path, cli):
    out = tmp_path / "next.png"
    result = cli("diagnose", "next-token", "--prompt", "Tell me a joke.", "--top-k", "8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert len(numbers) == 1 and len(numbers[0]["tokens"]) == 8
    probs = numbers[0]["probs"]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    bad = cli("diagnose", "next-token", "--prompt", "x", "-o", str(tmp_path / "x.jpg"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
