"""The options of `evalkit run`, one place: ``run_options`` puts them on the command. Their names
and defaults are those of ``evalkit.evaluate`` (evalkit/api.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evalkit.config import DTYPES
from evalkit.loggers import TARGETS


class _Limit(click.ParamType):
    """--limit: an integer number of documents, or a fraction between 0 and 1 (checked in RunConfig)."""

    name = "L"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | float:
        if isinstance(value, (int, float)):
            return value
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of documents nor a fraction between 0 and 1", param, ctx)


LIMIT = _Limit()


_OPTIONS = [
    click.option("--model", default=None, help="Local folder or hub id. Default: embedded SmolLM2-135M-Instruct."),
    click.option("--suite", default=None, help="A suite of tasks (see `evalkit list`)."),
    click.option("--tasks", default="", help="Comma-separated task names."),
    click.option(
        "--backend",
        default="hf",
        show_default=True,
        help="Generation backend: hf (transformers), vllm (offline engine) or openai (an OpenAI-compatible server).",
    ),
    click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        help="Weights' precision (hf, vllm); auto: bfloat16 on a GPU, float32 on a CPU.",
    ),
    click.option("--revision", default=None, help="Branch, tag or commit of a hub model (default: main)."),
    click.option("--trust-remote-code", is_flag=True, help="Run the code a hub model ships (off by default)."),
    click.option("--n", type=int, default=None, help="Samples per prompt (default: the task's)."),
    click.option("--temperature", type=float, default=None, help="0 means greedy."),
    click.option("--top-p", type=float, default=None, help="Nucleus sampling: keep the top tokens of this mass."),
    click.option("--top-k", type=int, default=None, help="Keep the K most likely tokens; 0 disables top-k."),
    click.option("--max-tokens", type=int, default=None, help="Maximum new tokens per sample."),
    click.option("--stop", multiple=True, help="Stop string (repeatable)."),
    click.option(
        "--limit",
        type=LIMIT,
        default=None,
        help="Only the first L documents of each task; below 1, that share of them (0.1: a tenth, rounded up).",
    ),
    click.option("--prompt-style", default=None, help="Prompt style for tasks that offer several (e.g. boxed)."),
    click.option(
        "--system-prompt",
        default=None,
        help="System turn of every generating task, replacing the task's own. Default: the task's, else whatever "
        "the model's chat template adds (SmolLM2's: 'You are a helpful AI assistant named SmolLM, ...').",
    ),
    click.option(
        "--no-system-prompt",
        is_flag=True,
        help="No system turn at all, not even the one a chat template adds by default (SmolLM2's).",
    ),
    click.option("--no-chat-template", is_flag=True, help="Plain prompt text, no chat template (base models)."),
    click.option(
        "--num-fewshot",
        type=click.IntRange(min=0),
        default=None,
        help="Few-shot examples per prompt: lm_eval tasks, and tasks that declare examples (default: the task's).",
    ),
    click.option("--seed", type=int, default=1234, show_default=True, help="Seed of the samples and of lm-eval."),
    click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder with local data files."),
    click.option(
        "--output-dir",
        type=click.Path(path_type=Path),
        default=Path("results"),
        show_default=True,
        help="Folder of run folders; checked writable before anything runs.",
    ),
    click.option(
        "--run-id", default=None, help="Name of the run folder inside --output-dir (default: time, model and suite)."
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Sequences per generation call [default: 64 on a CPU; on a GPU what its free memory holds].",
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option(
        "--task-dir",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Folder of extra task YAML files (repeatable).",
    ),
    click.option(
        "--override-tasks", is_flag=True, help="A --task-dir file may replace the built-in task of the same name."
    ),
    click.option("--reward-model", default=None, help="Reward model folder or hub id (default: the task's)."),
    click.option(
        "--equivalence",
        default=None,
        help="NoveltyBench equivalence test: deberta[:PATH], rouge1[:T], sbert[:T] or llm[:MODEL].",
    ),
    click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Generation cache folder."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the generation cache."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
    click.option("--base-url", default=None, help="openai backend: the server's URL, e.g. http://127.0.0.1:8000/v1."),
    click.option("--api-key-env", default=None, help="openai backend: NAME of the variable holding the API key."),
    click.option(
        "--api",
        type=click.Choice(["chat", "completions"]),
        default="chat",
        show_default=True,
        help="openai: chat (the server's chat template) or completions (prompt text).",
    ),
    click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight."),
    click.option("--request-timeout", type=float, default=600.0, show_default=True, help="Seconds per request."),
    click.option(
        "--max-retries", type=click.IntRange(min=0), default=5, show_default=True, help="openai: retries of a request."
    ),
    click.option(
        "--tensor-parallel-size",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="vllm: GPUs per engine.",
    ),
    click.option(
        "--data-parallel-size", type=click.IntRange(min=1), default=1, show_default=True, help="vllm: engines."
    ),
    click.option(
        "--gpu-memory-utilization",
        type=float,
        default=0.9,
        show_default=True,
        help="vllm: share of GPU memory the engine takes.",
    ),
    click.option("--max-model-len", type=click.IntRange(min=1), default=None, help="vllm: context length (tokens)."),
    click.option(
        "--judge", default=None, help="LLM judge model: embedded, a folder, a hub id, or a served model name."
    ),
    click.option("--judge-backend", default="hf", show_default=True, help="Backend of the judge: hf, vllm or openai."),
    click.option("--judge-base-url", default=None, help="Server URL when --judge-backend openai."),
    click.option("--judge-api-key-env", default=None, help="NAME of the variable holding the judge server's key."),
    click.option("--judge-rubric", multiple=True, help="Add this rubric judge (judges/NAME.yaml) to every task."),
    click.option("--judge-max-tokens", type=click.IntRange(min=1), default=None, help="Cap on the judge's answers."),
    click.option(
        "--report-to", multiple=True, type=click.Choice(TARGETS), help="Also log to wandb or tensorboard (repeatable)."
    ),
]


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command with every option of `evalkit run`, in the order `--help` lists them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
