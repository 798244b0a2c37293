"""The fork server of a sandbox worker: the process every program of the worker is forked from.

The worker (evalkit/sandbox/_zygote.py) forks it before reading any program, so its memory never
holds one: a program's compiled code travels in a memory file that only the program's own process
reads, after the fork. Per program it receives that file, a memory file for the output and the
limits; it forks, waits up to the time limit, kills what the program left, and answers with the
program's wait status. It is root when evalkit is, and the program's uid can neither signal it nor
read its memory or descriptors (it is not dumpable).

How a program starts with nothing of the harness under it. A Python function that forks and then
runs the program would leave its own frame under the program, and with it whatever the harness
holds (a program could then call the harness's functions through `sys._getframe(1)`). So the fork
server's loop runs in a thread whose target is a chain of C callables,
`list(map(finish, starmap(os.fork, map(prepare, iter(next_job, None)))))`: its Python steps return
before each fork, so no Python frame exists in that thread when it forks. In the child that thread
is the only one, and CPython runs the `os.register_at_fork(after_in_child=...)` callbacks from
inside `os.fork`, still without a frame. Those callbacks are `functools.partial` objects re-pointed
(``__setstate__``) for each program to:

1. ``RUN``: `list(chain(starmap(_enter, ...), starmap(exec, zip(codes, namespaces)),
   starmap(_passed, ...)))`: set up the process (`_enter` returns before the program starts), run
   the program as the bottom frame of its process, then exit with EXIT_PASSED. An exception stops
   the chain; CPython hands it to `sys.unraisablehook`, which is a list's `append`.
2. ``FAIL``: picks the exit status from the exception (raised, SystemExit, MemoryError).
3. ``PRINT``: `sys.__excepthook__` (C) prints the traceback. It calls the exception's `__str__`
   with no Python frame under it.
4. ``EXIT``: `os._exit` with that status.

The functions of this module check that they run in the program's own process, so a process the
program forks (the callbacks run again there) goes on as a plain fork.
"""

import _thread
import builtins
import gc
import json
import marshal
import os
import resource
import select
import signal
import socket
import sys
import time
import types
from functools import partial
from itertools import chain, starmap
from operator import attrgetter

import _files
import _isolation
import _procs
from _protocol import EXIT_MEMORY, EXIT_PASSED, EXIT_RAISED, EXIT_SET_UP, EXIT_SYSTEM_EXIT

# Taken before any program runs: a program may delete builtins or patch os.
_getpid, _exit, _issubclass, _MemoryError, _SystemExit = os.getpid, os._exit, issubclass, MemoryError, SystemExit
_STREAMS, _EXCEPTHOOK = (sys.stdout, sys.stderr), sys.__excepthook__
_EXCEPTION = attrgetter("exc_type", "exc_value", "exc_traceback")
_MODULES = ("_fork_server", "_isolation", "_procs", "_files", "_protocol")
_NO_OP = (int, (), {}, None)
RUN, FAIL, PRINT, EXIT = (partial(int) for _ in range(4))
_SERVER_PID, _FINISHED = [], []  # set by serve()


class _Program:
    """One program's state: filled in by the fork server, used in the program's process."""

    def __init__(self, job, code_fd, out_fd):
        self.job, self.code_fd, self.out_fd = job, code_fd, out_fd
        self.pid = None  # the program's process, once it runs
        self.codes, self.namespaces = [], []  # filled by _enter, read lazily by RUN
        self.errors, self.to_print, self.exit_args = [], [], []
        self.parts = ()  # the iterators of RUN, kept alive while a forked copy re-enters them
        self.started = 0.0


def _flush():
    for stream in _STREAMS:
        try:
            stream.flush()
        except BaseException:  # a closed or size-limited stream: output lost, verdict kept
            pass


def _read_all(fd):
    size, data = os.fstat(fd).st_size, b""
    while len(data) < size:
        chunk = os.pread(fd, size - len(data), len(data))
        if not chunk:
            break
        data += chunk
    return data


