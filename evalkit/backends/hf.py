"""The transformers backend: a local folder or hub id, batched, n samples per prompt in one call."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.backends.base import Backend, PromptBatch, sample_seed
from evalkit.config import SamplingConfig
from evalkit.errors import ModelError
from evalkit.resources import hf_offline


def resolve_model(model: str | None) -> tuple[str, Path | str]:
    """(name shown in results, what transformers loads): embedded default, local folder or hub id."""
    if model is None:
        from evalkit.backends.embedded import DEFAULT_MODEL_NAME, default_model_dir

        return f"{DEFAULT_MODEL_NAME} (embedded)", default_model_dir()
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json (not a transformers checkpoint)")
        return model, path.resolve()
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_like_path:
        raise ModelError(f"model path not found: {model}")
    if hf_offline():
        raise ModelError(f"model '{model}' is not a local folder and the hub is offline (HF_HUB_OFFLINE=1)")
    return model, model


def folder_fingerprint(folder: Path) -> str:
    """Hash of the config and the weight files' names, sizes and modification times."""
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".json", ".model", ".jinja"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def model_fingerprint(name: str, source: Path | str) -> str:
    """Cache identity of a model: its local files, or the hub id at its current revision."""
    if isinstance(source, Path):
        return f"local@{folder_fingerprint(source)}"
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from None
    return f"{source}@{getattr(config, '_commit_hash', None) or 'unknown'}"


def load_tokenizer(name: str, source: Path | str):  # noqa: ANN201 - a transformers tokenizer
    """The model's tokenizer, left-padded (decoder-only generation) with a pad token."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # evalkit shows its own progress
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of '{name}': {str(exc).splitlines()[0]}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def render_chat(tokenizer, messages: Sequence[dict[str, str]]) -> str:  # noqa: ANN001
    """The prompt text of chat messages: the chat template when the tokenizer has one. Every
    backend that renders locally (transformers, vLLM, `evalkit serve`) renders through this."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages)


def adds_special_tokens(tokenizer) -> bool:  # noqa: ANN001
    """A chat template already writes the special tokens (BOS and the like) into the text."""
    return not tokenizer.chat_template


class LocalModelBackend(Backend):
    """A backend that runs a model from a local folder or hub id with its transformers tokenizer
    (transformers, vLLM): the model resolved and fingerprinted at once, the tokenizer loaded on
    first use, prompts rendered with its chat template."""

    def __init__(self, model: str | None) -> None:
        self._name, self._source = resolve_model(model)
        self._fingerprint = model_fingerprint(self._name, self._source)
        self._tokenizer = None

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._name, self._source)
        return self._tokenizer

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)


class HFBackend(LocalModelBackend):
    """Tokenizer and weights load on first use: a run served entirely from the cache (prompts
    and samples) imports neither torch nor transformers."""

    name = "hf"

    def __init__(self, model: str | None, device: str = "auto", batch_size: int = 64) -> None:
        super().__init__(model)
        self._device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def device(self) -> str:
        if self._device == "auto":
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def model(self):  # noqa: ANN201 - a transformers PreTrainedModel
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            try:
                model = AutoModelForCausalLM.from_pretrained(self._source, dtype=dtype)
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load model '{self._name}': {str(exc).splitlines()[0]}") from None
            self._model = model.to(self.device).eval()
        return self._model

    def versions(self) -> dict[str, str]:
        return {"device": self._device if self._model is not None else "none (served from the cache)"}

    def prompts_per_call(self, sampling: SamplingConfig) -> int:
        return max(1, self.batch_size // sampling.decodes)

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        import torch

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
        from transformers import GenerationConfig, LogitsProcessorList

        from evalkit.backends.sampler import SeededSampler

        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=adds_special_tokens(self.tokenizer)
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
