"""The process that runs one untrusted program (started by evalkit.sandbox, never imported).

It runs with `python -I -S` so that no site packages or user paths load, and sets up its own cage
before touching the program: resource limits, an empty working directory, and, when started as
root, a private network namespace with no interfaces, private throwaway mounts over the
world-writable directories, and an unprivileged uid of its own. Then it executes the program in
fresh globals. It reports completion on a pipe with a nonce the program never sees, so
`sys.exit(0)` or `os._exit(0)` before the tests finish cannot pass for success.

argv: program path, result fd, uid (-1: stay), cpu seconds, address-space bytes, file bytes,
process limit. The nonce arrives on stdin, which is then replaced by /dev/null.
"""

import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 0x2, 0x4
WORLD_WRITABLE = (b"/tmp", b"/var/tmp", b"/dev/shm", b"/run/lock")


def _isolate_as_root(uid):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) == 0:
        libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        for path in WORLD_WRITABLE:
            if os.path.isdir(path):
                libc.mount(b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=16m,mode=1777")
        _expose_stdlib(libc)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _expose_stdlib(libc):
    """The interpreter may live where the sandbox uid cannot read (e.g. under /root with pyenv):
    bind-mount its prefix on the private /tmp and import the standard library from there."""
    prefix = sys.base_prefix
    target = "/tmp/.evalkit-python"
    if not os.path.isdir("/tmp") or prefix.startswith("/usr"):
        return
    os.mkdir(target, 0o755)
    if libc.mount(prefix.encode(), target.encode(), None, 0x1000 | MS_REC, None) == 0:  # MS_BIND
        sys.path[:] = [p.replace(prefix, target, 1) if p.startswith(prefix) else p for p in sys.path]
        for module in list(sys.modules.values()):  # packages already imported (encodings, ...)
            path = getattr(module, "__path__", None)
            if isinstance(path, list):
                path[:] = [p.replace(prefix, target, 1) if p.startswith(prefix) else p for p in path]


def main():
    program_path, result_fd = sys.argv[1], int(sys.argv[2])
    uid, cpu_s, as_bytes, file_bytes, nproc = (int(a) for a in sys.argv[3:8])
    nonce = sys.stdin.readline().strip()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    if uid >= 0:
        _isolate_as_root(uid)
    for limit, value in (
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_AS, as_bytes),
        (resource.RLIMIT_FSIZE, file_bytes),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
    write, real_exit = os.write, os._exit  # kept before the program can monkey-patch os
    streams = (sys.stdout, sys.stderr)

    def _exit(code):
        for stream in streams:
            try:
                stream.flush()
            except BaseException:  # a broken or size-limited stream: its output is lost, the verdict is not
                pass
        real_exit(code)

    try:
        code = compile(source, "program.py", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        write(result_fd, f"exit {exc.code!r}\n".encode())
        _exit(1)
    except MemoryError:
        write(result_fd, b"memory\n")
        _exit(1)
    except BaseException as exc:  # the program's own failure: an assertion, an exception
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        write(result_fd, f"raised {message}\n".encode(errors="replace"))
        _exit(1)
    write(result_fd, f"done {nonce}\n".encode())
    _exit(0)


main()