def _enter(program):
    """In the program's process: session, namespaces, descriptors, uid, limits, a fresh __main__."""
    try:
        job = program.job
        os.setsid()
        workdir = _isolation.isolate_program(job["uid"]) if job["isolated"] else job["workdir"]
        os.chdir(workdir)
        code = marshal.loads(_read_all(program.code_fd))
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(program.out_fd, 1)
        os.dup2(program.out_fd, 2)
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        if job["uid"] >= 0:
            _isolation.drop_privileges(job["uid"])
        _isolation.prctl(_isolation.PR_SET_NO_NEW_PRIVS, 1)
        _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        if os.getppid() != job["server"]:
            _exit(EXIT_SET_UP)  # the fork server died meanwhile
        for limit, soft, hard in (
            (resource.RLIMIT_CPU, job["cpu_s"], job["cpu_s"] + 1),  # SIGXCPU, then SIGKILL
            (resource.RLIMIT_AS, job["as_bytes"], job["as_bytes"]),
            (resource.RLIMIT_FSIZE, job["file_bytes"], job["file_bytes"]),  # also caps the output
            (resource.RLIMIT_NPROC, job["nproc"], job["nproc"]),
            (resource.RLIMIT_CORE, 0, 0),
        ):
            resource.setrlimit(limit, (soft, hard))
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir  # besides PATH and PYTHONHASHSEED
        sys.argv[:] = ["program.py"]
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        for name in _MODULES:
            sys.modules.pop(name, None)
        sys.modules["__main__"] = main
        sys.unraisablehook = program.errors.append
        program.pid = _getpid()
        program.codes.append(code)
        program.namespaces.append(main.__dict__)
    except BaseException:
        _exit(EXIT_SET_UP)


def _passed(program):
    if _getpid() == program.pid:
        _flush()
        _exit(EXIT_PASSED)


def _failed(program):
    if _getpid() != program.pid:
        return
    status = EXIT_RAISED
    if program.errors:
        kind = program.errors[-1].exc_type
        if _issubclass(kind, _MemoryError):
            status = EXIT_MEMORY
        elif _issubclass(kind, _SystemExit):
            status = EXIT_SYSTEM_EXIT
    program.to_print.extend(program.errors)
    _flush()
    program.exit_args.append((status,))


def _forked_child_ends():
    """The end of the fork server's loop. In the fork server (the worker closed it) it wakes the
    main thread. In a process the program forked, that ran back into the loop, it ends the process
    as a forked Python process would end: 1 with a traceback after an uncaught exception, else 0."""
    if _getpid() == _SERVER_PID[0]:
        _FINISHED[0]()
        return
    errors = getattr(sys.unraisablehook, "__self__", None)
    if isinstance(errors, list) and errors:
        try:
            _EXCEPTHOOK(*_EXCEPTION(errors[-1]))
        finally:
            _flush()
            _exit(1)
    _flush()
    _exit(0)


def _arm(program):
    program.parts = (
        starmap(_enter, [(program,)]),
        starmap(exec, zip(program.codes, program.namespaces)),
        starmap(_passed, [(program,)]),
    )
    RUN.__setstate__((list, (chain(*program.parts),), {}, None))
    FAIL.__setstate__((_failed, (program,), {}, None))
    PRINT.__setstate__((list, (starmap(_EXCEPTHOOK, map(_EXCEPTION, program.to_print)),), {}, None))
    EXIT.__setstate__((list, (starmap(_exit, program.exit_args),), {}, None))


def _disarm():
    for hook in (RUN, FAIL, PRINT, EXIT):
        hook.__setstate__(_NO_OP)


