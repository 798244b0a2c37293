"""Generation backends, looked up by name: ``hf`` (transformers), ``vllm``, ``openai`` (any
OpenAI-compatible server). A factory takes a :class:`BackendArgs` and returns a
:class:`Backend`; what a backend can do beyond generating is a capability class it inherits
(LogitsBackend, LogLikelihoodBackend). Heavy libraries load when a backend first needs them."""

from __future__ import annotations

from evalkit.backends.base import (
    BACKENDS,
    Backend,
    BackendArgs,
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
def _hf(a: BackendArgs) -> Backend:
    return HFBackend(a.model, a.device, a.batch_size, a.model_options, a.chat_format)


@BACKENDS.register("vllm")
def _vllm(a: BackendArgs) -> Backend:
    return VLLMBackend(a.model, a.options, a.model_options, a.chat_format)


@BACKENDS.register("openai")
def _openai(a: BackendArgs) -> Backend:
    return OpenAIBackend(a.model, a.options, a.model_options, a.chat_format)


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
    args = BackendArgs(model, device, batch_size, options, model_options or ModelOptions(), chat_format or ChatFormat())
    return BACKENDS.get(name)(args)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendArgs",
    "GenerationFailed",
    "LogLikelihoodBackend",
    "LogitsBackend",
    "PromptBatch",
    "Sample",
    "make_backend",
    "sample_seed",
    "texts_of",
]
