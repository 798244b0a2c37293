"""The loss `evalkit train` was asked for (and its beta, h, gamma) is the one it trained with.

Through the CLI: one optimiser step on two Alpaca examples (one batch). The step's loss, the
fixed-set loss before training and the Trainer's gradient norm must equal those of the reference
loss (tests/reference_losses.py) called directly on the same batch with the same initial
weights. Each case also shows that the check can fail: the plausible wrong losses (CE instead of
GEM, a default beta, the other h) are far from the values the run must match.

In process: every loss path the machine can run (torch, the fused LM head, the Triton kernels
through Triton's CPU interpreter) computes each loss as its reference does, value and gradient,
through the same `LossPath.forward_loss` the Trainer calls.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from evalkit.errors import ConfigError
from evalkit.train.config import TrainConfig
from tests.conftest import SHARED_DATA
from tests.reference_losses import ce_entropy_direct, focal_direct, listing1_gem_loss, shifted, tempered_ce, tofu_direct

LIMIT, MAX_LENGTH = 2, 96
ALPACA = SHARED_DATA / "alpaca" / "alpaca_data.json"


def _cross_entropy(z, y):
    return F.cross_entropy(*shifted(z, y))


# name: (CLI arguments, what evalkit_train.json must say, the reference, plausible wrong losses)
CLI_CASES = {
    "gem-logsigmoid": (
        ["--loss", "gem", "--beta", "0.5", "--h", "logsigmoid"],
        {"loss_path": "torch", "kind": "gem_logsigmoid", "beta": 0.5},
        lambda z, y: listing1_gem_loss(z, y, beta=0.5, h="log_sigmoid"),
        {
            "ce": _cross_entropy,
            "gem linear 0.5": lambda z, y: tempered_ce(z, y, 0.5),
            "gem logsigmoid 0.7": lambda z, y: listing1_gem_loss(z, y, beta=0.7, h="log_sigmoid"),
        },
    ),
    "tofu-fused-linear": (
        ["--loss", "tofu", "--beta", "0.9", "--gamma", "2", "--loss-path", "fused-linear"],
        {"loss_path": "fused-linear", "kind": "tofu", "beta": 0.9, "gamma": 2.0},
        lambda z, y: tofu_direct(z, y, beta=0.9, gamma=2.0),
        {
            "ce": _cross_entropy,
            "tofu 0.8 3": lambda z, y: tofu_direct(z, y, beta=0.8, gamma=3.0),
            "gem linear 0.9": lambda z, y: tempered_ce(z, y, 0.9),
        },
    ),
}


@pytest.fixture(scope="module")
def first_batch():
    """The base model, and the batch of the first step (LIMIT examples, one batch)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (../shared/data beside the checkout)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.embedded import default_model_dir
    from evalkit.train.sft_data import collate
    from evalkit.train.trainer import prepare_examples

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    config = TrainConfig(model=None, data=str(ALPACA), output_dir="unused", limit=LIMIT, max_length=MAX_LENGTH)
    examples, _ = prepare_examples(config, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype=torch.float32)
    return model, collate(examples, tokenizer.pad_token_id)


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor], retain: bool) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=retain)
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))


