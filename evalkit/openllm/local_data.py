"""Local copies of the Open LLM benchmarks, converted to the schema of the hub datasets that
lm-eval's task configs read, so lm-eval's own prompts, choices and targets apply unchanged.

Each reader takes the --data-dir folder and returns split name -> records in the hub's schema:

- ARC-Challenge (``arc_challenge/ARC-Challenge-Test.jsonl``, AI2's original jsonl): allenai/ai2_arc
  ``{id, question, choices: {text, label}, answerKey}``; only the test split is local.
- MMLU (``mmlu/test/<subject>_test.csv`` and ``mmlu/dev/<subject>_dev.csv``, Hendrycks' headerless
  CSV ``question, A, B, C, D, answer``): cais/mmlu ``{question, subject, choices, answer: 0-3}``.
- TruthfulQA (``truthfulqa/mc_task_v0.json``, the original MC file from which the hub's
  ``multiple_choice`` config was made, same question order): ``{question, mc1_targets: {choices,
  labels}, mc2_targets: {choices, labels}}``, validation split.
- WinoGrande (``winogrande/dev.jsonl``, v1.1 dev = the hub's validation split): allenai/winogrande
  ``{sentence, option1, option2, answer}``.
- GSM8K (``gsm8k/test.jsonl``, OpenAI's file): openai/gsm8k ``{question, answer}``, test split.

Splits the local copies lack (ARC, WinoGrande and GSM8K train) change where few-shot examples
come from; evalkit/openllm/harness.py draws them from the evaluated split instead (lm-eval
leaves the evaluated document out of its own context), and the docs say so.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.data import read_records
from evalkit.errors import DataError

Records = list[dict[str, Any]]
LETTERS = "ABCD"


def _file(data_dir: Path, relative: str) -> Path:
    path = Path(data_dir) / relative
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return path


def _jsonl(path: Path) -> Records:
    return read_records(path)


def arc(data_dir: Path, **_: Any) -> dict[str, Records]:
    rows = []
    for r in _jsonl(_file(data_dir, "arc_challenge/ARC-Challenge-Test.jsonl")):
        q = r["question"]
        rows.append(
            {
                "id": r["id"],
                "question": q["stem"],
                "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
                "answerKey": r["answerKey"],
            }
        )
    return {"test": rows}


def winogrande(data_dir: Path, **_: Any) -> dict[str, Records]:
    rows = _jsonl(_file(data_dir, "winogrande/dev.jsonl"))
    keep = ("sentence", "option1", "option2", "answer")
    return {"validation": [{k: str(r[k]) for k in keep} for r in rows]}


def truthfulqa(data_dir: Path, **_: Any) -> dict[str, Records]:
    path = _file(data_dir, "truthfulqa/mc_task_v0.json")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: corrupt JSON: {exc}") from None

    def targets(answers: dict[str, int]) -> dict[str, list]:
        return {"choices": list(answers), "labels": [int(v) for v in answers.values()]}

    rows = [
        {"question": r["question"], "mc1_targets": targets(r["mc1_targets"]), "mc2_targets": targets(r["mc2_targets"])}
        for r in loaded
    ]
    return {"validation": rows}


def gsm8k(data_dir: Path, **_: Any) -> dict[str, Records]:
    rows = _jsonl(_file(data_dir, "gsm8k/test.jsonl"))
    return {"test": [{"question": r["question"], "answer": r["answer"]} for r in rows]}


def mmlu_subjects(data_dir: Path) -> list[str]:
    folder = Path(data_dir) / "mmlu" / "test"
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    return sorted(p.name[: -len("_test.csv")] for p in folder.glob("*_test.csv"))


def _mmlu_csv(path: Path, subject: str) -> Records:
    try:
        with path.open(encoding="utf-8", newline="") as f:  # newline="": fields hold U+0085 and the like
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    out = []
    for lineno, row in enumerate(rows, 1):
        if len(row) != 6 or row[5].strip() not in LETTERS:
            raise DataError(f"{path}:{lineno}: expected question, A, B, C, D, answer letter")
        out.append(
            {"question": row[0], "subject": subject, "choices": row[1:5], "answer": LETTERS.index(row[5].strip())}
        )
    return out


def mmlu(data_dir: Path, subject: str, **_: Any) -> dict[str, Records]:
    return {
        "test": _mmlu_csv(_file(data_dir, f"mmlu/test/{subject}_test.csv"), subject),
        "dev": _mmlu_csv(_file(data_dir, f"mmlu/dev/{subject}_dev.csv"), subject),
    }


# local format name (a task YAML's lm_eval.local) -> reader
READERS: dict[str, Callable[..., dict[str, Records]]] = {
    "arc": arc,
    "winogrande": winogrande,
    "truthfulqa": truthfulqa,
    "gsm8k": gsm8k,
    "mmlu": mmlu,
}
