"""The per-sample seeded sampler: same filtering as transformers' warpers, right distribution,
and samples that do not depend on the batch they are drawn in."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from evalkit.backends.base import sample_seed
from evalkit.backends.hf import truncate_at_stop
from evalkit.backends.sampler import SeededSampler, filter_logits
from evalkit.config import SamplingConfig


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 50, 1.0), (1.3, 0, 0.9), (0.6, 20, 0.8)])
def test_filter_matches_transformers_warpers(temperature, top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(6, 300) * 3
    ids = torch.zeros(6, 1, dtype=torch.long)
    expected = TemperatureLogitsWarper(temperature)(ids, logits.clone())
    if top_k:
        expected = TopKLogitsWarper(top_k)(ids, expected)
    if top_p < 1:
        expected = TopPLogitsWarper(top_p)(ids, expected)
    ours = filter_logits(logits, SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p))
    assert torch.equal(torch.isinf(ours), torch.isinf(expected))
    finite = ~torch.isinf(ours)
    assert torch.allclose(ours[finite], expected[finite])


def test_sampler_leaves_one_finite_logit_per_row_within_the_filter():
    torch.manual_seed(1)
    logits = torch.randn(8, 100)
    sampling = SamplingConfig(temperature=1.0, top_k=5, seed=3)
    sampler = SeededSampler(list(range(8)), sampling, prompt_len=4, device="cpu")
    out = sampler(torch.zeros(8, 4, dtype=torch.long), logits)
    assert (torch.isfinite(out).sum(dim=-1) == 1).all()
    chosen = out.argmax(dim=-1)
    top5 = torch.topk(logits, 5).indices
    assert all(c in row for c, row in zip(chosen.tolist(), top5.tolist()))


def test_sampler_draws_from_the_filtered_distribution():
    # 20,000 rows share one distribution; the empirical frequencies must match it.
    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = probs.log().repeat(20_000, 1)
    sampling = SamplingConfig(temperature=1.0, top_p=0.9)  # nucleus keeps the first three tokens
    sampler = SeededSampler(list(range(20_000)), sampling, prompt_len=1, device="cpu")
    chosen = sampler(torch.zeros(20_000, 1, dtype=torch.long), logits).argmax(dim=-1)
    freq = torch.bincount(chosen, minlength=5).double() / 20_000
    expected = torch.tensor([0.5, 0.25, 0.15, 0, 0], dtype=torch.float64) / 0.9
    assert torch.allclose(freq, expected, atol=0.015), freq


def test_each_row_depends_only_on_its_own_seed():
    torch.manual_seed(2)
    logits = torch.randn(4, 50)
    sampling = SamplingConfig(temperature=1.0, seed=0)
    seeds = [sample_seed(0, f"prompt {i}", 0) for i in range(4)]
    together = SeededSampler(seeds, sampling, 2, "cpu")(torch.zeros(4, 2, dtype=torch.long), logits).argmax(-1)
    alone = [
        SeededSampler([s], sampling, 2, "cpu")(torch.zeros(1, 2, dtype=torch.long), logits[i : i + 1]).argmax(-1)
        for i, s in enumerate(seeds)
    ]
    assert together.tolist() == torch.cat(alone).tolist()


def test_greedy_picks_the_argmax():
    logits = torch.randn(3, 40)
    out = SeededSampler([1, 2, 3], SamplingConfig(temperature=0), 1, "cpu")(torch.zeros(3, 1, dtype=torch.long), logits)
    assert out.argmax(-1).tolist() == logits.argmax(-1).tolist()


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(1, "p", 0) == sample_seed(1, "p", 0)
    assert len({sample_seed(1, "p", i) for i in range(100)}) == 100
    assert sample_seed(1, "p", 0) != sample_seed(2, "p", 0)


def test_truncate_at_earliest_stop():
    assert truncate_at_stop("a\nb###c", ["###", "\n"]) == "a"
    assert truncate_at_stop("abc", ["x"]) == "abc"
    assert truncate_at_stop("abc", []) == "abc"


@pytest.mark.parametrize("top_k, top_p", [(5, 1.0), (20, 0.8), (50, 0.95)])
def test_top_k_candidates_equal_the_full_vocabulary_filter(top_k, top_p):
    from evalkit.backends.sampler import candidates

    torch.manual_seed(4)
    logits = torch.randn(5, 500) * 2
    sampling = SamplingConfig(temperature=0.8, top_k=top_k, top_p=top_p)
    full = filter_logits(logits, sampling).softmax(-1)
    values, ids = candidates(logits, sampling)
    restricted = torch.zeros_like(full).scatter(-1, ids, values.softmax(-1))
    assert torch.allclose(restricted, full, atol=1e-6)


def test_sampling_with_top_k_draws_from_the_filtered_distribution():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.06, 0.04])
    logits = probs.log().repeat(20_000, 1)
    sampler = SeededSampler(list(range(20_000)), SamplingConfig(temperature=1.0, top_k=2), 1, "cpu")
    chosen = sampler(torch.zeros(20_000, 1, dtype=torch.long), logits).argmax(dim=-1)
    freq = torch.bincount(chosen, minlength=5).double() / 20_000
    assert torch.allclose(freq, torch.tensor([4 / 7, 3 / 7, 0, 0, 0], dtype=torch.float64), atol=0.015), freq


def _draws(sampler: SeededSampler, logits_per_step: list[torch.Tensor], prompt_len: int = 3) -> list[list[int]]:
    rows = logits_per_step[0].shape[0]
    return [
        sampler(torch.zeros(rows, prompt_len + step, dtype=torch.long), logits).argmax(-1).tolist()
        for step, logits in enumerate(logits_per_step)
    ]


@pytest.mark.parametrize("chunk_steps", [1, 7, 64, 1000])
def test_samples_do_not_depend_on_the_chunk_of_uniforms_drawn_at_once(chunk_steps):
    """The uniforms are drawn a chunk at a time; any chunk size gives the stream that drawing
    all max_tokens of them up front gave (the samples the other tests pin)."""
    torch.manual_seed(5)
    sampling = SamplingConfig(temperature=0.9, top_k=30, top_p=0.95, max_tokens=150, seed=2)
    logits = [torch.randn(4, 200) * 2 for _ in range(150)]
    seeds = [sample_seed(2, "p", i) for i in range(4)]
    expected = []
    for step, step_logits in enumerate(logits):  # the stream as it was drawn before: all steps at once
        uniforms = torch.stack(
            [1.0 - torch.rand(150, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds]
        )
        from evalkit.backends.sampler import candidates

        filtered, ids = candidates(step_logits, sampling)
        cdf = filtered.softmax(-1).double().cumsum(-1)
        pick = torch.searchsorted(cdf, uniforms[:, step : step + 1] * cdf[:, -1:]).clamp_max(cdf.shape[-1] - 1)
        expected.append(ids.gather(-1, pick).squeeze(-1).tolist())
    chunked = SeededSampler(seeds, sampling, 3, "cpu", chunk_steps=chunk_steps)
    assert _draws(chunked, logits) == expected


def test_uniforms_follow_the_steps_taken_not_max_tokens():
    """max_tokens of 10**12 allocates nothing up front: the sampler holds one chunk per row."""
    from evalkit.backends.sampler import CHUNK_STEPS

    sampling = SamplingConfig(temperature=1.0, max_tokens=10**12, seed=1)
    sampler = SeededSampler(list(range(16)), sampling, 2, "cpu")
    assert sampler._uniforms.numel() == 0
    _draws(sampler, [torch.randn(16, 50) for _ in range(CHUNK_STEPS + 3)], prompt_len=2)
    assert sampler._uniforms.numel() <= 16 * CHUNK_STEPS
    small = SeededSampler(list(range(16)), sampling.replace(max_tokens=5), 2, "cpu")
    _draws(small, [torch.randn(16, 50) for _ in range(5)], prompt_len=2)
    assert small._uniforms.shape == (16, 5)  # never more than max_tokens


def test_greedy_draws_no_uniforms():
    sampler = SeededSampler(list(range(8)), SamplingConfig(temperature=0, max_tokens=10**9), 1, "cpu")
    assert sampler._generators == [] and sampler._uniforms.numel() == 0
