"""A program's verdict, decided in evalkit's own process from what its worker saw from outside:
the wait status of the program's process, its CPU time, whether the time limit struck, and the
start and end of its output."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Literal

from evalkit.sandbox._protocol import EXIT_MEMORY, EXIT_PASSED, EXIT_RAISED, EXIT_SET_UP, EXIT_SYSTEM_EXIT

Status = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True)
class ExecResult:
    status: Status
    reason: str = ""
    seconds: float = 0.0
    output: str = ""  # the first 2,000 characters of stdout and stderr

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def exception_line(tail: str) -> str:
    """The exception a traceback ends with (its message may span lines), else the last line."""
    lines = tail.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "Traceback (most recent call last):"]
    body = lines[starts[-1] + 1 :] if starts else lines[-1:]
    first = next((i for i, line in enumerate(body) if line and not line[0].isspace()), len(body))
    return " ".join(line.strip() for line in body[first:] if line.strip())[:300]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # real-time signals have no name in the enum
        return f"signal {number}"


def _classify(reply: dict, cpu_s: int) -> tuple[Status, str]:
    if "compile_error" in reply:
        return "failed", reply["compile_error"]
    if reply["timed_out"]:
        return "timeout", "wall-clock time limit"
    code = os.waitstatus_to_exitcode(reply["status"])
    exception = exception_line(reply["tail"])
    if code == EXIT_PASSED:
        return "passed", ""
    if code == EXIT_RAISED:
        return "failed", exception or "raised an exception"
    if code == EXIT_SYSTEM_EXIT:
        return "failed", f"exited before the tests finished ({exception or 'SystemExit'})"
    if code == EXIT_MEMORY:
        return "error", "memory limit"
    if code == EXIT_SET_UP:
        return "error", "sandbox failure: the program's process could not be set up"
    # The CPU limit sends SIGXCPU, then SIGKILL one second later to a program that ignores it.
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and reply["cpu"] >= cpu_s):
        return "timeout", "CPU time limit"
    if code == -signal.SIGXFSZ:
        return "error", "output or file size limit"
    if code < 0:
        return "error", f"killed by {_signal_name(-code)}"
    return "failed", f"exited with code {code} before the tests finished"


def verdict(reply: dict, cpu_s: int) -> ExecResult:
    """The result of one program from its worker's report (``cpu_s``: its CPU-time limit)."""
    status, reason = _classify(reply, cpu_s)
    return ExecResult(status, reason, float(reply.get("seconds", 0.0)), reply.get("output", ""))
