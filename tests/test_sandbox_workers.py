"""Workers survive what programs do to them: deep trees, their own death (the batch is rerun on a
fresh worker), and a harness killed with SIGKILL (its folders are removed at the next start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from textwrap import dedent

import pytest

from evalkit.sandbox import _workers, execute_many, processes_of
from tests.conftest import REPO

DEEP = "import os\nfor i in range({depth}):\n    os.mkdir('d')\n    os.chdir('d')\nopen('leaf', 'w').write('x')"


def test_a_deep_directory_tree_breaks_nothing():
    deep = DEEP.format(depth=1500)
    deep_scratch = "import os\nos.chdir('/tmp')\n" + DEEP.format(depth=3000)
    results = execute_many(["assert 1", deep, deep_scratch, "assert 2 == 2"], workers=1, chunk=4, timeout_s=10)
    assert [r.status for r in results] == ["passed"] * 4, results


def test_a_worker_without_namespaces_removes_deep_trees_and_planted_links(tmp_path, monkeypatch):
    """The path non-root users get: the worker's own folder, cleaned without recursion or links."""
    monkeypatch.setattr(_workers.tempfile, "tempdir", str(tmp_path))
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me")
    worker = _workers.Worker(*_workers.claim_uid(), isolated=False)
    try:
        assert worker.base is not None and worker.base.parent == tmp_path
        linker = f"import os\nos.symlink('{tmp_path}', 'up')\nos.symlink('{canary}', 'c')\nos.mkfifo('f')"
        results = worker.run([DEEP.format(depth=1500), linker, "assert 1"], timeout_s=10, memory_mb=512)
        assert [r.status for r in results] == ["passed"] * 3, results
        assert list(worker.base.iterdir()) == []
        assert canary.read_text() == "keep me"
    finally:
        worker.close()
    assert not worker.base.exists()


def test_iterative_removal_of_a_tree_deeper_than_the_recursion_limit(tmp_path):
    from evalkit.sandbox._files import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    root = tmp_path / "tree"
    # os.makedirs recurses too; build the chain one level at a time from a descriptor.
    fd = os.open(tmp_path, os.O_RDONLY)
    for name in ["tree"] + ["d"] * (sys.getrecursionlimit() * 3):
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.symlink(outside, "link", dir_fd=fd)
    os.mkfifo("fifo", dir_fd=fd)
    os.close(fd)
    assert remove_tree(root)
    assert not root.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def _alive(uids: set[int]) -> list[int]:
    return [pid for uid in uids for pid in processes_of(uid)]


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_worker_that_dies_before_a_call_costs_no_verdict():
    workers = [_workers.POOL.take() for _ in range(2)]
    for worker in workers:
        worker.proc.kill()
        worker.proc.wait()
        _workers.POOL.give(worker)
    results = execute_many(["assert 1"] * 6 + ["assert 0"], workers=2, chunk=3)
    assert [r.status for r in results] == ["passed"] * 6 + ["failed"], results


