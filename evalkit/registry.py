"""One registry mechanism for everything looked up by name: tasks, suites, metrics, backends.

Names resolve lazily (task YAML files are parsed only when asked for) and an unknown name
fails with a did-you-mean suggestion, as lm-eval's registry does.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

from evalkit.errors import ConfigError, EvalkitError, shown

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: Iterable[str]) -> EvalkitError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known) or 'none'}"
    return EvalkitError(f"unknown {kind} {shown(name)}{hint}")


class Registry(Generic[T]):
    """Name -> object, filled by a decorator or by lazy loaders (name -> zero-arg factory)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loaders: dict[str, Callable[[], T]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items or name in self._loaders:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def add_lazy(self, name: str, loader: Callable[[], T]) -> None:
        self._loaders.setdefault(name, loader)

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._loaders))

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._loaders

    def get(self, name: str) -> T:
        if name not in self._items:
            if name not in self._loaders:
                raise unknown_name(self.kind, name, self.names())
            self._items[name] = self._loaders.pop(name)()
        return self._items[name]


def task_registry(*extra_dirs: Path) -> Registry:
    """Tasks from the shipped tasks folder (and any extra folders): one YAML file per task."""
    from evalkit.resources import tasks_dir
    from evalkit.tasks import load_task_file

    registry: Registry = Registry("task")
    for folder in (tasks_dir(), *extra_dirs):
        if not folder.is_dir():
            raise ConfigError(f"task folder not found: {folder}")
        for path in sorted(folder.glob("*.yaml")):
            registry.add_lazy(path.stem, lambda p=path: load_task_file(p))
    return registry


def suites(registry: Registry) -> dict[str, list[str]]:
    """Suite name -> task names, from the ``suites`` field of every task; ``all`` holds every task."""
    members: dict[str, list[str]] = {"all": []}
    for name in registry.names():
        spec = registry.get(name)
        members["all"].append(name)
        for suite in spec.suites:
            members.setdefault(suite, []).append(name)
    return members


def resolve_tasks(registry: Registry, suite: str | None, tasks: Iterable[str]) -> list[str]:
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
