"""`evalkit serve`: the transformers backend behind an OpenAI-compatible HTTP API.

Endpoints: GET /v1/models, GET /health, POST /v1/chat/completions and POST /v1/completions
(``n``, ``temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``stop``, ``seed``). Sample i of a
request is drawn with the same per-sample seed as in `evalkit run` (see sample_seed), so a run
through this server with ``--seed S`` reproduces the in-process run with ``--seed S`` exactly.

One model answers one generation at a time; the requests waiting with the same sampling values
are generated together, up to ``--batch-size`` sequences (sample seeds make a sample independent
of its batch). The HTTP side (evalkit/serve_http.py) is the standard library's threaded server
with bounds on connections, time and size; what a request may ask for is in
evalkit/serve_limits.py. This is a tool for tests, CPU use and small jobs; for throughput use
`vllm serve`.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from evalkit.backends.base import PromptBatch
from evalkit.backends.hf import HFBackend, adds_special_tokens
from evalkit.config import SamplingConfig
from evalkit.errors import ConfigError
from evalkit.serve_http import serve_http
from evalkit.serve_limits import (
    BadRequest,
    ServeLimits,
    check_model,
    messages_from_request,
    prompt_from_request,
    sampling_from_request,
)


@dataclass(frozen=True)
class ServeConfig:
    """Everything `evalkit serve` was asked to do."""

    model: str | None = None  # folder or hub id; None: the embedded model
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    batch_size: int = 64  # sequences per generation call
    served_model_name: str | None = None
    api_key_env: str | None = None  # NAME of the variable holding the key clients must send
    limits: ServeLimits = field(default_factory=ServeLimits)


@dataclass
class Generated:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: list[int]
    finish_reasons: list[str]  # "stop" (EOS or a stop string) or "length" (max_tokens or the context)


@dataclass
class _Job:
    prompt: str
    sampling: SamplingConfig
    result: Future = field(default_factory=Future)
    prompt_tokens: int = 0


class Batcher:
    """One generation thread. It takes the oldest waiting job and the other waiting jobs with the
    same sampling values while their sequences fit in ``batch_size``, and generates them in one
    call; a job whose n alone exceeds ``batch_size`` goes alone. Every use of the tokenizer
    happens on this thread: a fast tokenizer shared by threads fails with "Already borrowed"."""

    def __init__(self, backend: HFBackend, batch_size: int, max_prompt_tokens: int) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self._queue: queue.Queue[_Job] = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="evalkit-generate").start()

    def submit(self, prompt: str, sampling: SamplingConfig) -> Generated:
        job = _Job(prompt, sampling)
        self._queue.put(job)
        return job.result.result()

    def _tokens(self, text: str, special: bool) -> int:
        return len(self.backend.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _admit(self, job: _Job) -> bool:
        """Count the prompt's tokens as generation will; refuse an empty or too long prompt."""
        try:
            job.prompt_tokens = self._tokens(job.prompt, adds_special_tokens(self.backend.tokenizer))
            if job.prompt_tokens == 0:
                raise BadRequest("the prompt is empty (0 tokens)")
            if job.prompt_tokens > self.max_prompt_tokens:
                raise BadRequest(
                    f"the prompt has {job.prompt_tokens} tokens; this server takes at most "
                    f"{self.max_prompt_tokens} (--max-prompt-tokens)"
                )
        except Exception as exc:  # noqa: BLE001 - reported to the request, the others go on
            job.result.set_exception(exc)
            return False
        return True

    def _take(self, block: bool) -> list[_Job]:
        jobs = [self._queue.get()] if block else []
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                return [job for job in jobs if self._admit(job)]

    def next_batch(self, waiting: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        """(the jobs of the next call, the jobs left waiting), in arrival order."""
        first = waiting[0]
        batch, rest, rows = [first], [], first.sampling.decodes
        for job in waiting[1:]:
            if _same_samples(job.sampling, first.sampling) and rows + job.sampling.decodes <= self.batch_size:
                batch.append(job)
                rows += job.sampling.decodes
            else:
                rest.append(job)
        return batch, rest

    def _loop(self) -> None:
        waiting: list[_Job] = []
        while True:
            waiting += self._take(block=not waiting)
            if not waiting:
                continue
            batch, waiting = self.next_batch(waiting)
            try:
                generated = self.backend.generate_samples(PromptBatch([j.prompt for j in batch], batch[0].sampling))
                lengths = [
                    [s.tokens if s.tokens is not None else self._tokens(s.text, False) for s in samples]
                    for samples in generated
                ]
            except Exception as exc:  # noqa: BLE001 - reported to every request of the call as a 500
                for job in batch:
                    job.result.set_exception(exc)
                continue
            for job, samples, counts in zip(batch, generated, lengths):
                texts = [s.text for s in samples]
                reasons = [s.finish_reason or "stop" for s in samples]
                job.result.set_result(Generated(texts, job.prompt_tokens, counts, reasons))


def _same_samples(a: SamplingConfig, b: SamplingConfig) -> bool:
    """Whether one call can generate both: the same values, or both greedy with the same n,
    length and stop strings (greedy decoding ignores the seed, top_p and top_k)."""
    return a == b or (a.greedy and b.greedy and (a.n, a.max_tokens, a.stop) == (b.n, b.max_tokens, b.stop))


class Server:
    """The API's answers; the HTTP side calls ``models`` and ``complete``."""

    def __init__(self, backend: HFBackend, served_name: str, batch_size: int, limits: ServeLimits) -> None:
        self.backend = backend
        self.served_name = served_name
        self.limits = limits
        self.batcher = Batcher(backend, batch_size, limits.max_prompt_tokens)

    def models(self) -> dict[str, Any]:
        card = {
            "id": self.served_name,
            "object": "model",
            "owned_by": "evalkit",
            "root": self.backend.model_name,
            "evalkit_fingerprint": self.backend.fingerprint,
        }
        return {"object": "list", "data": [card]}

    def _render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self.backend.render(messages)
        except Exception as exc:  # noqa: BLE001 - a chat template refuses these messages (roles, order)
            raise BadRequest(f"the chat template refuses these messages: {' '.join(str(exc).split())[:200]}") from None

    def complete(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        check_model(body, self.served_name)
        sampling = sampling_from_request(body, api, self.limits)
        prompt = self._render(messages_from_request(body)) if api == "chat" else prompt_from_request(body)
        generated = self.batcher.submit(prompt, sampling)
        choices = []
        for i, (text, reason) in enumerate(zip(generated.texts, generated.finish_reasons)):
            content = {"message": {"role": "assistant", "content": text}} if api == "chat" else {"text": text}
            choices.append({"index": i, **content, "finish_reason": reason})
        completion_tokens = sum(generated.completion_tokens)
        return {
            "id": f"{'chatcmpl' if api == 'chat' else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion" if api == "chat" else "text_completion",
            "created": int(time.time()),
            "model": self.served_name,
            "system_fingerprint": self.backend.fingerprint,
            "choices": choices,
            "usage": {
                "prompt_tokens": generated.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": generated.prompt_tokens + completion_tokens,
            },
        }


def read_api_key(variable: str | None) -> str | None:
    """The key clients must send, from the environment variable the user names."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise ConfigError(f"--api-key-env {variable}: that environment variable is not set (or empty)")
    return key


def serve(config: ServeConfig) -> None:
    api_key = read_api_key(config.api_key_env)  # before the model loads: a missing key fails at once
    backend = HFBackend(config.model, device=config.device, batch_size=config.batch_size)
    server = Server(
        backend, config.served_model_name or backend.model_name.split(" ")[0], config.batch_size, config.limits
    )
    backend.tokenizer, backend.model  # load now (tokenizer first: it silences the progress bars)  # noqa: B018

    def ready(url: str) -> None:
        guarded = " (clients must send the API key)" if api_key else ""
        print(f"evalkit: serving {server.served_name} on {url}{guarded}", file=sys.stderr, flush=True)

    serve_http(server, config.host, config.port, config.limits, api_key, ready)
