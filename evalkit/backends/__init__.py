"""Generation backends, registered lazily so that heavy imports happen only when used.

A factory takes (model, device, batch_size, options) and returns a :class:`Backend`."""

from __future__ import annotations

from evalkit.backends.base import BACKENDS, Backend, BackendFactory, GenerationFailed, PromptBatch, sample_seed
from evalkit.config import BackendOptions


def _hf() -> BackendFactory:
    from evalkit.backends.hf import HFBackend

    return lambda model, device, batch_size, options: HFBackend(model, device=device, batch_size=batch_size)


def _vllm() -> BackendFactory:
    from evalkit.backends.vllm import VLLMBackend

    return lambda model, device, batch_size, options: VLLMBackend(model, options)


def _openai() -> BackendFactory:
    from evalkit.backends.openai import OpenAIBackend

    return lambda model, device, batch_size, options: OpenAIBackend(model, options)


BACKENDS.add_lazy("hf", _hf)
BACKENDS.add_lazy("vllm", _vllm)
BACKENDS.add_lazy("openai", _openai)


def make_backend(name: str, model: str | None, device: str, batch_size: int, options: BackendOptions) -> Backend:
    return BACKENDS.get(name)(model, device, batch_size, options)


__all__ = ["BACKENDS", "Backend", "GenerationFailed", "PromptBatch", "make_backend", "sample_seed"]
