"""Task kinds beside evalkit's generate-and-score path, dispatched by the runner.

- ``lm_eval``: Open LLM leaderboard tasks scored by lm-evaluation-harness (evalkit/openllm/).
- ``perplexity``: perplexity and token entropy of the model on held-out SFT responses
  (evalkit/diagnostics/perplexity.py).

A task YAML names its kind with ``kind:``; the rest of the file is the kind's own settings.
Each kind prepares before any model loads (reading and checking its data; DataUnavailable lets
a suite run skip it) and runs to an evalkit results.json entry plus documents/samples rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.config import DataSource, PromptSpec, RunConfig, SamplingConfig, TaskSpec
from evalkit.errors import ConfigError

KINDS = ("generate", "lm_eval", "perplexity")
_COMMON = {"name", "description", "suites", "kind"}
_FIELDS = {"lm_eval": _COMMON | {"lm_eval"}, "perplexity": _COMMON | {"data", "perplexity"}}


@dataclass
class KindResult:
    entry: dict[str, Any]  # the results.json task entry: metrics, stderr, n_docs, ...
    documents: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


def load_kind_task(where: str, raw: dict[str, Any], path: Path) -> TaskSpec:
    kind = raw["kind"]
    if kind not in _FIELDS:
        raise ConfigError(f"{where}: unknown kind '{kind}'; known: {', '.join(KINDS)}")
    unknown = sorted(set(raw) - _FIELDS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} for kind {kind}; known: {sorted(_FIELDS[kind])}")
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ConfigError(f"{where}: name '{name}' must equal the file name '{path.stem}'")
    suites = raw.get("suites", [])
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise ConfigError(f"{where}: suites must be a list of names")
    data = DataSource()  # lm-eval reads its own data (evalkit/openllm/harness.py)
    if kind == "lm_eval":
        from evalkit.openllm.harness import LmEvalOptions

        options: dict[str, Any] = {"lm_eval": LmEvalOptions.from_dict(raw.get("lm_eval"), where)}
    else:
        from evalkit.diagnostics.perplexity import PerplexityOptions

        raw_data = raw.get("data")
        if not isinstance(raw_data, dict) or not any(raw_data.get(k) for k in ("path", "local", "hub")):
            raise ConfigError(f"{where}: data needs one of 'path', 'local' or 'hub'")
        try:
            data = DataSource(**raw_data)
        except TypeError as exc:
            raise ConfigError(f"{where}: bad data field: {exc}") from None
        options = {"perplexity": PerplexityOptions.from_dict(raw.get("perplexity"), where)}
    return TaskSpec(
        name=name,
        description=str(raw.get("description", "")).strip(),
        data=data,
        prompt=PromptSpec(template=""),
        sampling=SamplingConfig(),
        metrics=(kind,),  # the metric its kind computes (evalkit/metrics/task_metrics.py)
        suites=tuple(suites),
        source_file=path,
        kind=kind,
        options=options,
    )


def prepare_kind(spec: TaskSpec, config: RunConfig) -> Any:
    """Everything that needs no model: the lm-eval plan, or the tokenizable held-out records."""
    if spec.kind == "lm_eval":
        from evalkit.openllm.harness import plan

        return plan(spec, config.data_dir)
    from evalkit.diagnostics.perplexity import heldout_records

    return heldout_records(spec, config.data_dir, config.limit)


def run_kind(spec: TaskSpec, payload: Any, config: RunConfig, backend: Any) -> KindResult:
    if spec.kind == "lm_eval":
        from evalkit.openllm.run import run_lm_eval_task

        return run_lm_eval_task(spec, payload, config)
    from evalkit.diagnostics.perplexity import run_perplexity_task

    return run_perplexity_task(spec, payload, config, backend)
