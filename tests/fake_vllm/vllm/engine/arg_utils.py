"""``EngineArgs``: the engine arguments evalkit passes, and the checks made on them at start.

``LLM(**kwargs)`` hands every keyword it does not name itself to ``EngineArgs(...)``, a dataclass,
so an unknown keyword is a TypeError (0.8.0 entrypoints/llm.py:213-238 and engine/arg_utils.py:91-92;
0.33.0 entrypoints/llm.py:295-334 and engine/arg_utils.py:488-489). The fields and their places:
0.8.0 arg_utils.py:94 model, :96 tokenizer, :106 dtype, :108 seed, :109 max_model_len,
:117 tensor_parallel_size, :121 enable_prefix_caching, :126 gpu_memory_utilization;
0.33.0 :499 tokenizer, :517 dtype, :519 seed, :520 max_model_len, :548 tensor_parallel_size,
:598 enable_prefix_caching, :614 gpu_memory_utilization. ``disable_log_stats`` is set by LLM
itself (0.8.0 llm.py:194-195; 0.33.0 :225-226).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# 0.8.0 config.py:2511-2517 plus "auto"; 0.33.0 config/model.py:100 (ModelDType).
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
# 0.8.0 config.py:2614-2631: the smallest of these config.json keys is the derived context length.
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)


@dataclass
class EngineArgs:
    model: str
    tokenizer: str | None = None
    dtype: str = "auto"
    seed: int | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool | None = None
    gpu_memory_utilization: float = 0.9
    disable_log_stats: bool = False

    def max_model_len_checked(self) -> int:
        """The engine's context length: the user's max_model_len, which may not exceed what the
        model's config.json allows (0.8.0 config.py:2604-2732, _get_and_verify_max_len), or that."""
        if self.dtype not in DTYPES:
            raise ValueError(f"Unknown dtype: {self.dtype}")
        derived = _derived_max_len(Path(self.model))
        if self.max_model_len is None:
            return derived
        if self.max_model_len > derived:
            raise ValueError(
                f"User-specified max_model_len ({self.max_model_len}) is greater than the derived "
                f"max_model_len ({derived} in model's config.json)."
            )
        return self.max_model_len


def _derived_max_len(model: Path) -> int:
    config = json.loads((model / "config.json").read_text())
    found = [config[k] for k in _MAX_LEN_KEYS if isinstance(config.get(k), int)]
    if not found:
        raise ValueError(f"the stand-in cannot derive a context length from {model}/config.json")
    return min(found)
