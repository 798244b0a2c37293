"""``SamplingParams``: the fields evalkit uses, with vLLM's own normalisation and checks.

A keyword vLLM does not have is a TypeError, as for vLLM's msgspec struct (0.8.0
sampling_params.py:108-112; 0.33.0 :271-277). The stand-in knows only the fields evalkit sends;
vLLM has more (penalties, logprobs, ...), which evalkit must not need without adding them here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vllm.version import RELEASE

_SAMPLING_EPS = 1e-5  # 0.8.0 sampling_params.py:19; 0.33.0 :32
_MAX_TEMP = 1e-2  # 0.8.0 :20; 0.33.0 :33


def _invalid(message: str) -> Exception:
    return RELEASE.validation_error(message)


@dataclass
class SamplingParams:
    # Field defaults: 0.8.0 sampling_params.py:194-208; 0.33.0 :285-337.
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = field(default_factory=lambda: RELEASE.top_k_off)
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = 16

    def __post_init__(self) -> None:
        # 0.8.0 :332-337, 0.33.0 :560-568: a temperature in (0, 0.01) is raised to 0.01.
        if 0 < self.temperature < _MAX_TEMP:
            self.temperature = _MAX_TEMP
        if self.seed == -1:  # 0.8.0 :339-340; 0.33.0 :570-571
            self.seed = None
        if self.stop is None:  # 0.8.0 :342-345; 0.33.0 :577-580
            self.stop = []
        elif isinstance(self.stop, str):
            self.stop = [self.stop]
        self._verify_args()
        if self.temperature < _SAMPLING_EPS:
            # Greedy: 0.8.0 :366-371, 0.33.0 :615-620 reset the sampling knobs, then require n == 1.
            self.top_p = 1.0
            self.top_k = RELEASE.top_k_off
            self._verify_greedy_sampling()

    def _verify_args(self) -> None:
        # 0.8.0 :375-426; 0.33.0 :634-736 (only the checks of the fields above).
        if not isinstance(self.n, int):
            raise _invalid(f"n must be an int, but is of type {type(self.n)}")
        if self.n < 1:
            raise _invalid(f"n must be at least 1, got {self.n}.")
        if RELEASE.max_temperature is not None and not math.isfinite(self.temperature):
            raise _invalid(f"temperature must be a finite number, got {self.temperature}.")  # 0.33.0 :656-660
        if self.temperature < 0.0:
            raise _invalid(f"temperature must be non-negative, got {self.temperature}.")
        if RELEASE.max_temperature is not None and self.temperature > RELEASE.max_temperature:
            raise _invalid(f"temperature must be in [0, 2], got {self.temperature}.")  # 0.33.0 :668-670
        if not 0.0 < self.top_p <= 1.0:
            raise _invalid(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.top_k < -1 or (RELEASE.top_k_zero_is_error and self.top_k == 0):
            raise _invalid(f"top_k must be {RELEASE.top_k_off} (disable), or at least 1, got {self.top_k}.")
        if not isinstance(self.top_k, int):
            raise _invalid(f"top_k must be an integer, got {type(self.top_k).__name__}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise _invalid(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if any(not s for s in self.stop):
            raise _invalid("stop cannot contain an empty string.")

    def _verify_greedy_sampling(self) -> None:
        # 0.8.0 :435-437; 0.33.0 :769-772
        if self.n > 1:
            raise _invalid(f"n must be 1 when using greedy sampling, got {self.n}.")

    def fields(self) -> dict:
        """What the engine holds after normalisation (for the stand-in's log)."""
        return {
            "n": self.n,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "stop": list(self.stop),
            "max_tokens": self.max_tokens,
        }
