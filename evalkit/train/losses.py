"""Token-level SFT losses with the calling convention of a causal LM's logits.

Every loss takes unshifted ``logits [B, T, V]`` and ``labels [B, T]`` as the model returns them,
shifts inside (position t predicts label t + 1), and returns the mean over tokens whose label is
not ``ignore_index``.

GEM (both h) and TOFU are written here because no kept library has them. They run as one
custom autograd function that walks the tokens in chunks. Each chunk computes its loss value and
its closed-form gradient with respect to the logits, in float32, and writes that gradient into
one buffer the size of the logits. The backward pass only scales that buffer. Peak memory is the
logits plus one logits-sized buffer, which is less than ``F.cross_entropy`` on shifted logits
(the shift copy and the saved log-softmax). Neither loss ever holds the V-sized temporaries of a
direct implementation.

Gradients (z: a position's logits, y: its label, lp = log_softmax(z), q = softmax(z / beta)):

* GEM, weights w detached (1 for h="linear", sigmoid(0.01 (z_v - z_y)) for h="logsigmoid"):
  loss = -sum_v q_v w_v (lp_y - lp_v), so d loss / dz = q * w - (sum_v q_v w_v) e_y.
  For h="linear" this is q - e_y, the gradient of beta * CE(z / beta, y) ("Diversity in LLMs under SFT" Thm 3.1). The
  linear loss is therefore computed and reported as beta * CE(z / beta), at CE's cost.
* TOFU: loss = -g(p_y) * beta * log softmax(z / beta)_y with g detached, so d loss / dz = g (q - e_y).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
# Tokens per chunk: chunk x V float32 temporaries stay near 16 MB whatever the vocabulary.
_CHUNK_ELEMENTS = 1 << 22

# (chunk logits [n, V] float32, chunk labels [n]) -> (per-token loss [n], gradient [n, V])
ChunkFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _shift(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted labels for every position (the last one ignored): position t is scored on label t + 1."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    target = torch.full_like(labels, ignore_index)
    target[:, :-1] = labels[:, 1:]
    return target, target != ignore_index


class _ChunkedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, chunk_fn: ChunkFn):
        vocab = logits.shape[-1]
        flat = logits.view(-1, vocab) if logits.is_contiguous() else logits.reshape(-1, vocab)
        flat_target, flat_valid = target.reshape(-1), valid.reshape(-1)
        rows = flat_valid.nonzero().squeeze(-1)
        count = rows.numel()
        grad = torch.zeros_like(flat)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        step = max(1, _CHUNK_ELEMENTS // vocab)
        for start in range(0, count, step):
            index = rows[start : start + step]
            loss, chunk_grad = chunk_fn(flat[index].to(torch.float32, copy=True), flat_target[index])
            total += loss.sum()
            grad[index] = chunk_grad.to(grad.dtype)
        ctx.save_for_backward(grad)
        ctx.count = count
        ctx.shape = logits.shape
        return total / max(count, 1)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if getattr(ctx, "consumed", False):
            raise RuntimeError("evalkit losses support one backward pass per forward (the gradient is scaled in place)")
        ctx.consumed = True
        (grad,) = ctx.saved_tensors
        scale = grad_output / max(ctx.count, 1)
        return grad.mul_(scale.to(grad.dtype)).view(ctx.shape), None, None, None


def _chunked(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, chunk_fn: ChunkFn) -> torch.Tensor:
    target, valid = _shift(logits, labels, ignore_index)
    return _ChunkedLoss.apply(logits, target, valid, chunk_fn)


def _tempered_ce(beta: float) -> ChunkFn:
    """beta * CE(z / beta): gradient softmax(z / beta) - e_y. beta = 1 is plain cross-entropy.

    Chunk functions own their chunk (a gathered copy of the logits) and work in place on it."""

    def chunk(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_q = torch.log_softmax(z.div_(beta) if beta != 1 else z, dim=-1)
        loss = -beta * log_q.gather(-1, y[:, None]).squeeze(-1)
        grad = log_q.exp_()
        grad.scatter_add_(-1, y[:, None], torch.full_like(y[:, None], -1, dtype=grad.dtype))
        return loss, grad

    return chunk


def _gem_logsigmoid(beta: float) -> ChunkFn:
    def chunk(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # -sum_v q_v w_v (lp_y - lp_v) = sum_v q_v w_v (z_v - z_y): the log-normaliser cancels.
        diff = z - z.gather(-1, y[:, None])
        qw = torch.softmax(z.div_(beta), dim=-1)
        qw.mul_(diff.mul(0.01).sigmoid_())
        loss = torch.linalg.vecdot(qw, diff)
        s = qw.sum(-1)
        qw.scatter_add_(-1, y[:, None], -s[:, None])
        return loss, qw

    return chunk


def _tofu(beta: float, gamma: float) -> ChunkFn:
    def chunk(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_p_y = z.gather(-1, y[:, None]).squeeze(-1) - torch.logsumexp(z, dim=-1)
        g = tofu_weight(log_p_y.exp(), gamma)
        loss, grad = _tempered_ce(beta)(z, y)
        return loss.mul_(g), grad.mul_(g[:, None])

    return chunk


def tofu_weight(p: torch.Tensor, gamma: float) -> torch.Tensor:
    """g(p, gamma) = (1-p)^gamma - gamma p (1-p)^(gamma-1) log p ("Diversity in LLMs under SFT" Def. 3.4)."""
    p = p.clamp(1e-12, 1.0)
    second = gamma * p * (1 - p) ** (gamma - 1) * torch.log(p)
    # The second term tends to 0 as p -> 1; at p = 1 with gamma < 1 it would read inf * 0.
    return (1 - p) ** gamma - torch.where(p < 1, second, torch.zeros_like(second))


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy, the baseline (chunked like the others: no shifted copy of the logits)."""
    return _chunked(logits, labels, ignore_index, _tempered_ce(1.0))


