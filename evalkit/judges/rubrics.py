"""Judge rubrics: YAML files in judges/ that say what an LLM judge is asked and how to read its answer.

```yaml
name: quality                      # the file's name; the judge name tasks use
description: ...
answer: {type: score, tag: Score, min: 0, max: 5}      # or {type: label, tag: Verdict, labels: [...]}
metric: llm_quality                # the metric that turns the judgments into task metrics
max_tokens: 256                    # the judge's answer length (greedy)
system: ...                        # optional system turn
template: ... {{ prompt }} ... {{ response }} ...      # Jinja; {{ reference }} with option reference
```

A ``pairwise: true`` rubric compares each sample with the document's reference answer: its
template uses ``{{ response_a }}`` and ``{{ response_b }}``, its labels are ``A``, ``B`` and ``TIE``,
and the judge asks both orders (see LLMJudge).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evalkit.errors import ConfigError
from evalkit.resources import judges_dir
from evalkit.scoring.judgment import Judgment, parse_label, parse_score
from evalkit.templates import check_template, render
from evalkit.yaml_files import load_yaml

_FIELDS = {"name", "description", "answer", "metric", "max_tokens", "system", "template", "pairwise"}


@dataclass(frozen=True)
class Rubric:
    name: str
    description: str
    answer: dict[str, Any]
    metric: str
    max_tokens: int
    system: str | None
    template: str
    source: str  # the file's text: part of the judge's cache fingerprint
    pairwise: bool = False  # the sample against the reference, asked in both orders

    def messages(self, **fields: str) -> list[dict[str, str]]:
        user = render(self.template, fields, f"judge rubric {self.name}")
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": user}]

    def parse(self, text: str | None) -> Judgment:
        a = self.answer
        if a["type"] == "score":
            return parse_score(text, a["min"], a["max"], a.get("tag", "Score"))
        return parse_label(text, a["labels"], a.get("tag", "Verdict"))


def rubric_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(judges_dir().glob("*.yaml"))}


def load_rubric(path: Path) -> Rubric:
    where = f"judge rubric {path}"
    text = path.read_text(encoding="utf-8")
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
    if raw.get("name", path.stem) != path.stem:
        raise ConfigError(f"{where}: name must equal the file name '{path.stem}'")
    answer = raw.get("answer")
    if not isinstance(answer, dict) or answer.get("type") not in ("score", "label"):
        raise ConfigError(f"{where}: answer must be {{type: score, min, max}} or {{type: label, labels}}")
    if answer["type"] == "score" and not all(isinstance(answer.get(k), int) for k in ("min", "max")):
        raise ConfigError(f"{where}: a score answer needs integer min and max")
    if answer["type"] == "label" and not (isinstance(answer.get("labels"), list) and len(answer["labels"]) >= 2):
        raise ConfigError(f"{where}: a label answer needs a list of at least two labels")
    template = check_template(where, raw.get("template"))
    max_tokens = raw.get("max_tokens", 256)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"{where}: max_tokens must be a positive integer")
    pairwise = raw.get("pairwise", False)
    if not isinstance(pairwise, bool):
        raise ConfigError(f"{where}: pairwise must be true or false")
    if pairwise and (answer["type"] != "label" or sorted(answer["labels"]) != ["A", "B", "TIE"]):
        raise ConfigError(f"{where}: a pairwise rubric answers with the labels A, B and TIE")
    metric = raw.get("metric")
    if not isinstance(metric, str):
        raise ConfigError(f"{where}: metric must name the metric that reads this judge")
    return Rubric(
        name=path.stem,
        description=str(raw.get("description", "")).strip(),
        answer=answer,
        metric=metric,
        max_tokens=max_tokens,
        system=raw.get("system"),
        template=template,
        source=text,
        pairwise=pairwise,
    )
