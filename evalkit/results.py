"""Result files, read and written here only: OUTPUT_DIR/<run_id>/results.json (a RunResult),
documents.jsonl (per-document metric values) and samples.jsonl (per-sample completions and
scores), written atomically.

results.json carries ``schema_version``. Files without one (written before it existed) load the
same way, and so does a hand-written baseline with only ``{"tasks": {TASK: {"metrics": {...}}}}``
(JSON or YAML); a file from a newer evalkit is refused with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from evalkit import __version__
from evalkit.data import read_records
from evalkit.errors import EvalkitError, shown
from evalkit.yaml_files import load_yaml

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
DOCUMENTS_FILE = "documents.jsonl"
_VERSIONED = ("torch", "transformers", "datasets", "nltk", "sacrebleu", "accelerate")


@dataclass
class TaskResult:
    """One task's entry in results.json."""

    metrics: dict[str, float | None]  # None (null in the file): not computable, e.g. no readable judgment
    stderr: dict[str, float] = field(default_factory=dict)
    n_docs: int | None = None
    n_samples: int | None = None
    sampling: dict[str, Any] | None = None  # the sampling values used (generating tasks)
    prompt_style: str | None = None
    judges: dict[str, str] = field(default_factory=dict)  # judge -> the model or method it used
    judgments: dict[str, Any] = field(default_factory=dict)  # judge -> what it could and could not read
    details: dict[str, Any] = field(default_factory=dict)  # what the task's kind records besides
    # What makes the task comparable with another run's (evalkit.comparability): {"what": ..., "how": ...};
    # None in files written before it was recorded.
    comparable: dict[str, Any] | None = None

    def value(self, metric: str) -> float | None:
        """The metric as a float; None when it is missing or not a number (null, NaN)."""
        value = self.metrics.get(metric)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": self.metrics, "stderr": self.stderr}
        optional = {
            "n_docs": self.n_docs,
            "n_samples": self.n_samples,
            "sampling": self.sampling,
            "prompt_style": self.prompt_style,
            "judges": self.judges,
            "judgments": self.judgments,
            "comparable": self.comparable,
        }
        out.update((key, value) for key, value in optional.items() if value not in (None, {}))
        return {**out, **self.details}

    @classmethod
    def from_json(cls, raw: Any, where: str) -> TaskResult:
        if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
            raise EvalkitError(f"{where} has no 'metrics' mapping")
        for name, value in raw["metrics"].items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise EvalkitError(f"{where}: metric {shown(name)} is {shown(value)}, not a number")
        for key in ("stderr", "sampling", "judges", "judgments"):
            if raw.get(key) is not None and not isinstance(raw[key], dict):
                raise EvalkitError(f"{where}: {key!r} must be a mapping, got {shown(raw[key])}")
        for key in ("n_docs", "n_samples"):
            if raw.get(key) is not None and (isinstance(raw[key], bool) or not isinstance(raw[key], int)):
                raise EvalkitError(f"{where}: {key!r} must be an integer, got {shown(raw[key])}")
        comparable = raw.get("comparable")
        if comparable is not None and not (
            isinstance(comparable, dict) and all(isinstance(comparable.get(k), dict) for k in ("what", "how"))
        ):
            raise EvalkitError(f"{where}: 'comparable' must be a mapping with 'what' and 'how' mappings")
        known = {"metrics", "stderr", "n_docs", "n_samples", "sampling", "prompt_style", "judges", "judgments"}
        return cls(
            metrics=dict(raw["metrics"]),
            stderr=dict(raw.get("stderr") or {}),
            n_docs=raw.get("n_docs"),
            n_samples=raw.get("n_samples"),
            sampling=raw.get("sampling"),
            prompt_style=raw.get("prompt_style"),
            judges=dict(raw.get("judges") or {}),
            judgments=dict(raw.get("judgments") or {}),
            details={k: v for k, v in raw.items() if k not in known | {"comparable"}},
            comparable=comparable,
        )


