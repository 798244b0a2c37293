"""Typed configuration: sampling parameters, a task's data source and prompt, model loading
options, backend and judge settings, and the run configuration. (Task specifications, one class
per task kind, are in evalkit/tasks/.)"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, shown
from evalkit.redaction import redact_strings, redact_url

_SAMPLING_FIELDS = ("n", "temperature", "top_p", "top_k", "max_tokens", "stop", "seed")


@dataclass(frozen=True)
class SamplingConfig:
    """How to draw samples. ``temperature == 0`` means greedy decoding."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 1234

    def __post_init__(self) -> None:
        _check_int("n", self.n, minimum=1)
        _check_float("temperature", self.temperature)
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {shown(self.temperature)}")
        _check_float("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {shown(self.top_p)}")
        _check_int("top_k", self.top_k, minimum=0)
        _check_int("max_tokens", self.max_tokens, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"stop must be a list of non-empty strings, got {shown(self.stop)}")
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def decodes(self) -> int:
        """Sequences decoded per prompt: greedy decodes once and copies it to all n samples."""
        return 1 if self.greedy else self.n

    def replace(self, **overrides: Any) -> SamplingConfig:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def cache_fields(self) -> dict[str, Any]:
        """Everything that changes a single sample (not ``n``: sample i is the same for any n)."""
        d = dataclasses.asdict(self)
        d.pop("n")
        d["stop"] = list(self.stop)
        if self.greedy:  # greedy ignores the sampling knobs and the seed
            d.update(top_p=1.0, top_k=0, seed=0)
        return d

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> SamplingConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: 'sampling' must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(_SAMPLING_FIELDS))
        if unknown:
            raise ConfigError(f"{where}: unknown sampling field(s) {unknown}; known: {list(_SAMPLING_FIELDS)}")
        values = dict(raw)
        if "stop" in values:
            stop = values["stop"]
            values["stop"] = tuple(stop) if isinstance(stop, list) else stop
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {shown(value)}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {shown(value)}")


def _check_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {shown(value)}")


@dataclass(frozen=True)
class DataSource:
    """Where a task's documents come from.

    ``path``: a file shipped with the task (relative to the tasks folder).
    ``local``: a file name resolved against ``--data-dir`` (official data users keep locally).
    ``hub``: a dataset id on the Hugging Face hub (with ``subset`` and ``split``), used when online.
    ``fields``: renames, new name -> the source's column name (e.g. ``title: "poem name"``).
    ``package``: a data file inside an installed package, ``package_name/relative/path``.
    ``filter``: field -> value, list of values, or ``{min, max}`` (inclusive range).
    """

    path: str | None = None
    package: str | None = None
    local: str | None = None
    hub: str | None = None
    subset: str | None = None
    split: str = "test"
    filter: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptSpec:
    """A Jinja template over a document's fields, sent as the user turn of a chat."""

    template: str
    system: str | None = None


DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelOptions:
    """How a model's weights are fetched and loaded, the same for every backend and judge that loads
    one (evalkit.models). The defaults are the hub's main revision, no code from the model's repo,
    and bfloat16 on a GPU, float32 on a CPU."""

    dtype: str = "auto"
    revision: str | None = None  # a branch, tag or commit of a hub model
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class ChatFormat:
    """How a backend that renders prompts itself (transformers, vLLM) turns chat messages into
    prompt text. ``chat_template``: False sends the messages' contents joined by blank lines, with
    the tokenizer's own special tokens (base models). ``template_system``: False renders no system
    turn that the messages do not hold, even where the chat template adds a default one when
    there is none (SmolLM2's does: "You are a helpful AI assistant named SmolLM, trained by
    Hugging Face")."""

    chat_template: bool = True
    template_system: bool = True

    @property
    def key(self) -> str:
        """Part of the prompt and sample cache keys."""
        if not self.chat_template:
            return "plain"
        return "chat" if self.template_system else "chat-no-default-system"


