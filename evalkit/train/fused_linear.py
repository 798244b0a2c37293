"""LM head and loss in one step: the loss from the last hidden states and the output weight, never
building the [tokens, V] logits.

Only the scored tokens are projected (a masked prompt costs no LM-head work). They go through the
head in chunks of rows; each chunk's logits live just long enough to give the chunk's loss, its
gradient with respect to the logits, and from that the chunk's share of the gradients of the
hidden states and of the weight. The gradients are computed in the forward pass and the backward
pass only scales them (as Liger-Kernel and Cut Cross-Entropy do), so one forward supports one
backward.

Three implementations (`impl`):

* "liger": Liger-Kernel's fused linear cross-entropy, for the tempered-CE losses (CE, and GEM
  with h = linear, whose logits z / beta = h (W / beta)^T come from scaling the hidden states
  by 1 / beta; the loss is then multiplied by beta). A kept library: used whenever it fits.
* "triton": evalkit's chunked matmul with the row kernels of `evalkit.train.kernels`, the
  gradient written in place over each chunk's logits. Every loss; the default on CUDA for the
  losses Liger does not have (GEM-logsigmoid, TOFU, focal, CE + entropy).
* "torch": the same chunked matmul with the closed-form rows of `evalkit.train.loss_spec` in
  float32. Every loss, any device; the CPU implementation.

Under autocast the matmuls run in the autocast dtype (as the model's own LM head would); the
weight gradient accumulates in the weight's dtype.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch

from evalkit.train.loss_spec import LossSpec, torch_rows
from evalkit.train.losses import IGNORE_INDEX, _shift

Impl = Literal["liger", "triton", "torch"]
# Bytes of one chunk's float32 logits: 256 MiB (512 rows at V = 131,072). Fewer, larger chunks
# make the weight-gradient matmuls efficient; smaller ones lower the peak.
CHUNK_BYTES = 1 << 28


def choose_impl(spec: LossSpec, device_type: str) -> tuple[Impl, str | None]:
    """The implementation `impl="auto"` runs for this loss on this device, and why not a faster one."""
    from evalkit.train.kernels import unavailable_reason

    if device_type != "cuda":
        return "torch", None
    triton_missing = unavailable_reason(device_type)
    if triton_missing is not None:
        return "torch", triton_missing
    if spec.kind == "tempered_ce":
        if importlib.util.find_spec("liger_kernel") is not None:
            return "liger", None
        return "triton", "liger-kernel is not installed (pip install 'evalkit[train]')"
    return "triton", None


def describe(impl: Impl) -> str:
    return {
        "liger": "Liger-Kernel fused linear cross-entropy",
        "triton": "chunked LM head, Triton row kernels",
        "torch": "chunked LM head, torch rows",
    }[impl]


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


class _FusedLinearLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, spec: LossSpec, impl: Impl):
        dtype = _compute_dtype(hidden, weight)
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            count = h.shape[0]
            grad_hidden = torch.empty_like(h) if need_hidden else None
            grad_weight = torch.zeros_like(weight) if need_weight else None
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            scale = torch.full((1,), 1.0 / max(count, 1), dtype=torch.float32, device=h.device)
            step = max(1, CHUNK_BYTES // (4 * weight.shape[0]))
            for start in range(0, count, step):
                h_chunk, y_chunk = h[start : start + step], target[start : start + step]
                z = h_chunk @ w.T
                if impl == "triton":
                    from evalkit.train.kernels import row_kernels

                    row_loss, stats = row_kernels.forward_rows(z, y_chunk, spec)
                    if need_hidden or need_weight:  # the gradient, already divided by count, over z
                        dz = row_kernels.backward_rows(z, y_chunk, stats, scale, spec, out=z)
                else:
                    row_loss, dz32 = torch_rows(spec)(z.float(), y_chunk)
                    if need_hidden or need_weight:
                        dz = dz32.mul_(scale).to(dtype)
                total += row_loss.sum()
                if need_hidden:
                    torch.mm(dz, w, out=grad_hidden[start : start + step])
                if need_weight:
                    if grad_weight.dtype == dtype:
                        grad_weight.addmm_(dz.T, h_chunk)
                    else:
                        grad_weight.addmm_(dz.T.to(grad_weight.dtype), h_chunk.to(grad_weight.dtype))
        ctx.save_for_backward(
            grad_hidden if need_hidden else None,
            grad_weight if need_weight else None,
        )
        ctx.hidden_dtype = hidden.dtype
        return total / max(count, 1)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if getattr(ctx, "consumed", False):
            raise RuntimeError("evalkit losses support one backward pass per forward (the gradient is scaled in place)")
        ctx.consumed = True
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden.mul_(grad_output.to(grad_hidden.dtype)).to(ctx.hidden_dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_output.to(grad_weight.dtype))
        return grad_hidden, grad_weight, None, None, None


def _scored_rows(hidden: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states [n, H] of the scored positions (position t scored on label t + 1), and those labels."""
    target, valid = _shift(hidden, labels, ignore_index)
    rows = valid.reshape(-1).nonzero().squeeze(-1)
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows), target.reshape(-1).index_select(0, rows)


def fused_linear_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    spec: LossSpec,
    impl: Impl | Literal["auto"] = "auto",
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """The loss of `spec` on logits hidden @ weight.T, without building them.

    hidden [B, T, H] (unshifted, as the model's last layer returns them), weight [V, H] (the LM
    head, no bias), labels [B, T]; the mean over the scored tokens, as `evalkit.train.losses`."""
    if weight.dim() != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)} do not multiply")
    if impl == "auto":
        impl = choose_impl(spec, hidden.device.type)[0]
    h, y = _scored_rows(hidden, labels, ignore_index)
    if impl == "liger" and h.shape[0] > 0:
        if spec.kind != "tempered_ce":
            raise ValueError(f"Liger-Kernel has cross-entropy only, not {spec.kind}")
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        if h.dtype != weight.dtype and not torch.is_autocast_enabled(h.device.type):
            h = h.to(weight.dtype)
        scaled = h if spec.beta == 1 else h / spec.beta
        return spec.beta * liger_fused_linear_cross_entropy(scaled, weight, y, ignore_index=ignore_index)
    return _FusedLinearLoss.apply(h, weight, y, spec, "torch" if impl == "liger" else impl)


@torch.no_grad()
def token_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> float:
    """Mean entropy (nats) of softmax(hidden @ weight.T) over the scored positions, chunk by chunk."""
    h, _ = _scored_rows(hidden, labels, ignore_index)
    dtype = _compute_dtype(h, weight)
    w = weight.to(dtype)
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    step = max(1, CHUNK_BYTES // (4 * weight.shape[0]))
    with torch.autocast(h.device.type, enabled=False):
        for start in range(0, h.shape[0], step):
            log_p = torch.log_softmax((h[start : start + step].to(dtype) @ w.T).float(), dim=-1)
            total += -torch.linalg.vecdot(log_p.exp(), log_p).sum()
    return float(total) / max(h.shape[0], 1)
