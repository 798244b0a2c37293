"""Judges: model-backed scorers between generation and metrics (reward models, equivalence tests,
LLM judges with rubrics).

``JUDGES`` maps the name a task file uses under ``judges:`` (``reward_model``, ``equivalence``,
and one LLM judge per rubric file in judges/, e.g. ``quality``, ``refusal``) to a factory
``(options, JudgeConfig, ModelPool) -> Judge``; see :mod:`evalkit.judges.base` for the hook the
runner calls and :mod:`evalkit.judges.pool` for the models a run loads for them.
"""

from __future__ import annotations

from evalkit.config import JudgeConfig
from evalkit.judges import llm_judge as _llm_judge  # noqa: F401 - registers a judge per rubric file
from evalkit.judges import reward_model as _reward_model  # noqa: F401 - registers "reward_model"
from evalkit.judges.base import JUDGES, Judge, JudgeNotConfigured, annotate, build_judges
from evalkit.judges.equivalence import parse_method  # importing it registers "equivalence"
from evalkit.judges.pool import ModelPool

__all__ = ["JUDGES", "Judge", "JudgeNotConfigured", "ModelPool", "annotate", "build_judges", "check_config"]


def check_config(config: JudgeConfig) -> None:
    """What the run says about judges, checked before anything runs: a typo fails even when no
    task of the run uses it."""
    if config.equivalence is not None:
        parse_method(config.equivalence)
