"""``RequestOutput`` and ``CompletionOutput``: the fields evalkit reads, and finish_reason.

0.8.0 outputs.py:38-44 and 0.33.0 :87-94: CompletionOutput(index, text, token_ids, ...,
finish_reason, stop_reason); finish_reason is "stop" or "length" (also "abort", and in 0.33.0
"error" and "repetition": 0.8.0 v1/engine/__init__.py:18, 0.33.0 :37).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True
