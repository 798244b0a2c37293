"""Which loss, with which parameters, as one value every implementation path reads.

`evalkit train` computes its loss along one of three paths (torch on logits, Triton kernels on
logits, or the fused LM head + loss that never builds the logits). They all take a `LossSpec`,
and the two chunked paths call the same per-row contract: given a chunk of logits rows
``z [n, V]`` and their labels ``y [n]``, return each row's loss ``[n]`` and its gradient with
respect to ``z`` ``[n, V]``. `torch_rows` is that contract in plain torch (the CPU path);
`evalkit.train.kernels` is the same in Triton.

Five row losses cover the five `--loss` choices (z: a row's logits, y: its label, lp =
log_softmax(z), p = softmax(z), q = softmax(z / beta)):

* tempered_ce: beta * CE(z / beta); gradient q - e_y. CE is beta = 1; GEM with h = linear is
  this at its beta (the gradient twin of Listing 1 of "Entropic Distribution Matching"; "Diversity in
  LLMs under SFT" Theorem 3.1).
* gem_logsigmoid: sum_v q_v w_v (z_v - z_y), w = sigmoid(0.01 (z - z_y)) detached; gradient
  q * w - (sum_v q_v w_v) e_y.
* tofu: -g(p_y, gamma) beta log q_y with g detached ("Diversity in LLMs under SFT" Definition 3.4);
  gradient g (q - e_y).
* focal: -(1 - p_y)^gamma lp_y, differentiated through the weight; gradient d (e_y - p) with
  d = gamma p_y (1 - p_y)^(gamma - 1) lp_y - (1 - p_y)^gamma.
* ce_entropy: CE - lambda H(p); gradient p - e_y + lambda p (lp + H).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from evalkit.train import losses

RowKind = Literal["tempered_ce", "gem_logsigmoid", "tofu", "focal", "ce_entropy"]
ROW_KINDS: tuple[RowKind, ...] = ("tempered_ce", "gem_logsigmoid", "tofu", "focal", "ce_entropy")


@dataclass(frozen=True)
class LossSpec:
    kind: RowKind
    beta: float = 1.0  # temperature of q (tempered_ce, gem_logsigmoid, tofu)
    gamma: float = 0.0  # tofu's and focal's gamma
    lam: float = 0.0  # ce_entropy's lambda

    def __post_init__(self) -> None:
        if self.kind not in ROW_KINDS:
            raise ValueError(f"unknown row loss {self.kind!r}; known: {', '.join(ROW_KINDS)}")
        if not self.beta > 0 or self.gamma < 0:
            raise ValueError(f"need beta > 0 and gamma >= 0, got beta={self.beta}, gamma={self.gamma}")

    @classmethod
    def for_loss(
        cls, loss: str, beta: float = 1.0, h: str = "linear", gamma: float = 0.0, lam: float = 0.1
    ) -> LossSpec:
        """The spec of an `evalkit train --loss` choice (its parameters as TrainConfig resolved them)."""
        if loss == "ce":
            return cls("tempered_ce")
        if loss == "gem":
            if h not in ("linear", "logsigmoid", "log_sigmoid"):
                raise ValueError(f"h must be 'linear' or 'logsigmoid', got {h!r}")
            return cls("tempered_ce" if h == "linear" else "gem_logsigmoid", beta=beta)
        if loss == "tofu":
            return cls("tofu", beta=beta, gamma=gamma)
        if loss == "focal":
            return cls("focal", gamma=gamma)
        if loss == "ce_entropy":
            return cls("ce_entropy", lam=lam)
        raise ValueError(f"unknown loss {loss!r}")


def _focal(gamma: float) -> losses.ChunkFn:
    def chunk(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = torch.log_softmax(z, dim=-1)
        lp_y = log_p.gather(-1, y[:, None]).squeeze(-1)
        p_y = lp_y.exp()
        rest = 1 - p_y
        loss = -rest.pow(gamma) * lp_y
        # d loss / d lp_y; the first term is 0 at gamma = 0 (as torch.pow's own backward has it).
        slope = (gamma * p_y * rest.pow(gamma - 1) * lp_y if gamma != 0 else 0) - rest.pow(gamma)
        grad = log_p.exp_().mul_(-slope[:, None])
        grad.scatter_add_(-1, y[:, None], slope[:, None])
        return loss, grad

    return chunk


def _ce_entropy(lam: float) -> losses.ChunkFn:
    def chunk(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = torch.log_softmax(z, dim=-1)
        p = log_p.exp()
        entropy = -torch.linalg.vecdot(p, log_p)
        loss = -log_p.gather(-1, y[:, None]).squeeze(-1) - lam * entropy
        grad = log_p.add_(entropy[:, None]).mul_(lam).add_(1).mul_(p)
        grad.scatter_add_(-1, y[:, None], torch.full_like(y[:, None], -1, dtype=grad.dtype))
        return loss, grad

    return chunk


def torch_rows(spec: LossSpec) -> losses.ChunkFn:
    """Per-row loss and gradient in torch: float32 rows in (consumed), (loss [n], gradient [n, V]) out."""
    if spec.kind == "tempered_ce":
        return losses._tempered_ce(spec.beta)
    if spec.kind == "gem_logsigmoid":
        return losses._gem_logsigmoid(spec.beta)
    if spec.kind == "tofu":
        return losses._tofu(spec.beta, spec.gamma)
    if spec.kind == "focal":
        return _focal(spec.gamma)
    return _ce_entropy(spec.lam)
