"""What every task is, whatever its kind, and the one protocol every kind follows.

A task file names its kind with ``kind:`` (default ``generate``). A :class:`TaskKind` parses the
rest of the file into its own TaskSpec subclass, prepares the task before any model loads
(reading and checking its data; DataUnavailable lets a suite run skip it), and the prepared task
runs on the run's backend to a results entry plus documents.jsonl and samples.jsonl rows. Kinds
are registered in ``KINDS``:

- ``generate`` (evalkit/tasks/generate.py): prompts -> samples -> judges -> metrics;
- ``lm_eval`` (evalkit/tasks/lm_eval.py): Open LLM tasks scored by lm-evaluation-harness;
- ``perplexity`` (evalkit/tasks/perplexity.py): held-out perplexity and token entropy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evalkit.backends import Backend
from evalkit.cache import GenerationCache
from evalkit.comparability import Measured
from evalkit.config import RunConfig
from evalkit.errors import ConfigError, shown
from evalkit.generation import CacheStats
from evalkit.judges import ModelPool
from evalkit.metrics import METRICS
from evalkit.registry import Registry
from evalkit.results import TaskResult

COMMON_FIELDS = frozenset({"name", "description", "suites", "kind"})


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What every task file says: its name (the file's), a description, the suites it is in."""

    kind: ClassVar[str]

    name: str
    description: str = ""
    suites: tuple[str, ...] = ()
    source_file: Path | None = None
    metrics: tuple[str, ...] = ()  # the metrics it reports (declared in evalkit.metrics)

    @property
    def samples_per_document(self) -> int:
        return 1

    def reported_metrics(self) -> tuple[str, ...]:
        """The names of the values it reports, as its metrics declare them (``pass@k``, ``accuracy``)."""
        names = (output.shown for metric in self.metrics for output in METRICS.get(metric).outputs)
        return tuple(dict.fromkeys(names))

    def with_num_fewshot(self, shots: int) -> TaskSpec:
        """The task with ``shots`` few-shot examples per prompt (``--num-fewshot``); a kind that
        takes none refuses."""
        raise ConfigError(f"task {self.name} takes no few-shot examples; leave out --num-fewshot or this task")


@dataclass
class TaskOutput:
    """A finished task: its results.json entry and its documents.jsonl and samples.jsonl rows."""

    result: TaskResult
    documents: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # libraries beyond evalkit's own


@dataclass
class RunContext:
    """What a prepared task runs with: the run's configuration, backend and cache."""

    config: RunConfig
    backend: Backend
    cache: GenerationCache | None
    stats: CacheStats = field(default_factory=CacheStats)
    advance: Callable[[int], None] = lambda n: None  # the progress bar, in samples
    generation_s: float = 0.0  # time spent generating, over all tasks
    task_timing: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> its generation's timing


class PreparedTask(ABC):
    """A task with everything read and checked that needs no model."""

    spec: TaskSpec

    @property
    def total_samples(self) -> int:
        """Samples it draws (for the progress bar); 0 for kinds that draw none."""
        return 0

    def check_backend(self, backend: Backend) -> None:
        """Raise ConfigError when the backend lacks what the task needs; called before any task runs."""

    def measured(self) -> Measured:
        """What the task measures beyond its documents (sampling, prompt, data source, the kind's
        settings): its part of the ``comparable`` record in results.json (evalkit.comparability)."""
        return Measured()

    @abstractmethod
    def run(self, context: RunContext) -> TaskOutput: ...


class TaskKind(ABC):
    name: ClassVar[str]
    fields: ClassVar[frozenset[str]]  # the fields its task files may have besides COMMON_FIELDS

    @abstractmethod
    def parse(self, where: str, raw: dict[str, Any], common: dict[str, Any]) -> TaskSpec:
        """The task file's own fields -> its spec; ``common`` holds the TaskSpec fields, checked."""

    @abstractmethod
    def prepare(self, spec: Any, config: RunConfig, pool: ModelPool) -> PreparedTask:
        """Read and check the task's data (and build its judges) before any model loads."""


KINDS: Registry[TaskKind] = Registry("kind")


def register_kind(kind: type[TaskKind]) -> type[TaskKind]:
    KINDS.register(kind.name)(kind())
    return kind


# --- reading task files -------------------------------------------------------------------------


def mapping(where: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a mapping")
    return value


def reject_unknown(where: str, raw: dict[str, Any], known: set[str] | frozenset[str], kind: str = "") -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        for_kind = f" for kind {kind}" if kind else ""
        raise ConfigError(f"{where}: unknown field(s) {shown(unknown)}{for_kind}; known: {sorted(known)}")
