"""The models a run loads for its judges, owned by the run: each loaded once, shared by all tasks.

An entry is kept under its role (``judge``, ``backend``, ``reward_model``, ``equivalence``) and an
identity that says what was loaded (a fingerprint with the settings that matter). The run closes
the pool when it ends, whether it finished or failed: backends are closed (vLLM's worker
processes stop) and the GPU memory the models held is given back.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from evalkit.backends import Backend

T = TypeVar("T")


class PoolKey(NamedTuple):
    role: str
    identity: str


class ModelPool:
    def __init__(self, device: str = "auto") -> None:
        self.device = device  # where the judges' models load ("auto": CUDA when present)
        self._entries: dict[PoolKey, Any] = {}

    def get(self, role: str, identity: str, load: Callable[[], T], alone: bool = False) -> T:
        """The entry for (role, identity), loaded on first need. ``alone``: loading it first
        releases the other entries of its role (tasks run one after another; two large reward
        models need not share the GPU)."""
        key = PoolKey(role, identity)
        if key not in self._entries:
            if alone:
                self._release([k for k in self._entries if k.role == role])
            self._entries[key] = load()
        return self._entries[key]

    def find(self, role: str, identity: str) -> Any | None:
        return self._entries.get(PoolKey(role, identity))

    def loaded(self, role: str) -> list[str]:
        """The identities of the role's entries, in loading order."""
        return [k.identity for k in self._entries if k.role == role]

    def close(self) -> None:
        self._release(list(self._entries))

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _release(self, keys: list[PoolKey]) -> None:
        if not keys:
            return
        for key in keys:
            entry = self._entries.pop(key)
            if isinstance(entry, Backend):
                entry.close()
        del entry
        gc.collect()
        torch = sys.modules.get("torch")  # only if a model was loaded: never imported for this
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
