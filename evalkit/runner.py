"""`evalkit run`: resolve the tasks, prepare each (evalkit/tasks/), run them on one backend
through the cache, write the results.

Every check that can fail on user input (tasks, data, sampling values, judges, output folder,
model path, what the backend can do) runs before generation starts, so a bad input costs
nothing and leaves nothing behind.
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import Any

from evalkit.backends import make_backend
from evalkit.cache import GenerationCache
from evalkit.cache_dir import cache_root
from evalkit.comparability import comparability
from evalkit.config import RunConfig
from evalkit.errors import DataUnavailable
from evalkit.judges import ModelPool
from evalkit.judges import check_config as check_judge_config
from evalkit.progress import progress_bar
from evalkit.results import RunResult, TaskResult, ensure_writable, library_versions, write_run
from evalkit.tasks import KINDS, PreparedTask, RunContext, resolve_tasks, task_registry, with_run_options


def prepare(
    config: RunConfig, skipped: dict[str, str] | None = None, pool: ModelPool | None = None
) -> list[PreparedTask]:
    """Resolve and validate everything that does not need the model.

    A task that came in through the suite (not named with --tasks) and whose data cannot be had
    here is skipped with a warning, its reason recorded in ``skipped``; a named one is an error.
    The judges share the run's model ``pool``."""
    check_judge_config(config.judges)
    pool = pool or ModelPool(config.device)
    registry = task_registry(*config.task_dirs, override=config.override_tasks)
    names = resolve_tasks(registry, config.suite, config.tasks)
    specs = with_run_options([registry.get(name) for name in names], config)
    prepared = []
    for spec in specs:
        try:
            prepared.append(KINDS.get(spec.kind).prepare(spec, config, pool))
        except DataUnavailable as exc:
            if spec.name in config.tasks or skipped is None:
                raise
            skipped[spec.name] = str(exc)
            print(f"evalkit: skipping {exc}", file=sys.stderr)
    if not prepared:
        raise DataUnavailable("no task of the suite has data here: " + "; ".join((skipped or {}).values()))
    return prepared


def default_run_id(config: RunConfig, model_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    what = config.suite or "-".join(config.tasks)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_name.split('/')[-1].split(' ')[0]}-{what}").strip("-")
    return f"{stamp}-{slug}".lower()[:120]


def run(config: RunConfig, progress: bool = True) -> RunResult:
    """The run, start to end, written to OUTPUT_DIR/RUN_ID (``result.path``). Its model pool,
    backend and cache are closed however it ends."""
    started = time.perf_counter()
    with ExitStack() as stack:
        pool = stack.enter_context(ModelPool(config.device))
        ensure_writable(config.output_dir, config.run_id)
        skipped: dict[str, str] = {}
        tasks = prepare(config, skipped, pool)
        cache = None
        if config.use_cache:
            cache = GenerationCache((config.cache_dir or cache_root()) / "generations.sqlite")
            stack.callback(cache.close)
        backend = make_backend(
            config.backend,
            config.model,
            config.device,
            config.batch_size,
            config.backend_options,
            config.model_options,
            config.chat_format,
        )
        stack.callback(backend.close)
        for task in tasks:
            task.check_backend(backend)
        context = RunContext(config, backend, cache)
        return _run_tasks(context, tasks, skipped, started, progress)


def _run_tasks(
    context: RunContext, tasks: list[PreparedTask], skipped: dict[str, str], started: float, progress: bool
) -> RunResult:
    config, backend = context.config, context.backend
    run_id = config.run_id or default_run_id(config, backend.model_name)
    results: dict[str, TaskResult] = {}
    samples: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    task_versions: dict[str, str] = {}
    with progress_bar(sum(t.total_samples for t in tasks), enabled=progress) as advance:
        context.advance = advance
        for task in tasks:
            output = task.run(context)
            doc_ids = [str(row.get("doc_id")) for row in output.documents]
            measured = task.measured()
            output.result.comparable = comparability(config, backend.name, backend.precision, measured, doc_ids)
            results[task.spec.name] = output.result
            samples.extend(output.samples)
            documents.extend(output.documents)
            task_versions.update(output.versions)
    result = RunResult(
        run_id=run_id,
        model=backend.model_name,
        model_fingerprint=backend.fingerprint,
        backend=backend.name,
        dtype=backend.precision,
        config=config.to_json(),
        versions={**library_versions(), **backend.versions(), **task_versions},
        seed=config.seed,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        cache={"hits": context.stats.hits, "generated": context.stats.generated},
        timing={
            "total_s": round(time.perf_counter() - started, 3),
            "generation_s": round(context.generation_s, 3),
            "tasks": context.task_timing,  # per generating task: generation_s, generated tokens, tokens/s
        },
        tasks=results,
        skipped=skipped,
    )
    write_run(config.output_dir / run_id, result, samples, documents)
    return result