def _references(model, batch, loss_fns: dict, norm_of=lambda name, value: True) -> dict[str, tuple[float, float]]:
    """Each loss on the batch and the norm of its gradient over all parameters (one forward pass);
    the norm only where ``norm_of(name, loss)`` asks for it (nan elsewhere: a backward pass each)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits
    params = [p for p in model.parameters() if p.requires_grad]
    results = {}
    for name, loss_fn in loss_fns.items():
        loss = loss_fn(logits, batch["labels"])
        norm = _grad_norm(loss, params, retain=True) if norm_of(name, loss.item()) else math.nan
        results[name] = (loss.item(), norm)
    return results


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_chosen_loss_is_the_one_that_trained(case, cli, first_batch, tmp_path):
    args, expected, reference, wrong_losses = CLI_CASES[case]
    expected = dict(expected)
    out = tmp_path / "out"
    result = cli(
        "train",
        *("--data", str(ALPACA), "--limit", str(LIMIT), "--batch-size", str(LIMIT)),
        *("--max-length", str(MAX_LENGTH), "--max-steps", "1", "--logging-steps", "1", "--warmup-ratio", "0"),
        *("--output-dir", str(out), *args),
        env={"CUDA_VISIBLE_DEVICES": ""},  # float32 on CPU on every machine, as the reference
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "evalkit_train.json").read_text())
    step = next(json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if "grad_norm" in line)
    assert info["loss_path"] == expected.pop("loss_path") and info["steps"] == 1
    assert {k: info["loss_spec"][k] for k in expected} == expected

    model, batch = first_batch
    # A wrong loss's gradient norm is needed only when its value is within 1% of the chosen one's.
    run_loss = info["train_loss"]
    measured = _references(
        model,
        batch,
        {"chosen": reference, **wrong_losses},
        norm_of=lambda name, value: name == "chosen" or abs(value - run_loss) <= 1e-2 * run_loss,
    )
    want_loss, want_norm = measured.pop("chosen")
    assert info["train_loss"] == pytest.approx(want_loss, rel=1e-4)
    assert info["fixed_set_loss_before"] == pytest.approx(want_loss, rel=1e-4)  # same batch, same weights
    assert step["grad_norm"] == pytest.approx(want_norm, rel=1e-4)
    for name, (wrong_loss, wrong_norm) in measured.items():  # the check tells these apart from the chosen loss
        assert abs(wrong_loss - want_loss) > 1e-2 * want_loss or abs(wrong_norm - want_norm) > 1e-2 * want_norm, name


# (TrainConfig overrides, reference) for the in-process check of every path
PATH_CASES = [
    ({"loss": "gem", "beta": 0.5, "h": "logsigmoid"}, lambda z, y: listing1_gem_loss(z, y, beta=0.5, h="log_sigmoid")),
    ({"loss": "gem", "beta": 0.9}, lambda z, y: tempered_ce(z, y, 0.9)),
    ({"loss": "tofu", "beta": 0.7, "gamma": 1.0}, lambda z, y: tofu_direct(z, y, beta=0.7, gamma=1.0)),
    ({"loss": "focal", "gamma": 1.0}, lambda z, y: focal_direct(z, y, gamma=1.0)),
    ({"loss": "ce_entropy", "entropy_lambda": 0.3}, lambda z, y: ce_entropy_direct(z, y, lam=0.3)),
]


@pytest.fixture(scope="module")
def path_references(first_batch):
    """Each PATH_CASES reference value on the first batch, and the gradient norm of the first."""
    model, batch = first_batch
    references = _references(model, batch, {0: PATH_CASES[0][1]})
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits
        values = [reference(logits, batch["labels"]).item() for _, reference in PATH_CASES]
    return values, references[0][1]


@pytest.mark.parametrize("path", ["torch", "fused-linear", "triton"])
def test_every_loss_path_computes_the_chosen_loss(path, first_batch, path_references):
    from evalkit.train import kernels, loss_paths

    if path == "triton" and kernels.unavailable_reason("cpu"):
        pytest.skip(f"the model runs on CPU here: {kernels.unavailable_reason('cpu')}")
    model, batch = first_batch
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    values, first_grad_norm = path_references
    for i, (overrides, _) in enumerate(PATH_CASES):
        config = TrainConfig(model=None, data="x", output_dir="o", loss_path=path, **overrides)
        chosen = loss_paths.choose_loss_path(config, model, torch.device("cpu"), batch["input_ids"][0].tolist())
        assert chosen.name == path
        with torch.set_grad_enabled(i == 0):  # the gradient through the path's plumbing, for one loss
            loss, _, entropy = chosen.forward_loss(model, dict(inputs), batch["labels"], with_entropy=i == 0)
        assert loss.item() == pytest.approx(values[i], rel=1e-5), overrides
        if i == 0:
            params = [p for p in model.parameters() if p.requires_grad]
            assert _grad_norm(loss, params, retain=False) == pytest.approx(first_grad_norm, rel=1e-4)
            assert 0 < entropy < math.log(model.config.vocab_size)


def test_loss_path_choice_and_refusals(first_batch, monkeypatch):
    from evalkit.train import kernels, loss_paths

    model, batch = first_batch
    probe = batch["input_ids"][0].tolist()
    cpu = torch.device("cpu")

    def choose(**overrides):
        config = TrainConfig(model=None, data="x", output_dir="o", loss="gem", **overrides)
        return loss_paths.choose_loss_path(config, model, cpu, probe)

    auto = choose()
    assert (auto.name, auto.note, auto.fused_impl) == ("torch", None, None)  # CPU: the path as it always was
    fused = choose(loss_path="fused-linear")
    assert fused.name == "fused-linear" and fused.head_weight is model.get_output_embeddings().weight
    assert fused.record()["loss_spec"] == {"kind": "tempered_ce", "beta": 0.7, "gamma": 0.0, "lam": 0.0}
    with pytest.raises(ConfigError, match="--loss-path fused-linear: DeepSpeed"):
        choose(loss_path="fused-linear", deepspeed="ds.json")
    # Logits that are not hidden @ W^T (soft-capped after the head, as Gemma 2 does): the probe sees it.
    capped = model.get_output_embeddings().register_forward_hook(lambda module, args, out: 30 * torch.tanh(out / 30))
    try:
        with pytest.raises(ConfigError, match="not its last hidden state times the LM head weight"):
            choose(loss_path="fused-linear")
    finally:
        capped.remove()
    monkeypatch.setattr(kernels, "unavailable_reason", lambda device_type: "no Triton here")
    with pytest.raises(ConfigError, match="--loss-path triton: no Triton here"):
        choose(loss_path="triton")
    with pytest.raises(ConfigError, match="loss path must be one of"):
        choose(loss_path="fast")
