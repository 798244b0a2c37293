"""Judges: model-backed scorers between generation and metrics (reward models, equivalence tests).

``JUDGES`` maps the name a task file uses under ``judges:`` to a factory ``(options,
JudgeSettings) -> Judge``; see :mod:`evalkit.judges.base` for the hook the runner calls.
"""

from __future__ import annotations

from evalkit.judges import equivalence as _equivalence  # noqa: F401 - registers "equivalence"
from evalkit.judges import reward_model as _reward_model  # noqa: F401 - registers "reward_model"
from evalkit.judges.base import JUDGES, Judge, JudgeSettings, annotate, build_judges

__all__ = ["JUDGES", "Judge", "JudgeSettings", "annotate", "build_judges"]
