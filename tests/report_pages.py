"""Constructed runs of a CE-vs-GEM comparison and a reader of the report's figures (its SVG)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

GSM8K_REFERENCE = "Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 18"


@dataclass(frozen=True)
class Fig:
    kind: str  # tradeoff, curve or bars
    task: str  # the section it is in
    svg: str


def figures(html: str) -> list[Fig]:
    """Every plot of the page, in order, with the task section it belongs to."""
    sections = [(m.start(), m.group(1)) for m in re.finditer(r'<h2 id="task-([^"]+)">', html)]
    out = []
    for m in re.finditer(r'<figure class="plot (\w+)">(.*?)</figure>', html, re.DOTALL):
        task = [name for start, name in sections if start < m.start()][-1]
        out.append(Fig(m.group(1), task, m.group(2)))
    return out


def _number(label: str) -> float:
    return float(label.replace("\u2212", "-"))


def ticks(svg: str, axis: str) -> list[list[float]]:
    """The tick labels of each axes of a figure on its x or y axis, as numbers."""
    per_axes = []
    for part in re.split(r'<g id="axes_\d+">', svg)[1:]:
        labels = re.findall(rf'<g id="{axis}tick_\d+">.*?<text[^>]*>([^<]*)</text>', part, re.DOTALL)
        per_axes.append([_number(label) for label in labels])
    return per_axes


def has_group(svg: str, gid: str) -> bool:
    """An artist the report named (an error bar, a band) is in the SVG and draws a path."""
    m = re.search(rf'<g id="{re.escape(gid)}">(.*?)</g>', svg, re.DOTALL)
    return m is not None and ("<path" in m.group(1) or "<use" in m.group(1))


def _task(metrics: dict[str, float], stderr: dict[str, float], n: int = 50) -> dict:
    return {"metrics": metrics, "stderr": stderr, "n_docs": n, "n_samples": 4 * n}


def _samples(task: str, rows: list[tuple[str, str, dict]]) -> list[dict]:
    return [
        {
            "task": task,
            "doc_index": 0,
            "doc_id": f"{task}-0",
            "sample_index": s,
            "prompt": "Natalia sold clips to 48 of her friends in April, and then half as many in May.",
            "completion": completion,
            "target": target,
            "scores": scores,
        }
        for s, (completion, target, scores) in enumerate(rows)
    ]


def ce_gem_run(folder: Path, run_id: str, lift: float) -> Path:
    """A run as a CE or GEM model gives it: gsm8k (quality, curves), poems (diversity and a judge's
    quality, values in a narrow band as seeds give them) and a task whose curve is all zero."""
    curves = {f"{fam}@{k}": 40.0 + lift + 8 * i for i, k in enumerate((1, 2, 4)) for fam in ("pass", "maj")}
    tasks = {
        "gsm8k": _task({"accuracy": 40.0 + lift, **curves}, {"accuracy": 2.0, **dict.fromkeys(curves, 2.5)}),
        "poems": _task(
            {"ngram_diversity": 81.0 + 2.5 * lift, "self_bleu": 30.0, "quality": 3.6 + 0.1 * lift, "mean_words": 80.0},
            {"ngram_diversity": 1.5, "self_bleu": 1.0, "quality": 0.2},
        ),
        "zeros": _task({f"pass@{k}": 0.0 for k in (1, 2, 4)}, {f"pass@{k}": 0.0 for k in (1, 2, 4)}),
    }
    run_dir = folder / run_id
    run_dir.mkdir(parents=True)
    results = {"run_id": run_id, "model": f"{run_id}-model", "backend": "hf", "seed": 1, "tasks": tasks}
    (run_dir / "results.json").write_text(json.dumps(results))
    rows = _samples(
        "gsm8k",
        [
            ("She sold 24 in May, 72 in all. The answer is: 18", GSM8K_REFERENCE, {"extracted": "18", "correct": 1.0}),
            ("I am not sure.", GSM8K_REFERENCE, {"extracted": None, "correct": 0.0, "answer_class": None}),
        ],
    )
    rows += _samples(
        "poems",
        [("Roses", None, {"self_bleu": 12.5, "quality": 4, "quality_status": "ok", "quality_answer": "4"})],
    )
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir
