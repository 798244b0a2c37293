"""A stand-in for vLLM's offline API (``LLM``, ``SamplingParams``), for the vLLM backend's tests
where vLLM cannot be installed. It follows vLLM's documented interface: ``LLM(**engine_args)``,
``LLM.generate(prompts, sampling_params, use_tqdm=...)`` returning one RequestOutput per prompt
whose ``outputs`` are CompletionOutputs with ``index`` and ``text``.

Every engine start and every request is appended to the JSON-lines file named by
``FAKE_VLLM_LOG``; each completion names the request it answers, so tests can check routing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass


def _log(event: dict) -> None:
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


class SamplingParams:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.n = kwargs.get("n", 1)


@dataclass
class CompletionOutput:
    index: int
    text: str


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


class LLM:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        _log({"event": "engine", "pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "kwargs": kwargs})

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        outputs = []
        for prompt, params in zip(prompts, sampling_params):
            ids = prompt["prompt_token_ids"]
            _log({"event": "request", "pid": os.getpid(), "ids": ids, "params": params.kwargs})
            tag = hashlib.sha256(json.dumps([ids, params.kwargs.get("seed")]).encode()).hexdigest()[:8]
            # Returned out of order on purpose: the backend must sort by index.
            samples = [CompletionOutput(i, f"{tag} sample {i}. The answer is: 7") for i in range(params.n)]
            outputs.append(RequestOutput(ids, samples[::-1]))
        return outputs
