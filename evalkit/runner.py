"""`evalkit run`: tasks -> prompts -> backend (through the cache) -> scores -> results.

Every check that can fail on user input (tasks, data, sampling values, output folder, model
path) runs before generation starts, so a bad input costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.backends import BACKENDS, Backend, PromptBatch
from evalkit.cache import GenerationCache, prompt_key, sample_key
from evalkit.cache_dir import cache_root
from evalkit.config import RunConfig, SamplingConfig, TaskSpec
from evalkit.data import Document, load_documents
from evalkit.errors import ConfigError, DataUnavailable
from evalkit.metrics import METRICS, aggregate
from evalkit.progress import progress_bar
from evalkit.registry import resolve_tasks, task_registry
from evalkit.results import document_id, ensure_writable, library_versions, write_run
from evalkit.task_kinds import prepare_kind, run_kind
from evalkit.tasks import render_messages

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PreparedTask:
    spec: TaskSpec
    docs: list[Document]
    sampling: SamplingConfig
    payload: Any = None  # what a task of another kind prepared (evalkit/task_kinds.py)


@dataclass
class CacheStats:
    hits: int = 0
    generated: int = 0


def prepare(config: RunConfig, skipped: dict[str, str] | None = None) -> list[PreparedTask]:
    """Resolve and validate everything that does not need the model.

    A task that came in through the suite (not named with --tasks) and whose data cannot be had
    here is skipped with a warning, its reason recorded in ``skipped``; a named one is an error."""
    if config.limit is not None and config.limit < 1:
        raise ConfigError(f"limit must be >= 1, got {config.limit}")
    registry = task_registry(*config.task_dirs)
    names = resolve_tasks(registry, config.suite, config.tasks)
    specs = [registry.get(name) for name in names]
    if config.prompt_style is not None:
        styled = [s for s in specs if s.prompt_styles]
        if not styled:
            raise ConfigError(f"--prompt-style {config.prompt_style}: none of the tasks has prompt styles")
        specs = [s.with_prompt_style(config.prompt_style) if s.prompt_styles else s for s in specs]
    prepared = []
    for name, spec in zip(names, specs):
        try:
            sampling = spec.sampling.replace(**config.sampling_overrides, seed=config.seed)
        except TypeError as exc:
            raise ConfigError(f"bad sampling override: {exc}") from None
        try:
            if spec.kind != "generate":  # lm_eval and perplexity tasks: evalkit/task_kinds.py
                docs, payload = [], prepare_kind(spec, config)
            else:
                docs, payload = load_documents(spec, config.data_dir, config.limit), None
        except DataUnavailable as exc:
            if name in config.tasks or skipped is None:
                raise
            skipped[name] = str(exc)
            print(f"evalkit: skipping {exc}", file=sys.stderr)
            continue
        for doc in docs[:1]:
            render_messages(spec, doc)  # a template/data mismatch fails now, not after generation
        prepared.append(PreparedTask(spec, docs, sampling, payload))
    if not prepared:
        raise DataUnavailable("no task of the suite has data here: " + "; ".join((skipped or {}).values()))
    return prepared


def default_run_id(config: RunConfig, model_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    what = config.suite or "-".join(config.tasks)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_name.split('/')[-1].split(' ')[0]}-{what}").strip("-")
    return f"{stamp}-{slug}".lower()[:120]


def render_cached(backend: Backend, cache: GenerationCache | None, chats: list[list[dict[str, str]]]) -> list[str]:
    """The prompt text of every chat, rendered by the backend only when not cached."""
    keys = [prompt_key(backend.fingerprint, chat) for chat in chats]
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
    """n completions per prompt. Prompts are cut into fixed batches (sorted by length so little
    padding is wasted); a batch whose samples are all cached is not regenerated, any other batch
    is generated whole and committed at once, so a resumed run computes exactly what an
    uninterrupted one would."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    per_call = backend.prompts_per_call(sampling)
    result: list[list[str]] = [[] for _ in prompts]
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        keys = [[sample_key(backend.fingerprint, prompts[i], sampling, j) for j in range(sampling.n)] for i in chunk]
        cached = cache.get_many([k for ks in keys for k in ks]) if cache else {}
        if len(cached) == len(chunk) * sampling.n:
            stats.hits += len(cached)
            for i, ks in zip(chunk, keys):
                result[i] = [cached[k] for k in ks]
            if on_progress:
                on_progress(len(cached))
            continue
        completions = backend.generate(PromptBatch([prompts[i] for i in chunk], sampling), on_progress)
        stats.generated += len(chunk) * sampling.n
        if cache:
            cache.put_many((k, c) for ks, cs in zip(keys, completions) for k, c in zip(ks, cs))
        for i, cs in zip(chunk, completions):
            result[i] = cs
    return result


