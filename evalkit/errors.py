"""Errors that end a command with one clear line and exit code 2 (bad input or usage)."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence

MESSAGE_LIMIT = 2000  # characters of one error line; the rest is cut
SHOWN_LIMIT = 80  # characters of a user's value echoed in a message (see shown)


class EvalkitError(Exception):
    """A user-facing failure: the CLI prints ``error: <message>`` on one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep messages to one line (the CLI contract is "one clear line") and bounded: a message
        # that quotes a huge value must not become a megabyte of stderr.
        text = str(message)
        cut = len(text) > MESSAGE_LIMIT * 2
        text = " ".join(text[: MESSAGE_LIMIT * 2].split())
        if cut or len(text) > MESSAGE_LIMIT:
            text = text[:MESSAGE_LIMIT] + " ... (cut)"
        super().__init__(text)


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, SHOWN_LIMIT, SHOWN_LIMIT, 40
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = short.maxdeque = 6
    return short


_SHORT_REPR = _short_repr()


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """A user's value as an error message quotes it: its repr, cut to ``limit`` characters.

    reprlib (the standard library's bounded repr) stops at a few items and levels, so a value
    that is huge, deeply nested or shares itself many times (a YAML alias bomb) costs as little
    as a small one; the full repr would be built first and could take gigabytes."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 128:
        text = f"<an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits>"
    else:
        try:
            text = _SHORT_REPR.repr(value)
        except Exception:  # noqa: BLE001 - a value whose repr fails is still named
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(EvalkitError):
    """A malformed task file, run configuration or sampling value."""


class DataError(EvalkitError):
    """A data file that is missing, unreadable or corrupt."""


class DataUnavailable(DataError):
    """A task's data cannot be had here (offline, or no --data-dir): a suite run skips the task."""


class ModelError(EvalkitError):
    """A model that cannot be found or loaded."""


class PromptTooLong(ModelError):
    """Prompts longer than a model's context, found before any of them was sent. ``lengths`` maps
    each such prompt to its number of tokens; ``in_task`` names the documents they came from."""

    def __init__(self, lengths: Mapping[str, int], limit: str, remedy: str, where: str | None = None) -> None:
        self.lengths, self.limit, self.remedy = dict(lengths), limit, remedy
        if where is None:
            where = f"{len(self.lengths)} prompt(s) of {_listed(sorted(self.lengths.values(), reverse=True))} tokens"
        super().__init__(f"{where}: {limit}; {remedy}")

    def in_task(self, task: str, prompts: Sequence[str], doc_ids: Sequence[str]) -> PromptTooLong:
        """The same error naming the task and its documents (index, doc_id, tokens)."""
        docs = [
            f"document {d} ({doc_ids[d]}, {self.lengths[p]} tokens)" for d, p in enumerate(prompts) if p in self.lengths
        ]
        return PromptTooLong(self.lengths, self.limit, self.remedy, where=f"task {task}: {_listed(docs)}")


def _listed(items: Sequence[object], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(str(i) for i in items[:shown]) + more