@pytest.mark.skipif(os.geteuid() != 0, reason="finding the running program by its uid needs root")
def test_a_worker_that_dies_during_a_batch_costs_no_verdict():
    programs = ["import time\ntime.sleep(0.3)\nassert True"] * 6 + ["assert False"]
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(execute_many(programs, workers=1, chunk=7)))
    runner.start()
    deadline = time.monotonic() + 60
    while not _alive(_workers.POOL.uids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    uids = _workers.POOL.uids()
    running = _alive(uids)
    assert running, "no program started"
    worker_root = _parent_of(running[0])
    while Path(f"/proc/{_parent_of(worker_root)}/cmdline").read_bytes().find(b"_zygote.py") >= 0:
        worker_root = _parent_of(worker_root)  # up to the worker's outermost process
    os.kill(worker_root, signal.SIGKILL)
    runner.join(120)
    assert [r.status for r in results] == ["passed"] * 6 + ["failed"], results
    assert _alive(uids) == []


def test_stale_folders_are_removed_and_live_ones_kept(tmp_path):
    from evalkit.sandbox._files import clean_stale_folders

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    old = time.time() - 3600
    stale = tmp_path / "evalkit-sandbox-stale"
    (stale / "a" / "b").mkdir(parents=True)
    (stale / "a" / "b" / "link").symlink_to(outside)
    locked = tmp_path / "evalkit-sandbox-locked"
    named = tmp_path / "evalkit-sandbox-named"
    young = tmp_path / "evalkit-sandbox-young"
    other = tmp_path / "unrelated"
    for folder in (locked, named, young, other):
        folder.mkdir()
    for folder in (stale, locked, named, other):
        os.utime(folder, (old, old))
    # A live run holds a lock on its folder; an older live run names its folder on its command line.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\n"
            "time.sleep(120)",
            str(locked),
        ],
        stdout=subprocess.PIPE,
    )
    namer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(named)])
    try:
        assert holder.stdout.readline() == b"locked\n"
        removed = clean_stale_folders(tmp_path)
        assert removed == [str(stale)]
        assert not stale.exists() and outside.read_text() == "keep me"
        assert locked.is_dir() and named.is_dir() and young.is_dir() and other.is_dir()
    finally:
        holder.kill()
        namer.kill()
        holder.wait()
        namer.wait()


def test_a_harness_killed_with_sigkill_leaves_nothing_after_the_next_start(tmp_path):
    """A non-isolated worker (the non-root path) and its harness are killed together; the next
    harness to start removes their folder once it is stale, and not before."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    script = dedent("""
        from evalkit.sandbox import _workers
        w = _workers.Worker(*_workers.claim_uid(), isolated=False)
        print(w.base, w.proc.pid, flush=True)
        w.run(['import time\\ntime.sleep(100)'], timeout_s=100, memory_mb=256)
    """)
    harness = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    base, worker = harness.stdout.readline().decode().split()
    base = Path(base)
    assert base.parent == tmp_path and base.is_dir()
    for pid in (harness.pid, int(worker)):  # the harness and its worker, killed at once
        os.kill(pid, signal.SIGKILL)
    harness.wait()
    starter = [sys.executable, "-c", "from evalkit.sandbox import execute\nassert execute('assert 1').passed"]
    # Too young to be called stale: a run that is just starting may not hold its lock yet.
    subprocess.run(starter, env=env, check=True, timeout=120)
    assert base.is_dir()
    os.utime(base, (time.time() - 3600,) * 2)
    subprocess.run(starter, env=env, check=True, timeout=120)
    assert not base.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are used as root only")
def test_a_sandbox_uid_is_claimed_by_one_live_worker_on_the_machine():
    first, claim = _workers.claim_uid()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from evalkit.sandbox import _workers\nuid, claim = _workers.claim_uid()\nprint(uid, flush=True)\n"
            "import time\ntime.sleep(60)",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        taken = int(holder.stdout.readline())
        second, claim2 = _workers.claim_uid()
        assert len({first, taken, second}) == 3
        claim.close()  # a claim ends with its holder
        assert _workers.claim_uid()[0] == first
    finally:
        holder.kill()
        holder.wait()


def test_the_path_without_a_uid_or_namespaces_still_sweeps_and_cleans(tmp_path, monkeypatch):
    """What a non-root user gets: no uid of the worker's own, no namespaces. Processes the program
    left (even in new sessions) come back to the fork server, a subreaper, and are killed."""
    monkeypatch.setattr(_workers.tempfile, "tempdir", str(tmp_path))
    marker = f"evalkit-unrooted-{os.getpid()}"
    daemon = dedent(f"""
        import os, subprocess
        subprocess.Popen(['sh', '-c', 'sleep 1000; : {marker}'], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp('sh', ['sh', '-c', 'sleep 1000; : {marker}'])
            os._exit(0)
        open('left', 'w').write('x')
    """)
    worker = _workers.Worker(-1, None, isolated=False)
    try:
        results = worker.run([daemon, DEEP.format(depth=1500), "assert 0"], timeout_s=10, memory_mb=512)
        assert [r.status for r in results] == ["passed", "passed", "failed"], results
        assert list(worker.base.iterdir()) == []
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, marker)]
        assert left == []
    finally:
        worker.close()


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_a_worker_whose_harness_is_killed_stops_and_leaves_nothing(tmp_path):
    """Only the evalkit process is killed: its worker sees its stdin close, kills the running program
    and every process it started, and exits."""
    marker = f"evalkit-orphaned-{os.getpid()}"
    program = dedent(f"""
        import subprocess, time
        subprocess.Popen(['sh', '-c', 'sleep 1000; : {marker}'], start_new_session=True)
        time.sleep(100)
    """)
    # The program travels in the environment: a marker on the harness's command line would match.
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO), "EVALKIT_TEST_PROGRAM": program}
    script = dedent("""
        import os
        from evalkit.sandbox import _workers
        w = _workers.Worker(*_workers.claim_uid())
        print(w.proc.pid, flush=True)
        w.run([os.environ['EVALKIT_TEST_PROGRAM']], timeout_s=100, memory_mb=256)
    """)
    harness = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    worker = int(harness.stdout.readline())
    deadline = time.monotonic() + 60
    while not any(_cmdline_has(p, marker) for p in Path("/proc").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(_cmdline_has(p, marker) for p in Path("/proc").iterdir()), "the program did not start"
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{worker}").exists(), "the worker outlived its harness"
    assert [p for p in Path("/proc").iterdir() if _cmdline_has(p, marker)] == []


# Run as root in a private mount namespace: expose the Python prefix the way a worker does, give
# nobody a /tmp, then become nobody and run CODE with the checkout importable.
_AS_NOBODY = """
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "evalkit", "sandbox"))
import _isolation
if _isolation._libc.unshare(_isolation.CLONE_NEWNS) != 0:
    sys.exit(77)
