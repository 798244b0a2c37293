"""Reference implementations the loss tests (and benchmarks/loss_memory.py) compare against.

`listing1_gem_loss` is the GEM paper's Listing 1 ("Pytorch Code of GEM"), transcribed as printed;
`tofu_direct` is the TOFU paper's Definition 3.4 written out with plain autograd; `focal_direct` and
`ce_entropy_direct` are the focal and CE + entropy formulas of DESIGN.md section 3, likewise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listing1_gem_loss(logits, labels, beta=0.7, ignore_index=-100, h="linear"):
    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = labels[..., 1:].contiguous()
    mask = shift_labels != ignore_index
    shift_logits = shift_logits[mask]
    shift_labels = shift_labels[mask]
    with torch.no_grad():
        logits_on_labels = torch.gather(shift_logits, dim=-1, index=shift_labels.unsqueeze(-1)).squeeze(-1)
        logits_diff = shift_logits - logits_on_labels.unsqueeze(-1)
        if h == "linear":
            weights = torch.ones_like(logits_diff)
        elif h == "log_sigmoid":
            weights = F.sigmoid(0.01 * logits_diff)
        else:
            raise ValueError(h)
    gene_log_probs = F.log_softmax(shift_logits, dim=-1)
    q_probs = torch.exp(F.log_softmax(shift_logits / beta, dim=-1)).detach()
    real_log_probs = torch.gather(gene_log_probs, dim=-1, index=shift_labels.unsqueeze(-1)).squeeze(-1)
    loss = -torch.sum(q_probs * weights * (real_log_probs.unsqueeze(-1) - gene_log_probs), dim=-1).mean()
    return loss


def shifted(logits, labels, ignore_index=-100):
    z, y = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    keep = y != ignore_index
    return z[keep], y[keep]


def tofu_direct(logits, labels, beta=0.8, gamma=3.0, ignore_index=-100):
    z, y = shifted(logits, labels, ignore_index)
    p = torch.softmax(z, dim=-1).gather(-1, y[:, None]).squeeze(-1).detach()
    g = (1 - p) ** gamma - gamma * p * (1 - p) ** (gamma - 1) * torch.log(p)
    log_q_y = torch.log_softmax(z / beta, dim=-1).gather(-1, y[:, None]).squeeze(-1)
    return (-g * beta * log_q_y).mean()


def tempered_ce(logits, labels, beta, ignore_index=-100):
    z, y = shifted(logits, labels, ignore_index)
    return beta * F.cross_entropy(z / beta, y)


def focal_direct(logits, labels, gamma=2.0, ignore_index=-100):
    """-(1 - p_y)^gamma log p_y (DESIGN.md section 3), differentiated through the weight by autograd."""
    z, y = shifted(logits, labels, ignore_index)
    log_p_y = F.log_softmax(z, dim=-1).gather(-1, y[:, None]).squeeze(-1)
    return (-((1 - log_p_y.exp()) ** gamma) * log_p_y).mean()


def ce_entropy_direct(logits, labels, lam=0.1, ignore_index=-100):
    """CE - lambda H(softmax(z)) (DESIGN.md section 3) with plain autograd."""
    z, y = shifted(logits, labels, ignore_index)
    log_p = F.log_softmax(z, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return (F.cross_entropy(z, y, reduction="none") - lam * entropy).mean()
