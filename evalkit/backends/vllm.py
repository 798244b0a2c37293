"""The vLLM backend: the offline ``vllm.LLM`` engine, imported only when used (extra ``vllm``).

- One request per prompt carries all n samples (``SamplingParams(n=...)``), not n requests.
- Each request has its own seed, derived from the run's seed and the prompt (sample_seed), so a
  prompt's samples do not depend on which prompts share its batch or on the order of the run.
- Prompts are rendered with the model's chat template and tokenized exactly as the transformers
  backend does (render_chat, adds_special_tokens), and sent as token ids, so both backends see
  the same tokens.
- Prefix caching is on: the n samples and the few-shot prefixes share their prompt's KV cache.
- ``--data-parallel-size D`` starts D worker processes, each with its own engine on its own
  ``--tensor-parallel-size`` GPUs (CUDA_VISIBLE_DEVICES), without Ray. Prompts are cut into D
  contiguous shards and the answers are put back in document order.

vLLM cannot be installed where evalkit's CI runs; the request building, the sharding and the
worker protocol are tested with a stand-in ``vllm`` module (tests/fake_vllm).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from evalkit.backends.base import LogLikelihoodBackend, PromptBatch, sample_seed
from evalkit.backends.hf import LocalModelBackend, adds_special_tokens
from evalkit.config import BackendOptions, ModelOptions, SamplingConfig
from evalkit.errors import ModelError

Request = tuple[list[int], dict[str, Any]]  # (prompt token ids, SamplingParams keyword arguments)


def _import_vllm() -> Any:
    try:
        import vllm  # heavy, and only on a CUDA machine: only when the backend generates
    except ImportError:
        raise ModelError("--backend vllm needs vLLM on a CUDA machine: pip install 'evalkit[vllm]'") from None
    return vllm


def sampling_params_kwargs(sampling: SamplingConfig, prompt: str) -> dict[str, Any]:
    """SamplingParams for one prompt's request: all n samples, the prompt's own seed."""
    kwargs: dict[str, Any] = {"n": sampling.decodes, "max_tokens": sampling.max_tokens}
    if sampling.greedy:
        kwargs["temperature"] = 0.0
    else:
        kwargs.update(
            temperature=sampling.temperature, top_p=sampling.top_p, seed=sample_seed(sampling.seed, prompt, 0)
        )
        if sampling.top_k:
            kwargs["top_k"] = sampling.top_k  # left out when off: every vLLM version's default is "off"
    if sampling.stop:
        kwargs["stop"] = list(sampling.stop)  # vLLM leaves the stop string out, as truncate_at_stop does
    return kwargs


def engine_kwargs(
    source: str, options: BackendOptions, seed: int, model_options: ModelOptions | None = None
) -> dict[str, Any]:
    """vllm.LLM's arguments; the model's loading options only where they differ from the defaults."""
    kwargs: dict[str, Any] = {
        "model": source,
        "tokenizer": source,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "enable_prefix_caching": True,
        "seed": seed,
    }
    if options.max_model_len is not None:
        kwargs["max_model_len"] = options.max_model_len
    model_options = model_options or ModelOptions()
    if model_options.revision is not None:
        kwargs.update(revision=model_options.revision, tokenizer_revision=model_options.revision)
    if model_options.trust_remote_code:
        kwargs["trust_remote_code"] = True
    if model_options.dtype != "auto":  # vLLM's own "auto" is the checkpoint's dtype
        kwargs["dtype"] = model_options.dtype
    return kwargs


def shards(count: int, parts: int) -> list[range]:
    """``count`` items cut into ``parts`` contiguous, balanced ranges (some empty when count < parts)."""
    size, extra = divmod(count, parts)
    bounds = [0]
    for p in range(parts):
        bounds.append(bounds[-1] + size + (1 if p < extra else 0))
    return [range(bounds[p], bounds[p + 1]) for p in range(parts)]


def gpu_groups(data_parallel: int, tensor_parallel: int, visible: str | None) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each data-parallel rank: consecutive groups of tensor_parallel GPUs
    out of the GPUs this process may use."""
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    needed = data_parallel * tensor_parallel
    if devices is None:
        devices = [str(i) for i in range(needed)]
    if len(devices) < needed:
        raise ModelError(
            f"data parallel {data_parallel} x tensor parallel {tensor_parallel} needs {needed} GPUs; "
            f"CUDA_VISIBLE_DEVICES lists {len(devices)}"
        )
    return [",".join(devices[r * tensor_parallel : (r + 1) * tensor_parallel]) for r in range(data_parallel)]


