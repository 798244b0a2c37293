"""Load a task's documents: a file shipped with the task, a local file under --data-dir, or the hub."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any, Protocol

from evalkit.config import DataSource
from evalkit.errors import DataError, DataUnavailable
from evalkit.resources import hf_offline, tasks_dir

Document = dict[str, Any]


class TaskWithData(Protocol):
    """A task that reads documents: its name, its data source and the file it was read from."""

    name: str
    data: DataSource
    source_file: Path | None


def load_documents(
    spec: TaskWithData, data_dir: Path | None = None, limit: int | None = None, answer_field: str | None = None
) -> list[Document]:
    """The task's documents (renamed and filtered as its data source says), the first ``limit``;
    ``answer_field``: every document must have it."""
    task_folder = spec.source_file.parent if spec.source_file else tasks_dir()
    docs = _load(spec.name, spec.data, data_dir, task_folder)
    if spec.data.fields:
        docs = [_rename(spec.name, d, spec.data.fields) for d in docs]
    if spec.data.filter:
        docs = [d for d in docs if all(_matches(d.get(k), v) for k, v in spec.data.filter.items())]
    if not docs:
        raise DataError(f"task {spec.name}: the data source holds no documents")
    if answer_field and any(answer_field not in d for d in docs):
        raise DataError(f"task {spec.name}: some documents lack the answer field '{answer_field}'")
    return docs[:limit] if limit is not None else docs


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        low, high = wanted.get("min"), wanted.get("max")
        try:
            return (low is None or value >= low) and (high is None or value <= high)
        except TypeError:
            return False
    if isinstance(wanted, list):
        return value in wanted
    return value == wanted


def _package_file(task: str, reference: str) -> Path:
    """``package/relative/path`` -> the file inside the installed package."""
    package, _, relative = reference.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(f"task {task}: its data comes with the package '{package}', which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"task {task}: data file not found in package {package}: {path}")
    return path


def _load(task: str, source: DataSource, data_dir: Path | None, task_folder: Path) -> list[Document]:
    if source.local and data_dir is not None:
        path = Path(data_dir) / source.local
        if not path.is_file():
            raise DataError(f"task {task}: data file not found: {path}")
        return read_records(path)
    if source.hub and not hf_offline("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        try:
            return _load_hub(task, source)
        except DataError as exc:
            if not (source.package or source.path):
                raise
            offline = f"the data shipped with {source.package}" if source.package else f"the shipped {source.path}"
            print(f"evalkit: {exc}; using {offline} instead", file=sys.stderr)
    if source.package:
        return read_records(_package_file(task, source.package))
    if source.path:
        path = task_folder / source.path
        if not path.is_file():
            raise DataError(f"task {task}: data file not found: {path}")
        return read_records(path)
    wanted = f"--data-dir DIR holding {source.local}" if source.local else "network access to the hub"
    raise DataUnavailable(f"task {task}: no data available offline; it needs {wanted}")


def _rename(task: str, doc: Document, fields: dict[str, str]) -> Document:
    """Add each renamed field; a document that already has the new name (a shipped file) keeps it."""
    missing = [src for new, src in fields.items() if new not in doc and src not in doc]
    if missing:
        raise DataError(f"task {task}: documents lack the field(s) {missing} named in data.fields")
    return {**doc, **{new: doc[src] for new, src in fields.items() if new not in doc}}


def read_records(path: Path) -> list[Document]:
    """Records of a .jsonl, .json, .csv or .txt file (optionally .gz); errors name the file and line."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if name.endswith(".jsonl"):
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: corrupt JSON line: {exc.msg}") from None
    elif name.endswith(".json"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: corrupt JSON: {exc.msg}") from None
        records = loaded if isinstance(loaded, list) else _columns_to_rows(path, loaded)
    elif name.endswith(".csv"):
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    elif name.endswith(".txt"):  # one document per non-empty line (MaliciousInstruct's format)
        records = [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    else:
        raise DataError(f"{path}: unsupported data format (use .jsonl, .json, .csv or .txt, optionally .gz)")
    if not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: every record must be a JSON object")
    return records


def _columns_to_rows(path: Path, loaded: Any) -> list[Document]:
    if isinstance(loaded, dict) and loaded and all(isinstance(v, list) for v in loaded.values()):
        lengths = {len(v) for v in loaded.values()}
        if len(lengths) == 1:
            keys = list(loaded)
            return [dict(zip(keys, row)) for row in zip(*loaded.values())]
    raise DataError(f"{path}: expected a list of records or a mapping of equal-length columns")


def _load_hub(task: str, source: DataSource) -> list[Document]:
    import datasets  # heavy; only when a hub source is used

    try:
        dataset = datasets.load_dataset(source.hub, source.subset, split=source.split)
    except Exception as exc:  # network, auth, missing split: all user-facing
        message = f"task {task}: cannot load {source.hub} from the hub: {type(exc).__name__}: {exc}"
        # Unreachable hub: the data cannot be had here (a suite run skips the task); anything else is an error.
        unreachable = isinstance(exc, (ConnectionError, TimeoutError)) or "LocalEntryNotFound" in str(exc)
        raise (DataUnavailable if unreachable else DataError)(message) from None
    return [dict(row) for row in dataset]
