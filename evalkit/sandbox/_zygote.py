"""A fork server for one sandbox worker (started by evalkit.sandbox as `python -I -S`, never imported).

Set-up, once per worker: when started as root, the zygote moves into a private network namespace
(no interfaces) and a private mount namespace in which /tmp, /var/tmp, /dev/shm and /run/lock are
fresh tmpfs mounts, the worker's base directory is bind-mounted at /tmp/work, and the Python
prefix at /tmp/.evalkit-python (readable by the unprivileged uid even when Python lives under
/root). Nothing a program does there reaches the host.

Then, per request (a JSON line on stdin), it forks a child that starts its own session, drops to
the worker's uid, sets its resource limits and executes the program in fresh globals, reporting
completion on a pipe with a nonce the program never sees (so `sys.exit(0)` or `os._exit(0)` before
the tests finish cannot pass). The zygote answers "pid N", waits for the child, removes what the
uid left in the shared tmpfs mounts, and answers with the exit code and the report.
"""

import json
import os
import resource
import shutil
import sys

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


def _child(req, report_fd, uid):
    os.setsid()
    os.chdir(req["workdir"])
    with open("program.py", encoding="utf-8") as f:
        source = f.read()
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
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONHASHSEED": "0"})
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
        exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
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


def main():
    uid, base = int(sys.argv[1]), sys.argv[2]
    seen_base = _isolate(base) if uid >= 0 else base
    reply = sys.stdout.buffer
    reply.write(f"ready {seen_base}\n".encode())
    reply.flush()
    for line in sys.stdin.buffer:
        req = json.loads(line)
        read_fd, report_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                _child(req, report_fd, uid)
            finally:
                os._exit(70)
        os.close(report_fd)
        reply.write(f"pid {pid}\n".encode())
        reply.flush()
        _, status = os.waitpid(pid, 0)
        os.set_blocking(read_fd, False)
        try:
            report = os.read(read_fd, 4096).decode("utf-8", errors="replace")
        except BlockingIOError:
            report = ""
        os.close(read_fd)
        if uid >= 0:
            _clean_scratch(uid)
        code = os.waitstatus_to_exitcode(status)
        reply.write((json.dumps({"code": code, "report": report.strip().split("\n")[0]}) + "\n").encode())
        reply.flush()


main()
