"""What one request to `evalkit serve` may ask for, and the reading of a request body into a
prompt and sampling values. Every malformed or oversized request becomes BadRequest (a 400 with
an OpenAI-style error), before anything is queued for generation: memory and time follow the
server's settings, never what a client asks."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from evalkit.config import SamplingConfig
from evalkit.errors import ConfigError, shown

# Fields a request leaves out: OpenAI's default for completions (16 tokens); chat has no
# documented cap, so a generous one (never above --max-tokens-limit).
DEFAULT_MAX_TOKENS = {"chat": 1024, "completions": 16}
MAX_STOP_STRINGS = 16  # OpenAI takes 4; lm-eval sends a few
MAX_STOP_CHARS = 256  # transformers' stop-string matcher grows with the vocabulary times this
SEED_BOUND = 2**63  # OpenAI's seed is a 64-bit integer


class BadRequest(Exception):
    """A request the server will not run; its message goes back to the client with a 400."""


@dataclass(frozen=True)
class ServeLimits:
    """The bounds of `evalkit serve` (each one a CLI option)."""

    max_n: int = 256  # --max-n: samples per request (the shipped tasks ask up to 200)
    max_tokens: int = 4096  # --max-tokens-limit: the largest max_tokens a request may ask for
    max_prompt_tokens: int = 8192  # --max-prompt-tokens: tokens of the rendered prompt
    max_body_bytes: int = 1 << 20  # --max-body-bytes: a request body (1 MiB)
    max_connections: int = 128  # --max-connections: connections served at once; more get 503
    read_timeout: float = 30.0  # --read-timeout: seconds to send one whole request (and idle keep-alive)

    def __post_init__(self) -> None:
        for name, option in _OPTIONS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{option} must be a number, got {shown(value)}")
            if name == "read_timeout" and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{option} must be a number of seconds > 0, got {shown(value)}")
            if name != "read_timeout" and not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{option} must be an integer >= 1, got {shown(value)}")


_OPTIONS = {
    "max_n": "--max-n",
    "max_tokens": "--max-tokens-limit",
    "max_prompt_tokens": "--max-prompt-tokens",
    "max_body_bytes": "--max-body-bytes",
    "max_connections": "--max-connections",
    "read_timeout": "--read-timeout",
}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:  # malformed, an integer too long to read, nested too deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else shown(str(exc), 120)
        raise BadRequest(f"the body is not valid JSON ({reason})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _given(body: dict[str, Any], name: str, default: Any) -> Any:
    """A field's value; absent or null means the default, as in OpenAI's API."""
    value = body.get(name)
    return default if value is None else value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = _given(body, "stop", [])
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest(f"stop must be a non-empty string or a list of them, got {shown(stop)}")
    if len(stop) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in stop):
        raise BadRequest(f"stop takes at most {MAX_STOP_STRINGS} strings of at most {MAX_STOP_CHARS} characters")
    return tuple(stop)


def sampling_from_request(body: dict[str, Any], api: str, limits: ServeLimits) -> SamplingConfig:
    if body.get("stream"):
        raise BadRequest("stream is not supported by evalkit serve; ask without it")
    max_tokens = body.get("max_completion_tokens")  # the chat API's newer name for max_tokens
    if max_tokens is None:
        max_tokens = _given(body, "max_tokens", min(DEFAULT_MAX_TOKENS[api], limits.max_tokens))
    seed = body.get("seed")
    try:
        sampling = SamplingConfig(
            n=_given(body, "n", 1),
            temperature=_given(body, "temperature", 1.0),
            top_p=_given(body, "top_p", 1.0),
            top_k=_given(body, "top_k", 0),
            max_tokens=max_tokens,
            stop=_stop(body),
            seed=random.getrandbits(62) if seed is None else seed,
        )
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    if sampling.n > limits.max_n:
        raise BadRequest(f"n is {shown(sampling.n)}; this server takes at most {limits.max_n} (--max-n)")
    if sampling.max_tokens > limits.max_tokens:
        raise BadRequest(
            f"max_tokens is {shown(sampling.max_tokens)}; "
            f"this server takes at most {limits.max_tokens} (--max-tokens-limit)"
        )
    if sampling.seed >= SEED_BOUND:
        raise BadRequest(f"seed must be below 2**63, got {shown(sampling.seed)}")
    return sampling


def messages_from_request(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BadRequest("each message needs a string 'role' and a string 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prompt_from_request(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest(f"'prompt' must be a non-empty string, got {shown(prompt)}")
    return prompt


def check_model(body: dict[str, Any], served_name: str) -> None:
    model = body.get("model", served_name)
    if not isinstance(model, str):
        raise BadRequest(f"'model' must be a string, got {shown(model)}")
    if model != served_name:
        raise BadRequest(f"unknown model {shown(model)}; this server serves {served_name!r}")
