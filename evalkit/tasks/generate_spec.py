"""A generating task's file -> GenerateTaskSpec, and a document's chat messages from its prompt.

```yaml
data: {path: data/titles.jsonl}          # or package, local (under --data-dir), hub; fields, filter
prompt: {template: "Write about {{ title }}.", system: "..."}   # or styles: {name: {template, system}}
sampling: {n: 4, temperature: 1.0, max_tokens: 96}
metrics: [ngram_diversity, self_bleu]    # evalkit.metrics.METRICS
answer_field: answer                     # for metrics that check answers
judges: {reward_model: {...}}            # evalkit.judges.JUDGES, run before the metrics
fewshot:                                 # optional: worked examples, taken by --num-fewshot
  examples: [{question: ..., answer: ...}]
  answer: "{{ answer }}"                 # the assistant turn of an example
  default: 0                             # examples per prompt without --num-fewshot
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evalkit.config import DataSource, PromptSpec, SamplingConfig
from evalkit.errors import ConfigError, shown
from evalkit.judges import JUDGES
from evalkit.metrics import METRICS
from evalkit.registry import unknown_name
from evalkit.tasks.base import TaskSpec, mapping, reject_unknown
from evalkit.templates import check_template, render

GENERATE_FIELDS = frozenset({"data", "prompt", "sampling", "metrics", "answer_field", "judges", "fewshot"})
_FEWSHOT_FIELDS = {"examples", "answer", "default"}
_DATA_FIELDS = {"path", "package", "local", "hub", "subset", "split", "filter", "fields"}
_PROMPT_FIELDS = {"template", "system", "styles", "style"}
_STYLE_FIELDS = {"template", "system"}


@dataclass(frozen=True)
class FewShot:
    """A task's worked examples: each becomes a user turn (the task's prompt template on the
    example) and an assistant turn (``answer`` on the example), in file order, before the document."""

    examples: tuple[dict[str, Any], ...]
    answer: str  # Jinja template of the assistant turn
    default: int = 0  # examples per prompt when the run does not say (--num-fewshot)


@dataclass(frozen=True, kw_only=True)
class GenerateTaskSpec(TaskSpec):
    kind: ClassVar[str] = "generate"

    data: DataSource
    prompt: PromptSpec
    sampling: SamplingConfig
    answer_field: str | None = None
    # Named alternative prompts (e.g. "boxed", "answer_is"); ``prompt`` is the default one's.
    prompt_styles: dict[str, PromptSpec] = field(default_factory=dict)
    prompt_style: str | None = None
    # Model-backed scorers run between generation and metrics: judge name -> options (evalkit.judges).
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    fewshot: FewShot | None = None
    num_fewshot: int = 0  # examples of ``fewshot`` put before each document

    @property
    def samples_per_document(self) -> int:
        return self.sampling.n

    def with_num_fewshot(self, shots: int) -> GenerateTaskSpec:
        if self.fewshot is None:
            raise ConfigError(
                f"task {self.name} declares no few-shot examples: --num-fewshot applies to lm_eval tasks and to "
                "tasks with a 'fewshot' section"
            )
        if shots > len(self.fewshot.examples):
            raise ConfigError(
                f"task {self.name} has {len(self.fewshot.examples)} few-shot examples; "
                f"--num-fewshot {shots} asks for more"
            )
        return dataclasses.replace(self, num_fewshot=shots)

    def with_system(self, system: str | None) -> GenerateTaskSpec:
        """Every prompt style with this system turn (None: none)."""
        styles = {k: dataclasses.replace(v, system=system) for k, v in self.prompt_styles.items()}
        return dataclasses.replace(self, prompt=dataclasses.replace(self.prompt, system=system), prompt_styles=styles)

    def with_prompt_style(self, style: str) -> GenerateTaskSpec:
        if style not in self.prompt_styles:
            raise ConfigError(f"task {self.name}: {unknown_name('prompt style', style, self.prompt_styles)}")
        return dataclasses.replace(self, prompt=self.prompt_styles[style], prompt_style=style)


def parse_generate_task(where: str, raw: dict[str, Any], common: dict[str, Any]) -> GenerateTaskSpec:
    data = mapping(where, raw, "data")
    reject_unknown(f"{where} data", data, _DATA_FIELDS)
    if not any(data.get(k) for k in ("path", "package", "local", "hub")):
        raise ConfigError(f"{where}: data needs one of 'path', 'package', 'local' or 'hub'")

    prompt = mapping(where, raw, "prompt")
    reject_unknown(f"{where} prompt", prompt, _PROMPT_FIELDS)
    styles = _prompt_styles(where, prompt)
    if styles:
        style = prompt.get("style", next(iter(styles)))
        if style not in styles:
            raise ConfigError(f"{where}: prompt.style {shown(style)} is not one of prompt.styles {sorted(styles)}")
        if "template" in prompt or "system" in prompt:
            raise ConfigError(f"{where}: with prompt.styles, put template and system inside each style")
        default = styles[style]
    else:
        style = None
        default = _prompt_spec(where, prompt)

    metrics = raw.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"{where}: metrics must be a non-empty list of metric names")
    for metric in metrics:
        if metric not in METRICS:
            raise ConfigError(f"{where}: {unknown_name('metric', metric, METRICS.names())}")
        spec = METRICS.get(metric)
        if spec.compute is None:
            raise ConfigError(f"{where}: metric '{metric}' is computed by its own task kind, not per document")
        if spec.needs_answer and not raw.get("answer_field"):
            raise ConfigError(f"{where}: metric '{metric}' needs 'answer_field' (the document field with the answer)")

    judges = _judges(where, raw.get("judges"))
    for metric in metrics:
        missing = [j for j in METRICS.get(metric).needs_judges if j not in judges]
        if missing:
            raise ConfigError(f"{where}: metric '{metric}' needs the judge(s) {missing} under 'judges'")

    fewshot = _fewshot(where, raw.get("fewshot"))
    return GenerateTaskSpec(
        **common,
        data=DataSource(**data),
        prompt=default,
        prompt_styles=styles,
        prompt_style=style,
        sampling=SamplingConfig.from_dict(raw.get("sampling"), where),
        metrics=tuple(metrics),
        answer_field=raw.get("answer_field"),
        judges=judges,
        fewshot=fewshot,
        num_fewshot=fewshot.default if fewshot else 0,
    )


def _fewshot(where: str, raw: Any) -> FewShot | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: fewshot must be a mapping with examples and answer")
    reject_unknown(f"{where} fewshot", raw, _FEWSHOT_FIELDS)
    examples = raw.get("examples")
    if not isinstance(examples, list) or not examples or not all(isinstance(e, dict) for e in examples):
        raise ConfigError(f"{where}: fewshot.examples must be a non-empty list of mappings (fields of a document)")
    answer = check_template(where, raw.get("answer"), "fewshot.answer")
    default = raw.get("default", 0)
    if isinstance(default, bool) or not isinstance(default, int) or not 0 <= default <= len(examples):
        raise ConfigError(f"{where}: fewshot.default must be an integer from 0 to {len(examples)}")
    return FewShot(tuple(examples), answer, default)


def _judges(where: str, raw: Any) -> dict[str, dict[str, Any]]:
    """``judges: {name: {option: value}}``; names must be registered judges (evalkit.judges)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) or v is None for v in raw.values()):
        raise ConfigError(f"{where}: judges must be a mapping of judge name -> options")
    for name in raw:
        if name not in JUDGES:
            raise ConfigError(f"{where}: {unknown_name('judge', str(name), JUDGES.names())}")
    return {str(k): dict(v or {}) for k, v in raw.items()}


