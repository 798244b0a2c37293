"""The lm_eval kind: an Open LLM task scored by lm-evaluation-harness (evalkit/openllm/) with the
model, device and dtype of the run's backend.

```yaml
kind: lm_eval
lm_eval: {task: arc_challenge, num_fewshot: 25, local: arc}   # see LmEvalOptions
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from evalkit.backends import Backend
from evalkit.comparability import Measured
from evalkit.config import RunConfig
from evalkit.judges import ModelPool
from evalkit.openllm.convert import document_rows, task_entry
from evalkit.openllm.harness import (
    LmEvalOptions,
    LmEvalPlan,
    check_lm_eval_runtime,
    evaluate,
    lm_eval_model,
    lm_eval_version,
    plan,
)
from evalkit.tasks.base import PreparedTask, RunContext, TaskKind, TaskOutput, TaskSpec, register_kind


@dataclass(frozen=True, kw_only=True)
class LmEvalTaskSpec(TaskSpec):
    kind: ClassVar[str] = "lm_eval"

    lm_eval: LmEvalOptions

    def reported_metrics(self) -> tuple[str, ...]:
        """lm-eval's names for what it reports, as the task file keeps them (``lm_eval.metrics``);
        empty when the file keeps all that lm-eval reports."""
        return self.lm_eval.metrics

    def with_num_fewshot(self, shots: int) -> LmEvalTaskSpec:
        return dataclasses.replace(self, lm_eval=dataclasses.replace(self.lm_eval, num_fewshot=shots))


@register_kind
class LmEvalKind(TaskKind):
    name = "lm_eval"
    fields = frozenset({"lm_eval"})

    def parse(self, where: str, raw: dict[str, Any], common: dict[str, Any]) -> LmEvalTaskSpec:
        options = LmEvalOptions.from_dict(raw.get("lm_eval"), where)
        return LmEvalTaskSpec(**common, metrics=("lm_eval",), lm_eval=options)

    def prepare(self, spec: LmEvalTaskSpec, config: RunConfig, pool: ModelPool) -> LmEvalTask:
        check_lm_eval_runtime(config)  # vLLM, and Ray for data parallelism, before anything loads
        return LmEvalTask(spec, plan(spec.name, spec.lm_eval, config.data_dir))


@dataclass
class LmEvalTask(PreparedTask):
    spec: LmEvalTaskSpec
    plan: LmEvalPlan

    def check_backend(self, backend: Backend) -> None:
        lm_eval_model(backend, batch_size=1, seed=0)  # raises for a backend lm-eval cannot score with

    def measured(self) -> Measured:
        opts = self.spec.lm_eval
        data = "hub" if self.plan.source == "hub" else f"local:{opts.local}"  # not the machine's path
        settings = {"lm_eval_task": opts.task, "subjects": list(opts.subjects), "data": data}
        return Measured(num_fewshot=opts.num_fewshot, settings=settings)

    def run(self, context: RunContext) -> TaskOutput:
        config, opts = context.config, self.spec.lm_eval
        model = lm_eval_model(context.backend, config.batch_size, config.seed)
        # lm-eval reads a limit below 1 as a share of the documents, rounded up, as evalkit does.
        raw = evaluate(self.plan, model, config.limit, config.seed, system_instruction=config.system_prompt)
        result = task_entry(raw, opts.metrics, group=opts.task)
        result.details["lm_eval"] = {
            "version": lm_eval_version(),
            "task": opts.task,
            "num_fewshot": opts.num_fewshot,
            "system_instruction": config.system_prompt,
            "data": self.plan.source,
            "model": model[0],
            "model_args": model[1],
        }
        documents, samples = document_rows(self.spec.name, raw, opts.metrics)
        return TaskOutput(result, documents, samples, {"lm_eval": lm_eval_version()})
