"""Generation backends, looked up by name: ``hf`` (transformers), ``vllm``, ``openai`` (any
OpenAI-compatible server). A factory takes (model, device, batch_size, options) and returns a
:class:`Backend`; what a backend can do beyond generating is a capability class it inherits
(LogitsBackend, LogLikelihoodBackend). Heavy libraries load when a backend first needs them."""

from __future__ import annotations

from evalkit.backends.base import (
    BACKENDS,
    Backend,
    GenerationFailed,
    LogitsBackend,
    LogLikelihoodBackend,
    PromptBatch,
    Sample,
    sample_seed,
    texts_of,
)
from evalkit.backends.hf import HFBackend
from evalkit.backends.openai import OpenAIBackend
from evalkit.backends.vllm import VLLMBackend
from evalkit.config import BackendOptions


@BACKENDS.register("hf")
def _hf(model: str | None, device: str, batch_size: int | None, options: BackendOptions) -> Backend:
    return HFBackend(model, device=device, batch_size=batch_size)


@BACKENDS.register("vllm")
def _vllm(model: str | None, device: str, batch_size: int | None, options: BackendOptions) -> Backend:
    return VLLMBackend(model, options)


@BACKENDS.register("openai")
def _openai(model: str | None, device: str, batch_size: int | None, options: BackendOptions) -> Backend:
    return OpenAIBackend(model, options)


def make_backend(name: str, model: str | None, device: str, batch_size: int | None, options: BackendOptions) -> Backend:
    return BACKENDS.get(name)(model, device, batch_size, options)


__all__ = [
    "BACKENDS",
    "Backend",
    "GenerationFailed",
    "LogLikelihoodBackend",
    "LogitsBackend",
    "PromptBatch",
    "Sample",
    "make_backend",
    "sample_seed",
    "texts_of",
]
