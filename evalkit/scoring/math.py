"""Final answers of math solutions: extraction in the papers' styles, equivalence with math-verify.

Extraction is written here because it is a matter of where a model puts its answer (the last
``\\boxed{}``, "The answer is: ...", GSM8K's ``#### N``), which math-verify does not know about.
Equivalence (fractions vs decimals, ``\\dfrac``, percentages, units, tuples, intervals) is
math-verify's, never a hand-written normalisation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

Style = Literal["boxed", "answer_is", "gsm8k", "last_number"]
DEFAULT_STYLES: tuple[Style, ...] = ("boxed", "answer_is", "gsm8k")
STYLES: tuple[Style, ...] = ("boxed", "answer_is", "gsm8k", "last_number")

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*[:：]?\s*", re.IGNORECASE)
_HASHES = re.compile(r"####\s*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox``), braces balanced; None when there is none
    or the last box is never closed."""
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    # Only the last box counts: an earlier box is an answer the solution went on to replace.
    start, depth = starts[-1], 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def _answer_is(text: str) -> str | None:
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    answer = rest.split("\n", 1)[0].strip()
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    answer = answer.strip().strip("*").strip()
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()  # $...$ math mode around the answer
    return answer.rstrip(".").strip() or None


def _after_hashes(text: str) -> str | None:
    matches = list(_HASHES.finditer(text))
    if not matches:
        return None
    answer = text[matches[-1].end() :].split("\n", 1)[0].strip()
    return answer or None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


_EXTRACTORS = {"boxed": last_boxed, "answer_is": _answer_is, "gsm8k": _after_hashes, "last_number": _last_number}


def extract_answer(text: str, styles: Sequence[Style] = DEFAULT_STYLES) -> str | None:
    """The final answer of a solution: the first style (in order) that finds one."""
    for style in styles:
        answer = _EXTRACTORS[style](text)
        if answer:
            return answer
    return None


def gold_answer(reference: str) -> str:
    """The final answer of a dataset's reference: GSM8K's ``#### N``, else the last box, else as is
    (MATH500's ``answer`` field)."""
    return _after_hashes(reference) or last_boxed(reference) or reference.strip()


def _timeout() -> int | None:
    """math-verify's timeouts use SIGALRM, which only the main thread may set."""
    return 5 if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=65536)
def _parsed(answer: str):
    from math_verify import parse  # heavy (sympy): only when answers are checked

    # Boxing the answer makes math-verify read the whole string as one expression.
    return parse(f"\\boxed{{{answer}}}", parsing_timeout=_timeout())


def is_equivalent(prediction: str | None, gold: str) -> bool:
    """Whether an extracted answer equals the gold answer mathematically (math-verify)."""
    if prediction is None or not prediction.strip():
        return False
    from math_verify import verify  # heavy, as above

    gold_parsed, predicted = _parsed(gold.strip()), _parsed(prediction.strip())
    if not gold_parsed or not predicted:
        return prediction.strip() == gold.strip()
    return bool(verify(gold_parsed, predicted, timeout_seconds=_timeout()))
