"""The transformers backend: a local folder or hub id, batched, n samples per prompt in one call."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from evalkit.backends.base import Backend, LogitsBackend, LogLikelihoodBackend, PromptBatch, sample_seed
from evalkit.config import ChatFormat, ModelOptions, SamplingConfig
from evalkit.errors import ConfigError
from evalkit.models import (
    choose_device,
    choose_dtype,
    dtype_for,
    dtype_name,
    load_tokenizer,
    load_weights,
    resolve_model,
)


def render_chat(tokenizer, messages: Sequence[dict[str, str]], chat_format: ChatFormat | None = None) -> str:  # noqa: ANN001
    """The prompt text of chat messages: the chat template when the tokenizer has one and the
    format asks for it, else the contents joined by blank lines. Every backend that renders
    locally (transformers, vLLM, `evalkit serve`) renders through this."""
    chat_format = chat_format or ChatFormat()
    if not chat_format.chat_template or not tokenizer.chat_template:
        return "\n\n".join(m["content"] for m in messages)
    if not chat_format.template_system and messages and messages[0]["role"] != "system":
        return _without_default_system(tokenizer, list(messages))
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


_PROBE = "EvalkitSystemProbe7f3a"  # a system message no template rewrites or finds elsewhere


def _without_default_system(tokenizer, messages: list[dict[str, str]]) -> str:  # noqa: ANN001
    """The chat without any system turn. Many chat templates add a default system turn when the
    messages have none (SmolLM2's, Qwen2.5's), so the template is given a probe system message
    and the probe's turn, as the template renders a system turn alone, is cut out again."""

    def apply(chat: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation)

    probe = {"role": "system", "content": _PROBE}
    try:
        with_probe = apply([probe, *messages], True)
        probe_only = apply([probe], False)
    except Exception:  # noqa: BLE001 - a template that refuses a system turn raises in Jinja
        with_probe = probe_only = ""
    try:
        empty = apply([], False)
    except Exception:  # noqa: BLE001 - a template that needs a message: nothing comes before the turns
        empty = ""
    turn = probe_only[len(os.path.commonprefix([probe_only, empty])) :]  # what the template writes first is kept
    if _PROBE not in turn or with_probe.count(turn) != 1:
        raise ConfigError(
            "--no-system-prompt: this model's chat template cannot render a chat without a system turn; "
            "give --system-prompt TEXT, or --no-chat-template for plain prompt text"
        )
    text = with_probe.replace(turn, "", 1)
    bos = tokenizer.bos_token or ""
    if bos and with_probe.startswith(bos) and not text.startswith(bos):
        text = bos + text  # a template that needs a message wrote its BOS token inside what was cut
    residue = text
    for message in messages:
        residue = residue.replace(message["content"], "")
    if "system" in residue.lower():  # a system turn the template writes whatever the messages say
        raise ConfigError(
            "--no-system-prompt: this model's chat template writes a system turn of its own in every chat; "
            "give --system-prompt TEXT, or --no-chat-template for plain prompt text"
        )
    return text


def adds_special_tokens(tokenizer) -> bool:  # noqa: ANN001
    """A chat template already writes the special tokens (BOS and the like) into the text."""
    return not tokenizer.chat_template


class LocalModelBackend(Backend):
    """A backend that runs a model from a local folder or hub id with its transformers tokenizer
    (transformers, vLLM): the model resolved and fingerprinted at once (evalkit.models), the
    tokenizer loaded on first use, prompts rendered with its chat template."""

    def __init__(
        self, model: str | None, options: ModelOptions | None = None, chat_format: ChatFormat | None = None
    ) -> None:
        self.resolved = resolve_model(model, options=options)
        self.chat_format = chat_format or ChatFormat()
        self._tokenizer: Any = None

    @property
    def fingerprint(self) -> str:
        return self.resolved.fingerprint

    @property
    def model_name(self) -> str:
        return self.resolved.name

    @property
    def tokenizer(self) -> Any:  # a transformers tokenizer
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.resolved)
        return self._tokenizer

    @property
    def render_identity(self) -> str:
        return f"{self.fingerprint}|{self.chat_format.key}"

    @property
    def sample_identity(self) -> str:
        # The chat format decides whether the tokenizer adds its own special tokens (BOS).
        return f"{super().sample_identity}|{self.chat_format.key}"

    @property
    def adds_special_tokens(self) -> bool:
        """Whether tokenizing a prompt adds the special tokens (BOS and the like): not when a chat
        template has already written them into the text."""
        return not self.chat_format.chat_template or adds_special_tokens(self.tokenizer)

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages, self.chat_format)


