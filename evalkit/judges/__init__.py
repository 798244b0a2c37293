"""Judges: model-backed scorers between generation and metrics (reward models, equivalence tests).

``JUDGES`` maps the name a task file uses under ``judges:`` (``reward_model``, ``equivalence``,
and one LLM judge per rubric file in judges/, e.g. ``quality``, ``refusal``) to a factory ``(options,
JudgeSettings) -> Judge``; see :mod:`evalkit.judges.base` for the hook the runner calls.
"""

from __future__ import annotations

from evalkit.judges import equivalence as _equivalence  # noqa: F401 - registers "equivalence"
from evalkit.judges import llm_judge as _llm_judge  # noqa: F401 - registers a judge per rubric file
from evalkit.judges import reward_model as _reward_model  # noqa: F401 - registers "reward_model"
from evalkit.judges.base import JUDGES, Judge, JudgeNotConfigured, JudgeSettings, annotate, build_judges

__all__ = ["JUDGES", "Judge", "JudgeNotConfigured", "JudgeSettings", "annotate", "build_judges"]
