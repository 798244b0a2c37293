"""Locate the shipped task and judge folders, in a checkout and in an installed wheel."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from evalkit.hub import hub_offline

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _folder(checkout_name: str, package: str) -> Path:
    # In a checkout (editable install or plain PYTHONPATH) the folder sits beside evalkit/.
    candidate = _REPO_ROOT / checkout_name
    if (candidate / "__init__.py").is_file():
        return candidate
    # In a wheel, pyproject.toml maps the folder to a sub-package of evalkit.
    return Path(str(importlib.resources.files(package)))


def hf_offline(*variables: str) -> bool:
    """Whether the Hugging Face hub is switched off by any of these variables (HF_HUB_OFFLINE by
    default) or cannot be reached (evalkit/hub.py asks once per process)."""
    return hub_offline(*variables)


def tasks_dir() -> Path:
    return _folder("tasks", "evalkit._tasks")


def judges_dir() -> Path:
    return _folder("judges", "evalkit._judges")
