"""Folders of the sandbox on the host: a worker's own folder (locked while the worker lives), removal
without recursion or link following, and removal of folders left by runs that were killed.

Only workers without namespaces (non-root users, or root where namespaces are refused) keep a folder
on the host; an isolated worker's programs write only to their own throwaway mounts.
Imported both as ``evalkit.sandbox._files`` and, by the workers, as ``_files``.

Written by hand: ``shutil.rmtree`` recurses once per level (a program's 1,500-deep tree raised
RecursionError), and ``os.fwalk`` recurses too.
"""

import fcntl
import os
import stat
import time

PREFIX = "evalkit-sandbox-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(name, dir_fd):
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:  # a folder the program made unreadable (as the same, non-root user)
        os.chmod(name, 0o700, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _ids(fd):
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _empty(top_fd):
    """Empty the folder open at ``top_fd``, depth first, holding one more descriptor at a time.
    Going back up through ".." is checked against the identity recorded on the way down."""
    fd, names, ids = top_fd, [], [_ids(top_fd)]
    while True:
        sub = None
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    sub = entry.name
                    break
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
        if sub is not None:
            child = _open_dir(sub, fd)
            if names:
                os.close(fd)
            fd = child
            names.append(sub)
            ids.append(_ids(fd))
            continue
        if not names:
            return
        ids.pop()
        parent = top_fd if len(names) == 1 else os.open("..", _DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = parent
        if _ids(fd) != ids[-1]:
            if fd != top_fd:
                os.close(fd)
            raise OSError(f"a folder moved during removal: {'/'.join(names)}")
        os.rmdir(names.pop(), dir_fd=fd)


def new_folder(directory, prefix="", mode=0o700):
    """A new folder with a random name in ``directory`` (tempfile.mkdtemp without importing
    tempfile, whose random module would reseed itself in every forked program)."""
    while True:
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, mode)
            return path
        except FileExistsError:
            continue


def remove_tree(path):
    """Remove ``path`` and everything in it; links are removed, never followed. True on success."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        parent = os.open(folder, _DIR_FLAGS)
    except OSError:
        return not os.path.lexists(path)
    try:
        st = os.lstat(name, dir_fd=parent)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent)
            return True
        top = _open_dir(name, parent)
        try:
            _empty(top)
        finally:
            os.close(top)
        os.rmdir(name, dir_fd=parent)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
    finally:
        os.close(parent)


def make_locked_folder(directory):
    """A new folder for one worker, and a descriptor holding an exclusive lock on it for as long as
    the worker lives (the lock is how a later run tells a live folder from a stale one)."""
    path = new_folder(directory, PREFIX, 0o711)  # the programs' uid may pass through, not list
    fd = os.open(path, _DIR_FLAGS)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return path, fd


def _named_on_command_lines():
    """Every argument of every live process (a worker of an older version named its folder there)."""
    args = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    args.update(f.read().decode(errors="replace").split("\0"))
            except OSError:
                continue
    return args


def _locked(path):
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return True  # not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def clean_stale_folders(directory, min_age_s=60.0):
    """Remove the sandbox folders in ``directory`` that no live run owns: ours (same uid), older
    than ``min_age_s`` (a run that is starting may not hold its lock yet), unlocked, and named by no
    live process. Returns the folders removed (paths as strings)."""
    now, uid = time.time(), os.geteuid()
    candidates = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if entry.name.startswith(PREFIX) and stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            if now - st.st_mtime >= min_age_s:
                candidates.append(entry.path)
    if not candidates:
        return []
    named = _named_on_command_lines()
    removed = []
    for path in candidates:
        if str(path) not in named and not _locked(path) and remove_tree(path):
            removed.append(path)
    return removed
