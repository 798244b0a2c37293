"""The vLLM backend: the offline ``vllm.LLM`` engine, imported only when used (extra ``vllm``).

- One request per prompt carries all n samples (``SamplingParams(n=...)``), not n requests.
  Each request has its own seed, ``sample_seed(run seed, prompt, 0)``; vLLM's V1 engine draws
  sample i with ``seed + i``, so a prompt's samples depend neither on the prompts that share its
  call nor on the order of the run, and (V1 only) sample i does not depend on n.
- Prompts are rendered with the model's chat template and tokenized exactly as the transformers
  backend does, and sent as token ids: both see the same tokens. The engine's dtype is --dtype
  (auto: bfloat16, as the transformers backend on a GPU).
- What vLLM would refuse for a whole call is refused first, in one line: a temperature above 2
  (vLLM >= 0.33 rejects it), and any prompt not shorter than ``max_model_len`` (vLLM rejects the
  call), whose documents the runner then names.
- A request's max_tokens is at most what max_model_len leaves after its prompt (a note says so).
  Each sample keeps its finish_reason ("stop", "length", "abort") and its number of tokens.
- Prefix caching is on: a prompt's n samples and few-shot prefixes share its KV cache.
- ``--data-parallel-size D`` starts D worker processes (no Ray), each with its own engine on its
  own ``--tensor-parallel-size`` GPUs (CUDA_VISIBLE_DEVICES). The engines start one after
  another, each once the previous one is ready: engines starting together can pick the same free
  port. Prompts are cut into D contiguous shards and the answers are put back in document order.

vLLM cannot be installed where evalkit's CI runs: requests, sharding and the worker protocol are
tested with a stand-in ``vllm`` (tests/fake_vllm) with the signatures and checks of 0.8.0/0.33.0.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from evalkit.backends.base import LogLikelihoodBackend, PromptBatch, Sample, sample_seed, texts_of
from evalkit.backends.hf import LocalModelBackend
from evalkit.config import BackendOptions, ChatFormat, ModelOptions, SamplingConfig
from evalkit.errors import ConfigError, ModelError, PromptTooLong

Request = tuple[list[int], dict[str, Any]]  # (prompt token ids, SamplingParams keyword arguments)

# vLLM 0.33.0 sampling_params.py:668-670 refuses a temperature above 2 (0.8.0 had no bound):
# evalkit refuses it for every version, before anything loads, so runs stay comparable.
MAX_TEMPERATURE = 2.0
# The V1 engine splits a request of n samples into n child requests seeded seed + i
# (v1/engine/parallel_sampling.py: 0.8.0 :84, 0.33.0 :81). It is the default from 0.8.0, which
# still falls back to the V0 engine for some models, GPUs and options unless VLLM_USE_V1=1
# (0.8.0 engine/arg_utils.py:1214-1223, :1745-1748); 0.11.0 has no V0 engine left
# (engine/llm_engine.py is the V1 LLMEngine).
V1_DEFAULT = (0, 8)
V1_ONLY = (0, 11)


def check_sampling(sampling: SamplingConfig, where: str) -> None:
    """What vLLM refuses for a whole call, refused up front with one clear line."""
    if sampling.temperature > MAX_TEMPERATURE:
        raise ConfigError(
            f"{where}: temperature {sampling.temperature:g} is above {MAX_TEMPERATURE:g}, which vLLM refuses "
            f"(SamplingParams takes 0 to {MAX_TEMPERATURE:g}); use a lower --temperature or --backend hf"
        )


def major_minor(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a version string such as 0.8.5.post1 or 0.11.0rc2; None if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else None


def samples_depend_on_n_in(version: str | None, use_v1: str | None) -> bool:
    """Whether sample i of a request can change with n under this vLLM version: not when the V1
    engine runs it (sample i is seeded seed + i), possibly when the V0 engine does (one seeded
    generator for the whole request). Unknown or uncertain counts as dependent: then n is part
    of the cache key, which costs cache hits and never reuses a sample that would differ."""
    installed = major_minor(version)
    if installed is None or installed < V1_DEFAULT:
        return True
    return not (installed >= V1_ONLY or use_v1 == "1")


def installed_vllm_version() -> str | None:
    """The installed vLLM's version, from its package metadata (no import of vLLM in this process),
    else from ``vllm.__version__`` (a source checkout, or the tests' stand-in); None without vLLM."""
    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        pass
    try:
        import vllm  # heavy, and only on a CUDA machine: only when the backend generates
    except ImportError:
        return None
    return getattr(vllm, "__version__", None)


def engine_dtype(model_options: ModelOptions | None) -> str:
    """The user's --dtype, else bfloat16: the precision of the transformers backend on a GPU
    (vLLM's own "auto" would be the checkpoint's dtype)."""
    dtype = (model_options or ModelOptions()).dtype
    return "bfloat16" if dtype == "auto" else dtype


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
            kwargs["top_k"] = sampling.top_k  # left out when off: "off" is -1 in 0.8, 0 later
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
        "dtype": engine_dtype(model_options),
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
    return kwargs


def check_prompt_lengths(prompts: Sequence[str], requests: Sequence[Request], max_model_len: int) -> None:
    """vLLM refuses a prompt that is not shorter than max_model_len, and with it the whole call
    (0.8.0 v1/engine/processor.py:292-295; 0.33.0 v1/engine/input_processor.py:574-601)."""
    too_long = {p: len(ids) for p, (ids, _) in zip(prompts, requests) if len(ids) >= max_model_len}
    if too_long:
        raise PromptTooLong(
            too_long,
            f"not shorter than vLLM's max_model_len of {max_model_len} tokens (a prompt must leave room "
            "for one new token)",
            "raise --max-model-len if the model's context allows it, or leave these documents out",
        )


def clamp_max_tokens(requests: Sequence[Request], max_model_len: int) -> list[Request]:
    """The requests with max_tokens at most what max_model_len leaves after each prompt; a note
    on stderr when one is cut."""
    out = [(ids, {**kw, "max_tokens": min(kw["max_tokens"], max_model_len - len(ids))}) for ids, kw in requests]
    if any(a[1]["max_tokens"] != b[1]["max_tokens"] for a, b in zip(requests, out)):
        asked = requests[0][1]["max_tokens"]
        print(f"evalkit: max_tokens {asked} is more than vLLM's max_model_len of {max_model_len} leaves after a "
              "prompt; generating at most what it leaves", file=sys.stderr)  # fmt: skip
    return out


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ModelError("--backend vllm needs vLLM on a CUDA machine: pip install 'evalkit[vllm]'") from None
    return vllm


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


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


def run_requests(llm: Any, requests: Sequence[Request], params_class: Callable[..., Any]) -> list[list[Sample]]:
    """One engine call for all requests; each answer's samples in sample order, with vLLM's
    finish_reason and their number of tokens."""
    if not requests:
        return []
    prompts = [{"prompt_token_ids": ids} for ids, _ in requests]
    params = [params_class(**kwargs) for _, kwargs in requests]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    ordered = [sorted(out.outputs, key=lambda o: o.index) for out in outputs]
    return [[Sample(o.text, o.finish_reason, len(o.token_ids)) for o in samples] for samples in ordered]


def _worker(gpus: str, kwargs: dict[str, Any], conn: Any) -> None:
    """A data-parallel rank: one engine on its GPUs, answering shards until told to stop. Once
    started it reports ("ready", its max_model_len)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        vllm = import_vllm()
        llm = vllm.LLM(**kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", f"the engine on GPUs {gpus} could not start: {one_line(exc)}"))
        return
    conn.send(("ready", int(llm.llm_engine.model_config.max_model_len)))
    while (requests := conn.recv()) is not None:
        try:
            conn.send(("ok", run_requests(llm, requests, vllm.SamplingParams)))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", one_line(exc)))


class DataParallelPool:
    """D engine processes (spawned: CUDA cannot be forked), started once and kept for the run.

    They start one at a time: each is started only when the previous one has reported ready.
    vLLM picks free ports for tensor parallelism while an engine starts, and engines starting
    together can pick the same one ("Address already in use"). If one fails to start, the ones
    already up are stopped and no further one is started."""

    def __init__(self, groups: list[str], kwargs: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[Any, Any]] = []
        limits = []
        for gpus in groups:
            parent, child = context.Pipe()
            # Not a daemon: vLLM's engine starts processes of its own.
            process = context.Process(target=_worker, args=(gpus, kwargs, child), name=f"evalkit-vllm-{gpus}")
            process.start()
            self._workers.append((process, parent))
            try:
                limits.append(self._receive(parent))  # waits for this engine's "ready"
            except ModelError:
                self.close()
                raise
        self.max_model_len: int = min(limits)
        atexit.register(self.close)

    def _receive(self, conn: Any) -> Any:
        try:
            status, value = conn.recv()
        except EOFError:
            raise ModelError("a vLLM data-parallel worker died (see its output above)") from None
        if status == "error":
            raise ModelError(f"vLLM data-parallel worker: {value}")
        return value

    def run(self, requests: Sequence[Request]) -> list[list[Sample]]:
        parts = shards(len(requests), len(self._workers))
        for part, (_, conn) in zip(parts, self._workers):
            conn.send([requests[i] for i in part])
        out: list[list[Sample]] = []
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

    def __init__(
        self,
        model: str | None,
        options: BackendOptions,
        model_options: ModelOptions | None = None,
        chat_format: ChatFormat | None = None,
    ) -> None:
        super().__init__(model, model_options, chat_format)
        self.options = options
        self._engine: Any = None
        self._pool: DataParallelPool | None = None
        self._max_model_len: int | None = None

    @property
    def samples_depend_on_n(self) -> bool:  # type: ignore[override]
        return samples_depend_on_n_in(installed_vllm_version(), os.environ.get("VLLM_USE_V1"))

    @property
    def precision(self) -> str:
        return engine_dtype(self.resolved.options)

    def versions(self) -> dict[str, str]:
        try:
            return {"vllm": metadata.version("vllm")}
        except metadata.PackageNotFoundError:
            return {}

    def lm_eval_model(self, batch_size: int | None, seed: int) -> tuple[str, dict[str, Any]]:
        """lm-eval's own vLLM model (log-likelihoods through prompt logprobs) with this backend's
        settings; lm-eval starts its data-parallel engines itself."""
        options = self.options
        args: dict[str, Any] = {
            "pretrained": str(self.resolved.source),
            "tensor_parallel_size": options.tensor_parallel_size,
            "data_parallel_size": options.data_parallel_size,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "dtype": engine_dtype(self.resolved.options),
            "batch_size": "auto",
            "seed": seed,
        }
        if options.max_model_len is not None:
            args["max_model_len"] = options.max_model_len
        if self.resolved.revision is not None:
            args["revision"] = self.resolved.revision
        if self.resolved.options.trust_remote_code:
            args["trust_remote_code"] = True
        return "vllm", args

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        # vLLM schedules a call's requests itself; the runner caches after each call.
        return 512 * self.options.data_parallel_size

    def build_requests(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[Request]:
        special = self.adds_special_tokens
        ids = self.tokenizer(list(prompts), add_special_tokens=special)["input_ids"]
        return [(list(i), sampling_params_kwargs(sampling, p)) for i, p in zip(ids, prompts)]

    def _start(self, seed: int) -> int:
        """The engine, or the data-parallel engines, started once; their max_model_len."""
        if self._max_model_len is None:
            options = self.options
            kwargs = engine_kwargs(str(self.resolved.source), options, seed, self.resolved.options)
            if options.data_parallel_size == 1:
                vllm = import_vllm()
                try:
                    self._engine = vllm.LLM(**kwargs)
                except Exception as exc:  # noqa: BLE001 - any failure to start is one line
                    raise ModelError(f"vLLM could not start the engine: {one_line(exc)}") from None
                self._max_model_len = int(self._engine.llm_engine.model_config.max_model_len)
            else:
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                groups = gpu_groups(options.data_parallel_size, options.tensor_parallel_size, visible)
                self._pool = DataParallelPool(groups, kwargs)
                self._max_model_len = self._pool.max_model_len
        return self._max_model_len

    def _run(self, requests: list[Request]) -> list[list[Sample]]:
        if self._pool is not None:
            return self._pool.run(requests)
        try:
            return run_requests(self._engine, requests, import_vllm().SamplingParams)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"vLLM generation failed: {one_line(exc)}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._engine = None
        self._max_model_len = None

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        return texts_of(self.generate_samples(batch, on_progress))

    def generate_samples(
        self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None
    ) -> list[list[Sample]]:
        sampling = batch.sampling
        check_sampling(sampling, "--backend vllm")  # the runner checks tasks earlier; judges come here
        requests = self.build_requests(batch.prompts, sampling)
        if self.options.max_model_len is not None:
            check_prompt_lengths(batch.prompts, requests, self.options.max_model_len)  # before any engine starts
        max_model_len = self._start(sampling.seed)
        check_prompt_lengths(batch.prompts, requests, max_model_len)
        samples = self._run(clamp_max_tokens(requests, max_model_len))
        if sampling.greedy:
            samples = [row[:1] * sampling.n for row in samples]
        if on_progress:
            on_progress(len(samples) * sampling.n)
        return samples
