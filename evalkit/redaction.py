"""Credentials out of everything evalkit writes or prints: URLs, server messages, exceptions.

Three kinds are removed: the userinfo of a URL (``http://user:pass@host`` becomes
``http://***@host``) and secret-looking query values (``?api_key=...``); the value of an
``Authorization`` header (or an ``api-key``/``x-api-key``/``access_token`` field) and any
``Bearer <token>``, however a server quotes them; and every known secret itself (the API key
evalkit sent), wherever it appears. Servers that fail often echo the request they got, headers
included, and that text ends on stderr and in exceptions.

Regular expressions by hand: urllib.parse splits one URL but neither finds URLs in free text nor
knows how servers quote headers, and no library in the dependencies does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MASK = "***"

# scheme://userinfo@ ; userinfo has no '/', '@' or whitespace (RFC 3986 section 3.2.1)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s?#'\"<>]+@")
# host:port URLs written without a scheme ("user:pass@host:8000/v1")
_BARE_USERINFO = re.compile(r"(?<![\w/@.:-])[^\s/@:'\"<>]+:[^\s/@'\"<>]+@(?=[\w\[])")
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|secret|password|passwd|sig|signature)=)[^&#\s'\"]+"
)
# A header or field name, the separator as it is quoted ("Authorization: x", 'Authorization': 'x',
# "authorization"="x", api_key=x), then the value up to the end of the quote, line or field.
_SECRET_FIELD = re.compile(
    r"(?i)((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"((?:bearer|basic|token)\s+)?([^\s\"',;}\]&#]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")


def redact_url(url: str) -> str:
    """The URL (or comma-separated URLs) without userinfo or secret query values."""
    return redact(url)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential replaced by ``***``: the known ``secrets`` first (longest
    first, so a secret that contains another goes whole), then the patterns above."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_strings(value: Any, secrets: Sequence[str] = ()) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: redact_strings(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_strings(v, secrets) for v in value)
    return value
