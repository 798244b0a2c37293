"""Sandbox workers as seen from evalkit: starting one, sending it a batch, reading one answer per
program, and a pool of idle workers reused across calls.

As root, each worker has a uid of its own, claimed machine-wide for as long as the worker lives: a
sweep of "every process of this uid" after a program then kills that program's processes and never
those of another evalkit run on the same machine. The claim is an abstract unix socket named after
the uid; the kernel drops it when its last holder (evalkit or the worker) exits, so a killed run
leaves no claim behind.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from evalkit.sandbox._files import clean_stale_folders, remove_tree
from evalkit.sandbox._isolation import PR_SET_DUMPABLE, prctl
from evalkit.sandbox._procs import kill_uid
from evalkit.sandbox._verdicts import ExecResult, verdict

ZYGOTE = Path(__file__).with_name("_zygote.py")
UID_BASE, UID_COUNT = 61100, 800  # sandbox uids (no /etc/passwd entry needed)
OUTPUT_LIMIT = 1 << 20  # bytes a program may write (stdout, stderr and files together per file)
MAX_PROCESSES = 16


def claim_uid() -> tuple[int, socket.socket | None]:
    """A sandbox uid no live worker on this machine holds, and its claim; (-1, None) without root."""
    if os.geteuid() != 0:
        return -1, None
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0evalkit-sandbox-uid-{uid}")
        except OSError:
            claim.close()
            continue
        kill_uid(uid)  # processes of a run killed with all its workers
        return uid, claim
    raise OSError("every sandbox uid is in use")


class WorkerLost(Exception):
    """The worker died or stopped answering after answering for ``done`` programs (``started``:
    whether it had received the request, so that a program was running)."""

    def __init__(self, done: list[ExecResult], why: str, started: bool) -> None:
        super().__init__(why)
        self.done, self.started = done, started


class Worker:
    """One sandbox worker (evalkit/sandbox/_zygote.py), as root under its own ``uid``."""

    def __init__(self, uid: int, claim: socket.socket | None, isolated: bool = True) -> None:
        self.uid, self.claim = uid, claim
        argv = [sys.executable, "-I", "-S", str(ZYGOTE), str(uid), tempfile.gettempdir()]
        self.proc = subprocess.Popen(
            argv + ([] if isolated else ["--no-namespaces"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            start_new_session=True,
            pass_fds=[claim.fileno()] if claim else [],  # the claim outlives evalkit if the worker does
        )
        self.base: Path | None = None
        self._buffer = b""
        line = self._line(30.0)
        if line is None or not line.startswith("ready "):
            self.close()
            raise OSError("sandbox worker failed to start")
        ready = json.loads(line[len("ready ") :])
        self.isolated = ready["isolated"]
        self.base = Path(ready["base"]) if ready["base"] else None

    def _line(self, timeout: float) -> str | None:
        """The worker's next line, or None when none came within ``timeout`` seconds."""
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
        """Programs one after the other, each in its own process; one request, one answer each.
        Raises WorkerLost (with the results so far) when the worker dies or stalls."""
        timeout_s = timeout_s if timeout_s > 0 else 0.0  # a negative or NaN limit is no time at all
        cpu_s = max(1, int(timeout_s + 1))
        limits = {
            "timeout_s": timeout_s,
            "cpu_s": cpu_s,
            "as_bytes": max(1, int(memory_mb)) << 20,  # a negative limit would mean none
            "file_bytes": OUTPUT_LIMIT,
            "nproc": MAX_PROCESSES,
        }
        done: list[ExecResult] = []
        started = False
        try:
            self.proc.stdin.write((json.dumps([{"program": p, **limits} for p in programs]) + "\n").encode())
            self.proc.stdin.flush()
            started = True
            for _ in programs:
                line = self._line(timeout_s + 60.0)  # the worker enforces the limits
                if line is None:
                    raise OSError("sandbox worker did not answer")
                done.append(verdict(json.loads(line), cpu_s))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkerLost(done, str(exc), started) from exc
        return done

    def close(self) -> None:
        """Stop the worker, then sweep what it could not: its uid's processes, its folder."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        if self.uid >= 0:
            kill_uid(self.uid)
        if self.base is not None:
            remove_tree(self.base)


class Pool:
    """Idle workers, reused across calls (starting one costs a Python start-up), and the uids of
    the workers it closed, reused for new ones."""

    def __init__(self) -> None:
        self._idle: list[Worker] = []
        self._uids: list[tuple[int, socket.socket | None]] = []
        self._live: set[int] = set()
        self._lock = threading.Lock()
        self._started = False
        atexit.register(self.close)

    def take(self) -> Worker:
        dead = []
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                dead.append(worker)  # died while idle
            if not self._started:
                self._started = True
                clean_stale_folders(tempfile.gettempdir())  # left by runs killed with their workers
                if os.geteuid() != 0:
                    # Programs will run as this user: keep this process's memory, descriptors and
                    # environment (API keys) out of their reach through /proc.
                    prctl(PR_SET_DUMPABLE, 0)
            reused = self._uids.pop() if self._uids else None
        for worker in dead:
            self.discard(worker)
        uid, claim = reused or claim_uid()
        try:
            worker = Worker(uid, claim)
        except OSError:
            with self._lock:
                self._uids.append((uid, claim))
            raise
        with self._lock:
            self._live.add(uid)
        return worker

    def give(self, worker: Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def discard(self, worker: Worker) -> None:
        worker.close()
        with self._lock:
            self._live.discard(worker.uid)
            self._uids.append((worker.uid, worker.claim))

    def uids(self) -> set[int]:
        """The uids of this pool's live workers, idle or busy."""
        with self._lock:
            return set(self._live) - {-1}

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            self.discard(worker)


POOL = Pool()
