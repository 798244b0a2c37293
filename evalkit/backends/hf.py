"""The transformers backend: a local folder or hub id, batched, n samples per prompt in one call."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.backends.base import (
    Backend,
    LogitsBackend,
    LogLikelihoodBackend,
    PromptBatch,
    Sample,
    sample_seed,
    texts_of,
)
from evalkit.config import ChatFormat, ModelOptions, SamplingConfig
from evalkit.errors import ConfigError, PromptTooLong
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


DEFAULT_BATCH_SIZE = 64  # sequences per call on a CPU when --batch-size is not given
AUTO_MAX_ROWS = 2048  # on a GPU when --batch-size is not given: the most sequences in one call
MEMORY_FRACTION = 0.8  # of the GPU memory free when a call starts


class HFBackend(LocalModelBackend, LogitsBackend, LogLikelihoodBackend):
    """Tokenizer and weights load on first use: a run served entirely from the cache (prompts
    and samples) imports no transformers, and no torch unless --device auto and --dtype auto need
    it to find the device (the precision is part of the cache keys).

    ``batch_size``: the sequences of one ``model.generate`` call. None (``--batch-size`` not
    given): 64 on a CPU; on a GPU as many as the free memory holds (rows_that_fit), up to
    AUTO_MAX_ROWS. A prompt whose n samples exceed it has them drawn over several calls, so
    memory follows the batch size and the real output length, never n or the requested
    max_tokens (clamped to the model's context, see clamp_max_tokens)."""

    name = "hf"

    def __init__(
        self,
        model: str | None,
        device: str = "auto",
        batch_size: int | None = None,
        options: ModelOptions | None = None,
        chat_format: ChatFormat | None = None,
    ) -> None:
        super().__init__(model, options, chat_format)
        self._device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._notes: set[str] = set()

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

    def lm_eval_model(self, batch_size: int | None, seed: int) -> tuple[str, dict[str, Any]]:
        """lm-eval's "hf" model on this model folder or hub id, device and dtype."""
        batch_size = batch_size or DEFAULT_BATCH_SIZE
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

    def _on_gpu(self) -> bool:
        """Whether generation runs on CUDA, without importing torch where there is no NVIDIA
        driver (a run served from the cache on a CPU machine imports nothing heavy)."""
        if self._device == "auto" and self._model is None and not Path("/dev/nvidiactl").exists():
            return False
        return self.device.startswith("cuda")

    def max_rows(self) -> int:
        """The most sequences of one call: --batch-size, else 64 on a CPU, AUTO_MAX_ROWS on a GPU."""
        if self.batch_size is not None:
            return self.batch_size
        return AUTO_MAX_ROWS if self._on_gpu() else DEFAULT_BATCH_SIZE

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        return max(1, self.max_rows() // sampling.decodes)

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        return texts_of(self.generate_samples(batch, on_progress))

    def generate_samples(
        self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None
    ) -> list[list[Sample]]:
        import torch  # heavy: only when samples are drawn, not for a run served from the cache

        sampling = batch.sampling
        prompts_per_call = self.prompts_per_call(sampling)
        out: list[list[Sample]] = []
        for start in range(0, len(batch.prompts), prompts_per_call):
            prompts = list(batch.prompts[start : start + prompts_per_call])
            with torch.inference_mode():
                samples = self._generate_prompts(prompts, sampling)
            out.extend(row * sampling.n if sampling.greedy else row for row in samples)
            if on_progress:
                on_progress(len(prompts) * sampling.n)
        return out

    def _generate_prompts(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Sample]]:
        """``sampling.decodes`` samples of every prompt: the (prompt, sample index) rows cut into
        calls of at most max_rows (or, on a GPU without --batch-size, what the free memory holds)."""
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=self.adds_special_tokens)
        prompt_len = enc["input_ids"].shape[1]
        max_new = self.clamp_max_tokens(sampling.max_tokens, prompt_len, prompts, enc["attention_mask"])
        rows = [(p, i) for p in range(len(prompts)) for i in range(sampling.decodes)]
        per_call = self.max_rows()
        if self.batch_size is None and self.device.startswith("cuda"):
            per_call = rows_that_fit(self.model, prompt_len + max_new, free_gpu_bytes(self.device), per_call)
        samples: list[list[Sample]] = [[] for _ in prompts]
        for start in range(0, len(rows), per_call):
            piece = rows[start : start + per_call]
            seeds = [sample_seed(sampling.seed, prompts[p], i) for p, i in piece]
            for (p, _), sample in zip(piece, self._generate_rows(enc, [p for p, _ in piece], seeds, sampling, max_new)):
                samples[p].append(sample)
        return samples

    def clamp_max_tokens(self, max_tokens: int, prompt_len: int, prompts: list[str], mask: Any) -> int:
        """max_tokens, at most what the model's context leaves after the (padded) prompts; a note
        on stderr when it is cut. A prompt that leaves no room is PromptTooLong."""
        context = context_length(self.model.config)
        if context is None or max_tokens + prompt_len <= context:
            return max_tokens
        if prompt_len >= context:
            lengths = mask.sum(dim=1).tolist()
            raise PromptTooLong(
                {p: int(n) for p, n in zip(prompts, lengths) if n >= context},
                f"not shorter than the model's context of {context} tokens",
                "leave these documents out (--limit) or use a model with a longer context",
            )
        clamped = context - prompt_len
        note = f"evalkit: max_tokens {max_tokens} is more than the model's context of {context} tokens leaves"
        if note not in self._notes:
            self._notes.add(note)
            print(f"{note} after the prompt; generating at most {clamped} new tokens", file=sys.stderr)
        return clamped

    def _generate_rows(
        self, enc: Any, prompt_rows: list[int], seeds: list[int], sampling: SamplingConfig, max_new: int
    ) -> list[Sample]:
        """One model.generate call: row r is prompt ``prompt_rows[r]`` with seed ``seeds[r]``."""
        import torch
        from transformers import LogitsProcessorList

        from evalkit.backends.sampler import SeededSampler  # imports torch

        index = torch.tensor(prompt_rows)
        input_ids, mask = enc["input_ids"][index], enc["attention_mask"][index]
        pad = int((mask.sum(dim=0) == 0).sum())  # left padding no row of this call needs
        input_ids, mask = input_ids[:, pad:].to(self.device), mask[:, pad:].to(self.device)
        config = self._generation_config(sampling, max_new)
        sampler = SeededSampler(seeds, sampling, prompt_len=input_ids.shape[1], device=self.device)
        generated = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([sampler]),
            tokenizer=self.tokenizer if sampling.stop else None,
        )
        new_tokens = generated[:, input_ids.shape[1] :]
        ends = set(eos_ids(config.eos_token_id)) | {self.tokenizer.pad_token_id}
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [
            finished_sample(text, ids, ends, sampling.stop, max_new) for text, ids in zip(texts, new_tokens.tolist())
        ]

    def _generation_config(self, sampling: SamplingConfig, max_new: int) -> Any:
        from transformers import GenerationConfig  # heavy, as torch above

        return GenerationConfig(
            max_new_tokens=max_new,
            # Sampling happens in SeededSampler (per-sample seeds); it leaves one finite logit per
            # row, so the multinomial draw below it is deterministic. No warpers of HF's own.
            do_sample=True,
            temperature=1.0,
            top_k=None,
            top_p=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            stop_strings=list(sampling.stop) or None,
        )


