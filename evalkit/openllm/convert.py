"""lm-eval's output -> evalkit's results.json task entry, documents.jsonl and samples.jsonl rows.

Metric names drop lm-eval's ``,none`` filter suffix (``acc,none`` -> ``acc``) and keep any other
filter (``exact_match,strict-match`` -> ``exact_match_strict-match``). Values are percentages, as
every evalkit accuracy is. A task made of several lm-eval tasks (MMLU's subjects) reports the
mean over all documents, each subject weighted by its size, as lm-eval's mmlu group does.
"""

from __future__ import annotations

import math
from typing import Any

from evalkit.results import TaskResult, document_id


def metric_name(key: str) -> str:
    name, _, filter_name = key.partition(",")
    return name if filter_name in ("", "none") else f"{name}_{filter_name}"


def _is_metric(key: str, value: Any) -> bool:
    return "," in key and "_stderr," not in key and isinstance(value, (int, float)) and not isinstance(value, bool)


def task_entry(raw: dict[str, Any], keep: tuple[str, ...] = (), group: str | None = None) -> TaskResult:
    """The task's metrics, standard errors, document count and lm-eval tasks from simple_evaluate's output.

    With ``group`` present in lm-eval's results (a group run from the hub), its own aggregate is
    used; otherwise the leaf tasks are pooled, weighted by their number of documents."""
    results, counts = raw["results"], raw.get("n-samples", {})
    leaves = [t for t in results if t in counts]
    n_docs = sum(int(counts[t]["effective"]) for t in leaves)
    sources = [group] if group and group in results and group not in counts else leaves
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for key in sorted({k for t in sources for k, v in results[t].items() if _is_metric(k, v)}):
        name = metric_name(key)
        if keep and name.split("_")[0] not in keep and name not in keep:
            continue
        if len(sources) == 1:
            value, err = results[sources[0]][key], results[sources[0]].get(key.replace(",", "_stderr,", 1))
        else:
            weights = [int(counts[t]["effective"]) for t in sources]
            value = sum(results[t][key] * w for t, w in zip(sources, weights)) / sum(weights)
            err = _pooled_stderr([results[t].get(key.replace(",", "_stderr,", 1)) for t in sources], weights)
        metrics[name] = 100.0 * value
        if isinstance(err, (int, float)) and math.isfinite(err):
            stderr[name] = 100.0 * err
    return TaskResult(metrics, stderr, n_docs, n_docs, details={"lm_eval_tasks": sorted(leaves)})


def _pooled_stderr(errors: list[Any], weights: list[int]) -> float | None:
    """Standard error of a size-weighted mean of independent means: sqrt(sum w_i^2 se_i^2) / sum w_i."""
    if any(not isinstance(e, (int, float)) for e in errors):
        return None
    return math.sqrt(sum((w * e) ** 2 for w, e in zip(weights, errors))) / sum(weights)


def document_rows(task: str, raw: dict[str, Any], keep: tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    """documents.jsonl rows (per-document metric values, in percent) and samples.jsonl rows
    (the context lm-eval built, the generation for generative tasks, the target)."""
    docs: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, Any]] = {}
    index = 0
    for lm_task, logged in sorted(raw.get("samples", {}).items()):
        for s in logged:
            doc_key = document_id({"lm_eval_task": lm_task, **s["doc"]})
            if doc_key not in docs:
                docs[doc_key] = {"task": task, "doc_index": index, "doc_id": doc_key, "metrics": {}}
                samples[doc_key] = {
                    "task": task,
                    "doc_index": index,
                    "doc_id": doc_key,
                    "sample_index": 0,
                    "lm_eval_task": lm_task,
                    "lm_eval_doc_id": s.get("doc_id"),
                    "prompt": _context(s),
                    "completion": _generation(s),
                    "target": s.get("target"),
                    "scores": {},
                }
                index += 1
            filter_name = s.get("filter", "none")
            for metric in s.get("metrics", []):
                value = s.get(metric)
                if isinstance(value, (int, float)) and not isinstance(value, bool) or isinstance(value, bool):
                    name = metric_name(f"{metric},{filter_name}")
                    if keep and metric not in keep and name not in keep:
                        continue
                    docs[doc_key]["metrics"][name] = 100.0 * float(value)
                    samples[doc_key]["scores"][name] = float(value)
    return list(docs.values()), list(samples.values())


def _context(sample: dict[str, Any]) -> str:
    args = sample.get("arguments")
    first = next(iter(args.values()), {}) if isinstance(args, dict) else (args[0] if args else None)
    if isinstance(first, dict):
        return str(first.get("arg_0", ""))
    if isinstance(first, (list, tuple)) and first:
        return str(first[0])
    return ""


def _generation(sample: dict[str, Any]) -> str:
    resps = sample.get("resps") or []
    if resps and isinstance(resps[0], list) and resps[0] and isinstance(resps[0][0], str):
        return resps[0][0]
    return ""
