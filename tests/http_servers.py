"""Real HTTP servers on 127.0.0.1 for the OpenAI-compatible backend's tests: `evalkit serve`
started as a user starts it, and a scripted server that answers, fails, hangs or garbles on cue."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import REPO


class EvalkitServer:
    """`python -m evalkit serve --port 0` in a subprocess; ``url`` is its /v1 base URL."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 300
        self.log: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("evalkit serve exited: " + "".join(self.log))
            self.log.append(line)
            match = re.search(r"serving \S+ on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("evalkit serve did not start: " + "".join(self.log))

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    @property
    def address(self) -> tuple[str, int]:
        match = re.match(r"http://([^:/]+):(\d+)", self.url)
        return match.group(1), int(match.group(2))

    def threads(self) -> int:
        """The number of threads the server process has now."""
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def canned_text(prompt: Any, seed: Any, index: int) -> str:
    """A deterministic completion that names the number 7 (so it scores) and its request."""
    digest = hashlib.sha256(json.dumps([prompt, seed, index]).encode()).hexdigest()[:8]
    return f"sample {digest}. The answer is: 7"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up: expected in these tests


class ScriptedServer:
    """An OpenAI-compatible server whose answer to each POST is chosen by ``script(body, count)``:
    return None for a normal answer, or one of ("status", code), ("hang", seconds), ("garble",),
    ("one_choice",), ("text", answer), ("texts", [choice 0's answer, choice 1's, ...]),
    ("echo", code) (a JSON error whose message repeats the
    request's headers, as a careless proxy does), ("echo_text", code) (its Authorization header as plain text).
    Every request body and header is recorded."""

    def __init__(self, script: Callable[[dict[str, Any], int], tuple | None] = lambda body, count: None) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        handler = self._handler()
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    count = len(server.requests)
                action = server.script(body, count)
                if action and action[0] == "status":
                    return self._send(action[1], b'{"error": {"message": "scripted failure"}}')
                if action and action[0] == "echo":
                    echoed = f"bad request; headers were {dict(self.headers)}"
                    return self._send(action[1], json.dumps({"error": {"message": echoed}}).encode())
                if action and action[0] == "echo_text":
                    lines = sorted(f"{k}: {v}" for k, v in self.headers.items() if k == "Authorization")
                    return self._send(action[1], "\n".join(lines).encode())
                if action and action[0] == "hang":
                    time.sleep(action[1])
                if action and action[0] == "garble":
                    return self._send(200, b'{"choices": [ {"index": 0, "mess')
                prompt = body.get("messages") or body.get("prompt")
                n = 1 if action and action[0] == "one_choice" else body.get("n", 1)
                chat = "messages" in body

                def text(i: int) -> str:
                    if action and action[0] == "texts":
                        return action[1][i]
                    return action[1] if action and action[0] == "text" else canned_text(prompt, body.get("seed"), i)

                choices = [
                    {
                        "index": i,
                        **({"message": {"role": "assistant", "content": text(i)}} if chat else {"text": text(i)}),
                        "finish_reason": "stop",
                    }
                    for i in range(n)
                ]
                self._send(200, json.dumps({"choices": choices}).encode())

        return Handler
