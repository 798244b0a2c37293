"""The stand-in's log: every engine start and request is appended as one JSON line to the file
named by ``FAKE_VLLM_LOG`` (when set), so tests can check what evalkit asked of vLLM."""

from __future__ import annotations

import json
import os
import time


def record(event: str, **fields: object) -> None:
    path = os.environ.get("FAKE_VLLM_LOG")
    if not path:
        return
    row = {"event": event, "pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "t": time.time()}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**row, **fields}) + "\n")
