"""`evalkit train`: supervised fine-tuning with a chosen loss on transformers' Trainer.

The Trainer does the loop (optimiser with weight decay, cosine schedule with warm-up, gradient
accumulation, bf16, gradient checkpointing, NEFTune, checkpoints, DeepSpeed and multi-GPU through
`accelerate launch`); evalkit plugs in the loss, the chat-formatted data with the prompt masked,
LoRA/QLoRA through peft, and a log of loss and token entropy. The final folder is a plain
transformers checkpoint (LoRA merged) that `evalkit run --model` loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, EvalkitError
from evalkit.loggers import available, trainer_callbacks
from evalkit.models import from_pretrained, load_tokenizer, resolve_model
from evalkit.train.config import TrainConfig
from evalkit.train.sft_data import collate

LOG_FILE = "train_log.jsonl"
INFO_FILE = "evalkit_train.json"


def _checkpointing_argument() -> str:
    """TrainingArguments' name for gradient checkpointing: ``activation_checkpointing`` where
    transformers has it (the old name warns with a FutureWarning), else ``gradient_checkpointing``."""
    from transformers import TrainingArguments  # heavy: training only

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _usual_permissions(folder: Path) -> None:
    """Files of the checkpoint readable as the umask allows (safetensors writes through a private
    temporary file, so model.safetensors would otherwise be left at mode 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        if path.is_file() and path.stat().st_mode & 0o077 == 0:  # private: written through a temporary file
            path.chmod(0o666 & ~umask)


def _load_model(config: TrainConfig, use_cuda: bool):
    import torch  # heavy: training only
    from transformers import AutoModelForCausalLM

    base = resolve_model(config.model)
    tokenizer = load_tokenizer(base, padding_side=None)  # collate pads; the tokenizer's own side is kept
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if config.qlora:
        if not use_cuda:
            raise ConfigError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use --lora on CPU")
        from transformers import BitsAndBytesConfig

        kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        }
    model = from_pretrained(AutoModelForCausalLM, base, **kwargs)
    if config.lora:
        try:
            from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        except ImportError:
            raise ConfigError("LoRA needs peft: pip install 'evalkit[train]'") from None
        if config.qlora:
            model = prepare_model_for_kbit_training(model)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return base.name, model, tokenizer


def _trainer_class():
    from transformers import Trainer

    from evalkit.train.loss_paths import LossPath

    class LossTrainer(Trainer):
        """Trainer whose loss is evalkit's, logging the mean token entropy next to the loss.

        The loss path is chosen once the Trainer has put the model on its device (`choose_path`)."""

        def __init__(self, *args: Any, choose_path: Callable[[Any], LossPath], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.loss_path = choose_path(self.model)
            self.model_accepts_loss_kwargs = False  # the Trainer averages micro-batch losses
            self._entropies: list[float] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            labels = inputs.pop("labels")
            log_step = model.training and (self.state.global_step + 1) % max(self.args.logging_steps, 1) == 0
            loss, outputs, entropy = self.loss_path.forward_loss(model, inputs, labels, with_entropy=log_step)
            if entropy is not None:
                self._entropies.append(entropy)
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self._entropies:
                logs["token_entropy"] = sum(self._entropies) / len(self._entropies)
                self._entropies.clear()
            super().log(logs, *args, **kwargs)

    return LossTrainer


def _log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

    return JsonlLog()


def prepare_examples(config: TrainConfig, tokenizer: Any) -> tuple[list, int]:
    from evalkit.train.sft_data import load_records, to_messages, tokenize

    records = load_records(config.data, config.split, config.limit)
    examples, dropped = [], 0
    for record in records:
        example = tokenize(to_messages(record), tokenizer, config.max_length)
        if example is None or all(label == -100 for label in example.labels):
            dropped += 1
        else:
            examples.append(example)
    if not examples:
        raise EvalkitError(f"no usable training example in {config.data} (prompts longer than --max-length?)")
    return examples, dropped


def fixed_set_loss(model: Any, examples: list, loss_fn: Callable, pad_id: int, batch_size: int) -> float:
    """The training loss, without gradients, on a fixed set of examples (the same before and after
    training, so the two numbers are comparable, unlike the logged losses of different batches)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, weight = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size], pad_id)
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            tokens = int((labels[:, 1:] != -100).sum())
            total += float(loss_fn(logits, labels)) * tokens
            weight += tokens
    model.train(was_training)
    return total / max(weight, 1)


def fine_tune(model: str | None = None, *, data: str, output_dir: Path | str, **options: Any) -> dict[str, Any]:
    """`evalkit train` as a function (``evalkit.train(...)``): the options of TrainConfig."""
    return train(TrainConfig(model=model, data=data, output_dir=Path(output_dir), **options))


def train(config: TrainConfig) -> dict[str, Any]:
    """Fine-tune and save; returns what is written to OUTPUT_DIR/evalkit_train.json."""
    import torch
    from transformers import TrainingArguments, set_seed

    from evalkit.train.loss_paths import choose_loss_path

    report_to = available(config.report_to)  # a missing package: one warning line, before any work
    use_cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else use_cuda and torch.cuda.is_bf16_supported()
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else use_cuda
    set_seed(config.seed)
    name, model, tokenizer = _load_model(config, use_cuda)
    examples, dropped = prepare_examples(config, tokenizer)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / LOG_FILE).unlink(missing_ok=True)
    args = TrainingArguments(
        output_dir=str(config.output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay,
        neftune_noise_alpha=config.neftune_alpha,
        bf16=bf16,
        **{_checkpointing_argument(): checkpointing},
        deepspeed=str(config.deepspeed) if config.deepspeed else None,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        use_cpu=not use_cuda,
        seed=config.seed,
        report_to=[],
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=partial(collate, pad_id=tokenizer.pad_token_id),
        choose_path=lambda placed: choose_loss_path(config, placed, args.device, examples[0].input_ids),
        callbacks=[_log_callback(config.output_dir / LOG_FILE), *trainer_callbacks(report_to, config.output_dir)],
    )
    loss_fn = trainer.loss_path.logits_loss
    probe = examples[: config.fixed_set]
    before = fixed_set_loss(trainer.model, probe, loss_fn, tokenizer.pad_token_id, config.batch_size)
    result = trainer.train()
    after = fixed_set_loss(trainer.model, probe, loss_fn, tokenizer.pad_token_id, config.batch_size)
    final = trainer.model
    if config.lora:
        final = final.merge_and_unload()
    if trainer.is_world_process_zero():
        final.save_pretrained(config.output_dir, safe_serialization=True)
        tokenizer.save_pretrained(config.output_dir)
        _usual_permissions(config.output_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]
    info = {
        "base_model": name,
        "config": config.to_json(),
        "examples": len(examples),
        "dropped_examples": dropped,
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "fixed_set_examples": len(probe),  # the losses before and after are on the first N examples
        "fixed_set_loss_before": before,
        "fixed_set_loss_after": after,
        "first_logged_loss": history[0]["loss"] if history else None,
        "last_logged_loss": history[-1]["loss"] if history else None,
        "bf16": bf16,
        "gradient_checkpointing": checkpointing,
        **trainer.loss_path.record(),
        "train_runtime_s": result.metrics.get("train_runtime"),  # the Trainer's loop, model loading excluded
    }
    if trainer.is_world_process_zero():
        (config.output_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if not math.isfinite(result.training_loss):
        raise EvalkitError(f"training diverged (loss {result.training_loss}); lower --learning-rate")
    return info
