"""evalkit: how good and how diverse are a language model's outputs.

The Python API (evalkit/api.py; the command line is a thin layer over it)::

    import evalkit

    result = evalkit.evaluate(suite="smoke", limit=3, n=2)     # -> RunResult, also written to results/
    result.tasks["smoke_writing"].metrics["ngram_diversity"]
    evalkit.compare("results/base", result)                     # -> Comparison (rows with verdicts)
    evalkit.check(result, baseline="results/base", max_drop=1)  # -> CheckOutcome (.passed)
    evalkit.load_results("results/base")                        # -> RunResult
    evalkit.train(data="alpaca.json", output_dir="ckpt/gem", loss="gem", max_steps=100)

``import evalkit`` stays light: each name loads its module on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "evalkit.api",
    "compare": "evalkit.api",
    "check": "evalkit.api",
    "load_results": "evalkit.api",
    "run_config": "evalkit.api",
    "RunResult": "evalkit.results",
    "TaskResult": "evalkit.results",
    "SCHEMA_VERSION": "evalkit.results",
    "Comparison": "evalkit.comparison",
    "CheckOutcome": "evalkit.gate",
    "RunConfig": "evalkit.config",
    "EvalkitError": "evalkit.errors",
}

__all__ = ["__version__", "train", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "train":  # the callable package evalkit.train (see its docstring)
        return importlib.import_module("evalkit.train")
    if name not in _LAZY:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