@dataclass
class TaskScores:
    summary: dict[str, Any]  # task metrics (weighted means over documents) and their standard errors
    samples: list[list[dict[str, Any]]]  # per-sample scores
    per_doc: list[dict[str, float]]  # per-document metric values
    weights: list[dict[str, float]]  # per-document weights, only for metrics that are not plain means


def score_task(task: PreparedTask, completions: list[list[str]]) -> TaskScores:
    per_doc: list[dict[str, float]] = []
    weights: list[dict[str, float]] = []
    sample_scores: list[list[dict[str, Any]]] = []
    for doc, samples in zip(task.docs, completions):
        values: dict[str, float] = {}
        doc_weights: dict[str, float] = {}
        scores: list[dict[str, Any]] = [{} for _ in samples]
        for name in task.spec.metrics:
            outcome = METRICS.get(name)(samples, doc, task.spec.answer_field)
            values.update(outcome.per_doc)
            doc_weights.update(outcome.weights)
            for row, extra in zip(scores, outcome.per_sample or []):
                row.update(extra)
        per_doc.append(values)
        weights.append(doc_weights)
        sample_scores.append(scores)
    agg = aggregate(per_doc, weights)
    return TaskScores({"metrics": agg.metrics, "stderr": agg.stderr}, sample_scores, per_doc, weights)


def run(config: RunConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    started = time.perf_counter()
    skipped: dict[str, str] = {}
    tasks = prepare(config, skipped)
    ensure_writable(config.output_dir)
    backend_factory = BACKENDS.get(config.backend)
    backend = backend_factory(config.model, device=config.device, batch_size=config.batch_size)
    cache = GenerationCache((config.cache_dir or cache_root()) / "generations.sqlite") if config.use_cache else None
    stats = CacheStats()
    run_id = config.run_id or default_run_id(config, backend.model_name)
    task_results: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    total = sum(len(t.docs) * t.sampling.n for t in tasks)
    generation_s = 0.0
    kind_versions: dict[str, str] = {}
    with progress_bar(total, enabled=progress) as advance:
        for task in tasks:
            if task.spec.kind != "generate":  # scored outside the generation path: evalkit/task_kinds.py
                outcome = run_kind(task.spec, task.payload, config, backend)
                task_results[task.spec.name] = outcome.entry
                samples.extend(outcome.samples)
                documents.extend(outcome.documents)
                kind_versions.update(outcome.versions)
                continue
            prompts = render_cached(backend, cache, [render_messages(task.spec, doc) for doc in task.docs])
            t0 = time.perf_counter()
            completions = generate_cached(backend, cache, prompts, task.sampling, stats, advance)
            generation_s += time.perf_counter() - t0
            scored = score_task(task, completions)
            task_results[task.spec.name] = {
                **scored.summary,
                "n_docs": len(task.docs),
                "n_samples": len(task.docs) * task.sampling.n,
                "sampling": dataclasses.asdict(task.sampling),
                **({"prompt_style": task.spec.prompt_style} if task.spec.prompt_style else {}),
            }
            samples.extend(_sample_rows(task, prompts, completions, scored.samples))
            documents.extend(_document_rows(task, scored))
    if cache:
        cache.close()
    results = {
        "run_id": run_id,
        "model": backend.model_name,
        "model_fingerprint": backend.fingerprint,
        "backend": backend.name,
        "config": config.to_json(),
        "versions": {**library_versions(), **backend.versions(), **kind_versions},
        "seed": config.seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache": {"hits": stats.hits, "generated": stats.generated},
        "timing": {"total_s": round(time.perf_counter() - started, 3), "generation_s": round(generation_s, 3)},
        "tasks": task_results,
        "skipped": skipped,
    }
    run_dir = config.output_dir / run_id
    write_run(run_dir, results, samples, documents)
    return run_dir, results


def _document_rows(task: PreparedTask, scored: TaskScores) -> list[dict[str, Any]]:
    rows = []
    for d, (doc, values, weights) in enumerate(zip(task.docs, scored.per_doc, scored.weights)):
        row = {"task": task.spec.name, "doc_index": d, "doc_id": document_id(doc), "metrics": values}
        if weights:
            row["weights"] = weights
        rows.append(row)
    return rows


def _sample_rows(task: PreparedTask, prompts: list[str], completions: list[list[str]], scores: list) -> list[dict]:
    rows = []
    answer_field = task.spec.answer_field
    for d, (doc, prompt, samples, doc_scores) in enumerate(zip(task.docs, prompts, completions, scores)):
        doc_id = document_id(doc)
        for s, (completion, sample_scores) in enumerate(zip(samples, doc_scores)):
            row = {
                "task": task.spec.name,
                "doc_index": d,
                "doc_id": doc_id,
                "sample_index": s,
                "prompt": prompt,
                "completion": completion,
            }
            if answer_field:
                row["target"] = doc[answer_field]
            row["scores"] = sample_scores
            rows.append(row)
    return rows
