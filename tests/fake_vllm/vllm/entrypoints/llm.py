"""``LLM``: vLLM's offline engine as evalkit uses it, answering with text derived from each
sample's own seed so tests can tell samples and routing apart.

- ``LLM(model, *, ...)``: the keywords evalkit passes; any other keyword goes to EngineArgs and
  is a TypeError there (0.8.0 entrypoints/llm.py:158-186, 213-238; 0.33.0 :177-223, 295-334;
  0.33.0 makes everything after ``model`` keyword-only, :180).
- ``generate(prompts, sampling_params, *, use_tqdm)``: one SamplingParams per prompt or one for
  all; lists of different lengths are refused (0.8.0 :1287-1289; 0.33.0
  entrypoints/common/offline.py:258-263). Each prompt gets the request id
  ``str(next(request_counter))`` (0.8.0 :1321; 0.33.0 offline.py:579), counted over the engine's
  life, and the outputs come back sorted by it, in prompt order (0.8.0 :1398; 0.33.0 offline.py:642).
- A prompt that is empty, or not shorter than max_model_len, is refused (0.8.0
  v1/engine/processor.py:282-295; 0.33.0 v1/engine/input_processor.py:557-601), and the whole call
  fails: 0.33.0 aborts the requests already added (offline.py:561-564).
- A request with n > 1 fans out into n child requests ``f"{i}_{request_id}"`` (0.8.0
  v1/engine/parallel_sampling.py:96; 0.33.0 :94) whose seed is ``seed + i`` when the request has
  a seed (0.8.0 :72-84; 0.33.0 :69-81). The n outputs are collected by index (0.8.0 :117; 0.33.0 :124).

- A sample's text is a few words, one token each (token_ids), cut at max_tokens: then its
  finish_reason is "length", else "stop" (0.33.0 outputs.py:87-94, v1/engine/__init__.py:37).
  ``FAKE_VLLM_ABORT_SEEDS``: child seeds whose sample ends "abort" (a request aborted midway).

Test knobs: ``FAKE_VLLM_START_SECONDS`` (how long an engine takes to start) and
``FAKE_VLLM_FAIL_ON_GPUS`` (CUDA_VISIBLE_DEVICES values whose engine fails to start).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from itertools import count

from vllm._record import record
from vllm.engine.arg_utils import EngineArgs
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import _SAMPLING_EPS, SamplingParams
from vllm.version import RELEASE


@dataclass
class ModelConfig:
    max_model_len: int


@dataclass
class LLMEngine:
    model_config: ModelConfig  # 0.8.0 v1/engine/llm_engine.py:57; 0.33.0 :70


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int | None = RELEASE.llm_seed,
        gpu_memory_utilization: float = RELEASE.llm_gpu_memory_utilization,
        **kwargs: object,
    ) -> None:
        kwargs.setdefault("disable_log_stats", True)
        args = EngineArgs(
            model=model,
            tokenizer=tokenizer,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            **kwargs,  # type: ignore[arg-type]
        )
        given = {"model": model, "tokenizer": tokenizer, "tensor_parallel_size": tensor_parallel_size}
        given.update(dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization, **kwargs)
        record("engine_start", kwargs=given)
        time.sleep(float(os.environ.get("FAKE_VLLM_START_SECONDS", "0")))
        failing = os.environ.get("FAKE_VLLM_FAIL_ON_GPUS")
        if failing and os.environ.get("CUDA_VISIBLE_DEVICES") in failing.split(";"):
            raise RuntimeError("Address already in use")
        self.llm_engine = LLMEngine(ModelConfig(args.max_model_len_checked()))
        self.request_counter = count()
        record("engine_ready", kwargs=given, max_model_len=self.llm_engine.model_config.max_model_len)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True) -> list[RequestOutput]:  # noqa: ANN001
        prompts = [prompts] if isinstance(prompts, dict) else list(prompts)
        params = sampling_params if sampling_params is not None else SamplingParams()
        if isinstance(params, list) and len(params) != len(prompts):
            raise RELEASE.validation_error(
                f"The lengths of prompts ({len(prompts)}) and params ({len(params)}) must be the same."
            )
        params = params if isinstance(params, list) else [params] * len(prompts)
        for prompt in prompts:
            self._validate_prompt(prompt)
        requests = [(str(next(self.request_counter)), p["prompt_token_ids"], sp) for p, sp in zip(prompts, params)]
        for request_id, ids, sp in requests:
            n = sp.n
            record(
                "request",
                request_id=request_id,
                child_ids=[f"{i}_{request_id}" for i in range(n)] if n > 1 else [request_id],
                ids=ids,
                params=sp.fields(),
                child_seeds=_child_seeds(sp),
            )
        finished = [self._answer(*request) for request in reversed(requests)]  # requests finish in any order
        return sorted(finished, key=lambda out: int(out.request_id))

    def _validate_prompt(self, prompt: object) -> None:
        if not isinstance(prompt, dict) or not isinstance(prompt.get("prompt_token_ids"), list):
            raise TypeError(f"the stand-in takes TokensPrompt dicts {{'prompt_token_ids': [...]}}, got {prompt!r}")
        length, limit = len(prompt["prompt_token_ids"]), self.llm_engine.model_config.max_model_len
        if length == 0:
            raise RELEASE.validation_error("The decoder prompt cannot be empty")
        if length >= limit:
            raise RELEASE.validation_error(
                f"The decoder prompt (length {length}) is longer than the maximum model length of {limit}."
            )

    def _answer(self, request_id: str, ids: list[int], params: SamplingParams) -> RequestOutput:
        greedy = params.temperature < _SAMPLING_EPS
        outputs = []
        for i, seed in enumerate(_child_seeds(params)):
            # A sample is a function of the prompt, the sampling knobs and its own seed; unseeded
            # sampling is not reproducible (fresh randomness), greedy needs no seed.
            knobs = [params.temperature, params.top_p, params.top_k, params.max_tokens, params.stop]
            source = "greedy" if greedy else (seed if seed is not None else os.urandom(8).hex())
            tag = hashlib.sha256(json.dumps([ids, knobs, source]).encode()).hexdigest()[:8]
            words = f"{tag} sample {i}. The answer is: 7".split(" ")
            limit = params.max_tokens if params.max_tokens is not None else len(words)
            reason = "stop" if len(words) <= limit else "length"
            words = words[:limit]
            if str(seed) in os.environ.get("FAKE_VLLM_ABORT_SEEDS", "").split(","):
                words, reason = words[:1], "abort"
            token_ids = [sum(map(ord, w)) for w in words]
            outputs.append(CompletionOutput(i, " ".join(words), token_ids, reason, None))
        return RequestOutput(request_id, ids, outputs)


def _child_seeds(params: SamplingParams) -> list[int | None]:
    """The seed of each of a request's n samples: the request's seed + i, or none."""
    return [None if params.seed is None else params.seed + i for i in range(params.n)]
