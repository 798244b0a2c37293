"""The judge hook: model-backed scorers that run between generation and the (pure) metrics.

A task names its judges in its YAML file (``judges: {reward_model: {...}, equivalence: {...}}``).
The runner builds each judge once per run before generation (so a missing reward model fails or
skips the task before any sample is drawn), and after generation calls ``judge.annotate``, which
returns, per document, extra fields (``_rewards``, ``_reference_reward``, ``_partition``, ...)
that the task's metrics read from the document. Judges load their model on first need and keep
their outputs in the generation cache's ``scores`` table under keys that include the judge's
fingerprint, so a rerun neither loads nor runs the model again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from evalkit.cache import GenerationCache
from evalkit.config import JudgeConfig
from evalkit.errors import DataUnavailable, EvalkitError
from evalkit.judges.pool import ModelPool
from evalkit.registry import Registry

Chat = list[dict[str, str]]


class JudgeNotConfigured(DataUnavailable):
    """The run does not say which model judges (no --judge): an optional judge is left out, a
    required one makes the task unavailable (skipped in a suite, an error when named)."""


class Judge(ABC):
    kind: str  # the name tasks use in their ``judges`` mapping
    setting: str  # what was used, recorded in results.json (model id or path, method:threshold)
    fingerprint: str  # part of every cache key: changes when the judge's outputs could change

    @abstractmethod
    def annotate(
        self,
        chats: Sequence[Chat],
        docs: Sequence[dict[str, Any]],
        completions: Sequence[Sequence[str]],
        cache: GenerationCache | None,
    ) -> list[dict[str, Any]]:
        """Extra document fields for every document (same order as ``docs``)."""

    def summary(self) -> dict[str, Any]:
        """What results.json records about the judge's last ``annotate`` beyond its setting
        (an LLM judge: how many answers it could not read)."""
        return {}


JudgeFactory = Callable[[dict[str, Any], JudgeConfig, ModelPool], Judge]
"""(the task's options for the judge, the run's judge settings, the run's model pool) -> a judge."""
JUDGES: Registry[JudgeFactory] = Registry("judge")


def score_key(fingerprint: str, *payload: Any) -> str:
    return hashlib.sha256(json.dumps([fingerprint, *payload], sort_keys=True).encode()).hexdigest()


def cached_values(
    cache: GenerationCache | None, keys: Sequence[str], compute: Callable[[list[int]], list[Any]]
) -> list[Any]:
    """The value of every key: cached ones read back, the others computed (``compute`` gets the
    indices of the missing keys) and committed in one transaction."""
    found = {k: json.loads(v) for k, v in cache.get_many(list(keys), table="scores").items()} if cache else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    if missing:
        values = compute(missing)
        new = {keys[i]: v for i, v in zip(missing, values)}
        if cache:
            cache.put_many(((k, json.dumps(v)) for k, v in new.items()), table="scores")
        found.update(new)
    return [found[k] for k in keys]


def build_judges(
    task: str, wanted: dict[str, dict[str, Any]], config: JudgeConfig, pool: ModelPool
) -> tuple[Judge, ...]:
    """The judges a task names, shared with earlier tasks of the run when kind, model and options agree."""
    judges = []
    for kind, options in wanted.items():
        options = dict(options or {})
        optional = bool(options.pop("optional", False))
        try:
            judge = JUDGES.get(kind)(options, config, pool)
        except JudgeNotConfigured as exc:
            if optional:
                print(f"evalkit: task {task}: judge {kind} not run ({exc})", file=sys.stderr)
                continue
            raise JudgeNotConfigured(f"task {task}: {exc}") from None
        except EvalkitError as exc:  # same class (a suite run skips DataUnavailable), task named
            raise type(exc)(f"task {task}: {exc}") from None
        identity = f"{kind}|{judge.fingerprint}|{json.dumps(options, sort_keys=True, default=str)}"
        judges.append(pool.get("judge", identity, lambda judge=judge: judge))
    return tuple(judges)


def annotate(
    judges: Sequence[Judge],
    chats: Sequence[Chat],
    docs: Sequence[dict[str, Any]],
    completions: Sequence[Sequence[str]],
    cache: GenerationCache | None,
) -> list[dict[str, Any]]:
    """The extra fields of every document from all the task's judges."""
    extra: list[dict[str, Any]] = [{} for _ in docs]
    for judge in judges:
        for row, fields in zip(extra, judge.annotate(chats, docs, completions, cache)):
            row.update(fields)
    return extra
