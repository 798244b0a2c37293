"""The HTTP side of `evalkit serve`: the standard library's threaded server, bounded.

- Connections: at most ``--max-connections`` are served at once, one thread each. Beyond that a
  connection is answered 503 (with Retry-After) by one of a few refusing threads, and beyond
  those it is closed. The listen backlog is 1024 (the kernel caps it at somaxconn), not 5.
- Time: a client has ``--read-timeout`` seconds to send a whole request, headers and body; an
  idle keep-alive connection is closed after as long. The standard library's socket timeout
  bounds each read, not a request: a client sending a byte every few seconds would hold its
  thread for ever. RequestReader reads against one deadline per request instead.
- Every failure is an OpenAI-style JSON error, the standard library's own (a malformed request
  line, a header too long, an unknown method) included. A request whose body is refused unread
  (too large, a bad Content-Length, no key) is answered, then its body is read and dropped until
  the client closes or its time is up: closing with unread data resets the connection, and the
  client would see a reset instead of the answer.
- With ``--api-key-env``, every route but /health needs ``Authorization: Bearer <key>``, compared
  in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from evalkit.errors import EvalkitError, shown
from evalkit.serve_limits import BadRequest, ServeLimits, parse_body

ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
REFUSERS = 16  # threads that answer 503 at once; connections beyond these are closed unanswered
REFUSE_LINGER_S = 2.0  # how long a 503 waits for its client to close before closing itself
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
Refusal = tuple[int, str, "str | None", dict[str, str]]  # status, message, OpenAI error code, headers


class App(Protocol):
    served_name: str

    def models(self) -> dict[str, Any]: ...

    def complete(self, api: str, body: dict[str, Any]) -> dict[str, Any]: ...


class RequestTimeout(Exception):
    """The client did not send its whole request within --read-timeout (not an OSError, so the
    standard library's handler lets it through to ours)."""


class RequestReader:
    """The reading side of a connection, against one deadline per request (``start``). It offers
    what BaseHTTPRequestHandler and http.client's header parser use: readline, read, close."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.deadline = math.inf
        self.received = 0  # bytes of the current request so far

    def start(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.received = len(self._buffer)  # pipelined bytes already belong to this request

    def _receive(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise RequestTimeout from None
        except ConnectionError:
            return False
        self._buffer += chunk
        self.received += len(chunk)
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, limit: int = -1) -> bytes:
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(self._buffer):
                end = limit
                break
            searched = len(self._buffer)
            if not self._receive():
                end = len(self._buffer)
                break
        return self._take(min(end, limit) if limit >= 0 else end)

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and self._receive():
            pass
        return self._take(min(size, len(self._buffer)))

    def close(self) -> None:
        self._buffer.clear()


def linger(sock: socket.socket, deadline: float) -> None:
    """Stop sending, then read and drop what the client still sends, until it closes or the
    deadline: the answer already sent reaches the client instead of a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    sink = bytearray(65536)
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            sock.settimeout(remaining)
            if sock.recv_into(sink) == 0:
                return
        except OSError:
            return


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    text = " ".join(message.split())
    text = text if len(text) <= 400 else text[:397] + "..."
    return json.dumps({"error": {"message": text, "type": kind, "param": None, "code": code}}).encode()


def same_key(given: str, expected: bytes) -> bool:
    """Constant time, whatever the lengths: compare the two keys' SHA-256 digests."""
    raw = given.encode("latin-1", errors="replace")  # header values arrive decoded as latin-1
    return hmac.compare_digest(hashlib.sha256(raw).digest(), hashlib.sha256(expected).digest())


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limits: ServeLimits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._refusers = threading.BoundedSemaphore(REFUSERS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
        elif self._refusers.acquire(blocking=False):
            try:
                threading.Thread(target=self._refuse, args=(request,), daemon=True, name="evalkit-refuse").start()
            except BaseException:
                self._refusers.release()
                raise
        else:
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        message = f"the server is serving {self.limits.max_connections} connections (--max-connections); try again"
        body = error_body(503, message, "server_overloaded")
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            request.settimeout(REFUSE_LINGER_S)
            request.sendall(head.encode() + body)
            linger(request, time.monotonic() + min(REFUSE_LINGER_S, self.limits.read_timeout))
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self._refusers.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, reset) before its answer: one line, not a traceback.
        print(f"evalkit serve: lost the connection to {client_address[0]}:{client_address[1]}", file=sys.stderr)


def make_handler(app: App, limits: ServeLimits, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    expected = api_key.encode("utf-8") if api_key else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "evalkit"
        timeout = limits.read_timeout  # also bounds each write: a client that never reads is dropped
        requestline, request_version, command = "", "HTTP/1.1", ""

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self.rfile = RequestReader(self.connection)  # type: ignore[assignment]

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # one line per request is noise here; errors are answered to the client

        def handle_one_request(self) -> None:
            self.rfile.start(limits.read_timeout)
            try:
                super().handle_one_request()
            except RequestTimeout:
                self.close_connection = True
                if self.rfile.received:  # a request had begun: say why it ends (an idle connection just closes)
                    message = f"the request was not sent within {limits.read_timeout:g} s (--read-timeout)"
                    self._error(408, message, "request_timeout", close=True)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # The standard library's own refusals (request line, headers, method, version), as JSON.
            if self.request_version == "HTTP/0.9":  # not served: answer with a status line and headers
                self.request_version = self.protocol_version
            self._error(code, message or self.responses.get(code, ("error",))[0], close=True)

        def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None, close: bool = False) -> None:
            self.connection.settimeout(limits.read_timeout)  # the reader left the time it had left
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode())

        def _error(
            self, status: int, message: str, code: str | None = None, close: bool = False, headers: dict | None = None
        ) -> None:
            self._send(status, error_body(status, message, code), headers, close)

        def _refuse_unread(self, refusal: Refusal) -> None:
            """Answer a request whose body was not read, then drop the body (see the module)."""
            status, message, code, headers = refusal
            self._error(status, message, code, close=True, headers=headers)
            linger(self.connection, self.rfile.deadline)

        def _route(self) -> str:
            return urlsplit(self.path).path.rstrip("/") or "/"

        def _authorized(self) -> bool:
            if expected is None or self._route() == "/health":
                return True
            scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
            return scheme.lower() == "bearer" and same_key(token.strip(), expected)

        def _unauthorized(self) -> Refusal:
            message = "missing or wrong API key: send the header Authorization: Bearer KEY"
            return 401, message, "invalid_api_key", {"WWW-Authenticate": "Bearer"}

        def _body_length(self) -> int:
            """The body's length from its headers; raises BadRequest for anything else."""
            if self.headers.get("Transfer-Encoding"):
                raise BadRequest("Transfer-Encoding is not supported; send the body with a Content-Length header")
            values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
            if not values:
                raise BadRequest("a POST needs a Content-Length header")
            if len(values) > 1 or not _CONTENT_LENGTH.fullmatch(next(iter(values))):
                raise BadRequest(f"Content-Length must be one number of bytes, got {shown(sorted(values))}")
            length = int(values.pop())
            if length > limits.max_body_bytes:
                raise BadRequest(
                    f"the body has {length} bytes; this server takes at most {limits.max_body_bytes} (--max-body-bytes)"
                )
            return length

        def _refusal(self) -> Refusal | None:
            """Why a POST is refused before its body is read, or None."""
            if not self._authorized():
                return self._unauthorized()
            if self._route() not in ROUTES:
                return 404, f"no route {shown(self.path)}", "not_found", {}
            try:
                self._body_length()
            except BadRequest as exc:
                return 400, str(exc), None, {}
            return None

        def handle_expect_100(self) -> bool:
            refusal = self._refusal() if self.command == "POST" else None
            if refusal is None:
                return super().handle_expect_100()
            self._refuse_unread(refusal)
            return False

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            if self.headers.get("Content-Length", "0").strip() != "0" or self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # a body we do not read must not be taken for the next request
            route = self._route()
            if route == "/health":
                return self._json(200, {"status": "ok"})
            if not self._authorized():
                status, message, code, headers = self._unauthorized()
                return self._error(status, message, code, headers=headers)
            if route in ("/v1/models", "/models"):
                return self._json(200, app.models())
            self._error(404, f"no route {shown(self.path)}", "not_found")

        def do_POST(self) -> None:  # noqa: N802
            refusal = self._refusal()
            if refusal is not None:
                return self._refuse_unread(refusal)
            length = self._body_length()
            raw = self.rfile.read(length)  # RequestTimeout: answered 408 by handle_one_request
            if len(raw) < length:
                return self._error(400, f"the body ended after {len(raw)} of {length} bytes", close=True)
            try:
                self._json(200, app.complete(ROUTES[self._route()], parse_body(raw)))
            except BadRequest as exc:
                self._error(400, str(exc))
            except EvalkitError as exc:
                self._error(500, str(exc))
            except Exception as exc:  # noqa: BLE001 - the server keeps serving; the client sees a 500
                self._error(500, f"{type(exc).__name__}: {shown(str(exc), 300)}")

    return Handler


def serve_http(app: App, host: str, port: int, limits: ServeLimits, api_key: str | None,
               on_ready: Callable[[str], None]) -> None:  # fmt: skip
    """Serve until interrupted; ``on_ready`` gets the base URL once the socket listens."""
    httpd = BoundedHTTPServer((host, port), make_handler(app, limits, api_key), limits)
    bound_host, bound_port = httpd.server_address[:2]
    on_ready(f"http://{bound_host}:{bound_port}/v1")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
