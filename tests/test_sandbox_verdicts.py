"""A verdict cannot be forged through the harness: the program's process holds no harness frame, no
report channel, no secret and no other program of its batch."""

from __future__ import annotations

import os
import uuid
from textwrap import dedent

import pytest

from evalkit.sandbox import execute, execute_many

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root (as in CI)")

# Every way the red team reached the harness, each followed by a failing test.
FORGERIES = {
    "call the harness's finish from its frame": """
        import sys
        f = sys._getframe(1)
        f.f_locals['finish']('done ' + f.f_locals['req']['nonce'], 0)
        assert False
    """,
    "walk the frames under the program": """
        import sys
        f = sys._getframe(1)
        while f is not None:
            for v in list(f.f_locals.values()):
                if callable(v) and getattr(v, '__name__', '') == 'finish':
                    v('done', 0)
            f = f.f_back
        assert False
    """,
    "reach the harness through a traceback": """
        try:
            1 / 0
        except ZeroDivisionError as e:
            f = e.__traceback__.tb_frame.f_back
            f.f_locals['finish']('done ' + f.f_locals['req']['nonce'], 0)
        assert False
    """,
    "reach the harness from __repr__ of a SystemExit argument": """
        import os, sys
        class Evil:
            def __repr__(self):
                f = sys._getframe(1)
                while f is not None:
                    if 'finish' in f.f_locals:
                        f.f_locals['finish']('done ' + f.f_locals['req']['nonce'], 0)
                    f = f.f_back
                os._exit(0)
            __str__ = __repr__
        raise SystemExit(Evil())
    """,
    "other threads' frames": """
        import sys
        for f in sys._current_frames().values():
            while f is not None:
                if 'finish' in f.f_locals:
                    f.f_locals['finish']('done ' + f.f_locals['req']['nonce'], 0)
                f = f.f_back
        assert False
    """,
    # Every 32-hex-digit string reachable from the program's objects, environment, argv and files,
    # written as a report to every open descriptor, then an early exit.
    "search everything for a nonce and report it on every descriptor": """
        import gc, os, re, sys
        hexes = set()
        def scan(v):
            if isinstance(v, bytes):
                v = v.decode('latin-1')
            if isinstance(v, str):
                hexes.update(re.findall('[0-9a-f]{32}', v))
        for o in gc.get_objects():
            items = o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple, set)) else ()
            for v in list(items):
                scan(v)
        for v in list(os.environ.values()) + sys.argv:
            scan(v)
        for name in os.listdir('.'):
            try:
                scan(open(name, 'rb').read())
            except OSError:
                pass
        for fd in [int(x) for x in os.listdir('/proc/self/fd')]:
            for h in hexes or ['']:
                try:
                    os.write(fd, f'done {h}\\n'.encode())
                except OSError:
                    pass
        os._exit(0)
    """,
    "exit 0 from a thread while the tests fail": """
        import os, threading, time
        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(0))).start()
        time.sleep(5)
        assert False
    """,
    "close every descriptor, then exit 0": """
        import os
        os.closerange(0, 1 << 16)
        os._exit(0)
    """,
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_program_cannot_forge_passed_through_the_harness(name):
    result = execute(dedent(FORGERIES[name]), timeout_s=10)
    assert result.status in {"failed", "error"}, (name, result)


def test_nothing_of_the_harness_lies_under_or_beside_the_program():
    program = """
        import os, sys
        assert sys._getframe().f_back is None, 'a frame under the program'
        assert len(sys._current_frames()) == 1, 'another thread'
        fds = set(os.listdir('/proc/self/fd'))
        assert len(fds - {'0', '1', '2'}) <= 1, fds  # the one listdir itself opened
        assert set(os.environ) <= {'PATH', 'PYTHONHASHSEED', 'HOME', 'TMPDIR', 'LC_CTYPE'}, set(os.environ)
        assert os.listdir('.') == [], os.listdir('.')
        import __main__
        assert __main__.__dict__ is globals(), 'the program is __main__'
        try:
            raise ValueError
        except ValueError as e:
            assert e.__traceback__.tb_frame.f_back is None
    """
    result = execute(dedent(program))
    assert result.status == "passed", result


def test_a_program_cannot_see_the_other_programs_of_its_batch():
    marker = f"evalkit-batch-mate-{uuid.uuid4().hex}"
    holder = f"secret = '{marker}'\nassert secret"
    # The searcher builds the marker at run time, so its own code holds only the pieces.
    searcher = dedent(f"""
        import gc, sys, types
        needle = '-'.join({marker.split("-")!r})
        def holds(v):
            if isinstance(v, bytes):
                return needle.encode() in v
            return isinstance(v, str) and v is not needle and needle in v
        seen = []
        for o in gc.get_objects():
            if isinstance(o, dict):
                items = list(o.values()) + list(o)
            elif isinstance(o, (list, tuple, set)):
                items = o
            elif isinstance(o, types.FunctionType):
                items = o.__code__.co_consts
            else:
                items = ()
            seen.extend(v for v in items if holds(v))
        for m in list(sys.modules.values()):
            seen.extend(v for v in vars(m).values() if holds(v))
        assert not seen, 'found another program of the batch'
    """)
    results = execute_many([holder, searcher, holder], workers=1, chunk=3)
    assert [r.status for r in results] == ["passed", "passed", "passed"], results


def _memory_of(pid: int) -> bytes:
    """Every readable mapping of a live process (as root)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or fields[-1].startswith("[v"):  # vsyscall, vvar, vdso
                continue
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


@needs_root
def test_the_process_programs_are_forked_from_never_holds_a_program():
    marker = f"evalkit-fork-source-{uuid.uuid4().hex}"
    reporter = "import os\nprint(os.getppid())"
    results = execute_many([f"secret = '{marker}'\nassert secret", reporter], workers=1, chunk=2)
    assert [r.status for r in results] == ["passed", "passed"], results
    forker = int(results[1].output.split()[0])
    memory = _memory_of(forker)
    assert len(memory) > 1 << 20  # the scan saw the process's heap
    assert marker.encode() not in memory and marker.encode("utf-16-le") not in memory


def test_exits_and_signals_are_reported_for_what_they_are():
    killed = execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert killed.status == "error" and "SIGKILL" in killed.reason, killed
    raised = execute("import signal\nsignal.raise_signal(signal.SIGKILL)")
    assert raised.status == "error" and "SIGKILL" in raised.reason, raised
    group = execute("import os, signal\nos.killpg(0, signal.SIGKILL)")
    assert group.status == "error" and "SIGKILL" in group.reason, group
    exited = execute("import os\nos._exit(0)\nassert False")
    assert exited.status == "failed" and "code 0" in exited.reason, exited
    system_exit = execute("import sys\nsys.exit(0)\nassert False")
    assert system_exit.status == "failed" and "SystemExit" in system_exit.reason, system_exit
    raised_late = execute("print('partial output')\nassert 1 == 2, 'wrong answer'")
    assert raised_late.status == "failed" and raised_late.reason == "AssertionError: wrong answer", raised_late
    assert raised_late.output.startswith("partial output")
    multi_line = execute("raise ValueError('first line\\nsecond line')")
    assert multi_line.status == "failed" and multi_line.reason.startswith("ValueError: first line"), multi_line
