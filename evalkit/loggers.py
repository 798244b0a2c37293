"""`--report-to wandb|tensorboard`: where `run` and `train` also send their numbers.

Both are optional dependencies. A target whose package is not installed is left out with one
warning line, before any work, and the run goes on: losing a dashboard never loses a run.

- ``run``: every task's metric (``TASK/METRIC``) and its standard error (``TASK/METRIC_stderr``)
  as scalars at step 0, and the run's configuration; TensorBoard event files go to
  ``RUN_DIR/tensorboard``, W&B to the project ``$WANDB_PROJECT`` (default ``evalkit``) under the
  run id.
- ``train``: transformers' own TensorBoard and W&B callbacks (loss, learning rate, grad norm per
  logging step, under ``train/``); TensorBoard event files go to ``OUTPUT_DIR/tensorboard``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError
from evalkit.results import RunResult

TARGETS = ("wandb", "tensorboard")
TENSORBOARD_DIR = "tensorboard"
_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def available(targets: Iterable[str]) -> tuple[str, ...]:
    """The targets whose package is installed; a warning line for each one that is not."""
    chosen = []
    for target in dict.fromkeys(targets):
        if target not in TARGETS:
            raise ConfigError(f"--report-to must be one of {', '.join(TARGETS)}, got {target!r}")
        package = _PACKAGES[target]
        if importlib.util.find_spec(package) is None:
            why = f"{package} is not installed (pip install {package})"
            print(f"evalkit: --report-to {target} skipped: {why}", file=sys.stderr)
            continue
        chosen.append(target)
    return tuple(chosen)


def _scalars(result: RunResult) -> dict[str, float]:
    values = {}
    for task, entry in result.tasks.items():
        for metric in entry.metrics:
            value = entry.value(metric)
            if value is not None:
                values[f"{task}/{metric}"] = value
                if metric in entry.stderr:
                    values[f"{task}/{metric}_stderr"] = entry.stderr[metric]
    return values


def log_run(result: RunResult, targets: Sequence[str]) -> None:
    """Send a finished run's metrics to each target (already checked with :func:`available`)."""
    if not targets or result.path is None:
        return
    scalars = _scalars(result)
    if "tensorboard" in targets:
        _tensorboard(result.path / TENSORBOARD_DIR, scalars, result.to_json()["config"])
    if "wandb" in targets:
        _wandb(result, scalars)


def _tensorboard(folder: Path, scalars: dict[str, float], config: dict[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy (torch, tensorboard): only when asked for

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=0)
        writer.add_text("config", f"```\n{json.dumps(config, indent=2, default=str)}\n```")
    finally:
        writer.close()


def _wandb(result: RunResult, scalars: dict[str, float]) -> None:
    import wandb  # optional dependency: only when asked for

    project = os.environ.get("WANDB_PROJECT", "evalkit")
    run = wandb.init(project=project, name=result.run_id, config=result.to_json()["config"], dir=str(result.path))
    try:
        run.log(scalars, step=0)
        run.summary.update(scalars)
    finally:
        run.finish()


def trainer_callbacks(targets: Sequence[str], output_dir: Path) -> list[Any]:
    """transformers' own callbacks for `train` (TensorBoard writes under OUTPUT_DIR/tensorboard)."""
    callbacks: list[Any] = []
    if "tensorboard" in targets:
        from torch.utils.tensorboard import SummaryWriter  # heavy, as above
        from transformers.integrations import TensorBoardCallback  # heavy: training only

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(output_dir / TENSORBOARD_DIR))))
    if "wandb" in targets:
        from transformers.integrations import WandbCallback  # heavy, as above

        callbacks.append(WandbCallback())
    return callbacks
