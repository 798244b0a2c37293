"""The sandbox: statuses, isolation from everything outside its directory, no surviving process."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from evalkit.sandbox import _workers, execute, execute_many, processes_of
from tests.conftest import REPO
from tests.hostile_programs import HOSTILE

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="uid, network and mount isolation need root (as in CI)")


def _left_on_the_host() -> list[str]:
    """IPC objects and setuid helpers of the hostile programs, found outside the sandbox."""
    left = [
        line
        for kind in ("shm", "msg", "sem")
        for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        if line.split()[0] in {str(0x4556 + key) for key in range(4)}
    ]
    libc = ctypes.CDLL(None)
    libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    queue = libc.mq_open(b"/evalkit-hostile", os.O_RDONLY, 0, None)
    if queue >= 0:
        left.append("POSIX queue /evalkit-hostile")
        libc.mq_close(queue)
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"/usr/bin/su\0-c\0sleep 1000"):
                left.append(f"su process {proc.name}")
        except OSError:
            continue
    return left


def _sandbox_processes() -> list[int]:
    """Live processes under the uids of this test's sandbox workers."""
    return [pid for uid in _workers.POOL.uids() for pid in processes_of(uid)]


def test_basic_statuses():
    assert execute("assert sum([1, 2]) == 3").passed
    failed = execute("def f(x):\n    return x\nassert f(1) == 2, 'wrong'")
    assert failed.status == "failed" and "AssertionError: wrong" in failed.reason
    assert execute("while True: pass", timeout_s=0.5).status == "timeout"
    assert execute("x = bytearray(3 << 30)", memory_mb=256).status == "error"
    assert execute("def f(:\n  pass").status == "failed"  # a syntax error is the program's failure
    results = execute_many(["assert True", "assert False", "import math\nassert math.pi > 3"] * 4, workers=2)
    assert [r.status for r in results] == ["passed", "failed", "passed"] * 4


@needs_root
def test_hostile_programs_end_with_the_right_status_and_change_nothing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary.txt"
    canary.write_text("keep me")
    home_before = sorted(os.listdir(Path.home()))
    repo_before = sorted(os.listdir(REPO))
    assert len(HOSTILE) >= 30
    for name, template, expected in HOSTILE:
        program = template.format(canary=canary, outside=outside, repo=REPO)
        result = execute(program, timeout_s=2.0, memory_mb=512)
        assert result.status in expected, (name, result)
        assert canary.read_text() == "keep me" and oct(canary.stat().st_mode)[-3:] != "777", name
        assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"], name
        assert not Path("/tmp/evalkit-hostile.txt").exists() and not Path("/dev/shm/evalkit-hostile").exists(), name
        assert _sandbox_processes() == [], (name, "a process survived")
        assert _left_on_the_host() == [], name
        assert execute("assert 2 + 2 == 4").passed, (name, "the harness no longer works")
    assert sorted(os.listdir(Path.home())) == home_before and sorted(os.listdir(REPO)) == repo_before
    assert (REPO / "pyproject.toml").is_file()
    # A worker keeps no folder on the host (as root), or an empty one: each program's is removed.
    for worker in _workers.POOL._idle:
        assert worker.base is None or not any(worker.base.iterdir()), worker.base


def test_output_is_captured_and_capped():
    result = execute("print('hello')\nassert False")
    assert result.status == "failed" and result.output.startswith("hello")
    assert len(execute("print('x' * 100000)\nassert False").output) == 2000


def test_no_input_makes_the_sandbox_raise():
    programs = ["assert 1", b"assert 1", None, "x = '\ud800'", "\0", "(" * 100_000, "assert 2"]
    results = execute_many(programs, workers=1, chunk=7)
    assert [r.status for r in results] == ["passed", "error", "error", "failed", "failed", "failed", "passed"], results
    assert results[1].reason == "not a program: bytes"
    assert execute("while True: pass", timeout_s=-1).status == "timeout"
    assert execute("while True: pass", timeout_s=float("nan")).status == "timeout"
    assert execute("x = bytearray(50 << 20)", memory_mb=-5).status == "error"  # not "no limit"


def test_the_memory_limit_counts_every_allocation():
    """Small allocations too: a heap reserved for a thread before the limit was set must not hold them."""
    assert execute("x = [bytearray(4096) for _ in range(20_000)]", memory_mb=64).status == "error"  # 80 MB
    assert execute("x = bytearray(60 << 20)", memory_mb=64).status == "error"
    assert execute("x = [bytearray(4096) for _ in range(2_000)]", memory_mb=64).passed  # 8 MB
