"""Generation through the cache: render chats and draw samples, reusing what is cached and
committing each generation call at once. The runner uses it for the model under test and the
LLM judges for the judge model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalkit.backends import Backend, GenerationFailed, PromptBatch, Sample, texts_of
from evalkit.cache import GenerationCache, prompt_key, sample_key
from evalkit.config import SamplingConfig

Progress = Callable[[int], None]


@dataclass
class CacheStats:
    hits: int = 0
    generated: int = 0
    generated_tokens: int = 0  # new tokens of the sequences decoded (a greedy decode counts once)
    untimed: int = 0  # decoded sequences whose backend did not say how many tokens they took


def render_cached(backend: Backend, cache: GenerationCache | None, chats: list[list[dict[str, str]]]) -> list[str]:
    """The prompt text of every chat, rendered by the backend only when not cached."""
    keys = [prompt_key(backend.render_identity, chat) for chat in chats]
    found = cache.get_many(keys, table="prompts") if cache else {}
    new = {k: backend.render(chat) for k, chat in zip(keys, chats) if k not in found}
    if cache and new:
        cache.put_many(new.items(), table="prompts")
    return [found[k] if k in found else new[k] for k in keys]


def generate_cached(
    backend: Backend,
    cache: GenerationCache | None,
    prompts: list[str],
    sampling: SamplingConfig,
    stats: CacheStats,
    on_progress: Progress | None = None,
) -> list[list[str]]:
    """The completions of generate_samples_cached."""
    return texts_of(generate_samples_cached(backend, cache, prompts, sampling, stats, on_progress))


def generate_samples_cached(
    backend: Backend,
    cache: GenerationCache | None,
    prompts: list[str],
    sampling: SamplingConfig,
    stats: CacheStats,
    on_progress: Progress | None = None,
) -> list[list[Sample]]:
    """n samples per prompt (completion, finish reason, tokens). Prompts are cut into fixed
    batches (sorted by length so little padding is wasted); a batch whose samples are all cached
    is not regenerated, any other batch is generated whole and committed at once, so a resumed
    run computes exactly what an uninterrupted one would. A batch-invariant backend (one request
    per prompt) is asked only for the prompts that are not wholly cached. Cached samples keep
    their finish reason (None for rows cached before it was recorded) and no token count."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    per_call = backend.prompts_per_call(sampling)
    with_n = backend.samples_depend_on_n and not sampling.greedy
    identity = backend.sample_identity  # the model, backend kind and precision: the same for every sample
    result: list[list[Sample]] = [[] for _ in prompts]
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        keys = [[sample_key(identity, prompts[i], sampling, j, with_n) for j in range(sampling.n)] for i in chunk]
        found = cache.get_samples([k for ks in keys for k in ks]) if cache else {}
        cached = {k: Sample(text, reason) for k, (text, reason) in found.items()}
        if len(cached) == len(chunk) * sampling.n:
            stats.hits += len(cached)
            for i, ks in zip(chunk, keys):
                result[i] = [cached[k] for k in ks]
            if on_progress:
                on_progress(len(cached))
            continue
        if backend.batch_invariant and cached:
            # Serve the prompts that are wholly cached; generate only the others.
            whole = {j for j, ks in enumerate(keys) if all(k in cached for k in ks)}
            for j in whole:
                result[chunk[j]] = [cached[k] for k in keys[j]]
            stats.hits += len(whole) * sampling.n
            if on_progress:
                on_progress(len(whole) * sampling.n)
            chunk = [i for j, i in enumerate(chunk) if j not in whole]
            keys = [ks for j, ks in enumerate(keys) if j not in whole]
        try:
            completions = backend.generate_samples(PromptBatch([prompts[i] for i in chunk], sampling), on_progress)
        except GenerationFailed as exc:
            # Keep what did finish: a rerun serves it from the cache and asks only for the rest.
            if cache and exc.finished:
                done = [(keys[j], [_as_sample(c) for c in cs]) for j, cs in exc.finished.items()]
                cache.put_samples((k, c.text, c.finish_reason) for ks, cs in done for k, c in zip(ks, cs))
            raise
        stats.generated += len(chunk) * sampling.n
        for samples in completions:
            for sample in samples[: sampling.decodes]:
                stats.generated_tokens += sample.tokens or 0
                stats.untimed += sample.tokens is None
        if cache:
            cache.put_samples((k, c.text, c.finish_reason) for ks, cs in zip(keys, completions) for k, c in zip(ks, cs))
        for i, cs in zip(chunk, completions):
            result[i] = cs
    return result


def _as_sample(completion: Sample | str) -> Sample:
    return completion if isinstance(completion, Sample) else Sample(completion)
