"""Finding and killing the processes a program left: every process of a sandbox uid (as root), or
every child of the fork server (which is a subreaper, so orphans come back to it).

Imported both as ``evalkit.sandbox._procs`` and, by the workers, as ``_procs``.
"""

import os
import signal
import time


def _stat_fields(pid):
    """(state, ppid) of a live process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def processes_of(uid):
    """Live (not zombie) processes running as ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        fields = _stat_fields(entry.name)
        if fields and fields[0] != b"Z":
            pids.append(int(entry.name))
    return pids


def children_of(pid):
    """Live (not zombie) children of ``pid``."""
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and fields[1] == pid and fields[0] != b"Z":
                kids.append(int(entry.name))
    return kids


def kill_all(find, patience_s=5.0):
    """Stop, then kill, every process ``find()`` returns until it returns none (a fork bomb refills
    while its members are killed one by one). True when none is left."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        pids = find()
        if not pids:
            return True
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
    return not find()


def kill_uid(uid, patience_s=5.0):
    return kill_all(lambda: processes_of(uid), patience_s)


def reap():
    """Collect every exited child (the fork server inherits the program's orphans). True when no
    child is left at all, live or not."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False
