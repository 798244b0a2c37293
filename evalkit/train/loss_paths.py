"""Which implementation of the chosen loss `evalkit train` runs (`--loss-path`), and the model
plumbing of the fused path.

* fused-linear: the model returns its last hidden states (no logits: `logits_to_keep` is
  empty) and `evalkit.train.fused_linear` computes the loss from them and the LM head's weight,
  chunk by chunk. Used only when the model's logits are exactly hidden @ W^T: a plain linear
  head without bias, no soft-capping or scaling after it. That is checked on one example before
  training, not assumed. Not with DeepSpeed (it partitions or wraps the head after this choice).
* triton: the model's logits, the loss by the Triton kernels (`evalkit.train.kernels`).
* torch: the model's logits, the loss by `evalkit.train.losses` (chunked torch).

`auto` (the default) takes fused-linear on a CUDA GPU when the model allows it, else triton on
CUDA, else torch; on CPU it is always torch. The path that ran, and why auto did not take a
faster one, go into evalkit_train.json.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from evalkit.errors import ConfigError
from evalkit.train import fused_linear
from evalkit.train.config import LOSS_PATHS, TrainConfig
from evalkit.train.loss_spec import LossSpec

__all__ = ["LOSS_PATHS", "LossPath", "choose_loss_path"]
_PROBE_TOKENS = 32


def spec_of(config: TrainConfig) -> LossSpec:
    return LossSpec.for_loss(config.loss, config.beta, config.h, config.gamma, config.entropy_lambda)


def torch_loss(config: TrainConfig) -> Callable:
    """The chosen loss from `evalkit.train.losses` with its parameters: (logits, labels) -> loss."""
    from evalkit.train import losses

    return {
        "ce": lambda z, y: losses.ce_loss(z, y),
        "gem": lambda z, y: losses.gem_loss(z, y, beta=config.beta, h=config.h),
        "tofu": lambda z, y: losses.tofu_loss(z, y, beta=config.beta, gamma=config.gamma),
        "focal": lambda z, y: losses.focal_loss(z, y, gamma=config.gamma),
        "ce_entropy": lambda z, y: losses.ce_entropy_loss(z, y, lam=config.entropy_lambda),
    }[config.loss]


def triton_loss(spec: LossSpec) -> Callable:
    from evalkit.train.kernels import triton_losses

    return lambda z, y: triton_losses.row_loss(z, y, spec)


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's base


def output_head(model: Any) -> torch.nn.Module | None:
    getter = getattr(_base_model(model), "get_output_embeddings", None)
    return getter() if getter is not None else None


def _no_logits(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.long, device=device)  # logits_to_keep: no position


def fused_unsupported_reason(config: TrainConfig, model: Any, device: torch.device, probe_ids: list[int]) -> str | None:
    """None when the fused path computes exactly this model's loss, else why it cannot."""
    if config.deepspeed:
        return "DeepSpeed wraps or partitions the LM head after the loss path is chosen"
    head = output_head(model)
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return "the model's LM head is not a plain linear layer without bias"
    if "logits_to_keep" not in inspect.signature(_base_model(model).forward).parameters:
        return "the model's forward takes no logits_to_keep (it would build the logits anyway)"
    ids = torch.tensor([probe_ids[:_PROBE_TOKENS]], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits
            out = model(input_ids=ids, output_hidden_states=True, logits_to_keep=_no_logits(device))
            product = (out.hidden_states[-1] @ head.weight.T).float()
    finally:
        model.train(was_training)
    if out.logits is not None and out.logits.numel() != 0:
        return "the model built its logits although logits_to_keep was empty"
    scale = float(product.abs().max())
    if not torch.allclose(logits.float(), product, rtol=1e-3, atol=1e-3 * max(scale, 1.0)):
        return "the model's logits are not its last hidden state times the LM head weight (soft-capping or scaling)"
    return None


@dataclass
class LossPath:
    name: str  # the path that runs: fused-linear, triton or torch
    implementation: str
    spec: LossSpec
    logits_loss: Callable  # (logits, labels) -> loss: evaluation, and training off the fused path
    fused_impl: str | None = None  # fused_linear's impl on the fused path
    head_weight: torch.nn.Parameter | None = None
    note: str | None = None  # why auto did not take a faster path

    def record(self) -> dict[str, Any]:
        return {
            "loss_path": self.name,
            "loss_implementation": self.implementation,
            "loss_spec": asdict(self.spec),
            "loss_path_note": self.note,
        }

    def forward_loss(
        self, model: Any, inputs: dict[str, Any], labels: torch.Tensor, with_entropy: bool
    ) -> tuple[torch.Tensor, Any, float | None]:
        """(loss, model outputs, mean token entropy when asked) for one batch."""
        from evalkit.train.losses import token_entropy

        if self.name != "fused-linear":
            outputs = model(**inputs)
            entropy = token_entropy(outputs.logits.detach(), labels) if with_entropy else None
            return self.logits_loss(outputs.logits, labels), outputs, entropy
        outputs = model(**inputs, output_hidden_states=True, logits_to_keep=_no_logits(labels.device))
        hidden = outputs.hidden_states[-1]
        loss = fused_linear.fused_linear_loss(hidden, self.head_weight, labels, self.spec, impl=self.fused_impl)
        entropy = None
        if with_entropy:
            entropy = fused_linear.token_entropy(hidden.detach(), self.head_weight.detach(), labels)
        return loss, outputs, entropy


def choose_loss_path(config: TrainConfig, model: Any, device: torch.device, probe_ids: list[int]) -> LossPath:
    """The loss path for `config.loss_path` on this model and device (the model already on it)."""
    from evalkit.train.kernels import unavailable_reason

    spec = spec_of(config)
    requested = config.loss_path
    torch_path = LossPath("torch", "chunked torch on the logits (evalkit.train.losses)", spec, torch_loss(config))
    if requested == "torch" or (requested == "auto" and device.type != "cuda"):
        return torch_path  # on CPU, Triton is not even imported
    triton_path = LossPath("triton", "Triton row kernels on the logits", spec, triton_loss(spec))
    if requested == "triton":
        missing = unavailable_reason(device.type)
        if missing is not None:
            raise ConfigError(f"--loss-path triton: {missing}")
        return triton_path
    # fused-linear, asked for or (auto) on a GPU; the logits path it falls back to, and evaluates with
    triton_missing = unavailable_reason(device.type) if device.type == "cuda" else None
    on_logits = triton_path if device.type == "cuda" and triton_missing is None else torch_path
    reason = fused_unsupported_reason(config, model, device, probe_ids)
    if reason is not None:
        if requested == "fused-linear":
            raise ConfigError(f"--loss-path fused-linear: {reason}")
        notes = [f"no fused LM head: {reason}"] + ([f"no Triton: {triton_missing}"] if triton_missing else [])
        on_logits.note = "; ".join(notes)
        return on_logits
    impl, slower_because = fused_linear.choose_impl(spec, device.type)
    return LossPath(
        "fused-linear",
        fused_linear.describe(impl),
        spec,
        on_logits.logits_loss,
        fused_impl=impl,
        head_weight=output_head(model).weight,
        note=slower_because,
    )
