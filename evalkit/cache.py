"""Generation cache: one row per (model, backend kind, precision, prompt, sampling parameters,
seed, sample index), and the rendered prompt of each (model, chat format, chat messages), so a
run served from the cache needs neither the model nor its tokenizer; and the judges' scores
(rewards, partitions), keyed by the judge's fingerprint and what it scored.

SQLite in WAL mode: each batch is committed in one transaction, so a run killed at any moment
(SIGKILL included) leaves every finished batch in the cache and nothing half-written. A cache file
that is damaged (SQLite reads it as malformed, or not a database) is found when it is opened,
before any generation, and reported in one line; evalkit never deletes or rewrites it.

A sample's row also holds why it ended (``finish_reason``: stop, length, abort), in a column
added to cache files written before it existed, where it stays NULL (not known) for their rows.
Readers that know only (key, value) still read and write every file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit.config import SamplingConfig
from evalkit.errors import EvalkitError

_TABLES = ("samples", "prompts", "scores")  # scores: judges' outputs (evalkit.judges)


def prompt_key(identity: str, messages: Sequence[dict[str, str]]) -> str:
    """``identity``: the backend's render_identity (the model's fingerprint and chat format)."""
    payload = json.dumps([identity, list(messages)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def sample_key(identity: str, prompt: str, sampling: SamplingConfig, index: int, with_n: bool = False) -> str:
    """``identity``: the backend's sample_identity (the model's fingerprint, the backend kind and
    its numeric precision). ``with_n``: for backends whose sample i can change with n (see
    Backend.samples_depend_on_n)."""
    fields = sampling.cache_fields()
    if with_n:
        fields["n"] = sampling.n
    payload = json.dumps([identity, prompt, fields, index], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class CorruptCache(EvalkitError):
    """A cache file SQLite cannot read; the message names it and what to do."""


def _is_corrupt(exc: sqlite3.Error) -> bool:
    # OperationalError (locked, read-only, disk full, cannot open) is a DatabaseError too, but
    # says nothing about the file's content.
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class GenerationCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            for table in _TABLES:
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            _add_finish_reason(self._db)
            self._db.commit()
            # Every page read once: damage anywhere in the file is found now, not after generating.
            problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.Error as exc:
            if _is_corrupt(exc):
                raise self._corrupt(exc) from None
            raise EvalkitError(f"cannot open the generation cache {path}: {exc}") from None
        except OSError as exc:
            raise EvalkitError(f"cannot open the generation cache {path}: {exc}") from None
        if problem != "ok":
            self._db.close()
            raise self._corrupt(problem)

    def _corrupt(self, what: Any) -> CorruptCache:
        path = self.path
        return CorruptCache(
            f"the generation cache {path} is damaged (SQLite: {what}); evalkit leaves it as it is. Run with "
            f"--no-cache, or move it aside (mv {path} {path}.damaged, with any -wal and -shm files beside it) "
            "and run again to start a new cache"
        )

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            if _is_corrupt(exc):
                raise self._corrupt(exc) from None
            raise

    def get_many(self, keys: Sequence[str], table: str = "samples") -> dict[str, str]:
        assert table in _TABLES
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's variable limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._execute(f"SELECT key, value FROM {table} WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, items: Iterable[tuple[str, str]], table: str = "samples") -> None:
        assert table in _TABLES
        try:
            with self._db:  # one transaction
                self._db.executemany(f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?, ?)", items)
        except sqlite3.Error as exc:
            if _is_corrupt(exc):
                raise self._corrupt(exc) from None
            raise

    def get_samples(self, keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """Cached samples: key -> (completion, finish reason or None when not recorded)."""
        found: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, value, finish_reason FROM samples WHERE key IN ({marks})"
            found.update((key, (value, reason)) for key, value, reason in self._execute(query, chunk))
        return found

    def put_samples(self, items: Iterable[tuple[str, str, str | None]]) -> None:
        """(key, completion, finish reason) rows, in one transaction."""
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO samples (key, value, finish_reason) VALUES (?, ?, ?)", items
                )
        except sqlite3.Error as exc:
            if _is_corrupt(exc):
                raise self._corrupt(exc) from None
            raise

    def count(self, table: str = "samples") -> int:
        assert table in _TABLES
        return self._execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _add_finish_reason(db: sqlite3.Connection) -> None:
    """The samples' finish_reason column, added to a cache file written before it existed."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(samples)")}
    if "finish_reason" in columns:
        return
    try:
        db.execute("ALTER TABLE samples ADD COLUMN finish_reason TEXT")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):  # another run sharing the cache added it first
            raise
