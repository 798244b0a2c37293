"""IFEval verdicts (Zhou et al. 2023) with the official instruction checkers.

The 25 checkers and the strict/loose evaluation are Google's code as lm-eval ships it
(``lm_eval.tasks.ifeval``); evalkit adapts the record format, makes NLTK's punkt data available
offline before those modules are imported (they try to download it otherwise), and fixes the
official scorer's two sources of randomness so that a verdict never changes between runs:

* ``keywords:letter_frequency`` draws a random letter when the record's ``letter`` is not a-z
  (IFEval has ``#`` and ``!``), from Python's global ``random``;
* langdetect (``language:response_language``, ``change_case:english_capital`` and
  ``english_lowercase``) samples n-grams at random unless ``DetectorFactory.seed`` is set.

Both are seeded here (``seed``, default 0), restoring the caller's ``random`` state afterwards.
See docs/ifeval.md for the verdicts this moves and the proof that the official outputs are random
there.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType
from typing import Any

from evalkit.errors import DataError, EvalkitError
from evalkit.nltk_data import ensure_punkt

# Instructions whose official verdict can depend on a random draw.
RANDOMISED = (
    "keywords:letter_frequency",
    "language:response_language",
    "change_case:english_capital",
    "change_case:english_lowercase",
)


@lru_cache(maxsize=1)
def _official() -> ModuleType:
    ensure_punkt()  # before the import: lm-eval's instructions_util downloads punkt_tab when missing
    try:
        from lm_eval.tasks.ifeval import utils  # heavy: only when IFEval is scored
    except ImportError as exc:
        raise EvalkitError(
            f"IFEval needs lm-eval with its ifeval extra (pip install 'lm-eval[ifeval]'): {exc}"
        ) from None
    return utils


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    from langdetect import DetectorFactory  # imported by lm-eval's checkers already (_official)

    state, previous = random.getstate(), DetectorFactory.seed
    random.seed(seed)
    DetectorFactory.seed = seed
    try:
        yield
    finally:
        random.setstate(state)
        DetectorFactory.seed = previous


def follow_instructions(record: dict[str, Any], response: str, loose: bool = False, seed: int = 0) -> list[bool]:
    """One verdict per instruction of an IFEval record (a line of input_data.jsonl)."""
    utils = _official()
    try:
        example = utils.InputExample(
            key=record.get("key", 0),
            instruction_id_list=list(record["instruction_id_list"]),
            prompt=record["prompt"],
            kwargs=[{k: v for k, v in kw.items() if v is not None} for kw in record["kwargs"]],
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"not an IFEval record (needs prompt, instruction_id_list, kwargs): {exc}") from None
    check = utils.test_instruction_following_loose if loose else utils.test_instruction_following_strict
    try:
        with _seeded(seed):
            return [bool(v) for v in check(example, response).follow_instruction_list]
    except KeyError as exc:
        raise DataError(f"IFEval record {example.key}: unknown instruction {exc}") from None