def run_requests(llm: Any, requests: Sequence[Request], params_class: Callable[..., Any]) -> list[list[str]]:
    """One engine call for all requests; each answer's samples in sample order."""
    if not requests:
        return []
    prompts = [{"prompt_token_ids": ids} for ids, _ in requests]
    params = [params_class(**kwargs) for _, kwargs in requests]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [[o.text for o in sorted(out.outputs, key=lambda o: o.index)] for out in outputs]


def _worker(gpus: str, kwargs: dict[str, Any], conn: Any) -> None:
    """A data-parallel rank: one engine on its GPUs, answering shards until told to stop."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        vllm = _import_vllm()
        llm = vllm.LLM(**kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while (requests := conn.recv()) is not None:
        try:
            conn.send(("ok", run_requests(llm, requests, vllm.SamplingParams)))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class DataParallelPool:
    """D engine processes (spawned: CUDA cannot be forked), started once and kept for the run."""

    def __init__(self, groups: list[str], kwargs: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers = []
        for gpus in groups:
            parent, child = context.Pipe()
            # Not a daemon: vLLM's engine starts processes of its own.
            process = context.Process(target=_worker, args=(gpus, kwargs, child), name=f"evalkit-vllm-{gpus}")
            process.start()
            self._workers.append((process, parent))
        for _, conn in self._workers:
            self._receive(conn)
        atexit.register(self.close)

    def _receive(self, conn: Any) -> Any:
        try:
            status, value = conn.recv()
        except EOFError:
            raise ModelError("a vLLM data-parallel worker died (see its output above)") from None
        if status == "error":
            raise ModelError(f"vLLM data-parallel worker: {value}")
        return value

    def run(self, requests: Sequence[Request]) -> list[list[str]]:
        parts = shards(len(requests), len(self._workers))
        for part, (_, conn) in zip(parts, self._workers):
            conn.send([requests[i] for i in part])
        out: list[list[str]] = []
        for _, conn in self._workers:  # in rank order: shard order is document order
            out.extend(self._receive(conn))
        return out

    def close(self) -> None:
        for process, conn in self._workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
        self._workers = []


class VLLMBackend(LocalModelBackend, LogLikelihoodBackend):
    name = "vllm"
    samples_depend_on_n = True  # vLLM seeds a request (all n samples) as a whole

    def __init__(self, model: str | None, options: BackendOptions, model_options: ModelOptions | None = None) -> None:
        super().__init__(model, model_options)
        self.options = options
        self._engine: Any = None
        self._pool: DataParallelPool | None = None

    def versions(self) -> dict[str, str]:
        try:
            return {"vllm": metadata.version("vllm")}
        except metadata.PackageNotFoundError:
            return {}

    def lm_eval_model(self, batch_size: int, seed: int) -> tuple[str, dict[str, Any]]:
        """lm-eval's own vLLM model (log-likelihoods through prompt logprobs) with this backend's
        settings; lm-eval starts its data-parallel engines itself."""
        options = self.options
        args: dict[str, Any] = {
            "pretrained": str(self.resolved.source),
            "tensor_parallel_size": options.tensor_parallel_size,
            "data_parallel_size": options.data_parallel_size,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "batch_size": "auto",
            "seed": seed,
        }
        if options.max_model_len is not None:
            args["max_model_len"] = options.max_model_len
        return "vllm", args

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        # vLLM schedules a call's requests itself; the runner caches after each call.
        return 512 * self.options.data_parallel_size

    def build_requests(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[Request]:
        special = adds_special_tokens(self.tokenizer)
        ids = self.tokenizer(list(prompts), add_special_tokens=special)["input_ids"]
        return [(list(i), sampling_params_kwargs(sampling, p)) for i, p in zip(ids, prompts)]

    def _run(self, requests: list[Request], seed: int) -> list[list[str]]:
        options = self.options
        kwargs = engine_kwargs(str(self.resolved.source), options, seed, self.resolved.options)
        if options.data_parallel_size == 1:
            vllm = _import_vllm()
            if self._engine is None:
                self._engine = vllm.LLM(**kwargs)
            return run_requests(self._engine, requests, vllm.SamplingParams)
        if self._pool is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            groups = gpu_groups(options.data_parallel_size, options.tensor_parallel_size, visible)
            self._pool = DataParallelPool(groups, kwargs)
        return self._pool.run(requests)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._engine = None

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        sampling = batch.sampling
        texts = self._run(self.build_requests(batch.prompts, sampling), sampling.seed)
        if sampling.greedy:
            texts = [samples[:1] * sampling.n for samples in texts]
        if on_progress:
            on_progress(len(texts) * sampling.n)
        return texts
