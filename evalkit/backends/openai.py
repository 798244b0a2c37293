"""The OpenAI-compatible HTTP backend: `vllm serve`, `evalkit serve`, or any server that speaks
/v1/chat/completions or /v1/completions.

One request per prompt carries all n samples (``n``) when the server supports it; a server that
answers fewer choices than asked is then asked once per sample, with per-sample seeds. Requests
run ``concurrency`` at a time. 429, 5xx, timeouts, dropped connections and malformed answers are
retried with exponential backoff (honouring Retry-After); other 4xx answers fail at once. When a
request still fails, the prompts that did finish are handed to the runner (GenerationFailed) and
cached, so a rerun asks only for the rest.

The API key is read from the environment variable the user names and is only ever put in the
Authorization header: results record the variable's name, never its value. The key, the userinfo
of the base URL and any Authorization value are cut out of every message this backend raises
(evalkit/redaction.py): a failing server may echo the request it got, headers included.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import unquote, urlsplit

from evalkit.backends.base import Backend, GenerationFailed, PromptBatch, Sample, sample_seed, texts_of
from evalkit.config import BackendOptions, ChatFormat, ModelOptions, SamplingConfig
from evalkit.errors import ConfigError, EvalkitError, ModelError
from evalkit.redaction import redact, redact_url

DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


class ServerError(EvalkitError):
    """A request that failed for good (after retries, or a 4xx the server will not change its mind on)."""


class _Retryable(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


def request_body(api: str, model: str, prompt: str, sampling: SamplingConfig, n: int, seed: int) -> dict[str, Any]:
    """The JSON body of one generation request. ``prompt`` is the rendered prompt: for the chat
    API, the chat messages as JSON (see OpenAIBackend.render)."""
    body: dict[str, Any] = {"model": model, "max_tokens": sampling.max_tokens, "n": n}
    if api == "chat":
        body["messages"] = json.loads(prompt)
    else:
        body["prompt"] = prompt
    if sampling.greedy:
        body["temperature"] = 0.0
    else:
        body.update(temperature=sampling.temperature, top_p=sampling.top_p, seed=seed)
        if sampling.top_k:
            body["top_k"] = sampling.top_k  # an extension vLLM and `evalkit serve` accept; OpenAI does not
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    return body


def check_served_options(options: BackendOptions, model_options: ModelOptions, chat_format: ChatFormat) -> None:
    """The server loads the model and, with the chat API, applies its chat template: the loading
    options cannot reach it, and plain prompt text needs the completions API."""
    if model_options != ModelOptions():
        raise ConfigError(
            "--dtype, --revision and --trust-remote-code do not apply to --backend openai: the server loads the "
            "model (set them where it is started)"
        )
    if not chat_format.chat_template and options.api == "chat":
        raise ConfigError("--no-chat-template with --backend openai needs --api completions (plain prompt text)")


def choice_texts(api: str, payload: Any) -> list[str]:
    """The completions of a response, in choice order; malformed answers raise _Retryable."""
    return [s.text for s in choice_samples(api, payload)]


def choice_samples(api: str, payload: Any) -> list[Sample]:
    """The completions of a response with each choice's finish_reason, in choice order; the
    token count when the response has one choice and says how many tokens it took (usage).
    Malformed answers raise _Retryable."""
    try:
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        texts = [c["message"]["content"] if api == "chat" else c["text"] for c in choices]
        reasons = [c.get("finish_reason") for c in choices]
    except (KeyError, TypeError, AttributeError) as exc:
        raise _Retryable(f"malformed response (no {exc} in it)") from None
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _Retryable("malformed response (choices without text)")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    tokens = usage.get("completion_tokens")
    counted = len(texts) == 1 and isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0
    return [
        Sample(text, reason if isinstance(reason, str) else None, tokens if counted else None)
        for text, reason in zip(texts, reasons)
    ]


class OpenAIBackend(Backend):
    name = "openai"
    samples_depend_on_n = True  # a server seeds a request as a whole
    batch_invariant = True  # one request per prompt

    def __init__(
        self,
        model: str | None,
        options: BackendOptions,
        model_options: ModelOptions | None = None,
        chat_format: ChatFormat | None = None,
    ) -> None:
        if not options.base_url:
            raise ConfigError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        check_served_options(options, model_options or ModelOptions(), chat_format or ChatFormat())
        import requests  # 0.1 s to import: only when this backend is used

        self._requests = requests
        self.options = options
        # Several servers (comma-separated) share the requests round-robin, and a retry goes to
        # the next one: nodes that each run `vllm serve` make one evaluation, and a dead one is
        # routed around.
        self.base_urls = [u.strip().rstrip("/") for u in options.base_url.split(",") if u.strip()]
        self.base_url = redact_url(", ".join(self.base_urls))  # as messages and results show it
        self._turn = itertools.count()
        self._local = threading.local()
        self._headers = {"Content-Type": "application/json"}
        key = self._api_key()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._secrets = [key or "", *_userinfo_secrets(self.base_urls)]
        self._n_supported = True
        identities = []
        for url in self.base_urls:
            card = self._model_card(url, model)
            identities.append(
                {k: card.get(k) for k in ("id", "root", "owned_by", "max_model_len", "evalkit_fingerprint")}
            )
        if any(i != identities[0] for i in identities):
            raise ModelError(self._redact(f"the servers do not serve the same model: {identities}"))
        identity = identities[0]
        self._model = model or identity["id"]
        digest = hashlib.sha256(json.dumps([self._model, options.api, identity], sort_keys=True).encode())
        self._fingerprint = f"openai:{self._model}@{digest.hexdigest()[:16]}"

    def _api_key(self) -> str | None:
        variable = self.options.api_key_env or DEFAULT_KEY_VARIABLE
        key = os.environ.get(variable)
        if self.options.api_key_env and not key:
            raise ConfigError(f"--api-key-env {variable}: that environment variable is not set")
        if key and not all(c.isprintable() and not c.isspace() and ord(c) < 256 for c in key):
            # requests would refuse the header with the key in its message
            raise ConfigError(
                f"the key in {variable} has spaces, line breaks or other characters a header cannot carry"
            )
        return key

    def _redact(self, text: str) -> str:
        """The text without the key, the URLs' userinfo or any Authorization value."""
        return redact(text, self._secrets)

    def _model_card(self, url: str, model: str | None) -> dict[str, Any]:
        """The server's entry for the model (GET /models): names the model when none is given and
        identifies it for the cache. A server without /models is fine when the model is named."""
        try:
            listing = self._call("GET", "/models", None, urls=[url])
            cards = [c for c in listing.get("data", []) if isinstance(c, dict) and "id" in c]
        except (ServerError, AttributeError) as exc:
            if model:
                return {"id": model}
            message = f"cannot list the models of {url}: {exc}; name one with --model"
            raise ModelError(self._redact(message)) from None
        if model is None:
            if len(cards) != 1:
                names = ", ".join(str(c["id"]) for c in cards) or "none"
                raise ModelError(self._redact(f"{url} serves {len(cards)} models ({names}); choose one with --model"))
            return cards[0]
        return next((c for c in cards if c["id"] == model), {"id": model})

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def precision(self) -> str:
        return "server"  # the server's own; its model card is in the fingerprint

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """Chat API: the messages themselves (the server applies the chat template). Completions
        API: the prompt text without any chat template (for base models)."""
        if self.options.api == "chat":
            return json.dumps(list(messages), ensure_ascii=False)
        return "\n\n".join(m["content"] for m in messages)

    def versions(self) -> dict[str, str]:
        return {"server": self.base_url, "api": self.options.api}

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        # The runner commits to the cache after each call; a few rounds of requests per call.
        return self.options.concurrency * 4

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        return texts_of(self.generate_samples(batch, on_progress))

    def generate_samples(
        self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None
    ) -> list[list[Sample]]:
        sampling = batch.sampling
        finished: dict[int, list[Sample]] = {}
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            futures = {pool.submit(self._samples, prompt, sampling): i for i, prompt in enumerate(batch.prompts)}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failure = next((f.exception() for f in done if f.exception() is not None), None)
            if failure is not None:
                for f in pending:
                    f.cancel()
                done, _ = wait(futures)  # let the requests in flight finish
            for future in done:
                if not future.cancelled() and future.exception() is None:
                    finished[futures[future]] = future.result()
                    if on_progress:
                        on_progress(sampling.n)
        if failure is not None:
            if isinstance(failure, EvalkitError):
                raise GenerationFailed(str(failure), finished)
            raise failure
        return [finished[i] for i in range(len(batch.prompts))]

    def _samples(self, prompt: str, sampling: SamplingConfig) -> list[Sample]:
        """All n samples of one prompt: one request with n, or n requests if the server ignores n."""
        if sampling.greedy:
            sample = self._complete(prompt, sampling, 1, seed=0)[0]
            return [sample] * sampling.n
        if self._n_supported:
            samples = self._complete(prompt, sampling, sampling.n, seed=sampling.seed)
            if len(samples) == sampling.n:
                return samples
            self._n_supported = False  # the server gave fewer choices than asked: ask per sample
        return [
            self._complete(prompt, sampling, 1, seed=sample_seed(sampling.seed, prompt, i))[0]
            for i in range(sampling.n)
        ]

    def _complete(self, prompt: str, sampling: SamplingConfig, n: int, seed: int) -> list[Sample]:
        api = self.options.api
        body = request_body(api, self._model, prompt, sampling, n, seed)
        path = "/chat/completions" if api == "chat" else "/completions"
        return self._call("POST", path, body, parse=lambda payload: choice_samples(api, payload))

    def _session(self):  # noqa: ANN202 - a requests.Session, one per thread
        if not hasattr(self._local, "session"):
            self._local.session = self._requests.Session()
        return self._local.session

    def _call(
        self,
        method: str,
        path: str,
        body: dict | None,
        parse: Callable[[Any], Any] = lambda p: p,
        urls: list[str] | None = None,
    ) -> Any:
        """One request with retries, each attempt on the next server. Returns ``parse(json)``;
        raises ServerError when it fails for good."""
        urls = urls or self.base_urls
        first = next(self._turn)
        attempts = self.options.max_retries + 1
        reason = ""
        for attempt in range(attempts):
            url = urls[(first + attempt) % len(urls)] + path
            try:
                return parse(self._attempt(method, url, body))
            except _Retryable as exc:
                reason = f"{url}: {exc}"
                if attempt + 1 < attempts:
                    backoff = self.options.retry_backoff * 2**attempt * (1 + random.random() / 4)
                    time.sleep(min(exc.wait_s if exc.wait_s is not None else backoff, 60.0))
        raise ServerError(self._redact(f"{method} {path} failed {attempts} times, last: {reason}"))

    def _attempt(self, method: str, url: str, body: dict | None) -> Any:
        requests = self._requests
        try:
            response = self._session().request(
                method, url, json=body, headers=self._headers, timeout=(10.0, self.options.request_timeout)
            )
        except requests.Timeout:
            raise _Retryable(f"no answer within {self.options.request_timeout:g} s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"cannot connect ({type(exc).__name__})") from None
        except requests.RequestException as exc:  # an invalid URL or header: asking again would not help
            raise ServerError(self._redact(f"{method} {url}: {type(exc).__name__}: {exc}")) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            message = f"{method} {url}: HTTP {response.status_code}: {_error_message(response, self._redact)}"
            raise ServerError(self._redact(message))
        try:
            return response.json()
        except ValueError:
            # Redacted before it is cut: a key cut in half is no longer found.
            raise _Retryable(f"malformed response (not JSON: {self._redact(response.text[:2000])[:60]!r})") from None


def _userinfo_secrets(urls: Sequence[str]) -> list[str]:
    """The passwords and user names in URLs, and the Basic credentials requests makes of them."""
    secrets = []
    for url in urls:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            continue
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        pair = f"{user}:{password}"
        secrets += [password, pair, base64.b64encode(pair.encode("latin-1", errors="replace")).decode()]
    return [s for s in secrets if len(s) >= 4]  # a one-letter password would redact every such letter


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _error_message(response: Any, redacted: Callable[[str], str]) -> str:
    """The server's error message, redacted before it is cut to 300 characters."""
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = None
    return redacted(" ".join(str(message or response.text[:4000] or response.reason).split()[:1000]))[:300]
