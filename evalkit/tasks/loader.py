"""Task discovery: one YAML file per task in the shipped tasks folder (and any --task-dir),
parsed lazily by the kind it names; suites gathered from the tasks' ``suites`` fields."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from evalkit.errors import ConfigError, shown
from evalkit.registry import Registry, unknown_name
from evalkit.resources import tasks_dir
from evalkit.tasks.base import COMMON_FIELDS, KINDS, TaskSpec, reject_unknown
from evalkit.yaml_files import load_yaml


def load_task_file(path: Path) -> TaskSpec:
    where = f"task file {path}"
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not valid UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of fields, got {type(raw).__name__}")
    kind_name = str(raw.get("kind", "generate"))
    if kind_name not in KINDS:
        raise ConfigError(f"{where}: {unknown_name('kind', kind_name, KINDS.names())}")
    kind = KINDS.get(kind_name)
    reject_unknown(where, raw, COMMON_FIELDS | kind.fields, "" if kind_name == "generate" else kind_name)
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ConfigError(f"{where}: name {shown(name)} must equal the file name '{path.stem}'")
    suites = raw.get("suites", [])
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise ConfigError(f"{where}: suites must be a list of names")
    common = {
        "name": name,
        "description": str(raw.get("description", "")).strip(),
        "suites": tuple(suites),
        "source_file": path,
    }
    return kind.parse(where, raw, common)


def task_registry(*extra_dirs: Path, override: bool = False) -> Registry[TaskSpec]:
    """Tasks from the shipped tasks folder (and any extra folders): one YAML file per task. A file
    in an extra folder named like a task already found (shipped, or in an earlier folder) is an
    error naming both files, unless ``override`` (``--override-tasks``): then the later file wins."""
    registry: Registry[TaskSpec] = Registry("task")
    found: dict[str, Path] = {}
    for folder in (tasks_dir(), *extra_dirs):
        if not folder.is_dir():
            raise ConfigError(f"task folder not found: {folder}")
        for path in sorted(folder.glob("*.yaml")):
            earlier = found.get(path.stem)
            if earlier is not None and earlier.resolve() != path.resolve():
                if not override:
                    raise ConfigError(
                        f"task file {path} has the name of task '{path.stem}' in {earlier}: rename it, or pass "
                        "--override-tasks to run it instead"
                    )
                registry.remove(path.stem)
            found[path.stem] = path
            registry.add_lazy(path.stem, lambda p=path: load_task_file(p))
    return registry


def suites(registry: Registry[TaskSpec]) -> dict[str, list[str]]:
    """Suite name -> task names, from the ``suites`` field of every task; ``all`` holds every task."""
    members: dict[str, list[str]] = {"all": []}
    for name in registry.names():
        spec = registry.get(name)
        members["all"].append(name)
        for suite in spec.suites:
            members.setdefault(suite, []).append(name)
    return members


def resolve_tasks(registry: Registry[TaskSpec], suite: str | None, tasks: Iterable[str]) -> list[str]:
    """Task names for a run: the suite's members and/or the named tasks, in a stable order."""
    names: list[str] = []
    if suite:
        all_suites = suites(registry)
        if suite not in all_suites:
            raise unknown_name("suite", suite, all_suites)
        names.extend(all_suites[suite])
    for name in tasks:
        registry.get(name)  # raises with a suggestion when unknown or malformed
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError("nothing to run: give --suite or --tasks")
    return names
