"""The perplexity kind: held-out perplexity and token entropy of the model on SFT responses
(evalkit/diagnostics/perplexity.py), on a backend whose model's logits this process can read.

```yaml
kind: perplexity
data: {local: alpaca/alpaca_data.json, hub: tatsu-lab/alpaca, split: train}
perplexity: {last: 1000, max_length: 1024, batch_size: 8}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evalkit.backends import Backend, LogitsBackend
from evalkit.comparability import Measured
from evalkit.config import DataSource, RunConfig
from evalkit.data import load_documents
from evalkit.diagnostics.perplexity import PerplexityOptions, summarize, token_stats
from evalkit.errors import ConfigError
from evalkit.judges import ModelPool
from evalkit.results import TaskResult, document_id
from evalkit.tasks.base import PreparedTask, RunContext, TaskKind, TaskOutput, TaskSpec, register_kind
from evalkit.train.sft_data import to_messages


@dataclass(frozen=True, kw_only=True)
class PerplexityTaskSpec(TaskSpec):
    kind: ClassVar[str] = "perplexity"

    data: DataSource
    perplexity: PerplexityOptions


@register_kind
class PerplexityKind(TaskKind):
    name = "perplexity"
    fields = frozenset({"data", "perplexity"})

    def parse(self, where: str, raw: dict[str, Any], common: dict[str, Any]) -> PerplexityTaskSpec:
        raw_data = raw.get("data")
        if not isinstance(raw_data, dict) or not any(raw_data.get(k) for k in ("path", "local", "hub")):
            raise ConfigError(f"{where}: data needs one of 'path', 'local' or 'hub'")
        try:
            data = DataSource(**raw_data)
        except TypeError as exc:
            raise ConfigError(f"{where}: bad data field: {exc}") from None
        options = PerplexityOptions.from_dict(raw.get("perplexity"), where)
        return PerplexityTaskSpec(**common, metrics=("perplexity",), data=data, perplexity=options)

    def prepare(self, spec: PerplexityTaskSpec, config: RunConfig, pool: ModelPool) -> PerplexityTask:
        """The held-out records (last N of the source, then --limit), checked to be SFT records."""
        records = load_documents(spec, config.data_dir)
        if spec.perplexity.last is not None:
            records = records[-spec.perplexity.last :]
        records = records[: config.documents_limit(len(records))]
        for record in records[:1]:
            to_messages(record)  # an unrecognised format fails now, before the model loads
        return PerplexityTask(spec, records)


@dataclass
class PerplexityTask(PreparedTask):
    spec: PerplexityTaskSpec
    records: list[dict[str, Any]]

    def measured(self) -> Measured:
        opts = self.spec.perplexity
        return Measured(data=self.spec.data, settings={"last": opts.last, "max_length": opts.max_length})

    def check_backend(self, backend: Backend) -> None:
        if not isinstance(backend, LogitsBackend):
            raise ConfigError(f"task {self.spec.name} needs the model's logits: use --backend hf")

    def run(self, context: RunContext) -> TaskOutput:
        backend = context.backend
        assert isinstance(backend, LogitsBackend)  # check_backend ran before any task
        opts = self.spec.perplexity
        tokenizer = backend.tokenizer
        if not tokenizer.chat_template:
            raise ConfigError(
                f"task {self.spec.name}: the model's tokenizer has no chat template to format SFT examples"
            )
        stats = token_stats(backend.model, tokenizer, self.records, opts.max_length, opts.batch_size)
        metrics, n_tokens = summarize(stats)
        documents = []
        for index, (record, s) in enumerate(zip(self.records, stats)):
            if s is None or s.n_tokens == 0:
                continue
            documents.append(
                {
                    "task": self.spec.name,
                    "doc_index": index,
                    "doc_id": document_id(record),
                    "metrics": {"nll": s.nll_sum / s.n_tokens, "entropy": s.entropy_sum / s.n_tokens},
                    "weights": {"nll": s.n_tokens, "entropy": s.n_tokens},
                }
            )
        result = TaskResult(
            metrics=metrics,
            n_docs=len(documents),
            n_samples=len(documents),
            details={"n_tokens": n_tokens, "max_length": opts.max_length},
        )
        return TaskOutput(result, documents, [])