@dataclass(frozen=True)
class BackendOptions:
    """Settings of the vLLM and OpenAI-compatible backends (the transformers backend ignores them)."""

    # OpenAI-compatible HTTP backend
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1; several, comma-separated: round-robin
    api_key_env: str | None = None  # NAME of the environment variable holding the key, never the key
    api: str = "chat"  # chat (server applies the chat template) or completions (prompt text)
    concurrency: int = 8  # requests in flight
    request_timeout: float = 600.0  # seconds without an answer before a request is retried
    max_retries: int = 5  # retries of one request on 429, 5xx, timeouts and malformed answers
    retry_backoff: float = 1.0  # seconds before the first retry; doubles with each retry
    # vLLM backend
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ConfigError(f"api must be 'chat' or 'completions', got {shown(self.api)}")
        for name in ("concurrency", "tensor_parallel_size", "data_parallel_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("max_retries", self.max_retries, minimum=0)
        if self.max_model_len is not None:
            _check_int("max_model_len", self.max_model_len, minimum=1)
        _check_float("retry_backoff", self.retry_backoff)
        if self.retry_backoff < 0:
            raise ConfigError(f"retry_backoff must be >= 0, got {shown(self.retry_backoff)}")
        _check_float("request_timeout", self.request_timeout)
        if self.request_timeout <= 0:
            raise ConfigError(f"request_timeout must be > 0, got {shown(self.request_timeout)}")
        _check_float("gpu_memory_utilization", self.gpu_memory_utilization)
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {shown(self.gpu_memory_utilization)}")
        for url in (self.base_url or "").split(","):
            if self.base_url is not None and not url.strip().startswith(("http://", "https://")):
                raise ConfigError(f"base_url must start with http:// or https://, got {shown(redact_url(url.strip()))}")


@dataclass(frozen=True)
class JudgeConfig:
    """What the run says about its judges (evalkit.judges); None keeps each task's default."""

    reward_model: str | None = None  # reward model folder or hub id
    equivalence: str | None = None  # NoveltyBench equivalence: deberta[:PATH] | rouge1[:T] | sbert[:T] | llm[:MODEL]
    # The LLM judge (rubric judges in judges/): a model on any generation backend. Without one,
    # optional rubric judges are left out and tasks that require one are unavailable.
    model: str | None = None  # "embedded", a folder, a hub id, or a served model name
    backend: str = "hf"
    options: BackendOptions = field(default_factory=BackendOptions)
    rubrics: tuple[str, ...] = ()  # rubric judges added to every task of the run (e.g. quality)
    max_tokens: int | None = None  # cap on the judge's answers (default: each rubric's max_tokens)

    def to_json(self) -> dict[str, Any]:
        """The fields under the names of the command-line options, as results.json records them."""
        return {
            "reward_model": self.reward_model,
            "equivalence": self.equivalence,
            "judge": self.model,
            "judge_backend": self.backend,
            "judge_options": dataclasses.asdict(self.options),
            "judge_rubrics": list(self.rubrics),
            "judge_max_tokens": self.max_tokens,
        }


def check_run_id(run_id: Any) -> None:
    """A run id names one folder inside --output-dir: no path separator, no ``..``, not absolute,
    not hidden, no control character."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise ConfigError(f"run id must be a non-empty folder name, got {shown(run_id)}")
    if "/" in run_id or "\\" in run_id:
        why = "it holds a path separator"
    elif ".." in run_id:
        why = "it holds '..'"
    elif run_id.startswith("."):
        why = "it starts with '.'"
    elif any(ord(c) < 32 or c == "\x7f" for c in run_id):
        why = "it holds a control character"
    elif len(run_id) > 200:
        why = "it is longer than 200 characters"
    else:
        return
    raise ConfigError(f"run id {shown(run_id)} must be one folder name inside --output-dir: {why}")


def check_limit(limit: Any) -> None:
    """``--limit``: a number of documents (an integer >= 1) or a share of them (0 < x < 1)."""
    if limit is None:
        return
    valid = False
    if not isinstance(limit, bool) and isinstance(limit, (int, float)) and math.isfinite(limit):
        valid = 0 < limit < 1 or (limit >= 1 and float(limit).is_integer())
    if not valid:
        raise ConfigError(
            f"limit must be >= 1 (a number of documents) or a fraction between 0 and 1 (a share of them), "
            f"got {shown(limit)}"
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything `evalkit run` was asked to do; recorded verbatim in results.json.

    The model and prompt controls are flat fields under their option names (``dtype``,
    ``revision``, ``trust_remote_code``, ``system_prompt``, ``no_system_prompt``,
    ``chat_template``, ``num_fewshot``); ``model_options`` and ``chat_format`` group them as the
    backends take them."""

    model: str | None
    tasks: tuple[str, ...]
    suite: str | None = None
    backend: str = "hf"
    sampling_overrides: dict[str, Any] = field(default_factory=dict)
    limit: int | float | None = None  # documents per task: a number, or a share (0 < limit < 1) rounded up
    seed: int = 1234
    data_dir: Path | None = None
    output_dir: Path = Path("results")
    run_id: str | None = None
    batch_size: int | None = None  # None: 64 on a CPU, from free memory on a GPU (transformers backend)
    device: str = "auto"
    use_cache: bool = True
    task_dirs: tuple[Path, ...] = ()  # folders of extra task YAML files
    cache_dir: Path | None = None  # generation cache folder; default $EVALKIT_CACHE or ~/.cache/evalkit
    prompt_style: str | None = None  # for tasks that offer several prompts
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    judges: JudgeConfig = field(default_factory=JudgeConfig)
    # How the model under test is loaded (ModelOptions)
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on a CPU
    revision: str | None = None  # a branch, tag or commit of a hub model
    trust_remote_code: bool = False
    # How prompts are built
    system_prompt: str | None = None  # replaces every task's system turn
    no_system_prompt: bool = False  # no system turn at all, not even the chat template's default
    chat_template: bool = True  # False: plain prompt text (base models)
    num_fewshot: int | None = None  # few-shot examples per prompt (lm_eval tasks; tasks that declare examples)
    override_tasks: bool = False  # a --task-dir file may replace a built-in task of the same name

    def __post_init__(self) -> None:
        check_limit(self.limit)
        if self.run_id is not None:
            check_run_id(self.run_id)
        ModelOptions(self.dtype, self.revision, self.trust_remote_code)  # checks the dtype
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise ConfigError(f"revision must be a branch, tag or commit, got {shown(self.revision)}")
        if self.system_prompt is not None:
            if not isinstance(self.system_prompt, str) or not self.system_prompt.strip():
                raise ConfigError("system prompt must be a non-empty text (for no system turn: --no-system-prompt)")
            if self.no_system_prompt:
                raise ConfigError("--system-prompt and --no-system-prompt exclude each other")
        if self.num_fewshot is not None:
            _check_int("num_fewshot", self.num_fewshot, minimum=0)

    @property
    def model_options(self) -> ModelOptions:
        return ModelOptions(self.dtype, self.revision, self.trust_remote_code)

    @property
    def chat_format(self) -> ChatFormat:
        return ChatFormat(chat_template=self.chat_template, template_system=not self.no_system_prompt)

    def documents_limit(self, total: int) -> int | None:
        """How many of a task's ``total`` documents the run scores: ``limit`` itself, or a share
        of ``total`` rounded up (at least one); None for all."""
        if self.limit is None:
            return None
        if 0 < self.limit < 1:
            return max(1, math.ceil(self.limit * total))
        return int(self.limit)

    def to_json(self) -> dict[str, Any]:
        """The record in results.json: every URL without its userinfo (``http://***@host``), so
        credentials in --base-url or --judge-base-url are not written."""
        d = dataclasses.asdict(self)
        for key in ("data_dir", "output_dir", "cache_dir"):
            d[key] = str(d[key]) if d[key] is not None else None
        d["tasks"] = list(self.tasks)
        d["task_dirs"] = [str(p) for p in self.task_dirs]
        del d["judges"]
        return redact_strings({**d, **self.judges.to_json()})