def _prompt_spec(where: str, prompt: dict[str, Any]) -> PromptSpec:
    template = check_template(where, prompt.get("template"), "prompt.template")
    system = prompt.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"{where}: prompt.system must be a string")
    return PromptSpec(template=template, system=system)


def _prompt_styles(where: str, prompt: dict[str, Any]) -> dict[str, PromptSpec]:
    styles = prompt.get("styles")
    if styles is None:
        return {}
    if not isinstance(styles, dict) or not styles:
        raise ConfigError(f"{where}: prompt.styles must be a mapping of style name -> {{template, system}}")
    out = {}
    for name, spec in styles.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: prompt.styles.{name} must be a mapping with a template")
        reject_unknown(f"{where} prompt.styles.{name}", spec, _STYLE_FIELDS)
        out[str(name)] = _prompt_spec(f"{where} prompt.styles.{name}", spec)
    return out


def render_messages(spec: GenerateTaskSpec, doc: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages for one document: the system turn when the task has one, a user and an
    assistant turn per few-shot example, the document's user turn."""
    where = f"task {spec.name}: prompt template"
    messages = [{"role": "system", "content": spec.prompt.system}] if spec.prompt.system else []
    if spec.fewshot is not None:
        for example in spec.fewshot.examples[: spec.num_fewshot]:
            messages.append({"role": "user", "content": render(spec.prompt.template, example, f"{where} (few-shot)")})
            answer = render(spec.fewshot.answer, example, f"task {spec.name}: fewshot.answer")
            messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": render(spec.prompt.template, doc, where)})
    return messages