@dataclass
class RunResult:
    """A run: what was run on which model, and every task's result. ``path``: the run folder it
    was written to or read from (documents.jsonl and samples.jsonl are read from there)."""

    run_id: str
    model: str
    tasks: dict[str, TaskResult]
    model_fingerprint: str | None = None
    backend: str | None = None
    dtype: str | None = None  # the numeric precision the samples were drawn in ("server": the server's own)
    config: dict[str, Any] = field(default_factory=dict)  # RunConfig.to_json() of the run
    versions: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    created: str | None = None
    cache: dict[str, int] = field(default_factory=dict)  # hits, generated
    timing: dict[str, Any] = field(default_factory=dict)  # total_s, generation_s, tasks: {TASK: {...}}
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why its data could not be had
    schema_version: int = SCHEMA_VERSION  # of the file it was read from (0: written before versions)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields of the file this version does not know

    def value(self, task: str, metric: str) -> float | None:
        """A task's metric as a float; None when the task or the value is missing or not a number."""
        entry = self.tasks.get(task)
        return None if entry is None else entry.value(metric)

    @property
    def total_samples(self) -> int:
        return sum(t.n_samples or 0 for t in self.tasks.values())

    def documents(self) -> list[dict[str, Any]]:
        """Per-document metric values (documents.jsonl); none for a hand-written baseline. A
        malformed row is one clear error naming the file and row."""
        rows = _rows(self.path, DOCUMENTS_FILE)
        for number, row in enumerate(rows, 1):
            _check_document_row(row, f"{self.path / DOCUMENTS_FILE if self.path else DOCUMENTS_FILE} row {number}")
        return rows

    def samples(self) -> list[dict[str, Any]]:
        """Per-sample prompts, completions and scores (samples.jsonl); none for a hand-written baseline."""
        rows = _rows(self.path, SAMPLES_FILE)
        for number, row in enumerate(rows, 1):
            where = f"{self.path / SAMPLES_FILE if self.path else SAMPLES_FILE} row {number}"
            if not isinstance(row, dict) or not isinstance(row.get("task"), str):
                raise EvalkitError(f"{where}: not a sample row (needs 'task')")
            for key, kind in (("sample_index", int), ("prompt", str), ("completion", str)):
                if key in row and (not isinstance(row[key], kind) or isinstance(row[key], bool)):
                    raise EvalkitError(f"{where}: {key!r} must be {kind.__name__}, got {shown(row[key])}")
        return rows

    def to_json(self) -> dict[str, Any]:
        """The results.json content."""
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "backend": self.backend,
            "dtype": self.dtype,
            "config": self.config,
            "versions": self.versions,
            "seed": self.seed,
            "created": self.created,
            "cache": self.cache,
            "timing": self.timing,
            "tasks": {name: entry.to_json() for name, entry in self.tasks.items()},
            "skipped": self.skipped,
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: Any, file: Path) -> RunResult:
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
            raise EvalkitError(f"{file} is not an evalkit results file (no 'tasks' mapping)")
        version = data.get("schema_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise EvalkitError(f"{file}: schema_version must be an integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise EvalkitError(
                f"{file} has results schema {version!r}, newer than this evalkit reads ({SCHEMA_VERSION}): "
                "upgrade evalkit"
            )
        tasks = {str(t): TaskResult.from_json(e, f"{file}: task {shown(t)}") for t, e in data["tasks"].items()}
        for key in ("config", "versions", "cache", "timing", "skipped"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise EvalkitError(f"{file}: {key!r} must be a mapping, got {shown(data[key])}")
        fields = {
            "model_fingerprint", "backend", "dtype", "config", "versions", "seed", "created", "cache", "timing",
            "skipped",
        }  # fmt: skip
        return cls(
            run_id=str(data.get("run_id") or (file.parent.name if file.name == RESULTS_FILE else file.stem)),
            model=str(data.get("model") or "?"),
            tasks=tasks,
            **{k: data[k] for k in fields if data.get(k) is not None},
            schema_version=version,
            path=file.parent,
            extra={k: v for k, v in data.items() if k not in fields | {"schema_version", "run_id", "model", "tasks"}},
        )


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "evalkit": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def json_safe(value: Any) -> Any:
    """NaN and infinities become null: results.json stays valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def document_id(doc: dict[str, Any]) -> str:
    """A stable name for a document from its content: runs pair documents by it, whatever their order or limit."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def ensure_writable(output_dir: Path, run_id: str | None = None) -> None:
    """Fail before any work when results could not be written at the end: the folder (and the
    run's folder) are created and a probe file is written, synced and removed there, and what the
    probe created is removed again. A permission check alone is not enough: ``/proc/x`` and a
    full or read-only file system pass it."""
    folder = output_dir / run_id if run_id else output_dir
    created = []
    existing = folder.absolute()
    while not existing.exists():  # the folders that the probe creates, removed again after it
        created.append(existing)
        existing = existing.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".evalkit-probe-")
        try:
            os.write(fd, b"evalkit")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise EvalkitError(
            f"output dir {output_dir} is not writable: {exc.strerror or exc} ({exc.filename or folder})"
        ) from None
    finally:
        for path in created:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    return (json.dumps(json_safe(row), ensure_ascii=False) + "\n" for row in rows)


def write_run(
    run_dir: Path, result: RunResult, samples: Iterable[dict[str, Any]], documents: Iterable[dict[str, Any]]
) -> None:
    """samples.jsonl and documents.jsonl (per-document metric values) first, results.json last:
    a run folder with results.json is complete. Sets ``result.path``."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(run_dir / SAMPLES_FILE, _jsonl(samples))
        _atomic_write(run_dir / DOCUMENTS_FILE, _jsonl(documents))
        text = json.dumps(json_safe(result.to_json()), indent=2, ensure_ascii=False) + "\n"
        _atomic_write(run_dir / RESULTS_FILE, [text])
    except OSError as exc:
        raise EvalkitError(
            f"cannot write results to {run_dir}: {exc.strerror or exc}; generations are cached, re-run to write them"
        ) from None
    result.path = run_dir


def load_results(path: Path | str) -> RunResult:
    """A run's results, given its folder or results file (JSON, or YAML for a hand-written baseline)."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
        data = load_yaml(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
    except FileNotFoundError:
        raise EvalkitError(f"no results found at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise EvalkitError(f"cannot read results {file}: {' '.join(str(exc).split())}") from None
    return RunResult.from_json(data, file)


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_document_row(row: Any, where: str) -> None:
    if not (isinstance(row, dict) and isinstance(row.get("task"), str) and isinstance(row.get("metrics"), dict)):
        raise EvalkitError(f"{where}: not a document row (needs 'task' and a 'metrics' mapping)")
    weights = row.get("weights") or {}
    if not isinstance(weights, dict):
        raise EvalkitError(f"{where}: 'weights' must be a mapping, got {shown(weights)}")
    for name, value in (*row["metrics"].items(), *weights.items()):
        if not _number(value):
            raise EvalkitError(f"{where}: {shown(name)} is {shown(value)}, not a number")


def _rows(run_dir: Path | None, name: str) -> list[dict[str, Any]]:
    """The rows of a run's jsonl file; an empty list when the run has none (a hand-written baseline)."""
    file = run_dir / name if run_dir is not None else None
    return read_records(file) if file is not None and file.is_file() else []
