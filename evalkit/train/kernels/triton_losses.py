"""The training losses on CUDA through Triton: same signatures and values as `evalkit.train.losses`.

Each loss is one autograd function around the two kernels of `row_kernels`. The forward pass
reads the logits once and keeps two float32 numbers per token; the backward pass reads them
again and writes the gradient, already scaled by grad_output / count. Nothing is copied for the
shift: the kernels walk the unshifted rows and the shifted labels (the last position of each
sequence, and every -100, is skipped). Peak memory is the logits plus the gradient, as for the
torch path; time is about three passes over the logits' bytes.

Unlike the torch path, which computes its gradient in the forward pass, the gradient is only
built in the backward pass, so a no-grad call (evaluation) costs one read of the logits.
"""

from __future__ import annotations

from typing import Literal

import torch

from evalkit.train.kernels import row_kernels
from evalkit.train.loss_spec import LossSpec
from evalkit.train.losses import IGNORE_INDEX, _shift


class _RowLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, spec: LossSpec, ignore_index: int, block):
        vocab = logits.shape[-1]
        rows = logits.reshape(-1, vocab)
        if rows.stride(-1) != 1:
            rows = rows.contiguous()
        labels = target.reshape(-1).contiguous()
        row_loss, stats = row_kernels.forward_rows(rows, labels, spec, ignore_index, block)
        count = (labels != ignore_index).sum().clamp_(min=1)
        ctx.save_for_backward(rows, labels, stats, count)
        ctx.spec, ctx.ignore_index, ctx.block, ctx.shape = spec, ignore_index, block, logits.shape
        return row_loss.sum() / count

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        rows, labels, stats, count = ctx.saved_tensors
        scale = (grad_output.to(torch.float32) / count).reshape(1)
        grad = torch.empty_like(rows)
        row_kernels.backward_rows(rows, labels, stats, scale, ctx.spec, grad, ctx.ignore_index, ctx.block)
        return grad.view(ctx.shape), None, None, None, None


def row_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    spec: LossSpec,
    ignore_index: int = IGNORE_INDEX,
    block: int | None = None,
) -> torch.Tensor:
    """Mean row loss of `spec` over the scored tokens of unshifted logits [B, T, V] and labels [B, T].

    `block` is the number of vocabulary entries a program reads at a time (default: a power of
    two up to 16,384); the tests set it small so that several blocks and a ragged last one run."""
    target, _ = _shift(logits, labels, ignore_index)
    return _RowLoss.apply(logits, target, spec, ignore_index, block)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    return row_loss(logits, labels, LossSpec("tempered_ce"), ignore_index)


def gem_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 0.7,
    h: Literal["linear", "logsigmoid"] = "linear",
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """GEM; h="linear" is beta * CE(z / beta), its gradient twin, as in `evalkit.train.losses`."""
    return row_loss(logits, labels, LossSpec.for_loss("gem", beta=beta, h=h), ignore_index)


def tofu_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.8, gamma: float = 3.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    return row_loss(logits, labels, LossSpec("tofu", beta=beta, gamma=gamma), ignore_index)


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    return row_loss(logits, labels, LossSpec("focal", gamma=gamma), ignore_index)


def ce_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, lam: float = 0.1, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    return row_loss(logits, labels, LossSpec("ce_entropy", lam=lam), ignore_index)