class _Server:
    """The loop of the fork server. It runs in a thread whose target is C callables only,
    `list(map(finish, starmap(os.fork, map(prepare, iter(next_job, None)))))`: the Python steps
    return before each fork, so a child starts without frames. The main thread only sleeps."""

    def __init__(self, sock, isolated, base):
        self.sock, self.isolated, self.base = sock, isolated, base
        self.pid = os.getpid()
        self.program = None

    def next_job(self):
        """The next program from the worker, or None when it closed (or in a forked child)."""
        if _getpid() != self.pid:
            return None
        try:
            message, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 2)
            if not message or len(fds) != 2:
                return None
            job = json.loads(message)
            job.update(isolated=self.isolated, workdir=None, server=self.pid)
            if not self.isolated:
                job["workdir"] = _files.new_folder(self.base)
                if job["uid"] >= 0:
                    os.chown(job["workdir"], job["uid"], job["uid"])
            return _Program(job, *fds)
        except BaseException:
            _exit(1)  # the worker sees the fork server gone and reports it

    def prepare(self, program):
        """Arm the callbacks for ``program``; the arguments of os.fork."""
        self.program, program.started = program, time.monotonic()
        _arm(program)
        return ()

    def finish(self, pid):
        """In the fork server: wait up to the time limit, kill what the program left, answer."""
        if pid == 0:
            return  # a child the program forked, going on as a plain fork
        try:
            _disarm()
            program, self.program = self.program, None
            os.close(program.code_fd)
            os.close(program.out_fd)
            self.sock.send(json.dumps(_wait(pid, program)).encode())
        except BaseException:
            _exit(1)

    def run(self):
        jobs = map(self.prepare, iter(self.next_job, None))
        loop = map(self.finish, starmap(os.fork, jobs))
        _thread.start_new_thread(list, (chain(loop, starmap(_forked_child_ends, [()])),))


def _wait(pid, program):
    """Wait for the program's process up to its time limit, kill what it left; its wait status."""
    job = program.job
    pidfd = os.pidfd_open(pid)
    try:
        timed_out = not select.select([pidfd], [], [], job["timeout_s"])[0]
    finally:
        os.close(pidfd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - program.started
    # Every process the program left is our descendant (we are a subreaper): with no child left,
    # nothing is; else sweep its uid (exact: none of them can change uid) or our children.
    if not _procs.reap():
        if job["uid"] >= 0:
            _procs.kill_uid(job["uid"])
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            _procs.kill_all(lambda: _procs.children_of(os.getpid()))
        _procs.reap()
    if job["workdir"]:
        _files.remove_tree(job["workdir"])
    cpu = usage.ru_utime + usage.ru_stime
    return {"status": status, "cpu": cpu, "timed_out": timed_out, "seconds": seconds}


def _server_failed(unraisable):
    """The loop's thread raised (a fork refused): end the fork server, so the worker reports it
    at once instead of waiting out the time limit."""
    sys.__excepthook__(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
    _exit(1)


# Modules HumanEval and MBPP programs import, loaded once here rather than in every program (typing
# alone costs a few milliseconds); a program that imports one finds it in sys.modules.
PRELOAD = ("typing", "math", "re", "collections", "heapq", "bisect", "itertools", "functools", "string", "copy")


def serve(sock, isolated, base):
    """Answer the worker's requests on ``sock`` until it closes: one message per program, with its
    code and output memory files attached. Returns when the worker closes it."""
    for name in PRELOAD:
        __import__(name)
    gc.freeze()  # what is loaded now is never traversed by a program's collections (no copy on write)
    _isolation.prctl(_isolation.PR_SET_CHILD_SUBREAPER, 1)
    _isolation.one_malloc_arena()  # before the loop's thread starts
    sys.unraisablehook = _server_failed
    for hook in (RUN, FAIL, PRINT, EXIT):
        os.register_at_fork(after_in_child=hook)
    done = _thread.allocate_lock()
    done.acquire()
    server = _Server(sock, isolated, base)
    _SERVER_PID.append(server.pid)
    _FINISHED.append(done.release)
    server.run()
    done.acquire()
