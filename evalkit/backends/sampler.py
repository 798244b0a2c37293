"""Per-sample seeded sampling as a transformers logits processor.

transformers draws every row of a batch from one global generator, so a sample depends on which
other prompts share its batch and on how many samples were asked for. That breaks resuming and
caching by sample index. Here each row draws from its own stream of uniforms (one per step,
from a generator seeded by `sample_seed`), applying temperature, top-k and top-p in the order
transformers' own warpers do, and returns logits with a single finite entry: the chosen token.

The uniforms are drawn a chunk of steps at a time (``CHUNK_STEPS``), as the steps come: memory
follows the real output length, not the requested maximum (``--max-tokens 10**8`` preallocated
1.5 GB before). Drawing a stream in chunks gives the same numbers as drawing it at once, so a
sample does not depend on the chunk size. A step does no host-device synchronisation: the step
number comes from the shape of ``input_ids``, and a chunk's uniforms are copied to the device
once per chunk, without waiting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evalkit.config import SamplingConfig


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter exactly as transformers' TopPLogitsWarper computes it."""
    if top_p >= 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, descending=False, dim=-1)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False  # always keep the most likely token
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def filter_logits(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p over the whole vocabulary, as transformers' warpers."""
    scores = logits.float() / sampling.temperature
    if 0 < sampling.top_k < scores.shape[-1]:
        kth = torch.topk(scores, sampling.top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    return _top_p(scores, sampling.top_p)


def candidates(logits: torch.Tensor, sampling: SamplingConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same filter, restricted to the top-k tokens when top-k is on: (filtered logits of the
    candidates, their vocabulary ids or None for the whole vocabulary). Tokens outside the top k
    have probability 0 either way, so top-p over the k candidates equals top-p over the vocabulary,
    at a fraction of the cost of sorting the whole vocabulary each step."""
    scores = logits.float() / sampling.temperature
    if 0 < sampling.top_k < scores.shape[-1]:
        values, ids = torch.topk(scores, sampling.top_k, dim=-1)
        return _top_p(values, sampling.top_p), ids
    return _top_p(scores, sampling.top_p), None


CHUNK_STEPS = 64  # uniforms drawn per row at a time


class SeededSampler:
    """A LogitsProcessor: call signature ``(input_ids, scores) -> scores``."""

    def __init__(
        self,
        seeds: Sequence[int],
        sampling: SamplingConfig,
        prompt_len: int,
        device: str,
        chunk_steps: int = CHUNK_STEPS,
    ) -> None:
        self.sampling = sampling
        self.prompt_len = prompt_len
        self.device = torch.device(device)
        self.chunk_steps = max(1, chunk_steps)
        # Greedy decoding draws nothing: no generators, no uniforms.
        self._generators = [] if sampling.greedy else [torch.Generator().manual_seed(s) for s in seeds]
        self._first = 0  # the step of the first column of self._uniforms
        self._uniforms = torch.empty(len(self._generators), 0, dtype=torch.float64, device=self.device)

    def uniforms(self, step: int) -> torch.Tensor:
        """Each row's uniform of ``step``, [rows, 1] on the device: the ``step``-th number of its
        stream, whatever the chunk size. Steps come in order; a chunk is drawn when one is used up."""
        if step < self._first:
            raise ValueError(f"step {step} comes after step {self._first}: the streams only go forward")
        while step >= self._first + self._uniforms.shape[1]:
            self._first += self._uniforms.shape[1]
            width = min(self.chunk_steps, max(1, self.sampling.max_tokens - self._first))
            chunk = torch.empty(len(self._generators), width, dtype=torch.float64)
            for row, generator in enumerate(self._generators):
                # 1 - U(0,1) lies in (0, 1]: never selects a zero-probability token at the CDF's start.
                chunk[row] = 1.0 - torch.rand(width, generator=generator, dtype=torch.float64)
            if self.device.type == "cuda":
                chunk = chunk.pin_memory().to(self.device, non_blocking=True)
            self._uniforms = chunk.to(self.device)
        column = step - self._first
        return self._uniforms[:, column : column + 1]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        if self.sampling.greedy:
            chosen = scores.argmax(dim=-1)
        else:
            filtered, ids = candidates(scores, self.sampling)
            cdf = filtered.softmax(dim=-1).double().cumsum(dim=-1)
            target = self.uniforms(step) * cdf[:, -1:]
            pick = torch.searchsorted(cdf, target).clamp_max(cdf.shape[-1] - 1)
            chosen = (ids.gather(-1, pick) if ids is not None else pick).squeeze(-1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, chosen.unsqueeze(-1), 0.0)
        return out
