"""The typed, validated configuration of `evalkit train`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError
from evalkit.registry import unknown_name

LOSSES = ("ce", "gem", "tofu", "focal", "ce_entropy")
LOSS_PATHS = ("auto", "fused-linear", "triton", "torch")  # see evalkit/train/loss_paths.py
# The papers' defaults: GEM beta 0.7 ("Entropic Distribution Matching", "Preserving Diversity in SFT"),
# TOFU beta 0.8 and gamma 3 ("Diversity in LLMs under SFT"), focal gamma 2.
_DEFAULT_BETA = {"gem": 0.7, "tofu": 0.8}
_DEFAULT_GAMMA = {"tofu": 3.0, "focal": 2.0}


@dataclass
class TrainConfig:
    model: str | None  # base model: local folder or hub id; None is the embedded SmolLM2
    data: str  # SFT data: a local file or a hub dataset id
    output_dir: Path
    loss: str = "gem"
    beta: float | None = None
    h: str = "linear"  # GEM's h: linear or logsigmoid
    gamma: float | None = None
    entropy_lambda: float = 0.1  # ce_entropy's lambda
    loss_path: str = "auto"  # auto: fused LM head + loss on a GPU when the model allows it, torch on CPU
    split: str = "train"
    limit: int | None = None  # first N examples of the data
    max_length: int = 2048
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-5
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    batch_size: int = 8  # per device
    grad_accum: int = 1
    weight_decay: float = 0.0
    neftune_alpha: float | None = None
    lora: bool = False
    qlora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    bf16: bool | None = None  # None: on when a CUDA GPU supports it
    gradient_checkpointing: bool | None = None  # None: on with a GPU
    deepspeed: Path | None = None
    logging_steps: int = 10
    save_steps: int = 0  # 0: only the final checkpoint
    fixed_set: int = 32  # first N training examples whose loss is measured before and after training
    seed: int = 42
    report_to: tuple[str, ...] = ()  # wandb, tensorboard (evalkit.loggers)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(str(unknown_name("loss", self.loss, LOSSES)))
        if self.loss_path not in LOSS_PATHS:
            raise ConfigError(f"loss path must be one of {', '.join(LOSS_PATHS)}, got {self.loss_path!r}")
        if self.h not in ("linear", "logsigmoid"):
            raise ConfigError(f"h must be linear or logsigmoid, got {self.h!r}")
        self.beta = _DEFAULT_BETA.get(self.loss, 1.0) if self.beta is None else self.beta
        self.gamma = _DEFAULT_GAMMA.get(self.loss, 0.0) if self.gamma is None else self.gamma
        checks = [
            (self.beta > 0, f"beta must be > 0, got {self.beta}"),
            (self.gamma >= 0, f"gamma must be >= 0, got {self.gamma}"),
            (self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}"),
            (self.max_length >= 8, f"max length must be >= 8, got {self.max_length}"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch size and gradient accumulation must be >= 1"),
            (self.epochs > 0 or self.max_steps > 0, "need epochs > 0 or max steps > 0"),
            (0 <= self.warmup_ratio < 1, f"warmup ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
            (self.neftune_alpha is None or self.neftune_alpha > 0, "NEFTune alpha must be > 0"),
            (self.lora_r >= 1, f"LoRA rank must be >= 1, got {self.lora_r}"),
            (self.fixed_set >= 1, f"fixed set must be >= 1 example, got {self.fixed_set}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.qlora:
            self.lora = True

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output_dir"] = str(self.output_dir)
        d["deepspeed"] = str(self.deepspeed) if self.deepspeed else None
        d["report_to"] = list(self.report_to)
        return d
