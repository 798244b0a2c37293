"""What a program leaves behind is never followed, kept or run with privileges: planted links and
FIFOs, setuid binaries, System V and POSIX IPC objects. These need root (uid, namespaces), as in CI."""

from __future__ import annotations

import ctypes
import os
import signal
import uuid
from pathlib import Path
from textwrap import dedent

import pytest

from evalkit.sandbox import execute, execute_many

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="uid and namespace isolation need root (as in CI)")


def _plant(target_line: str) -> str:
    """A program that replaces every file it can name in its folder (and the old `.output`) with
    ``target_line``'s object, prints a line of its own and fails."""
    return dedent(f"""
        import os
        for name in set(os.listdir('.')) | {{'.output', 'output', 'stdout', 'stderr'}}:
            try:
                os.remove(name)
            except OSError:
                pass
            {target_line}
        print('own output')
        assert False
    """)


def test_links_and_fifos_the_program_plants_are_never_opened(monkeypatch):
    secret = f"evalkit-harness-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("EVALKIT_TEST_HARNESS_SECRET", secret)  # in this process's /proc/PID/environ
    shadow_first_line = Path("/etc/shadow").read_text().splitlines()[0]
    planted = [
        _plant("os.symlink('/etc/shadow', name)"),
        _plant(f"os.symlink('/proc/{os.getpid()}/environ', name)"),
        _plant("os.symlink('/proc/1/environ', name)"),
        _plant("os.mkfifo(name)"),
        _plant("os.symlink('/dev/zero', name)"),
    ]
    results = execute_many(["assert True", *planted, "assert 2 + 2 == 4"], workers=1, chunk=7, timeout_s=5)
    assert results[0].status == results[-1].status == "passed", results
    for result in results[1:-1]:
        assert result.status == "failed", result
        assert result.output.startswith("own output"), result
        assert shadow_first_line not in result.output and secret not in result.output, result


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_setuid_binaries_gain_nothing_and_outlive_nothing():
    marker = f"evalkit-setuid-{uuid.uuid4().hex}"
    program = dedent(f"""
        import ctypes, os, subprocess
        assert ctypes.CDLL(None).prctl(39, 0, 0, 0, 0) == 1, 'no_new_privs is not set'  # PR_GET_NO_NEW_PRIVS
        for path in ('/', '/usr/bin', '/tmp', '.'):
            assert os.statvfs(path).f_flag & os.ST_NOSUID, path + ' is not nosuid'
        for binary in ('/usr/bin/su', '/usr/bin/newgrp', '/usr/bin/passwd'):
            for _ in range(4):
                subprocess.Popen([binary, '-c', 'sleep 1000 # {marker}', 'root'], start_new_session=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run(['/usr/bin/su', '-c', 'id -u', 'root'], input=b'', capture_output=True)
        assert out.stdout != b'0\\n', 'su ran a command as root'
    """)
    try:
        result = execute(program, timeout_s=5)
        assert result.status == "passed", result
        assert _processes_with(marker) == [], "a process the program started outlived it"
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


_libc = ctypes.CDLL(None, use_errno=True)
IPC_RMID = 0


def _ipc_program(key: int, queue: str, create: bool) -> str:
    """Create (or look for) a SysV segment, queue and semaphore set under ``key`` and a POSIX queue."""
    flags = "0o1000 | 0o666" if create else "0"  # IPC_CREAT
    return dedent(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        created = {create}
        results = {{
            'shm': libc.shmget({key}, 64 << 20 if created else 0, {flags}),
            'msg': libc.msgget({key}, {flags}),
            'sem': libc.semget({key}, 1 if created else 0, {flags}),
            'mq': libc.mq_open(b'/{queue}', 0o102 if created else 2, 0o666, None),  # O_CREAT | O_RDWR
        }}
        for what, r in results.items():
            if created:
                assert r >= 0, (what, ctypes.get_errno())
            else:
                assert r == -1, (what, 'left by an earlier program')
        for kind in ('shm', 'msg', 'sem'):
            lines = open('/proc/sysvipc/' + kind).read().splitlines()
            assert created or len(lines) == 1, (kind, lines)
    """)


def test_ipc_objects_live_and_die_with_their_program():
    key = int(uuid.uuid4().hex[:7], 16)
    queue = f"evalkit-{uuid.uuid4().hex[:12]}"
    try:
        results = execute_many(
            [_ipc_program(key, queue, True), _ipc_program(key, queue, False), _ipc_program(key, queue, True)],
            workers=1,
            chunk=3,
            memory_mb=128,
        )
        assert [r.status for r in results] == ["passed"] * 3, results
        for kind in ("shm", "msg", "sem"):
            assert f"{key:10d}" not in Path(f"/proc/sysvipc/{kind}").read_text(), f"a {kind} object reached the host"
    finally:  # what a leaking sandbox left in this namespace
        _libc.shmctl(_libc.shmget(key, 0, 0), IPC_RMID, None)
        _libc.msgctl(_libc.msgget(key, 0), IPC_RMID, None)
        _libc.semctl(_libc.semget(key, 0, 0), 0, IPC_RMID)
        _libc.mq_unlink(f"/{queue}".encode())


def test_a_program_sees_only_its_own_processes():
    program = """
        import os
        mine = {p for p in os.listdir('/proc') if p.isdigit()}
        assert str(os.getpid()) in mine
        assert str(os.getppid()) not in mine, 'the harness is visible'
    """
    result = execute(dedent(program))
    assert result.status == "passed", result
