"""`evalkit ARGS` for the tests, each in a process of its own, without paying the imports each time.

A command started with `python -m evalkit` spends 2-4 s importing torch, transformers and NLTK
(which pulls in scikit-learn) before it does anything; the suite runs about 280 commands. Here
each command still runs in a new process, with its own stdout, stderr, exit status, working
directory and environment, and its own atexit handlers and child processes: it is forked from a
server process (multiprocessing's forkserver) that imported those libraries once and never ran
anything. Python's own `-m` start is the only step left out.

A real `python -m evalkit` subprocess is used instead when the environment differs from the one
the server started with (a library may read a variable when it is imported), when a test asks for
a fresh process, or when EVALKIT_TEST_CLI_SUBPROCESS is set (runs the whole suite the slow way).
"""

from __future__ import annotations

import atexit
import locale
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

# Imported once in the server, before any fork; none of them runs anything at import.
PRELOAD = ["tests._cli_preload"]
# Variables pytest changes from test to test, which no command reads.
_IGNORED_VARIABLES = {"PYTEST_CURRENT_TEST"}

_REPO = str(Path(__file__).resolve().parent.parent)

_server_environment: dict[str, str] | None = None


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _IGNORED_VARIABLES}


def _context():  # noqa: ANN202 - multiprocessing's forkserver context
    global _server_environment
    context = multiprocessing.get_context("forkserver")
    if _server_environment is None:
        # The server imports tests._cli_preload from sys.path, whatever directory a test is in.
        if _REPO not in sys.path:
            sys.path.insert(0, _REPO)
        context.set_forkserver_preload(PRELOAD)
        _server_environment = _environment()
    return context


def can_fork(env: dict | None) -> bool:
    """Whether a forked command sees what a new process would: the same environment as the server's."""
    if os.environ.get("EVALKIT_TEST_CLI_SUBPROCESS"):
        return False
    _context()
    return {**_environment(), **(env or {})} == _server_environment


def _command(args: list[str], cwd: str, out: str, err: str) -> None:
    """In the forked process: what `python -m evalkit ARGS` does, then exit as Python would."""
    os.setsid()  # the command's own process group: a timeout kills its children too
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    os.chdir(cwd)
    sys.argv = ["evalkit", *args]
    code = 0
    try:
        from evalkit.cli import main

        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): Python prints it and exits 1
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - an uncaught exception: the traceback Python would print
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # what the interpreter runs at exit (multiprocessing's child skips it)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code & 0xFF)


def run_forked(args: tuple[str, ...], cwd: Path | None, timeout: float) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``evalkit ARGS`` in a forked process."""
    context = _context()
    with tempfile.TemporaryDirectory(prefix="evalkit-cli-") as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        # The test's working directory (a subprocess inherits it), not the server's.
        process = context.Process(target=_command, args=(list(args), str(cwd or os.getcwd()), out, err))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.join()
            raise subprocess.TimeoutExpired(["evalkit", *args], timeout)
        encoding = locale.getpreferredencoding(False)
        texts = [_read(path, encoding) for path in (out, err)]
        return process.exitcode, *texts


def _read(path: str, encoding: str) -> str:
    return Path(path).read_text(encoding=encoding, errors="replace") if os.path.exists(path) else ""
