"""Tasks: one YAML file each (tasks/), of a kind that says how it runs (evalkit.tasks.base).

Importing this package registers the kinds; ``task_registry`` finds the task files.
"""

from __future__ import annotations

from evalkit.tasks.base import KINDS, PreparedTask, RunContext, TaskKind, TaskOutput, TaskSpec
from evalkit.tasks.generate import GenerateKind, GenerateTask, with_run_options
from evalkit.tasks.generate_spec import GenerateTaskSpec, render_messages
from evalkit.tasks.lm_eval import LmEvalKind, LmEvalTaskSpec
from evalkit.tasks.loader import load_task_file, resolve_tasks, suites, task_registry
from evalkit.tasks.perplexity import PerplexityKind, PerplexityTaskSpec

__all__ = [
    "KINDS",
    "GenerateKind",
    "GenerateTask",
    "GenerateTaskSpec",
    "LmEvalKind",
    "LmEvalTaskSpec",
    "PerplexityKind",
    "PerplexityTaskSpec",
    "PreparedTask",
    "RunContext",
    "TaskKind",
    "TaskOutput",
    "TaskSpec",
    "load_task_file",
    "render_messages",
    "resolve_tasks",
    "suites",
    "task_registry",
    "with_run_options",
]
