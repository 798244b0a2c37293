"""What every generation backend provides, and how a sample's random seed is derived."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.config import BackendOptions, ChatFormat, ModelOptions, SamplingConfig
from evalkit.errors import EvalkitError
from evalkit.registry import Registry

FINISH_REASONS = ("stop", "length", "abort")


@dataclass(frozen=True)
class Sample:
    """One completion and how it ended. ``finish_reason``: "stop" (an end-of-sequence token or a
    stop string), "length" (cut at max_tokens or at the model's context), "abort" (vLLM aborted
    the request); None when not known (a backend that does not say, a sample cached before
    evalkit recorded it). ``tokens``: the new tokens generated, None when not known."""

    text: str
    finish_reason: str | None = None
    tokens: int | None = None


def texts_of(samples: Sequence[Sequence[Sample]]) -> list[list[str]]:
    return [[s.text for s in row] for row in samples]


@dataclass(frozen=True)
class PromptBatch:
    """Rendered prompts that share one sampling configuration; each gets ``sampling.n`` samples."""

    prompts: Sequence[str]
    sampling: SamplingConfig


def sample_seed(seed: int, prompt: str, index: int) -> int:
    """The seed of sample ``index`` of ``prompt``: independent of batching, of n and of run order,
    so a resumed run or a run with a larger n reproduces the same samples."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class GenerationFailed(EvalkitError):
    """A generation call failed part-way (a server that keeps failing, say). ``finished`` maps the
    index of every prompt of the batch that did finish to its samples, so the runner caches them
    before the error ends the run: nothing already generated is lost."""

    def __init__(self, message: str, finished: dict[int, list[Sample]] | None = None) -> None:
        super().__init__(message)
        self.finished = finished or {}


class Backend(ABC):
    name: str = ""
    # Whether sample i of a prompt can change with n. The transformers backend seeds every sample
    # on its own (sample_seed), so it cannot; engines that seed a request as a whole (vLLM, an
    # OpenAI-compatible server) can, and then n is part of the cache key.
    samples_depend_on_n: bool = False
    # Whether a prompt's samples are the same whichever prompts share its call. The transformers
    # backend pads a batch, which moves logits by rounding, so a resumed run regenerates a
    # partly cached batch whole; a server asked once per prompt can be asked for the missing only.
    batch_invariant: bool = False

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the model's weights and tokenizer: part of every cache key."""

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model as the user named it (or the embedded default's name)."""

    @property
    def precision(self) -> str:
        """The numeric precision samples are drawn in (a torch dtype name such as ``bfloat16``),
        or what the backend can say of it (a server's is its own)."""
        return "unknown"

    @property
    def render_identity(self) -> str:
        """What a rendered prompt depends on besides the messages: part of the prompt cache key."""
        return self.fingerprint

    @property
    def sample_identity(self) -> str:
        """What a sample depends on besides its prompt, sampling and index: the model, the
        backend kind and its numeric precision. Part of every sample cache key, so a vLLM run
        after a transformers run, or bfloat16 after float32, never reuses the other's samples."""
        return f"{self.fingerprint}|backend={self.name}|dtype={self.precision}"

    @abstractmethod
    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text for chat messages (the model's chat template when it has one)."""

    @abstractmethod
    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        """``sampling.n`` completions for every prompt, in prompt order."""

    def generate_samples(
        self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None
    ) -> list[list[Sample]]:
        """The same completions with their finish reasons and token counts. The backends of
        evalkit say both; a backend that only implements ``generate`` says neither."""
        return [[Sample(t) for t in row] for row in self.generate(batch, on_progress)]

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        """How many prompts one generation call takes; the runner batches (and caches) by it."""
        return 1

    def versions(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        """Release what the backend holds beyond memory (worker processes); the run calls it at its end."""


class LogitsBackend(ABC):
    """Capability: the model's weights are in this process, so token log-probabilities can be read
    (held-out perplexity and entropy)."""

    @property
    @abstractmethod
    def model(self) -> Any:
        """The transformers model, loaded on first use."""

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """Its transformers tokenizer."""


class LogLikelihoodBackend(ABC):
    """Capability: lm-evaluation-harness can score log-likelihoods with the backend's model
    (the Open LLM tasks)."""

    @abstractmethod
    def lm_eval_model(self, batch_size: int | None, seed: int) -> tuple[str, dict[str, Any]]:
        """lm-eval's model name and arguments for this backend's model, device and dtype."""


@dataclass(frozen=True)
class BackendArgs:
    """What every backend factory is given: the model and the run's settings for it."""

    model: str | None
    device: str
    batch_size: int | None
    options: BackendOptions
    model_options: ModelOptions
    chat_format: ChatFormat


BackendFactory = Callable[[BackendArgs], Backend]

BACKENDS: Registry[BackendFactory] = Registry("backend")
