"""Errors that end a command with one clear line and exit code 2 (bad input or usage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class EvalkitError(Exception):
    """A user-facing failure: the CLI prints ``error: <message>`` on one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep messages to one line: the CLI contract is "one clear line".
        super().__init__(" ".join(str(message).split()))


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
