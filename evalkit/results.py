"""Result files: OUTPUT_DIR/<run_id>/results.json and samples.jsonl, written atomically."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from evalkit import __version__
from evalkit.errors import EvalkitError
from evalkit.yaml_files import load_yaml

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
DOCUMENTS_FILE = "documents.jsonl"
_VERSIONED = ("torch", "transformers", "datasets", "nltk", "sacrebleu", "accelerate")


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


def metric_value(entry: dict[str, Any] | None, metric: str) -> float | None:
    """A task entry's metric as a float; None when the task or the value is missing or NaN."""
    value = None if entry is None else entry["metrics"].get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def document_id(doc: dict[str, Any]) -> str:
    """A stable name for a document from its content: runs pair documents by it, whatever their order or limit."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def ensure_writable(output_dir: Path) -> None:
    """Fail before any work when results could not be written at the end; creates nothing."""
    existing = output_dir.absolute()
    while not existing.exists():  # the folder will be created inside its nearest existing ancestor
        existing = existing.parent
    if not existing.is_dir():
        raise EvalkitError(f"output dir {output_dir} is not writable: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EvalkitError(f"output dir {output_dir} is not writable: no write permission on {existing}")


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
    run_dir: Path, results: dict[str, Any], samples: Iterable[dict[str, Any]], documents: Iterable[dict[str, Any]]
) -> None:
    """samples.jsonl and documents.jsonl (per-document metric values) first, results.json last:
    a run folder with results.json is complete."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(run_dir / SAMPLES_FILE, _jsonl(samples))
        _atomic_write(run_dir / DOCUMENTS_FILE, _jsonl(documents))
        _atomic_write(run_dir / RESULTS_FILE, [json.dumps(json_safe(results), indent=2, ensure_ascii=False) + "\n"])
    except OSError as exc:
        raise EvalkitError(
            f"cannot write results to {run_dir}: {exc.strerror or exc}; generations are cached, re-run to write them"
        ) from None


def load_results(path: Path) -> dict[str, Any]:
    """results.json of a run, given the run folder or the file itself.

    A hand-written baseline file needs only ``{"tasks": {TASK: {"metrics": {...}}}}``."""
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
        data = load_yaml(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
    except FileNotFoundError:
        raise EvalkitError(f"no results found at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise EvalkitError(f"cannot read results {file}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise EvalkitError(f"{file} is not an evalkit results file (no 'tasks' mapping)")
    for task, entry in data["tasks"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise EvalkitError(f"{file}: task {task!r} has no 'metrics' mapping")
    data.setdefault("run_id", file.parent.name if file.name == RESULTS_FILE else file.stem)
    data.setdefault("model", "?")
    data["path"] = str(file.parent)
    return data


def _rows(file: Path) -> list[dict[str, Any]]:
    """The rows of a run's jsonl file; an empty list when the run has none (a hand-written baseline)."""
    from evalkit.data import read_records

    return read_records(file) if file.is_file() else []


def load_document_scores(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-document metric values of a loaded run (documents.jsonl beside its results.json)."""
    return _rows(Path(results["path"]) / DOCUMENTS_FILE)


def load_samples(results: dict[str, Any]) -> list[dict[str, Any]]:
    return _rows(Path(results["path"]) / SAMPLES_FILE)
