"""`evalkit serve`: the transformers backend behind an OpenAI-compatible HTTP API.

Endpoints: GET /v1/models, GET /health, POST /v1/chat/completions and POST /v1/completions
(``n``, ``temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``stop``, ``seed``). Sample i of a
request is drawn with the same per-sample seed as in `evalkit run` (see sample_seed), so a run
through this server with ``--seed S`` reproduces the in-process run with ``--seed S`` exactly.

The standard library's threaded HTTP server is enough here: one model answers one generation
at a time, and the requests waiting with the same sampling values are batched together (sample
seeds make a sample independent of its batch). No web framework is needed for that, so none is
a dependency. This is a tool for tests, CPU use and small jobs; for throughput use `vllm serve`.
"""

from __future__ import annotations

import json
import queue
import random
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evalkit.backends.base import PromptBatch
from evalkit.backends.hf import HFBackend
from evalkit.config import SamplingConfig
from evalkit.errors import ConfigError, EvalkitError

# Defaults for fields a request leaves out: OpenAI's for completions (16 tokens); chat has no
# documented cap, so a generous one.
DEFAULT_MAX_TOKENS = {"chat": 1024, "completions": 16}


class BadRequest(Exception):
    pass


@dataclass
class _Job:
    prompt: str
    sampling: SamplingConfig
    result: Future = field(default_factory=Future)


class Batcher:
    """One generation thread: takes the oldest waiting job and every other waiting job with the
    same sampling values (up to the backend's batch), and generates them in one call."""

    def __init__(self, backend: HFBackend) -> None:
        self.backend = backend
        self._queue: queue.Queue[_Job] = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="evalkit-generate").start()

    def submit(self, prompt: str, sampling: SamplingConfig) -> list[str]:
        job = _Job(prompt, sampling)
        self._queue.put(job)
        return job.result.result()

    def _loop(self) -> None:
        held: list[_Job] = []
        while True:
            first = held.pop(0) if held else self._queue.get()
            limit = self.backend.prompts_per_call(first.sampling)
            batch = [first]
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                (batch if job.sampling == first.sampling and len(batch) < limit else held).append(job)
            try:
                texts = self.backend.generate(PromptBatch([j.prompt for j in batch], first.sampling))
            except Exception as exc:  # noqa: BLE001 - reported to every waiting request as a 500
                for job in batch:
                    job.result.set_exception(exc)
                continue
            for job, samples in zip(batch, texts):
                job.result.set_result(samples)


def sampling_from_request(body: dict[str, Any], api: str) -> SamplingConfig:
    stop = body.get("stop") or ()
    seed = body.get("seed")
    try:
        return SamplingConfig(
            n=body.get("n", 1),
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            top_k=body.get("top_k") or 0,
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS[api],
            stop=(stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else stop,
            seed=random.getrandbits(62) if seed is None else seed,
        )
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BadRequest("each message needs a string 'role' and a string 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


class Server:
    def __init__(self, backend: HFBackend, served_name: str) -> None:
        self.backend = backend
        self.served_name = served_name
        self.batcher = Batcher(backend)

    def models(self) -> dict[str, Any]:
        card = {
            "id": self.served_name,
            "object": "model",
            "owned_by": "evalkit",
            "root": self.backend.model_name,
            "evalkit_fingerprint": self.backend.fingerprint,
        }
        return {"object": "list", "data": [card]}

    def complete(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("model", self.served_name) != self.served_name:
            raise BadRequest(f"unknown model {body.get('model')!r}; this server serves {self.served_name!r}")
        if api == "chat":
            prompt = self.backend.render(_messages(body))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise BadRequest("'prompt' must be a string")
        sampling = sampling_from_request(body, api)
        texts = self.batcher.submit(prompt, sampling)
        tokenizer = self.backend.tokenizer
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        choices = []
        for i, (text, length) in enumerate(zip(texts, lengths)):
            reason = "length" if length >= sampling.max_tokens else "stop"
            content = {"message": {"role": "assistant", "content": text}} if api == "chat" else {"text": text}
            choices.append({"index": i, **content, "finish_reason": reason})
        prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return {
            "id": f"{'chatcmpl' if api == 'chat' else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion" if api == "chat" else "text_completion",
            "created": int(time.time()),
            "model": self.served_name,
            "system_fingerprint": self.backend.fingerprint,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": sum(lengths),
                "total_tokens": prompt_tokens + sum(lengths),
            },
        }


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    routes = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # one line per request is noise here; errors are answered to the client

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind}})

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, server.models())
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:  # noqa: N802
            api = routes.get(self.path.rstrip("/"))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if api is None:
                return self._error(404, f"no route {self.path}", "not_found")
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                self._send(200, server.complete(api, body))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._error(400, "the body is not valid JSON", "invalid_request_error")
            except BadRequest as exc:
                self._error(400, str(exc), "invalid_request_error")
            except EvalkitError as exc:
                self._error(500, str(exc), "server_error")
            except Exception as exc:  # noqa: BLE001 - the server keeps serving; the client sees a 500
                self._error(500, f"{type(exc).__name__}: {exc}", "server_error")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) before its answer: one line, not a traceback.
        print(f"evalkit serve: lost the connection to {client_address[0]}:{client_address[1]}", file=sys.stderr)


def serve(model: str | None, host: str, port: int, device: str, batch_size: int, served_name: str | None) -> None:
    backend = HFBackend(model, device=device, batch_size=batch_size)
    server = Server(backend, served_name or backend.model_name.split(" ")[0])
    backend.tokenizer, backend.model  # load now (tokenizer first: it silences the progress bars)  # noqa: B018
    httpd = _Server((host, port), _handler(server))
    bound_host, bound_port = httpd.server_address[:2]
    print(f"evalkit: serving {server.served_name} on http://{bound_host}:{bound_port}/v1", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
