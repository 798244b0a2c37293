"""Which vLLM release the stand-in plays, and what differs between the releases it can play.

``FAKE_VLLM_VERSION`` picks one of the two releases whose source the stand-in was written from:
0.8.0 (the floor in pyproject.toml) and 0.33.0 (the newest checked). Citations in this package
are ``file:line`` inside the ``vllm`` package of that release's wheel (vllm-0.8.0-cp38-abi3 and
vllm-0.33.0-cp38-abi3 from PyPI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vllm.exceptions import VLLMValidationError


@dataclass(frozen=True)
class Release:
    top_k_off: int  # SamplingParams' default top_k, which means "off"
    top_k_zero_is_error: bool  # whether top_k == 0 is refused
    max_temperature: float | None  # the upper bound _verify_args puts on temperature
    validation_error: type[Exception]  # what a rejected request raises
    llm_gpu_memory_utilization: float  # LLM(...)'s default
    llm_seed: int | None  # LLM(...)'s default


RELEASES = {
    # sampling_params.py:202 top_k = -1; :395-397 "top_k must be -1 (disable), or at least 1";
    # :390-392 temperature only non-negative (no upper bound); errors are ValueError;
    # entrypoints/llm.py:171-172 seed=None, gpu_memory_utilization=0.9.
    "0.8.0": Release(-1, True, None, ValueError, 0.9, None),
    # sampling_params.py:318 top_k = 0; :681-683 only top_k < -1 refused ("0 (disable)");
    # :668-670 "temperature must be in [0, 2]"; errors are VLLMValidationError, not a ValueError
    # (exceptions.py:10-28); entrypoints/llm.py:195-196 seed=0, gpu_memory_utilization=0.92.
    "0.33.0": Release(0, False, 2.0, VLLMValidationError, 0.92, 0),
}

__version__ = os.environ.get("FAKE_VLLM_VERSION", "0.33.0")
if __version__ not in RELEASES:
    raise ImportError(f"the vllm stand-in plays only {sorted(RELEASES)}, not FAKE_VLLM_VERSION={__version__}")
RELEASE = RELEASES[__version__]
