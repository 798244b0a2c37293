"""One sandbox worker (started by evalkit.sandbox as `python -I -S _zygote.py UID TMPDIR`, never
imported). It holds the batches of programs and reports on them; it never runs one.

Set-up, once: as root (UID >= 0), a network namespace without interfaces and a private mount
namespace in which every mount is nosuid (evalkit/sandbox/_isolation.py); without namespaces (not
root, or refused, or ``--no-namespaces``), a folder of its own under TMPDIR, locked while it lives.
Then, before reading any program, it forks the fork server (evalkit/sandbox/_fork_server.py), the
process every program is forked from.

Per request (a JSON line on stdin: a list of programs and their limits) it compiles each program
(a syntax error is answered here), hands its marshalled code and an output memory file to the fork
server, and answers one JSON line per program: the wait status, CPU time, whether the time limit
struck, and the start and end of the output, read from its own descriptor of the memory file (no
path is ever opened where a program could plant a link or a FIFO).
"""

import json
import marshal
import os
import select
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # -I leaves the script's folder out
import _files  # noqa: E402
import _fork_server  # noqa: E402
import _isolation  # noqa: E402
import _procs  # noqa: E402
from _protocol import OUTPUT_HEAD, OUTPUT_TAIL  # noqa: E402

sys.path.remove(HERE)  # so programs do not import from here
AHEAD = 4  # programs handed to the fork server ahead of their answers


class HarnessGone(Exception):
    """stdin closed: the process that started this worker is gone."""


class Worker:
    def __init__(self, uid, tmpdir, namespaces):
        self.uid = uid
        self.isolated = uid >= 0 and namespaces and _isolation.isolate_worker()
        self.base, self.lock_fd = (None, None) if self.isolated else _files.make_locked_folder(tmpdir)
        _isolation.prctl(_isolation.PR_SET_DUMPABLE, 0)  # a program of the same uid cannot read us
        _isolation.prctl(_isolation.PR_SET_CHILD_SUBREAPER, 1)  # orphans of a dead fork server come here
        self.sock, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        self.server = os.fork()
        if self.server == 0:
            self._become_server(server_end, parent)
        server_end.close()
        self.pending = b""  # bytes read from stdin beyond the current request

    def _become_server(self, server_end, parent):
        try:
            _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
            self.sock.close()
            if self.lock_fd is not None:
                os.close(self.lock_fd)  # the lock lives and dies with the worker alone
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)  # so is the reply pipe
            os.close(null)
            _fork_server.serve(server_end, self.isolated, str(self.base) if self.base else None)
        finally:
            os._exit(0)

    def _read_line(self):
        while b"\n" not in self.pending:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def _await_server(self, limit_s):
        """The fork server's answer, watching stdin meanwhile: if the harness goes, so do we."""
        while True:
            ready = select.select([self.sock, 0], [], [], limit_s)[0]
            if not ready:
                raise OSError("the fork server did not answer")
            if self.sock in ready:
                answer = self.sock.recv(1 << 16)
                if not answer:
                    raise OSError("the fork server exited")
                return json.loads(answer)
            chunk = os.read(0, 1 << 16)
            if not chunk:
                raise HarnessGone
            self.pending += chunk

    def submit(self, req):
        """Compile one program and hand it to the fork server; the memory file its output will be
        in, or the answer itself when it does not compile."""
        try:
            code = marshal.dumps(compile(req.pop("program"), "program.py", "exec"))
        except Exception as exc:  # a syntax error, null bytes, a program too deep to compile...
            return {"compile_error": f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]}
        code_fd = os.memfd_create("program", os.MFD_CLOEXEC)
        out_fd = os.memfd_create("output", os.MFD_CLOEXEC)
        try:
            view = memoryview(code)
            while view:
                view = view[os.write(code_fd, view) :]
            req["uid"] = self.uid
            socket.send_fds(self.sock, [json.dumps(req).encode()], [code_fd, out_fd])
        except BaseException:
            os.close(out_fd)
            raise
        finally:
            os.close(code_fd)
        return out_fd

    def collect(self, out_fd, timeout_s):
        """The fork server's answer for the oldest program handed to it, with its output."""
        try:
            reply = self._await_server(timeout_s + 30.0)
            size = os.fstat(out_fd).st_size
            head = os.pread(out_fd, 4 * OUTPUT_HEAD, 0).decode("utf-8", errors="replace")[:OUTPUT_HEAD]
            tail = os.pread(out_fd, OUTPUT_TAIL, max(0, size - OUTPUT_TAIL)).decode("utf-8", errors="replace")
        finally:
            os.close(out_fd)
        return {**reply, "output": head, "tail": tail}

    def run_batch(self, reqs, reply):
        """One answer line per program, in order, as soon as it is known. Up to ``AHEAD`` programs
        wait at the fork server, which then goes from one program to the next without waiting for
        this process."""
        handed = []  # (out_fd or answer, timeout) in program order, not yet answered
        pending = list(reqs)
        while pending or handed:
            while pending and sum(isinstance(h, int) for h, _ in handed) < AHEAD:
                req = pending.pop(0)
                handed.append((self.submit(req), req["timeout_s"]))
            first, timeout_s = handed.pop(0)
            answer = self.collect(first, timeout_s) if isinstance(first, int) else first
            reply.write((json.dumps(answer) + "\n").encode())
            reply.flush()

    def serve(self):
        reply = sys.stdout.buffer
        ready = {"isolated": bool(self.isolated), "base": str(self.base) if self.base else None}
        reply.write(f"ready {json.dumps(ready)}\n".encode())
        reply.flush()
        try:
            while (line := self._read_line()) is not None:
                self.run_batch(json.loads(line), reply)
        except (HarnessGone, BrokenPipeError):
            pass
        finally:
            self.close()

    def close(self):
        """Kill the fork server (its program dies with it) and whatever the program left."""
        try:
            os.kill(self.server, signal.SIGKILL)
            os.waitpid(self.server, 0)
        except OSError:
            pass
        if self.uid >= 0:
            _procs.kill_uid(self.uid)
        else:
            _procs.kill_all(lambda: _procs.children_of(os.getpid()))
        _procs.reap()
        if self.base:
            _files.remove_tree(self.base)


def main():
    uid, tmpdir = int(sys.argv[1]), sys.argv[2]
    Worker(uid, tmpdir, namespaces="--no-namespaces" not in sys.argv[3:]).serve()


if __name__ == "__main__":
    main()
