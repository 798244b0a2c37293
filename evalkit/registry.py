"""One registry mechanism for everything looked up by name: tasks, task kinds, metrics, judges,
backends, equivalence methods.

Names resolve lazily (task YAML files are parsed only when asked for) and an unknown name
fails with a did-you-mean suggestion, as lm-eval's registry does.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from evalkit.errors import EvalkitError, shown

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

    def remove(self, name: str) -> None:
        """Forget a name (a task file another one overrides)."""
        self._items.pop(name, None)
        self._loaders.pop(name, None)

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
