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
from evalkit.config import BackendOptions, ChatFormat, ModelOptions


@BACKENDS.register("hf")
def _hf(
    model: str | None,
    device: str,
    batch_size: int | None,
    options: BackendOptions,
    model_options: ModelOptions | None = None,
    chat_format: ChatFormat | None = None,
) -> Backend:
    return HFBackend(model, device=device, batch_size=batch_size, options=model_options, chat_format=chat_format)


@BACKENDS.register("vllm")
def _vllm(
    model: str | None,
    device: str,
    batch_size: int | None,
    options: BackendOptions,
    model_options: ModelOptions | None = None,
    chat_format: ChatFormat | None = None,
) -> Backend:
    return VLLMBackend(model, options, model_options, chat_format)


@BACKENDS.register("openai")
def _openai(
    model: str | None,
    device: str,
    batch_size: int | None,
    options: BackendOptions,
    model_options: ModelOptions | None = None,
    chat_format: ChatFormat | None = None,
) -> Backend:
    return OpenAIBackend(model, options, model_options, chat_format)


def make_backend(
    name: str,
    model: str | None,
    device: str,
    batch_size: int | None,
    options: BackendOptions,
    model_options: ModelOptions | None = None,
    chat_format: ChatFormat | None = None,
) -> Backend:
    """The backend ``name`` on ``model``; ``model_options`` (dtype, revision, trust_remote_code)
    and ``chat_format`` (chat template, the template's default system turn) default to the
    defaults, as the judges use them."""
    return BACKENDS.get(name)(model, device, batch_size, options, model_options, chat_format)


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