def eos_ids(eos: Any) -> list[int]:
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def finished_sample(text: str, ids: list[int], ends: set[int], stop: Sequence[str], max_new: int) -> Sample:
    """A generated row as a Sample: its text cut at the first stop string, why it ended and how
    many tokens it generated. After a row ends, generate pads it (the pad token is often EOS)."""
    first_end = next((j for j, t in enumerate(ids) if t in ends), None)
    cut = truncate_at_stop(text, stop)
    if len(cut) < len(text):
        return Sample(cut, "stop", first_end if first_end is not None else len(ids))  # a stop string ended it
    if first_end is not None:
        return Sample(cut, "stop", first_end + 1)  # the end-of-sequence token
    return Sample(cut, "length" if len(ids) >= max_new else "stop", len(ids))


def context_length(config: Any) -> int | None:
    """The model's context in tokens, from its config; None when it does not say."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def free_gpu_bytes(device: str) -> int:
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def rows_that_fit(model: Any, seq_len: int, free_bytes: int, cap: int) -> int:
    """How many sequences of ``seq_len`` tokens (prompt and new) one generate call can hold in
    MEMORY_FRACTION of ``free_bytes``: each row's KV cache for all its tokens, the prefill's
    activations, and the last step's logits with the sampler's temporaries (sort, float64 CDF)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    width = next(model.parameters()).element_size()
    kv = 2 * config.num_hidden_layers * kv_heads * head_dim * width * seq_len
    prefill = seq_len * (getattr(config, "intermediate_size", 4 * config.hidden_size) + 4 * config.hidden_size) * width
    logits = config.vocab_size * 40
    per_row = kv + prefill + logits
    return max(1, min(cap, int(free_bytes * MEMORY_FRACTION) // per_row))


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut the text at the earliest stop string (generation halts after the stop string is emitted)."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