_isolation._mount(b"none", "/", None, _isolation.MS_REC | _isolation.MS_PRIVATE)
_isolation._expose(sys.base_prefix)
_isolation._mount(b"tmpfs", "/tmp", b"tmpfs", 0, b"mode=1777")
os.chdir("/tmp")
_isolation.drop_privileges(65534)
if not os.access(os.path.join(sys.argv[1], "evalkit", "__init__.py"), os.R_OK):
    sys.exit(77)  # a checkout nobody can read
env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONPATH": sys.argv[1]}
os.execve(sys.executable, [sys.executable, "-c", sys.argv[2]], env)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")
def test_a_user_without_root_gets_a_working_sandbox():
    code = dedent("""
        import os, subprocess
        from evalkit.sandbox import execute_many
        from evalkit.sandbox._procs import processes_of
        assert os.getuid() == 65534
        programs = [
            "assert 1",
            "assert 0",
            "import os\\nos._exit(0)",
            "while True: pass",
            "import subprocess\\nsubprocess.Popen(['sleep', '77'], start_new_session=True)",
            "x = bytearray(3 << 30)",
            "import sys\\nsys._getframe(1)",
            f"open('/proc/{os.getpid()}/environ').read()",  # evalkit's own environment (API keys)
        ]
        print(" ".join(r.status for r in execute_many(programs, timeout_s=1, workers=1)))
        left = [p for p in processes_of(65534) if open(f"/proc/{p}/cmdline", "rb").read() == b"sleep\\x0077\\x00"]
        print(len(left))
    """)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _AS_NOBODY, str(REPO), code], capture_output=True, text=True, timeout=120
    )
    if done.returncode == 77:
        pytest.skip("no mount namespace here, or a checkout nobody can read")
    assert done.returncode == 0, done.stderr[-2000:]
    statuses, processes = done.stdout.split("\n")[:2]
    assert statuses.split() == ["passed", "failed", "failed", "timeout", "passed", "error", "failed", "failed"]
    assert processes == "0", "the program's daemon outlived it"
