"""What makes two results of a task comparable, recorded with each task in results.json.

``comparable.what``: what was measured. Two runs whose ``what`` differs measured different things
(other documents, other sampling, another prompt) and `compare` and `check` refuse them unless
``--allow-mismatch``. ``comparable.how``: how it was measured (backend, numeric precision). A
difference there is shown, never refused: comparing transformers against vLLM, or bf16 against
float32, is a reason to compare.

The seed is in neither: two seeds of one model measure the same thing, and comparing them is how
seed noise is told from a real change.

Files written before this record have none: their comparability is unknown, and `compare` and
`check` say so instead of refusing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.config import DataSource, PromptSpec, RunConfig, SamplingConfig


@dataclass(frozen=True)
class Measured:
    """What a task kind knows about what it measures; the rest of the record comes from the run."""

    sampling: SamplingConfig | None = None  # generating tasks
    prompt: PromptSpec | None = None  # the prompt template and system turn used
    prompt_style: str | None = None
    num_fewshot: int | None = None
    data: DataSource | None = None  # where the documents come from
    settings: dict[str, Any] = field(default_factory=dict)  # the kind's own (lm-eval task, max_length, ...)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def comparability(
    config: RunConfig, backend: str, precision: str | None, measured: Measured, doc_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The task's ``comparable`` record: ``what`` it measured and ``how``. Every field of it is
    built here; a new setting that changes what a task measures is added here and nowhere else."""
    what: dict[str, Any] = {}
    if measured.sampling is not None:
        sampling = measured.sampling.cache_fields()  # greedy: top_p and top_k do not matter
        sampling.pop("seed")  # two seeds of one model must compare
        what["sampling"] = {"n": measured.sampling.n, **sampling}
    # The documents scored: their content ids (documents.jsonl pairs by them), count and hash.
    what["documents"] = {"count": len(doc_ids), "sha256": _digest(sorted(doc_ids))}
    if measured.data is not None:
        source = {k: v for k, v in dataclasses.asdict(measured.data).items() if v not in (None, {}, ())}
        what["data"] = _digest(source)  # the source (hub id, split, filter, file name), not a path
    if measured.prompt is not None:
        what["prompt"] = _digest({"template": measured.prompt.template, "system": measured.prompt.system})
        what["prompt_style"] = measured.prompt_style
    if measured.num_fewshot is not None:
        what["num_fewshot"] = measured.num_fewshot
    if measured.settings:
        what["settings"] = dict(measured.settings)
    # Run options that change what the model is asked (a run-wide system prompt, chat template on
    # or off, a run-wide number of few-shot examples) belong here, next to the task's own, e.g.
    #   what["system_prompt"] = _digest(config.system_prompt)
    #   what["chat_template"] = config.chat_template
    how: dict[str, Any] = {"backend": backend, "dtype": precision}
    return {"what": what, "how": how}


@dataclass(frozen=True)
class TaskComparability:
    """One task of one run against the same task of the baseline."""

    task: str
    run: str  # run id of the run compared with the baseline
    measured: tuple[str, ...] = ()  # what differs in what was measured: "sampling.n 4 vs 2"
    how: tuple[str, ...] = ()  # what differs in how: "backend hf vs vllm"
    unknown: tuple[str, ...] = ()  # what cannot be told: a run without a record, a field one lacks

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "run": self.run, "measured": self.measured, "how": self.how, "unknown": self.unknown}


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "documents":
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _shown(key: str, value: Any) -> str:
    if key == "documents" and isinstance(value, dict):
        return f"{value.get('count')} documents ({value.get('sha256')})"
    return json.dumps(value, ensure_ascii=False, default=str)


def _differences(part: str, base: dict[str, Any], other: dict[str, Any], other_id: str) -> tuple[list, list]:
    """Fields that differ, and fields one side lacks (or, for ``how``, does not know: null)."""
    base_flat, other_flat = _flat(base), _flat(other)
    differ, unknown = [], []
    for key in sorted(set(base_flat) | set(other_flat)):
        if key not in base_flat or key not in other_flat:
            missing = "the baseline" if key not in base_flat else other_id
            unknown.append(f"{part}.{key} not recorded in {missing}")
        elif part == "how" and None in (base_flat[key], other_flat[key]) and base_flat[key] != other_flat[key]:
            missing = "the baseline" if base_flat[key] is None else other_id
            unknown.append(f"{part}.{key} not known in {missing}")  # e.g. the dtype of a run served from the cache
        elif base_flat[key] != other_flat[key]:
            differ.append(f"{key} {_shown(key, base_flat[key])} vs {_shown(key, other_flat[key])}")
    return differ, unknown


def compare_records(
    task: str, base: dict[str, Any] | None, other: dict[str, Any] | None, base_id: str, other_id: str
) -> TaskComparability:
    """How the ``comparable`` records of one task in two runs differ (None: no record)."""
    missing = [run_id for run_id, record in ((base_id, base), (other_id, other)) if record is None]
    if missing:
        why = f"no comparability record in {' and '.join(missing)} (written before evalkit recorded it)"
        return TaskComparability(task, other_id, unknown=(why,))
    assert base is not None and other is not None
    measured, unknown_what = _differences("what", base.get("what", {}), other.get("what", {}), other_id)
    how, unknown_how = _differences("how", base.get("how", {}), other.get("how", {}), other_id)
    return TaskComparability(task, other_id, tuple(measured), tuple(how), tuple(unknown_what + unknown_how))
