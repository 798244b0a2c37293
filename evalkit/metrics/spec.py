"""What a metric is, declared once: the values it reports and what it needs.

Each value a metric reports is an :class:`Output`: which way is better (``higher``, ``lower`` or
``none``, a neutral value such as output length), whether it measures quality or diversity (the
report's diversity-vs-quality plot puts it on that axis), and whether it is a curve over k (``pass@{k}``: one
value per k, drawn as a test-time scaling curve). `compare`, `check` and `report` read these
declarations (evalkit.metrics.directions); the runner checks every value a metric computes
against them, so no metric reports a name that has no direction.

Per-document metrics are declared with the :func:`metric` decorator on their function
(evalkit/metrics/task_metrics.py); metrics a task kind computes itself (held-out perplexity,
lm-eval's scores) are declared with :func:`declare` and no function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evalkit.registry import Registry

Direction = Literal["higher", "lower", "none"]  # "none": neutral, neither better nor worse
Aspect = Literal["quality", "diversity", "other"]


def split_k(name: str) -> tuple[str, int | None]:
    """``maj@4`` -> (``maj``, 4); a name without ``@k`` -> (name, None)."""
    head, at, k = name.rpartition("@")
    return (head, int(k)) if at and k.isdigit() else (name, None)


def _pattern(name: str) -> re.Pattern[str]:
    """``pass@{k}`` and ``distinct_{n}`` take a number in the placeholder, other placeholders a word."""
    parts = re.split(r"\{(\w+)\}", name)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else (r"\d+" if part in ("k", "n") else r"[\w.-]+")
        for i, part in enumerate(parts)
    )
    return re.compile(regex)


@dataclass(frozen=True)
class Output:
    """One value a metric reports: its name, or a pattern with one placeholder (``pass@{k}`` is a
    curve over k; ``distinct_{n}``, ``exact_match_{filter}`` are families of plain values)."""

    name: str
    direction: Direction = "higher"
    aspect: Aspect = "quality"
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", _pattern(self.name))

    @property
    def is_curve(self) -> bool:
        return self.name.endswith("@{k}")

    @property
    def family(self) -> str:
        """A curve's family (``pass`` for ``pass@{k}``); a plain output is its own family."""
        return self.name[: -len("@{k}")] if self.is_curve else self.name

    @property
    def shown(self) -> str:
        """The name as users read it in a list: ``pass@{k}`` -> ``pass@k``, ``distinct_{n}`` -> ``distinct_n``."""
        return re.sub(r"\{(\w+)\}", r"\1", self.name)

    def matches(self, value_name: str) -> bool:
        return self._regex.fullmatch(value_name) is not None


@dataclass(frozen=True)
class MetricResult:
    per_doc: dict[str, float]
    per_sample: list[dict[str, Any]] | None = None
    # A document's weight in the task mean, per metric (default 1): IFEval's instruction-level
    # accuracy counts every instruction once, so a document weighs as many instructions as it has.
    weights: dict[str, float] = field(default_factory=dict)


MetricFunction = Callable[[Sequence[str], dict[str, Any], "str | None"], MetricResult]


class UndeclaredOutput(RuntimeError):
    """A metric computed a value its declaration does not list: a bug in that metric."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric: the name task files use, its outputs, and what it needs. ``compute`` is the
    pure function of one document's samples; None for metrics a task kind computes itself."""

    name: str
    outputs: tuple[Output, ...]
    compute: MetricFunction | None = None
    needs_answer: bool = False  # the task must name its answer field
    needs_judges: tuple[str, ...] = ()  # judges that must run first (their fields are in the document)

    def output(self, value_name: str) -> Output | None:
        return next((o for o in self.outputs if o.matches(value_name)), None)

    def __call__(self, completions: Sequence[str], doc: dict[str, Any], answer_field: str | None) -> MetricResult:
        if self.compute is None:
            raise TypeError(f"metric {self.name} is computed by its task kind, not per document")
        result = self.compute(completions, doc, answer_field)
        undeclared = sorted(k for k in result.per_doc if self.output(k) is None)
        if undeclared:
            raise UndeclaredOutput(f"metric {self.name} computed {undeclared}, which its declaration does not list")
        return result


METRICS: Registry[MetricSpec] = Registry("metric")


def declare(spec: MetricSpec) -> MetricSpec:
    METRICS.register(spec.name)(spec)
    return spec


def metric(
    name: str, *outputs: Output, needs_answer: bool = False, needs_judges: tuple[str, ...] = ()
) -> Callable[[MetricFunction], MetricSpec]:
    """Declare a per-document metric on its function: ``@metric("self_bleu", Output(...), ...)``."""

    def register(compute: MetricFunction) -> MetricSpec:
        return declare(MetricSpec(name, outputs, compute, needs_answer, needs_judges))

    return register


def higher(name: str, aspect: Aspect = "quality") -> Output:
    return Output(name, "higher", aspect)


def lower(name: str, aspect: Aspect = "quality") -> Output:
    return Output(name, "lower", aspect)


def neutral(name: str) -> Output:
    """A value that is neither better nor worse (output length, the judge's unreadable answers)."""
    return Output(name, "none", "other")
