"""Reading an LLM judge's answer: a score on a fixed integer scale, or one label out of a set.

Judge rubrics (judges/*.yaml) ask for a strict last line, ``Score: N`` or ``Verdict: LABEL``.
Models do not always comply, so parsing is strict about meaning and lenient about form:

- the tagged value is taken wherever it stands, with markdown around it (``**Score:** 4``), a
  scale after it (``Score: 4/5``, ``4 out of 5``) and any text before or after;
- an answer that is nothing but the value (``4``, ``4/5``, ``COMPLIED``) counts too;
- two tags with different values are ``ambiguous``; several bare numbers without a tag are
  ``missing``, never a guess; a value off the scale (or not a whole number) is ``out_of_range``;
  an empty answer is ``empty``.

Every answer gets a status. Only ``ok`` carries a value, so an unparseable judgment is counted and
reported, and never silently becomes a score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OK = "ok"
EMPTY = "empty"
MISSING = "missing"
AMBIGUOUS = "ambiguous"
OUT_OF_RANGE = "out_of_range"
STATUSES = (OK, EMPTY, MISSING, AMBIGUOUS, OUT_OF_RANGE)

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_MARKUP = r"[\s*_`\"'\[\](){}]*"  # markdown emphasis, quotes and brackets around a value


@dataclass(frozen=True)
class Judgment:
    value: float | str | None  # the score or the label; None unless status is "ok"
    status: str

    @property
    def ok(self) -> bool:
        return self.status == OK


def parse_score(text: str | None, low: int, high: int, tag: str = "Score") -> Judgment:
    """An integer score in [low, high] from a judge's answer."""
    body = (text or "").strip()
    if not body:
        return Judgment(None, EMPTY)
    tagged = re.findall(rf"{re.escape(tag)}{_MARKUP}[:=]{_MARKUP}({_NUMBER})", body, flags=re.IGNORECASE)
    if tagged:
        values = {float(v) for v in tagged}
        if len(values) > 1:
            return Judgment(None, AMBIGUOUS)
        return _in_range(values.pop(), low, high)
    bare = re.fullmatch(rf"{_MARKUP}({_NUMBER}){_MARKUP}(?:(?:/|out of)\s*{_NUMBER})?{_MARKUP}\.?", body, re.IGNORECASE)
    if bare:
        return _in_range(float(bare.group(1)), low, high)
    return Judgment(None, MISSING)


def _in_range(value: float, low: int, high: int) -> Judgment:
    if value != int(value) or not low <= value <= high:
        return Judgment(None, OUT_OF_RANGE)
    return Judgment(float(value), OK)


def parse_label(text: str | None, labels: Sequence[str], tag: str = "Verdict") -> Judgment:
    """One of ``labels`` (case-insensitive) from a judge's answer; returned as spelled in ``labels``."""
    body = (text or "").strip()
    if not body:
        return Judgment(None, EMPTY)
    canonical = {label.lower(): label for label in labels}
    words = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    tagged = re.findall(rf"{re.escape(tag)}{_MARKUP}[:=]{_MARKUP}([A-Za-z_-]+)", body, flags=re.IGNORECASE)
    if tagged:
        found = {canonical.get(word.lower()) for word in tagged}
        if None in found:
            return Judgment(None, OUT_OF_RANGE)  # a tag with a word that is not a label
        if len(found) > 1:
            return Judgment(None, AMBIGUOUS)
        return Judgment(found.pop(), OK)
    bare = re.fullmatch(rf"{_MARKUP}({words}){_MARKUP}\.?", body, flags=re.IGNORECASE)
    if bare:
        return Judgment(canonical[bare.group(1).lower()], OK)
    return Judgment(None, MISSING)
