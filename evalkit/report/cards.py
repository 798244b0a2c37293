"""Sample cards of `evalkit report`: a sample's scores in plain words, and the gold answer.

samples.jsonl keeps what each metric recorded per sample under its own key (``extracted``,
``correct``, ``passed``, a judge's ``quality`` ...). A reader wants "answer extracted: 18 · correct",
not ``extracted=None · correct=0.0``; keys this module does not know are shown as ``key: value``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalkit.scoring.math import gold_answer

_LONG_TARGET = 200  # characters of a reference shown in full on the card; longer ones fold


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}"
    return str(value)


def _extracted(value: Any, _scores: dict[str, Any]) -> str:
    return "no answer found" if value is None or value == "" else f"answer extracted: {_number(value)}"


def _correct(value: Any, _scores: dict[str, Any]) -> str:
    return "correct" if value else "wrong"


def _passed(value: Any, scores: dict[str, Any]) -> str:
    if value:
        return "tests passed"
    status, reason = scores.get("status"), str(scores.get("reason") or "").strip()
    why = reason.splitlines()[-1] if reason else ""
    return "tests failed" + (f" ({status})" if status and status != "failed" else "") + (f": {why}" if why else "")


def _followed(mode: str) -> Callable[[Any, dict[str, Any]], str]:
    def describe(value: Any, _scores: dict[str, Any]) -> str:
        checks = list(value) if isinstance(value, (list, tuple)) else [value]
        return f"instructions followed ({mode}): {sum(map(bool, checks))} of {len(checks)}"

    return describe


_KNOWN: dict[str, Callable[[Any, dict[str, Any]], str]] = {
    "extracted": _extracted,
    "correct": _correct,
    "passed": _passed,
    "strict": _followed("strict"),
    "loose": _followed("loose"),
    "self_bleu": lambda v, _: f"Self-BLEU against the other samples: {_number(v)}",
    "reward": lambda v, _: f"reward: {_number(v)}",
    "win_probability": lambda v, _: f"beats the reference with probability {_number(v)}",
    "equivalence_class": lambda v, _: f"equivalence class {_number(v)}",
    "generation_score": lambda v, _: f"novel utility: {_number(v)}",
    "keyword_refusal": lambda v, _: "refused (refusal keyword)" if v else "no refusal keyword",
    "hacks": lambda v, _: f"test-gaming code: {v}" if v else "",
}
# Recorded to explain another value, or repeated by it: not shown on their own.
_HIDDEN = {"answer_class", "status", "reason", "score"}


def _judge(rubric: str, scores: dict[str, Any]) -> str:
    if scores.get(f"{rubric}_status", "ok") != "ok":
        return f"{rubric} judge: answer unreadable"
    return f"{rubric} judge: {_number(scores.get(rubric))}"


def describe_scores(scores: dict[str, Any]) -> list[str]:
    """A sample's scores as short phrases, in the order they were recorded."""
    rubrics = {k.removesuffix("_status") for k in scores if k.endswith("_status")}
    phrases = []
    for key, value in scores.items():
        if key in _HIDDEN or any(key in (r, f"{r}_status", f"{r}_answer") for r in rubrics):
            if key in rubrics:
                phrases.append(_judge(key, scores))
            continue
        describe = _KNOWN.get(key)
        phrases.append(describe(value, scores) if describe else f"{key.replace('_', ' ')}: {_number(value)}")
    return [p for p in phrases if p]


def gold(target: Any, samples: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(the gold answer shown on the card, the full reference when it is longer than that).

    Where answers were extracted from the samples the gold answer is the reference's final answer
    (GSM8K's ``#### 18``, the last box of a MATH solution), as the metric compared them."""
    if target is None:
        return None, None
    text = target if isinstance(target, str) else _number(target)
    extracted = any("extracted" in (s.get("scores") or {}) for s in samples)
    answer = gold_answer(text) if extracted and isinstance(target, str) else text.strip()
    if len(answer) > _LONG_TARGET:
        return answer[:_LONG_TARGET].rstrip() + " …", text
    return answer, (text if answer != text.strip() else None)
