"""A fork server for one sandbox worker (started by evalkit.sandbox as `python -I -S`, never imported).

Set-up, once per worker: when started as root, the zygote moves into a private network namespace
(no interfaces) and a private mount namespace in which /tmp, /var/tmp, /dev/shm and /run/lock are
fresh tmpfs mounts, the worker's base directory is bind-mounted at /tmp/work, and the Python
prefix at /tmp/.evalkit-python (readable by the unprivileged uid even when Python lives under
/root). Nothing a program does there reaches the host.

Then, per request (a JSON line on stdin), it makes an empty working folder and forks a child that
starts its own session, drops to the worker's uid, sets its resource limits and executes the
program in fresh globals, reporting completion on a pipe with a nonce the program never sees (so
`sys.exit(0)` or `os._exit(0)` before the tests finish cannot pass). The zygote waits for the
child up to the time limit, kills its session and every process left under the uid, removes the
folder and what the uid left in the scratch mounts, and answers with one JSON line. The whole
cycle runs here, in one process per worker, so the caller only writes a request and reads a reply.
"""

import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_BIND, MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 0x1000, 0x4000, 0x40000, 0x2, 0x4
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
WORK, PYTHON = "/tmp/work", "/tmp/.evalkit-python"


def _isolate(base):
    """Private namespaces; returns the path under which the base directory is seen."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        return base
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    for path in SCRATCH:
        if os.path.isdir(path):
            libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777")
    os.mkdir(WORK, 0o711)
    if libc.mount(f"/proc/self/fd/{base_fd}".encode(), WORK.encode(), None, MS_BIND, None) != 0:
        return base
    os.close(base_fd)
    prefix = sys.base_prefix
    if not prefix.startswith("/usr"):
        os.mkdir(PYTHON, 0o755)
        if libc.mount(prefix.encode(), PYTHON.encode(), None, MS_BIND | MS_REC, None) == 0:
            _repath(prefix, PYTHON)
    return WORK


def _repath(old, new):
    sys.path[:] = [p.replace(old, new, 1) if p.startswith(old) else p for p in sys.path]
    for module in list(sys.modules.values()):  # packages already imported (encodings, ...)
        path = getattr(module, "__path__", None)
        if isinstance(path, list):
            path[:] = [p.replace(old, new, 1) if p.startswith(old) else p for p in path]


def _child(req, code, report_fd, uid, workdir):
    os.setsid()
    os.chdir(workdir)
    out = os.open(".output", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, report_fd)
    os.closerange(report_fd + 1, 1 << 16)
    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir  # the rest of the environment: PATH, PYTHONHASHSEED
    for limit, value in (
        (resource.RLIMIT_CPU, req["cpu_s"]),
        (resource.RLIMIT_AS, req["as_bytes"]),
        (resource.RLIMIT_FSIZE, req["file_bytes"]),
        (resource.RLIMIT_NPROC, req["nproc"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
    write, real_exit, streams = os.write, os._exit, (sys.stdout, sys.stderr)  # before the program can patch them

    def finish(report, code):
        for stream in streams:
            try:
                stream.flush()
            except BaseException:  # a broken or size-limited stream: output lost, verdict kept
                pass
        write(report_fd, report.encode(errors="replace") + b"\n")
        real_exit(code)

    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        finish(f"exit {exc.code!r}", 1)
    except MemoryError:
        finish("memory", 1)
    except BaseException as exc:  # the program's own failure: an assertion, an exception
        finish(f"raised {type(exc).__name__}: {exc}".replace("\n", " ")[:300], 1)
    finish(f"done {req['nonce']}", 0)


def _clean_scratch(uid):
    """Remove what the worker's uid left in the private scratch mounts (root-owned entries, such as
    the work and Python bind mounts, are never touched)."""
    for path in SCRATCH:
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def processes_of(uid):
    """Live (not zombie) processes running as ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(entry.path + "/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            pids.append(int(entry.name))
    return pids


def kill_uid(uid, patience_s=5.0):
    """Stop, then kill, every process of the sandbox uid until none is left (a fork bomb refills
    while its members are killed one by one)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        pids = processes_of(uid)
        if not pids:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass


def _run(req, uid, base):
    """One program, start to finish: returns the reply for the parent."""
    try:
        # Compiled here, before the fork: parsing executes nothing, and a child that compiles pays
        # for the parser's first allocations on fresh pages (about a millisecond per program).
        code = compile(req["program"], "program.py", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        message = f"raised {type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        return {"code": 1, "report": message, "timed_out": False, "output": ""}
    workdir = tempfile.mkdtemp(dir=base)
    if uid >= 0:
        os.chown(workdir, uid, uid)
    read_fd, report_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _child(req, code, report_fd, uid, workdir)
        finally:
            os._exit(70)
    os.close(report_fd)
    pidfd = os.pidfd_open(pid)
    timed_out = not select.select([pidfd], [], [], req["timeout_s"])[0]
    try:
        os.killpg(pid, signal.SIGKILL)  # the program's whole session, whether or not it finished
    except OSError:
        pass
    if uid >= 0:
        kill_uid(uid)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    os.set_blocking(read_fd, False)
    try:
        report = os.read(read_fd, 4096).decode("utf-8", errors="replace")
    except BlockingIOError:
        report = ""
    os.close(read_fd)
    try:
        with open(os.path.join(workdir, ".output"), "rb") as f:
            output = f.read(2000).decode("utf-8", errors="replace")
    except OSError:
        output = ""
    shutil.rmtree(workdir, ignore_errors=True)
    if uid >= 0:
        _clean_scratch(uid)
    code = os.waitstatus_to_exitcode(status)
    first = report.strip().split("\n")[0]
    return {"code": code, "report": first, "timed_out": timed_out, "output": output}


def main():
    uid, base = int(sys.argv[1]), sys.argv[2]
    seen_base = _isolate(base) if uid >= 0 else base
    reply = sys.stdout.buffer
    reply.write(b"ready\n")
    reply.flush()
    for line in sys.stdin.buffer:  # a request is a list of programs, answered by a list of replies
        replies = [_run(req, uid, seen_base) for req in json.loads(line)]
        reply.write((json.dumps(replies) + "\n").encode())
        reply.flush()


if __name__ == "__main__":
    main()
