"""Held-out perplexity and token entropy of a model on SFT responses ("Preserving Diversity in SFT" 6.1 and E.1).

The held-out set is chat-formatted exactly as evalkit trains (evalkit/train/sft_data.py): the
prompt (chat template up to the assistant turn) is masked, and the response tokens and the end
of turn are scored. Over all scored tokens t:

    perplexity = exp(mean_t CE_t),   CE_t = -log p(y_t | y_<t)
    entropy    = mean_t H(p(. | y_<t)),   H(p) = -sum_v p_v log p_v   (the full softmax, exact)

Both are token-level means over the whole set (documents weighted by their token counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evalkit.errors import ConfigError, DataError
from evalkit.train.sft_data import collate, to_messages, tokenize

_OPTION_FIELDS = {"last", "max_length", "batch_size"}


@dataclass(frozen=True)
class PerplexityOptions:
    last: int | None = None  # score the last N records of the data (the held-out end of the file)
    max_length: int = 1024  # tokens per example (prompt and response), longer ones are cut
    batch_size: int = 8

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> PerplexityOptions:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: 'perplexity' must be a mapping")
        unknown = sorted(set(raw) - _OPTION_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: unknown perplexity field(s) {unknown}; known: {sorted(_OPTION_FIELDS)}")
        for key, value in raw.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{where}: perplexity.{key} must be an integer >= 1")
        return cls(**raw)


@dataclass(frozen=True)
class TokenStats:
    """Per-example sums over its scored (response) tokens."""

    n_tokens: int
    nll_sum: float
    entropy_sum: float


def token_stats(
    model: Any, tokenizer: Any, records: list[dict[str, Any]], max_length: int, batch_size: int
) -> list[TokenStats | None]:
    """Cross-entropy and entropy sums per record (None when the prompt alone fills max_length)."""
    import torch  # heavy: only when the model scores

    examples = [tokenize(to_messages(r), tokenizer, max_length) for r in records]
    out: list[TokenStats | None] = [None] * len(records)
    kept = [i for i, e in enumerate(examples) if e is not None and any(label != -100 for label in e.labels[1:])]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    for start in range(0, len(kept), batch_size):
        chunk = kept[start : start + batch_size]
        batch = collate([examples[i] for i in chunk], pad)
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits
            labels = batch["labels"][:, 1:].to(device)
            mask = labels != -100
            # only the scored positions: [tokens, vocabulary], in float32 whatever the model's dtype
            logp = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)
            nll = -logp.gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1).double()
            entropy = -(logp.exp() * logp).sum(-1).double()
        counts = mask.sum(-1).tolist()
        offsets = [0]
        for c in counts:
            offsets.append(offsets[-1] + c)
        for row, i in enumerate(chunk):
            a, b = offsets[row], offsets[row + 1]
            out[i] = TokenStats(counts[row], float(nll[a:b].sum()), float(entropy[a:b].sum()))
    return out


def summarize(stats: list[TokenStats | None]) -> tuple[dict[str, float], int]:
    """The task's metrics (token-level means over the whole set) and its number of scored tokens."""
    scored = [s for s in stats if s is not None]
    n = sum(s.n_tokens for s in scored)
    if n == 0:
        raise DataError("no held-out example has a response token within max_length")
    nll = sum(s.nll_sum for s in scored) / n
    return {"perplexity": math.exp(nll), "nll": nll, "entropy": sum(s.entropy_sum for s in scored) / n}, n