class HFBackend(LocalModelBackend, LogitsBackend, LogLikelihoodBackend):
    """Tokenizer and weights load on first use: a run served entirely from the cache (prompts
    and samples) imports no transformers, and no torch unless --device auto and --dtype auto need
    it to find the device (the precision is part of the cache keys)."""

    name = "hf"

    def __init__(
        self,
        model: str | None,
        device: str = "auto",
        batch_size: int = 64,
        options: ModelOptions | None = None,
        chat_format: ChatFormat | None = None,
    ) -> None:
        super().__init__(model, options, chat_format)
        self._device = device
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def device(self) -> str:
        self._device = choose_device(self._device)
        return self._device

    @property
    def model(self) -> Any:  # a transformers PreTrainedModel
        if self._model is None:
            self._model = load_weights(self.resolved, "causal_lm", self.device)
        return self._model

    @property
    def precision(self) -> str:
        """The dtype the weights load in: the user's --dtype, else bfloat16 on a GPU and float32 on
        a CPU (with --device auto, finding the device imports torch, not transformers)."""
        options = self.resolved.options
        return options.dtype if options.dtype != "auto" else dtype_for(self.device, "auto")

    def versions(self) -> dict[str, str]:
        return {"device": self._device if self._model is not None else "none (served from the cache)"}

    def lm_eval_model(self, batch_size: int, seed: int) -> tuple[str, dict[str, Any]]:
        """lm-eval's "hf" model on this model folder or hub id, device and dtype."""
        device = self.device
        # Log-likelihood batches hold [batch, length, vocabulary] logits: 25-shot ARC contexts are
        # ~1-2k tokens. On a GPU lm-eval finds the largest batch that fits ("auto", at most
        # --batch-size); on a CPU batches stay small whatever --batch-size (sized for generation) says.
        batch: dict[str, Any] = {"batch_size": min(batch_size, 4)}
        if device.startswith("cuda"):
            batch = {"batch_size": "auto", "max_batch_size": batch_size}
        args = {
            "pretrained": str(self.resolved.source),
            "device": device,
            "dtype": dtype_name(choose_dtype(device, self.resolved.options.dtype)),
            **batch,
        }
        if self.resolved.revision is not None:
            args["revision"] = self.resolved.revision
        if self.resolved.options.trust_remote_code:
            args["trust_remote_code"] = True
        return "hf", args

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        return max(1, self.batch_size // sampling.decodes)

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        import torch  # heavy: only when samples are drawn, not for a run served from the cache

        sampling = batch.sampling
        rows = sampling.decodes
        prompts_per_call = self.prompts_per_call(sampling)
        out: list[list[str]] = []
        for start in range(0, len(batch.prompts), prompts_per_call):
            prompts = list(batch.prompts[start : start + prompts_per_call])
            with torch.inference_mode():
                texts = self._generate_call(prompts, sampling, rows)
            for i in range(len(prompts)):
                samples = texts[i * rows : (i + 1) * rows]
                out.append(samples * sampling.n if sampling.greedy else samples)
            if on_progress:
                on_progress(len(prompts) * sampling.n)
        return out

    def _generate_call(self, prompts: list[str], sampling: SamplingConfig, rows: int) -> list[str]:
        from transformers import GenerationConfig, LogitsProcessorList  # heavy, as torch above

        from evalkit.backends.sampler import SeededSampler  # imports torch

        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=self.adds_special_tokens
        ).to(self.device)
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            # Sampling happens in SeededSampler (per-sample seeds); it leaves one finite logit per
            # row, so the multinomial draw below it is deterministic. No warpers of HF's own.
            do_sample=True,
            temperature=1.0,
            top_k=None,
            top_p=None,
            num_return_sequences=rows,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            stop_strings=list(sampling.stop) or None,
        )
        seeds = [sample_seed(sampling.seed, p, i) for p in prompts for i in range(rows)]
        sampler = SeededSampler(seeds, sampling, prompt_len=enc["input_ids"].shape[1], device=self.device)
        generated = self.model.generate(
            **enc,
            generation_config=config,
            logits_processor=LogitsProcessorList([sampler]),
            tokenizer=self.tokenizer if sampling.stop else None,
        )
        new_tokens = generated[:, enc["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [truncate_at_stop(t, sampling.stop) for t in texts]


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut the text at the earliest stop string (generation halts after the stop string is emitted)."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
