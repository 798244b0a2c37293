"""`evalkit run`: tasks -> prompts -> backend (through the cache) -> scores -> results.

Every check that can fail on user input (tasks, data, sampling values, output folder, model
path) runs before generation starts, so a bad input costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.backends import Backend, make_backend
from evalkit.cache import GenerationCache
from evalkit.cache_dir import cache_root
from evalkit.config import RunConfig, SamplingConfig, TaskSpec
from evalkit.data import Document, load_documents
from evalkit.errors import ConfigError, DataUnavailable
from evalkit.generation import CacheStats, generate_cached, render_cached
from evalkit.judges import Judge, ModelPool, annotate, build_judges
from evalkit.judges import check_config as check_judge_config
from evalkit.metrics import METRICS, aggregate
from evalkit.progress import progress_bar
from evalkit.registry import resolve_tasks, task_registry
from evalkit.results import document_id, ensure_writable, library_versions, write_run
from evalkit.task_kinds import prepare_kind, run_kind
from evalkit.tasks import render_messages


@dataclass(frozen=True)
class PreparedTask:
    spec: TaskSpec
    docs: list[Document]
    sampling: SamplingConfig
    judges: tuple[Judge, ...] = ()  # model-backed scorers between generation and metrics
    payload: Any = None  # what a task of another kind prepared (evalkit/task_kinds.py)


def prepare(
    config: RunConfig, skipped: dict[str, str] | None = None, pool: ModelPool | None = None
) -> list[PreparedTask]:
    """Resolve and validate everything that does not need the model.

    A task that came in through the suite (not named with --tasks) and whose data cannot be had
    here is skipped with a warning, its reason recorded in ``skipped``; a named one is an error.
    The judges share the run's model ``pool``."""
    check_judge_config(config.judges)
    pool = pool or ModelPool(config.device)
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
    if config.judges.rubrics:
        specs = [with_rubrics(spec, config.judges.rubrics) for spec in specs]
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
            judges = build_judges(name, spec.judges, config.judges, pool)
        except DataUnavailable as exc:
            if name in config.tasks or skipped is None:
                raise
            skipped[name] = str(exc)
            print(f"evalkit: skipping {exc}", file=sys.stderr)
            continue
        for doc in docs[:1]:
            render_messages(spec, doc)  # a template/data mismatch fails now, not after generation
        prepared.append(PreparedTask(spec, docs, sampling, judges, payload))
    if not prepared:
        raise DataUnavailable("no task of the suite has data here: " + "; ".join((skipped or {}).values()))
    return prepared


def with_rubrics(spec: TaskSpec, rubrics: tuple[str, ...]) -> TaskSpec:
    """The task with these rubric judges (``--judge-rubric``) and the metrics that read them."""
    from evalkit.judges import JUDGES
    from evalkit.judges.rubrics import load_rubric, rubric_files
    from evalkit.registry import unknown_name

    files = rubric_files()
    judges, metrics = dict(spec.judges), list(spec.metrics)
    for name in rubrics:
        if name not in files or name not in JUDGES:
            raise unknown_name("judge rubric", name, files)
        rubric = load_rubric(files[name])
        # A pairwise rubric compares with the task's reference answer: its answer field by default.
        options = {"reference": spec.answer_field} if rubric.pairwise and spec.answer_field else {}
        judges.setdefault(name, options)
        metric = rubric.metric
        if metric not in metrics:
            metrics.append(metric)
    return dataclasses.replace(spec, judges=judges, metrics=tuple(metrics))


def default_run_id(config: RunConfig, model_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    what = config.suite or "-".join(config.tasks)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_name.split('/')[-1].split(' ')[0]}-{what}").strip("-")
    return f"{stamp}-{slug}".lower()[:120]


@dataclass
class TaskScores:
    summary: dict[str, Any]  # task metrics (weighted means over documents) and their standard errors
    samples: list[list[dict[str, Any]]]  # per-sample scores
    per_doc: list[dict[str, float]]  # per-document metric values
    weights: list[dict[str, float]]  # per-document weights, only for metrics that are not plain means


def score_task(
    task: PreparedTask, completions: list[list[str]], judged: list[dict[str, Any]] | None = None
) -> TaskScores:
    """Metrics of every document; ``judged`` holds the judges' extra fields of each document."""
    per_doc: list[dict[str, float]] = []
    weights: list[dict[str, float]] = []
    sample_scores: list[list[dict[str, Any]]] = []
    for d, (doc, samples) in enumerate(zip(task.docs, completions)):
        if judged:
            doc = {**doc, **judged[d]}
        values: dict[str, float] = {}
        doc_weights: dict[str, float] = {}
        scores: list[dict[str, Any]] = [{} for _ in samples]
        for name in task.spec.metrics:
            if not _judges_ran(name, task):
                continue
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


def _judges_ran(metric: str, task: PreparedTask) -> bool:
    """A metric that reads an optional judge that was left out (no judge model) is not computed."""
    ran = {j.kind for j in task.judges}
    return all(j in ran for j in METRICS.get(metric).needs_judges)


def run(config: RunConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """The run, start to end. Its model pool, backend and cache are closed however it ends."""
    with ExitStack() as stack:
        pool = stack.enter_context(ModelPool(config.device))
        skipped: dict[str, str] = {}
        started = time.perf_counter()
        tasks = prepare(config, skipped, pool)
        ensure_writable(config.output_dir)
        backend = make_backend(config.backend, config.model, config.device, config.batch_size, config.backend_options)
        stack.callback(backend.close)
        cache = None
        if config.use_cache:
            cache = GenerationCache((config.cache_dir or cache_root()) / "generations.sqlite")
            stack.callback(cache.close)
        return _run_tasks(config, tasks, backend, cache, skipped, started, progress)


def _run_tasks(
    config: RunConfig,
    tasks: list[PreparedTask],
    backend: Backend,
    cache: GenerationCache | None,
    skipped: dict[str, str],
    started: float,
    progress: bool,
) -> tuple[Path, dict[str, Any]]:
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
            chats = [render_messages(task.spec, doc) for doc in task.docs]
            prompts = render_cached(backend, cache, chats)
            t0 = time.perf_counter()
            completions = generate_cached(backend, cache, prompts, task.sampling, stats, advance)
            generation_s += time.perf_counter() - t0
            judged = annotate(task.judges, chats, task.docs, completions, cache) if task.judges else None
            scored = score_task(task, completions, judged)
            task_results[task.spec.name] = {
                **scored.summary,
                "n_docs": len(task.docs),
                "n_samples": len(task.docs) * task.sampling.n,
                "sampling": dataclasses.asdict(task.sampling),
                **({"prompt_style": task.spec.prompt_style} if task.spec.prompt_style else {}),
                **({"judges": {j.kind: j.setting for j in task.judges}} if task.judges else {}),
                **({"judgments": summaries} if (summaries := _judge_summaries(task)) else {}),
            }
            samples.extend(_sample_rows(task, prompts, completions, scored.samples))
            documents.extend(_document_rows(task, scored))
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


def _judge_summaries(task: PreparedTask) -> dict[str, Any]:
    return {j.kind: summary for j in task.judges if (summary := j.summary())}


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
