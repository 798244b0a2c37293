"""Namespaces, mounts and privileges for a sandbox worker (once) and for each program (per fork).

Once per worker, as root (``isolate_worker``): a network namespace without interfaces and a private
mount namespace in which every mount is nosuid, and where the Python prefix can be read by the
programs' uid even when it lives in a private folder such as /root. Per program (``isolate_program``,
in the program's own process before it drops root): a private mount and IPC namespace with fresh
tmpfs mounts over /tmp, /var/tmp, /dev/shm and /run/lock and a /proc that shows only the program's
own processes. The kernel frees those mounts and IPC objects when the program's last process exits,
so nothing is ever cleaned by walking the tree.

Imported by the workers (plain ``python -I -S`` scripts of this folder) as ``_isolation``.
libc is called through ctypes because Python 3.11 has no os.unshare, mount or prctl.
"""

import ctypes
import os
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x1, 0x2, 0x4, 0x8, 0x20
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_NOSUID, SYS_MOUNT_SETATTR = -100, 0x8000, 0x2, 442
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
WORK = "/tmp/work"  # the program's working folder, in its own /tmp

_libc = ctypes.CDLL(None, use_errno=True)
_mount_setattr = _libc.syscall
_mount_setattr.argtypes = [
    ctypes.c_long,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
    ctypes.c_void_p,
    ctypes.c_size_t,
]


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def prctl(option, value):
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _mount(source, target, fstype, flags, data=None):
    _check(_libc.mount(source, target.encode(), fstype, flags, data), f"mount {target}")


def isolate_worker():
    """The worker's own network and mount namespaces, every mount nosuid; False where refused."""
    if _libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        return False
    _mount(b"none", "/", None, MS_REC | MS_PRIVATE)
    # Linux 5.12+. Older kernels keep setuid bits on the host's mounts; no_new_privs still makes
    # them inert for the program.
    attr = _MountAttr(MOUNT_ATTR_NOSUID, 0, 0, 0)
    _mount_setattr(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    _expose(sys.base_prefix)
    return True


def _expose(prefix):
    """When a folder above ``prefix`` is closed to other users (pyenv's /root/.pyenv), cover the
    highest such folder with a tmpfs that holds only the path down to ``prefix`` (each step
    enterable, not listable) and bind ``prefix`` there, read-only. Paths stay the same, so imports,
    sys.executable and tracebacks work for the program's uid, and the rest of the folder is hidden."""
    parts = prefix.rstrip("/").split("/")
    ancestors = ["/".join(parts[: i + 1]) for i in range(1, len(parts) - 1)]
    closed = next((path for path in ancestors if not os.stat(path).st_mode & 0o001), None)
    if closed is None:
        return
    handle = os.open(prefix, os.O_PATH | os.O_DIRECTORY)  # reachable after ``closed`` is covered
    _mount(b"tmpfs", closed, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=711")
    path = closed
    for part in parts[len(closed.split("/")) :]:
        path += "/" + part
        os.mkdir(path, 0o711)
    _mount(f"/proc/self/fd/{handle}".encode(), prefix, None, MS_BIND | MS_REC)
    _mount(None, prefix, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.close(handle)


def isolate_program(uid):
    """In the program's process, still root: its own mount and IPC namespaces, fresh scratch, a
    private /proc; returns its working folder."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    for path in SCRATCH:
        if os.path.isdir(path):
            _mount(b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777")
    for hide in (b"hidepid=invisible", b"hidepid=2"):  # other users' processes (the harness) hidden
        if _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, hide) == 0:
            break
    os.mkdir(WORK, 0o700)
    os.chown(WORK, uid, uid)
    return WORK


def one_malloc_arena():
    """glibc gives each new thread its own heap, reserved up front: allocations inside it escape
    RLIMIT_AS. Programs start in such a thread, so the fork server keeps every thread on the main
    heap, whose growth the limit counts (M_ARENA_MAX = 1)."""
    _libc.mallopt(-8, 1)


def drop_privileges(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
