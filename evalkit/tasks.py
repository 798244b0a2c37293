"""Parse and validate task YAML files into TaskSpec, and render a document's prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

from evalkit.config import DataSource, PromptSpec, SamplingConfig, TaskSpec
from evalkit.errors import ConfigError

_TOP_LEVEL = {
    "name",
    "description",
    "data",
    "prompt",
    "sampling",
    "metrics",
    "suites",
    "answer_field",
    "judges",
    "kind",
}
_DATA_FIELDS = {"path", "package", "local", "hub", "subset", "split", "filter", "fields"}
_PROMPT_FIELDS = {"template", "system", "styles", "style"}
_STYLE_FIELDS = {"template", "system"}
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def _sentences(text: str) -> list[str]:
    """Jinja filter: the sentences of a text (NLTK punkt, offline)."""
    from evalkit.nltk_data import ensure_punkt

    ensure_punkt()
    import nltk

    return nltk.sent_tokenize(text)


_JINJA.filters["sentences"] = _sentences


def load_task_file(path: Path) -> TaskSpec:
    where = f"task file {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not valid UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of fields, got {type(raw).__name__}")
    if raw.get("kind", "generate") != "generate":  # lm_eval and perplexity tasks: evalkit/task_kinds.py
        from evalkit.task_kinds import load_kind_task

        return load_kind_task(where, raw, path)
    _reject_unknown(where, raw, _TOP_LEVEL)
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ConfigError(f"{where}: name '{name}' must equal the file name '{path.stem}'")

    data = _mapping(where, raw, "data")
    _reject_unknown(f"{where} data", data, _DATA_FIELDS)
    if not any(data.get(k) for k in ("path", "package", "local", "hub")):
        raise ConfigError(f"{where}: data needs one of 'path', 'package', 'local' or 'hub'")

    prompt = _mapping(where, raw, "prompt")
    _reject_unknown(f"{where} prompt", prompt, _PROMPT_FIELDS)
    styles = _prompt_styles(where, prompt)
    if styles:
        style = prompt.get("style", next(iter(styles)))
        if style not in styles:
            raise ConfigError(f"{where}: prompt.style '{style}' is not one of prompt.styles {sorted(styles)}")
        if "template" in prompt or "system" in prompt:
            raise ConfigError(f"{where}: with prompt.styles, put template and system inside each style")
        default = styles[style]
    else:
        style = None
        default = _prompt_spec(where, prompt)

    metrics = raw.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"{where}: metrics must be a non-empty list of metric names")
    from evalkit.metrics import METRICS  # late import: metrics pull in heavier libraries

    for metric in metrics:
        if metric not in METRICS:
            from evalkit.registry import unknown_name

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

    suites = raw.get("suites", [])
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise ConfigError(f"{where}: suites must be a list of names")

    return TaskSpec(
        judges=judges,
        name=name,
        description=str(raw.get("description", "")).strip(),
        data=DataSource(**data),
        prompt=default,
        prompt_styles=styles,
        prompt_style=style,
        sampling=SamplingConfig.from_dict(raw.get("sampling"), where),
        metrics=tuple(metrics),
        suites=tuple(suites),
        answer_field=raw.get("answer_field"),
        source_file=path,
    )


def _judges(where: str, raw: Any) -> dict[str, dict[str, Any]]:
    """``judges: {name: {option: value}}``; names must be registered judges (evalkit.judges)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) or v is None for v in raw.values()):
        raise ConfigError(f"{where}: judges must be a mapping of judge name -> options")
    from evalkit.judges import JUDGES  # late import, like metrics

    for name in raw:
        if name not in JUDGES:
            from evalkit.registry import unknown_name

            raise ConfigError(f"{where}: {unknown_name('judge', str(name), JUDGES.names())}")
    return {str(k): dict(v or {}) for k, v in raw.items()}


def check_template(where: str, template: Any, field: str = "template") -> str:
    """A non-empty Jinja template that parses (task prompts, judge rubrics)."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where}: {field} must be a non-empty string")
    try:
        _JINJA.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where}: {field} line {exc.lineno}: {exc.message}") from None
    return template


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
        _reject_unknown(f"{where} prompt.styles.{name}", spec, _STYLE_FIELDS)
        out[str(name)] = _prompt_spec(f"{where} prompt.styles.{name}", spec)
    return out


def render_messages(spec: TaskSpec, doc: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages for one document (system turn first when the task has one)."""
    try:
        user = _JINJA.from_string(spec.prompt.template).render(**doc).strip()
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"task {spec.name}: prompt template uses a field the data lacks: {exc.message}") from None
    messages = [{"role": "user", "content": user}]
    if spec.prompt.system:
        messages.insert(0, {"role": "system", "content": spec.prompt.system})
    return messages


def _mapping(where: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a mapping")
    return value


def _reject_unknown(where: str, raw: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
