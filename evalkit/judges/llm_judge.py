"""LLM judges: a generation model, on any backend, reads each sample with a rubric (judges/*.yaml).

Every rubric file registers a judge of its own name (``quality``, ``refusal``, ...). The judge
model comes from the run (``--judge MODEL`` with ``--judge-backend hf|vllm|openai``) and is
shared by all the tasks and rubrics of the run. It decodes greedily and its answers go through
the generation cache, keyed by the judge model's fingerprint and the rubric's rendered prompt, so
a rerun judges nothing twice. Each answer is parsed by the rubric (evalkit.scoring.judgment):
what cannot be read keeps its status and never becomes a score.

The judge adds ``_judge_<rubric>`` to each document: one ``{"value", "status", "answer"}`` per
sample, in sample order. The rubric's metric turns those into task metrics.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.backends import Backend, make_backend
from evalkit.config import JudgeConfig, SamplingConfig
from evalkit.errors import ConfigError, DataError
from evalkit.generation import CacheStats, generate_cached, render_cached
from evalkit.judges.base import JUDGES, Chat, Judge, JudgeNotConfigured
from evalkit.judges.pool import ModelPool
from evalkit.judges.rubrics import Rubric, load_rubric, rubric_files
from evalkit.scoring.judgment import OK

EMBEDDED = "embedded"


def judge_backend(config: JudgeConfig, pool: ModelPool) -> Backend:
    """The run's judge model as a generation backend, built once per run."""
    if config.model is None and not config.options.base_url:
        raise JudgeNotConfigured("no judge model: give --judge MODEL (or --judge embedded)")
    model = None if config.model == EMBEDDED else config.model
    return pool.get("backend", "judge", lambda: make_backend(config.backend, model, pool.device, 16, config.options))


def user_prompt(chat: Chat) -> str:
    """What the judged model was asked: its last user turn."""
    return next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")


class LLMJudge(Judge):
    def __init__(self, rubric: Rubric, options: dict[str, Any], config: JudgeConfig, pool: ModelPool) -> None:
        unknown = sorted(set(options) - {"reference"})
        if unknown:
            raise ConfigError(f"judge {rubric.name}: unknown option(s) {unknown}; known: ['optional', 'reference']")
        self.kind = rubric.name
        self.rubric = rubric
        self.reference = options.get("reference")
        self.max_tokens = config.max_tokens or rubric.max_tokens
        self.backend = judge_backend(config, pool)
        self.setting = f"{self.backend.name}:{self.backend.model_name}"
        digest = hashlib.sha256(rubric.source.encode()).hexdigest()[:12]
        self.fingerprint = f"llm:{self.backend.fingerprint}:{rubric.name}:{digest}"
        self._counts: Counter[str] = Counter()

    def judge_chats(self, chat: Chat, response: str, doc: dict[str, Any]) -> list[list[dict[str, str]]]:
        """What the judge is asked about one sample: once, or twice (both orders) when pairwise."""
        fields = {"prompt": user_prompt(chat), "response": response}
        if self.reference:
            if self.reference not in doc:
                raise DataError(f"judge {self.kind}: a document lacks the reference field '{self.reference}'")
            fields["reference"] = str(doc[self.reference])
        if not self.rubric.pairwise:
            return [self.rubric.messages(**fields)]
        if "reference" not in fields:
            raise ConfigError(f"judge {self.kind} compares with a reference: give it the option reference: FIELD")
        sample, reference = fields["response"], fields["reference"]
        return [
            self.rubric.messages(**fields, response_a=sample, response_b=reference),
            self.rubric.messages(**fields, response_a=reference, response_b=sample),
        ]

    def answers(self, chats: Sequence[list[dict[str, str]]], cache: Any) -> list[str]:
        prompts = render_cached(self.backend, cache, [list(c) for c in chats])
        greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=self.max_tokens)
        stats = CacheStats()
        answers = generate_cached(self.backend, cache, prompts, greedy, stats)
        if stats.generated:
            print(f"evalkit: judge {self.kind} ({self.setting}) read {stats.generated} samples", file=sys.stderr)
        return [a[0] for a in answers]

    def annotate(self, chats, docs, completions, cache) -> list[dict[str, Any]]:  # noqa: ANN001
        asked = [
            self.judge_chats(chat, c, doc) for chat, doc, samples in zip(chats, docs, completions) for c in samples
        ]
        answers = iter(self.answers([c for per_sample in asked for c in per_sample], cache))
        out = []
        self._counts = Counter()
        for samples in completions:
            rows = []
            for _ in samples:
                if self.rubric.pairwise:
                    row = pairwise_outcome(self.rubric, next(answers), next(answers))
                else:
                    answer = next(answers)
                    judgment = self.rubric.parse(answer)
                    row = {"value": judgment.value, "status": judgment.status, "answer": answer}
                self._counts[row["status"]] += 1
                rows.append(row)
            out.append({f"_judge_{self.kind}": rows})
        self._report_unread()
        return out

    def _report_unread(self) -> None:
        """One line on stderr when answers were unreadable; a warning when none could be read."""
        total = sum(self._counts.values())
        unread = total - self._counts[OK]
        if not unread:
            return
        why = ", ".join(f"{status} {count}" for status, count in sorted(self._counts.items()) if status != OK)
        judge = f"judge {self.kind} ({self.setting})"
        if unread == total:
            print(
                f"evalkit: warning: {judge} could not read any of its {total} answers ({why}); its metric is n/a. "
                "Check the judge model and --judge-max-tokens",
                file=sys.stderr,
            )
        else:
            print(
                f"evalkit: {judge} could not read {unread} of {total} answers ({why}); they are left out",
                file=sys.stderr,
            )

    def summary(self) -> dict[str, Any]:
        total = sum(self._counts.values())
        return {"judged": total, "unparsed": total - self._counts[OK], "statuses": dict(sorted(self._counts.items()))}


# Points of the sample in each order: (sample as A, sample as B) -> label -> points.
_PAIRWISE_POINTS = ({"A": 1.0, "B": 0.0, "TIE": 0.5}, {"A": 0.0, "B": 1.0, "TIE": 0.5})


def pairwise_outcome(rubric: Rubric, first: str, second: str) -> dict[str, Any]:
    """The sample's result from the answers with it as A (``first``) and as B (``second``): 1 when
    both orders prefer it, 0 when both prefer the reference, 0.5 otherwise (ties, or orders that
    disagree: the judge's position bias). Unreadable when either answer is."""
    judgments = [rubric.parse(first), rubric.parse(second)]
    answer = f"{first}\n---\n{second}"
    bad = next((j.status for j in judgments if not j.ok), None)
    if bad is not None:
        return {"value": None, "status": bad, "answer": answer}
    points = [table[j.value] for table, j in zip(_PAIRWISE_POINTS, judgments)]
    return {"value": sum(points) / 2, "status": "ok", "answer": answer}


def _register_rubrics() -> None:
    for name, path in rubric_files().items():

        def factory(options: dict[str, Any], config: JudgeConfig, pool: ModelPool, path: Path = path) -> LLMJudge:
            return LLMJudge(load_rubric(path), options, config, pool)

        if name not in JUDGES:
            JUDGES.add_lazy(name, lambda factory=factory: factory)


_register_rubrics()
