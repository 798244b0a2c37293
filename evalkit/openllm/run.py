"""One lm_eval task of an evalkit run: simple_evaluate, then evalkit's result rows."""

from __future__ import annotations

from importlib import metadata

from evalkit.config import RunConfig, TaskSpec
from evalkit.openllm.convert import document_rows, task_entry
from evalkit.openllm.harness import LmEvalOptions, LmEvalPlan, evaluate, lm_eval_model
from evalkit.task_kinds import KindResult


def run_lm_eval_task(spec: TaskSpec, plan: LmEvalPlan, config: RunConfig) -> KindResult:
    opts: LmEvalOptions = spec.options["lm_eval"]
    raw = evaluate(plan, config)
    entry = task_entry(raw, opts.metrics, group=opts.task)
    model_name, model_args = lm_eval_model(config)
    entry["lm_eval"] = {
        "version": metadata.version("lm_eval"),
        "task": opts.task,
        "num_fewshot": opts.num_fewshot,
        "data": plan.source,
        "model": model_name,
        "model_args": model_args,
    }
    documents, samples = document_rows(spec.name, raw, opts.metrics)
    return KindResult(entry, documents, samples, {"lm_eval": metadata.version("lm_eval")})