def gem_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 0.7,
    h: Literal["linear", "logsigmoid"] = "linear",
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """GEM ("Entropic Distribution Matching" Listing 1). h="linear" is returned as beta * CE(z / beta),
    its gradient twin."""
    if not 0 < beta:
        raise ValueError(f"beta must be > 0, got {beta}")
    if h == "linear":
        return _chunked(logits, labels, ignore_index, _tempered_ce(beta))
    if h in ("logsigmoid", "log_sigmoid"):
        return _chunked(logits, labels, ignore_index, _gem_logsigmoid(beta))
    raise ValueError(f"h must be 'linear' or 'logsigmoid', got {h!r}")


def tofu_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.8, gamma: float = 3.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """TOFU ("Diversity in LLMs under SFT" Def. 3.4): -g(p_y, gamma) * beta * log softmax(z / beta)_y, g detached."""
    if not 0 < beta or gamma < 0:
        raise ValueError(f"need beta > 0 and gamma >= 0, got beta={beta}, gamma={gamma}")
    return _chunked(logits, labels, ignore_index, _tofu(beta, gamma))


def _shifted_valid(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int):
    target, valid = _shift(logits, labels, ignore_index)
    return logits[valid], target[valid]


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Focal loss -(1 - p_y)^gamma log p_y, differentiated through the weight as usual."""
    z, y = _shifted_valid(logits, labels, ignore_index)
    log_p_y = torch.log_softmax(z.float(), dim=-1).gather(-1, y[:, None]).squeeze(-1)
    return (-((1 - log_p_y.exp()) ** gamma) * log_p_y).mean()


def ce_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, lam: float = 0.1, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """CE - lambda * H(softmax(z)): cross-entropy with an entropy bonus (the "CE + Entropy" of "Entropic
    Distribution Matching")."""
    z, y = _shifted_valid(logits, labels, ignore_index)
    log_p = torch.log_softmax(z.float(), dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return (F.nll_loss(log_p, y, reduction="none") - lam * entropy).mean()


@torch.no_grad()
def token_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean entropy (nats) of the model's next-token distribution over the scored positions."""
    target, valid = _shift(logits, labels, ignore_index)
    total, count = 0.0, 0
    step = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
    for b in range(logits.shape[0]):
        z_all = logits[b][valid[b]]
        for start in range(0, z_all.shape[0], step):
            log_p = torch.log_softmax(z_all[start : start + step].float(), dim=-1)
            total += float(-(log_p.exp() * log_p).sum())
            count += log_p.shape[0]
    return total / max(count, 1)
