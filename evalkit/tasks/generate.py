"""The generate kind: documents -> chat prompts -> n samples each (through the cache) -> judges ->
metrics (pure functions) -> the task's metrics, per-document values and per-sample scores."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from evalkit.backends.vllm import check_sampling
from evalkit.comparability import Measured
from evalkit.config import RunConfig, SamplingConfig
from evalkit.data import Document, load_documents
from evalkit.errors import ConfigError, PromptTooLong
from evalkit.generation import CacheStats, generate_samples_cached, render_cached
from evalkit.judges import JUDGES, Judge, ModelPool, annotate, build_judges
from evalkit.judges.rubrics import load_rubric, rubric_files
from evalkit.metrics import METRICS, aggregate
from evalkit.registry import unknown_name
from evalkit.results import TaskResult, document_id
from evalkit.tasks.base import PreparedTask, RunContext, TaskKind, TaskOutput, TaskSpec, register_kind
from evalkit.tasks.generate_spec import GENERATE_FIELDS, GenerateTaskSpec, parse_generate_task, render_messages


@register_kind
class GenerateKind(TaskKind):
    name = "generate"
    fields = GENERATE_FIELDS

    def parse(self, where: str, raw: dict[str, Any], common: dict[str, Any]) -> GenerateTaskSpec:
        return parse_generate_task(where, raw, common)

    def prepare(self, spec: GenerateTaskSpec, config: RunConfig, pool: ModelPool) -> GenerateTask:
        try:
            sampling = spec.sampling.replace(**config.sampling_overrides, seed=config.seed)
        except TypeError as exc:
            raise ConfigError(f"bad sampling override: {exc}") from None
        if config.backend == "vllm":
            check_sampling(sampling, f"task {spec.name}")  # what vLLM would refuse, before any model loads
        docs = load_documents(spec, config.data_dir, answer_field=spec.answer_field)
        docs = docs[: config.documents_limit(len(docs))]
        judges = build_judges(spec.name, spec.judges, config.judges, pool)
        for doc in docs[:1]:
            render_messages(spec, doc)  # a template/data mismatch fails now, not after generation
        return GenerateTask(spec, docs, sampling, judges)


def with_run_options(specs: list[TaskSpec], config: RunConfig) -> list[TaskSpec]:
    """The run's --prompt-style, --system-prompt / --no-system-prompt and --judge-rubric applied to
    its generating tasks, and --num-fewshot to every task (a task that takes none refuses)."""
    if config.prompt_style is not None:
        if not any(isinstance(s, GenerateTaskSpec) and s.prompt_styles for s in specs):
            raise ConfigError(f"--prompt-style {config.prompt_style}: none of the tasks has prompt styles")
        specs = [_with_style(s, config.prompt_style) for s in specs]
    if config.system_prompt is not None or config.no_system_prompt:
        specs = [s.with_system(config.system_prompt) if isinstance(s, GenerateTaskSpec) else s for s in specs]
    if config.num_fewshot is not None:
        specs = [s.with_num_fewshot(config.num_fewshot) for s in specs]
    if config.judges.rubrics:
        specs = [with_rubrics(s, config.judges.rubrics) if isinstance(s, GenerateTaskSpec) else s for s in specs]
    return specs


def _with_style(spec: TaskSpec, style: str) -> TaskSpec:
    if isinstance(spec, GenerateTaskSpec) and spec.prompt_styles:
        return spec.with_prompt_style(style)
    return spec


def with_rubrics(spec: GenerateTaskSpec, rubrics: tuple[str, ...]) -> GenerateTaskSpec:
    """The task with these rubric judges (``--judge-rubric``) and the metrics that read them."""
    files = rubric_files()
    judges, metrics = dict(spec.judges), list(spec.metrics)
    for name in rubrics:
        if name not in files or name not in JUDGES:
            raise unknown_name("judge rubric", name, files)
        rubric = load_rubric(files[name])
        # A pairwise rubric compares with the task's reference answer: its answer field by default.
        options = {"reference": spec.answer_field} if rubric.pairwise and spec.answer_field else {}
        judges.setdefault(name, options)
        if rubric.metric not in metrics:
            metrics.append(rubric.metric)
    return dataclasses.replace(spec, judges=judges, metrics=tuple(metrics))


@dataclass
class TaskScores:
    metrics: dict[str, float]  # task metrics: (weighted) means over documents
    stderr: dict[str, float]  # and their standard errors
    samples: list[list[dict[str, Any]]]  # per-sample scores
    per_doc: list[dict[str, float]]  # per-document metric values
    weights: list[dict[str, float]]  # per-document weights, only for metrics that are not plain means


@dataclass
class GenerateTask(PreparedTask):
    spec: GenerateTaskSpec
    docs: list[Document]
    sampling: SamplingConfig
    judges: tuple[Judge, ...] = ()  # model-backed scorers between generation and metrics

    @property
    def total_samples(self) -> int:
        return len(self.docs) * self.sampling.n

    def measured(self) -> Measured:
        judges = {j.kind: j.setting for j in self.judges}
        return Measured(
            sampling=self.sampling,
            prompt=self.spec.prompt,
            prompt_style=self.spec.prompt_style,
            data=self.spec.data,
            settings={"judges": judges} if judges else {},
        )

    def run(self, context: RunContext) -> TaskOutput:
        backend, cache = context.backend, context.cache
        chats = [render_messages(self.spec, doc) for doc in self.docs]
        prompts = render_cached(backend, cache, chats)
        started = time.perf_counter()
        before = dataclasses.replace(context.stats)
        try:
            generated = generate_samples_cached(backend, cache, prompts, self.sampling, context.stats, context.advance)
        except PromptTooLong as exc:  # name the documents whose prompts the backend cannot take
            raise exc.in_task(self.spec.name, prompts, [document_id(d) for d in self.docs]) from None
        elapsed = time.perf_counter() - started
        context.generation_s += elapsed
        context.task_timing[self.spec.name] = generation_timing(before, context.stats, elapsed)
        completions = [[s.text for s in samples] for samples in generated]
        reasons = [[s.finish_reason for s in samples] for samples in generated]
        judged = annotate(self.judges, chats, self.docs, completions, cache) if self.judges else None
        scored = self.score(completions, judged)
        summaries = {j.kind: summary for j in self.judges if (summary := j.summary())}
        result = TaskResult(
            metrics=scored.metrics,
            stderr=scored.stderr,
            n_docs=len(self.docs),
            n_samples=self.total_samples,
            sampling=dataclasses.asdict(self.sampling),
            prompt_style=self.spec.prompt_style,
            judges={j.kind: j.setting for j in self.judges},
            judgments=summaries,
            details={
                "finish_reasons": finish_reason_counts(reasons),
                **({"num_fewshot": self.spec.num_fewshot} if self.spec.fewshot else {}),
            },
        )
        rows = self._sample_rows(prompts, completions, scored.samples, reasons)
        return TaskOutput(result, self._document_rows(scored), rows)

    def score(self, completions: list[list[str]], judged: list[dict[str, Any]] | None = None) -> TaskScores:
        """Metrics of every document; ``judged`` holds the judges' extra fields of each document."""
        ran = {j.kind for j in self.judges}
        # A metric that reads an optional judge that was left out (no judge model) is not computed.
        metrics = [METRICS.get(m) for m in self.spec.metrics]
        metrics = [m for m in metrics if all(j in ran for j in m.needs_judges)]
        per_doc: list[dict[str, float]] = []
        weights: list[dict[str, float]] = []
        sample_scores: list[list[dict[str, Any]]] = []
        for d, (doc, samples) in enumerate(zip(self.docs, completions)):
            if judged:
                doc = {**doc, **judged[d]}
            values: dict[str, float] = {}
            doc_weights: dict[str, float] = {}
            scores: list[dict[str, Any]] = [{} for _ in samples]
            for metric in metrics:
                outcome = metric(samples, doc, self.spec.answer_field)
                values.update(outcome.per_doc)
                doc_weights.update(outcome.weights)
                for row, extra in zip(scores, outcome.per_sample or []):
                    row.update(extra)
            per_doc.append(values)
            weights.append(doc_weights)
            sample_scores.append(scores)
        agg = aggregate(per_doc, weights)
        return TaskScores(agg.metrics, agg.stderr, sample_scores, per_doc, weights)

    def _document_rows(self, scored: TaskScores) -> list[dict[str, Any]]:
        rows = []
        for d, (doc, values, weights) in enumerate(zip(self.docs, scored.per_doc, scored.weights)):
            row = {"task": self.spec.name, "doc_index": d, "doc_id": document_id(doc), "metrics": values}
            if weights:
                row["weights"] = weights
            rows.append(row)
        return rows

    def _sample_rows(
        self, prompts: list[str], completions: list[list[str]], scores: list, reasons: list[list[str | None]]
    ) -> list[dict[str, Any]]:
        rows = []
        answer_field = self.spec.answer_field
        for d, (doc, prompt, samples, doc_scores, doc_reasons) in enumerate(
            zip(self.docs, prompts, completions, scores, reasons)
        ):
            doc_id = document_id(doc)
            for s, (completion, sample_scores, reason) in enumerate(zip(samples, doc_scores, doc_reasons)):
                row = {
                    "task": self.spec.name,
                    "doc_index": d,
                    "doc_id": doc_id,
                    "sample_index": s,
                    "prompt": prompt,
                    "completion": completion,
                    "finish_reason": reason,  # stop, length, abort; None: cached before it was recorded
                }
                if answer_field:
                    row["target"] = doc[answer_field]
                row["scores"] = sample_scores
                rows.append(row)
        return rows


def finish_reason_counts(reasons: list[list[str | None]]) -> dict[str, int]:
    """How the task's samples ended: {"stop": ..., "length": ...} ("length": cut at max_tokens or
    the model's context), with "abort" and "unknown" (cached before it was recorded) when any."""
    counts = {"stop": 0, "length": 0}
    for reason in (r for doc in reasons for r in doc):
        key = reason or "unknown"
        counts[key] = counts.get(key, 0) + 1
    return counts


def generation_timing(before: CacheStats, after: CacheStats, seconds: float) -> dict[str, Any]:
    """One task's generation: its wall time, the new tokens it decoded and their rate (None when
    the backend did not count them, or nothing was generated: all from the cache)."""
    tokens = after.generated_tokens - before.generated_tokens
    counted = after.untimed == before.untimed and after.generated > before.generated
    return {
        "generation_s": round(seconds, 3),
        "generated_samples": after.generated - before.generated,
        "generated_tokens": tokens if counted else None,
        "tokens_per_s": round(tokens / seconds, 1) if counted and seconds > 0 else None,
    }
